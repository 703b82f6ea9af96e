#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import Foundation

/// The service manager's notify protocol (`sd_notify(3)`): readiness, status, reloading, stopping
/// and watchdog pings. Without `NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every
/// call does nothing.
public struct SystemdNotifier: Sendable {
    /// `NOTIFY_SOCKET` is set: messages go somewhere.
    public let enabled: Bool
    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), nil when off.
    public let watchdogUsec: UInt64?

    public init() {
        enabled = getenv("NOTIFY_SOCKET") != nil
        var usec: UInt64 = 0
        // > 0: WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
        watchdogUsec = sd_watchdog_enabled(0, &usec) > 0 && usec > 0 ? usec : nil
    }

    /// Sends newline-separated `KEY=value` assignments; a failure (the socket gone) is ignored:
    /// systemd then acts on what it has not heard (a start timeout, a missed watchdog).
    public func send(_ assignments: [String]) {
        guard enabled else { return }
        // A value may not hold a newline: it would start a new assignment.
        let text = assignments.map { $0.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n")
        _ = sd_notify(0, text)
    }

    public func ready(status: String) { send(["READY=1", "STATUS=" + status]) }
    public func status(_ text: String) { send(["STATUS=" + text]) }
    /// `RELOADING=1` with the monotonic time of the request (systemd ≥ 253 matches it to the reload job).
    public func reloading() { send(["RELOADING=1", "MONOTONIC_USEC=\(monotonicMicros())", "STATUS=reloading the configuration"]) }
    public func stopping() { send(["STOPPING=1", "STATUS=stopping: finishing the transfers in flight"]) }
    public func watchdog() { send(["WATCHDOG=1"]) }
}

/// `CLOCK_MONOTONIC` in microseconds: what `MONOTONIC_USEC=` and the watchdog need (the wall clock
/// may jump; the injected clock may be a test's).
public func monotonicMicros() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1_000
}

/// Whether a loop is inside a pass and since when it last made progress (monotonic): the watchdog
/// pings only while no loop has gone without progress inside a pass for longer than the watchdog
/// interval. Waiting for work (a sleep, an empty queue) or for a provider's answer (bounded by
/// its timeout) is not a pass, so an idle daemon keeps pinging, and so does one whose passes are
/// long but move: each written batch counts.
public final class LoopHeartbeat: @unchecked Sendable {
    private let lock = NSLock()
    private var busySince: UInt64?
    public let name: String

    public init(_ name: String) {
        self.name = name
    }

    /// A pass starts (leaving a wait).
    public func busy() {
        let now = monotonicMicros()
        lock.withLock { if busySince == nil { busySince = now } }
    }

    /// A pass goes on and made progress (a batch written, an answer recorded): its clock starts
    /// again, so a long pass of many short steps is not taken for a stuck one.
    public func progressed() {
        let now = monotonicMicros()
        lock.withLock { if busySince != nil { busySince = now } }
    }

    /// The loop waits for work (or for an answer from outside, which has a timeout of its own).
    public func idle() {
        lock.withLock { busySince = nil }
    }

    /// How long the current pass has run, in microseconds; nil while the loop waits.
    public func busyFor(now: UInt64 = monotonicMicros()) -> UInt64? {
        lock.withLock { busySince.map { now > $0 ? now - $0 : 0 } }
    }
}

/// The decision behind each watchdog ping, apart from its timer so that it can be tested.
public struct WatchdogCheck: Sendable {
    public let limitUsec: UInt64

    public init(limitUsec: UInt64) {
        self.limitUsec = limitUsec
    }

    /// The loops stuck in one pass for longer than the limit; empty: ping.
    public func stuck(_ loops: [LoopHeartbeat], now: UInt64 = monotonicMicros()) -> [(name: String, usec: UInt64)] {
        loops.compactMap { loop in
            guard let busy = loop.busyFor(now: now), busy > limitUsec else { return nil }
            return (loop.name, busy)
        }
    }
}
