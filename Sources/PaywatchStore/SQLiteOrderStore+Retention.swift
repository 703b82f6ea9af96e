import GRDB
import PaywatchCore

/// Retention's SQL: which orders are settled, and the index that finds them.
///
/// "Final for longer than keep" is read from `pw_order_state.updated_at`, the time paywatch last
/// applied a plan to the order. A status change to final is always written by a plan, so the
/// order has been final since `updated_at` at the latest; and every timeline event and outbox
/// row of the order was written by a plan up to then (or by delivery of a message that was
/// pending: those block pruning until they are done). So `updated_at <= now − keep` means both
/// "final for longer than keep" and "nothing of its history is younger than keep". An order the
/// shop changes again is planned again, and its clock starts over. (The exact transition time is
/// in the `status` events, but those are what pruning deletes.)
package enum Retention {
    package static let finalStatuses = "('paid', 'refunded', 'cancelled')"

    /// Settled orders not pruned since their last plan, by the time of that plan. Partial: open
    /// orders and orders already pruned are not in it, so a run reads only what it may prune.
    /// (A prune sets `pruned_at` to its `now`, later than the `updated_at` it selected on; the
    /// next plan sets `updated_at` to its own `now`, so the order is back in the index.)
    static let settledCondition = """
        next_due_at IS NULL AND status IN \(finalStatuses) AND (pruned_at IS NULL OR pruned_at <= updated_at)
        """
    static let settledIndexSQL = "CREATE INDEX pw_order_state_settled ON pw_order_state(updated_at) WHERE \(settledCondition);"

    /// The orders whose history may be pruned: settled (the index's condition, repeated so that
    /// SQLite uses it) before the cutoff, and nothing open.
    static let candidatesSQL = """
        SELECT s.order_id FROM pw_order_state s
        WHERE \(settledCondition) AND updated_at <= ?
            AND quarantine IS NULL AND needs_refund = 0
            AND NOT EXISTS (SELECT 1 FROM pw_outbox o WHERE o.order_id = s.order_id AND o.state = 'pending')
            AND NOT EXISTS (SELECT 1 FROM pw_reconcile r WHERE r.order_id = s.order_id AND r.state = 'pending')
        ORDER BY updated_at
        """

    /// The cutoff for `keepMs` at `now`: strictly before `now`, so a pruned order's `pruned_at`
    /// (= `now`) is later than the `updated_at` it was selected on.
    package static func cutoff(now: Millis, keepMs: Millis) -> Millis {
        now.saturatingSubtract(max(keepMs, 1))
    }

    /// The separator of the keys in `pruned_keys` (keys are percent-encoded: never in a key).
    package static let keySeparator: Character = "\n"

    /// A key as `pruned_keys` holds it: without the `pw1:ORDER:` prefix that the keys of the
    /// order's own messages share (the row is the order's), so `unpaid_reminder:1:sms`; other
    /// keys (`pw1-dead:…`) whole. A compact key starts with a kind, never with `pw1`, so the two
    /// forms cannot meet. A third of the record's size, which stays per order.
    package static func compactKey(_ key: String, orderID: String) -> String {
        let prefix = "pw1:" + OutgoingMessage.percentEncoded(orderID) + ":"
        return key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
    }

    package static func decodeKeys(_ text: String?) -> Set<String>? {
        guard let text, !text.isEmpty else { return nil }
        return Set(text.split(separator: keySeparator).map(String.init))
    }
}

extension SQLiteOrderStore {
    public func prune(now: Millis, keepMs: Millis, limit: Int, dryRun: Bool) async throws -> PruneCounts {
        let cutoff = Retention.cutoff(now: now, keepMs: keepMs)
        if dryRun {
            return try await pool.read { try Self.countPrunable(db: $0, cutoff: cutoff) }
        }
        return try await writeImmediate { db in
            let ids = try String.fetchAll(db, sql: Retention.candidatesSQL + " LIMIT ?", arguments: [cutoff, limit])
            return try Self.prune(ids, db: db, now: now, keepMs: keepMs)
        }
    }

    /// What pruning every batch at `cutoff` would delete.
    private static func countPrunable(db: Database, cutoff: Millis) throws -> PruneCounts {
        let row = try Row.fetchOne(db, sql: """
            WITH c AS (\(Retention.candidatesSQL))
            SELECT (SELECT COUNT(*) FROM c),
                   (SELECT COUNT(*) FROM pw_events WHERE order_id IN c),
                   (SELECT COUNT(*) FROM pw_outbox WHERE order_id IN c),
                   (SELECT COUNT(*) FROM pw_attempts WHERE outbox_id IN (SELECT id FROM pw_outbox WHERE order_id IN c))
            """, arguments: [cutoff])
        guard let row else { return PruneCounts() }
        return PruneCounts(orders: row[0], events: row[1], outbox: row[2], attempts: row[3])
    }

    /// Deletes the history of `ids` (inside the caller's write transaction) and records on each
    /// tracking row that it was pruned, with the keys of its pruned messages.
    private static func prune(_ ids: [String], db: Database, now: Millis, keepMs: Millis) throws -> PruneCounts {
        guard !ids.isEmpty else { return PruneCounts() }
        let list = "(" + databaseQuestionMarks(count: ids.count) + ")"
        let args = StatementArguments(ids)
        var counts = PruneCounts(orders: ids.count)
        var keys: [String: [String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT order_id, idempotency_key FROM pw_outbox WHERE order_id IN \(list)", arguments: args) {
            let id: String = row[0]
            keys[id, default: []].append(Retention.compactKey(row[1], orderID: id))
        }
        try db.execute(sql: "DELETE FROM pw_attempts WHERE outbox_id IN (SELECT id FROM pw_outbox WHERE order_id IN \(list))", arguments: args)
        counts.attempts = db.changesCount
        try db.execute(sql: "DELETE FROM pw_outbox WHERE order_id IN \(list)", arguments: args)
        counts.outbox = db.changesCount
        try db.execute(sql: "DELETE FROM pw_events WHERE order_id IN \(list)", arguments: args)
        counts.events = db.changesCount
        let mark = try db.cachedStatement(sql: """
            UPDATE pw_order_state SET pruned_at = ?, pruned_keep = ?,
                pruned_keys = CASE WHEN ?3 = '' THEN pruned_keys ELSE COALESCE(pruned_keys || char(10), '') || ?3 END
            WHERE order_id = ?
            """)
        for id in ids {
            let pruned = (keys[id] ?? []).joined(separator: String(Retention.keySeparator))
            try mark.execute(arguments: [now, keepMs, pruned, id])
        }
        return counts
    }

    /// Whether `message`'s key was decided before and its outbox row pruned since: then it was
    /// sent (or given up) already and must not be decided again.
    static func wasPruned(_ db: Database, _ message: OutgoingMessage) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT EXISTS(SELECT 1 FROM pw_order_state WHERE order_id = ? AND pruned_keys IS NOT NULL
                AND instr(char(10) || pruned_keys || char(10), char(10) || ? || char(10)) > 0)
            """), arguments: [message.orderID, Retention.compactKey(message.idempotencyKey, orderID: message.orderID)]) ?? false
    }
}
