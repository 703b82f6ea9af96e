import PaywatchCore

/// Exponential-backoff retry policy.
public struct RetryPolicy: Sendable, Equatable {
    /// Total number of attempts (including the first) before giving up.
    public var maxAttempts: Int
    /// Delay after the first failed attempt (before jitter).
    public var baseDelayMs: Int64
    /// Upper bound for one backoff delay (not for a `Retry-After`, see ``retryAfterMaxMs``).
    public var maxDelayMs: Int64
    /// Upper bound for a delay requested by `Retry-After` (`[delivery] retry_after_max`): the gateway
    /// may ask for more than ``maxDelayMs``, but never more than this.
    public var retryAfterMaxMs: Int64

    public init(maxAttempts: Int = 8, baseDelayMs: Int64 = 1000, maxDelayMs: Int64 = 3_600_000,
                retryAfterMaxMs: Int64 = 3_600_000) {
        self.maxAttempts = maxAttempts
        self.baseDelayMs = baseDelayMs
        self.maxDelayMs = maxDelayMs
        self.retryAfterMaxMs = retryAfterMaxMs
    }
}

/// Classifies the result of one delivery attempt. Pure function.
///
/// - Parameters:
///   - response: the transport's response for this attempt.
///   - attempt: 1-based number of the attempt that produced `response`.
///   - policy: retry policy.
///   - nowMs: current time in ms; `retry(atMs:)` is on the same clock.
///   - jitter: random value in `0..<1` (injected for determinism); the backoff delay is
///     scaled by `0.5 + 0.5 * jitter`.
///
/// Rules:
/// - 2xx → `.delivered`.
/// - 408, 429, 5xx and transport errors (`status == nil`) → `.retry` after
///   `baseDelayMs * 2^(attempt-1)` capped at `maxDelayMs` and jittered; a parsable `Retry-After`
///   overrides this (`now + retryAfter`, no jitter), clamped to `baseDelayMs … retryAfterMaxMs`:
///   the gateway knows best, so it may exceed `maxDelayMs`, but never `retryAfterMaxMs`, and a
///   zero, tiny or past value (an HTTP date in the past) still waits `baseDelayMs` instead of
///   retrying at once. When `attempt >= maxAttempts` the outcome is `.dead("gave up after N attempts: <reason>")`.
/// - Any other status (1xx, 3xx, other 4xx, ≥600) → `.dead` at once.
/// - `attempted == false` (cancelled before sending) → `.notAttempted`: due again at once, not
///   counted as an attempt (the request never left the process).
///
/// Reasons contain the status and at most 200 characters of the response body, never request
/// headers or bodies.
public func classifyDelivery(_ response: HTTPResponse, attempt: Int, policy: RetryPolicy, nowMs: Int64,
                             jitter: Double) -> DeliveryOutcome {
    classifyDelivery(response, verdict: httpVerdict(response), attempt: attempt, policy: policy, nowMs: nowMs, jitter: jitter)
}

/// The outcome of one attempt from its provider's `verdict`: delivered and dead as the provider
/// says; a retry at the answer's `Retry-After` (clamped) or after the backoff, unless this was the
/// last attempt (`.dead("gave up after N attempts: …")`). An answer never started (shut down) is
/// `.notAttempted` whatever the verdict: due again at once, not counted.
public func classifyDelivery(_ response: HTTPResponse, verdict: ProviderVerdict, attempt: Int, policy: RetryPolicy,
                             nowMs: Int64, jitter: Double) -> DeliveryOutcome {
    if !response.attempted {
        return .notAttempted
    }
    let reason: String
    switch verdict {
    case .delivered: return .delivered
    case .dead(let why, _): return .dead(reason: why)
    case .retry(let why): reason = why
    }
    if attempt >= policy.maxAttempts {
        return .dead(reason: "gave up after \(attempt) attempts: \(reason)")
    }
    if let header = response.retryAfter, let requested = parseRetryAfter(header, nowMs: nowMs) {
        return .retry(atMs: saturatingAdd(nowMs, clampRetryAfter(requested, policy: policy)), reason: reason)
    }
    let delay = backoffDelayMs(attempt: attempt, policy: policy, jitter: jitter)
    return .retry(atMs: saturatingAdd(nowMs, delay), reason: reason)
}

/// A requested `Retry-After` delay clamped to `[baseDelayMs, retryAfterMaxMs]` (the lower bound wins
/// if a policy built in code has them the wrong way round; negative bounds count as 0).
func clampRetryAfter(_ requestedMs: Int64, policy: RetryPolicy) -> Int64 {
    let low = max(0, policy.baseDelayMs)
    let high = max(low, policy.retryAfterMaxMs)
    return min(max(requestedMs, low), high)
}

/// `baseDelayMs * 2^(attempt-1)`, capped at `maxDelayMs`, then scaled by `0.5 + 0.5 * jitter`.
func backoffDelayMs(attempt: Int, policy: RetryPolicy, jitter: Double) -> Int64 {
    let cap = max(0, policy.maxDelayMs)
    let base = max(0, policy.baseDelayMs)
    let exponent = max(0, attempt - 1)
    var delay = base
    if exponent >= 62 {
        delay = base == 0 ? 0 : cap
    } else {
        let (product, overflow) = base.multipliedReportingOverflow(by: Int64(1) << Int64(exponent))
        delay = overflow ? cap : product
    }
    delay = min(delay, cap)
    let j = jitter.isFinite ? min(max(jitter, 0), 1) : 0
    return Int64((Double(delay) * (0.5 + 0.5 * j)).rounded(.down))
}

private func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? .max : .min) : sum
}

/// First 200 characters of a response body with control characters flattened to spaces.
func bodySummary(_ body: String) -> String {
    let prefix = body.prefix(200)
    var out = String()
    out.reserveCapacity(prefix.utf8.count)
    for scalar in prefix.unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7F {
            out.unicodeScalars.append(" ")
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out.trimmingTrailingSpaces()
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        while s.first == " " { s = s.dropFirst() }
        return String(s)
    }
}

/// Parses a `Retry-After` header value into a delay in milliseconds from `nowMs`.
///
/// Accepts delta-seconds (`"120"`) and IMF-fixdate HTTP dates (`"Sun, 06 Nov 1994 08:49:37 GMT"`).
/// Dates in the past yield 0. Returns nil for anything else.
public func parseRetryAfter(_ value: String, nowMs: Int64) -> Int64? {
    let trimmed = value.trimmingTrailingSpaces()
    if trimmed.isEmpty { return nil }
    if trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
        // Delta-seconds; absurdly large values saturate.
        guard let seconds = Int64(trimmed) else { return Int64.max / 2 }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? Int64.max / 2 : ms
    }
    guard let dateMs = parseIMFFixdate(trimmed) else { return nil }
    return max(0, dateMs - nowMs)
}

/// Parses `"Sun, 06 Nov 1994 08:49:37 GMT"` into ms since the Unix epoch.
func parseIMFFixdate(_ s: String) -> Int64? {
    let b = Array(s.utf8)
    // "Www, DD Mmm YYYY HH:MM:SS GMT" is exactly 29 bytes.
    guard b.count == 29, b[3] == 44, b[4] == 32, b[7] == 32, b[11] == 32, b[16] == 32,
          b[19] == 58, b[22] == 58, b[25] == 32, Array(b[26...]) == Array("GMT".utf8) else { return nil }
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    guard days.contains(String(decoding: b[0..<3], as: UTF8.self)) else { return nil }
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    guard let monthIndex = months.firstIndex(of: String(decoding: b[8..<11], as: UTF8.self)) else { return nil }

    func number(_ range: Range<Int>) -> Int? {
        var n = 0
        for i in range {
            let c = b[i]
            guard c >= 48 && c <= 57 else { return nil }
            n = n * 10 + Int(c - 48)
        }
        return n
    }
    guard let day = number(5..<7), let year = number(12..<16), let hour = number(17..<19),
          let minute = number(20..<22), let second = number(23..<25),
          (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
    let month = monthIndex + 1

    // Days from civil (Howard Hinnant's algorithm).
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    let daysSinceEpoch = era * 146_097 + doe - 719_468
    let seconds = Int64(daysSinceEpoch) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    return seconds * 1000
}
