/// Refunds, whatever the order's status (`refunding` while one is `requested` or `processing`;
/// `refunded` when they cover what was paid, else back to `paid`): `refund_progress` to the
/// customer when a refund appears and on every status change; `refund_stalled` to ops, once per
/// refund and status, when one has not moved for `[refunding].stall_after`.
///
/// Per refund, the marks remember the status last told (`refund.<h>`) and since when it has not
/// moved (`refund_at.<h>`), where `h` is a hash of the refund id (ids may hold characters the
/// marks' text form reserves). Steps in keys are `h × 10 + status`.
extension Planner {
    static func refundStatusCode(_ status: RefundStatus) -> Int {
        switch status {
        case .requested: return 1
        case .processing: return 2
        case .succeeded: return 3
        case .failed: return 4
        }
    }

    /// A stable 6-digit hash of a refund or payment id (FNV-1a), for marks and steps (ids may
    /// hold characters the marks' text form reserves).
    static func idHash(_ id: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in id.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return Int(hash % 1_000_000)
    }

    func refunds(_ draft: inout Draft) {
        let refunds = draft.snapshot.refunds.sorted { ($0.requestedAt ?? 0, $0.id) < ($1.requestedAt ?? 0, $1.id) }
        var seen: Set<String> = []
        for refund in refunds where seen.insert(refund.id).inserted {
            guard let status = refund.refundStatus else { continue }
            let hash = Planner.idHash(refund.id)
            let code = Planner.refundStatusCode(status)
            let toldKey = "refund.\(hash)"
            let sinceKey = "refund_at.\(hash)"
            if draft.marks[toldKey] != code {
                // A refund first seen in a status it entered earlier counts from its request.
                let since = draft.marks[toldKey] == nil ? (refund.requestedAt ?? draft.now) : draft.now
                draft.marks[toldKey] = code
                draft.marks[sinceKey] = Int(min(since, draft.now))
                draft.send(.refundProgress, step: hash * 10 + code, channels: policy.channels(.refunding),
                           context: refundContext(draft, refund))
            }
            guard status == .requested || status == .processing else { continue }
            let since = Millis(draft.marks[sinceKey] ?? Int(draft.now))
            let stalledAt = since.saturatingAdd(policy.refundStallAfterMs)
            let stalledKey = "refund_stalled.\(hash)"
            guard draft.marks[stalledKey] != code else { continue }
            if draft.now >= stalledAt {
                draft.marks[stalledKey] = code
                var context = refundContext(draft, refund)
                context.refundSince = since
                draft.send(.refundStalled, step: hash * 10 + code, channels: [policy.opsChannel], context: context)
            } else {
                draft.schedule(stalledAt)
            }
        }
    }

    private func refundContext(_ draft: Draft, _ refund: RefundRecord) -> Messages.Context {
        var context = draft.context()
        context.refund = refund
        return context
    }
}
