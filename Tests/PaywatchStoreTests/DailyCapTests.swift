import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// `[delivery] max_per_order_per_day`, enforced by the claim on a real SQLite file.
@Suite struct DailyCapTests {
    static let hour: Millis = 3_600_000
    static let channels = ["sms", "email", "push", "ops"]

    /// An outbox row as delivery left it: `state` (`delivered` at `at`, or `pending` due at `at`).
    static func row(_ db: Database, _ order: String, _ kind: NotificationKind, step: Int, channel: String, state: String,
                    at: Millis) throws {
        try db.execute(sql: """
            INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, state, due_at, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, 'to', '{}', ?, ?, ?, ?)
            """, arguments: [OutgoingMessage.key(orderID: order, kind: kind, step: step, channel: channel), order, kind.rawValue, step,
                             channel, state, at, at, at])
    }

    static func claim(_ store: SQLiteOrderStore, cap: Int?, now: Millis) async throws -> DeliveryClaim {
        var request = DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, 50) }),
                                           knownChannels: channels, leaseMs: 60_000)
        request.maxPerOrderPerDay = cap
        return try await store.claimDeliveries(request, now: now)
    }

    static func names(_ messages: [OutboxMessage]) -> [String] {
        messages.map { "\($0.message.orderID) \($0.message.kind.rawValue) \($0.message.step) \($0.message.channel)" }.sorted()
    }

    @Test func remindersBeyondTheCapAreCappedEachDecisionCountedOnceAndNoticesAlwaysGo() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            // A: a reminder on two channels (one decision) and a failure notice, both within 24 h: 2 sent.
            try Self.row(db, "A", .unpaidReminder, step: 1, channel: "sms", state: "delivered", at: t0 - 23 * Self.hour)
            try Self.row(db, "A", .unpaidReminder, step: 1, channel: "email", state: "delivered", at: t0 - 23 * Self.hour)
            try Self.row(db, "A", .paymentFailed, step: 1, channel: "sms", state: "delivered", at: t0 - Self.hour)
            // Older than 24 h: no longer counts.
            try Self.row(db, "A", .balanceReminder, step: 9, channel: "sms", state: "delivered", at: t0 - 25 * Self.hour)
            // Due now: a new reminder (capped), the same decision on a third channel (goes: it is the
            // same message), a cancellation (a notice: always goes) and an ops message (never capped).
            try Self.row(db, "A", .unpaidReminder, step: 2, channel: "sms", state: "pending", at: t0)
            try Self.row(db, "A", .unpaidReminder, step: 1, channel: "push", state: "pending", at: t0)
            try Self.row(db, "A", .orderCancelled, step: 0, channel: "sms", state: "pending", at: t0)
            try Self.row(db, "A", .deliveryDead, step: 0, channel: "ops", state: "pending", at: t0)
            // B: nothing sent yet; three reminders due in one claim: the first two count as they are
            // leased, the third is capped.
            try Self.row(db, "B", .unpaidReminder, step: 1, channel: "sms", state: "pending", at: t0 - 3)
            try Self.row(db, "B", .unpaidReminder, step: 1, channel: "email", state: "pending", at: t0 - 3)
            try Self.row(db, "B", .installmentDue, step: 2, channel: "sms", state: "pending", at: t0 - 2)
            try Self.row(db, "B", .installmentOverdue, step: 3, channel: "sms", state: "pending", at: t0 - 1)
        }
        let claim = try await Self.claim(store, cap: 2, now: t0)
        #expect(Self.names(claim.capped) == ["A unpaid_reminder 2 sms", "B installment_overdue 3 sms"])
        #expect(Self.names(claim.messages) == [
            "A delivery_dead 0 ops", "A order_cancelled 0 sms", "A unpaid_reminder 1 push",
            "B installment_due 2 sms", "B unpaid_reminder 1 email", "B unpaid_reminder 1 sms",
        ])
        let rows = try await temp.shop().read { db in
            try Row.fetchAll(db, sql: "SELECT state, last_error FROM pw_outbox WHERE state = 'capped' ORDER BY order_id")
        }
        #expect(rows.map { $0["last_error"] as String? } == ["daily cap of 2 messages reached", "daily cap of 2 messages reached"])
        let events = try await temp.shop().read { db in
            try String.fetchAll(db, sql: "SELECT detail FROM pw_events WHERE event = 'capped' ORDER BY order_id")
        }
        #expect(events == ["unpaid_reminder step 2 on sms not sent: daily cap of 2 messages reached",
                           "installment_overdue step 3 on sms not sent: daily cap of 2 messages reached"])
    }

    @Test func theWindowSlidesOnTheInjectedClock() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try Self.row(db, "C", .unpaidReminder, step: 1, channel: "sms", state: "delivered", at: t0 - 23 * Self.hour)
            try Self.row(db, "C", .unpaidReminder, step: 2, channel: "sms", state: "delivered", at: t0 - Self.hour)
            try Self.row(db, "C", .unpaidReminder, step: 3, channel: "sms", state: "pending", at: t0 + Self.hour - 1)
            try Self.row(db, "C", .unpaidReminder, step: 4, channel: "sms", state: "pending", at: t0 + Self.hour)
        }
        // 1 ms before step 1 is 24 h old, both count: step 3 is capped.
        let before = try await Self.claim(store, cap: 2, now: t0 + Self.hour - 1)
        #expect(Self.names(before.capped) == ["C unpaid_reminder 3 sms"])
        #expect(before.messages.isEmpty)
        // Then it has left the window: step 4 goes.
        let after = try await Self.claim(store, cap: 2, now: t0 + Self.hour)
        #expect(after.capped.isEmpty)
        #expect(Self.names(after.messages) == ["C unpaid_reminder 4 sms"])
    }

    @Test func withoutACapNothingIsHeldBack() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for step in 1...5 { try Self.row(db, "D", .unpaidReminder, step: step, channel: "sms", state: "delivered", at: t0 - Self.hour) }
            try Self.row(db, "D", .unpaidReminder, step: 6, channel: "sms", state: "pending", at: t0)
        }
        let claim = try await Self.claim(store, cap: nil, now: t0)
        #expect(claim.capped.isEmpty)
        #expect(Self.names(claim.messages) == ["D unpaid_reminder 6 sms"])
    }
}
