import GRDB
import PaywatchCore

extension SQLiteOrderStore {
    /// The statuses no rule moves an order out of on its own; every other order is open.
    static let finalStatuses = "('paid', 'refunded', 'cancelled')"

    public func replanAll() async throws -> Int {
        // In chunks along the primary key: a shop with a million open orders never waits on one
        // long write.
        var marked = 0
        var after = ""
        while true {
            let (count, last) = try await writeImmediate { [after] db -> (Int, String?) in
                let ids = try String.fetchAll(db, sql: """
                    SELECT order_id FROM pw_order_state
                    WHERE order_id > ? AND (status IS NULL OR status NOT IN \(Self.finalStatuses) OR next_due_at IS NOT NULL)
                    ORDER BY order_id LIMIT 2000
                    """, arguments: [after])
                guard let last = ids.last else { return (0, nil) }
                try db.execute(sql: """
                    UPDATE pw_order_state SET next_due_at = 0
                    WHERE order_id > ? AND order_id <= ?
                      AND (status IS NULL OR status NOT IN \(Self.finalStatuses) OR next_due_at IS NOT NULL)
                    """, arguments: [after, last])
                return (db.changesCount, last)
            }
            marked += count
            guard let last else { return marked }
            after = last
        }
    }

    public func lag(now: Millis) async throws -> Lag {
        try await pool.read { db in try Self.lag(db, now: now) }
    }

    static func lag(_ db: Database, now: Millis) throws -> Lag {
        // Each a range of a partial index (pw_order_state_due, pw_outbox_pending).
        let oldestOrder = try Millis.fetchOne(db, sql: """
            SELECT MIN(next_due_at) FROM pw_order_state WHERE next_due_at IS NOT NULL AND next_due_at > 0 AND next_due_at <= ?
            """, arguments: [now])
        let changed = try Int.fetchOne(db, sql: """
            SELECT COUNT(*) FROM pw_order_state WHERE next_due_at IS NOT NULL AND next_due_at = 0
            """) ?? 0
        // The pending messages (pw_outbox_pending): few unless delivery is behind, or the quiet
        // hours hold many (those count from the end of the quiet hours, when they became due).
        let messages = try Row.fetchOne(db, sql: """
            SELECT COALESCE(SUM(due_at <= ?), 0) AS n, MIN(COALESCE(not_before, created_at)) AS oldest FROM pw_outbox WHERE state = 'pending'
            """, arguments: [now])
        return Lag(oldestDueOrderAt: oldestOrder, changedOrders: changed,
                   oldestPendingMessageAt: messages?["oldest"], dueMessages: messages?["n"] ?? 0)
    }

    public func writeHeartbeat(_ heartbeat: DaemonHeartbeat) async throws {
        try await writeImmediate { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO pw_daemon(instance, pid, started_at, config_loaded_at, last_sweep_at, last_sweep_ms, stopped_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [heartbeat.instance, heartbeat.pid, heartbeat.startedAt, heartbeat.configLoadedAt,
                                 heartbeat.lastSweepAt, heartbeat.lastSweepMs, heartbeat.stoppedAt])
        }
    }

    public func health(now: Millis) async throws -> Health {
        try await pool.read { db in
            let daemon = try Row.fetchOne(db, sql: """
                SELECT * FROM pw_daemon ORDER BY COALESCE(last_sweep_at, started_at) DESC LIMIT 1
                """).map { row in
                DaemonHeartbeat(instance: row["instance"], pid: row["pid"], startedAt: row["started_at"],
                                configLoadedAt: row["config_loaded_at"], lastSweepAt: row["last_sweep_at"],
                                lastSweepMs: row["last_sweep_ms"], stoppedAt: row["stopped_at"])
            }
            // One scan of paywatch's order rows for every count; an escalation is open while its
            // order is still where it was when ops was told (the outbox is asked only for those).
            let stalled = { (kind: String, status: String) in
                "SUM(status = '\(status)' AND EXISTS (SELECT 1 FROM pw_outbox o WHERE o.order_id = s.order_id AND o.kind = '\(kind)'))"
            }
            let counts = try Row.fetchOne(db, sql: """
                SELECT SUM(quarantine IS NULL AND (status IS NULL OR status NOT IN \(Self.finalStatuses))) AS open,
                       SUM(quarantine IS NOT NULL) AS quarantined,
                       SUM(needs_refund > 0) AS needs_refund,
                       \(stalled("paying_stalled", "paying")) AS paying_stalled,
                       \(stalled("refund_stalled", "refunding")) AS refund_stalled,
                       \(stalled("installment_escalated", "partially_paid")) AS installment_escalated
                FROM pw_order_state s
                """)
            var backlog: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT kind, COUNT(*) AS n FROM pw_outbox WHERE state = 'pending' AND due_at <= ? GROUP BY kind
                """, arguments: [now]) {
                backlog[row["kind"]] = row["n"]
            }
            var outbox: [OutboxState: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT CASE WHEN state = 'pending' AND in_flight = 1 THEN 'in_flight' ELSE state END AS state, COUNT(*) AS n
                FROM pw_outbox GROUP BY 1
                """) {
                outbox[OutboxState(rawValue: row["state"])] = row["n"]
            }
            var escalations: [String: Int] = [:]
            for kind in ["paying_stalled", "refund_stalled", "installment_escalated", "needs_refund"] {
                if let count = counts?[kind] as Int?, count > 0 { escalations[kind] = count }
            }
            let asks = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_reconcile WHERE state = 'pending'") ?? 0
            if asks > 0 { escalations["reconcile_pending"] = asks }
            return Health(now: now, daemon: daemon, lag: try Self.lag(db, now: now),
                          openOrders: counts?["open"] ?? 0, quarantined: counts?["quarantined"] ?? 0,
                          backlog: backlog, outbox: outbox, escalations: escalations)
        }
    }
}
