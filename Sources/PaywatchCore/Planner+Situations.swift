/// Ops alerts that can clear: a stalled payment attempt (`paying_stalled`), a stalled refund
/// (`refund_stalled`), an installment overdue after the last notice (`installment_escalated`),
/// money to return (`duplicate_payment`, `late_payment`). When a plan alerts of one while it is
/// still the case, the marks remember it (`alert.KIND`); when a later plan finds it cleared (the
/// attempt is no longer pending, the refund moved, the installment was paid, the money was
/// returned), ops gets `situation_resolved` once, and PagerDuty resolves the incident it opened.
extension Planner {
    static let resolvableKinds: [NotificationKind] = [
        .payingStalled, .refundStalled, .installmentEscalated, .duplicatePayment, .latePayment,
    ]

    func situations(_ draft: inout Draft) {
        var triggered = Set(draft.messages.map(\.kind))
        if !draft.reconciles.isEmpty { triggered.insert(.payingStalled) }  // ops hears of it if the provider cannot say
        for (index, kind) in Planner.resolvableKinds.enumerated() {
            let alert = "alert.\(kind.rawValue)"
            let open = isOpen(kind, draft)
            if triggered.contains(kind) {
                if open { draft.marks[alert] = 1 }
                continue
            }
            guard draft.marks[alert] != nil, !open else { continue }
            draft.marks[alert] = nil
            let counter = "resolved.\(kind.rawValue)"
            let count = draft.marks[counter, default: 0] + 1
            draft.marks[counter] = count
            var context = draft.context()
            let how = howCleared(kind, draft)
            context.resolved = (kind, how)
            context.status = draft.status
            draft.events.append(PlanEvent("situation_resolved", "\(kind.rawValue): \(how)"))
            guard var message = draft.message(.situationResolved, step: (index + 1) * 100_000 + min(count, 99_999),
                                              channel: policy.opsChannel, context: context) else { continue }
            message.resolves = kind
            draft.messages.append(message)
        }
    }

    /// Whether ops would still be alerted of `kind` for this order as it stands now.
    private func isOpen(_ kind: NotificationKind, _ draft: Draft) -> Bool {
        switch kind {
        case .payingStalled:
            return draft.attempts.contains { attempt in
                let hash = Planner.idHash(attempt.id)
                return attempt.paymentStatus == .pending
                    && (draft.marks["paying.\(hash)", default: 0] > 0 || draft.marks["paying_given_up.\(hash)"] != nil)
            }
        case .refundStalled:
            return draft.snapshot.refunds.contains { refund in
                guard let status = refund.refundStatus, status == .requested || status == .processing else { return false }
                return draft.marks["refund_stalled.\(Planner.idHash(refund.id))"] == Planner.refundStatusCode(status)
            }
        case .installmentEscalated:
            return draft.escalationOpen
        case .duplicatePayment, .latePayment:
            return draft.needsRefund > 0
        default:
            return false
        }
    }

    private func howCleared(_ kind: NotificationKind, _ draft: Draft) -> String {
        switch kind {
        case .payingStalled: return "no stalled payment attempt is pending any more (order \(draft.status.rawValue))"
        case .refundStalled: return "no stalled refund is waiting any more (order \(draft.status.rawValue))"
        case .installmentEscalated: return "the overdue installment is no longer open (order \(draft.status.rawValue))"
        default: return "nothing is left to return to the customer (order \(draft.status.rawValue))"
        }
    }
}
