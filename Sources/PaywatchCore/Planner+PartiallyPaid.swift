/// `partially_paid`: some money arrived, less than due, nothing in flight. Never cancelled by the
/// hold; it follows `[partially_paid]`.
///
/// - Without an installment plan the balance is one debt due at `expires_at`, else `created_at +
///   balance_due`: `balance_reminder` per `reminders` after the last payment (each payment starts
///   the series again), none at or after the due time.
/// - With a plan (`installments` rows) payments are applied to the installments in `seq` order;
///   the first one not fully paid is the one the customer hears about: `installment_due` per
///   `installment_reminders` before its `due_at`.
/// - Either way, once the debt is due: `installment_overdue` at the due time and every
///   `overdue_every` while it stays unpaid, at most `overdue_max` notices; one `overdue_every`
///   after the last, `installment_escalated` goes to ops and `on_overdue` applies (`cancel`: the
///   order is cancelled and the customer told).
///
/// Steps in keys are `seq * installmentStride + n` (the balance has seq 0), so each installment's
/// messages are told apart and none is decided twice.
extension Planner {
    static let balanceSeries = "balance_reminder"
    static let installmentStride = 1_000

    /// The installment the rules act on: the first one not fully paid, with what is open of it
    /// (without a plan: the whole balance, seq nil).
    func openInstallment(_ draft: Draft) -> Messages.InstallmentNotice? {
        let remaining = draft.ledger.amountRemaining
        guard remaining > 0 else { return nil }
        guard !draft.snapshot.installments.isEmpty else {
            return Messages.InstallmentNotice(seq: nil, open: remaining, dueAt: policy.balanceDue(of: draft.order))
        }
        var paid = draft.ledger.amountPaid
        for installment in draft.snapshot.installments.sorted(by: { $0.seq < $1.seq }) {
            let amount = installment.amount ?? 0
            let covered = min(amount, paid)
            paid -= covered
            if covered < amount {
                return Messages.InstallmentNotice(seq: installment.seq, open: amount - covered, dueAt: installment.dueAt ?? 0)
            }
        }
        // Installments that add up to less than amount_due: the rest is due with the last one.
        let last = draft.snapshot.installments.max { $0.seq < $1.seq }
        return Messages.InstallmentNotice(seq: last?.seq, open: remaining, dueAt: last?.dueAt ?? policy.balanceDue(of: draft.order))
    }

    func partiallyPaid(_ draft: inout Draft) {
        guard draft.status == .partiallyPaid, let debt = openInstallment(draft) else { return }
        let seq = Int(debt.seq ?? 0)
        let base = seq * Planner.installmentStride
        var context = draft.context()
        context.expiresAt = debt.dueAt
        context.installment = debt
        if draft.now >= debt.dueAt {
            // Due already: the overdue notices speak for it, a "due soon" would be stale.
        } else if debt.seq == nil {
            // Balance reminders after the last payment; a new payment starts the series again.
            let lastPayment = draft.attempts.last { $0.paymentStatus == .succeeded }?.createdAt ?? (draft.order.createdAt ?? 0)
            draft.reminders(series: Planner.balanceSeries, due: policy.balanceRemindersMs.map { lastPayment.saturatingAdd($0) },
                            base: draft.ledger.succeededPayments * Planner.installmentStride, channels: policy.channels(.partiallyPaid),
                            kind: .balanceReminder, until: debt.dueAt, context: context)
        } else {
            draft.reminders(series: "installment_due.\(seq)",
                            due: policy.installmentRemindersMs.map { debt.dueAt.saturatingSubtract($0) },
                            base: base, channels: policy.channels(.partiallyPaid), kind: .installmentDue, until: debt.dueAt,
                            context: context)
        }
        overdue(&draft, debt: debt, base: base, context: context)
    }

    /// Overdue notices from the due time, then the escalation and `on_overdue`.
    private func overdue(_ draft: inout Draft, debt: Messages.InstallmentNotice, base: Int, context: Messages.Context) {
        guard draft.now >= debt.dueAt else {
            draft.schedule(debt.dueAt)
            return
        }
        let series = "installment_overdue.\(debt.seq ?? 0)"
        let notices = (1...min(max(1, policy.overdueMax), Planner.installmentStride - 1)).map { debt.dueAt.saturatingAdd(Millis($0 - 1) * policy.overdueEveryMs) }
        draft.reminders(series: series, due: notices, base: base, channels: policy.channels(.partiallyPaid),
                        kind: .installmentOverdue, until: .max, context: context)
        guard draft.marks[series, default: 0] - base >= notices.count else { return }
        // The last notice went out: one more period to react, then ops and `on_overdue`.
        let escalateAt = notices[notices.count - 1].saturatingAdd(policy.overdueEveryMs)
        let escalated = "installment_escalated.\(debt.seq ?? 0)"
        guard draft.marks[escalated] == nil else {
            draft.escalationOpen = true
            return
        }
        guard draft.now >= escalateAt else {
            draft.schedule(escalateAt)
            return
        }
        draft.marks[escalated] = 1
        draft.escalationOpen = !policy.cancelOnOverdue
        draft.send(.installmentEscalated, step: base + 1, channels: [policy.opsChannel], context: context)
        if policy.cancelOnOverdue {
            draft.status = .cancelled
            // The money received so far is not a late payment (ops was just told about it).
            draft.marks[Planner.lateSeries] = draft.ledger.succeededPayments
            if draft.marks[Planner.cancelSeries] == nil {
                draft.marks[Planner.cancelSeries] = 1
                draft.send(.orderCancelled, step: 1, channels: policy.channels(.partiallyPaid), context: context)
            }
        }
    }
}
