import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// `fallback = true` in the store: the alternates kept with a row, taken up when it cannot go.
@Suite struct FallbackStoreTests {
    static let fallbackPlanner: Planner = {
        var policy = Policy(unpaidHoldMs: 30 * minute, unpaidRemindersMs: [10 * minute, 25 * minute],
                            unpaidChannels: ["push", "sms", "email"], fixedRecipients: ["ops": "oncall"])
        policy.fallback = [.unpaid]
        return Planner(policy: policy)
    }()

    func claim(_ store: SQLiteOrderStore, now: Millis) async throws -> DeliveryClaim {
        let channels = ["email", "ops", "push", "sms"]
        return try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, 10) }), knownChannels: channels,
                                 leaseMs: 60_000),
            now: now)
    }

    /// Suppressed after the decision, before the claim: the next channel whose address is not
    /// suppressed takes over, and only one of them goes out.
    @Test func anAddressSuppressedBeforeTheClaimHandsTheMessageToTheNextUsableChannel() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email, push_token) VALUES ('F1', 100, ?, '+8613800000000', 'f1@example.com', 'tok-123456789')",
                           arguments: [t0])
        }
        let now = t0 + 11 * minute
        let plans = try await store.sweep(now: now, limit: 10) { Self.fallbackPlanner.plan($0, now: now) }.plans
        #expect(plans.first?.messages.map(\.channel) == ["push"])
        #expect(plans.first?.messages.first?.alternates.map(\.channel) == ["sms", "email"])
        // Both the push token and the phone are refused before delivery claims the push.
        try await temp.shop().write { db in
            for (channel, address) in [("push", "tok-123456789"), ("sms", "+8613800000000")] {
                try db.execute(sql: "INSERT INTO suppressions(channel, address, reason, created_at) VALUES (?, ?, 'unsubscribed', ?)",
                               arguments: [channel, address, now])
            }
        }
        let first = try await claim(store, now: now)
        #expect(first.messages.isEmpty)
        #expect(first.suppressed.map(\.message.channel) == ["push"])
        let second = try await claim(store, now: now)
        #expect(second.messages.map(\.message.channel) == ["email"])
        #expect(second.messages.first?.message.idempotencyKey == "pw1:F1:unpaid_reminder:1:email")
        #expect(second.messages.first?.message.payload.contains("f1@example.com") == false)
        let rows = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT channel || ':' || state FROM pw_outbox ORDER BY id") }
        #expect(rows == ["push:suppressed", "email:pending"])
        let detail = try await temp.shop().read {
            try String.fetchOne($0, sql: "SELECT detail FROM pw_events WHERE event = 'fallback'")
        }
        #expect(detail == "unpaid_reminder step 1 on push (…6789 is suppressed): sent on email instead; skipped sms (+86*******0000 is suppressed: unsubscribed)")
    }

    /// Without fallback, the alternates column stays empty and every channel is decided.
    @Test func withoutFallbackEveryChannelIsDecidedAndNoAlternatesAreKept() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('N1', 100, ?, '+8613800000000', 'n1@example.com')",
                           arguments: [t0])
        }
        _ = try await sweepAll(store, now: t0 + 11 * minute)
        let rows = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT channel || ':' || COALESCE(alternates, '-') FROM pw_outbox ORDER BY id") }
        #expect(rows == ["sms:-", "email:-"])
    }

    @Test func unreadableAlternatesReadAsNone() {
        #expect(Alternates.decode("not json", orderID: "O", kind: .unpaidReminder, step: 1).isEmpty)
        #expect(Alternates.decode(#"[{"key":1}]"#, orderID: "O", kind: .unpaidReminder, step: 1).isEmpty)
        let one = OutgoingMessage(idempotencyKey: "k2", orderID: "O", kind: .unpaidReminder, step: 1, channel: "sms", recipient: "+1", payload: "{}")
        let two = OutgoingMessage(idempotencyKey: "k3", orderID: "O", kind: .unpaidReminder, step: 1, channel: "email", recipient: "a@b", payload: "{}")
        let decoded = Alternates.decode(Alternates.encode([one, two]), orderID: "O", kind: .unpaidReminder, step: 1)
        #expect(decoded.map(\.idempotencyKey) == ["k2", "k3"])
        #expect(decoded.first?.alternates.map(\.idempotencyKey) == ["k3"])
    }
}
