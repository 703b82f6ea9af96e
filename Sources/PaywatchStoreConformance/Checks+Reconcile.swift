import PaywatchCore
import PaywatchStore

private typealias F = Fixture

/// Reconciliation: requests stored with plans, claimed under a lease, recorded once.
extension StoreConformance {
    static let reconcileChecks: [Check] = [
        Check(name: "aStalledAttemptIsClaimedForReconcilingOnceWhileLeased", run: aStalledAttemptIsClaimedForReconcilingOnceWhileLeased),
        Check(name: "aDefiniteAnswerUpdatesThePaymentOnce", run: aDefiniteAnswerUpdatesThePaymentOnce),
        Check(name: "anUnresolvedAnswerSendsTheFallbackOnce", run: anUnresolvedAnswerSendsTheFallbackOnce),
        Check(name: "concurrentReconcileClaimsNeverShareARequest", run: concurrentReconcileClaimsNeverShareARequest),
    ]

    /// `count` orders with a pending attempt each, stalled at `t0 + 15 min`: one request each.
    static func stalledAttempts(_ harness: any ConformanceHarness, _ store: any OrderStore, count: Int = 1) async throws {
        for i in 0..<count {
            try await harness.insertOrder(F.order("R\(i)"))
            try await harness.insertPayment(ShopPayment(id: "P\(i)", orderID: "R\(i)", status: .pending, providerRef: "ref \(i)",
                                                        createdAt: F.t0))
        }
        try await F.sweep(store, now: F.t0 + F.minute, planner: F.reconciling)
        let plans = try await F.sweep(store, now: F.t0 + 15 * F.minute, planner: F.reconciling)
        try expectEqual(plans.flatMap(\.reconciles).count, count, "reconcile requests planned")
    }

    /// A request is due from the plan, claimed once while leased, due again at its lease's end
    /// to any owner, and released by its owner's `releaseLeases`.
    static func aStalledAttemptIsClaimedForReconcilingOnceWhileLeased(_ harness: any ConformanceHarness) async throws {
        let first = try await F.store(harness, "first")
        let second = try await F.store(harness, "second")
        try expectEqual(try await first.nextReconcileAt(), nil, "next reconcile time with nothing to ask")
        try await stalledAttempts(harness, first)
        let now = F.t0 + 15 * F.minute
        try expectEqual(try await first.nextReconcileAt(), now, "next reconcile time")
        let tasks = try await first.claimReconciles(now: now, limit: 10, leaseMs: F.minute)
        try expectEqual(tasks.map(\.request.paymentID), ["P0"], "requests claimed")
        try expectEqual(tasks.first?.request.providerRef, "ref 0", "the request's provider reference")
        try expectEqual(tasks.first?.request.fallback?.kind, .payingStalled, "the request's fallback")
        try expectEqual(try await second.claimReconciles(now: now, limit: 10, leaseMs: F.minute).count, 0, "claimed again while leased")
        try expectEqual(try await first.nextReconcileAt(), now + F.minute, "next reconcile time: the lease's end")
        _ = try await second.releaseLeases(now: now + 5)
        try expectEqual(try await first.nextReconcileAt(), now + F.minute, "next reconcile time after another owner's release")
        _ = try await first.releaseLeases(now: now + 5)
        try expectEqual(try await first.nextReconcileAt(), now + 5, "next reconcile time after its owner's release")
        try expectEqual(try await first.claimReconciles(now: now + 5, limit: 10, leaseMs: F.minute).count, 1, "claimed after the release")
        try expectEqual(try await second.claimReconciles(now: now + 5 + F.minute, limit: 10, leaseMs: F.minute).map(\.id),
                        tasks.map(\.id), "claimed by another after the lease")
    }

    /// A definite answer updates a pending payments row (status and failure reason) once, writes a
    /// `reconciled` event, and the order is due at once; recording again changes nothing.
    static func aDefiniteAnswerUpdatesThePaymentOnce(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await stalledAttempts(harness, store, count: 2)
        let now = F.t0 + 15 * F.minute
        let tasks = try await store.claimReconciles(now: now, limit: 10, leaseMs: F.minute).sorted { $0.request.paymentID < $1.request.paymentID }
        try expectEqual(tasks.count, 2, "requests claimed")
        try await store.recordReconciles([
            ReconcileOutcome(task: tasks[0], answer: .definite(.succeeded, failureReason: nil), detail: "status paid (HTTP 200)"),
            ReconcileOutcome(task: tasks[1], answer: .definite(.failed, failureReason: "card_declined"), detail: "status failed (HTTP 200)"),
        ], now: now + 100)
        try expectEqual(try await harness.paymentState(id: "P0"), ShopPaymentState(status: "succeeded", failureReason: nil), "P0")
        try expectEqual(try await harness.paymentState(id: "P1"), ShopPaymentState(status: "failed", failureReason: "card_declined"), "P1")
        try expectEqual(try await store.nextReconcileAt(), nil, "next reconcile time once answered")
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after the payments changed")
        // Recorded again with another answer: nothing changes, nothing is sent.
        try await store.recordReconciles([ReconcileOutcome(task: tasks[0], answer: .definite(.failed, failureReason: "late"), detail: "again"),
                                          ReconcileOutcome(task: tasks[1], answer: .unresolved, detail: "again")], now: now + 200)
        try expectEqual(try await harness.paymentState(id: "P0"), ShopPaymentState(status: "succeeded", failureReason: nil), "P0 after a repeat")
        let plans = try await F.sweep(store, now: now + 300, planner: F.reconciling)
        try expectEqual(plans.first { $0.orderID == "R0" }?.status, .paid, "R0 after its answer")
        try expectEqual(plans.first { $0.orderID == "R1" }?.status, .failed, "R1 after its answer")
        try expectEqual(try await F.claim(store, now: now + 300, ["ops"]).messages.count, 0, "fallbacks sent")
        let detail = try require(try await store.order(id: "R0"), "R0's detail")
        try expectEqual(detail.timeline.filter { $0.event == "reconciled" }.count, 1, "reconciled events")
    }

    /// Any other answer sends the request's fallback once and leaves the payment alone.
    static func anUnresolvedAnswerSendsTheFallbackOnce(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await stalledAttempts(harness, store)
        let now = F.t0 + 15 * F.minute
        let task = try require(try await store.claimReconciles(now: now, limit: 10, leaseMs: F.minute).first, "the request")
        try await store.recordReconciles([ReconcileOutcome(task: task, answer: .unresolved, detail: "HTTP 500")], now: now + 1)
        try await store.recordReconciles([ReconcileOutcome(task: task, answer: .unresolved, detail: "HTTP 500")], now: now + 2)
        try expectEqual(try await harness.paymentState(id: "P0")?.status, "pending", "the payment")
        let ops = try await F.claim(store, now: now + 3, ["ops"]).messages
        try expectEqual(ops.map(\.message.kind), [.payingStalled], "the fallback, once")
        try expectEqual(ops.first?.message.idempotencyKey, task.request.fallback?.idempotencyKey, "the fallback's key")
        try expectEqual(ops.first?.message.recipient, "oncall", "the fallback's recipient")
        let detail = try require(try await store.order(id: "R0"), "R0's detail")
        try expect(detail.timeline.contains { $0.event == "reconcile_unresolved" && $0.detail.contains("HTTP 500") },
                   "a reconcile_unresolved event naming the answer")
        try expectEqual(try await store.nextReconcileAt(), nil, "next reconcile time once answered")
    }

    /// Many reconcile claims at once from two owners: every request is returned exactly once.
    static func concurrentReconcileClaimsNeverShareARequest(_ harness: any ConformanceHarness) async throws {
        let stores = [try await F.store(harness, "first"), try await F.store(harness, "second")]
        try await stalledAttempts(harness, stores[0], count: 12)
        let now = F.t0 + 15 * F.minute
        let ids = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for i in 0..<10 {
                let store = stores[i % 2]
                group.addTask { try await store.claimReconciles(now: now, limit: 2, leaseMs: F.minute).map(\.id) }
            }
            var all: [Int64] = []
            for try await claimed in group { all += claimed }
            return all
        }
        try expectEqual(ids.count, 12, "requests claimed in all")
        try expectEqual(Set(ids).count, ids.count, "distinct requests claimed (one was returned twice)")
    }
}
