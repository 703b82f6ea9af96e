extension Planner {
    /// The plan being made for one validated order: what every rule reads (the order, its ledger,
    /// `now`, the hold) and what it adds to (status, marks, messages, events, the next due time).
    struct Draft {
        let planner: Planner
        let snapshot: OrderSnapshot
        let order: OrderRecord
        let ledger: Ledger
        let now: Millis
        let expiresAt: Millis
        let previous: OrderStatus?
        /// Payments in the order they were made.
        let attempts: [PaymentRecord]
        var status: OrderStatus
        var marks: [String: Int]
        var messages: [OutgoingMessage] = []
        var events: [PlanEvent] = []
        var nextDue: Millis?
        var needsRefund: Int64 = 0
        var reconciles: [ReconcileRequest] = []
        /// An installment escalated to ops is still overdue (``Planner/situations(_:)``).
        var escalationOpen = false
        /// The status would be `paying` if every pending attempt still held the order.
        let pendingHolds: Bool

        init(planner: Planner, snapshot: OrderSnapshot, order: OrderRecord, now: Millis) {
            self.planner = planner
            self.snapshot = snapshot
            self.order = order
            self.now = now
            ledger = Ledger(amountDue: order.amountDue ?? 0, payments: snapshot.payments, refunds: snapshot.refunds)
            previous = snapshot.state.status
            attempts = Ledger.sortedAttempts(snapshot.payments)
            expiresAt = planner.policy.expiry(of: order, attemptMethod: attempts.last?.method)
            let held = ledger.derivedStatus(previous: previous)
            pendingHolds = held == .paying
            if held == .paying {
                // Attempts pending for longer than [paying].give_up_after no longer hold the order.
                var ids: Set<String> = []
                for attempt in attempts where attempt.paymentStatus == .pending
                    && (attempt.createdAt ?? 0).saturatingAdd(planner.policy.payingGiveUpAfterMs) > now {
                    ids.insert(attempt.id)
                }
                status = ledger.derivedStatus(previous: previous, heldPending: ids.count)
            } else {
                status = held
            }
            marks = snapshot.state.marks
        }

        var policy: Policy { planner.policy }

        /// Look at the order again at `at` (the earliest of all asked for wins).
        mutating func schedule(_ at: Millis) {
            nextDue = min(nextDue ?? at, at)
        }

        /// What a message is written from; rules add what their kind is about (an installment, a refund).
        func context(failureReason: String? = nil) -> Messages.Context {
            var context = Messages.Context(order: order, ledger: ledger, expiresAt: expiresAt, failureReason: failureReason)
            context.apply(policy)
            return context
        }

        /// Decides `kind` step `step` on every channel of `channels` the order has an address for
        /// (with `fallback`, on the first of them whose address is not suppressed, the others kept
        /// as its alternates). The messages are the decision's record (the timeline shows them from
        /// the outbox); a decision that found no address is recorded as an event.
        mutating func send(_ kind: NotificationKind, step: Int, channels: Policy.Channels, context: Messages.Context) {
            var texts = Templates.RenderMemo()
            var decided: [OutgoingMessage] = []
            var skipped: [String] = []
            for channel in channels.names {
                guard let message = message(kind, step: step, channel: channel, context: context, texts: &texts) else { continue }
                if channels.fallback, !kind.isOps,
                   let reason = snapshot.suppression(channel: channel, address: message.recipient) {
                    skipped.append("\(channel) (\(Redact.address(message.recipient, channel: channel)) is suppressed: \(Validator.display(reason, limit: 80)))")
                    continue
                }
                decided.append(message)
            }
            guard var first = decided.first else {
                let why = skipped.isEmpty ? "no address for \(channels.names.joined(separator: ","))"
                    : "no usable address: " + skipped.joined(separator: ", ")
                events.append(PlanEvent(kind.rawValue, "step \(step) decided; \(why)"))
                return
            }
            let sent: [OutgoingMessage]
            if channels.fallback {
                first.alternates = Array(decided.dropFirst())
                if !skipped.isEmpty {
                    events.append(PlanEvent("fallback", "\(kind.rawValue) step \(step) on \(first.channel): " + skipped.joined(separator: ", ")))
                }
                sent = [first]
            } else {
                sent = decided
            }
            messages += sent
            let held = sent.filter { $0.notBefore != nil }
            if let heldUntil = held.compactMap(\.notBefore).max() {
                // One zone per order and one `now` per decision: every held channel waits as long.
                let zone = planner.timeZone(of: order).name
                events.append(PlanEvent("quiet_hours", """
                    \(kind.rawValue) step \(step) on \(held.map(\.channel).joined(separator: ",")) waits for the quiet hours to end: \
                    held until \(Timestamp.local(heldUntil, timeZone: zone)), \(Timestamp.iso8601(heldUntil))
                    """))
            }
        }

        /// `kind` step `step` on one channel, on its own.
        func message(_ kind: NotificationKind, step: Int, channel: String, context: Messages.Context) -> OutgoingMessage? {
            var texts = Templates.RenderMemo()
            return message(kind, step: step, channel: channel, context: context, texts: &texts)
        }

        /// `kind` step `step` on `channel`, or nil when the order has no address there. `texts`
        /// holds what the same decision rendered for its other channels.
        func message(_ kind: NotificationKind, step: Int, channel: String, context: Messages.Context,
                     texts: inout Templates.RenderMemo) -> OutgoingMessage? {
            guard let to = planner.recipient(of: order, channel: channel) else { return nil }
            let key = OutgoingMessage.key(orderID: order.id, kind: kind, step: step, channel: channel)
            let payload = Messages.payload(kind: kind, channel: channel, context: context, memo: &texts)
            return OutgoingMessage(
                idempotencyKey: key, orderID: order.id, kind: kind, step: step, channel: channel, recipient: to,
                payload: payload.encoded(), notBefore: planner.quietUntil(kind, channel: channel, order: order, at: now),
                collapsesHeld: kind.isReminder && policy.quietHours?.channels.contains(channel) == true)
        }

        /// Sends the latest step of a reminder series whose time has come and that was not decided
        /// yet (earlier missed steps collapse into it), and schedules the next one. Steps at or
        /// after `until` (by default the expiry: the cancel speaks for them) are never sent. Steps
        /// are remembered under `series` as `base + index`.
        mutating func reminders(series: String, due: [Millis], base: Int, channels: Policy.Channels,
                                kind: NotificationKind = .unpaidReminder, until: Millis? = nil,
                                context: Messages.Context? = nil) {
            let until = until ?? expiresAt
            let marked = marks[series, default: 0]
            let done = marked > base ? marked - base : 0
            var latest: Int? = nil
            for (index, at) in due.enumerated() where index + 1 > done && at <= now && at < until {
                latest = index + 1
            }
            if let step = latest {
                if step > done + 1 {
                    events.append(PlanEvent("reminders_collapsed", "steps \(done + 1)…\(step - 1) passed unsent; step \(step) sent instead"))
                }
                marks[series] = base + step
                send(kind, step: base + step, channels: channels, context: context ?? self.context())
            }
            let sent = latest ?? done
            if sent < due.count, due[sent] < until {
                schedule(due[sent])
            }
        }

        /// The finished plan: the transition first on the timeline (after "tracked"), then what
        /// it caused.
        func plan() -> Plan {
            var events = self.events
            if previous != status {
                let transition = PlanEvent("status", "\(previous?.rawValue ?? "new") → \(status.rawValue)")
                events.insert(transition, at: previous == nil ? 1 : 0)
            }
            var plan = Plan(
                orderID: order.id, quarantine: nil, previousStatus: previous, status: status, amountPaid: ledger.amountPaid,
                messages: messages, events: events, marks: marks, nextDueAt: nextDue
            )
            plan.needsRefund = needsRefund
            plan.reconciles = reconciles
            return plan
        }
    }
}
