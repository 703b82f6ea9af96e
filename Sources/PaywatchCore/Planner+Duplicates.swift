/// Money the shop must give back. Two succeeded payments with one `provider_ref`, or succeeded
/// payments adding up to more than is due, send `duplicate_payment` to ops with the amount to
/// return — once per succeeded payment that made it so — and set `needs_refund` (`orders show`,
/// `orders list`, `report`) until refunds cover it. On a cancelled order all the money received
/// is owed back (ops hears of it through `late_payment`).
extension Planner {
    static let duplicateSeries = "duplicate_payment"

    func duplicates(_ draft: inout Draft) {
        let ledger = draft.ledger
        var returning: Int64 = 0
        for refund in draft.snapshot.refunds {
            switch refund.refundStatus {
            case .requested?, .processing?, .succeeded?: returning = returning.saturatingAdd(refund.amount ?? 0)
            default: break
            }
        }
        if draft.status == .cancelled {
            draft.needsRefund = max(0, ledger.amountPaid.saturatingSubtract(returning))
            return
        }
        // Repeated provider references: every payment after the first with a reference.
        var seenIDs: Set<String> = []
        var seenRefs: Set<String> = []
        var repeated: Int64 = 0
        var repeatedRef: String?
        for payment in draft.attempts where payment.paymentStatus == .succeeded && seenIDs.insert(payment.id).inserted {
            guard let ref = payment.providerRef, !ref.isEmpty else { continue }
            if !seenRefs.insert(ref).inserted {
                repeated = repeated.saturatingAdd(payment.amount ?? 0)
                repeatedRef = ref
            }
        }
        let excess = max(0, ledger.amountPaid.saturatingSubtract(ledger.amountDue))
        let owed = max(repeated, excess)
        guard owed > 0 else { return }
        draft.needsRefund = max(0, owed.saturatingSubtract(returning))
        guard ledger.succeededPayments > draft.marks[Planner.duplicateSeries, default: 0] else { return }
        draft.marks[Planner.duplicateSeries] = ledger.succeededPayments
        let why = repeatedRef.map { "two succeeded payments with provider_ref \(Validator.display($0))" }
            ?? "more than the amount due"
        var context = draft.context()
        context.toReturn = (owed, why)
        draft.send(.duplicatePayment, step: ledger.succeededPayments, channels: [policy.opsChannel], context: context)
    }
}
