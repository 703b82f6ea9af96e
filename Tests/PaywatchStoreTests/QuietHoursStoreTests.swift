import Foundation
import GRDB
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchStore

/// Messages held for the quiet hours, in a real SQLite file: due at their end, never handed off
/// before, and collapsed into a later step of their series decided while they wait.
@Suite struct QuietHoursStoreTests {
    /// 2026-11-26T12:00:00Z.
    static let noon: Millis = 1_795_694_400_000
    static let hour: Millis = 3_600_000
    /// Quiet 21:00–08:00 UTC on sms; e-mail goes at once. Hold 12 h, reminders 10 and 25 minutes.
    let quietPlanner = Planner(policy: Policy(
        unpaidHoldMs: 12 * hour, unpaidRemindersMs: [10 * minute, 25 * minute], unpaidChannels: ["sms", "email"],
        fixedRecipients: ["ops": "oncall"], quietHours: QuietHours(start: 21 * 60, end: 8 * 60, channels: ["sms"])))

    func sweep(_ store: SQLiteOrderStore, at now: Millis, handOff: DeliveryHandOff? = nil) async throws -> [OutboxMessage] {
        let planner = quietPlanner
        let handed = Locked<[OutboxMessage]>([])
        _ = try await store.sweep(now: now, limit: 100, plan: { planner.plan($0, now: now) }, handOff: handOff) { _, taken in
            handed.mutate { $0 += taken }
        }
        return handed.value
    }

    func claim(_ store: SQLiteOrderStore, at now: Millis) async throws -> DeliveryClaim {
        try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10, "email": 10, "ops": 10], knownChannels: ["email", "ops", "sms"], leaseMs: 60_000),
            now: now)
    }

    @Test func aHeldStepIsCollapsedIntoTheNextAndOnlyThatOneGoesWhenTheQuietHoursEnd() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let created = Self.noon + 10 * Self.hour + 50 * minute  // 22:50Z
        let morning = Self.noon + 20 * Self.hour                 // 08:00Z the next day
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('Q1', 100, ?, '+8613800000000', 'q@shop.example')",
                           arguments: [created])
        }
        _ = try await sweep(store, at: created)

        // 23:00: step 1. Delivery has room for everything, but the sms is held: only the e-mail is handed off.
        let first = created + 10 * minute
        let handed = try await sweep(store, at: first, handOff: DeliveryHandOff(leaseMs: 60_000) { _ in true })
        #expect(handed.map(\.message.channel) == ["email"])
        let held = try await temp.shop().read { db in
            try Row.fetchOne(db, sql: "SELECT due_at, state, in_flight FROM pw_outbox WHERE channel = 'sms' AND step = 1")
        }
        #expect(held?["due_at"] as Millis? == morning)
        #expect(held?["state"] as String? == "pending")
        // Delivery sees it waiting until 08:00 and does not claim it before.
        let standing = try await claim(store, at: first)
        #expect(standing.messages.isEmpty)  // the e-mail is leased to delivery already
        #expect(standing.nextDueAt["sms"] == morning)
        #expect(try await claim(store, at: morning - 1).messages.filter { $0.message.channel == "sms" }.isEmpty)

        // 23:15: step 2, held too; step 1 is superseded, collapsed into it.
        _ = try await sweep(store, at: created + 25 * minute)
        let states = try await temp.shop().read { db in
            try Row.fetchAll(db, sql: "SELECT channel, step, state, due_at FROM pw_outbox ORDER BY channel, step")
                .map { "\($0["channel"] as String) \($0["step"] as Int) \($0["state"] as String)" }
        }
        #expect(states == ["email 1 pending", "email 2 pending", "sms 1 superseded", "sms 2 pending"])

        // 08:00: only step 2 goes (and the e-mails, never held).
        let due = try await claim(store, at: morning)
        #expect(due.messages.filter { $0.message.channel == "sms" }.map(\.message.step) == [2])
        #expect(due.superseded.isEmpty)

        let detail = try #require(try await store.order(id: "Q1"))
        let events = detail.timeline.filter { ["quiet_hours", "collapsed"].contains($0.event) }.map { "\($0.event): \($0.detail)" }
        #expect(events == [
            "quiet_hours: unpaid_reminder step 1 on sms waits for the quiet hours to end: held until 2026-11-27 08:00 (UTC), 2026-11-27T08:00:00Z",
            "collapsed: unpaid_reminder step 1 on sms, held for the quiet hours, collapsed into step 2",
            "quiet_hours: unpaid_reminder step 2 on sms waits for the quiet hours to end: held until 2026-11-27 08:00 (UTC), 2026-11-27T08:00:00Z",
        ])
    }

    @Test func aStepDecidedAfterTheEndReplacesAHeldOneNotSentYet() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        // Step 1 at 07:45 (held until 08:00); step 2 due at 08:00, planned a few seconds later (not
        // held), before delivery took step 1: one sms, the latest.
        let created = Self.noon + 19 * Self.hour + 35 * minute
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('Q2', 100, ?, '+8613800000000')",
                           arguments: [created])
        }
        _ = try await sweep(store, at: created)
        _ = try await sweep(store, at: created + 10 * minute)
        // Waiting on purpose is no lag: a held message counts from the end of the quiet hours.
        let lag = try await store.lag(now: created + 20 * minute)
        #expect(lag.oldestPendingMessageAt == created + 25 * minute)
        #expect(lag.dueMessages == 0)
        #expect(lag.ms(now: created + 20 * minute, lastSweepAt: created + 20 * minute) == 0)
        _ = try await sweep(store, at: created + 25 * minute + 3_000)
        let due = try await claim(store, at: created + 25 * minute + 3_000)
        #expect(due.messages.map(\.message.step) == [2])
        let states = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT step || ' ' || state FROM pw_outbox ORDER BY step") }
        #expect(states == ["1 superseded", "2 pending"])
    }

    @Test func onlyAStepStillHeldIsCollapsedNeverOneTriedOrMerelyLate() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        // Decided at 12:10 and 12:25, outside the quiet hours: nothing is held. One order's step 1
        // failed and waits for its retry when step 2 comes; the other's was never claimed (a backlog).
        let created = Self.noon
        try await temp.shop().write { db in
            for id in ["A", "B"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: [id, created])
            }
        }
        _ = try await sweep(store, at: created)
        _ = try await sweep(store, at: created + 10 * minute)
        let first = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 1], knownChannels: ["sms"], leaseMs: 60_000), now: created + 10 * minute)
        #expect(first.messages.count == 1)  // the one tried: A or B
        try await store.recordDeliveries(first.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: created + 10 * minute, httpStatus: 503, error: nil, durationMs: 1,
                           outcome: .retry(atMs: created + 40 * minute, reason: "HTTP 503"))
        }, now: created + 10 * minute)
        _ = try await sweep(store, at: created + 25 * minute)
        let states = try await temp.shop().read {
            try String.fetchAll($0, sql: "SELECT order_id || ' ' || step || ' ' || state FROM pw_outbox ORDER BY order_id, step")
        }
        #expect(states == ["A 1 pending", "A 2 pending", "B 1 pending", "B 2 pending"])
        let tried = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE step = 1 AND attempts = 1") }
        #expect(tried == 1)
    }

    @Test func theCollapseReadsTheOrdersRowsNotTheChannelsHeldMessages() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let plan = try await temp.shop().read {
            try Row.fetchAll($0, sql: "EXPLAIN QUERY PLAN " + SQLiteOrderStore.collapseHeldSQL,
                             arguments: [0, "A1", "unpaid_reminder", "sms", 2]).map { $0["detail"] as String }.joined(separator: " ")
        }
        #expect(plan.contains("(order_id=?)") && !plan.contains("pw_outbox_channel_due"), "\(plan)")
        // Whether any is held at all: from the held messages' own index, not a scan.
        let any = try await temp.shop().read {
            try Row.fetchAll($0, sql: "EXPLAIN QUERY PLAN " + SQLiteOrderStore.anyHeldSQL).map { $0["detail"] as String }.joined(separator: " ")
        }
        #expect(any.contains("pw_outbox_held"), "\(any)")
    }
}
