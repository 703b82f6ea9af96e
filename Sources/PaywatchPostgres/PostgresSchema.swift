import PaywatchCore
import PaywatchStore

/// The PostgreSQL schema: the contract tables the shop writes (created only when missing, with
/// `timestamptz` times and `bigint` money), and paywatch's own tables, prefixed `pw_`. paywatch's
/// own times are `bigint` milliseconds since the epoch, as in SQLite: they are compared and added
/// to on every claim, and nobody but paywatch writes them (`paywatch orders show` prints them).
///
/// Migrations are numbered; `pw_schema` records the ones applied. `migrate` takes a transaction-
/// level advisory lock first, so replicas that start together migrate one after the other (the
/// second finds nothing to do), and DDL is transactional: a failed migration leaves nothing behind.
enum PostgresSchema {
    /// The advisory lock key `migrate` holds (any constant: "paywatch" in ASCII).
    static let migrationLock: Int64 = 0x7061_7977_6174_6368

    /// The `LISTEN` channel, and its payloads: shop writes that mark orders changed, new outbox rows.
    static let channel = "paywatch"
    static let changedPayload = "changed"
    static let outboxPayload = "outbox"

    /// The shop's tables, created only if missing (a shop that has them keeps its own).
    static let shopTables = [
        """
        CREATE TABLE IF NOT EXISTS orders (
            id text PRIMARY KEY,
            amount_due bigint NOT NULL,
            currency text NOT NULL DEFAULT 'CNY',
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            email text,
            phone text,
            push_token text,
            locale text,
            time_zone text,
            pay_url text,
            customer_name text,
            payment_method text,
            status text NOT NULL DEFAULT 'unpaid'
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS payments (
            id text PRIMARY KEY,
            order_id text NOT NULL,
            amount bigint NOT NULL,
            status text NOT NULL DEFAULT 'pending',
            provider_ref text,
            method text,
            failure_reason text,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS installments (
            order_id text NOT NULL,
            seq integer NOT NULL,
            amount bigint NOT NULL,
            due_at timestamptz NOT NULL,
            PRIMARY KEY (order_id, seq)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS refunds (
            id text PRIMARY KEY,
            order_id text NOT NULL,
            amount bigint NOT NULL,
            status text NOT NULL DEFAULT 'requested',
            requested_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS suppressions (
            channel text NOT NULL,
            address text NOT NULL,
            reason text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (channel, address)
        )
        """,
    ]

    /// paywatch's own tables, by migration number. Never edit a published migration: add one.
    static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE pw_order_state (
                order_id text PRIMARY KEY,
                status text,
                amount_paid bigint NOT NULL DEFAULT 0,
                marks text NOT NULL DEFAULT '',
                next_due_at bigint,
                first_seen_at bigint,
                quarantine text,
                updated_at bigint,
                version bigint NOT NULL DEFAULT 0,
                needs_refund bigint NOT NULL DEFAULT 0,
                pruned_at bigint,
                pruned_keep bigint,
                pruned_keys text,
                lease_owner text,
                lease_until bigint
            )
            """,
            // Due orders (next_due_at = 0: changed by the shop, plan now).
            "CREATE INDEX pw_order_state_due ON pw_order_state(next_due_at) WHERE next_due_at IS NOT NULL",
            "CREATE INDEX pw_order_state_settled ON pw_order_state(updated_at) WHERE \(Retention.settledConditionSQL)",
            // Orders a sweep holds (few at any time): when they come free, and whose they are.
            "CREATE INDEX pw_order_state_leased ON pw_order_state(lease_until) WHERE lease_until IS NOT NULL",
            """
            CREATE TABLE pw_outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                idempotency_key text NOT NULL,
                order_id text NOT NULL,
                kind text NOT NULL,
                step integer NOT NULL,
                channel text NOT NULL,
                recipient text NOT NULL,
                body text NOT NULL,
                state text NOT NULL DEFAULT 'pending',
                attempts integer NOT NULL DEFAULT 0,
                in_flight boolean NOT NULL DEFAULT false,
                due_at bigint NOT NULL,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                last_error text,
                alternates text,
                not_before bigint,
                lease_owner text
            )
            """,
            "CREATE UNIQUE INDEX pw_outbox_key ON pw_outbox(order_id, idempotency_key)",
            "CREATE INDEX pw_outbox_created ON pw_outbox(created_at)",
            "CREATE INDEX pw_outbox_channel_due ON pw_outbox(channel, due_at) WHERE state = 'pending'",
            "CREATE INDEX pw_outbox_held ON pw_outbox(order_id) WHERE not_before IS NOT NULL AND state = 'pending'",
            "CREATE INDEX pw_outbox_leased ON pw_outbox(lease_owner) WHERE lease_owner IS NOT NULL",
            """
            CREATE TABLE pw_attempts (
                outbox_id bigint NOT NULL,
                attempt integer NOT NULL,
                at bigint NOT NULL,
                http_status integer,
                error text,
                duration_ms bigint NOT NULL,
                outcome text NOT NULL
            )
            """,
            "CREATE INDEX pw_attempts_outbox ON pw_attempts(outbox_id)",
            "CREATE INDEX pw_attempts_at ON pw_attempts(at)",
            """
            CREATE TABLE pw_events (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                order_id text NOT NULL,
                at bigint NOT NULL,
                event text NOT NULL,
                detail text NOT NULL DEFAULT ''
            )
            """,
            "CREATE INDEX pw_events_order ON pw_events(order_id, at)",
            "CREATE INDEX pw_events_at ON pw_events(at) WHERE event = 'status'",
            """
            CREATE TABLE pw_reconcile (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                order_id text NOT NULL,
                payment_id text NOT NULL,
                provider_ref text NOT NULL,
                step integer NOT NULL,
                fallback_key text,
                fallback_kind text,
                fallback_step integer,
                fallback_channel text,
                fallback_recipient text,
                fallback_body text,
                state text NOT NULL DEFAULT 'pending',
                due_at bigint NOT NULL,
                answer text,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                lease_owner text,
                UNIQUE (order_id, payment_id, step)
            )
            """,
            "CREATE INDEX pw_reconcile_due ON pw_reconcile(due_at) WHERE state = 'pending'",
            """
            CREATE TABLE pw_daemon (
                instance text PRIMARY KEY,
                pid bigint NOT NULL,
                started_at bigint NOT NULL,
                config_loaded_at bigint NOT NULL,
                last_sweep_at bigint,
                last_sweep_ms bigint,
                stopped_at bigint
            )
            """,
            // New outbox rows wake every replica's delivery (one notification per statement;
            // PostgreSQL folds repeats within a transaction into one).
            """
            CREATE FUNCTION pw_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('\(channel)', '\(outboxPayload)');
                RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER pw_outbox_notify AFTER INSERT ON pw_outbox FOR EACH STATEMENT EXECUTE FUNCTION pw_notify_outbox()",
        ]),
        // New outbox rows wake the replicas' delivery only when one of them is for anyone to
        // claim: a row a sweep inserts leased to its own replica's delivery (handed over in the
        // process) wakes nobody. Before, every expiry woke every replica's delivery to claim
        // nothing: three claims per message on three replicas.
        (2, [
            """
            CREATE OR REPLACE FUNCTION pw_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pw_outbox_inserted WHERE NOT in_flight) THEN
                    PERFORM pg_notify('\(channel)', '\(outboxPayload)');
                END IF;
                RETURN NULL;
            END $$
            """,
            "DROP TRIGGER pw_outbox_notify ON pw_outbox",
            """
            CREATE TRIGGER pw_outbox_notify AFTER INSERT ON pw_outbox REFERENCING NEW TABLE AS pw_outbox_inserted
            FOR EACH STATEMENT EXECUTE FUNCTION pw_notify_outbox()
            """,
        ]),
        // The two statements every replica runs on every pass, as functions (PL/pgSQL: planned
        // once per connection) that scan the indexes whatever the statistics say. Without statistics (a table that has
        // not been analysed since a bulk intake) or with stale ones (due times move on as orders
        // are planned), the planner took a sequential scan of pw_order_state for "due before
        // now" and for the leased orders: milliseconds per pass per replica on a table of a few
        // thousand orders, growing with it, where the index needs microseconds. A held order is
        // looked at again when its lease ends (it was due when it was leased, and a sweep clears
        // the lease when it writes the order's next due time): the least lease end is one probe of
        // pw_order_state_leased. A lease that finds nothing due says in the same round trip when
        // planning and reconciliation are next due (a replica that lost the race for an order
        // sleeps again after one statement).
        (3, [
            """
            CREATE FUNCTION pw_next_planning_at(excluding_owner text DEFAULT NULL) RETURNS bigint
            LANGUAGE plpgsql STABLE SET enable_seqscan = off SET enable_bitmapscan = off AS $$
            BEGIN
                RETURN LEAST(
                    (SELECT MIN(d.next_due_at) FROM pw_order_state d WHERE d.next_due_at IS NOT NULL AND d.lease_until IS NULL),
                    (SELECT MIN(l.lease_until) FROM pw_order_state l
                     WHERE l.lease_until IS NOT NULL AND l.lease_owner IS DISTINCT FROM excluding_owner));
            END $$
            """,
            """
            CREATE FUNCTION pw_lease_due_orders(due_by bigint, max_orders bigint, owner text, held_until bigint)
            RETURNS TABLE(order_id text, status text, marks text, first_seen_at bigint, version bigint, pruned_keys text,
                          next_due_at bigint, next_reconcile_at bigint)
            LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off AS $$
            #variable_conflict use_column
            BEGIN
                -- A lease need not survive a crash of the server (an order whose lease is lost is
                -- only due again; the sweep's write checks the lease): its commit does not wait for
                -- the disk, which a write of the order's plan does a moment later anyway.
                PERFORM set_config('synchronous_commit', 'off', true);
                RETURN QUERY
                WITH due AS (
                    SELECT d.order_id FROM pw_order_state d
                    WHERE d.next_due_at IS NOT NULL AND d.next_due_at <= due_by
                      AND (d.lease_until IS NULL OR d.lease_until <= due_by)
                    ORDER BY d.next_due_at LIMIT max_orders
                    FOR UPDATE SKIP LOCKED),
                leased AS (
                    UPDATE pw_order_state s SET lease_owner = owner, lease_until = held_until
                    FROM due WHERE s.order_id = due.order_id
                    RETURNING s.order_id, s.status, s.marks, s.first_seen_at, s.version, s.pruned_keys, s.next_due_at)
                SELECT l.order_id, l.status, l.marks, l.first_seen_at, l.version, l.pruned_keys, l.next_due_at, NULL::bigint
                FROM leased l
                UNION ALL
                SELECT NULL, NULL, NULL, NULL, NULL, NULL, pw_next_planning_at(),
                       (SELECT MIN(r.due_at) FROM pw_reconcile r WHERE r.state = 'pending')
                WHERE NOT EXISTS (SELECT 1 FROM leased);
            END $$
            """,
        ]),
    ]

    /// The functions and triggers by which any write of the shop marks its order changed
    /// (`next_due_at = 0`, `version + 1`) and wakes the replicas (`NOTIFY paywatch_changed`, once
    /// per statement). The UPDATE trigger on `orders` watches the contract's columns the table
    /// has, not `status`, which paywatch writes itself. A row without an order id marks nothing.
    /// Replaces the triggers each time (after a column was added, they name the new shape).
    static func markTriggers(orderColumns: [String]) -> [String] {
        let mark = { (id: String) in
            """
            IF \(id) IS NOT NULL THEN
                    INSERT INTO pw_order_state(order_id, next_due_at) VALUES (\(id)::text, 0)
                    ON CONFLICT (order_id) DO UPDATE SET next_due_at = 0, version = pw_order_state.version + 1;
                END IF;
            """
        }
        let function = { (name: String, column: String) in
            """
            CREATE OR REPLACE FUNCTION \(name)() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    \(mark("NEW.\(column)"))
                ELSIF TG_OP = 'DELETE' THEN
                    \(mark("OLD.\(column)"))
                ELSE
                    \(mark("NEW.\(column)"))
                    IF OLD.\(column) IS DISTINCT FROM NEW.\(column) THEN
                        \(mark("OLD.\(column)"))
                    END IF;
                END IF;
                RETURN NULL;
            END $$
            """
        }
        let watched = orderColumns.filter { $0 != "status" }.joined(separator: ", ")
        var statements = [
            function("pw_mark_order", "id"),
            function("pw_mark_order_of_row", "order_id"),
            """
            CREATE OR REPLACE FUNCTION pw_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('\(channel)', '\(changedPayload)');
                RETURN NULL;
            END $$
            """,
            "DROP TRIGGER IF EXISTS pw_orders_mark ON orders",
            "DROP TRIGGER IF EXISTS pw_orders_notify ON orders",
            """
            CREATE TRIGGER pw_orders_mark AFTER INSERT OR DELETE OR UPDATE OF \(watched) ON orders
            FOR EACH ROW EXECUTE FUNCTION pw_mark_order()
            """,
            """
            CREATE TRIGGER pw_orders_notify AFTER INSERT OR DELETE OR UPDATE OF \(watched) ON orders
            FOR EACH STATEMENT EXECUTE FUNCTION pw_notify_changed()
            """,
        ]
        for table in ["payments", "installments", "refunds"] {
            statements += [
                "DROP TRIGGER IF EXISTS pw_\(table)_mark ON \(table)",
                "DROP TRIGGER IF EXISTS pw_\(table)_notify ON \(table)",
                "CREATE TRIGGER pw_\(table)_mark AFTER INSERT OR UPDATE OR DELETE ON \(table) FOR EACH ROW EXECUTE FUNCTION pw_mark_order_of_row()",
                "CREATE TRIGGER pw_\(table)_notify AFTER INSERT OR UPDATE OR DELETE ON \(table) FOR EACH STATEMENT EXECUTE FUNCTION pw_notify_changed()",
            ]
        }
        return statements
    }

    /// The contract's shop tables as paywatch needs them (the same as SQLite's, with PostgreSQL
    /// types for the optional columns `migrate` adds).
    struct Table {
        var name: String
        var required: [String]
        var optional: [(name: String, definition: String)]
        var key: [String]
    }

    static let tables: [Table] = [
        Table(name: "orders", required: ["id", "amount_due", "created_at"], optional: [
            ("currency", "text NOT NULL DEFAULT 'CNY'"), ("expires_at", "timestamptz"), ("email", "text"), ("phone", "text"),
            ("push_token", "text"), ("locale", "text"), ("time_zone", "text"), ("pay_url", "text"),
            ("customer_name", "text"), ("payment_method", "text"), ("status", "text NOT NULL DEFAULT 'unpaid'"),
        ], key: ["id"]),
        Table(name: "payments", required: ["id", "order_id", "amount", "status", "created_at"], optional: [
            ("provider_ref", "text"), ("method", "text"), ("failure_reason", "text"),
        ], key: ["id"]),
        Table(name: "installments", required: ["order_id", "seq", "amount", "due_at"], optional: [], key: ["order_id", "seq"]),
        Table(name: "refunds", required: ["id", "order_id", "amount", "status"], optional: [("requested_at", "timestamptz")],
              key: ["id"]),
        Table(name: "suppressions", required: ["channel", "address"], optional: [
            ("reason", "text NOT NULL DEFAULT ''"), ("created_at", "timestamptz NOT NULL DEFAULT now()"),
        ], key: ["channel", "address"]),
    ]

    /// The columns a sweep cannot do without (paywatch's own `orders.status` included).
    static func requiredWhileRunning(_ table: String) -> [String] {
        (tables.first { $0.name == table }?.required ?? []) + (table == "orders" ? ["status"] : [])
    }

    /// The contract's columns of `orders` (the UPDATE trigger watches those the table has).
    static let orderColumns = ["id", "amount_due", "currency", "created_at", "expires_at", "email", "phone", "push_token",
                               "locale", "time_zone", "pay_url", "customer_name", "payment_method"]
}

extension Retention {
    /// ``Retention``'s settled condition, for PostgreSQL's partial index.
    static var settledConditionSQL: String {
        "next_due_at IS NULL AND status IN \(finalStatuses) AND (pruned_at IS NULL OR pruned_at <= updated_at)"
    }
}
