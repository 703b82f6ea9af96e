import Foundation
import GRDB
import PaywatchCore
import Testing
import PaywatchStore

/// The state words of the public API: the stored words unchanged, and a word this release does not
/// know read as `.unknown`, never trapped on.
@Suite struct OutboxStateTests {
    @Test func rawValuesAreTheStoredWords() {
        #expect(OutboxState.allCases.map(\.rawValue)
            == ["pending", "in_flight", "delivered", "dead", "superseded", "suppressed", "capped"])
        for state in OutboxState.allCases { #expect(OutboxState(rawValue: state.rawValue) == state) }
        #expect(OutboxState(rawValue: "bounced") == .unknown("bounced"))
        #expect(OutboxState.unknown("bounced").rawValue == "bounced")
        #expect(AttemptOutcome.allCases.map(\.rawValue) == ["delivered", "retry", "dead"])
        #expect(AttemptOutcome(rawValue: "throttled") == .unknown("throttled"))
        #expect(ReconcileState.allCases.map(\.rawValue) == ["pending", "reconciled", "unresolved"])
        #expect(OrderFilter(rawValue: "partially_paid") == .status(.partiallyPaid))
        #expect(OrderFilter(rawValue: "needs_refund") == .needsRefund && OrderFilter(rawValue: "quarantined") == .quarantined)
        #expect(OrderFilter(rawValue: "new") == nil)
        #expect(OrderFilter.status(.paid).rawValue == "paid")
    }

    /// Keyed by state, the counts encode as the same JSON objects as the string-keyed ones did.
    @Test func jsonKeepsTheWords() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let outbox: [OutboxState: Int] = [.pending: 1, .inFlight: 2, .unknown("bounced"): 3]
        #expect(String(decoding: try encoder.encode(outbox), as: UTF8.self) == #"{"bounced":3,"in_flight":2,"pending":1}"#)
        let strings: [String: Int] = ["pending": 1, "in_flight": 2, "bounced": 3]
        #expect(try encoder.encode(outbox) == encoder.encode(strings))
        let record = AttemptRecord(attempt: 1, at: 2, durationMs: 3, outcome: .unknown("throttled"))
        #expect(String(decoding: try encoder.encode(record), as: UTF8.self)
            == #"{"at":2,"attempt":1,"durationMs":3,"outcome":"throttled"}"#)
        let decoded = try JSONDecoder().decode([OutboxState: Int].self, from: encoder.encode(outbox))
        #expect(decoded == outbox)
    }

    /// A row whose state (or attempt outcome) was written by hand or by a newer release: shown and
    /// counted under its own word by `orders show`, `status` and `report`, and never claimed.
    @Test func anUnknownStateFromTheDatabaseIsKeptNotTrappedOn() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('U', 100, ?, '+8613800000000')",
                           arguments: [t0])
        }
        _ = try await sweepAll(store, now: t0)
        try await temp.shop().write { db in
            try db.execute(sql: """
                INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, state, due_at, created_at, updated_at)
                VALUES ('k-new', 'U', 'unpaid_reminder', 9, 'sms', '+8613800000000', 'pay', 'bounced', ?, ?, ?)
                """, arguments: [t0, t0, t0])
            try db.execute(sql: """
                INSERT INTO pw_attempts(outbox_id, attempt, at, duration_ms, outcome)
                SELECT id, 1, ?, 5, 'throttled' FROM pw_outbox WHERE idempotency_key = 'k-new'
                """, arguments: [t0])
        }
        let detail = try #require(try await store.order(id: "U"))
        let odd = try #require(detail.deliveries.first { $0.idempotencyKey == "k-new" })
        #expect(odd.state == .unknown("bounced"))
        #expect(odd.attempts.map(\.outcome) == [.unknown("throttled")])
        let health = try await store.health(now: t0)
        #expect(health.outbox[.unknown("bounced")] == 1)
        let report = try await store.report(since: 0, now: t0)
        #expect(report.messages.contains { $0.state == .unknown("bounced") && $0.count == 1 })
        #expect(report.attempts[.unknown("throttled")] == 1)
        #expect(try await store.orders(.status(.unpaid), limit: 10).map(\.id) == ["U"])
        #expect(try await store.orders(.status(.paid), limit: 10).isEmpty)
        #expect(try await store.orders(nil, limit: 10).map(\.status) == ["unpaid"])
        // Never claimed: only pending rows are.
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10], knownChannels: ["sms"], leaseMs: 30_000), now: t0 + 60 * minute)
        #expect(!claim.messages.contains { $0.message.idempotencyKey == "k-new" })
        try await store.close()
    }
}
