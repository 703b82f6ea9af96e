/// `paid`: the money due arrived. `payment_confirmed` goes out once.
extension Planner {
    func confirmation(_ draft: inout Draft) {
        guard draft.status == .paid, draft.marks[Planner.confirmSeries] == nil else { return }
        draft.marks[Planner.confirmSeries] = 1
        draft.send(.paymentConfirmed, step: 1, channels: policy.channels(.paid), context: draft.context())
    }
}
