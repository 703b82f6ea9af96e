import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore
import ServiceLifecycle

/// The daemon: a planning loop and a delivery loop over one order store.
///
/// Planning: claim what is due or changed → plan each order with the pure planner → apply
/// status, outbox rows, timeline and next due time in one transaction → wake delivery → sleep
/// until the earliest next due time, never longer than `poll_interval`.
/// Delivery: claim due outbox rows (leased, so a crash makes them due again with the same key)
/// → send over libcurl → record each attempt → sleep until the next retry or a wake-up.
public struct PaywatchService: Service {
    let runtime: Runtime
    /// Planning wakes delivery as soon as it decided messages.
    let deliveryWakeup = Wakeup()

    public init(runtime: Runtime) {
        self.runtime = runtime
    }

    public func run() async throws {
        let released = try await runtime.store.releaseLeases(now: runtime.clock.now())
        if released > 0 {
            runtime.logger.notice("messages left in flight by an earlier run are due again", metadata: ["count": "\(released)"])
        }
        runtime.logger.notice("paywatch started", metadata: [
            "poll_interval": "\(runtime.config.daemon.pollIntervalMs)ms",
            "channels": "\(runtime.channels.keys.sorted().joined(separator: ","))",
        ])
        try await cancelWhenGracefulShutdown {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.planningLoop() }
                group.addTask { try await self.deliveryLoop() }
                try await group.next()
                group.cancelAll()
            }
        }
        runtime.transport.shutdown()
        runtime.logger.notice("paywatch stopped")
    }

    /// One sweep and one delivery pass over everything due now (`paywatch run --once`).
    public func runOnce() async throws {
        _ = try await runtime.store.releaseLeases(now: runtime.clock.now())
        try await planDue()
        while try await deliverDue() > 0 {}
        runtime.transport.shutdown()
    }

    // MARK: Planning

    func planningLoop() async throws {
        let poll = runtime.config.daemon.pollIntervalMs
        while !Task.isCancelled {
            do {
                try await planDue()
                let now = runtime.clock.now()
                let next = try await runtime.store.nextPlanningAt() ?? (now + poll)
                try await runtime.clock.sleep(until: min(next, now + poll))
            } catch is CancellationError {
                return
            } catch {
                // The store is unavailable (disk full, locked too long): retry, never give up.
                runtime.logger.error("planning failed; retrying", metadata: ["error": "\(error)"])
                try? await runtime.clock.sleep(until: runtime.clock.now() + min(poll, 1000))
            }
        }
    }

    /// Plans every order that is due now, in batches of `batch_size`.
    func planDue() async throws {
        let batch = runtime.config.daemon.batchSize
        while !Task.isCancelled {
            let now = runtime.clock.now()
            let planner = runtime.planner
            let result = try await runtime.store.sweep(now: now, limit: batch) { planner.plan($0, now: now) }
            var decided = 0
            for plan in result.plans {
                decided += plan.messages.count
                log(plan)
            }
            if decided > 0 { deliveryWakeup.signal() }
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

    // MARK: Delivery

    func deliveryLoop() async throws {
        let poll = runtime.config.daemon.pollIntervalMs
        while !Task.isCancelled {
            do {
                if try await deliverDue() > 0 { continue }
                let now = runtime.clock.now()
                let next = try await runtime.store.nextDeliveryAt() ?? (now + poll)
                await deliveryWakeup.wait(until: min(next, now + poll), clock: runtime.clock)
            } catch is CancellationError {
                return
            } catch {
                runtime.logger.error("delivery pass failed; retrying", metadata: ["error": "\(error)"])
                try? await runtime.clock.sleep(until: runtime.clock.now() + min(poll, 1000))
            }
        }
    }

    /// Claims and sends one batch of due messages; returns how many were claimed.
    func deliverDue() async throws -> Int {
        let delivery = runtime.config.delivery
        let now = runtime.clock.now()
        let limit = max(delivery.concurrency * 16, 256)
        // The lease outlives one transfer comfortably; a crash leaves rows due again after it
        // (and at once on the next start, through releaseLeases).
        let lease = delivery.timeoutMs * 4 + 30_000
        let claim = try await runtime.store.claimDeliveries(now: now, limit: limit, leaseMs: lease)
        for item in claim.superseded {
            runtime.logger.info("message superseded", metadata: [
                "order_id": "\(item.message.orderID)", "event": "\(item.message.kind.rawValue)",
                "channel": "\(item.message.channel)", "outcome": "superseded",
            ])
        }
        guard !claim.messages.isEmpty else { return claim.superseded.count }

        var requests: [HTTPRequest] = []
        var unroutable: [DeliveryResult] = []
        for item in claim.messages {
            guard let endpoint = runtime.channels[item.message.channel] else {
                let reason = "no [channels.\(item.message.channel)] section is configured"
                unroutable.append(DeliveryResult(
                    outboxID: item.id, startedAt: now, httpStatus: nil, error: nil, durationMs: 0,
                    disposition: .dead(reason: reason), followUp: followUp(for: item, reason: reason)))
                continue
            }
            let headers = endpoint.headers(idempotencyKey: item.message.idempotencyKey)
            requests.append(HTTPRequest(id: item.id, url: endpoint.url, method: "POST", headers: headers,
                                        body: Array(item.message.body.utf8)))
        }
        let byID = Dictionary(uniqueKeysWithValues: claim.messages.map { ($0.id, $0) })
        let responses = requests.isEmpty ? [] : await runtime.transport.perform(requests)
        let finished = runtime.clock.now()
        let policy = RetryPolicy(maxAttempts: delivery.maxAttempts, baseDelayMs: delivery.retryBaseMs, maxDelayMs: delivery.retryMaxMs)
        var results = unroutable
        for response in responses {
            guard let item = byID[response.id] else { continue }
            let attempt = item.attempts + 1
            let outcome = classifyDelivery(response, attempt: attempt, policy: policy, nowMs: finished,
                                           jitter: Double.random(in: 0..<1))
            let disposition: DeliveryDisposition
            var follow: OutgoingMessage? = nil
            if !response.attempted {
                disposition = .notAttempted
            } else {
                switch outcome {
                case .delivered: disposition = .delivered
                case .retry(let at, let reason): disposition = .retry(at: at, reason: reason)
                case .dead(let reason):
                    disposition = .dead(reason: reason)
                    follow = followUp(for: item, reason: reason)
                }
            }
            results.append(DeliveryResult(
                outboxID: item.id, startedAt: finished - response.durationMs, httpStatus: response.status,
                error: response.error, durationMs: response.durationMs, disposition: disposition, followUp: follow))
        }
        for result in results {
            guard let item = byID[result.outboxID] else { continue }
            logDelivery(item, result)
        }
        // Record even while shutting down: a finished transfer must not be sent again.
        let store = runtime.store
        let recordedAt = finished
        try await Task { try await store.recordDeliveries(results, now: recordedAt) }.value
        if results.contains(where: { $0.followUp != nil }) { deliveryWakeup.signal() }
        return claim.messages.count + claim.superseded.count
    }

    func followUp(for item: OutboxMessage, reason: String) -> OutgoingMessage? {
        // A dead ops message is only logged: escalating it again would go to the same dead channel.
        guard !item.message.kind.isOps else { return nil }
        return runtime.planner.deliveryDeadMessage(for: item.message, reason: reason)
    }

    func logDelivery(_ item: OutboxMessage, _ result: DeliveryResult) {
        var metadata: Logger.Metadata = [
            "order_id": "\(item.message.orderID)", "event": "\(item.message.kind.rawValue)",
            "channel": "\(item.message.channel)", "to": "\(Redact.address(item.message.recipient, channel: item.message.channel))",
            "attempt": "\(item.attempts + 1)",
        ]
        if let status = result.httpStatus { metadata["http_status"] = "\(status)" }
        switch result.disposition {
        case .delivered:
            metadata["outcome"] = "delivered"
            runtime.logger.info("message delivered", metadata: metadata)
        case .retry(let at, let reason):
            metadata["outcome"] = "retry"
            metadata["reason"] = "\(reason)"
            metadata["retry_at"] = "\(Timestamp.iso8601(at))"
            runtime.logger.warning("delivery failed; will retry", metadata: metadata)
        case .dead(let reason):
            metadata["outcome"] = "dead"
            metadata["reason"] = "\(reason)"
            let level: Logger.Level = item.message.kind.isOps ? .critical : .error
            runtime.logger.log(level: level, "message is dead", metadata: metadata)
        case .notAttempted:
            metadata["outcome"] = "not_attempted"
            runtime.logger.debug("delivery not attempted (shutting down)", metadata: metadata)
        }
    }
}
