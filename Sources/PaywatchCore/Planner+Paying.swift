/// `paying`: an attempt is `pending`. No reminders and no cancel while it holds the order.
///
/// - At `created_at + k × [paying].stall_after`, for k = 1 … `escalations`, the attempt is stalled:
///   with `reconcile_url` set and a `provider_ref`, the plan carries a ``ReconcileRequest`` (the
///   daemon asks the provider; a definite answer updates the payments row and the order moves on
///   at its next plan; anything else sends the request's fallback, `paying_stalled` to ops);
///   without them, `paying_stalled` goes to ops at once. Asks missed while paywatch was down
///   collapse into the latest one; an answer "still pending" is not asked again before the next k.
/// - At `created_at + give_up_after` the attempt no longer holds the order (``Draft`` leaves it
///   out of the status: hold and reminders resume, and an expired hold cancels) and ops is told
///   once: `paying_stalled` with a "given up" text, and a `paying_given_up` timeline event.
///
/// Per attempt, marks remember the asks made (`paying.<h>`) and the give-up (`paying_given_up.<h>`),
/// `h` a hash of the payment id as for refunds. Steps in keys are `h × 1000 + k`, the give-up
/// `h × 1000 + 999`.
extension Planner {
    static let payingStride = 1_000
    static let givenUpStep = 999

    func paying(_ draft: inout Draft) {
        guard draft.pendingHolds else { return }
        var seen: Set<String> = []
        for attempt in draft.attempts where attempt.paymentStatus == .pending && seen.insert(attempt.id).inserted {
            let createdAt = attempt.createdAt ?? 0
            let hash = Planner.idHash(attempt.id)
            let giveUpAt = createdAt.saturatingAdd(policy.payingGiveUpAfterMs)
            if draft.now >= giveUpAt {
                giveUp(&draft, attempt, hash: hash)
                continue
            }
            draft.schedule(giveUpAt)
            let stall = policy.payingStallAfterMs
            let escalations = min(policy.payingEscalations, Planner.givenUpStep - 1)
            guard escalations > 0 else { continue }
            let asked = draft.marks["paying.\(hash)", default: 0]
            let elapsed = draft.now.saturatingSubtract(createdAt)
            let due = elapsed >= stall ? Int(min(Int64(escalations), elapsed / stall)) : 0
            if due > asked {
                draft.marks["paying.\(hash)"] = due
                ask(&draft, attempt, hash: hash, ask: due, of: escalations)
            }
            let done = max(asked, due)
            if done < escalations {
                let offset = stall.multipliedReportingOverflow(by: Int64(done + 1))
                let next = offset.overflow ? Millis.max : createdAt.saturatingAdd(offset.partialValue)
                if next < giveUpAt { draft.schedule(next) }
            }
        }
    }

    /// Stall `k` of an attempt: a reconcile request with `paying_stalled` as its fallback, or
    /// `paying_stalled` at once when the provider cannot be asked.
    private func ask(_ draft: inout Draft, _ attempt: PaymentRecord, hash: Int, ask k: Int, of total: Int) {
        let step = hash * Planner.payingStride + k
        let ref = attempt.providerRef ?? ""
        let why: String
        if !policy.reconcileEnabled {
            why = "no [paying] reconcile_url is set"
        } else if ref.isEmpty {
            why = "the payment has no provider_ref"
        } else {
            var context = draft.context()
            context.stalled = Messages.StalledAttempt(payment: attempt, escalation: k, of: total, note: .asked)
            let fallback = draft.message(.payingStalled, step: step, channel: policy.opsChannel, context: context)
            draft.reconciles.append(ReconcileRequest(orderID: draft.order.id, paymentID: attempt.id, providerRef: ref,
                                                     step: step, fallback: fallback))
            draft.events.append(PlanEvent("reconcile_asked", "payment \(Validator.display(attempt.id)): stalled, ask \(k) of \(total)"))
            return
        }
        var context = draft.context()
        context.stalled = Messages.StalledAttempt(payment: attempt, escalation: k, of: total, note: .notAsked(why))
        draft.send(.payingStalled, step: step, channels: [policy.opsChannel], context: context)
    }

    /// Past `give_up_after`: ops is told once; the status already leaves the attempt out.
    private func giveUp(_ draft: inout Draft, _ attempt: PaymentRecord, hash: Int) {
        let key = "paying_given_up.\(hash)"
        guard draft.marks[key] == nil else { return }
        draft.marks[key] = 1
        draft.events.append(PlanEvent("paying_given_up", "payment \(Validator.display(attempt.id)) pending since \(Timestamp.iso8601(attempt.createdAt ?? 0)): it no longer holds the order"))
        var context = draft.context()
        context.stalled = Messages.StalledAttempt(payment: attempt, escalation: Planner.givenUpStep, of: policy.payingEscalations,
                                                  note: .givenUp)
        draft.send(.payingStalled, step: hash * Planner.payingStride + Planner.givenUpStep, channels: [policy.opsChannel],
                   context: context)
    }
}
