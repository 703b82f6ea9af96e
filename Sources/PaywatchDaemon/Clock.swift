#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PaywatchCore

/// The daemon's only source of time. Business rules never read it: the loops read `now()` once
/// per pass and hand the value to the planner.
public protocol PaywatchClock: Sendable {
    func now() -> Millis
    /// Sleeps until the wall-clock instant `deadline` (or returns at once if it has passed).
    func sleep(until deadline: Millis) async throws
}

/// Wall-clock time (CLOCK_REALTIME), as the order store's timestamps are.
public struct SystemClock: PaywatchClock {
    public init() {}

    public func now() -> Millis {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Millis(spec.tv_sec) * 1000 + Millis(spec.tv_nsec) / 1_000_000
    }

    public func sleep(until deadline: Millis) async throws {
        // Re-check after waking: the wall clock may be adjusted while we sleep. The wait is
        // computed to the nanosecond, so a deadline is met within the timer's precision instead
        // of up to a millisecond late.
        let (deadlineNs, overflow) = deadline.multipliedReportingOverflow(by: 1_000_000)
        if overflow {
            // Centuries away (or before 1678): never, or now.
            if deadline < 0 { return }
            return try await Task.sleep(for: .seconds(86_400))
        }
        while true {
            var spec = timespec()
            clock_gettime(CLOCK_REALTIME, &spec)
            let remaining = deadlineNs - (Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
            if remaining <= 0 { return }
            try await Task.sleep(for: .nanoseconds(remaining))
        }
    }
}
