import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// How paywatch's own tables are stored: the outbox's keys across migrations, and the WAL kept
/// short by checkpoints beside the writer.
@Suite struct StorageTests {
    @Test func v7KeepsEveryOutboxRowAndItsDeduplicationByKey() async throws {
        let temp = try TempDatabase()
        // A database as v6 left it, with decided messages in the outbox.
        let queue = try DatabaseQueue(path: temp.path)
        try await queue.write { db in
            try db.execute(sql: """
                CREATE TABLE orders (id TEXT PRIMARY KEY, amount_due INTEGER, currency TEXT, created_at INTEGER, expires_at INTEGER,
                    email TEXT, phone TEXT, status TEXT);
                CREATE TABLE payments (id TEXT PRIMARY KEY, order_id TEXT, amount INTEGER, status TEXT, created_at INTEGER);
                """)
        }
        try SQLiteSchema.migrator().migrate(queue, upTo: "v6: pw_reconcile")
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, currency, created_at, phone) VALUES ('A1', 100, 'CNY', ?, '+8613800000000')",
                           arguments: [t0])
            for (key, state) in [("pw1:A1:unpaid_reminder:1:sms", "delivered"), ("pw1:A1:unpaid_reminder:2:sms", "pending")] {
                try db.execute(sql: """
                    INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, state, due_at, created_at, updated_at)
                    VALUES (?, 'A1', 'unpaid_reminder', ?, 'sms', '+8613800000000', '{}', ?, ?, ?, ?)
                    """, arguments: [key, key.contains(":1:") ? 1 : 2, state, t0, t0, t0])
            }
        }
        let before = try await queue.read { try Row.fetchAll($0, sql: "SELECT * FROM pw_outbox ORDER BY id") }
        try queue.close()

        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let shop = try temp.shop()
        // (Later migrations add columns, NULL for these rows: compared on the v6 columns.)
        let columns = before.first.map { Array($0.columnNames).joined(separator: ", ") } ?? "*"
        let after = try await shop.read { try Row.fetchAll($0, sql: "SELECT \(columns) FROM pw_outbox ORDER BY id") }
        #expect(after == before)
        let indexes = try await shop.read {
            try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pw_outbox' ORDER BY name")
        }
        #expect(indexes == ["pw_outbox_channel_due", "pw_outbox_created", "pw_outbox_held", "pw_outbox_key"])
        // A lookup by order uses the new key, not a scan.
        let plan = try await shop.read {
            try Row.fetchAll($0, sql: "EXPLAIN QUERY PLAN SELECT * FROM pw_outbox WHERE order_id = 'A1'").map { $0["detail"] as String }
        }
        #expect(plan.contains { $0.contains("pw_outbox_key") })

        // The reminder decided before is not decided again: its key is still unique.
        let plans = try await sweepAll(store, now: t0 + 10 * minute)
        #expect(plans.first?.messages.map(\.idempotencyKey) == ["pw1:A1:unpaid_reminder:1:sms"])
        let count = try await shop.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox") }
        #expect(count == 2)
        let detail = try #require(try await store.order(id: "A1"))
        #expect(detail.deliveries.map(\.state) == [.delivered, .pending])
        try await store.close()
    }

    @Test func theWALIsCheckpointedBesideTheWriter() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        // Enough writes to pass the background threshold (1,000 pages) several times over.
        let shop = try temp.shop()
        try await shop.write { db in
            for index in 0..<6_000 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: ["A\(index)", t0])
            }
        }
        var planned = 0
        while true {
            let result = try await store.sweep(now: t0 + 10 * minute, limit: 500) { planner.plan($0, now: t0 + 10 * minute) }
            planned += result.claimed
            if result.claimed < 500 { break }
        }
        #expect(planned == 6_000)
        #expect(store.backgroundCheckpoints > 0)
        try await store.close()
    }
}
