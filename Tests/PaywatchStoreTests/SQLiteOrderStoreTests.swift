import Foundation
import GRDB
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchStore

/// A fresh SQLite file in a temp directory, removed at the end.
final class TempDatabase {
    let directory: URL
    let path: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("paywatch.db").path
    }

    /// A second, independent connection: the shop's writer.
    func shop() throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(5)
        return try DatabaseQueue(path: path, configuration: config)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}

let minute: Millis = 60_000

/// A value shared with a `@Sendable` callback.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func mutate(_ change: (inout Value) -> Void) { lock.withLock { change(&stored) } }
}
let t0: Millis = 1_790_000_000_000
let planner = Planner(policy: Policy(unpaidHoldMs: 30 * minute, unpaidRemindersMs: [10 * minute, 25 * minute],
                                     unpaidChannels: ["sms", "email"], fixedRecipients: ["ops": "oncall"]))

func sweepAll(_ store: SQLiteOrderStore, now: Millis) async throws -> [Plan] {
    try await store.sweep(now: now, limit: 500) { planner.plan($0, now: now) }.plans
}

@Suite struct SQLiteOrderStoreTests {
    @Test func migrationsAreRepeatableAndKeepData() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
        }
        try await store.migrate()
        let again = try SQLiteOrderStore(path: temp.path)
        try await again.migrate()
        let count = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM orders") }
        #expect(count == 1)
        // WAL mode on the file.
        let mode = try await temp.shop().read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
    }

    @Test func adoptsAShopsExistingOrdersTable() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, amount_due INTEGER NOT NULL, currency TEXT NOT NULL DEFAULT 'CNY', created_at INTEGER NOT NULL, expires_at INTEGER, email TEXT, phone TEXT, push_token TEXT, locale TEXT, time_zone TEXT, pay_url TEXT, customer_name TEXT)")
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('OLD', 100, ?)", arguments: [t0])
        }
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let plans = try await sweepAll(store, now: t0 + 31 * minute)
        #expect(plans.map(\.orderID) == ["OLD"])
        let status = try await temp.shop().read { try String.fetchOne($0, sql: "SELECT status FROM orders WHERE id = 'OLD'") }
        #expect(status == "cancelled")
    }

    @Test func noticesWritesFromAnotherConnection() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        #expect(try await sweepAll(store, now: t0).isEmpty)
        let shop = try temp.shop()
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
        }
        #expect(try await store.nextPlanningAt() == 0)
        let first = try await sweepAll(store, now: t0 + 1)
        #expect(first.map(\.status) == [.unpaid])
        #expect(try await store.nextPlanningAt() == t0 + 10 * minute)
        // Nothing due: nothing claimed.
        #expect(try await sweepAll(store, now: t0 + 2).isEmpty)
        // The shop records a payment: the order is due again at once, and becomes paid.
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'A1', 100, 'pending', ?)", arguments: [t0 + 5])
        }
        #expect(try await sweepAll(store, now: t0 + 6).map(\.status) == [.paying])
        try await shop.write { db in
            try db.execute(sql: "UPDATE payments SET status = 'succeeded' WHERE id = 'P1'")
        }
        let paid = try await sweepAll(store, now: t0 + 7)
        #expect(paid.map(\.status) == [.paid])
        let row = try await shop.read { try Row.fetchOne($0, sql: "SELECT status FROM orders WHERE id = 'A1'") }
        #expect(row?["status"] == "paid")
        // paywatch's own status update did not mark the order changed again.
        #expect(try await sweepAll(store, now: t0 + 8).isEmpty)
    }

    @Test func aPlanIsNotAppliedWhenTheShopChangedTheOrderWhileItWasPlanned() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let shop = try temp.shop()
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('B1', 100, ?, '+8613900000000')", arguments: [t0])
        }
        _ = try await sweepAll(store, now: t0)
        // The first reminder is due; while the planner decides it (outside the write lock), the
        // customer of A1 pays.
        let now = t0 + 10 * minute
        let result = try await store.sweep(now: now, limit: 10) { snapshot in
            if snapshot.orderID == "A1" {
                try? shop.inDatabase { db in
                    try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'A1', 100, 'succeeded', ?)",
                                   arguments: [now])
                }
            }
            return planner.plan(snapshot, now: now)
        }
        // A1's reminder, decided on stale rows, was not applied; B1's was.
        #expect(result.plans.map(\.orderID) == ["B1"])
        let keys = try await shop.read { try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox ORDER BY id") }
        #expect(keys == ["pw1:B1:unpaid_reminder:1:sms"])
        // A1 is planned again with the payment: paid, confirmed, never reminded.
        let again = try await sweepAll(store, now: now + 1)
        #expect(again.map(\.orderID) == ["A1"])
        #expect(again.first?.status == .paid)
        #expect(again.first?.messages.map(\.kind) == [.paymentConfirmed])
    }

    @Test func claimsInBatchesAndAppliesPlansAtomically() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for i in 0..<25 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: ["O\(i)", t0])
            }
        }
        let now = t0 + 10 * minute
        let first = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }
        #expect(first.claimed == 10)
        let second = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }
        let third = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }
        #expect(second.claimed == 10)
        #expect(third.claimed == 5)
        #expect(Set((first.plans + second.plans + third.plans).map(\.orderID)).count == 25)
        let outbox = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE state = 'pending'") }
        #expect(outbox == 25)  // one sms reminder each; no e-mail address
        // A planner that throws away nothing: re-planning at the same time decides nothing again.
        try await temp.shop().write { try $0.execute(sql: "UPDATE pw_order_state SET next_due_at = 0") }
        _ = try await sweepAll(store, now: now)
        let again = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox") }
        #expect(again == 25)
    }

    @Test func quarantinesBadRowsAndGoesOn() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('NEG', -1, ?)", arguments: [t0])
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('PHONE', 100, ?, '12345')", arguments: [t0])
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('TEXT', 'lots', ?)", arguments: [t0])
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'GHOST', 100, 'succeeded', ?)", arguments: [t0])
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('GOOD', 100, ?, '+8613800000000')", arguments: [t0])
        }
        let plans = try await sweepAll(store, now: t0 + 10 * minute)
        let quarantined = Dictionary(uniqueKeysWithValues: plans.compactMap { p in p.quarantine.map { (p.orderID, $0) } })
        #expect(quarantined.keys.sorted() == ["GHOST", "NEG", "PHONE", "TEXT"])
        #expect(quarantined["GHOST"] == "payment P1 points to no order GHOST")
        #expect(plans.first { $0.orderID == "GOOD" }?.messages.count == 1)
        // Quarantined rows are not planned again until they change ("logged once").
        #expect(try await sweepAll(store, now: t0 + 20 * minute).allSatisfy { $0.quarantine == nil })
        let detail = try #require(try await store.order(id: "NEG"))
        #expect(detail.quarantine?.contains("must be positive") == true)
        #expect(try await store.orders(.quarantined, limit: 10).count == 4)
        // Fixing the row releases it.
        try await temp.shop().write { try $0.execute(sql: "UPDATE orders SET amount_due = 100 WHERE id = 'NEG'") }
        let fixed = try await sweepAll(store, now: t0 + 40 * minute)
        #expect(fixed.first { $0.orderID == "NEG" }?.status == .cancelled)
        #expect(try await store.order(id: "NEG")?.quarantine == nil)
    }

    @Test func anOrderWhosePlanCannotBeWrittenIsQuarantinedAlone() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            // The shop's own guard rejects any status change of LOCKED.
            try db.execute(sql: """
                CREATE TRIGGER shop_guard BEFORE UPDATE OF status ON orders WHEN NEW.id = 'LOCKED'
                BEGIN SELECT RAISE(ABORT, 'order is locked'); END
                """)
            for id in ["LOCKED", "GOOD"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: [id, t0])
            }
        }
        let plans = try await sweepAll(store, now: t0 + 31 * minute)
        #expect(plans.first { $0.orderID == "GOOD" }?.status == .cancelled)
        let locked = try #require(plans.first { $0.orderID == "LOCKED" })
        #expect(locked.quarantine?.contains("order is locked") == true)
        #expect(locked.messages.isEmpty)
        let outbox = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT order_id FROM pw_outbox") }
        #expect(outbox == ["GOOD"])
        #expect(try await store.order(id: "LOCKED")?.quarantine != nil)
    }

    /// A claim of up to `limit` messages on each of the usual channels.
    func claimAll(_ store: SQLiteOrderStore, now: Millis, limit: Int, leaseMs: Millis = 60_000) async throws -> DeliveryClaim {
        let channels = ["email", "ops", "push", "sms"]
        return try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, limit) }), knownChannels: channels,
                                 leaseMs: leaseMs),
            now: now)
    }

    @Test func deliveriesAreLeasedRecordedAndSuperseded() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let shop = try temp.shop()
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('A1', 100, ?, '+8613800000000', 'a@shop.example')", arguments: [t0])
        }
        _ = try await sweepAll(store, now: t0 + 10 * minute)
        let now = t0 + 10 * minute
        let claim = try await claimAll(store, now: now, limit: 10)
        #expect(claim.messages.count == 2)
        // Leased: not claimable again until the lease ends...
        #expect(try await claimAll(store, now: now + 1, limit: 10).messages.isEmpty)
        // ...or until a restart releases it (kill -9 recovery).
        #expect(try await store.releaseLeases(now: now + 2) == 2)
        let reclaimed = try await claimAll(store, now: now + 2, limit: 10)
        #expect(reclaimed.messages.map(\.message.idempotencyKey).sorted() == claim.messages.map(\.message.idempotencyKey).sorted())

        let sms = try #require(reclaimed.messages.first { $0.message.channel == "sms" })
        let email = try #require(reclaimed.messages.first { $0.message.channel == "email" })
        try await store.recordDeliveries([
            DeliveryResult(outboxID: sms.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 3, outcome: .delivered),
            DeliveryResult(outboxID: email.id, startedAt: now, httpStatus: 503, error: nil, durationMs: 4,
                           outcome: .retry(atMs: now + 5_000, reason: "HTTP 503")),
        ], now: now + 3)
        // Where each channel stands: the email retry is due in 5 s; sms has nothing pending.
        let standing = try await claimAll(store, now: now + 3, limit: 0)
        #expect(standing.nextDueAt == ["email": now + 5_000])

        // The customer pays before the retry: the pending reminder is superseded, never sent.
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'A1', 100, 'succeeded', ?)", arguments: [now + 4])
        }
        _ = try await sweepAll(store, now: now + 4)
        let later = try await claimAll(store, now: now + 5_000, limit: 10)
        #expect(later.superseded.map(\.id) == [email.id])
        #expect(later.messages.allSatisfy { $0.message.kind == .paymentConfirmed })

        let detail = try #require(try await store.order(id: "A1"))
        let smsRecord = try #require(detail.deliveries.first { $0.idempotencyKey == sms.message.idempotencyKey })
        #expect(smsRecord.state == .delivered)
        #expect(smsRecord.attempts.map(\.httpStatus) == [200])
        #expect(smsRecord.to == "+86*******0000")
        #expect(detail.deliveries.first { $0.idempotencyKey == email.message.idempotencyKey }?.state == .superseded)
        #expect(detail.timeline.contains { $0.event == "superseded" })
        #expect(detail.timeline.contains { $0.event == "status" && $0.detail.contains("paid") })
        // Decisions are shown from the outbox: one entry per decision, naming its channels, after
        // the transition of the same sweep, in time order with the events.
        let reminder = try #require(detail.timeline.firstIndex { $0.event == "unpaid_reminder" })
        #expect(detail.timeline[reminder].detail == "step 1 decided for sms,email")
        #expect(detail.timeline.filter { $0.event == "unpaid_reminder" }.count == 1)
        let confirmed = try #require(detail.timeline.firstIndex { $0.event == "payment_confirmed" })
        let paid = try #require(detail.timeline.firstIndex { $0.event == "status" && $0.detail.contains("→ paid") })
        #expect(reminder < paid && paid < confirmed)
        #expect(detail.timeline.map(\.at) == detail.timeline.map(\.at).sorted())
    }

    @Test func deadMessagesEscalateOnce() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
        }
        let now = t0 + 10 * minute
        _ = try await sweepAll(store, now: now)
        let item = try #require(try await claimAll(store, now: now, limit: 10, leaseMs: 1000).messages.first)
        let ops = planner.deliveryDeadMessage(for: item.message, reason: "HTTP 400")
        let result = DeliveryResult(outboxID: item.id, startedAt: now, httpStatus: 400, error: nil, durationMs: 1,
                                    outcome: .dead(reason: "HTTP 400"), followUp: ops)
        try await store.recordDeliveries([result], now: now)
        try await store.recordDeliveries([result], now: now)  // recorded twice: still one ops message
        let rows = try await temp.shop().read { try Row.fetchAll($0, sql: "SELECT kind, state, recipient FROM pw_outbox ORDER BY id") }
        #expect(rows.map { $0["kind"] as String } == ["unpaid_reminder", "delivery_dead"])
        #expect(rows[0]["state"] as String == "dead")
        #expect(rows[1]["recipient"] as String == "oncall")
    }

    @Test func claimsAreBoundedPerChannelAndReportWhereEachChannelStands() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let shop = try temp.shop()
        // 20 orders with a phone and e-mail, 5 more with only e-mail... then one message of a
        // channel no longer configured (fax) and one of a kind this version does not know.
        try await shop.write { db in
            for i in 0..<20 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')", arguments: ["S\(i)", t0])
            }
            for i in 0..<5 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, email) VALUES (?, 100, ?, 'a@shop.example')", arguments: ["E\(i)", t0])
            }
        }
        let now = t0 + 10 * minute
        _ = try await sweepAll(store, now: now)
        try await shop.write { db in
            try db.execute(sql: """
                INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, due_at, created_at, updated_at)
                VALUES ('k-fax', 'S0', 'unpaid_reminder', 9, 'fax', 'x', '{}', ?, ?, ?),
                       ('k-odd', 'S1', 'carrier_pigeon', 9, 'sms', 'x', '{}', ?, ?, ?)
                """, arguments: [now, now, now, now - 1, now, now])
        }
        let known = ["email", "ops", "push", "sms"]
        let first = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 4, "email": 10], others: 5, knownChannels: known, leaseMs: 60_000), now: now)
        // The unknown kind is dead, not claimed over and over; it took one of sms's 4 rows.
        #expect(first.messages.filter { $0.message.channel == "sms" }.count == 3)
        #expect(first.messages.filter { $0.message.channel == "email" }.count == 5)
        #expect(first.messages.filter { $0.message.channel == "fax" }.map(\.message.idempotencyKey) == ["k-fax"])
        #expect(first.saturatedChannels == ["sms"])
        #expect(first.othersSaturated == false)
        #expect(first.nextDueAt["sms"] == nil)  // saturated: 17 more are due now, no need to look
        #expect(first.nextDueAt["email"] == now + 60_000)  // only leased ones left: their lease expiry
        #expect(first.nextDueAt["push"] == nil)
        let odd = try await shop.read { try Row.fetchOne($0, sql: "SELECT state, last_error FROM pw_outbox WHERE idempotency_key = 'k-odd'") }
        #expect(odd?["state"] as String? == "dead")
        #expect(odd?["last_error"] as String? == "unknown message kind: not sent")

        // Releasing claimed messages makes them due at once, without an attempt.
        let released = first.messages.filter { $0.message.channel == "email" }.map(\.id)
        let second = try await store.exchangeDeliveries(
            recording: released.map { .released($0, at: now + 1) },
            claiming: DeliveryClaimRequest(perChannel: ["email": 10], knownChannels: known, leaseMs: 60_000), now: now + 1)
        #expect(Set(second.messages.map(\.id)) == Set(released))
        let attempts = try await shop.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_attempts") }
        #expect(attempts == 0)
    }

    @Test func aSweepHandsOffWhatDeliveryHasRoomForLeasedAndLeavesTheRestToClaim() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for i in 0..<5 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: ["H\(i)", t0])
            }
        }
        _ = try await sweepAll(store, now: t0)
        let now = t0 + 10 * minute
        let room = Counter()
        let handedOff = Locked<[OutboxMessage]>([])
        _ = try await store.sweep(now: now, limit: 10, plan: { planner.plan($0, now: now) },
                                  handOff: DeliveryHandOff(leaseMs: 60_000) { channel in channel == "sms" && room.increment() <= 2 }) { _, handed in
            handedOff.mutate { $0 += handed }
        }
        let handed = handedOff.value
        #expect(handed.count == 2)
        #expect(handed.allSatisfy { $0.attempts == 0 && $0.message.kind == .unpaidReminder })
        // Handed-off rows are leased: a claim takes only the other three.
        let claim = try await claimAll(store, now: now, limit: 10)
        #expect(claim.messages.count == 3)
        #expect(Set(claim.messages.map(\.id)).isDisjoint(with: handed.map(\.id)))
        let keys = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox WHERE id IN (?, ?)",
                                                                    arguments: [handed[0].id, handed[1].id]) }
        #expect(Set(keys) == Set(handed.map(\.message.idempotencyKey)))
    }

    @Test func unknownOrderHasNoDetail() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        #expect(try await store.order(id: "NOPE") == nil)
    }
}
