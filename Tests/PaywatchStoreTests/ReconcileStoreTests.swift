import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

@Suite struct ReconcileStoreTests {
    static let paying = Planner(policy: Policy(unpaidChannels: ["sms"], payingStallAfterMs: 15 * minute, payingEscalations: 3,
                                               reconcileEnabled: true, fixedRecipients: ["ops": "oncall"]))

    func sweep(_ store: SQLiteOrderStore, now: Millis) async throws -> [Plan] {
        try await store.sweep(now: now, limit: 500) { Self.paying.plan($0, now: now) }.plans
    }

    /// Two orders with a pending attempt each, stalled: two requests stored with the plans.
    func stalled() async throws -> (TempDatabase, SQLiteOrderStore, [ReconcileTask]) {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for id in ["A1", "A2"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: [id, t0])
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, ?, 100, 'pending', ?, ?)",
                               arguments: ["P-" + id, id, "ref " + id, t0])
            }
        }
        _ = try await sweep(store, now: t0 + minute)
        let plans = try await sweep(store, now: t0 + 15 * minute)
        #expect(plans.flatMap(\.reconciles).count == 2)
        #expect(try await store.nextReconcileAt() == t0 + 15 * minute)
        let tasks = try await store.claimReconciles(now: t0 + 15 * minute, limit: 10, leaseMs: minute)
        #expect(tasks.count == 2)
        // Leased: not claimed twice, due again when the lease ends (or at the next start).
        #expect(try await store.claimReconciles(now: t0 + 15 * minute, limit: 10, leaseMs: minute).isEmpty)
        #expect(try await store.nextReconcileAt() == t0 + 16 * minute)
        return (temp, store, tasks.sorted { $0.request.orderID < $1.request.orderID })
    }

    @Test func aDefiniteAnswerUpdatesThePaymentAndTheOrderMovesOn() async throws {
        let (temp, store, tasks) = try await stalled()
        #expect(tasks[0].request.providerRef == "ref A1")
        try await store.recordReconciles([
            ReconcileOutcome(task: tasks[0], answer: .definite(.succeeded, failureReason: nil), detail: "status \"paid\" (HTTP 200)"),
            ReconcileOutcome(task: tasks[1], answer: .definite(.failed, failureReason: "card_declined"), detail: "status \"FAILED\" (HTTP 200)"),
        ], now: t0 + 15 * minute + 100)
        let rows = try await temp.shop().read { db in
            try Row.fetchAll(db, sql: "SELECT id, status, failure_reason FROM payments ORDER BY id")
        }
        #expect(rows.map { $0["status"] as String } == ["succeeded", "failed"])
        #expect(rows.map { $0["failure_reason"] as String? } == [nil, "card_declined"])
        // The shop's triggers marked both orders: planned at once.
        #expect(try await store.nextPlanningAt() == 0)
        let plans = try await sweep(store, now: t0 + 16 * minute)
        #expect(Set(plans.map(\.status)) == [.paid, .failed])
        // (The failed one also gets the [failed] reminder its attempt's created_at makes due.)
        #expect(Set(plans.flatMap(\.messages).map(\.kind)).isSuperset(of: [.paymentConfirmed, .paymentFailed]))
        let a1 = try #require(try await store.order(id: "A1"))
        #expect(a1.timeline.contains { $0.event == "reconciled" && $0.detail.contains("succeeded") && $0.detail.contains("HTTP 200") })
        // Nothing left to ask; the fallbacks were not sent; recording again changes nothing.
        #expect(try await store.nextReconcileAt() == nil)
        try await store.recordReconciles([ReconcileOutcome(task: tasks[0], answer: .unresolved, detail: "again")], now: t0 + 17 * minute)
        let stalledMessages = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE kind = 'paying_stalled'") }
        #expect(stalledMessages == 0)
    }

    @Test func anUnresolvedAnswerSendsTheFallbackOnceAndLeavesThePaymentAlone() async throws {
        let (temp, store, tasks) = try await stalled()
        try await store.recordReconciles([ReconcileOutcome(task: tasks[0], answer: .unresolved, detail: "HTTP 500")], now: t0 + 15 * minute)
        try await store.recordReconciles([ReconcileOutcome(task: tasks[0], answer: .unresolved, detail: "HTTP 500")], now: t0 + 15 * minute)
        let (status, outbox) = try await temp.shop().read { db in
            (try String.fetchOne(db, sql: "SELECT status FROM payments WHERE id = 'P-A1'"),
             try Row.fetchAll(db, sql: "SELECT kind, channel, recipient FROM pw_outbox"))
        }
        #expect(status == "pending")
        #expect(outbox.count == 1)
        #expect(outbox.first?["kind"] as String? == "paying_stalled")
        #expect(outbox.first?["recipient"] as String? == "oncall")
        let a1 = try #require(try await store.order(id: "A1"))
        #expect(a1.timeline.contains { $0.event == "reconcile_unresolved" && $0.detail.contains("HTTP 500") })
        // A run that ended with the other one claimed: due again at the next start.
        #expect(try await store.releaseLeases(now: t0 + 15 * minute + 5) == 0)
        #expect(try await store.nextReconcileAt() == t0 + 15 * minute + 5)
    }

    @Test func anAnswerForAPaymentNoLongerPendingChangesNothing() async throws {
        let (temp, store, tasks) = try await stalled()
        try await temp.shop().write { try $0.execute(sql: "UPDATE payments SET status = 'failed', failure_reason = 'timeout' WHERE id = 'P-A1'") }
        try await store.recordReconciles([ReconcileOutcome(task: tasks[0], answer: .definite(.succeeded, failureReason: nil), detail: "x")],
                                         now: t0 + 15 * minute)
        let status = try await temp.shop().read { try String.fetchOne($0, sql: "SELECT status FROM payments WHERE id = 'P-A1'") }
        #expect(status == "failed")
        let a1 = try #require(try await store.order(id: "A1"))
        #expect(a1.timeline.contains { $0.event == "reconciled" && $0.detail.contains("no longer pending") })
    }
}
