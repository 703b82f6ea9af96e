/// `cancelled`: terminal. Money that arrives afterwards goes to ops, who refund it or reinstate
/// the order: `late_payment`, once per succeeded payment.
extension Planner {
    func latePayment(_ draft: inout Draft) {
        let succeeded = draft.ledger.succeededPayments
        guard draft.status == .cancelled, draft.previous == .cancelled,
              succeeded > draft.marks[Planner.lateSeries, default: 0] else { return }
        draft.marks[Planner.lateSeries] = succeeded
        draft.send(.latePayment, step: succeeded, channels: [policy.opsChannel], context: draft.context())
    }
}
