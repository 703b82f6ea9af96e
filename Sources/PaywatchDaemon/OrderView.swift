import Foundation
import PaywatchConfig
import PaywatchCore
import PaywatchStore

/// What `paywatch orders show` prints: the order, its ledger, the next planned action (the pure
/// planner run at the next due time), the timeline and every delivery with its attempts.
/// Addresses are masked in both forms.
public struct OrderView: Sendable {
    public var detail: OrderDetail
    public var policy: Policy

    public init(detail: OrderDetail, policy: Policy) {
        self.detail = detail
        self.policy = policy
    }

    /// What the planner will do at the next due time if nothing changes before.
    public var nextAction: (at: Millis, actions: [String])? {
        guard detail.quarantine == nil, let at = detail.nextDueAt, at > 0 else { return nil }
        let plan = Planner(policy: policy).plan(detail.snapshot, now: at)
        var actions: [String] = []
        if plan.statusChanged { actions.append("status → \(plan.status.rawValue)") }
        var byKind: [(String, [String])] = []
        for message in plan.messages {
            let label = "\(message.kind.rawValue) step \(message.step)"
            if let index = byKind.firstIndex(where: { $0.0 == label }) {
                byKind[index].1.append(message.channel)
            } else {
                byKind.append((label, [message.channel]))
            }
        }
        actions += byKind.map { "\($0.0) on \($0.1.joined(separator: ","))" }
        return (at, actions.isEmpty ? ["re-check"] : actions)
    }

    /// "history pruned at … (retention keep 90d)": the timeline and deliveries shown start after it.
    public var prunedNote: String? {
        guard let at = detail.prunedAt else { return nil }
        return "history pruned at \(Timestamp.iso8601(at))" + (detail.prunedKeepMs.map { " (retention keep \(formatDuration($0)))" } ?? "")
    }

    public func text() -> String {
        let snapshot = detail.snapshot
        var lines: [String] = []
        let status = detail.trackedStatus?.rawValue ?? "not planned yet"
        // Everything from the shop's rows is shown escaped: one field never forges another line.
        let show = { (text: String) in Validator.display(text, limit: 200) }
        lines.append("Order \(show(detail.orderID))  status: \(status)")
        if let reason = detail.quarantine {
            lines.append("  QUARANTINED: \(reason) (fix the row; paywatch re-checks it on the next change)")
        }
        if detail.needsRefund > 0 {
            lines.append("  NEEDS REFUND: \(Messages.money(detail.needsRefund, show(detail.snapshot.order?.currency ?? ""))) must be returned to the customer")
        }
        if let order = snapshot.order {
            let due = order.amountDue ?? 0
            let currency = show(order.currency)
            lines.append("  amount due \(Messages.money(due, currency)) · paid \(Messages.money(detail.amountPaid, currency)) · remaining \(Messages.money(max(0, due.saturatingSubtract(detail.amountPaid)), currency))")
            if let created = order.createdAt {
                lines.append("  created \(Timestamp.iso8601(created)) · hold ends \(Timestamp.iso8601(policy.expiry(of: order, attemptMethod: Ledger.sortedAttempts(detail.snapshot.payments).last?.method)))")
            }
            var contact: [String] = []
            if let phone = order.phone { contact.append("sms \(Redact.phone(phone))") }
            if let email = order.email { contact.append("email \(Redact.email(email))") }
            if let token = order.pushToken { contact.append("push \(Redact.token(token))") }
            lines.append("  contact: \(contact.isEmpty ? "none" : contact.joined(separator: ", "))")
        } else {
            lines.append("  (no row in orders)")
        }
        if let next = nextAction {
            lines.append("Next: at \(Timestamp.iso8601(next.at)): \(next.actions.joined(separator: "; "))")
        } else if detail.nextDueAt == 0 {
            lines.append("Next: changed, planned on the next sweep")
        } else {
            lines.append("Next: nothing scheduled (acts on the next change)")
        }
        lines.append("Ledger:")
        if snapshot.payments.isEmpty && snapshot.refunds.isEmpty { lines.append("  no payments") }
        let currency = show(snapshot.order?.currency ?? "")
        for payment in Ledger.sortedAttempts(snapshot.payments) {
            var line = "  payment \(show(payment.id))  \(show(payment.status))  \(payment.amount.map { Messages.money($0, currency) } ?? "?")"
            if let at = payment.createdAt { line += "  \(Timestamp.iso8601(at))" }
            if let ref = payment.providerRef { line += "  ref=\(show(ref))" }
            if let method = payment.method { line += "  method=\(show(method))" }
            if let reason = payment.failureReason { line += "  reason=\(show(reason))" }
            lines.append(line)
        }
        for refund in snapshot.refunds {
            lines.append("  refund \(show(refund.id))  \(show(refund.status))  \(refund.amount.map { Messages.money($0, currency) } ?? "?")")
        }
        lines.append("Timeline:")
        if let note = prunedNote { lines.append("  (\(note): earlier events, deliveries and attempts are gone)") }
        for entry in detail.timeline {
            lines.append("  \(Timestamp.iso8601(entry.at))  \(entry.event)  \(show(entry.detail))")
        }
        lines.append("Deliveries:")
        if detail.deliveries.isEmpty { lines.append("  none") }
        for delivery in detail.deliveries {
            lines.append("  \(delivery.kind) step \(delivery.step) \(delivery.channel) → \(delivery.to)  \(delivery.state)  key=\(delivery.idempotencyKey)")
            if let until = delivery.heldUntil {
                // In the zone the planner held it in (the order's, else [daemon] time_zone).
                let zone = snapshot.order.map { Planner(policy: policy).timeZone(of: $0).name } ?? policy.defaultTimeZone
                let when = "\(Timestamp.local(until, timeZone: zone)), \(Timestamp.iso8601(until))"
                lines.append(delivery.state == .pending && delivery.attempts.isEmpty
                    ? "    waiting for the quiet hours to end: held until \(when)" : "    held for the quiet hours until \(when)")
            }
            for attempt in delivery.attempts {
                var line = "    attempt \(attempt.attempt) \(Timestamp.iso8601(attempt.at)) \(attempt.outcome)"
                if let status = attempt.httpStatus { line += " HTTP \(status)" }
                if let error = attempt.error { line += " error: \(error)" }
                line += " (\(attempt.durationMs) ms)"
                lines.append(line)
            }
            if delivery.state != .delivered, let error = delivery.lastError { lines.append("    last error: \(error)") }
        }
        return lines.joined(separator: "\n")
    }

    public func json() -> String {
        struct Payment: Encodable { var id: String; var amount: Int64?; var status: String; var provider_ref: String?; var method: String?; var failure_reason: String?; var created_at: String? }
        struct Next: Encodable { var at: String; var actions: [String] }
        struct Body: Encodable {
            var id: String; var status: String?; var quarantine: String?; var needs_refund: Int64
            var amount_due: Int64?; var amount_paid: Int64; var amount_remaining: Int64?; var currency: String?
            var created_at: String?; var expires_at: String?; var next: Next?
            var payments: [Payment]; var timeline: [TimelineEntry]; var deliveries: [DeliveryRecord]
            var pruned: Pruned?
        }
        struct Pruned: Encodable { var at: String; var keep: String?; var note: String }
        let order = detail.snapshot.order
        let body = Body(
            id: detail.orderID, status: detail.trackedStatus?.rawValue, quarantine: detail.quarantine, needs_refund: detail.needsRefund,
            amount_due: order?.amountDue, amount_paid: detail.amountPaid,
            amount_remaining: order?.amountDue.map { max(0, $0.saturatingSubtract(detail.amountPaid)) }, currency: order?.currency,
            created_at: order?.createdAt.map(Timestamp.iso8601), expires_at: order.map { Timestamp.iso8601(policy.expiry(of: $0, attemptMethod: Ledger.sortedAttempts(detail.snapshot.payments).last?.method)) },
            next: nextAction.map { Next(at: Timestamp.iso8601($0.at), actions: $0.actions) },
            payments: Ledger.sortedAttempts(detail.snapshot.payments).map {
                Payment(id: $0.id, amount: $0.amount, status: $0.status, provider_ref: $0.providerRef, method: $0.method,
                        failure_reason: $0.failureReason, created_at: $0.createdAt.map(Timestamp.iso8601))
            },
            timeline: detail.timeline, deliveries: detail.deliveries,
            pruned: detail.prunedAt.map { at in
                Pruned(at: Timestamp.iso8601(at), keep: detail.prunedKeepMs.map(formatDuration), note: prunedNote ?? "")
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return (try? encoder.encode(body)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
