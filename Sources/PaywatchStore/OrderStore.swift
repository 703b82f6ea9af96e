import PaywatchCore

/// A message in the outbox, claimed for delivery.
public struct OutboxMessage: Sendable, Hashable {
    public var id: Int64
    public var message: OutgoingMessage
    /// Attempts made before this one.
    public var attempts: Int

    public init(id: Int64, message: OutgoingMessage, attempts: Int) {
        self.id = id
        self.message = message
        self.attempts = attempts
    }
}

/// One delivery attempt's result, as the store records it.
public struct DeliveryResult: Sendable, Hashable {
    public var outboxID: Int64
    public var startedAt: Millis
    public var httpStatus: Int?
    public var error: String?
    public var durationMs: Int64
    public var outcome: DeliveryOutcome
    /// An ops message to decide with this result (`delivery_dead`), idempotent by its key.
    public var followUp: OutgoingMessage?
    /// A dead outcome that blames the address itself (an invalid number, an unregistered push
    /// token): the address goes into `suppressions`, and nothing more is sent to it on its channel.
    public var suppress: Bool
    /// The message's ``OutboxMessage/attempts`` when it was claimed or handed off: the attempt
    /// number of the lease this result belongs to. When set, the result is recorded only if the
    /// message is still leased to this store's owner *and* its attempts still equal this (a
    /// fencing token: a late result of an earlier lease of the same owner is stale, see
    /// ``OrderStore/exchangeDeliveries(recording:deciding:claiming:now:)``); nil fences by owner only.
    public var attempts: Int?

    public init(
        outboxID: Int64, startedAt: Millis, httpStatus: Int?, error: String?, durationMs: Int64,
        outcome: DeliveryOutcome, followUp: OutgoingMessage? = nil, suppress: Bool = false, attempts: Int? = nil
    ) {
        self.attempts = attempts
        self.suppress = suppress
        self.outboxID = outboxID
        self.startedAt = startedAt
        self.httpStatus = httpStatus
        self.error = error
        self.durationMs = durationMs
        self.outcome = outcome
        self.followUp = followUp
    }

    /// A claimed message given back unsent (shutdown, or it waited past its lease); `attempts` as
    /// in ``attempts``: the claim's attempt number, for fencing.
    public static func released(_ outboxID: Int64, at now: Millis, attempts: Int? = nil) -> DeliveryResult {
        DeliveryResult(outboxID: outboxID, startedAt: now, httpStatus: nil, error: nil, durationMs: 0, outcome: .notAttempted,
                       attempts: attempts)
    }
}

/// What one delivery claim returned.
public struct DeliveryClaim: Sendable {
    /// Leased to the caller until `now + leaseMs`; record a result (or release) for each.
    public var messages: [OutboxMessage]
    /// Dropped because the order moved on (a reminder for an order now paid): recorded as
    /// superseded on the timeline, never sent.
    public var superseded: [OutboxMessage]
    /// Dropped because their address is in `suppressions` (an unsubscribe, a refusal for good):
    /// recorded as suppressed on the timeline, never sent.
    public var suppressed: [OutboxMessage] = []
    /// Reminders dropped because their order's customer had their daily cap of messages
    /// (`[delivery] max_per_order_per_day`): recorded as capped on the timeline, never sent.
    public var capped: [OutboxMessage] = []
    /// Channels whose claim came back full: more may be due now.
    public var saturatedChannels: Set<String>
    /// Whether the claim among unknown channels came back full.
    public var othersSaturated: Bool
    /// Per known channel, the earliest `due_at` among its pending messages after the operation
    /// (leased ones count with their lease expiry); absent when it has none, and not reported for
    /// saturated channels (they have messages due now).
    public var nextDueAt: [String: Millis]
    /// Outbox ids of recorded results that were dropped, stale: the message was no longer leased
    /// to this store's ``OrderStore/leaseOwner`` (its lease expired and another owner claimed it,
    /// or its result was recorded before), or its attempts no longer equal the result's
    /// ``DeliveryResult/attempts`` (a later lease's result was recorded). The message keeps the
    /// other outcome.
    public var staleResults: [Int64] = []

    public init(messages: [OutboxMessage] = [], superseded: [OutboxMessage] = [], suppressed: [OutboxMessage] = [],
                capped: [OutboxMessage] = [], saturatedChannels: Set<String> = [], othersSaturated: Bool = false,
                nextDueAt: [String: Millis] = [:]) {
        self.messages = messages
        self.superseded = superseded
        self.suppressed = suppressed
        self.capped = capped
        self.saturatedChannels = saturatedChannels
        self.othersSaturated = othersSaturated
        self.nextDueAt = nextDueAt
    }
}

/// Freshly decided messages handed straight to delivery by a sweep, instead of being claimed.
public struct DeliveryHandOff: Sendable {
    /// The lease a handed-off message is inserted with.
    public var leaseMs: Millis
    /// Asked once per new message, inside the sweep's write transaction: true to take it.
    public var take: @Sendable (_ channel: String) -> Bool
    /// Reminders are never handed over but left to the claim, which applies
    /// `[delivery] max_per_order_per_day` (set when there is a cap).
    public var claimsReminders: Bool

    public init(leaseMs: Millis, claimsReminders: Bool = false, take: @escaping @Sendable (_ channel: String) -> Bool) {
        self.leaseMs = leaseMs
        self.claimsReminders = claimsReminders
        self.take = take
    }
}

/// A stored ``ReconcileRequest``, claimed for asking.
public struct ReconcileTask: Sendable, Hashable {
    public var id: Int64
    public var request: ReconcileRequest
    public init(id: Int64, request: ReconcileRequest) {
        self.id = id
        self.request = request
    }
}

/// What the payment provider said about a stalled attempt.
public struct ReconcileOutcome: Sendable, Hashable {
    public enum Answer: Sendable, Hashable {
        /// `succeeded` or `failed` (with the provider's reason, if any): the payments row is updated.
        case definite(PaymentStatus, failureReason: String?)
        /// Anything else (another value, an HTTP error, a timeout): the fallback goes to ops.
        case unresolved
    }
    public var task: ReconcileTask
    public var answer: Answer
    /// For the timeline: the provider's value and the HTTP status, or the error; clipped, no secrets.
    public var detail: String
    public init(task: ReconcileTask, answer: Answer, detail: String) {
        self.task = task
        self.answer = answer
        self.detail = detail
    }
}

/// One sweep's outcome.
public struct SweepResult: Sendable {
    public var plans: [Plan]
    /// Orders claimed; when it equals the limit there may be more due right now.
    public var claimed: Int
    /// Optionally, when planning and reconciliation are next due as the sweep left them: what
    /// ``OrderStore/nextPlanningAt()`` and ``OrderStore/nextReconcileAt()`` would answer then, or
    /// earlier times (an earlier time only costs a look that finds nothing), never later ones. A
    /// store that learns them in the same round trip as its writes says so, and the daemon asks
    /// neither. Nil: ask.
    public var nextDue: NextDueTimes?

    public init(plans: [Plan] = [], claimed: Int = 0, nextDue: NextDueTimes? = nil) {
        self.plans = plans
        self.claimed = claimed
        self.nextDue = nextDue
    }
}

/// When planning and reconciliation are next due (nil: nothing is).
public struct NextDueTimes: Sendable, Equatable {
    public var planning: Millis?
    public var reconcile: Millis?

    public init(planning: Millis?, reconcile: Millis?) {
        self.planning = planning
        self.reconcile = reconcile
    }
}

/// Summary row for `paywatch orders list`.
public struct OrderSummary: Sendable, Hashable, Codable {
    public var id: String
    public var status: String
    public var amountDue: Int64?
    public var amountPaid: Int64
    public var currency: String
    public var nextDueAt: Millis?
    public var quarantine: String?
    /// Money the shop must return (minor units of `currency`); 0 when nothing is owed.
    public var needsRefund: Int64

    public init(id: String, status: String, amountDue: Int64?, amountPaid: Int64, currency: String, nextDueAt: Millis? = nil,
                quarantine: String? = nil, needsRefund: Int64 = 0) {
        self.id = id
        self.status = status
        self.amountDue = amountDue
        self.amountPaid = amountPaid
        self.currency = currency
        self.nextDueAt = nextDueAt
        self.quarantine = quarantine
        self.needsRefund = needsRefund
    }
}

/// One line of an order's timeline: an event of `pw_events`, or a decision read from the outbox.
public struct TimelineEntry: Sendable, Hashable, Codable {
    public var at: Millis
    public var event: String
    public var detail: String

    public init(at: Millis, event: String, detail: String) {
        self.at = at
        self.event = event
        self.detail = detail
    }
}

/// One recorded delivery attempt of a message (`pw_attempts`), numbered from 1.
public struct AttemptRecord: Sendable, Hashable, Codable {
    public var attempt: Int
    public var at: Millis
    public var httpStatus: Int?
    public var error: String?
    public var durationMs: Int64
    public var outcome: AttemptOutcome

    public init(attempt: Int, at: Millis, httpStatus: Int? = nil, error: String? = nil, durationMs: Int64,
                outcome: AttemptOutcome) {
        self.attempt = attempt
        self.at = at
        self.httpStatus = httpStatus
        self.error = error
        self.durationMs = durationMs
        self.outcome = outcome
    }
}

/// One outbox message of an order, as `paywatch orders show` prints it.
public struct DeliveryRecord: Sendable, Hashable, Codable {
    public var idempotencyKey: String
    public var kind: String
    public var step: Int
    public var channel: String
    /// Masked address.
    public var to: String
    /// As stored: never ``OutboxState/inFlight`` (a leased message is `pending`).
    public var state: OutboxState
    public var createdAt: Millis
    public var dueAt: Millis
    public var lastError: String?
    public var attempts: [AttemptRecord]
    /// Decided inside the quiet hours: not delivered before this instant, their end.
    public var heldUntil: Millis? = nil

    public init(idempotencyKey: String, kind: String, step: Int, channel: String, to: String, state: OutboxState,
                createdAt: Millis, dueAt: Millis, lastError: String? = nil, attempts: [AttemptRecord] = [],
                heldUntil: Millis? = nil) {
        self.idempotencyKey = idempotencyKey
        self.kind = kind
        self.step = step
        self.channel = channel
        self.to = to
        self.state = state
        self.createdAt = createdAt
        self.dueAt = dueAt
        self.lastError = lastError
        self.attempts = attempts
        self.heldUntil = heldUntil
    }
}

/// Everything `paywatch orders show` prints about one order.
public struct OrderDetail: Sendable {
    public var orderID: String
    public var snapshot: OrderSnapshot
    public var trackedStatus: OrderStatus?
    public var amountPaid: Int64
    public var nextDueAt: Millis?
    public var quarantine: String?
    /// Money the shop must return; 0 when nothing is owed.
    public var needsRefund: Int64
    public var timeline: [TimelineEntry]
    public var deliveries: [DeliveryRecord]
    /// When retention last pruned the order's history (timeline, deliveries, attempts before
    /// then are gone), and under which `[retention] keep`; nil when it never did.
    public var prunedAt: Millis? = nil
    public var prunedKeepMs: Millis? = nil

    public init(orderID: String, snapshot: OrderSnapshot, trackedStatus: OrderStatus? = nil, amountPaid: Int64 = 0,
                nextDueAt: Millis? = nil, quarantine: String? = nil, needsRefund: Int64 = 0, timeline: [TimelineEntry] = [],
                deliveries: [DeliveryRecord] = [], prunedAt: Millis? = nil, prunedKeepMs: Millis? = nil) {
        self.orderID = orderID
        self.snapshot = snapshot
        self.trackedStatus = trackedStatus
        self.amountPaid = amountPaid
        self.nextDueAt = nextDueAt
        self.quarantine = quarantine
        self.needsRefund = needsRefund
        self.timeline = timeline
        self.deliveries = deliveries
        self.prunedAt = prunedAt
        self.prunedKeepMs = prunedKeepMs
    }
}

/// What `paywatch report` shows: the state of the orders and what was sent over a period.
public struct Report: Sendable, Hashable, Codable {
    public struct MessageCount: Sendable, Hashable, Codable {
        public var kind: String
        public var channel: String
        /// As stored: never ``OutboxState/inFlight``.
        public var state: OutboxState
        public var count: Int

        public init(kind: String, channel: String, state: OutboxState, count: Int) {
            self.kind = kind
            self.channel = channel
            self.state = state
            self.count = count
        }
    }
    public var since: Millis
    public var now: Millis
    /// Tracked orders by status (quarantined ones counted apart).
    public var ordersByStatus: [String: Int]
    public var quarantined: Int
    /// Orders with money to return (`needs_refund`).
    public var needsRefund: Int
    /// Messages decided since `since`, by kind, channel and current state.
    public var messages: [MessageCount]
    /// Delivery attempts since `since`, by outcome (delivered, retry, dead).
    public var attempts: [AttemptOutcome: Int]
    /// Messages due now and not yet delivered (a backlog), and the oldest due time among them.
    public var backlog: Int
    public var oldestBacklogDueAt: Millis?

    /// Money per currency (minor units), over some orders.
    public struct Money: Sendable, Hashable, Codable {
        public var currency: String
        public var orders: Int
        public var amount: Int64

        public init(currency: String, orders: Int, amount: Int64) {
            self.currency = currency
            self.orders = orders
            self.amount = amount
        }
    }
    /// Orders sent at least one `unpaid_reminder` in the period (decided in it and delivered), and
    /// how many of them are `paid` now.
    public struct ReminderConversion: Sendable, Hashable, Codable {
        public var remindedOrders: Int
        public var paidOrders: Int
        /// `paidOrders / remindedOrders`; nil when no order was reminded.
        public var rate: Double?

        public init(remindedOrders: Int, paidOrders: Int, rate: Double?) {
            self.remindedOrders = remindedOrders
            self.paidOrders = paidOrders
            self.rate = rate
        }
    }
    /// Orders whose status became `cancelled` in the period, and how many of them had been sent a
    /// delivered `unpaid_reminder` before.
    public struct Cancellations: Sendable, Hashable, Codable {
        public var orders: Int
        public var reminded: Int

        public init(orders: Int, reminded: Int) {
            self.orders = orders
            self.reminded = reminded
        }
    }
    /// Time from `orders.created_at` to the order's first transition to `paid` in the period.
    public struct TimeToPayment: Sendable, Hashable, Codable {
        /// Orders that became paid in the period from unpaid, paying, partially_paid, failed or
        /// cancelled (not back from refunding, not first seen already paid).
        public var orders: Int
        public var medianMs: Millis?

        public init(orders: Int, medianMs: Millis?) {
            self.orders = orders
            self.medianMs = medianMs
        }

        /// From each order's time to payment (negative ones, a clock step back, left out):
        /// how many, and their median (the mean of the middle two for an even count).
        package init(durations: [Millis]) {
            let sorted = durations.filter { $0 >= 0 }.sorted()
            let middle = sorted.count / 2
            self.init(orders: sorted.count, medianMs: sorted.isEmpty ? nil
                      : sorted.count % 2 == 1 ? sorted[middle] : sorted[middle - 1] / 2 + sorted[middle] / 2)
        }
    }

    public var reminderConversion = ReminderConversion(remindedOrders: 0, paidOrders: 0, rate: nil)
    public var cancellations = Cancellations(orders: 0, reminded: 0)
    /// Ops messages (escalations) decided in the period, by kind; `delivery_dead` included.
    public var escalations: [String: Int] = [:]
    /// Orders flagged `needs_refund` now and the money to return, per currency.
    public var needsRefundByCurrency: [Money] = []
    /// `amount_due − amount_paid` over tracked, not quarantined orders that are unpaid, paying,
    /// partially_paid or failed, per currency.
    public var outstanding: [Money] = []
    public var timeToPayment = TimeToPayment(orders: 0, medianMs: nil)

    public init(since: Millis, now: Millis, ordersByStatus: [String: Int] = [:], quarantined: Int = 0, needsRefund: Int = 0,
                messages: [MessageCount] = [], attempts: [AttemptOutcome: Int] = [:], backlog: Int = 0,
                oldestBacklogDueAt: Millis? = nil,
                reminderConversion: ReminderConversion = ReminderConversion(remindedOrders: 0, paidOrders: 0, rate: nil),
                cancellations: Cancellations = Cancellations(orders: 0, reminded: 0), escalations: [String: Int] = [:],
                needsRefundByCurrency: [Money] = [], outstanding: [Money] = [],
                timeToPayment: TimeToPayment = TimeToPayment(orders: 0, medianMs: nil)) {
        self.since = since
        self.now = now
        self.ordersByStatus = ordersByStatus
        self.quarantined = quarantined
        self.needsRefund = needsRefund
        self.messages = messages
        self.attempts = attempts
        self.backlog = backlog
        self.oldestBacklogDueAt = oldestBacklogDueAt
        self.reminderConversion = reminderConversion
        self.cancellations = cancellations
        self.escalations = escalations
        self.needsRefundByCurrency = needsRefundByCurrency
        self.outstanding = outstanding
        self.timeToPayment = timeToPayment
    }

    /// The ops kinds counted as escalations.
    public static let escalationKinds: [NotificationKind] = [
        .latePayment, .duplicatePayment, .installmentEscalated, .refundStalled, .payingStalled, .deliveryDead,
    ]
    /// The statuses whose unpaid balance counts as money outstanding.
    public static let outstandingStatuses: [OrderStatus] = [.unpaid, .paying, .partiallyPaid, .failed]
    /// The statuses a transition to `paid` counts as a payment from.
    public static let payableStatuses: [OrderStatus] = [.unpaid, .paying, .partiallyPaid, .failed, .cancelled]
}

/// What retention pruned (or, in a dry run, would prune): orders whose history went, and the rows
/// of each kind.
public struct PruneCounts: Sendable, Hashable, Codable {
    public var orders = 0
    public var events = 0
    public var outbox = 0
    public var attempts = 0

    public init(orders: Int = 0, events: Int = 0, outbox: Int = 0, attempts: Int = 0) {
        self.orders = orders
        self.events = events
        self.outbox = outbox
        self.attempts = attempts
    }

    /// Rows deleted, of every kind.
    public var rows: Int { events + outbox + attempts }

    public static func += (total: inout PruneCounts, batch: PruneCounts) {
        total.orders += batch.orders
        total.events += batch.events
        total.outbox += batch.outbox
        total.attempts += batch.attempts
    }
}

/// The order store: the only place that knows SQL. The SQLite implementation
/// (``SQLiteOrderStore``) is the embedded default; a PostgreSQL one satisfies the same protocol
/// for several replicas on one database. What follows is the contract a store module implements;
/// the daemon relies on nothing else.
///
/// **Time.** Every time is a ``Millis`` passed in (`now:`, and the due times inside plans and
/// results); a store never reads a clock of its own for a decision. (A store on a shared server
/// may compare due times with the server's clock instead, as long as it does so everywhere.)
///
/// **Atomicity.** Each requirement that writes says what one transaction holds; a requirement
/// that throws applied nothing of the transaction it was in (earlier transactions of the same
/// call, where it makes several, stay committed).
///
/// **Idempotency.** An outbox message is identified by (`order_id`, `idempotency_key`): inserting
/// a key already there (or pruned by retention, see ``prune(now:keepMs:limit:dryRun:)``) changes
/// nothing, so a decision made twice is sent at most once. A reconcile request is identified by
/// (`order_id`, `payment_id`, `step`) in the same way. The same key goes to the gateway on every
/// attempt, so a repeat after a lost lease is recognised by the receiver.
///
/// **Claims and leases.** Outbox messages and reconcile requests are claimed by leasing them: a
/// claimed row stays in its pending state, is marked leased and gets `due = now + lease`. A claim
/// returns only rows that are pending and due (`due <= now`) — a leased row whose lease expired
/// is due again and may be claimed anew (at least once delivery: the first claimer's send may have
/// gone out). Two claims that run at the same time must never return the same row (SQLite: claims
/// are write transactions, which SQLite runs one at a time; a shared server needs row locks,
/// `FOR UPDATE SKIP LOCKED`). Rows come earliest due first. The lease is `[store] lease` (30 s by
/// default, longer than a transfer's timeout): delivery renews the leases of the messages it holds
/// (``renewLeases(_:until:now:)``) every third of it, so a live replica keeps them and a dead
/// one's come back within about one lease. A lease is fenced by its owner and its attempt number
/// (see recording, in ``exchangeDeliveries(recording:deciding:claiming:now:)``).
///
/// **States.** An outbox row is ``OutboxState/pending`` until it ends ``OutboxState/delivered``,
/// ``OutboxState/dead``, ``OutboxState/superseded``, ``OutboxState/suppressed`` or
/// ``OutboxState/capped``, and never leaves a final state; the stored words are those raw values.
/// A state word a store does not know (a row written by hand or by a newer release) is returned as
/// ``OutboxState/unknown(_:)``, never trapped on, and such a row is never claimed.
///
/// **Errors.** A requirement throws on storage errors; what the caller does depends on the error:
/// - a ``StoreError`` with `isConfiguration` (the shop's schema does not fit, a newer paywatch's
///   schema, a bad setting): not passing; the CLI exits 78 and the daemon does not start;
/// - a ``StoreError`` with `isFatal` (the store this process opened is gone): the daemon exits so
///   that its supervisor starts it again;
/// - anything else (busy or locked for too long, disk full, I/O, a server restarting): transient;
///   the daemon logs the outage and tries again — planning after a pause (never at once),
///   delivery keeping the results it could not record for its next exchange, so they must be
///   safe to record late — and never crashes on one. A store should map what it knows to be
///   permanent to `isConfiguration` and leave the rest transient.
/// Error descriptions never carry SQL arguments, message bodies, addresses or secrets.
public protocol OrderStore: Sendable {
    /// Creates or upgrades the schema and brings the shop's tables to the contract's shape; safe
    /// to repeat (it changes nothing when there is nothing to do). Returns what it changed: the
    /// store's own schema versions it applied to a database that had older ones (one line), then
    /// the shop's tables (added columns, unique indexes). Throws a ``StoreError`` with `isConfiguration`, changing nothing, when the shop's
    /// schema cannot be used (a required column missing, repeated keys) or the store was migrated
    /// by a newer paywatch (an unknown schema version).
    @discardableResult
    func migrate() async throws -> [String]
    /// Throws a fatal ``StoreError`` (`isFatal`) when the store this process opened is gone (the
    /// SQLite file deleted or replaced): nothing written from now on would reach the shop. Cheap:
    /// called at every poll. A store on a server has nothing to check here (a lost connection is
    /// transient, not fatal).
    func verifyStillOpen() throws
    /// **Claims orders for planning.** Plans and applies up to `limit` orders that are due (`next_due_at <= now`) or changed,
    /// earliest due first (a changed order has due time 0, so it comes first).
    /// An order is applied only if it did not change between reading it and writing its plan
    /// (otherwise it stays marked changed and is planned again at the next sweep). Plans may be
    /// written in several transactions; `applied` is called after each with the plans it wrote,
    /// so that delivery can start before the whole batch is done. Throws on storage errors.
    /// With `handOff`, each new message that `handOff.take` accepts is inserted already leased
    /// (to ``leaseOwner``, until `now + handOff.leaseMs`) and passed to `applied` with its outbox id, so delivery can
    /// send it without claiming it; the others are inserted due now, to be claimed.
    ///
    /// Per plan, in one transaction: the tracked status (and `orders.status` only when it
    /// changed), marks, `amount_paid`, `needs_refund`, next due time, outbox rows (idempotent by
    /// key; a message held for the quiet hours is due at `notBefore`), timeline events and
    /// reconcile requests (idempotent); or, for a quarantined plan, only the quarantine and its
    /// event. A plan the database refuses (a shop's trigger or constraint) quarantines its order
    /// instead of failing the batch. The SQLite store sweeps from one process per file and its
    /// `version` check only guards against the shop's writes; a store shared by replicas must
    /// also give each due order to one sweep at a time (a lease on the order).
    /// `plan` runs outside the write transactions, and `handOff.take` inside them.
    func sweep(now: Millis, limit: Int, plan: @escaping @Sendable (OrderSnapshot) -> Plan, handOff: DeliveryHandOff?,
               applied: @escaping @Sendable ([Plan], [OutboxMessage]) -> Void) async throws -> SweepResult
    /// The earliest time an order is due for planning (0 when one changed), or nil: how long the
    /// planner may sleep when nothing wakes it. Read only.
    func nextPlanningAt() async throws -> Millis?
    /// Who this store's leases belong to: written with every lease it takes (a delivery claim, a
    /// hand-off, a reconcile claim), unique per store opened (per process), readable in logs.
    var leaseOwner: String { get }
    /// Releases this store's own leases (``leaseOwner``'s) at once: its claimed messages and
    /// reconcile requests are due again at `now`. For a clean stop. Never touches another owner's
    /// lease, so it is safe with other replicas on the same database. Returns the messages released.
    func releaseLeases(now: Millis) async throws -> Int
    /// At start: makes due again at once the leases of owners known to be gone, and returns the
    /// messages released. Never a live owner's lease: a store that cannot know (several replicas
    /// on one database) returns 0, and a dead replica's leases come back when they expire (a
    /// message whose lease expired is due, and is claimed anew by anyone). The SQLite store knows
    /// only while it holds the run lock (opened for the daemon): then every other owner is a run
    /// that ended (a crash, kill -9), and all their leases are released.
    func recoverLeasesOfDeadOwners(now: Millis) async throws -> Int
    /// **Renews delivery leases.** Extends to `until` (never shortens) the leases, held by
    /// ``leaseOwner``, of those outbox ids that are still pending and leased to it, in one short
    /// write transaction, and returns the ids it could *not* renew: lost, because the lease
    /// expired and another owner claimed the message, or its result was recorded (or it was
    /// released) meanwhile. A lease that expired but was not taken by anyone is still this
    /// owner's and is renewed. `ids` empty: a no-op, no transaction. Delivery calls it every third
    /// of `[store] lease` for the messages it holds queued or in flight, so that a live replica
    /// keeps its claims however long a message waits or a transfer runs, while a dead one's are
    /// taken over within about one lease. Throws on storage errors; then nothing was renewed
    /// (the caller logs it and tries again; the leases run on meanwhile).
    func renewLeases(_ ids: [Int64], until: Millis, now: Millis) async throws -> [Int64]
    /// One delivery round trip, in one transaction, in this order: record `results` (attempt rows,
    /// new state, follow-ups such as `delivery_dead`; a `.notAttempted` result — a claimed
    /// message released unsent — makes it due again at once without counting an attempt), then
    /// claim what `claim` asks for — per channel the earliest
    /// due pending messages up to its limit, each leased to ``leaseOwner`` until
    /// `now + claim.leaseMs` (a message whose lease expired is due again and may be claimed anew,
    /// by any owner). Recording is fenced: a result applies only to a message still leased to
    /// ``leaseOwner`` and, when the result carries ``DeliveryResult/attempts``, whose `attempts`
    /// still equal it (the attempt number is the lease's fencing token: the same owner may have
    /// claimed the message again after its lease expired, and recorded a later attempt); any
    /// other (taken over after its lease expired, recorded already, or a later attempt recorded)
    /// is left with its current outcome, and its id is returned in
    /// ``DeliveryClaim/staleResults``. Messages whose order moved on
    /// are marked superseded instead of claimed. With `claim` nil nothing is claimed, but
    /// `nextDueAt` is still reported. Throws on storage errors; then nothing of it was applied.
    /// `decisions` are messages delivery decided itself, about no order (`channel_paused` when a
    /// channel's circuit breaker opens): inserted due at `now` after the results, each at most
    /// once by its key.
    ///
    /// Results: `.delivered` and `.dead` are final; `.retry(atMs:)` leaves it pending, due at
    /// `atMs`; `.notAttempted` and `.deferred(untilMs:)` leave it pending (due now, or at `untilMs`)
    /// without an attempt row. Every other result writes one attempt row numbered after the
    /// message's attempts. A dead message writes a `delivery_dead` event, puts its address into
    /// `suppressions` with `suppress` (customer messages only), inserts `followUp`, and falls back to its first alternate
    /// whose address is not suppressed. Every store fences the same way, SQLite included (the
    /// UPDATE's WHERE checks the owner and, when given, the attempts): a replica whose lease
    /// expired cannot commit stale work over the outcome of the one that took the message over.
    ///
    /// Claimed rows that must not be sent are settled in the same transaction instead of being
    /// returned in ``DeliveryClaim/messages``: order moved on (`superseded`), address in
    /// `suppressions` (`suppressed`, then its fallback), a reminder past
    /// ``DeliveryClaimRequest/maxPerOrderPerDay`` (`capped`), a kind this release does not know
    /// (`dead`, "unknown message kind"). Each appears in the matching list of the result.
    func exchangeDeliveries(recording results: [DeliveryResult], deciding decisions: [OutgoingMessage],
                            claiming claim: DeliveryClaimRequest?, now: Millis) async throws -> DeliveryClaim
    /// Leases up to `limit` reconcile requests that are due (written by `sweep` from
    /// ``Plan/reconciles``) to ``leaseOwner`` until `now + leaseMs`, earliest due first, in one
    /// transaction; one not recorded by then is due again, to any owner (asking the provider twice
    /// changes nothing). The same request is never returned to two claims that run at the same
    /// time while its lease holds. (Recording is not fenced by owner: an answer is the provider's
    /// whoever asked, and a request is recorded once.)
    func claimReconciles(now: Millis, limit: Int, leaseMs: Millis) async throws -> [ReconcileTask]
    /// Records the provider's answers in one transaction: a definite one updates the payments row
    /// (`status`, and `failure_reason` when failed) if it is still `pending` — the shop's triggers
    /// then mark the order — and writes a `reconciled` event; any other writes the request's
    /// fallback message to the outbox and a `reconcile_unresolved` event. A request is recorded
    /// once (its state goes from ``ReconcileState/pending`` to ``ReconcileState/reconciled`` or
    /// ``ReconcileState/unresolved``); recording it again changes nothing.
    func recordReconciles(_ outcomes: [ReconcileOutcome], now: Millis) async throws
    /// The earliest `due_at` of a pending reconcile request, or nil.
    func nextReconcileAt() async throws -> Millis?
    /// Retention: deletes the timeline events, outbox rows and delivery attempts of up to `limit`
    /// settled orders in one short write transaction, and returns what it deleted; fewer than
    /// `limit` orders means nothing is left. An order is settled for longer than `keepMs` when it
    /// is paid, refunded or cancelled, nothing about it is open (no message pending, in flight or
    /// retrying, no reconcile request pending, no `needs_refund`, no quarantine, nothing scheduled)
    /// and paywatch last planned it — which is when it became final, at the latest — before
    /// `now − keepMs`. Its tracking row stays (marks, so no decision is made again) and records
    /// the time, the keep and the keys of the pruned messages (so a decision made again is not
    /// sent again). With `dryRun`, counts what pruning every batch now would delete, in one read,
    /// deleting nothing (`limit` does not apply).
    func prune(now: Millis, keepMs: Millis, limit: Int, dryRun: Bool) async throws -> PruneCounts
    /// Everything `paywatch orders show` prints about one order, read in one read transaction;
    /// nil when neither the shop nor paywatch knows the id. An order in `orders` that paywatch has
    /// not planned yet is returned with no tracked status. Rows it cannot read as they are (an id
    /// not UTF-8, a value of the wrong type) come back in the snapshot's `readProblem`, not as an
    /// error; delivery addresses come back masked.
    func order(id: String) async throws -> OrderDetail?
    /// Up to `limit` tracked orders by id, for `paywatch orders list`, all of them or those of
    /// `filter`. An id that is not text is shown in hex, never trapped on. Read only.
    func orders(_ filter: OrderFilter?, limit: Int) async throws -> [OrderSummary]
    /// `paywatch report` over `since … now`, read in one read transaction (a consistent snapshot).
    func report(since: Millis, now: Millis) async throws -> Report
    /// Marks every order that is not final (and every order with anything planned) changed, so
    /// that the next sweep plans it afresh: after a configuration reload, under the new policy.
    /// Returns how many orders it marked. Written in short transactions.
    func replanAll() async throws -> Int
    /// How far behind planning and delivery are at `now` (cheap: run after every pass).
    func lag(now: Millis) async throws -> Lag
    /// Writes (creates or replaces) this daemon's heartbeat, keyed by its `instance`.
    func writeHeartbeat(_ heartbeat: DaemonHeartbeat) async throws
    /// Everything `paywatch status` shows, read in one read transaction; cheap enough for each
    /// `status` call and the metrics scrape, read only, and usable from another process while the
    /// daemon runs.
    func health(now: Millis) async throws -> Health
    /// Closes the store's connections; no requirement is called after it.
    func close() async throws
    /// Wake-ups from the store: other writers' changes as they commit (the PostgreSQL store
    /// `LISTEN`s to its triggers' `NOTIFY`), so that planning and delivery need not wait for the
    /// poll. Nil when the store has none (SQLite: the daemon polls, and its own sweeps wake its
    /// delivery). A stream is never the only way to learn of work: a notification lost while a
    /// connection was down is made up for by polling, and the stream says `.reconnected` after a
    /// gap so the daemon looks at once.
    func changes() -> AsyncStream<StoreChange>?
}

/// What a store's wake-up stream (``OrderStore/changes()``) says.
public enum StoreChange: Sendable, Hashable {
    /// The shop wrote orders, payments, installments or refunds: planning has work.
    case ordersChanged
    /// New outbox rows were written (by any replica): delivery has work.
    case messagesAdded
    /// The stream's connection was re-established after a gap: anything may have happened.
    case reconnected
}

extension OrderStore {
    /// No wake-ups: the daemon polls.
    public func changes() -> AsyncStream<StoreChange>? { nil }

    /// A sweep without hand-off or progress reports.
    public func sweep(now: Millis, limit: Int, plan: @escaping @Sendable (OrderSnapshot) -> Plan) async throws -> SweepResult {
        try await sweep(now: now, limit: limit, plan: plan, handOff: nil, applied: { _, _ in })
    }

    /// Prunes batch after batch of `batchSize` orders until none is left (see
    /// ``prune(now:keepMs:limit:dryRun:)``), yielding between batches so the shop's writes and
    /// paywatch's own get the write lock in between; stops early when the task is cancelled.
    /// `batchDone` sees each batch's counts.
    public func pruneAll(now: Millis, keepMs: Millis, batchSize: Int, dryRun: Bool = false,
                         batchDone: (PruneCounts) -> Void = { _ in }) async throws -> PruneCounts {
        if dryRun { return try await prune(now: now, keepMs: keepMs, limit: batchSize, dryRun: true) }
        var total = PruneCounts()
        while !Task.isCancelled {
            let batch = try await prune(now: now, keepMs: keepMs, limit: batchSize, dryRun: false)
            total += batch
            batchDone(batch)
            if batch.orders < batchSize { break }
            await Task.yield()
        }
        return total
    }

    /// ``exchangeDeliveries(recording:deciding:claiming:now:)`` with no decision of its own.
    public func exchangeDeliveries(recording results: [DeliveryResult], claiming claim: DeliveryClaimRequest?,
                                   now: Millis) async throws -> DeliveryClaim {
        try await exchangeDeliveries(recording: results, deciding: [], claiming: claim, now: now)
    }

    /// Claims due messages without recording anything.
    public func claimDeliveries(_ request: DeliveryClaimRequest, now: Millis) async throws -> DeliveryClaim {
        try await exchangeDeliveries(recording: [], claiming: request, now: now)
    }

    /// Records delivery results without claiming anything.
    public func recordDeliveries(_ results: [DeliveryResult], now: Millis) async throws {
        _ = try await exchangeDeliveries(recording: results, claiming: nil, now: now)
    }
}
