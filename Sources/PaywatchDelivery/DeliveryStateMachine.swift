import DequeModule
import PaywatchCore

/// One outbox message as the delivery state machine sees it: an id and the lane (channel) it
/// travels in. Everything else about it is the edge's business.
public protocol DeliveryWork: Sendable {
    var id: Int64 { get }
    var lane: String { get }
}

/// The rules of streaming delivery as a pure state machine, in the manner of postgres-nio's
/// `PoolStateMachine`: every event (`start`, `claimed`, `completed`, `stored`, `timer`, …) returns
/// the actions to perform (`send`, `store`, `sleep`, `finished`); the caller does the I/O and
/// reports back with the next event. No clock is read, no task is started, nothing sleeps here.
///
/// - **Slots.** At most `concurrency` transfers are in flight. As each completes its slot is
///   refilled at once: a slow answer holds one slot and nothing else.
/// - **Lanes.** Each channel is a lane with a share of the slots: its `laneConcurrency`, else a
///   fair share of what the explicit shares leave, split among the lanes that have work. A free
///   slot goes to the lane furthest below its share (least recently served on a tie), so a slow or
///   failing gateway cannot starve the others; lanes are work-conserving — a lane may use the
///   slots no other lane is waiting for, and a lane alone uses every slot. Claims are per lane
///   too, bounded by twice the lane's share, so one channel's backlog never fills the queue.
/// - **Recording.** Completed outcomes are committed by the next store operation; one operation
///   runs at a time, and each takes everything completed meanwhile (group commit), together with
///   the next claim when one is due. A completed transfer is thus committed as soon as the store
///   is free — within milliseconds.
/// - **Bounded repeats.** Transfers are started only while `in flight + completed but uncommitted`
///   stays below `concurrency + recordGroup`: if the store stalls (a held lock, a full disk),
///   sending stops instead of piling up results. A crash at any instant can therefore repeat at
///   most `concurrency + recordGroup` messages — the ones in flight or not yet committed.
/// - **Leases.** A claimed message waits in its lane at most `maxQueueWaitMs` after the claim; one
///   that waited longer is released, due again at once, and claimed afresh. A claim that returns a
///   message this machine already holds (its lease ran out while queued, in flight or being
///   recorded) is ignored.
/// - **Renewal.** While messages are queued or in flight, their leases are renewed: when the
///   oldest lease among them is `renewEveryMs` old (a third of the lease by default), one `renew`
///   action carries every held message leased at least `renewEveryMs / 2` ago (the others are
///   young enough to wait for the next one), so a lease never gets much below two thirds of its
///   length, and a burst of short transfers needs no renewal at all. One renewal runs at a time;
///   a failed one is tried again after `storeRetryMs`. A message whose lease was lost (taken over
///   by another owner after it expired) is dropped: not sent if still queued, and if in flight
///   its result will be stale; `leasesLost` reports each such message once. With nothing queued
///   or in flight there is no renewal and no timer for it. A queued message whose lease ran out by
///   the machine's reckoning (renewals failing) is released rather than sent.
/// - **Store failures** keep every outcome and retry the operation after `storeRetryMs`; nothing is dropped.
/// - **Rate.** A lane with a rate (``LaneLimits/rate``) starts a transfer only with a token from
///   its bucket, refilled from each event's `now`; without one it asks for a timer at the instant
///   the next token is due, at least `tokenTickMs` ahead (never a busy loop: a fast rate sends a
///   few per wake-up), and an idle lane asks for nothing. It claims no more than its tokens can
///   send within `maxQueueWaitMs`.
/// - **Circuit breaker.** A lane with a breaker counts consecutive failed transfers
///   (``TransferHealth/failed(reason:)``: transport errors, HTTP 5xx); any answer resets the count.
///   At `breakerFailures` it opens: `paused` is returned once, its queued messages are released due
///   at the probe time without spending an attempt, and it claims nothing until then. Then exactly
///   one message goes as a probe: an answer closes the breaker (`resumed`), a failure opens it for
///   another `breakerProbeMs`. Other lanes are not affected.
public struct DeliveryStateMachine<Work: DeliveryWork, Record: Sendable>: Sendable {
    public struct Configuration: Sendable {
        /// Transfers in flight at most (`[delivery].concurrency`).
        public var concurrency: Int
        /// Explicit per-lane shares (`[channels.NAME].concurrency`).
        public var laneConcurrency: [String: Int]
        /// The lanes claimed by name: every channel that rules or the configuration name.
        public var knownLanes: [String]
        /// How many completed outcomes may wait for their commit before sending pauses.
        public var recordGroup: Int
        /// The lease asked for with each claim, and given by each renewal.
        public var leaseMs: Millis
        /// How long a claimed message may wait in its lane before it must be released and
        /// claimed again (its lease is renewed meanwhile).
        public var maxQueueWaitMs: Millis
        /// How old the oldest lease held may get before a renewal: a third of `leaseMs` by default,
        /// which leaves two thirds of a lease for the renewal to commit.
        public var renewEveryMs: Millis
        /// The longest sleep: every lane is looked at again after it (changes made by hand).
        public var pollIntervalMs: Millis
        /// The wait before a failed store operation is tried again.
        public var storeRetryMs: Millis
        /// `paywatch run --once`: finish as soon as nothing is due, in flight or uncommitted.
        public var finishWhenIdle: Bool
        /// Per lane, its rate and circuit breaker; a lane not listed has neither.
        public var laneLimits: [String: LaneLimits]
        /// A lane waiting for tokens is looked at again no sooner than this: a fast rate (500/s)
        /// sends a dozen messages per wake-up, committed together, instead of one wake-up and one
        /// commit per token (which cost 2.3 times the CPU at 500/s). The bucket still bounds what
        /// leaves; a token is at most this late.
        public var tokenTickMs: Millis

        public init(
            concurrency: Int, laneConcurrency: [String: Int] = [:], knownLanes: [String], recordGroup: Int = 32,
            leaseMs: Millis, maxQueueWaitMs: Millis, pollIntervalMs: Millis, storeRetryMs: Millis = 1000,
            finishWhenIdle: Bool = false, laneLimits: [String: LaneLimits] = [:], tokenTickMs: Millis = 25,
            renewEveryMs: Millis? = nil
        ) {
            self.renewEveryMs = max(1, renewEveryMs ?? leaseMs / 3)
            self.laneLimits = laneLimits
            self.tokenTickMs = max(1, tokenTickMs)
            self.concurrency = max(1, concurrency)
            self.laneConcurrency = laneConcurrency.mapValues { max(1, $0) }
            self.knownLanes = knownLanes
            self.recordGroup = max(1, recordGroup)
            self.leaseMs = leaseMs
            self.maxQueueWaitMs = maxQueueWaitMs
            self.pollIntervalMs = max(1, pollIntervalMs)
            self.storeRetryMs = max(1, storeRetryMs)
            self.finishWhenIdle = finishWhenIdle
        }
    }

    /// One store operation: commit outcomes, release unsent claims, then claim more. Atomic.
    public struct StoreOperation: Sendable {
        public var records: [Record]
        /// Claimed but never sent: due again at once, no attempt counted.
        public var release: [Work]
        /// Claimed but never sent because their lane paused (its breaker opened): due again at
        /// `until` (the probe time), no attempt counted.
        public var pause: [Paused]
        public var claim: DeliveryClaimRequest?
    }

    /// A message given back unsent until its lane's probe time.
    public struct Paused: Sendable {
        public var work: Work
        public var until: Millis
        /// Why the lane paused (the failure that opened the breaker).
        public var reason: String
    }

    /// A lane's breaker opened, as the `paused` action reports it.
    public struct LanePause: Sendable, Equatable {
        public var lane: String
        /// The consecutive failures that opened it.
        public var failures: Int
        /// The last one's reason.
        public var lastError: String
        public var openedAt: Millis
        /// The first probe.
        public var probeAt: Millis

        public init(lane: String, failures: Int, lastError: String, openedAt: Millis, probeAt: Millis) {
            self.lane = lane
            self.failures = failures
            self.lastError = lastError
            self.openedAt = openedAt
            self.probeAt = probeAt
        }
    }

    /// What a claim found, lane by lane.
    public struct ClaimResult: Sendable {
        public var works: [Work]
        /// Lanes whose claim came back full: more may be due right now.
        public var saturatedLanes: Set<String>
        /// Whether the claim among unknown channels came back full.
        public var othersSaturated: Bool
        /// Per known lane, the earliest due time of its pending messages after the operation
        /// (absent: nothing pending).
        public var nextDueAt: [String: Millis]

        public init(works: [Work], saturatedLanes: Set<String> = [], othersSaturated: Bool = false, nextDueAt: [String: Millis] = [:]) {
            self.works = works
            self.saturatedLanes = saturatedLanes
            self.othersSaturated = othersSaturated
            self.nextDueAt = nextDueAt
        }
    }

    public enum Action: Sendable {
        /// Start this transfer now; report its end with `completed`.
        case send(Work)
        /// Run this store operation; report with `stored` or `storeFailed`. Never two at once.
        case store(StoreOperation)
        /// Call `timer` at this instant unless another event comes first.
        case sleep(until: Millis)
        /// Nothing is in flight or uncommitted: the caller may return.
        case finished
        /// A lane's breaker opened (once per opening, not again at each failed probe): tell ops.
        case paused(LanePause)
        /// A probe of a paused lane went through: it sends again.
        case resumed(lane: String)
        /// A probe failed: the lane stays paused until `probeAt`.
        case probeFailed(lane: String, reason: String, probeAt: Millis)
        /// Extend the leases of these messages (held queued or in flight) to `until`; report with
        /// `renewed(lost:now:)` or `renewFailed(now:)`. Never two at once.
        case renew(ids: [Int64], until: Millis)
        /// These messages' leases were lost (another owner holds them now): the queued ones were
        /// dropped, never sent; the in-flight ones' results will come back stale. Each message is
        /// reported once.
        case leasesLost(queued: [Work], inFlight: [Int64])
    }

    /// A lane's circuit breaker.
    private enum Breaker: Sendable {
        /// Sending; `failures` consecutive failed transfers so far, the last for `lastError`.
        case closed(failures: Int, lastError: String)
        /// Paused until `until`; after it, the next message sent is the probe.
        case open(until: Millis, reason: String)
        /// The probe `id` is in flight; nothing else is sent.
        case probing(id: Int64, reason: String)
    }

    private struct Queued: Sendable {
        var work: Work
        var claimedAt: Millis
        /// When its lease was taken or last renewed (as this machine knows it: the event's `now`).
        var leasedAt: Millis
    }

    /// A message in flight.
    private struct Flight: Sendable {
        var lane: String
        /// As ``Queued/leasedAt``.
        var leasedAt: Millis
        /// Its lease was lost: no longer renewed; its result will be stale.
        var lost = false
    }

    /// The renewal running now, kept until it reports back.
    private struct Renewal: Sendable {
        /// The ids it carries that are still held as they were (an id claimed again meanwhile is
        /// taken out: the report says nothing about its new lease).
        var ids: Set<Int64>
        var at: Millis
    }

    private struct Lane: Sendable {
        var queue = Deque<Queued>()
        var inFlight = 0
        /// When the lane may have due messages to claim; nil: none known (the poll looks again).
        var readyAt: Millis?
        var lastServed: UInt64 = 0
        var bucket: TokenBucket?
        var breaker = Breaker.closed(failures: 0, lastError: "")

        /// Paused by its breaker: open and before the probe time, or its probe in flight.
        func isPaused(now: Millis) -> Bool {
            switch breaker {
            case .closed: return false
            case .open(let until, _): return until > now
            case .probing: return true
            }
        }

        /// Messages waiting in the lane, or known to be due and not yet claimed (a paused lane
        /// waits for nothing).
        func hasDemand(now: Millis) -> Bool {
            !isPaused(now: now) && (!queue.isEmpty || (readyAt.map { $0 <= now } ?? false))
        }
        func isActive(now: Millis) -> Bool { inFlight > 0 || hasDemand(now: now) }
    }

    private enum Phase: Sendable { case idle, running, draining, finished }

    /// The store operation running now, kept until it reports back.
    private struct Commit: Sendable {
        var completed: [(id: Int64, record: Record)]
        var release: [Work]
        var pause: [Paused]
        var claim: DeliveryClaimRequest?
    }

    public let configuration: Configuration
    private var phase = Phase.idle
    private var lanes: [String: Lane] = [:]
    private let known: Set<String>
    private var othersReadyAt: Millis?
    /// Every message held: queued, in flight, or awaiting its commit.
    private var held: Set<Int64> = []
    private var inFlight: [Int64: Flight] = [:]
    private var completed: [(id: Int64, record: Record)] = []
    private var toRelease: [Work] = []
    private var toPause: [Paused] = []
    /// Actions decided outside `step` (a breaker opening), returned by the next one.
    private var notices: [Action] = []
    private var committing: Commit?
    private var storeRetryAt: Millis?
    private var renewal: Renewal?
    /// When to look for leases to renew (no earlier than the oldest held lease is `renewEveryMs`
    /// old); nil when nothing is held.
    private var renewAt: Millis?
    private var pollAt: Millis = 0
    private var served: UInt64 = 0
    /// The `now` of the latest event.
    private var now: Millis = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        known = Set(configuration.knownLanes)
        for name in configuration.knownLanes { lanes[name] = Self.newLane(name, configuration) }
    }

    private static func newLane(_ name: String, _ configuration: Configuration) -> Lane {
        var lane = Lane()
        lane.bucket = configuration.laneLimits[name]?.rate
        return lane
    }

    // MARK: Introspection (tests, status)

    /// Transfers started and not yet completed.
    public var inFlightCount: Int { inFlight.count }
    /// Outcomes completed and not yet committed (waiting, or in the running store operation).
    public var uncommittedCount: Int { completed.count + (committing?.completed.count ?? 0) }
    /// Claimed messages waiting for a slot.
    public var queuedCount: Int { lanes.values.reduce(0) { $0 + $1.queue.count } }
    public var isFinished: Bool { phase == .finished }
    /// The lanes whose breaker is open or probing now (`paywatch status`, the metrics gauge).
    public var pausedLanes: [String] {
        lanes.filter { if case .closed = $0.value.breaker { return false } else { return true } }.keys.sorted()
    }

    /// The share of the slots `lane` gets while it has work (it may borrow idle ones beyond it).
    public func share(of lane: String) -> Int {
        if let explicit = configuration.laneConcurrency[lane] { return explicit }
        var explicitSum = 0
        var implicitCount = 1  // `lane` itself
        for (name, other) in lanes where name != lane && other.isActive(now: now) {
            if let explicit = configuration.laneConcurrency[name] { explicitSum += explicit } else { implicitCount += 1 }
        }
        return max(1, (configuration.concurrency - explicitSum) / implicitCount)
    }

    // MARK: Events

    /// The first event: every lane is claimed from at once.
    public mutating func start(now: Millis) -> [Action] {
        guard phase == .idle else { return [] }
        phase = .running
        for name in lanes.keys { lanes[name]!.readyAt = now }
        othersReadyAt = now
        pollAt = now + configuration.pollIntervalMs
        return step(now: now)
    }

    /// New messages were decided (the planner committed them): claim from every lane.
    public mutating func wakeup(now: Millis) -> [Action] {
        for name in known { lanes[name]!.readyAt = now }
        return step(now: now)
    }

    /// The instant of the last `sleep` came (or a spurious wake-up: nothing happens before its time).
    public mutating func timer(now: Millis) -> [Action] {
        if now >= pollAt {
            for name in known { lanes[name]!.readyAt = now }
            othersReadyAt = now
            pollAt = now + configuration.pollIntervalMs
        }
        return step(now: now)
    }

    /// The transfer of message `id` ended; `record` is what to commit for it, `health` what it
    /// says about its channel (for the lane's circuit breaker).
    public mutating func completed(id: Int64, record: Record, health: TransferHealth = .unknown, now: Millis) -> [Action] {
        guard let lane = inFlight.removeValue(forKey: id)?.lane else { return step(now: now) }
        lanes[lane]!.inFlight -= 1
        completed.append((id, record))
        judge(lane: lane, id: id, health: health, now: now)
        return step(now: now)
    }

    /// The breaker's rules for one completed transfer of `lane`.
    private mutating func judge(lane name: String, id: Int64, health: TransferHealth, now: Millis) {
        guard let threshold = configuration.laneLimits[name]?.breakerFailures,
              let probeMs = configuration.laneLimits[name]?.breakerProbeMs else { return }
        switch (lanes[name]!.breaker, health) {
        case (.closed, .answered):
            lanes[name]!.breaker = .closed(failures: 0, lastError: "")
        case (.closed(let failures, _), .failed(let reason)):
            if failures + 1 >= threshold {
                open(name, until: now.saturatingAdd(probeMs), reason: reason)
                notices.append(.paused(LanePause(lane: name, failures: failures + 1, lastError: reason, openedAt: now,
                                                 probeAt: now.saturatingAdd(probeMs))))
            } else {
                lanes[name]!.breaker = .closed(failures: failures + 1, lastError: reason)
            }
        case (.probing(let probe, _), .answered) where probe == id:
            lanes[name]!.breaker = .closed(failures: 0, lastError: "")
            lanes[name]!.readyAt = now
            notices.append(.resumed(lane: name))
        case (.probing(let probe, _), .failed(let reason)) where probe == id:
            open(name, until: now.saturatingAdd(probeMs), reason: reason)
            notices.append(.probeFailed(lane: name, reason: reason, probeAt: now.saturatingAdd(probeMs)))
        case (.probing(let probe, let reason), .unknown) where probe == id:
            // Nothing was sent (no route, a provider not ready): the next message probes.
            lanes[name]!.breaker = .open(until: now, reason: reason)
        default:
            // A transfer that was in flight when the breaker opened: the probe decides.
            break
        }
    }

    /// Opens `lane`'s breaker until `until`: its queued messages go back unsent, due then.
    private mutating func open(_ name: String, until: Millis, reason: String) {
        lanes[name]!.breaker = .open(until: until, reason: reason)
        lanes[name]!.readyAt = until
        for queued in lanes[name]!.queue { toPause.append(Paused(work: queued.work, until: until, reason: reason)) }
        lanes[name]!.queue.removeAll()
    }

    /// The running store operation committed; `claim` is what its claim found (nil if it had none).
    public mutating func stored(_ claim: ClaimResult?, now: Millis) -> [Action] {
        guard let op = committing else { return step(now: now) }
        committing = nil
        storeRetryAt = nil
        for item in op.completed { held.remove(item.id) }
        for work in op.release { held.remove(work.id) }
        for paused in op.pause { held.remove(paused.work.id) }
        if let request = op.claim, let claim {
            for work in claim.works where !held.contains(work.id) {
                held.insert(work.id)
                if phase == .running {
                    enqueue(work, now: now)
                } else {
                    // A claim that was running when shutdown came: what it leased goes back unsent
                    // (kept queued, it would stay leased to a process that is gone).
                    toRelease.append(work)
                }
            }
            for name in request.perChannel.keys {
                if claim.saturatedLanes.contains(name) {
                    lanes[name]?.readyAt = now
                } else if let next = claim.nextDueAt[name] {
                    // A claim that found less than it asked for leaves nothing due; a due time in
                    // the past would be rows it cannot take (guarded, so it never spins).
                    lanes[name]?.readyAt = next > now ? next : now + configuration.pollIntervalMs
                } else {
                    lanes[name]?.readyAt = nil
                }
            }
            if request.others > 0 { othersReadyAt = claim.othersSaturated ? now : nil }
        }
        if let claim {
            // Outcomes committed by this operation may have made messages due in other lanes
            // (a message released or retried at once, a `delivery_dead` to ops).
            for (name, next) in claim.nextDueAt where op.claim?.perChannel[name] == nil && known.contains(name) {
                lanes[name]!.readyAt = min(lanes[name]!.readyAt ?? next, next)
            }
        }
        return step(now: now)
    }

    /// Messages leased to this machine outside a claim (planning hands freshly decided ones over):
    /// queued in their lanes like claimed ones; released at once when shutting down.
    public mutating func handedOver(_ works: [Work], now: Millis) -> [Action] {
        for work in works where !held.contains(work.id) {
            held.insert(work.id)
            if phase == .running || phase == .idle {
                enqueue(work, now: now)
            } else {
                toRelease.append(work)
            }
        }
        return phase == .idle ? [] : step(now: now)
    }

    /// Queues `work` in its lane; a paused lane gives it back at once, due at its probe time.
    private mutating func enqueue(_ work: Work, now: Millis) {
        if lanes[work.lane] == nil { lanes[work.lane] = Self.newLane(work.lane, configuration) }
        if case .open(let until, let reason) = lanes[work.lane]!.breaker, until > now {
            toPause.append(Paused(work: work, until: until, reason: reason))
        } else if case .probing(_, let reason) = lanes[work.lane]!.breaker {
            // Due again shortly: the probe's answer decides whether the lane sends.
            toPause.append(Paused(work: work, until: now.saturatingAdd(configuration.laneLimits[work.lane]?.breakerProbeMs ?? 0),
                                  reason: reason))
        } else {
            lanes[work.lane]!.queue.append(Queued(work: work, claimedAt: now, leasedAt: now))
            renewal?.ids.remove(work.id)
            renewAt = min(renewAt ?? Millis.max, now.saturatingAdd(configuration.renewEveryMs))
        }
    }

    /// How many more messages `lane` would take now: its claim target minus what it holds queued.
    /// Planning hands over at most that many.
    public func room(in lane: String) -> Int {
        guard phase == .running else { return 0 }
        return max(0, target(of: lane, now: now) - (lanes[lane]?.queue.count ?? 0))
    }

    /// How many messages `lane` wants to hold queued: two shares (one to keep its slots busy, one
    /// waiting), no more than its tokens can send within `maxQueueWaitMs` (at least one); one to
    /// probe with once a paused lane's probe time came; none while paused.
    private func target(of name: String, now: Millis) -> Int {
        guard let lane = lanes[name] else { return 2 * share(of: name) }
        switch lane.breaker {
        case .probing: return 0
        case .open(let until, _): return until > now ? 0 : 1
        case .closed: break
        }
        var target = 2 * share(of: name)
        if var bucket = lane.bucket {
            target = min(target, max(1, bucket.tokens(within: configuration.maxQueueWaitMs, now: now)))
        }
        return target
    }

    /// The running store operation failed: everything it carried is kept and tried again after
    /// `storeRetryMs` (sending pauses once the commit budget is used up).
    public mutating func storeFailed(now: Millis) -> [Action] {
        guard let op = committing else { return step(now: now) }
        committing = nil
        completed.insert(contentsOf: op.completed, at: 0)
        toRelease.insert(contentsOf: op.release, at: 0)
        toPause.insert(contentsOf: op.pause, at: 0)
        storeRetryAt = now + configuration.storeRetryMs
        return step(now: now)
    }

    /// The running renewal committed; `lost` are the ids it could not renew. Lost messages still
    /// queued are dropped (never sent), lost ones in flight are marked (their result will be
    /// stale) and both are reported once by `leasesLost`; the others' leases are counted from the
    /// renewal.
    public mutating func renewed(lost: [Int64], now: Millis) -> [Action] {
        guard let done = renewal else { return step(now: now) }
        renewal = nil
        let lost = Set(lost).intersection(done.ids)
        var dropped: [Work] = []
        var lostInFlight: [Int64] = []
        for name in lanes.keys where !lanes[name]!.queue.isEmpty {
            var kept = Deque<Queued>()
            for var queued in lanes[name]!.queue {
                if lost.contains(queued.work.id) {
                    held.remove(queued.work.id)
                    dropped.append(queued.work)
                    continue
                }
                if done.ids.contains(queued.work.id) { queued.leasedAt = max(queued.leasedAt, done.at) }
                kept.append(queued)
            }
            lanes[name]!.queue = kept
        }
        for id in done.ids {
            guard var flight = inFlight[id], !flight.lost else { continue }
            if lost.contains(id) {
                flight.lost = true
                lostInFlight.append(id)
            } else {
                flight.leasedAt = max(flight.leasedAt, done.at)
            }
            inFlight[id] = flight
        }
        if !dropped.isEmpty || !lostInFlight.isEmpty {
            notices.append(.leasesLost(queued: dropped, inFlight: lostInFlight.sorted()))
        }
        renewAt = oldestLease().map { $0.saturatingAdd(configuration.renewEveryMs) }
        return step(now: now)
    }

    /// The running renewal failed: the leases run on; it is tried again after `storeRetryMs`.
    public mutating func renewFailed(now: Millis) -> [Action] {
        guard renewal != nil else { return step(now: now) }
        renewal = nil
        renewAt = now.saturatingAdd(configuration.storeRetryMs)
        return step(now: now)
    }

    /// Graceful shutdown: nothing new starts; claimed messages are released; transfers in flight
    /// finish and are committed; then `finished`.
    public mutating func shutdown(now: Millis) -> [Action] {
        guard phase == .running || phase == .idle else { return [] }
        phase = .draining
        for name in lanes.keys {
            toRelease.append(contentsOf: lanes[name]!.queue.map(\.work))
            lanes[name]!.queue.removeAll()
        }
        return step(now: now)
    }

    // MARK: Decisions

    private mutating func step(now: Millis) -> [Action] {
        self.now = max(self.now, now)
        var actions: [Action] = notices
        notices.removeAll()
        if phase == .running {
            fillSlots(now: now, into: &actions)
        }
        if committing == nil, storeRetryAt.map({ now >= $0 }) ?? true {
            // While running, every operation carries a claim request, if only to learn where each
            // lane stands afterwards (its limits are empty when nothing needs claiming).
            let claim = phase == .running ? claimRequest(now: now) : nil
            let claims = claim.map { !$0.perChannel.isEmpty || $0.others > 0 } ?? false
            if !completed.isEmpty || !toRelease.isEmpty || !toPause.isEmpty || claims {
                committing = Commit(completed: completed, release: toRelease, pause: toPause, claim: claim)
                actions.append(.store(StoreOperation(records: completed.map(\.record), release: toRelease, pause: toPause,
                                                     claim: claim)))
                completed.removeAll()
                toRelease.removeAll()
                toPause.removeAll()
            }
        }
        renewLeases(now: now, into: &actions)
        let idle = inFlight.isEmpty && completed.isEmpty && toRelease.isEmpty && toPause.isEmpty && committing == nil
            && renewal == nil
        if phase == .draining && idle {
            phase = .finished
        } else if phase == .running && configuration.finishWhenIdle && idle && queuedCount == 0 && storeRetryAt == nil {
            phase = .finished
        }
        if phase == .finished {
            actions.append(.finished)
            return actions
        }
        actions.append(.sleep(until: nextDeadline(now: now)))
        return actions
    }

    /// Starts transfers while slots and the commit budget allow, lane furthest below its share first.
    private mutating func fillSlots(now: Millis, into actions: inout [Action]) {
        let budget = configuration.concurrency + configuration.recordGroup
        while inFlight.count < configuration.concurrency, inFlight.count + uncommittedCount < budget,
              let name = nextLane(now: now) {
            let queued = lanes[name]!.queue.removeFirst()
            if now - queued.claimedAt > configuration.maxQueueWaitMs || now - queued.leasedAt >= configuration.leaseMs {
                // It waited too long, or its lease ran out (renewals failing): released, claimed afresh.
                toRelease.append(queued.work)
                continue
            }
            if lanes[name]!.bucket != nil { _ = lanes[name]!.bucket!.take(now: now) }
            if case .open(_, let reason) = lanes[name]!.breaker {
                // The probe time came (a paused lane is never picked before it): this one probes.
                lanes[name]!.breaker = .probing(id: queued.work.id, reason: reason)
            }
            served += 1
            lanes[name]!.inFlight += 1
            lanes[name]!.lastServed = served
            inFlight[queued.work.id] = Flight(lane: name, leasedAt: queued.leasedAt)
            actions.append(.send(queued.work))
        }
    }

    /// The lane with queued work that is furthest below its share. A lane already at its share
    /// borrows a free slot only when no lane below its share is waiting for a claim to return:
    /// otherwise a slow lane would take every slot a fast one frees between two of its claims.
    private mutating func nextLane(now: Millis) -> String? {
        var best: (name: String, inFlight: Int, share: Int, served: UInt64)?
        for (name, lane) in lanes where !lane.queue.isEmpty && canSend(name, now: now) {
            let share = self.share(of: name)
            guard let current = best else {
                best = (name, lane.inFlight, share, lane.lastServed)
                continue
            }
            // inFlight / share, compared without division.
            let lhs = lane.inFlight * current.share
            let rhs = current.inFlight * share
            if lhs < rhs || (lhs == rhs && lane.lastServed < current.served) {
                best = (name, lane.inFlight, share, lane.lastServed)
            }
        }
        guard let best else { return nil }
        if best.inFlight >= best.share {
            for (name, lane) in lanes where name != best.name && lane.queue.isEmpty && lane.hasDemand(now: now)
                && lane.inFlight < share(of: name) {
                return nil
            }
        }
        return best.name
    }

    /// What to claim now: for each lane that may have due messages, up to two shares (one to keep
    /// its slots busy, one waiting) minus what its queue holds — when the queue ran low, or
    /// alongside a commit that runs anyway.
    private func claimRequest(now: Millis) -> DeliveryClaimRequest {
        var perChannel: [String: Int] = [:]
        for name in known {
            let lane = lanes[name]!
            guard let readyAt = lane.readyAt, readyAt <= now else { continue }
            let target = self.target(of: name, now: now)
            let deficit = target - lane.queue.count
            guard deficit > 0 else { continue }
            if lane.queue.isEmpty || deficit * 2 >= target || !completed.isEmpty || !toRelease.isEmpty {
                perChannel[name] = deficit
            }
        }
        var others = 0
        if let readyAt = othersReadyAt, readyAt <= now {
            let queuedOthers = lanes.filter { !known.contains($0.key) }.reduce(0) { $0 + $1.value.queue.count }
            others = max(0, configuration.concurrency - queuedOthers)
        }
        return DeliveryClaimRequest(perChannel: perChannel, others: others, knownChannels: configuration.knownLanes.sorted(),
                                    leaseMs: configuration.leaseMs)
    }

    /// The next instant anything is due: a lane's messages, the poll, a store retry. Always
    /// after `now`: what is due now was done by this step or waits for an event.
    private mutating func nextDeadline(now: Millis) -> Millis {
        var deadline = pollAt > now ? pollAt : now + configuration.pollIntervalMs
        if phase == .running {
            for (name, lane) in lanes {
                if let at = lane.readyAt, at > now { deadline = min(deadline, at) }
                if case .open(let until, _) = lane.breaker, until > now { deadline = min(deadline, until) }
                // A lane with messages waiting for a token looks again when the next one is due.
                if !lane.queue.isEmpty, !lane.isPaused(now: now), lanes[name]!.bucket != nil {
                    let at = max(lanes[name]!.bucket!.nextTokenAt(now: now), now + configuration.tokenTickMs)
                    deadline = min(deadline, at)
                }
            }
            if let at = othersReadyAt, at > now { deadline = min(deadline, at) }
        }
        if committing == nil, let at = storeRetryAt, at > now { deadline = min(deadline, at) }
        if renewal == nil, let at = renewAt, at > now { deadline = min(deadline, at) }
        return deadline
    }

    /// The renewal rule (see the type's documentation): when `renewAt` came and no renewal runs,
    /// renew every held lease at least half an interval old, and look again when the youngest
    /// left out reaches a whole one. Nothing held: nothing to renew, no deadline.
    private mutating func renewLeases(now: Millis, into actions: inout [Action]) {
        guard renewal == nil, renewAt != nil else { return }
        if inFlight.isEmpty, lanes.values.allSatisfy({ $0.queue.isEmpty }) {
            renewAt = nil  // nothing held any more: no timer for it
            return
        }
        guard let at = renewAt, at <= now else { return }
        let every = configuration.renewEveryMs
        let cutoff = now - every / 2
        var due: [Int64] = []
        var youngest: Millis?
        func consider(_ id: Int64, _ leasedAt: Millis) {
            if leasedAt <= cutoff {
                due.append(id)
            } else {
                youngest = min(youngest ?? leasedAt, leasedAt)
            }
        }
        for lane in lanes.values {
            for queued in lane.queue { consider(queued.work.id, queued.leasedAt) }
        }
        for (id, flight) in inFlight where !flight.lost { consider(id, flight.leasedAt) }
        renewAt = youngest.map { $0.saturatingAdd(every) }
        guard !due.isEmpty else { return }
        due.sort()
        renewal = Renewal(ids: Set(due), at: now)
        actions.append(.renew(ids: due, until: now.saturatingAdd(configuration.leaseMs)))
    }

    /// The oldest lease among the messages held queued or in flight (not lost); nil when none.
    private func oldestLease() -> Millis? {
        var oldest: Millis?
        for lane in lanes.values {
            for queued in lane.queue { oldest = min(oldest ?? queued.leasedAt, queued.leasedAt) }
        }
        for flight in inFlight.values where !flight.lost { oldest = min(oldest ?? flight.leasedAt, flight.leasedAt) }
        return oldest
    }
}

extension DeliveryStateMachine {
    /// Whether `lane` may start a transfer now: not paused by its breaker, and a token in its bucket.
    private mutating func canSend(_ name: String, now: Millis) -> Bool {
        guard let lane = lanes[name], !lane.isPaused(now: now) else { return false }
        guard lane.bucket != nil else { return true }
        return lanes[name]!.bucket!.available(now: now) > 0
    }
}
