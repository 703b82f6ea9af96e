import PaywatchCore
import PaywatchDelivery
import Testing

/// Pure tests of the retry classifier and Retry-After parsing.
@Suite struct RetryPolicyTests {
    private func response(status: Int?, retryAfter: String? = nil, body: String = "", error: String? = nil) -> HTTPResponse {
        HTTPResponse(id: 1, status: status, retryAfter: retryAfter, body: body, error: error, attempted: true, durationMs: 1)
    }

    @Test func successIsDelivered() {
        for status in [200, 201, 202, 204, 299] {
            #expect(classifyDelivery(response(status: status), attempt: 1, policy: RetryPolicy(), nowMs: 0, jitter: 0)
                == .delivered)
        }
    }

    @Test func backoffIsExponentialWithinJitterBoundsAndCapped() {
        let policy = RetryPolicy(maxAttempts: 30, baseDelayMs: 1000, maxDelayMs: 60_000)
        let now: Int64 = 5_000_000
        for attempt in 1..<30 {
            let nominal = min(Int64(1000) << Int64(attempt - 1), 60_000)
            for jitter in [0.0, 0.25, 0.5, 0.999] {
                let outcome = classifyDelivery(response(status: 503), attempt: attempt, policy: policy, nowMs: now, jitter: jitter)
                guard case .retry(let atMs, let reason) = outcome else {
                    Issue.record("attempt \(attempt): expected retry, got \(outcome)")
                    continue
                }
                #expect(reason == "HTTP 503")
                let delay = atMs - now
                #expect(delay >= nominal / 2, "attempt \(attempt)")
                #expect(delay <= nominal, "attempt \(attempt)")
                #expect(delay <= policy.maxDelayMs)
            }
        }
        // Huge attempt numbers must not overflow.
        let outcome = classifyDelivery(response(status: 500), attempt: 1_000, policy: RetryPolicy(maxAttempts: 10_000),
                                       nowMs: 0, jitter: 0.999)
        guard case .retry(let atMs, _) = outcome else {
            Issue.record("expected retry")
            return
        }
        #expect(atMs <= 3_600_000 && atMs >= 1_800_000)
    }

    @Test func retryableStatuses() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            let outcome = classifyDelivery(response(status: status), attempt: 1, policy: RetryPolicy(), nowMs: 0, jitter: 0)
            #expect(outcome == .retry(atMs: 500, reason: "HTTP \(status)"))
        }
    }

    @Test func permanentStatuses() {
        for status in [101, 301, 302, 400, 401, 403, 404, 409, 422] {
            let outcome = classifyDelivery(response(status: status, body: "nope"), attempt: 1, policy: RetryPolicy(),
                                           nowMs: 0, jitter: 0)
            #expect(outcome == .dead(reason: "HTTP \(status): nope"))
        }
    }

    @Test func deadReasonTruncatesBodyTo200Characters() {
        let body = String(repeating: "é", count: 500) + "\nsecret"
        let outcome = classifyDelivery(response(status: 400, body: body), attempt: 1, policy: RetryPolicy(), nowMs: 0, jitter: 0)
        #expect(outcome == .dead(reason: "HTTP 400: " + String(repeating: "é", count: 200)))
    }

    @Test func retryAfterOverridesBackoffAndIsCapped() {
        let policy = RetryPolicy(maxAttempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000)
        #expect(classifyDelivery(response(status: 429, retryAfter: "7"), attempt: 1, policy: policy, nowMs: 10, jitter: 0.7)
            == .retry(atMs: 7010, reason: "HTTP 429"))
        // Honoured beyond retry_max (the gateway asked), but never more than retry_after_max (default 1h).
        #expect(classifyDelivery(response(status: 503, retryAfter: "120"), attempt: 2, policy: policy, nowMs: 10, jitter: 0.7)
            == .retry(atMs: 120_010, reason: "HTTP 503"))
        #expect(classifyDelivery(response(status: 503, retryAfter: "999999"), attempt: 2, policy: policy, nowMs: 10, jitter: 0.7)
            == .retry(atMs: 3_600_010, reason: "HTTP 503"))
        // Unparsable Retry-After falls back to backoff.
        #expect(classifyDelivery(response(status: 503, retryAfter: "soon"), attempt: 1, policy: policy, nowMs: 0, jitter: 0)
            == .retry(atMs: 500, reason: "HTTP 503"))
        // Retry-After on the last attempt does not prevent giving up.
        #expect(classifyDelivery(response(status: 429, retryAfter: "1"), attempt: 5, policy: policy, nowMs: 0, jitter: 0)
            == .dead(reason: "gave up after 5 attempts: HTTP 429"))
    }

    @Test func parseRetryAfterForms() {
        #expect(parseRetryAfter("7", nowMs: 0) == 7000)
        #expect(parseRetryAfter(" 120 ", nowMs: 0) == 120_000)
        #expect(parseRetryAfter("0", nowMs: 0) == 0)
        #expect(parseRetryAfter("-5", nowMs: 0) == nil)
        #expect(parseRetryAfter("1.5", nowMs: 0) == nil)
        #expect(parseRetryAfter("", nowMs: 0) == nil)
        #expect(parseRetryAfter("tomorrow", nowMs: 0) == nil)
        #expect(parseRetryAfter("99999999999999999999999", nowMs: 0) != nil)

        // Sun, 06 Nov 1994 08:49:37 GMT == 784111777 s since the epoch.
        let date: Int64 = 784_111_777_000
        #expect(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowMs: date - 30_000) == 30_000)
        #expect(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", nowMs: date + 5_000) == 0)
        // 2024-02-29 12:00:00 UTC == 1709208000 s.
        #expect(parseRetryAfter("Thu, 29 Feb 2024 12:00:00 GMT", nowMs: 1_709_207_990_000) == 10_000)
        #expect(parseRetryAfter("Thu, 29 Foo 2024 12:00:00 GMT", nowMs: 0) == nil)
        #expect(parseRetryAfter("Thu, 29 Feb 2024 25:00:00 GMT", nowMs: 0) == nil)
        #expect(parseRetryAfter("Thursday, 29-Feb-24 12:00:00 GMT", nowMs: 0) == nil)
    }

    @Test func httpDateRetryAfterInClassifier() {
        let now: Int64 = 784_111_777_000 - 42_000
        #expect(classifyDelivery(response(status: 503, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT"), attempt: 1,
                                 policy: RetryPolicy(), nowMs: now, jitter: 0.1)
            == .retry(atMs: now + 42_000, reason: "HTTP 503"))
    }

    @Test func retryAfterIsClampedBetweenRetryBaseAndRetryAfterMax() {
        let policy = RetryPolicy(maxAttempts: 5, baseDelayMs: 2_000, maxDelayMs: 60_000, retryAfterMaxMs: 600_000)
        let now: Int64 = 784_111_777_000
        // An HTTP date in the past (or "now"): not at once, but retry_base later.
        #expect(classifyDelivery(response(status: 503, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT"), attempt: 1,
                                 policy: policy, nowMs: now + 3_600_000, jitter: 0.3)
            == .retry(atMs: now + 3_600_000 + 2_000, reason: "HTTP 503"))
        #expect(classifyDelivery(response(status: 503, retryAfter: "Sun, 06 Nov 1994 08:49:37 GMT"), attempt: 1,
                                 policy: policy, nowMs: now, jitter: 0.3)
            == .retry(atMs: now + 2_000, reason: "HTTP 503"))
        #expect(classifyDelivery(response(status: 429, retryAfter: "0"), attempt: 1, policy: policy, nowMs: 10, jitter: 0)
            == .retry(atMs: 2_010, reason: "HTTP 429"))
        #expect(classifyDelivery(response(status: 429, retryAfter: "1"), attempt: 1, policy: policy, nowMs: 10, jitter: 0)
            == .retry(atMs: 2_010, reason: "HTTP 429"))
        // Huge seconds (even beyond Int64) and far-future dates: retry_after_max later.
        for huge in ["999999", "99999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            #expect(classifyDelivery(response(status: 503, retryAfter: huge), attempt: 1, policy: policy, nowMs: now, jitter: 0.9)
                == .retry(atMs: now + 600_000, reason: "HTTP 503"), "\(huge)")
        }
        // Within the bounds: as asked.
        #expect(classifyDelivery(response(status: 503, retryAfter: "300"), attempt: 1, policy: policy, nowMs: 0, jitter: 0)
            == .retry(atMs: 300_000, reason: "HTTP 503"))
        // A policy built in code with the bounds the wrong way round: retry_base wins.
        let odd = RetryPolicy(maxAttempts: 5, baseDelayMs: 5_000, maxDelayMs: 60_000, retryAfterMaxMs: 1_000)
        #expect(classifyDelivery(response(status: 503, retryAfter: "120"), attempt: 1, policy: odd, nowMs: 0, jitter: 0)
            == .retry(atMs: 5_000, reason: "HTTP 503"))
    }

    @Test func transportErrorsRetryThenGiveUp() {
        let failure = response(status: nil, error: "curl error 7: Failed to connect")
        #expect(classifyDelivery(failure, attempt: 1, policy: RetryPolicy(maxAttempts: 2), nowMs: 0, jitter: 1)
            == .retry(atMs: 1000, reason: "transport error: curl error 7: Failed to connect"))
        #expect(classifyDelivery(failure, attempt: 2, policy: RetryPolicy(maxAttempts: 2), nowMs: 0, jitter: 1)
            == .dead(reason: "gave up after 2 attempts: transport error: curl error 7: Failed to connect"))
    }

    @Test func notAttemptedRetriesNow() {
        let cancelled = HTTPResponse(id: 1, status: nil, error: "cancelled", attempted: false)
        #expect(classifyDelivery(cancelled, attempt: 99, policy: RetryPolicy(), nowMs: 123, jitter: 0.5) == .notAttempted)
    }
}
