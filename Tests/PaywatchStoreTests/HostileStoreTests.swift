import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// Rows, table shapes and file operations a shop can throw at the store. None may crash it, loop
/// it, or stop the healthy orders beside them.
@Suite struct HostileStoreTests {
    func insertGood(_ db: Database, _ id: String = "GOOD") throws {
        try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                       arguments: [id, t0])
    }

    @Test func idsThatAreNotTextAreQuarantinedOnceAndNeverClaimedAgain() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try insertGood(db)
            // Bytes that are not UTF-8, stored as TEXT: read back, they are another string.
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (CAST(X'41FF42' AS TEXT), 100, ?)", arguments: [t0])
            // A BLOB id.
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (X'FF00', 100, ?)", arguments: [t0])
            // A payment whose id is a BLOB, on an otherwise good order.
            try insertGood(db, "BLOBPAY")
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES (X'FF', 'BLOBPAY', 100, 'succeeded', ?)",
                           arguments: [t0])
            // CR/LF in an id.
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('CR\r\nX-Injected: yes', 100, ?)", arguments: [t0])
        }
        let first = try await sweepAll(store, now: t0 + 10 * minute)
        #expect(first.count == 5)
        let quarantined = first.compactMap(\.quarantine).sorted()
        #expect(quarantined.count == 4)
        #expect(quarantined.contains { $0.hasPrefix("order id is not valid UTF-8 text: x'41FF42'") })
        #expect(quarantined.contains { $0.hasPrefix("order id is not text (a blob value): x'FF00'") })
        #expect(quarantined.contains("a payment id is not text (a BLOB)"))
        #expect(quarantined.contains { $0.hasPrefix("order id contains control characters (CR\\r\\nX-Injected: yes)") })
        // The good order was planned beside them.
        #expect(first.first { $0.orderID == "GOOD" }?.messages.count == 1)
        // Nothing is claimed again: no hot loop, no second event.
        for minutes in [11, 20, 60] {
            #expect(try await sweepAll(store, now: t0 + Millis(minutes) * minute).allSatisfy { $0.quarantine == nil })
        }
        let events = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_events WHERE event = 'quarantined'") }
        #expect(events == 4)
        // Inspection works on all of them.
        let listed = try await store.orders(.quarantined, limit: 10)
        #expect(listed.count == 4)
        #expect(listed.contains { $0.id == "x'FF00'" })
        #expect(listed.allSatisfy { !$0.id.contains("\n") })
        #expect(try await store.order(id: "CR\r\nX-Injected: yes")?.quarantine != nil)
        #expect(try await store.order(id: "BLOBPAY")?.quarantine == "a payment id is not text (a BLOB)")
        // A change to the row brings it back: fixed, it is planned normally.
        try await temp.shop().write { db in
            try db.execute(sql: "UPDATE orders SET id = 'FIXED' WHERE id = X'FF00'")
        }
        let again = try await sweepAll(store, now: t0 + 61 * minute)
        #expect(again.contains { $0.orderID == "FIXED" && $0.quarantine == nil })
    }

    @Test func overflowingRowsAreQuarantinedAndInspectable() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try insertGood(db)
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('MAXPAY', 100, ?)", arguments: [t0])
            for id in ["P1", "P2"] {
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES (?, 'MAXPAY', 9223372036854775807, 'succeeded', ?)",
                               arguments: [id, t0])
            }
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('MAXTIME', 100, 9223372036854775807)")
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('MINTIME', 100, -9223372036854775808)")
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, time_zone) VALUES ('MAXEXP', 100, ?, 9223372036854775807, 'Asia/Shanghai')",
                           arguments: [t0])
        }
        let plans = try await sweepAll(store, now: t0 + 10 * minute)
        #expect(plans.filter { $0.quarantine != nil }.map(\.orderID).sorted() == ["MAXEXP", "MAXPAY", "MINTIME", "MAXTIME"].sorted())
        #expect(plans.first { $0.orderID == "GOOD" }?.messages.count == 1)
        for id in ["MAXPAY", "MAXTIME", "MINTIME", "MAXEXP"] {
            let detail = try #require(try await store.order(id: id))
            #expect(detail.quarantine != nil)
        }
    }

    @Test func migrateAddsMissingOptionalColumnsAndSaysWhich() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, amount_due INTEGER NOT NULL, created_at INTEGER NOT NULL, phone TEXT)")
            try db.execute(sql: "CREATE TABLE payments(id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount INTEGER NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL)")
            try insertGood(db)
        }
        let store = try SQLiteOrderStore(path: temp.path)
        let changes = try await store.migrate()
        #expect(changes.contains("added column orders.push_token"))
        #expect(changes.contains("added column orders.currency"))
        #expect(try await temp.shop().read { try $0.columns(in: "orders").contains { $0.name == "status" } })
        #expect(changes.contains("added column payments.provider_ref"))
        // Repeating it changes nothing.
        #expect(try await store.migrate().isEmpty)
        let plans = try await sweepAll(store, now: t0 + 10 * minute)
        #expect(plans.first { $0.orderID == "GOOD" }?.messages.count == 1)
        // The new columns are watched like the others.
        try await temp.shop().write { db in
            try db.execute(sql: "UPDATE orders SET push_token = 'tok-1' WHERE id = 'GOOD'")
        }
        let due = try await temp.shop().read { try Int64.fetchOne($0, sql: "SELECT next_due_at FROM pw_order_state WHERE order_id = 'GOOD'") }
        #expect(due == 0)
    }

    @Test func rowsWithoutAnOrderIDNeitherFailTheShopsWritesNorReachPlanning() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            // SQLite lets a TEXT PRIMARY KEY be NULL; this shop's payments allow it too.
            try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, amount_due INTEGER NOT NULL, created_at INTEGER NOT NULL)")
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (NULL, 100, ?)", arguments: [t0])
            try db.execute(sql: "CREATE TABLE payments(id TEXT PRIMARY KEY, order_id TEXT, amount INTEGER, status TEXT, created_at INTEGER)")
        }
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (NULL, 100, ?)", arguments: [t0])
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', NULL, 100, 'succeeded', ?)",
                           arguments: [t0])
            try insertGood(db)
        }
        #expect(try await sweepAll(store, now: t0 + 10 * minute).map(\.orderID) == ["GOOD"])
    }

    @Test func secondsWhereMillisecondsBelongAreNamed() {
        let plan = planner.plan(OrderSnapshot(orderID: "S", order: OrderRecord(id: "S", amountDue: 100, createdAt: 1_790_000_000)),
                                now: t0)
        #expect(plan.quarantine == "created_at is outside 2000-01-01…2200-01-01 (1790000000; it looks like seconds, paywatch expects milliseconds)")
    }

    @Test func moneyToReturnIsStoredListedAndReported() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try insertGood(db)
            for id in ["P1", "P2"] {
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, 'GOOD', 100, 'succeeded', 'ch_9', ?)",
                               arguments: [id, t0])
            }
        }
        _ = try await sweepAll(store, now: t0 + minute)
        #expect(try await store.order(id: "GOOD")?.needsRefund == 100)
        #expect(try await store.orders(.needsRefund, limit: 10).map(\.id) == ["GOOD"])
        #expect(try await store.report(since: 0, now: t0 + minute).needsRefund == 1)
    }

    @Test func thePaymentMethodIsReadAndWatched() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, payment_method) VALUES ('BANK', 100, ?, 'bank_transfer')",
                           arguments: [t0])
        }
        let planned = try await store.sweep(now: t0, limit: 10) { snapshot in
            #expect(snapshot.order?.paymentMethod == "bank_transfer")
            return planner.plan(snapshot, now: t0)
        }
        #expect(planned.plans.count == 1)
        try await temp.shop().write { db in
            try db.execute(sql: "UPDATE orders SET payment_method = 'alipay' WHERE id = 'BANK'")
        }
        let due = try await temp.shop().read { try Int64.fetchOne($0, sql: "SELECT next_due_at FROM pw_order_state WHERE order_id = 'BANK'") }
        #expect(due == 0)
    }

    @Test func aFreshDatabaseNeedsNoAdapting() async throws {
        let temp = try TempDatabase()
        #expect(try await SQLiteOrderStore(path: temp.path).migrate().isEmpty)
    }

    /// A database an older paywatch migrated: `migrate` applies the newer versions and says which.
    @Test func migratingAnOlderDatabaseSaysWhichVersionsItApplied() async throws {
        let temp = try TempDatabase()
        let migrator = SQLiteSchema.migrator()
        let older = migrator.migrations[migrator.migrations.count - 3]
        try migrator.migrate(try temp.shop(), upTo: older)
        let newer = Array(migrator.migrations.suffix(2))
        let store = try SQLiteOrderStore(path: temp.path)
        #expect(try await store.migrate() == ["paywatch's schema upgraded: applied " + newer.joined(separator: ", ")])
        #expect(try await store.migrate().isEmpty)
    }

    @Test func migrateRefusesMissingRequiredColumnsNamingThem() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
            try db.execute(sql: "CREATE TABLE payments(id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount INTEGER NOT NULL)")
        }
        let store = try SQLiteOrderStore(path: temp.path)
        let error = await #expect(throws: StoreError.self) { try await store.migrate() }
        #expect(error?.isConfiguration == true)
        #expect(error?.description.contains("orders lacks the required columns amount_due, created_at") == true)
        #expect(error?.description.contains("payments lacks the required columns status, created_at") == true)
        // Nothing was created.
        let tables = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE name LIKE 'pw_%'") }
        #expect(tables.isEmpty)
    }

    @Test func tablesWithoutAPrimaryKeyGetAUniqueIndexOrARefusal() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            try db.execute(sql: "CREATE TABLE payments(id TEXT, order_id TEXT, amount INTEGER, status TEXT, created_at INTEGER)")
            for _ in 0..<2 {
                try db.execute(sql: "INSERT INTO payments VALUES ('PAY-1', 'A1', 50, 'succeeded', ?)", arguments: [t0])
            }
        }
        let store = try SQLiteOrderStore(path: temp.path)
        let error = await #expect(throws: StoreError.self) { try await store.migrate() }
        #expect(error?.isConfiguration == true)
        #expect(error?.description.contains("payments repeats id (PAY-1)") == true)
        try await temp.shop().write { db in
            try db.execute(sql: "DELETE FROM payments WHERE rowid = (SELECT MAX(rowid) FROM payments)")
        }
        let changes = try await store.migrate()
        #expect(changes.contains("added a unique index on payments(id)"))
        let repeated = await #expect(throws: DatabaseError.self) {
            try await temp.shop().write { db in
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('PAY-1', 'A1', 50, 'succeeded', ?)",
                               arguments: [t0])
            }
        }
        #expect(repeated?.resultCode == .SQLITE_CONSTRAINT)
    }

    @Test func aViewWhereATableMustBeIsRefused() async throws {
        let temp = try TempDatabase()
        try await temp.shop().write { db in
            try db.execute(sql: "CREATE TABLE shop_orders(id TEXT PRIMARY KEY, amount_due INTEGER, created_at INTEGER)")
            try db.execute(sql: "CREATE VIEW orders AS SELECT * FROM shop_orders")
        }
        let store = try SQLiteOrderStore(path: temp.path)
        let error = await #expect(throws: StoreError.self) { try await store.migrate() }
        #expect(error?.description.contains("orders is a view") == true)
    }

    @Test func aNewerSchemaIsRefused() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v99: from the future')")
        }
        let error = await #expect(throws: StoreError.self) { try await store.migrate() }
        #expect(error?.isConfiguration == true)
        #expect(error?.description.contains("v99: from the future") == true)
    }

    @Test func aColumnRenamedWhileRunningFailsTheSweepClearlyUntilRestored() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            try insertGood(db)
            try db.execute(sql: "ALTER TABLE orders RENAME COLUMN amount_due TO amount_total")
        }
        let error = await #expect(throws: StoreError.self) { try await sweepAll(store, now: t0 + 10 * minute) }
        #expect(error?.description == "the shop's orders table has no column amount_due (the contract requires it): restore it, then run `paywatch migrate`")
        // Nothing was quarantined for it.
        #expect(try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_order_state WHERE quarantine IS NOT NULL") } == 0)
        try await temp.shop().write { db in
            try db.execute(sql: "ALTER TABLE orders RENAME COLUMN amount_total TO amount_due")
        }
        #expect(try await sweepAll(store, now: t0 + 10 * minute).first?.messages.count == 1)
    }

    @Test func aDeletedOrReplacedDatabaseIsNoticed() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try store.verifyStillOpen()
        try FileManager.default.removeItem(atPath: temp.path)
        let deleted = #expect(throws: StoreError.self) { try store.verifyStillOpen() }
        #expect(deleted?.isFatal == true)
        #expect(deleted?.description.contains("was deleted") == true)
        // Another file at the same path.
        _ = try SQLiteOrderStore(path: temp.path)
        let replaced = #expect(throws: StoreError.self) { try store.verifyStillOpen() }
        #expect(replaced?.description.contains("was replaced") == true)
    }
}
