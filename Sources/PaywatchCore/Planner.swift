/// Something worth writing on an order's timeline.
public struct PlanEvent: Sendable, Hashable {
    public var event: String
    public var detail: String
    public init(_ event: String, _ detail: String) {
        self.event = event
        self.detail = detail
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
        let order = snapshot.order!
        let createdAt = order.createdAt ?? 0
        let ledger = Ledger(amountDue: order.amountDue ?? 0, payments: snapshot.payments, refunds: snapshot.refunds)
        let expiresAt = policy.expiry(of: order)
        var status = ledger.derivedStatus(previous: previous)
        var marks = snapshot.state.marks
        var messages: [OutgoingMessage] = []
        var events: [PlanEvent] = []
        var nextDue: Millis? = nil

        func schedule(_ at: Millis) { nextDue = min(nextDue ?? at, at) }
        func context(failureReason: String? = nil) -> Messages.Context {
            Messages.Context(order: order, ledger: ledger, expiresAt: expiresAt, failureReason: failureReason)
        }
        func send(_ kind: NotificationKind, step: Int, channels: [String], context: Messages.Context) {
            var used: [String] = []
            for channel in channels {
                guard let to = recipient(of: order, channel: channel) else { continue }
                used.append(channel)
                let key = OutgoingMessage.key(orderID: order.id, kind: kind, step: step, channel: channel)
                let body = Messages.webhookBody(key: key, kind: kind, channel: channel, to: to, context: context)
                messages.append(OutgoingMessage(
                    idempotencyKey: key, orderID: order.id, kind: kind, step: step, channel: channel,
                    recipient: to, body: body
                ))
            }
            let detail = used.isEmpty
                ? "step \(step) decided; no address for \(channels.joined(separator: ","))"
                : "step \(step) decided for \(used.joined(separator: ","))"
            events.append(PlanEvent(kind.rawValue, detail))
        }

        /// Sends the latest step whose time has come and that was not decided yet (earlier
        /// missed steps collapse into it), and schedules the next one. Steps at or after the
        /// expiry are never sent: the cancel speaks for them.
        func reminders(series: String, due: [Millis], base: Int) {
            let marked = marks[series, default: 0]
            let done = marked > base ? marked - base : 0
            var latest: Int? = nil
            for (index, at) in due.enumerated() where index + 1 > done && at <= now && at < expiresAt {
                latest = index + 1
            }
            if let step = latest {
                if step > done + 1 {
                    events.append(PlanEvent("reminders_collapsed", "steps \(done + 1)…\(step - 1) passed unsent; step \(step) sent instead"))
                }
                marks[series] = base + step
                send(.unpaidReminder, step: base + step, channels: series == Planner.unpaidSeries ? policy.unpaidChannels : policy.failedChannels,
                     context: context())
            }
            let sent = latest ?? done
            if sent < due.count, due[sent] < expiresAt {
                schedule(due[sent])
            }
        }

        if previous == nil {
            events.append(PlanEvent("tracked", "expires at \(Timestamp.iso8601(expiresAt))"))
        }

        // Money that arrives after a cancel: ops must refund or reinstate (once per payment).
        if status == .cancelled, previous == .cancelled, ledger.succeededPayments > marks[Planner.lateSeries, default: 0] {
            marks[Planner.lateSeries] = ledger.succeededPayments
            send(.latePayment, step: ledger.succeededPayments, channels: [policy.opsChannel], context: context())
        }

        // A newly failed attempt: tell the customer at once why, and how to retry.
        let sortedAttempts = Ledger.sortedAttempts(snapshot.payments)
        let lastFailure = sortedAttempts.last { $0.paymentStatus == .failed }
        if ledger.failedPayments > marks[Planner.failedNoticeSeries, default: 0] {
            marks[Planner.failedNoticeSeries] = ledger.failedPayments
            if status == .failed, now < expiresAt {
                send(.paymentFailed, step: ledger.failedPayments, channels: policy.failedChannels,
                     context: context(failureReason: lastFailure?.failureReason))
            }
        }

        // The hold ran out with no money received and nothing in flight: cancel.
        if status == .unpaid || status == .failed {
            if now >= expiresAt {
                status = .cancelled
                if marks[Planner.cancelSeries] == nil {
                    marks[Planner.cancelSeries] = 1
                    send(.orderCancelled, step: 1, channels: policy.unpaidChannels, context: context())
                }
            } else {
                schedule(expiresAt)
            }
        }

        if status == .paid, marks[Planner.confirmSeries] == nil {
            marks[Planner.confirmSeries] = 1
            send(.paymentConfirmed, step: 1, channels: policy.paidChannels, context: context())
        }

        if status == .unpaid {
            let due = policy.unpaidRemindersMs.map { createdAt + $0 }
            reminders(series: Planner.unpaidSeries, due: due, base: 0)
        } else if status == .failed, let failedAt = lastFailure?.createdAt {
            let due = policy.failedRemindersMs.map { failedAt + $0 }
            reminders(series: Planner.failedSeries, due: due, base: ledger.failedPayments * Planner.failedStride)
        }

        if previous != status {
            // The transition first (after "tracked"), then what it caused.
            let transition = PlanEvent("status", "\(previous?.rawValue ?? "new") → \(status.rawValue)")
            events.insert(transition, at: previous == nil ? 1 : 0)
        }
        return Plan(
            orderID: order.id, quarantine: nil, previousStatus: previous, status: status, amountPaid: ledger.amountPaid,
            messages: messages, events: events, marks: marks, nextDueAt: nextDue
        )
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
        var json = JSONObjectWriter()
        json.add("idempotency_key", key)
        json.add("kind", NotificationKind.deliveryDead.rawValue)
        json.add("channel", policy.opsChannel)
        json.add("order_id", dead.orderID)
        json.add("to", to)
        json.add("subject", "A message for order \(dead.orderID) could not be delivered")
        json.add("body", "\(dead.kind.rawValue) on \(dead.channel) (key \(dead.idempotencyKey)) is dead: \(reason)")
        json.add("dead_kind", dead.kind.rawValue)
        json.add("dead_channel", dead.channel)
        json.add("dead_idempotency_key", dead.idempotencyKey)
        json.add("reason", reason)
        return OutgoingMessage(
            idempotencyKey: key, orderID: dead.orderID, kind: .deliveryDead, step: 0, channel: policy.opsChannel,
            recipient: to, body: json.finish()
        )
    }
}
