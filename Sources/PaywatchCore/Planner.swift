/// Something worth writing on an order's timeline.
public struct PlanEvent: Sendable, Hashable {
    public var event: String
    public var detail: String
    public init(_ event: String, _ detail: String) {
        self.event = event
        self.detail = detail
    }
}

/// A stalled payment attempt to ask the payment provider about (`GET [paying].reconcile_url` with
/// `{provider_ref}` filled in). A definite answer updates the `payments` row (the order then moves
/// on at its next plan); any other answer sends ``fallback`` (`paying_stalled` to ops).
public struct ReconcileRequest: Sendable, Hashable {
    public var orderID: String
    public var paymentID: String
    public var providerRef: String
    /// Which ask of this attempt: its `paying_stalled` step (unique per attempt and ask).
    public var step: Int
    /// What ops gets when the provider gives no definite answer; nil when ops has no address.
    public var fallback: OutgoingMessage?

    public init(orderID: String, paymentID: String, providerRef: String, step: Int, fallback: OutgoingMessage?) {
        self.orderID = orderID
        self.paymentID = paymentID
        self.providerRef = providerRef
        self.step = step
        self.fallback = fallback
    }
}

/// The planner's decision for one order at one instant. The store applies all of it in one
/// transaction: status, marks, outbox rows, timeline events and the next due time.
public struct Plan: Sendable, Hashable {
    public var orderID: String
    /// Set when the order's rows are unusable; nothing else in the plan applies then.
    public var quarantine: String?
    public var previousStatus: OrderStatus?
    public var status: OrderStatus
    public var amountPaid: Int64
    public var messages: [OutgoingMessage]
    public var events: [PlanEvent]
    public var marks: [String: Int]
    /// When the planner must look at this order again even if nothing changes; nil: only on change.
    public var nextDueAt: Millis?
    /// Money the shop must return (a duplicate or excess payment, money on a cancelled order),
    /// less what refunds already cover; 0 when nothing is owed. Shown as `needs_refund`.
    public var needsRefund: Int64 = 0
    /// Stalled attempts to ask the payment provider about (`[paying].reconcile_url`). The store
    /// keeps them with the plan; the daemon's reconciler asks and records the answer.
    public var reconciles: [ReconcileRequest] = []

    public init(orderID: String, quarantine: String? = nil, previousStatus: OrderStatus?, status: OrderStatus, amountPaid: Int64,
                messages: [OutgoingMessage] = [], events: [PlanEvent] = [], marks: [String: Int] = [:], nextDueAt: Millis? = nil,
                needsRefund: Int64 = 0, reconciles: [ReconcileRequest] = []) {
        self.orderID = orderID
        self.quarantine = quarantine
        self.previousStatus = previousStatus
        self.status = status
        self.amountPaid = amountPaid
        self.messages = messages
        self.events = events
        self.marks = marks
        self.nextDueAt = nextDueAt
        self.needsRefund = needsRefund
        self.reconciles = reconciles
    }

    public var statusChanged: Bool { previousStatus != status }
}

/// The business rules, as a pure function of an order snapshot, the policy and `now`.
public struct Planner: Sendable {
    public var policy: Policy

    public init(policy: Policy) {
        self.policy = policy
    }

    // Series names under which decided steps are remembered (TrackedState.marks).
    static let unpaidSeries = "unpaid_reminder"
    static let failedSeries = "failed_reminder"
    static let failedNoticeSeries = "payment_failed"
    static let cancelSeries = "order_cancelled"
    static let confirmSeries = "payment_confirmed"
    static let lateSeries = "late_payment"
    /// Steps of the reminders after a failed attempt are `attempt * failedStride + index`.
    static let failedStride = 100

    /// Plans one order: validation first (a problem quarantines it), then the rules of its
    /// status, each in its own extension (`Planner+Unpaid`, `+Failed`, `+PartiallyPaid`, `+Paid`, `+Refunding`, `+Duplicates`, `+Cancelled`), all
    /// writing into one ``Draft``.
    public func plan(_ snapshot: OrderSnapshot, now: Millis) -> Plan {
        let previous = snapshot.state.status
        if let problem = Validator.check(snapshot, now: now, maxClockSkewMs: policy.maxClockSkewMs) {
            // Not planned again until its rows change, or until time alone can fix it.
            return Plan(
                orderID: snapshot.orderID, quarantine: problem.reason, previousStatus: previous,
                status: previous ?? .unpaid, amountPaid: 0, messages: [], events: [PlanEvent("quarantined", problem.reason)],
                marks: snapshot.state.marks, nextDueAt: problem.recheckAt
            )
        }
        // Validated: the order exists and its amounts and times are present.
        var draft = Draft(planner: self, snapshot: snapshot, order: snapshot.order!, now: now)
        if previous == nil {
            draft.events.append(PlanEvent("tracked", "expires at \(Timestamp.iso8601(draft.expiresAt))"))
        }
        latePayment(&draft)
        failureNotice(&draft)
        holdExpiry(&draft)
        confirmation(&draft)
        paying(&draft)
        switch draft.status {
        case .unpaid: unpaidReminders(&draft)
        case .failed: failedReminders(&draft)
        case .partiallyPaid: partiallyPaid(&draft)
        default: break
        }
        refunds(&draft)
        duplicates(&draft)
        situations(&draft)
        return draft.plan()
    }

    /// The address of `order` on `channel`, or nil when it has none (that channel is skipped).
    public func recipient(of order: OrderRecord, channel: String) -> String? {
        let address: String?
        switch channel {
        case "sms": address = order.phone
        case "email": address = order.email
        case "push": address = order.pushToken
        default: address = nil
        }
        if let address, !address.isEmpty { return address }
        return policy.fixedRecipients[channel] ?? (channel == policy.opsChannel ? "ops" : nil)
    }

    /// The ops message sent when a message is dead (delivery gave up). It carries the original
    /// key, so it is decided at most once per dead message.
    public func deliveryDeadMessage(for dead: OutgoingMessage, reason: String) -> OutgoingMessage {
        let key = OutgoingMessage.deadLetterKey(for: dead.idempotencyKey)
        let to = policy.fixedRecipients[policy.opsChannel] ?? "ops"
        var payload = MessagePayload(
            subject: "A message for order \(dead.orderID) could not be delivered",
            text: "\(dead.kind.rawValue) on \(dead.channel) (key \(dead.idempotencyKey)) is dead: \(reason)")
        payload.add("dead_kind", dead.kind.rawValue)
        payload.add("dead_channel", dead.channel)
        payload.add("dead_idempotency_key", dead.idempotencyKey)
        payload.add("reason", reason)
        return OutgoingMessage(
            idempotencyKey: key, orderID: dead.orderID, kind: .deliveryDead, step: 0, channel: policy.opsChannel,
            recipient: to, payload: payload.encoded()
        )
    }

    /// The ops message sent when `channel`'s circuit breaker opens at `openedAt`: keyed by the
    /// channel and that instant, so it is decided once per opening. It is about no order.
    public func channelPausedMessage(channel: String, failures: Int, lastError: String, openedAt: Millis,
                                     probeEveryMs: Millis) -> OutgoingMessage {
        let key = "pw1-ops:channel_paused:\(OutgoingMessage.percentEncoded(channel)):\(openedAt)"
        let to = policy.fixedRecipients[policy.opsChannel] ?? "ops"
        var payload = MessagePayload(
            subject: "Channel \(channel) is paused",
            text: "\(failures) consecutive deliveries on \(channel) failed (last: \(lastError)); its messages wait, "
                + "their attempts untouched, and one is sent as a probe every \(probeEveryMs / 1_000) s until one goes through.")
        payload.add("channel", channel)
        payload.add("failures", failures)
        payload.add("last_error", lastError)
        payload.add("opened_at", Timestamp.iso8601(openedAt))
        return OutgoingMessage(
            idempotencyKey: key, orderID: "", kind: .channelPaused, step: 0, channel: policy.opsChannel,
            recipient: to, payload: payload.encoded())
    }

    /// The ops message sent when a paused channel's probe went through: `situation_resolved` of
    /// its `channel_paused` (PagerDuty resolves that incident). Keyed by channel and instant.
    public func channelResumedMessage(channel: String, resumedAt: Millis) -> OutgoingMessage {
        let key = "pw1-ops:channel_resumed:\(OutgoingMessage.percentEncoded(channel)):\(resumedAt)"
        let to = policy.fixedRecipients[policy.opsChannel] ?? "ops"
        var payload = MessagePayload(
            subject: "Channel \(channel) resumed",
            text: "A probe on \(channel) went through: the channel_paused alert is resolved and its waiting messages go out.")
        payload.add("resolves", NotificationKind.channelPaused.rawValue)
        payload.add("channel", channel)
        payload.add("resumed_at", Timestamp.iso8601(resumedAt))
        return OutgoingMessage(
            idempotencyKey: key, orderID: "", kind: .situationResolved, step: 0, channel: policy.opsChannel,
            recipient: to, payload: payload.encoded())
    }
}
