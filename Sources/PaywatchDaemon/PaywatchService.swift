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

    public init(runtime: Runtime) {
        self.runtime = runtime
    }

    public func run() async throws {
        // One daemon per SQLite file: whatever is leased was leased by a run that ended.
        let released = try await runtime.store.releaseLeases(now: runtime.clock.now())
        if released > 0 {
            runtime.logger.notice("messages left in flight by an earlier run are due again", metadata: ["count": "\(released)"])
        }
        runtime.logger.notice("paywatch started", metadata: [
            "poll_interval": "\(runtime.config.daemon.pollIntervalMs)ms",
            "channels": "\(runtime.channels.keys.sorted().joined(separator: ","))",
        ])
        let engine = DeliveryEngine(runtime: runtime, stats: stats)
        await withDiscardingTaskGroup { group in
            group.addTask {
                // Planning stops at once: each chunk of a sweep is one transaction, so what an
                // interrupted sweep wrote stays written and the rest stays due.
                await cancelWhenGracefulShutdown { await self.planningLoop(engine) }
            }
            group.addTask {
                // Delivery drains: transfers in flight finish and are recorded, unstarted ones stay due.
                await withTaskCancellationOrGracefulShutdownHandler {
                    await engine.run(finishWhenIdle: false)
                } onCancelOrGracefulShutdown: {
                    engine.shutdown()
                }
            }
        }
        runtime.transport.shutdown()
        runtime.logger.notice("paywatch stopped", metadata: [
            "planning_passes": "\(stats.planningPasses)", "transfers": "\(stats.transfersStarted)",
            "store_operations": "\(stats.storeOperations)", "store_ms": "\(stats.storeMilliseconds)",
        ])
    }

    /// One sweep, then delivery of everything due now, then return (`paywatch run --once`).
    public func runOnce() async throws {
        _ = try await runtime.store.releaseLeases(now: runtime.clock.now())
        let engine = DeliveryEngine(runtime: runtime, stats: stats)
        try await planDue(engine)
        await engine.run(finishWhenIdle: true)
        runtime.transport.shutdown()
    }

    // MARK: Planning

    func planningLoop(_ engine: DeliveryEngine) async {
        let poll = runtime.config.daemon.pollIntervalMs
        while !Task.isCancelled {
            stats.planningPass()
            do {
                try await planDue(engine)
                let now = runtime.clock.now()
                let next = try await runtime.store.nextPlanningAt() ?? (now + poll)
                try await runtime.clock.sleep(until: min(next, now + poll))
            } catch is CancellationError {
                return
            } catch {
                // The store is unavailable (disk full, locked too long): retry, never give up.
                runtime.logger.error("planning failed; retrying", metadata: ["error": "\(error)"])
                do {
                    try await runtime.clock.sleep(until: runtime.clock.now() + min(poll, 1000))
                } catch {
                    return
                }
            }
        }
    }

    /// Plans every order that is due now, in batches of `batch_size`; wakes delivery when a
    /// batch decided messages.
    func planDue(_ engine: DeliveryEngine) async throws {
        let batch = runtime.config.daemon.batchSize
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
            if result.claimed < batch { return }
        }
    }

    func log(_ plan: Plan) {
        let logger = runtime.logger
        if let reason = plan.quarantine {
            logger.warning("order quarantined", metadata: ["order_id": "\(plan.orderID)", "event": "quarantined", "reason": "\(reason)"])
            return
        }
        if plan.statusChanged {
            let level: Logger.Level = plan.previousStatus == nil ? .debug : .info
            logger.log(level: level, "status changed", metadata: [
                "order_id": "\(plan.orderID)", "event": "\(plan.status.rawValue)",
                "from": "\(plan.previousStatus?.rawValue ?? "new")",
            ])
        }
        for message in plan.messages {
            logger.info("message decided", metadata: [
                "order_id": "\(message.orderID)", "event": "\(message.kind.rawValue)", "channel": "\(message.channel)",
                "step": "\(message.step)", "to": "\(Redact.address(message.recipient, channel: message.channel))",
            ])
        }
        for event in plan.events where event.event == "reminders_collapsed" {
            logger.info("missed reminder steps collapsed", metadata: ["order_id": "\(plan.orderID)", "event": "\(event.event)", "detail": "\(event.detail)"])
        }
    }
}
