/// `unpaid` (and `failed`, which shares the hold): the reminders after `created_at`, and the
/// cancel when the hold runs out with no money received and nothing in flight.
extension Planner {
    /// The hold ran out with no money received and nothing in flight: cancel, and tell the customer once.
    func holdExpiry(_ draft: inout Draft) {
        guard draft.status == .unpaid || draft.status == .failed else { return }
        guard draft.now >= draft.expiresAt else {
            draft.schedule(draft.expiresAt)
            return
        }
        draft.status = .cancelled
        if draft.marks[Planner.cancelSeries] == nil {
            draft.marks[Planner.cancelSeries] = 1
            draft.send(.orderCancelled, step: 1, channels: policy.channels(.unpaid), context: draft.context())
        }
    }

    /// `[unpaid].reminders` after `created_at`.
    func unpaidReminders(_ draft: inout Draft) {
        let createdAt = draft.order.createdAt ?? 0
        draft.reminders(series: Planner.unpaidSeries, due: policy.unpaidRemindersMs.map { createdAt + $0 }, base: 0,
                        channels: policy.channels(.unpaid))
    }
}
