import GRDB
import PaywatchCore

/// The SQLite schema: the contract tables the shop writes (created only if missing, so a shop
/// that already has them keeps its data) and paywatch's own tables, all prefixed `pw_`.
enum SQLiteSchema {
    /// `now` in integer milliseconds, as an SQL expression usable in a DEFAULT clause.
    static let nowMs = "(CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"

    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS orders (
                    id TEXT PRIMARY KEY NOT NULL,
                    amount_due INTEGER NOT NULL,
                    currency TEXT NOT NULL DEFAULT 'CNY',
                    created_at INTEGER NOT NULL DEFAULT \(nowMs),
                    expires_at INTEGER,
                    email TEXT,
                    phone TEXT,
                    push_token TEXT,
                    locale TEXT,
                    time_zone TEXT,
                    pay_url TEXT,
                    customer_name TEXT,
                    payment_method TEXT,
                    status TEXT NOT NULL DEFAULT 'unpaid'
                );
                CREATE TABLE IF NOT EXISTS payments (
                    id TEXT PRIMARY KEY NOT NULL,
                    order_id TEXT NOT NULL,
                    amount INTEGER NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending',
                    provider_ref TEXT,
                    method TEXT,
                    failure_reason TEXT,
                    created_at INTEGER NOT NULL DEFAULT \(nowMs)
                );
                CREATE TABLE IF NOT EXISTS installments (
                    order_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    amount INTEGER NOT NULL,
                    due_at INTEGER NOT NULL,
                    PRIMARY KEY (order_id, seq)
                );
                CREATE TABLE IF NOT EXISTS refunds (
                    id TEXT PRIMARY KEY NOT NULL,
                    order_id TEXT NOT NULL,
                    amount INTEGER NOT NULL,
                    status TEXT NOT NULL DEFAULT 'requested',
                    requested_at INTEGER NOT NULL DEFAULT \(nowMs)
                );
                """)
            // A shop whose orders table predates paywatch gets the status column paywatch owns.
            if try !db.columns(in: "orders").contains(where: { $0.name == "status" }) {
                try db.execute(sql: "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'unpaid'")
            }
            try db.execute(sql: """
                CREATE INDEX IF NOT EXISTS payments_order_id ON payments(order_id);
                CREATE INDEX IF NOT EXISTS refunds_order_id ON refunds(order_id);

                -- One row per order paywatch tracks. next_due_at = 0 means "changed: plan now".
                CREATE TABLE pw_order_state (
                    order_id TEXT PRIMARY KEY NOT NULL,
                    status TEXT,
                    amount_paid INTEGER NOT NULL DEFAULT 0,
                    marks TEXT NOT NULL DEFAULT '',
                    next_due_at INTEGER,
                    first_seen_at INTEGER,
                    quarantine TEXT,
                    updated_at INTEGER
                ) WITHOUT ROWID;
                CREATE INDEX pw_order_state_due ON pw_order_state(next_due_at) WHERE next_due_at IS NOT NULL;

                -- Durable outbox: one row per decided message, keyed by its idempotency key.
                CREATE TABLE pw_outbox (
                    id INTEGER PRIMARY KEY,
                    idempotency_key TEXT NOT NULL UNIQUE,
                    order_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    step INTEGER NOT NULL,
                    channel TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    body TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | dead | superseded
                    attempts INTEGER NOT NULL DEFAULT 0,
                    in_flight INTEGER NOT NULL DEFAULT 0,
                    due_at INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    last_error TEXT
                );
                CREATE INDEX pw_outbox_pending ON pw_outbox(due_at) WHERE state = 'pending';
                CREATE INDEX pw_outbox_order ON pw_outbox(order_id);
                CREATE INDEX pw_outbox_created ON pw_outbox(created_at);

                CREATE TABLE pw_attempts (
                    outbox_id INTEGER NOT NULL,
                    attempt INTEGER NOT NULL,
                    at INTEGER NOT NULL,
                    http_status INTEGER,
                    error TEXT,
                    duration_ms INTEGER NOT NULL,
                    outcome TEXT NOT NULL
                );
                CREATE INDEX pw_attempts_outbox ON pw_attempts(outbox_id);
                CREATE INDEX pw_attempts_at ON pw_attempts(at);

                -- The order's timeline: transitions, decisions, supersessions, quarantine.
                CREATE TABLE pw_events (
                    id INTEGER PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    at INTEGER NOT NULL,
                    event TEXT NOT NULL,
                    detail TEXT NOT NULL DEFAULT ''
                );
                CREATE INDEX pw_events_order ON pw_events(order_id, at);
                """)
            try createMarkTriggers(db, bumpVersion: false)
            // Orders that were there before paywatch: plan them all on the first sweep.
            try db.execute(sql: """
                INSERT INTO pw_order_state(order_id, next_due_at) SELECT id, 0 FROM orders WHERE id IS NOT NULL
                ON CONFLICT(order_id) DO NOTHING
                """)
        }
        migrator.registerMigration("v2: delivery lanes, order versions") { db in
            // Delivery claims each channel's earliest due messages on its own (fair lanes).
            // It replaces the index on due_at alone: one index less to update per message.
            try db.execute(sql: """
                CREATE INDEX IF NOT EXISTS pw_outbox_channel_due ON pw_outbox(channel, due_at) WHERE state = 'pending';
                DROP INDEX IF EXISTS pw_outbox_pending;
                """)
            // Planning reads and plans outside the write lock, then applies a plan only if the
            // order's version is still the one it read: every write by the shop bumps it.
            try db.execute(sql: "ALTER TABLE pw_order_state ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
            try createMarkTriggers(db, bumpVersion: true)
        }
        migrator.registerMigration("v3: triggers skip rows without an order id") { db in
            try createMarkTriggers(db, bumpVersion: true)
        }
        migrator.registerMigration("v4: needs_refund") { db in
            // Money the shop must return (duplicate, excess or late payments), less refunds under way.
            try db.execute(sql: "ALTER TABLE pw_order_state ADD COLUMN needs_refund INTEGER NOT NULL DEFAULT 0")
        }
        migrator.registerMigration("v5: triggers watch orders.payment_method") { db in
            // The hold may depend on it ([unpaid.hold_by_method]). (A shop table without the
            // column gets it from ShopTables.conform, which then creates the triggers again.)
            try createMarkTriggers(db, bumpVersion: true)
        }
        migrator.registerMigration("v6: pw_reconcile") { db in
            // Stalled payment attempts to ask the provider about (Plan.reconciles): written with
            // the plan, asked by the reconciler, answered in one transaction with the payments
            // UPDATE (or the fallback paying_stalled message) and the timeline event.
            try db.execute(sql: """
                CREATE TABLE pw_reconcile (
                    id INTEGER PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    payment_id TEXT NOT NULL,
                    provider_ref TEXT NOT NULL,
                    step INTEGER NOT NULL,
                    fallback_key TEXT,
                    fallback_kind TEXT,
                    fallback_step INTEGER,
                    fallback_channel TEXT,
                    fallback_recipient TEXT,
                    fallback_body TEXT,
                    state TEXT NOT NULL DEFAULT 'pending',
                    due_at INTEGER NOT NULL,
                    answer TEXT,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    UNIQUE(order_id, payment_id, step)
                );
                CREATE INDEX pw_reconcile_due ON pw_reconcile(due_at) WHERE state = 'pending';
                """)
        }
        migrator.registerMigration("v7: outbox keyed by order") { db in
            // One index less to update per message: the unique key (order_id, idempotency_key)
            // serves both the insert's ON CONFLICT and every lookup by order, where the unique
            // idempotency_key and the index on order_id were two. A key names its order (the
            // order id is part of it), so it is still unique on its own. The table is rebuilt
            // to lose the column's UNIQUE constraint, rows and ids kept.
            let columns = "id, idempotency_key, order_id, kind, step, channel, recipient, body, state, attempts, in_flight, due_at, created_at, updated_at, last_error"
            try db.execute(sql: """
                CREATE TABLE pw_outbox_v7 (
                    id INTEGER PRIMARY KEY,
                    idempotency_key TEXT NOT NULL,
                    order_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    step INTEGER NOT NULL,
                    channel TEXT NOT NULL,
                    recipient TEXT NOT NULL,
                    body TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | dead | superseded
                    attempts INTEGER NOT NULL DEFAULT 0,
                    in_flight INTEGER NOT NULL DEFAULT 0,
                    due_at INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    last_error TEXT
                );
                INSERT INTO pw_outbox_v7(\(columns)) SELECT \(columns) FROM pw_outbox ORDER BY id;
                DROP TABLE pw_outbox;
                ALTER TABLE pw_outbox_v7 RENAME TO pw_outbox;
                CREATE UNIQUE INDEX pw_outbox_key ON pw_outbox(order_id, idempotency_key);
                CREATE INDEX pw_outbox_created ON pw_outbox(created_at);
                CREATE INDEX pw_outbox_channel_due ON pw_outbox(channel, due_at) WHERE state = 'pending';
                """)
        }
        migrator.registerMigration("v8: pw_daemon heartbeat") { db in
            // The running daemon's record, read by `paywatch status` from another process: when it
            // started, when it last swept, whether it stopped cleanly. One row per host.
            try db.execute(sql: """
                CREATE TABLE pw_daemon (
                    instance TEXT PRIMARY KEY NOT NULL,
                    pid INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    config_loaded_at INTEGER NOT NULL,
                    last_sweep_at INTEGER,
                    last_sweep_ms INTEGER,
                    stopped_at INTEGER
                ) WITHOUT ROWID
                """)
        }
        migrator.registerMigration("v9: retention") { db in
            // Retention ([retention] keep; `paywatch prune`). Per order: when its history was last
            // pruned and under which keep (for `orders show`), and the idempotency keys of its
            // pruned messages: the outbox row was the record that a key had been decided, and a
            // decision made again (a refund back in a status it was in) must find it still.
            try db.execute(sql: """
                ALTER TABLE pw_order_state ADD COLUMN pruned_at INTEGER;
                ALTER TABLE pw_order_state ADD COLUMN pruned_keep INTEGER;
                ALTER TABLE pw_order_state ADD COLUMN pruned_keys TEXT;
                \(Retention.settledIndexSQL)
                """)
        }
        migrator.registerMigration("v10: suppressions") { db in
            // Contract table: addresses not to write to on a channel. The shop writes unsubscribes;
            // paywatch writes the addresses a provider refused for good (an invalid number, an
            // unregistered push token). A message to a suppressed address is not sent.
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS suppressions (
                    channel TEXT NOT NULL,
                    address TEXT NOT NULL,
                    reason TEXT NOT NULL DEFAULT '',
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (channel, address)
                )
                """)
        }
        migrator.registerMigration("v11: fallback alternates") { db in
            // `fallback = true`: the same decision on the next listed channels, taken up in order
            // when this row is refused for good (JSON, see `Alternates`).
            try db.execute(sql: "ALTER TABLE pw_outbox ADD COLUMN alternates TEXT")
        }
        migrator.registerMigration("v12: quiet hours") { db in
            // A message decided inside the quiet hours is due at their end (`due_at`); `not_before`
            // keeps that end once `due_at` moves (a lease, a retry): the lag counts from it, and
            // `orders show` says the message was held. The held messages not gone out, by order:
            // whether there are any, and an order's, when a later step collapses them.
            try db.execute(sql: """
                ALTER TABLE pw_outbox ADD COLUMN not_before INTEGER;
                CREATE INDEX pw_outbox_held ON pw_outbox(order_id) WHERE not_before IS NOT NULL AND state = 'pending';
                """)
        }
        migrator.registerMigration("v13: lease owners") { db in
            // Who holds a lease (`SQLiteOrderStore.leaseOwner`): set by a claim or a hand-off,
            // cleared when the result is recorded. A result is recorded only by the owner of the
            // lease (fencing: a lease that expired and was taken over drops the old owner's
            // result), and a clean stop releases its own leases only. NULL: not leased, or leased
            // before v13 (taken back by expiry, or by the run lock's recovery at start).
            try db.execute(sql: """
                ALTER TABLE pw_outbox ADD COLUMN lease_owner TEXT;
                ALTER TABLE pw_reconcile ADD COLUMN lease_owner TEXT;
                """)
        }
        return migrator
    }

    /// Any write by the shop marks the order as changed (`next_due_at = 0`: plan now) and, from
    /// v2 on, bumps its version. The UPDATE trigger on orders leaves out `status`, the one column
    /// paywatch writes itself. Replaces triggers of the same names.
    static func createMarkTriggers(_ db: Database, bumpVersion: Bool) throws {
        let bump = bumpVersion ? ", version = version + 1" : ""
        // A row without an order id (a shop table that allows NULL there) marks nothing: it
        // cannot be attributed, and the shop's own write must not fail on paywatch's account.
        let mark = { (id: String) in
            "INSERT INTO pw_order_state(order_id, next_due_at) SELECT \(id), 0 WHERE \(id) IS NOT NULL ON CONFLICT(order_id) DO UPDATE SET next_due_at = 0\(bump);"
        }
        var names = ["pw_orders_insert", "pw_orders_update", "pw_orders_delete"]
        for table in ["payments", "installments", "refunds"] {
            names += ["pw_\(table)_insert", "pw_\(table)_update", "pw_\(table)_delete"]
        }
        for name in names { try db.execute(sql: "DROP TRIGGER IF EXISTS \(name)") }
        try db.execute(sql: """
            CREATE TRIGGER pw_orders_insert AFTER INSERT ON orders BEGIN \(mark("NEW.id")) END;
            CREATE TRIGGER pw_orders_update AFTER UPDATE OF id, amount_due, currency, created_at, expires_at,
                email, phone, push_token, locale, time_zone, pay_url, customer_name, payment_method ON orders
                BEGIN \(mark("NEW.id")) END;
            CREATE TRIGGER pw_orders_delete AFTER DELETE ON orders BEGIN \(mark("OLD.id")) END;
            """)
        for table in ["payments", "installments", "refunds"] {
            try db.execute(sql: """
                CREATE TRIGGER pw_\(table)_insert AFTER INSERT ON \(table) BEGIN \(mark("NEW.order_id")) END;
                CREATE TRIGGER pw_\(table)_update AFTER UPDATE ON \(table) BEGIN \(mark("NEW.order_id")) \(mark("OLD.order_id")) END;
                CREATE TRIGGER pw_\(table)_delete AFTER DELETE ON \(table) BEGIN \(mark("OLD.order_id")) END;
                """)
        }
    }
}

/// The contract's shop tables as paywatch needs them, checked on every `migrate` (a shop may
/// alter its tables at any time): required columns, optional columns (added when missing), and
/// the key each table must keep unique.
enum ShopTables {
    struct Table {
        var name: String
        var required: [String]
        /// Optional contract columns and the definition `ALTER TABLE … ADD COLUMN` gives them.
        var optional: [(name: String, definition: String)]
        var key: [String]
    }

    static let tables: [Table] = [
        Table(name: "orders", required: ["id", "amount_due", "created_at"], optional: [
            ("currency", "TEXT NOT NULL DEFAULT 'CNY'"), ("expires_at", "INTEGER"), ("email", "TEXT"), ("phone", "TEXT"),
            ("push_token", "TEXT"), ("locale", "TEXT"), ("time_zone", "TEXT"), ("pay_url", "TEXT"),
            ("customer_name", "TEXT"), ("payment_method", "TEXT"), ("status", "TEXT NOT NULL DEFAULT 'unpaid'"),
        ], key: ["id"]),
        Table(name: "payments", required: ["id", "order_id", "amount", "status", "created_at"], optional: [
            ("provider_ref", "TEXT"), ("method", "TEXT"), ("failure_reason", "TEXT"),
        ], key: ["id"]),
        Table(name: "installments", required: ["order_id", "seq", "amount", "due_at"], optional: [], key: ["order_id", "seq"]),
        Table(name: "refunds", required: ["id", "order_id", "amount", "status"], optional: [("requested_at", "INTEGER")],
              key: ["id"]),
    ]

    /// The columns a sweep cannot do without (paywatch's own `orders.status` included).
    static func requiredWhileRunning(_ table: String) -> [String] {
        (tables.first { $0.name == table }?.required ?? []) + (table == "orders" ? ["status"] : [])
    }

    /// Problems that stop `migrate` (a configuration problem of the shop's schema: exit 78), all
    /// of them at once: a view where a table must be, missing required columns, repeated keys.
    static func problems(_ db: Database) throws -> [String] {
        var problems: [String] = []
        for table in tables {
            guard let type = try String.fetchOne(db, sql: "SELECT type FROM sqlite_master WHERE name = ? COLLATE NOCASE AND type IN ('table', 'view')",
                                                 arguments: [table.name]) else { continue }
            if type == "view" {
                problems.append("\(table.name) is a view: paywatch needs a table (it notices changes through triggers)")
                continue
            }
            let columns = Set(try db.columns(in: table.name).map { $0.name.lowercased() })
            let missing = table.required.filter { !columns.contains($0) }
            if !missing.isEmpty {
                problems.append("\(table.name) lacks the required column\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", "))")
                continue
            }
            if try !hasUniqueKey(db, table) {
                let key = table.key.joined(separator: ", ")
                let repeated = try Row.fetchAll(db, sql: """
                    SELECT \(key), COUNT(*) AS n FROM \(table.name) GROUP BY \(key) HAVING COUNT(*) > 1 LIMIT 5
                    """).map { row in
                    table.key.indices.map { Validator.display(text(row[$0]) ?? "?", limit: 40) }.joined(separator: "/")
                }
                if !repeated.isEmpty {
                    problems.append("\(table.name) repeats \(key) (\(repeated.joined(separator: ", "))\(repeated.count == 5 ? ", …" : "")): each must appear once")
                }
            }
        }
        return problems
    }

    /// Adds the missing optional columns and a unique index where the key is not unique yet;
    /// returns what it did, for the operator.
    static func conform(_ db: Database) throws -> [String] {
        var done: [String] = []
        for table in tables where try db.tableExists(table.name) {
            let columns = Set(try db.columns(in: table.name).map { $0.name.lowercased() })
            for column in table.optional where !columns.contains(column.name) {
                try db.execute(sql: "ALTER TABLE \(table.name) ADD COLUMN \(column.name) \(column.definition)")
                done.append("added column \(table.name).\(column.name)")
            }
            if try !hasUniqueKey(db, table) {
                let key = table.key.joined(separator: ", ")
                try db.execute(sql: "CREATE UNIQUE INDEX pw_\(table.name)_key ON \(table.name)(\(key))")
                done.append("added a unique index on \(table.name)(\(key))")
            }
        }
        if !done.isEmpty {
            // The triggers name the orders columns they watch: recreate them over the new shape.
            try SQLiteSchema.createMarkTriggers(db, bumpVersion: true)
        }
        return done
    }

    /// Whether a primary key or unique index covers exactly the table's key columns.
    static func hasUniqueKey(_ db: Database, _ table: Table) throws -> Bool {
        let key = Set(table.key)
        if let primaryKey = try? db.primaryKey(table.name), Set(primaryKey.columns.map { $0.lowercased() }) == key {
            return true
        }
        return try db.indexes(on: table.name).contains { $0.isUnique && Set($0.columns.map { $0.lowercased() }) == key }
    }
}
