import Dispatch
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore
import ServiceLifecycle

/// The daemon: a planning loop and a delivery engine over one order store.
///
/// Planning: claim what is due or changed → plan each order with the pure planner → apply each
/// order's status, outbox rows, timeline and next due time in one transaction (up to 100 orders
/// per transaction) → wake delivery → sleep until the earliest next due time, never longer than
/// `poll_interval`.
/// Delivery (``DeliveryEngine``): stream due outbox messages through `[delivery] concurrency`
/// transfer slots shared fairly by the channels, commit each outcome within milliseconds, and
/// sleep until the next message is due or planning wakes it.
public struct PaywatchService: Service {
    let runtime: Runtime
    /// How often each loop ran: tests prove with it that an idle daemon does nothing.
    public let stats = LoopStats()
    /// Where the loops report their passes (for readiness, the watchdog and `STATUS=`).
    let monitor: DaemonMonitor
    /// Logs "paywatch started" and "paywatch stopped"; not for a service that replaces another
    /// after a reload, which the process goes on through.
    let announce: Bool

    public init(runtime: Runtime, monitor: DaemonMonitor = DaemonMonitor(), announce: Bool = true) {
        self.runtime = runtime
        self.monitor = monitor
        self.announce = announce
    }

    public func run() async throws {
        // Leases of runs that ended: due again at once where the store knows their owners are
        // gone (SQLite under its run lock: one daemon per file); elsewhere when they expire.
        let released = try await runtime.store.recoverLeasesOfDeadOwners(now: runtime.clock.now())
        if released > 0 {
            runtime.logger.notice("messages left in flight by an earlier run are due again", metadata: ["count": "\(released)"])
        }
        runtime.logger.notice(announce ? "paywatch started" : "service restarted on the new configuration", metadata: [
            "poll_interval": "\(runtime.config.daemon.pollIntervalMs)ms",
            "channels": "\(runtime.channels.keys.sorted().joined(separator: ","))",
            "lease_owner": "\(runtime.store.leaseOwner)",
        ])
        let engine = DeliveryEngine(runtime: runtime, stats: stats, heartbeat: monitor.delivery)
        // A store with wake-ups (PostgreSQL's LISTEN): the shop's writes wake planning, and new
        // messages (written by any replica) wake delivery, within milliseconds instead of a poll.
        let changes = runtime.store.changes()
        let wake = changes == nil ? nil : WakeSignal()
        defer {
            runtime.transport.shutdown()
            for endpoint in runtime.channels.values { endpoint.provider.shutdown() }
            // Cancelled without a graceful shutdown: replaced after a reload; the process goes on.
            let replaced = Task.isCancelled && !Task.isShuttingDownGracefully
            runtime.logger.notice(replaced ? "service stopped for a reload" : "paywatch stopped", metadata: [
                "planning_passes": "\(stats.planningPasses)", "transfers": "\(stats.transfersStarted)",
                "store_operations": "\(stats.storeOperations)", "store_ms": "\(stats.storeMilliseconds)",
            ])
        }
        // A fatal store error (the database file deleted or replaced) ends planning with a throw:
        // the group cancels delivery, which drains, and the error ends the service (non-zero exit).
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                // Delivery drains once planning has stopped: transfers in flight finish and are
                // recorded; claimed and handed-over messages are released, due again. (Shut down
                // any earlier, it could finish before a sweep that was already writing hands over
                // what it leased, and those messages would wait for the next start.)
                await engine.run(finishWhenIdle: false)
            }
            // A service that replaces another after a reload does not prune at once: the old one
            // did at its start, and the re-planning sweep needs the writer now.
            let announce = self.announce
            group.addTask { await cancelWhenGracefulShutdown { await Pruner(runtime: runtime).run(atOnce: announce) } }
            if let changes, let wake {
                let listening = Task {
                    for await change in changes {
                        switch change {
                        case .ordersChanged: wake.signal()
                        case .messagesAdded: engine.wake()
                        case .reconnected:
                            wake.signal()
                            engine.wake()
                        }
                    }
                }
                group.addTask { await cancelWhenGracefulShutdown { await withTaskCancellationHandler { await listening.value } onCancel: { listening.cancel() } } }
            }
            group.addTask {
                defer { engine.shutdown() }
                // Planning stops at once: each chunk of a sweep is one transaction, so what an
                // interrupted sweep wrote stays written and the rest stays due.
                do {
                    try await cancelWhenGracefulShutdown { try await self.planningLoop(engine, wake: wake) }
                } catch is CancellationError {
                    return
                }
            }
        }
    }

    /// One sweep, then delivery of everything due now, then return (`paywatch run --once`).
    public func runOnce() async throws {
        _ = try await runtime.store.recoverLeasesOfDeadOwners(now: runtime.clock.now())
        let engine = DeliveryEngine(runtime: runtime, stats: stats)
        try await planDue(engine)
        // An answer from the payment provider moves its order on in the same run.
        if try await Reconciler(runtime: runtime).runDue().definite > 0 {
            try await planDue(engine)
        }
        await engine.run(finishWhenIdle: true)
        runtime.transport.shutdown()
        for endpoint in runtime.channels.values { endpoint.provider.shutdown() }
    }

    // MARK: Planning

    /// Returns when cancelled; throws only a fatal store error (see ``OrderStore/verifyStillOpen()``).
    func planningLoop(_ engine: DeliveryEngine, wake: WakeSignal? = nil) async throws {
        let poll = runtime.config.daemon.pollIntervalMs
        var outage = OutageLog("planning")
        defer { monitor.planning.idle() }
        while !Task.isCancelled {
            stats.planningPass()
            monitor.planning.busy()
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                try runtime.store.verifyStillOpen()
                let progress = try await planDue(engine)
                // A sweep that found nothing may have said when planning and reconciliation are
                // next due (one round trip for a pass that has nothing to do).
                let known = progress.nextDue
                let reconcileDue = known.map { $0.reconcile.map { $0 <= runtime.clock.now() } ?? false } ?? true
                // Stalled payments decided by this sweep (or left by an earlier run) are asked about
                // now; a definite answer marks its order, planned at the next pass.
                let asked = reconcileDue ? try await Reconciler(runtime: runtime, heartbeat: monitor.planning).runDue()
                    : (definite: 0, unresolved: 0, nextDue: known?.reconcile)
                if asked.unresolved > 0 { engine.wake() }
                outage.succeeded(now: runtime.clock.now(), logger: runtime.logger)
                let now = runtime.clock.now()
                let planning = reconcileDue ? try await runtime.store.nextPlanningAt() : known?.planning
                var next = planning ?? (now + poll)
                if let ask = asked.nextDue { next = min(next, ask) }
                if progress.claimed > 0 && progress.applied == 0 {
                    // Everything claimed was left due (the shop changed each order meanwhile, or a
                    // row cannot be written back): look again after a pause, never at once.
                    next = max(next, now + min(poll, 1000))
                }
                monitor.passed(at: now, nanoseconds: Int64(DispatchTime.now().uptimeNanoseconds - started))
                monitor.planning.idle()
                try await runtime.clock.sleep(until: min(next, now + poll), orUntil: wake)
            } catch is CancellationError {
                return
            } catch let error as StoreError where error.isFatal {
                runtime.logger.critical("the order store is gone; exiting so that the supervisor starts paywatch again",
                                        metadata: ["error": "\(error)"])
                throw error
            } catch {
                // The store is unavailable (disk full, locked too long, a column renamed): retry
                // each poll, never give up.
                outage.failed("\(error)", now: runtime.clock.now(), logger: runtime.logger)
                monitor.planning.idle()
                do {
                    try await runtime.clock.sleep(until: runtime.clock.now() + min(poll, 1000))
                } catch {
                    return
                }
            }
        }
    }

    /// Plans every order that is due now, in batches of `batch_size`; wakes delivery when a
    /// batch decided messages. Returns how many orders it claimed and how many plans it applied.
    @discardableResult
    func planDue(_ engine: DeliveryEngine) async throws -> (claimed: Int, applied: Int, nextDue: NextDueTimes?) {
        let batch = runtime.config.daemon.batchSize
        var progress: (claimed: Int, applied: Int, nextDue: NextDueTimes?) = (0, 0, nil)
        while !Task.isCancelled {
            let now = runtime.clock.now()
            let planner = runtime.planner
            let result = try await runtime.store.sweep(
                now: now, limit: batch, plan: { planner.plan($0, now: now) }, handOff: engine.handOff
            ) { plans, handed in
                // Each written chunk goes out at once, while the rest of the batch is planned:
                // what delivery had room for is handed over leased; the rest it claims.
                engine.handOver(handed)
                if plans.reduce(0, { $0 + $1.messages.count }) > handed.count { engine.wake() }
            }
            for plan in result.plans { log(plan) }
            monitor.planning.progressed()
            progress.claimed += result.claimed
            progress.applied += result.plans.count
            // What the last sweep of the pass said (an earlier one's times have moved since).
            progress.nextDue = result.nextDue
            // A batch that applied nothing would be claimed again as it is: stop here.
            if result.claimed < batch || result.plans.isEmpty { return progress }
        }
        return progress
    }

    func log(_ plan: Plan) {
        let logger = runtime.logger
        if let reason = plan.quarantine {
            logger.warning("order quarantined", metadata: ["order_id": "\(plan.orderID)", "event": "quarantined", "reason": "\(reason)"])
            return
        }
        if plan.statusChanged {
            runtime.metrics?.transition(from: plan.previousStatus?.rawValue ?? "new", to: plan.status.rawValue)
            let level: Logger.Level = plan.previousStatus == nil ? .debug : .info
            logger.log(level: level, "status changed", metadata: [
                "order_id": "\(plan.orderID)", "event": "\(plan.status.rawValue)",
                "from": "\(plan.previousStatus?.rawValue ?? "new")",
            ])
        }
        for message in plan.messages {
            logger.info("message decided", metadata: [
                "order_id": "\(message.orderID)", "event": "\(message.kind.rawValue)", "kind": "\(message.kind.rawValue)",
                "channel": "\(message.channel)",
                "step": "\(message.step)", "to": "\(Redact.address(message.recipient, channel: message.channel))",
            ])
        }
        for event in plan.events where event.event == "reminders_collapsed" {
            logger.info("missed reminder steps collapsed", metadata: ["order_id": "\(plan.orderID)", "event": "\(event.event)", "detail": "\(event.detail)"])
        }
    }
}
