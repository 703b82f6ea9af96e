/// `failed`: the latest attempt failed and no money arrived. The customer is told at once why
/// and how to retry, then reminded per `[failed].reminders` until the hold ends.
extension Planner {
    static let failedSeenSeries = "payment_failed_at"

    /// The newest failed attempt, if any.
    func lastFailure(_ draft: Draft) -> PaymentRecord? {
        draft.attempts.last { $0.paymentStatus == .failed }
    }

    /// A newly failed attempt: `payment_failed` with its reason, once per failed attempt.
    func failureNotice(_ draft: inout Draft) {
        let failed = draft.ledger.failedPayments
        guard failed > draft.marks[Planner.failedNoticeSeries, default: 0] else { return }
        draft.marks[Planner.failedNoticeSeries] = failed
        // When paywatch learned of it: a failure reported late (by the provider's answer to a
        // reconcile, or a shop that writes it late) starts its reminders from here, not from the
        // attempt's created_at, so the first reminder never follows the notice at once.
        draft.marks[Planner.failedSeenSeries] = Int(draft.now)
        if draft.status == .failed, draft.now < draft.expiresAt {
            draft.send(.paymentFailed, step: failed, channels: policy.channels(.failed),
                       context: draft.context(failureReason: lastFailure(draft)?.failureReason))
        }
    }

    /// `[failed].reminders` after the latest failed attempt; each failed attempt starts its own
    /// series of steps (`attempt * failedStride + index`).
    func failedReminders(_ draft: inout Draft) {
        guard let failedAt = lastFailure(draft)?.createdAt else { return }
        let from = max(failedAt, Millis(draft.marks[Planner.failedSeenSeries] ?? 0))
        draft.reminders(series: Planner.failedSeries, due: policy.failedRemindersMs.map { from.saturatingAdd($0) },
                        base: draft.ledger.failedPayments * Planner.failedStride, channels: policy.channels(.failed))
    }
}
