#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchStore
import ServiceLifecycle
import UnixSignals

/// What the loops report to whoever watches them: a heartbeat each (for the watchdog) and each
/// planning pass's end (for readiness, `STATUS=`, the heartbeat row, the lag check).
public final class DaemonMonitor: Sendable {
    public struct Pass: Sendable {
        /// When the pass ended (the runtime's clock).
        public var at: Millis
        /// How long its sweep took.
        public var nanoseconds: Int64
    }

    public let planning = LoopHeartbeat("planning")
    public let delivery = LoopHeartbeat("delivery")
    /// Only the newest pass matters to the watcher: a burst of passes is one report.
    public let passes: AsyncStream<Pass>
    private let continuation: AsyncStream<Pass>.Continuation

    public init() {
        (passes, continuation) = AsyncStream.makeStream(of: Pass.self, bufferingPolicy: .bufferingNewest(1))
    }

    func passed(at: Millis, nanoseconds: Int64) {
        continuation.yield(Pass(at: at, nanoseconds: nanoseconds))
    }

    func finish() {
        continuation.finish()
    }
}

/// The daemon as systemd runs it: ``PaywatchService`` plus the notify protocol (`READY=1` after the
/// first sweep, `STATUS=`, watchdog pings while no loop is stuck, `RELOADING=1`, `STOPPING=1`),
/// configuration reload on SIGHUP, the heartbeat row `paywatch status` reads, and the lag warning.
///
/// Reload: the new file is read and checked completely (keys, token files, templates, limits)
/// while the running service goes on. A bad file is logged — file, line, key — and changes
/// nothing. A good one replaces the service: planning stops, delivery finishes its transfers in
/// flight, every open order is marked for planning, and a service on the new configuration
/// starts, so its first sweep re-plans them all under the new policy. Only the open store (`[store]
/// url` and `busy_timeout`) and the metrics endpoint (`[metrics]`) keep their start-time settings
/// until a restart; `[store] lease` applies to the new service's claims (the old one's were all
/// recorded or released as it drained).
public struct DaemonService: Service {
    let initial: Runtime
    /// Reads, checks and wires the configuration file anew; throws what is wrong with it.
    let reload: @Sendable () async throws -> Runtime
    let notifier: SystemdNotifier
    let monitor: DaemonMonitor
    let instance: String

    public init(runtime: Runtime, notifier: SystemdNotifier = SystemdNotifier(), monitor: DaemonMonitor = DaemonMonitor(),
                reload: @escaping @Sendable () async throws -> Runtime) {
        self.initial = runtime
        self.notifier = notifier
        self.monitor = monitor
        self.reload = reload
        self.instance = ProcessInfo.processInfo.hostName
    }

    enum Control: Sendable {
        case hangup
        case ended((any Error)?)
        case shutdown
    }

    public func run() async throws {
        let control = EventQueue<Control>()
        let live = LiveRuntime(initial)
        let started = initial.clock.now()
        let beat = HeartbeatWriter(
            heartbeat: DaemonHeartbeat(instance: instance, pid: Int64(getpid()), startedAt: started, configLoadedAt: started))
        await beat.write(live.runtime)
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await hangups(into: control) }
                group.addTask { await watch(live: live, beat: beat) }
                group.addTask { await watchdog(usec: notifier.watchdogUsec, live: live) }
                // The queue's wait ignores cancellation: a cancelled group stops the service as a
                // graceful shutdown would, and the supervisor returns once it has drained.
                try await withTaskCancellationHandler {
                    try await supervise(live: live, control: control, beat: beat)
                } onCancel: {
                    control.push(.shutdown)
                }
                monitor.finish()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            notifier.stopping()
            control.push(.shutdown)
        }
        await beat.stopped(live.runtime)
    }

    /// Runs the service, replaces it after each good reload, and returns when it ends on its own
    /// (a graceful shutdown); rethrows its fatal error.
    private func supervise(live: LiveRuntime, control: EventQueue<Control>, beat: HeartbeatWriter) async throws {
        var current = start(live.runtime, control: control)
        var next: Runtime?
        var stopping = false
        // A SIGHUP while a reload drains the old service: the file may have changed again since it
        // was read, so it is read once more when the new service runs.
        var again = false
        defer { current.cancel() }
        while true {
            switch await control.next() {
            case .shutdown:
                stopping = true
                next = nil
                again = false
                current.cancel()  // as graceful shutdown does: planning stops, delivery drains
            case .hangup:
                guard !stopping else { continue }
                guard next == nil else {
                    again = true
                    live.runtime.logger.notice("SIGHUP during a reload: the configuration is read again once it is done",
                                               metadata: ["event": "reload"])
                    continue
                }
                notifier.reloading()
                let logger = live.runtime.logger
                logger.notice("SIGHUP: reloading the configuration", metadata: ["event": "reload"])
                do {
                    let loaded = try await reload()
                    for warning in loaded.config.warnings { loaded.logger.warning("\(warning)") }
                    logChanges(from: live.runtime.config, to: loaded.config, logger: loaded.logger)
                    next = loaded
                    current.cancel()  // planning stops; delivery drains; then .ended
                } catch {
                    logger.error("configuration reload failed; the running configuration stays in force",
                                 metadata: ["event": "reload_failed", "error": "\(error)"])
                    notifier.ready(status: "reload failed, running on the previous configuration: \(error)")
                }
            case .ended(let error):
                guard let replacement = next else {
                    if let error { throw error }
                    return
                }
                next = nil
                if let error { throw error }
                let marked: Int
                do {
                    marked = try await replacement.store.replanAll()
                } catch {
                    // The new configuration still applies; orders are re-planned as they come due.
                    replacement.logger.error("re-planning after reload failed", metadata: ["error": "\(error)"])
                    marked = 0
                }
                live.runtime = replacement
                await beat.reloaded(at: replacement.clock.now(), replacement)
                replacement.logger.notice("configuration reloaded; open orders are re-planned under it",
                                          metadata: ["event": "reloaded", "orders": "\(marked)"])
                current = start(replacement, control: control, replacing: true)
                notifier.ready(status: "configuration reloaded; re-planning \(marked) order(s)")
                if again {
                    again = false
                    control.push(.hangup)
                }
            }
        }
    }

    private func start(_ runtime: Runtime, control: EventQueue<Control>, replacing: Bool = false) -> Task<Void, Never> {
        let service = PaywatchService(runtime: runtime, monitor: monitor, announce: !replacing)
        // Unstructured, so that a reload can stop this service alone; it inherits the graceful
        // shutdown of the group, and reports its end (and a fatal error) through `control`.
        return Task {
            do {
                try await service.run()
                control.push(.ended(nil))
            } catch {
                control.push(.ended(error))
            }
        }
    }

    private func hangups(into control: EventQueue<Control>) async {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals {
            if Task.isCancelled { return }
            control.push(.hangup)
        }
    }

    /// After a planning pass (at most every tenth of `max_lag`): the heartbeat row, the lag check
    /// and `STATUS=`; the first pass makes the service ready.
    private func watch(live: LiveRuntime, beat: HeartbeatWriter) async {
        var ready = false
        var lagLog = LagLog()
        var lastCheck: UInt64 = 0
        var lastHealth: UInt64 = 0
        var openOrders: Int?
        for await pass in monitor.passes {
            let runtime = live.runtime
            runtime.metrics?.sweep(nanoseconds: pass.nanoseconds)
            // A tenth of max_lag apart (at least a second): the heartbeat stays fresh enough for
            // `status`, the lag warning comes soon enough, and an idle daemon writes little.
            let now = monotonicMicros()
            let interval = max(1_000_000, UInt64(max(0, runtime.config.daemon.maxLagMs)) * 100)
            guard !ready || now - lastCheck >= interval else { continue }
            lastCheck = now
            await beat.swept(at: pass.at, nanoseconds: pass.nanoseconds, runtime)
            // The counts that need a scan (open orders, the outbox by state): every 5 minutes, and only
            // for someone who reads them.
            if runtime.metrics != nil || notifier.enabled, !ready || now - lastHealth >= 300_000_000 {
                lastHealth = now
                if let health = try? await runtime.store.health(now: runtime.clock.now()) {
                    openOrders = health.openOrders
                    runtime.metrics?.outbox(health.outbox)
                }
            }
            guard let lag = try? await runtime.store.lag(now: runtime.clock.now()) else { continue }
            let lagMs = lag.ms(now: runtime.clock.now(), lastSweepAt: pass.at)
            runtime.metrics?.lag(lag, ms: lagMs)
            lagLog.check(lagMs: lagMs, maxLagMs: runtime.config.daemon.maxLagMs, lag: lag, now: runtime.clock.now(),
                         logger: runtime.logger)
            let status = "open orders \(openOrders.map(String.init) ?? "?"), backlog \(lag.dueMessages), lag \(humanSeconds(lagMs)), "
                + "last sweep \(Timestamp.iso8601(pass.at)) (\(pass.nanoseconds / 1_000_000) ms)"
            if ready {
                notifier.status(status)
            } else {
                ready = true
                notifier.ready(status: status)
            }
        }
    }

    /// Checks the loops at half the watchdog interval (or every `max_lag / 2`, at most 30 s, without
    /// one). While no loop has been inside one pass for longer than the interval, it pings; a stuck
    /// loop stops the pings, so systemd kills and restarts the service (`WatchdogSec=`), and is
    /// logged once. Without a watchdog, a pass longer than `max_lag` is logged all the same.
    private func watchdog(usec: UInt64?, live: LiveRuntime) async {
        var reported = false
        while !Task.isCancelled {
            let maxLagUsec = UInt64(max(1, live.runtime.config.daemon.maxLagMs)) * 1_000
            let limit = usec ?? maxLagUsec
            let stuck = WatchdogCheck(limitUsec: limit).stuck([monitor.planning, monitor.delivery])
            if stuck.isEmpty {
                if usec != nil { notifier.watchdog() }
                reported = false
            } else if !reported {
                reported = true
                let loops = stuck.map { "\($0.name) \($0.usec / 1_000_000)s" }.joined(separator: ", ")
                if usec != nil {
                    live.runtime.logger.critical("a loop is stuck in one pass; watchdog pings stop, so systemd restarts paywatch",
                                                 metadata: ["event": "watchdog_stuck", "loops": "\(loops)"])
                } else {
                    live.runtime.logger.warning("a loop has been in one pass for longer than [daemon] max_lag",
                                                metadata: ["event": "loop_stuck", "loops": "\(loops)"])
                }
            }
            try? await Task.sleep(for: .microseconds(usec.map { $0 / 2 } ?? min(maxLagUsec / 2, 30_000_000)))
        }
    }

    /// One line per section whose settings changed; the ones that wait for a restart say so.
    private func logChanges(from old: PaywatchConfiguration, to new: PaywatchConfiguration, logger: Logger) {
        let sections: [(String, (PaywatchConfiguration, PaywatchConfiguration) -> Bool)] = [
            ("daemon", { $0.daemon != $1.daemon }), ("delivery", { $0.delivery != $1.delivery }),
            ("unpaid", { $0.unpaid != $1.unpaid }), ("paying", { $0.paying != $1.paying }),
            ("failed", { $0.failed != $1.failed }), ("partially_paid", { $0.partiallyPaid != $1.partiallyPaid }),
            ("paid", { $0.paid != $1.paid }), ("refunding", { $0.refunding != $1.refunding }),
            ("cancelled", { $0.cancelled != $1.cancelled }), ("templates", { $0.templates != $1.templates }),
            ("retention", { $0.retention != $1.retention }), ("channels", { $0.channels != $1.channels }),
            ("store.lease", { $0.store.leaseMs != $1.store.leaseMs }),
        ]
        let changed = sections.filter { $0.1(old, new) }.map(\.0)
        logger.notice("configuration checked", metadata: [
            "event": "reload_checked", "changed": "\(changed.isEmpty ? "none" : changed.joined(separator: ","))",
        ])
        if old.store.url != new.store.url || old.store.busyTimeoutMs != new.store.busyTimeoutMs {
            logger.warning("[store] url or busy_timeout changed: it takes effect at the next restart; the open store stays in use",
                           metadata: ["event": "reload_needs_restart"])
        }
        if Runtime.secretFiles(new).contains(where: { $0.file.contains("CREDENTIALS_DIRECTORY") }) {
            logger.notice("credentials ($CREDENTIALS_DIRECTORY) are copied by systemd at start: a rotated one needs a restart",
                          metadata: ["event": "reload_checked"])
        }
        if old.metrics != new.metrics {
            logger.warning("[metrics] changed: it takes effect at the next restart", metadata: ["event": "reload_needs_restart"])
        }
    }
}

/// The runtime in force, shared by the supervisor's watchers.
final class LiveRuntime: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Runtime

    init(_ runtime: Runtime) {
        current = runtime
    }

    var runtime: Runtime {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }
}

/// The heartbeat row; a failed write is logged once per outage and never stops anything.
actor HeartbeatWriter {
    private var heartbeat: DaemonHeartbeat
    private var outage = OutageLog("writing the heartbeat")

    init(heartbeat: DaemonHeartbeat) {
        self.heartbeat = heartbeat
    }

    func write(_ runtime: Runtime) async {
        do {
            try await runtime.store.writeHeartbeat(heartbeat)
            outage.succeeded(now: runtime.clock.now(), logger: runtime.logger)
        } catch {
            outage.failed("\(error)", now: runtime.clock.now(), logger: runtime.logger)
        }
    }

    func swept(at: Millis, nanoseconds: Int64, _ runtime: Runtime) async {
        heartbeat.lastSweepAt = at
        heartbeat.lastSweepMs = nanoseconds / 1_000_000
        await write(runtime)
    }

    func reloaded(at: Millis, _ runtime: Runtime) async {
        heartbeat.configLoadedAt = at
        await write(runtime)
    }

    func stopped(_ runtime: Runtime) async {
        heartbeat.stoppedAt = runtime.clock.now()
        await write(runtime)
    }
}

/// The lag warning: once when the lag passes `max_lag`, again at most every 10 minutes while it
/// stays above, and a notice when it is back under.
struct LagLog {
    private var since: Millis?
    private var lastLogged: Millis = 0

    mutating func check(lagMs: Int64, maxLagMs: Int64, lag: Lag, now: Millis, logger: Logger) {
        if lagMs > maxLagMs {
            if since == nil { since = now }
            guard now - lastLogged >= 600_000 else { return }
            lastLogged = now
            logger.warning("paywatch is behind: an action has been due for longer than [daemon] max_lag", metadata: [
                "event": "lagging", "lag_ms": "\(lagMs)", "max_lag_ms": "\(maxLagMs)",
                "due_messages": "\(lag.dueMessages)", "changed_orders": "\(lag.changedOrders)",
            ])
        } else if let start = since {
            logger.notice("paywatch caught up", metadata: ["event": "caught_up", "lag_ms": "\(lagMs)", "behind_ms": "\(now - start)"])
            since = nil
            lastLogged = 0
        }
    }
}

/// `0s`, `12s`, `3m20s`: a lag at a glance.
func humanSeconds(_ ms: Int64) -> String {
    let seconds = ms / 1_000
    return seconds < 60 ? "\(seconds)s" : "\(seconds / 60)m\(seconds % 60)s"
}
