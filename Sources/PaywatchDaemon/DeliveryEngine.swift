import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore

/// An outbox message travelling in its channel's lane.
struct Outbound: DeliveryWork {
    let item: OutboxMessage
    var id: Int64 { item.id }
    var lane: String { item.message.channel }
}

/// Counts the daemon's loop passes. An idle daemon's counters stand still: the in-process tests
/// read them to prove that nothing spins.
public final class LoopStats: @unchecked Sendable {
    private let lock = NSLock()
    private var planning = 0
    private var delivery = 0
    private var storeOps = 0
    private var sends = 0
    private var storeNs: UInt64 = 0

    public init() {}

    /// Passes of the planning loop (one sweep of everything due, then a sleep).
    public var planningPasses: Int { lock.withLock { planning } }
    /// Events handled by the delivery engine (wake-ups, timers, completions, store results).
    public var deliveryEvents: Int { lock.withLock { delivery } }
    /// Store operations (claim and/or record, lease renewals) the delivery engine ran.
    public var storeOperations: Int { lock.withLock { storeOps } }
    /// Transfers the delivery engine started.
    public var transfersStarted: Int { lock.withLock { sends } }
    /// Wall time the engine's store operations took, waiting for the write lock included.
    public var storeMilliseconds: UInt64 { lock.withLock { storeNs / 1_000_000 } }

    func planningPass() { lock.withLock { planning += 1 } }
    func deliveryEvent() { lock.withLock { delivery += 1 } }
    func storeOperation(ns: UInt64) { lock.withLock { storeOps += 1; storeNs += ns } }
    func transferStarted() { lock.withLock { sends += 1 } }
}

/// The I/O edge of ``DeliveryStateMachine``: it turns the machine's actions into libcurl transfers,
/// store operations and one timer, and feeds every completion, store result, timer, wake-up and
/// shutdown back to it as events, one at a time, from a single ``EventQueue``.
///
/// The queue has one consumer for the life of the engine, and its wait ignores cancellation, so a
/// cancelled engine still drains; completions are pushed into it from the curl thread as each
/// transfer ends. When nothing happens, nothing runs:
/// the engine waits for the next event, and the only event it schedules itself is the timer the
/// machine asks for (the next due message, the poll, a store retry, a lease renewal while messages
/// are held).
///
/// Leases are `[store] lease` long, for claims and hand-offs alike; the machine asks for their
/// renewal (``OrderStore/renewLeases(_:until:now:)``, one call for every message it holds queued
/// or in flight) from this same loop, and a lease lost to another owner is logged once
/// (`event=lease_lost`).
final class DeliveryEngine: Sendable {
    enum Event: Sendable {
        case wakeup
        case timer(generation: UInt64)
        case completed(Outbound, HTTPResponse)
        case unroutable(Outbound, reason: String)
        case deferred(Outbound, reason: String)
        case stored(DeliveryClaim)
        case handedOver([OutboxMessage])
        case storeFailed(String)
        /// A renewal came back: the ids it could not renew.
        case renewed(lost: [Int64])
        case renewFailed(String)
        case shutdown
    }

    typealias Machine = DeliveryStateMachine<Outbound, DeliveryResult>

    private let runtime: Runtime
    private let stats: LoopStats
    private let events = EventQueue<Event>()
    /// How many freshly decided messages each lane takes from planning without a claim; the
    /// engine sets it after each batch of events, planning draws it down.
    private let room = HandOffRoom()

    /// What planning may hand over, leased, instead of leaving it to be claimed.
    let handOff: DeliveryHandOff

    /// Busy while the engine handles events; idle while it waits for one (for the watchdog).
    private let heartbeat: LoopHeartbeat?

    init(runtime: Runtime, stats: LoopStats, heartbeat: LoopHeartbeat? = nil) {
        self.runtime = runtime
        self.stats = stats
        self.heartbeat = heartbeat
        let room = self.room
        handOff = DeliveryHandOff(leaseMs: Self.configuration(runtime, finishWhenIdle: false).leaseMs,
                                  claimsReminders: runtime.config.delivery.maxPerOrderPerDay != nil) { room.take($0) }
    }

    /// New messages were decided: look for them now.
    func wake() { events.push(.wakeup) }

    /// Messages planning inserted leased to this engine.
    func handOver(_ messages: [OutboxMessage]) {
        if !messages.isEmpty { events.push(.handedOver(messages)) }
    }

    /// Stop starting transfers; finish and record the ones in flight; then `run` returns.
    func shutdown() { events.push(.shutdown) }

    static func configuration(_ runtime: Runtime, finishWhenIdle: Bool) -> Machine.Configuration {
        let delivery = runtime.config.delivery
        return Machine.Configuration(
            concurrency: delivery.concurrency,
            laneConcurrency: runtime.config.channels.compactMapValues(\.concurrency),
            knownLanes: runtime.knownChannels,
            // `[store] lease`, renewed every third of it while a message is queued or in flight
            // (the configuration makes it longer than a transfer's timeout + 5 s).
            leaseMs: runtime.config.store.leaseMs,
            // A claimed message starts within two transfer timeouts or is released and claimed again.
            maxQueueWaitMs: delivery.timeoutMs * 2,
            pollIntervalMs: runtime.config.daemon.pollIntervalMs,
            storeRetryMs: min(runtime.config.daemon.pollIntervalMs, 1000),
            finishWhenIdle: finishWhenIdle,
            laneLimits: runtime.config.channels.mapValues(Self.limits))
    }

    /// A channel's rate and circuit breaker, as its lane applies them.
    static func limits(_ channel: PaywatchConfiguration.Channel) -> LaneLimits {
        LaneLimits(
            rate: channel.rate.map { TokenBucket(count: $0.count, periodMs: $0.periodMs, burst: channel.effectiveBurst ?? 1) },
            breakerFailures: channel.breakerFailures, breakerProbeMs: channel.breakerProbeMs)
    }

    /// Runs until `shutdown()` (or, with `finishWhenIdle`, until nothing is due) and everything
    /// in flight is recorded. Call once per engine.
    ///
    /// Each wake-up handles every event that has arrived, then acts once: the transfers to start go
    /// to the transport in one hand-over (one wake-up of the curl thread), the timer is set to the
    /// machine's latest deadline. Under load this keeps thread hand-offs per message low.
    func run(finishWhenIdle: Bool) async {
        var machine = Machine(configuration: Self.configuration(runtime, finishWhenIdle: finishWhenIdle))
        var timer = TimerSlot()
        var outage = Outages()
        var pending = machine.start(now: runtime.clock.now())
        // Ops messages the engine decided (a channel paused), written by the next store operation.
        var decisions: [OutgoingMessage] = []
        defer { heartbeat?.idle() }
        while !perform(pending, timer: &timer, decisions: &decisions) {
            heartbeat?.idle()
            let first = await events.next()
            heartbeat?.busy()
            pending = []
            for event in [first] + events.drain() {
                stats.deliveryEvent()
                pending += handle(event, machine: &machine, timer: &timer, outage: &outage)
            }
            room.set(runtime.knownChannels.map { ($0, machine.room(in: $0)) })
        }
        room.set([])
        timer.cancel()
        events.close()
    }

    /// The store outages the engine logs: recording (and claiming), and renewing leases.
    private struct Outages {
        var recording = OutageLog("recording deliveries")
        var renewing = OutageLog("renewing delivery leases")
    }

    private func handle(_ event: Event, machine: inout Machine, timer: inout TimerSlot,
                        outage: inout Outages) -> [Machine.Action] {
        let now = runtime.clock.now()
        switch event {
        case .wakeup:
            return machine.wakeup(now: now)
        case .timer(let generation):
            guard timer.fired(generation) else { return [] }
            return machine.timer(now: now)
        case .completed(let work, let response):
            let result = self.result(for: work.item, response: response, now: now)
            logDelivery(work.item, result)
            var health = transferHealth(response)
            // The reason as the provider put it (secrets and the address scrubbed).
            if case .failed = health, let reason = result.outcome.reason { health = .failed(reason: reason) }
            return machine.completed(id: work.id, record: result, health: health, now: now)
        case .deferred(let work, let reason):
            // 2–3 s: soon enough for a token that is on its way, spread so that a lane's
            // messages do not all come back in the same millisecond.
            let until = now + 2_000 + Millis.random(in: 0..<1_000)
            let result = DeliveryResult(outboxID: work.id, startedAt: now, httpStatus: nil, error: reason, durationMs: 0,
                                        outcome: .deferred(untilMs: until, reason: reason), followUp: nil,
                                        attempts: work.item.attempts)
            logDelivery(work.item, result)
            return machine.completed(id: work.id, record: result, now: now)
        case .unroutable(let work, let reason):
            let result = DeliveryResult(outboxID: work.id, startedAt: now, httpStatus: nil, error: nil, durationMs: 0,
                                        outcome: .dead(reason: reason), followUp: followUp(for: work.item, reason: reason),
                                        attempts: work.item.attempts)
            logDelivery(work.item, result)
            return machine.completed(id: work.id, record: result, now: now)
        case .stored(let claim):
            outage.recording.succeeded(now: now, logger: runtime.logger)
            if !claim.staleResults.isEmpty {
                // Fencing: their leases expired and another owner took them over; its outcome stands.
                runtime.logger.warning("results dropped: the messages were no longer leased to this instance", metadata: [
                    "event": "stale_results", "count": "\(claim.staleResults.count)",
                    "outbox_ids": "\(claim.staleResults.prefix(20).map(String.init).joined(separator: ","))",
                    "lease_owner": "\(runtime.store.leaseOwner)",
                ])
            }
            for (items, outcome) in [(claim.superseded, "superseded"), (claim.suppressed, "suppressed"), (claim.capped, "capped")] {
                for item in items {
                    runtime.metrics?.message(kind: item.message.kind.rawValue, channel: item.message.channel, outcome: outcome)
                    runtime.logger.info("message \(outcome)", metadata: [
                        "order_id": "\(item.message.orderID)", "event": "\(item.message.kind.rawValue)",
                        "kind": "\(item.message.kind.rawValue)", "channel": "\(item.message.channel)", "outcome": "\(outcome)",
                        "to": "\(Redact.address(item.message.recipient, channel: item.message.channel))",
                    ])
                }
            }
            return machine.stored(
                Machine.ClaimResult(works: claim.messages.map(Outbound.init), saturatedLanes: claim.saturatedChannels,
                                    othersSaturated: claim.othersSaturated, nextDueAt: claim.nextDueAt),
                now: now)
        case .storeFailed(let error):
            // The store is unavailable (a lock held too long, a full disk): every outcome is kept
            // and recorded on the next try; sending pauses once the commit budget is used up.
            outage.recording.failed(error, now: now, logger: runtime.logger)
            return machine.storeFailed(now: now)
        case .renewed(let lost):
            outage.renewing.succeeded(now: now, logger: runtime.logger)
            return machine.renewed(lost: lost, now: now)
        case .renewFailed(let error):
            // Logged, never fatal: the leases run on (about two thirds of one are left), and
            // the renewal is tried again shortly.
            outage.renewing.failed(error, now: now, logger: runtime.logger)
            return machine.renewFailed(now: now)
        case .handedOver(let messages):
            return machine.handedOver(messages.map(Outbound.init), now: now)
        case .shutdown:
            return machine.shutdown(now: now)
        }
    }

    /// Performs the machine's actions; returns true once it is finished. `decisions` go with the
    /// next store operation (the completion that paused a channel is recorded by one, so there is
    /// always a next one).
    private func perform(_ actions: [Machine.Action], timer: inout TimerSlot, decisions: inout [OutgoingMessage]) -> Bool {
        var sends: [Outbound] = []
        var deadline: Millis?
        var finished = false
        for action in actions {
            switch action {
            case .send(let work):
                sends.append(work)
            case .store(let operation):
                let store = runtime.store
                let clock = runtime.clock
                let stats = self.stats
                let events = self.events
                let decided = decisions
                decisions.removeAll()
                var claim = operation.claim
                claim?.maxPerOrderPerDay = runtime.config.delivery.maxPerOrderPerDay
                // Paused by their channel's breaker: due at its probe time, attempts untouched.
                let paused = operation.pause.map {
                    DeliveryResult(outboxID: $0.work.id, startedAt: 0, httpStatus: nil, error: nil, durationMs: 0,
                                   outcome: .deferred(untilMs: $0.until, reason: "channel \($0.work.lane) paused: \($0.reason)"),
                                   attempts: $0.work.item.attempts)
                }
                // Unstructured, so that a cancelled engine still records what it sent; the machine
                // finishes only after this operation reported back, so nothing outlives the engine.
                Task {
                    let started = DispatchTime.now().uptimeNanoseconds
                    let result: Event
                    do {
                        result = .stored(try await store.exchangeDeliveries(
                            recording: operation.records + operation.release.map { .released($0.id, at: clock.now(), attempts: $0.item.attempts) }
                                + paused,
                            deciding: decided, claiming: claim, now: clock.now()))
                    } catch {
                        result = .storeFailed("\(error)")
                    }
                    stats.storeOperation(ns: DispatchTime.now().uptimeNanoseconds - started)
                    events.push(result)
                }
            case .renew(let ids, let until):
                renew(ids, until: until)
            case .leasesLost(let queued, let inFlight):
                // Another owner took them over after their leases expired: the queued ones are not
                // sent; the results of those in flight will be dropped as stale when recorded.
                let ids = queued.map(\.id) + inFlight
                runtime.logger.warning("leases lost: the messages were taken over by another instance", metadata: [
                    "event": "lease_lost", "count": "\(ids.count)", "queued": "\(queued.count)", "in_flight": "\(inFlight.count)",
                    "outbox_ids": "\(ids.prefix(20).map(String.init).joined(separator: ","))",
                    "lease_owner": "\(runtime.store.leaseOwner)",
                ])
            case .sleep(let at):
                deadline = at  // the last step's deadline reflects the machine's final state
            case .finished:
                finished = true
            case .paused(let pause):
                if let message = channelPaused(pause) { decisions.append(message) }
            case .resumed(let lane):
                runtime.metrics?.channelPaused(lane, false)
                runtime.logger.notice("channel resumed: a probe went through", metadata: [
                    "event": "channel_resumed", "channel": "\(lane)",
                ])
                if lane != runtime.planner.policy.opsChannel {
                    decisions.append(runtime.planner.channelResumedMessage(channel: lane, resumedAt: runtime.clock.now()))
                }
            case .probeFailed(let lane, let reason, let probeAt):
                runtime.logger.info("channel still paused: the probe failed", metadata: [
                    "event": "channel_probe_failed", "channel": "\(lane)", "reason": "\(reason)",
                    "probe_at": "\(Timestamp.iso8601(probeAt))",
                ])
            }
        }
        send(sends)
        if finished { return true }
        if let deadline { timer.schedule(deadline, clock: runtime.clock, events: events) }
        return false
    }

    /// Renews the leases of `ids` in one store call, off the loop; its answer comes back as an
    /// event. Unstructured like the store operations: the machine does not finish while a renewal
    /// runs, so nothing outlives the engine.
    private func renew(_ ids: [Int64], until: Millis) {
        let store = runtime.store
        let clock = runtime.clock
        let stats = self.stats
        let events = self.events
        Task {
            let started = DispatchTime.now().uptimeNanoseconds
            let result: Event
            do {
                result = .renewed(lost: try await store.renewLeases(ids, until: until, now: clock.now()))
            } catch {
                result = .renewFailed("\(error)")
            }
            stats.storeOperation(ns: DispatchTime.now().uptimeNanoseconds - started)
            events.push(result)
        }
    }

    /// A channel's breaker opened: logged once; returns the one message that tells ops (none when
    /// the channel is the ops channel itself: then the log line is all there is).
    private func channelPaused(_ pause: Machine.LanePause) -> OutgoingMessage? {
        runtime.metrics?.channelPaused(pause.lane, true)
        runtime.logger.warning("channel paused: its circuit breaker opened", metadata: [
            "event": "channel_paused", "channel": "\(pause.lane)", "failures": "\(pause.failures)",
            "reason": "\(pause.lastError)", "probe_at": "\(Timestamp.iso8601(pause.probeAt))",
        ])
        let planner = runtime.planner
        guard pause.lane != planner.policy.opsChannel else { return nil }
        return planner.channelPausedMessage(
            channel: pause.lane, failures: pause.failures, lastError: pause.lastError, openedAt: pause.openedAt,
            probeEveryMs: pause.probeAt - pause.openedAt)
    }

    private func send(_ works: [Outbound]) {
        guard !works.isEmpty else { return }
        var batch: [(HTTPRequest, HTTPCompletion)] = []
        batch.reserveCapacity(works.count)
        let events = self.events
        for work in works {
            stats.transferStarted()
            let message = work.item.message
            guard let endpoint = runtime.channels[message.channel] else {
                events.push(.unroutable(work, reason: "no [channels.\(message.channel)] section is configured"))
                continue
            }
            let request: HTTPRequest
            do {
                request = try endpoint.request(for: ProviderMessage(id: work.id, message))
            } catch {
                let reason = "\(endpoint.provider.name): \(error.description)"
                // A transient refusal (an access token being fetched) sent nothing: the message
                // waits a few seconds, its attempts untouched.
                events.push(error.transient ? .deferred(work, reason: reason) : .unroutable(work, reason: reason))
                continue
            }
            batch.append((request, { response in events.push(.completed(work, response)) }))
        }
        runtime.transport.send(batch)
    }

    private func result(for item: OutboxMessage, response answer: HTTPResponse, now: Millis) -> DeliveryResult {
        // A gateway's error body may echo the recipient: masked before it is stored, logged or
        // forwarded to ops (only its start is ever kept).
        var response = answer
        if !response.body.isEmpty {
            response.body = Redact.scrub(String(response.body.prefix(1024)), addresses: [item.message.recipient])
        }
        let delivery = runtime.config.delivery
        let policy = RetryPolicy(maxAttempts: delivery.maxAttempts, baseDelayMs: delivery.retryBaseMs, maxDelayMs: delivery.retryMaxMs,
                                 retryAfterMaxMs: delivery.retryAfterMaxMs)
        let verdict = runtime.channels[item.message.channel]?.provider.verdict(for: response) ?? httpVerdict(response)
        let outcome = classifyDelivery(response, verdict: verdict, attempt: item.attempts + 1, policy: policy, nowMs: now,
                                       jitter: Double.random(in: 0..<1))
        var follow: OutgoingMessage?
        if case .dead(let reason) = outcome { follow = followUp(for: item, reason: reason) }
        var suppress = false
        if case .dead = outcome, case .dead(_, true) = verdict { suppress = true }
        return DeliveryResult(outboxID: item.id, startedAt: now - response.durationMs, httpStatus: response.status,
                              error: response.error, durationMs: response.durationMs, outcome: outcome, followUp: follow,
                              suppress: suppress, attempts: item.attempts)
    }

    private func followUp(for item: OutboxMessage, reason: String) -> OutgoingMessage? {
        // A dead ops message is only logged: escalating it again would go to the same dead channel.
        guard !item.message.kind.isOps else { return nil }
        return runtime.planner.deliveryDeadMessage(for: item.message, reason: reason)
    }

    private func logDelivery(_ item: OutboxMessage, _ result: DeliveryResult) {
        var metadata: Logger.Metadata = [
            "order_id": "\(item.message.orderID)", "event": "\(item.message.kind.rawValue)",
            "kind": "\(item.message.kind.rawValue)", "delivery_id": "\(item.id)",
            "channel": "\(item.message.channel)", "to": "\(Redact.address(item.message.recipient, channel: item.message.channel))",
            "attempt": "\(item.attempts + 1)", "outcome": "\(result.outcome.name)",
        ]
        if let status = result.httpStatus { metadata["http_status"] = "\(status)" }
        runtime.metrics?.message(kind: item.message.kind.rawValue, channel: item.message.channel, outcome: result.outcome.name)
        switch result.outcome {
        case .delivered:
            runtime.logger.info("message delivered", metadata: metadata)
        case .retry(let at, let reason):
            metadata["reason"] = "\(reason)"
            metadata["retry_at"] = "\(Timestamp.iso8601(at))"
            runtime.logger.warning("delivery failed; will retry", metadata: metadata)
        case .dead(let reason):
            metadata["reason"] = "\(reason)"
            let level: Logger.Level = item.message.kind.isOps ? .critical : .error
            runtime.logger.log(level: level, "message is dead", metadata: metadata)
        case .deferred(_, let reason):
            metadata["reason"] = "\(reason)"
            runtime.logger.info("message deferred: the provider is not ready", metadata: metadata)
        case .notAttempted:
            runtime.logger.debug("delivery not attempted (shutting down)", metadata: metadata)
        }
    }
}

/// Per channel, how many messages planning may still hand over. Set by the engine (from its
/// lanes' room), drawn down by planning inside its write transactions.
final class HandOffRoom: @unchecked Sendable {
    private let lock = NSLock()
    private var room: [String: Int] = [:]

    func set(_ values: [(String, Int)]) {
        lock.withLock { room = Dictionary(values, uniquingKeysWith: { $1 }) }
    }

    func take(_ channel: String) -> Bool {
        lock.withLock {
            guard let left = room[channel], left > 0 else { return false }
            room[channel] = left - 1
            return true
        }
    }
}

/// The engine's one timer: a task sleeping until the earliest instant the machine asked for.
/// A later request while an earlier one is pending is left to the earlier one (the machine asks
/// again when it fires); each timer carries a generation so a replaced one is ignored.
private struct TimerSlot {
    private var deadline: Millis?
    private var generation: UInt64 = 0
    private var task: Task<Void, Never>?

    mutating func schedule(_ at: Millis, clock: any PaywatchClock, events: EventQueue<DeliveryEngine.Event>) {
        if let deadline, deadline <= at { return }
        task?.cancel()
        generation &+= 1
        deadline = at
        let current = generation
        task = Task {
            do { try await clock.sleep(until: at) } catch { return }
            events.push(.timer(generation: current))
        }
    }

    /// Whether a timer event is the current one (and clears it if so).
    mutating func fired(_ generation: UInt64) -> Bool {
        guard generation == self.generation, deadline != nil else { return false }
        deadline = nil
        task = nil
        return true
    }

    func cancel() { task?.cancel() }
}
