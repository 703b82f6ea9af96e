/// `cancelled`: terminal. Money that arrives afterwards goes to ops, who refund it or reinstate
/// the order: `late_payment`, once per succeeded payment. With `[cancelled].on_late_payment =
/// "reinstate"`, money that covers the amount due makes the order paid again (the customer then
/// gets `payment_confirmed`); ops is told either way.
extension Planner {
    func latePayment(_ draft: inout Draft) {
        let succeeded = draft.ledger.succeededPayments
        guard draft.status == .cancelled, draft.previous == .cancelled,
              succeeded > draft.marks[Planner.lateSeries, default: 0] else { return }
        draft.marks[Planner.lateSeries] = succeeded
        draft.send(.latePayment, step: succeeded, channels: [policy.opsChannel], context: draft.context())
        if policy.reinstateLatePayments, draft.ledger.amountPaid >= draft.ledger.amountDue, draft.ledger.activeRefunds == 0,
           draft.ledger.pendingPayments == 0 {
            draft.status = .paid
            draft.events.append(PlanEvent("reinstated", "the late payment covers the amount due ([cancelled] on_late_payment = \"reinstate\")"))
        }
    }
}
