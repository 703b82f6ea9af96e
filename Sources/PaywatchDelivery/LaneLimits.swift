import PaywatchCore

/// A token bucket on integer arithmetic, refilled from the `now` it is given (it reads no clock).
///
/// One token is `periodMs` units; the bucket gains `count` units per millisecond, so `count`
/// tokens per `periodMs` exactly, with no rounding drift (`3/s` is one token every 333⅓ ms). It
/// holds at most `burst` tokens and starts full.
public struct TokenBucket: Sendable, Equatable {
    /// Tokens per `periodMs`.
    public let count: Int64
    public let periodMs: Millis
    /// The most tokens it holds.
    public let burst: Int64
    /// Units (tokens × `periodMs`) held at `updatedAt`.
    private var level: Int64
    /// When `level` was last brought up to date; nil before the first use (the bucket is full).
    private var updatedAt: Millis?

    public init(count: Int, periodMs: Millis, burst: Int) {
        self.count = Int64(max(1, count))
        self.periodMs = max(1, periodMs)
        self.burst = Int64(max(1, burst))
        level = self.burst * self.periodMs
    }

    private var capacity: Int64 { burst * periodMs }

    /// Adds what accrued since the last use (a clock that steps back adds nothing).
    private mutating func refill(now: Millis) {
        defer { updatedAt = max(updatedAt ?? now, now) }
        guard let updatedAt, now > updatedAt else { return }
        let elapsed = now - updatedAt
        // From this on, the bucket is full anyway (and below it the product cannot overflow).
        if elapsed >= (capacity - level + count - 1) / count {
            level = capacity
        } else {
            level = min(capacity, level + elapsed * count)
        }
    }

    /// Whole tokens available at `now`.
    public mutating func available(now: Millis) -> Int {
        refill(now: now)
        return Int(level / periodMs)
    }

    /// Takes one token if there is one.
    public mutating func take(now: Millis) -> Bool {
        refill(now: now)
        guard level >= periodMs else { return false }
        level -= periodMs
        return true
    }

    /// The first instant a token is available: `now` if one is.
    public mutating func nextTokenAt(now: Millis) -> Millis {
        refill(now: now)
        guard level < periodMs else { return now }
        let missing = periodMs - level
        return now + (missing + count - 1) / count
    }

    /// Tokens available now plus those that accrue within `ms` (the bucket's cap ignored: they are
    /// spent as they come): how many messages the lane can send in that time.
    public mutating func tokens(within ms: Millis, now: Millis) -> Int {
        let present = available(now: now)
        guard ms > 0 else { return present }
        let later = ms.multipliedReportingOverflow(by: count)
        let accrued = later.overflow ? Int64(Int32.max) : min(later.partialValue / periodMs, Int64(Int32.max))
        return present + Int(accrued)
    }
}

/// How a lane sends: its rate and its circuit breaker (`[channels.NAME]` `rate`, `burst`,
/// `breaker_failures`, `breaker_probe`).
public struct LaneLimits: Sendable, Equatable {
    /// Nil: no rate limit.
    public var rate: TokenBucket?
    /// Consecutive failed transfers that open the breaker; nil: no breaker.
    public var breakerFailures: Int?
    /// How long an open breaker waits before its next probe.
    public var breakerProbeMs: Millis

    public init(rate: TokenBucket? = nil, breakerFailures: Int? = nil, breakerProbeMs: Millis = 30_000) {
        self.rate = rate
        self.breakerFailures = breakerFailures.map { max(1, $0) }
        self.breakerProbeMs = max(1, breakerProbeMs)
    }
}

/// What one transfer says about its channel, for the circuit breaker.
public enum TransferHealth: Sendable, Equatable {
    /// The provider answered (any answer but a 5xx): the channel works; the failure count resets.
    case answered
    /// A transport error or an HTTP 5xx: one more consecutive failure. `reason` is for ops.
    case failed(reason: String)
    /// Nothing was sent (no route, a provider not ready): says nothing about the channel.
    case unknown
}

/// The breaker's reading of an answer: a transport error (no status) or an HTTP 5xx is a failure
/// of the channel; any other answer shows it works. An SMTP reply is an answer whatever its code
/// (a `5xx` there refuses one message or address, not the relay); only a transport error counts.
public func transferHealth(_ response: HTTPResponse) -> TransferHealth {
    guard response.attempted else { return .unknown }
    if let mail = response.mail {
        if response.error == nil, let status = response.status, (200...299).contains(status) { return .answered }
        if let status = response.status, (400...599).contains(status), mail.repliedTo != nil { return .answered }
        return .failed(reason: "transport error: \(response.error ?? "unknown")")
    }
    guard let status = response.status else {
        return .failed(reason: "transport error: \(response.error ?? "unknown")")
    }
    if (500...599).contains(status) {
        let summary = bodySummary(response.body)
        return .failed(reason: summary.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(summary)")
    }
    return .answered
}
