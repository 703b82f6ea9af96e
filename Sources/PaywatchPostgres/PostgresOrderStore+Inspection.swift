import PaywatchCore
import PaywatchStore
import PostgresNIO

extension PostgresOrderStore {
    static let finalStatuses = Retention.finalStatuses

    // MARK: orders show / list

    public func order(id: String) async throws -> OrderDetail? {
        let selects = try await read { connection in try await ShopSelects(self, connection) }
        return try await read { connection -> OrderDetail? in
            var binds = Binds()
            let idBind = binds.add(id)
            var state = try await self.first(connection, """
                SELECT order_id, status, marks, first_seen_at, version, pruned_keys, amount_paid, next_due_at, quarantine,
                       needs_refund, pruned_at, pruned_keep
                FROM pw_order_state WHERE order_id = \(idBind)
                """, binds)
            if state == nil {
                // In orders, not planned yet.
                state = try await self.first(connection, """
                    SELECT \(idBind)::text, NULL::text, NULL::text, NULL::bigint, 0::bigint, NULL::text, 0::bigint, NULL::bigint,
                           NULL::text, 0::bigint, NULL::bigint, NULL::bigint
                    WHERE EXISTS (SELECT 1 FROM orders WHERE id::text = \(idBind))
                    """, binds)
            }
            guard let state else { return nil }
            let due = DueOrder(id: id, tracked: TrackedState(
                status: try state.stringOrNil(1).flatMap(OrderStatus.init(rawValue:)), marks: MarksCodec.decode(try state.stringOrNil(2)),
                firstSeenAt: try state.int64OrNil(3)), version: try state.int64(4), prunedKeys: nil)
            guard let snapshot = try await self.loadSnapshots(connection, due: [due], selects: selects).snapshots.first else { return nil }
            var eventBinds = Binds()
            let events = try await self.rows(connection, """
                SELECT at, event, detail FROM pw_events WHERE order_id = \(eventBinds.add(id)) ORDER BY at, id
                """, eventBinds).map { TimelineEntry(at: try $0.int64(0), event: try $0.string(1), detail: try $0.string(2)) }
            var attempts: [Int64: [AttemptRecord]] = [:]
            var attemptBinds = Binds()
            for row in try await self.rows(connection, """
                SELECT a.outbox_id, a.attempt, a.at, a.http_status, a.error, a.duration_ms, a.outcome
                FROM pw_attempts a JOIN pw_outbox o ON o.id = a.outbox_id WHERE o.order_id = \(attemptBinds.add(id)) ORDER BY a.attempt
                """, attemptBinds) {
                attempts[try row.int64(0), default: []].append(AttemptRecord(
                    attempt: try row.int(1), at: try row.int64(2), httpStatus: try row.int64OrNil(3).map(Int.init),
                    error: try row.stringOrNil(4), durationMs: try row.int64(5), outcome: AttemptOutcome(rawValue: try row.string(6))))
            }
            var outboxBinds = Binds()
            let deliveries = try await self.rows(connection, """
                SELECT id, idempotency_key, kind, step, channel, recipient, state, created_at, due_at, last_error, not_before
                FROM pw_outbox WHERE order_id = \(outboxBinds.add(id)) ORDER BY created_at, id
                """, outboxBinds).map { row -> DeliveryRecord in
                let channel = try row.string(4)
                return DeliveryRecord(
                    idempotencyKey: try row.string(1), kind: try row.string(2), step: try row.int(3), channel: channel,
                    to: Redact.address(try row.string(5), channel: channel), state: OutboxState(rawValue: try row.string(6)),
                    createdAt: try row.int64(7), dueAt: try row.int64(8), lastError: try row.stringOrNil(9),
                    attempts: attempts[try row.int64(0)] ?? [], heldUntil: try row.int64OrNil(10))
            }
            return OrderDetail(
                orderID: id, snapshot: snapshot, trackedStatus: due.tracked.status, amountPaid: try state.int64(6),
                nextDueAt: try state.int64OrNil(7), quarantine: try state.stringOrNil(8), needsRefund: try state.int64(9),
                timeline: SQLiteOrderStore.timeline(events: events, deliveries: deliveries), deliveries: deliveries,
                prunedAt: try state.int64OrNil(10), prunedKeepMs: try state.int64OrNil(11))
        }
    }

    public func orders(_ filter: OrderFilter?, limit: Int) async throws -> [OrderSummary] {
        try await read { connection in
            var binds = Binds()
            var sql = """
                SELECT s.order_id, COALESCE(s.status, o.status, '?'), \(ShopSelects.expression("o.amount_due", type: "bigint", as: .integer)),
                       s.amount_paid, COALESCE(o.currency, ''), s.next_due_at, s.quarantine, s.needs_refund
                FROM pw_order_state s LEFT JOIN orders o ON o.id::text = s.order_id
                """
            switch filter {
            case .quarantined?: sql += " WHERE s.quarantine IS NOT NULL"
            case .needsRefund?: sql += " WHERE s.needs_refund > 0"
            case .status(let status)?: sql += " WHERE s.status = \(binds.add(status.rawValue)) AND s.quarantine IS NULL"
            case nil: break
            }
            sql += " ORDER BY s.order_id LIMIT \(binds.add(Int64(limit)))"
            return try await self.rows(connection, sql, binds).map { row in
                OrderSummary(id: Validator.display(try row.string(0), limit: 200), status: try row.stringOrNil(1) ?? "?",
                             amountDue: try row.int64OrNil(2), amountPaid: try row.int64(3), currency: try row.stringOrNil(4) ?? "",
                             nextDueAt: try row.int64OrNil(5), quarantine: try row.stringOrNil(6), needsRefund: try row.int64(7))
            }
        }
    }

    // MARK: report

    public func report(since: Millis, now: Millis) async throws -> Report {
        try await read { connection in
            var byStatus: [String: Int] = [:]
            for row in try await self.rows(connection, """
                SELECT COALESCE(status, 'new'), COUNT(*) FROM pw_order_state WHERE quarantine IS NULL GROUP BY 1
                """, Binds()) {
                byStatus[try row.string(0)] = try row.int(1)
            }
            let counts = try await self.first(connection, """
                SELECT COUNT(*) FILTER (WHERE quarantine IS NOT NULL), COUNT(*) FILTER (WHERE needs_refund > 0) FROM pw_order_state
                """, Binds())
            var binds = Binds()
            let sinceBind = binds.add(since)
            let nowBind = binds.add(now)
            let messages = try await self.rows(connection, """
                SELECT kind, channel, state, COUNT(*) FROM pw_outbox WHERE created_at >= \(sinceBind)
                GROUP BY kind, channel, state ORDER BY kind, channel, state
                """, binds).map {
                Report.MessageCount(kind: try $0.string(0), channel: try $0.string(1), state: OutboxState(rawValue: try $0.string(2)),
                                    count: try $0.int(3))
            }
            var attempts: [AttemptOutcome: Int] = [:]
            for row in try await self.rows(connection, "SELECT outcome, COUNT(*) FROM pw_attempts WHERE at >= $1 AND $2 = $2 GROUP BY outcome", binds) {
                attempts[AttemptOutcome(rawValue: try row.string(0))] = try row.int(1)
            }
            let backlog = try await self.first(connection, """
                SELECT COUNT(*), MIN(due_at) FROM pw_outbox WHERE state = 'pending' AND due_at <= \(nowBind) AND $1 = $1
                """, binds)
            var report = Report(since: since, now: now, ordersByStatus: byStatus, quarantined: try counts?.int(0) ?? 0,
                                needsRefund: try counts?.int(1) ?? 0, messages: messages, attempts: attempts,
                                backlog: try backlog?.int(0) ?? 0, oldestBacklogDueAt: try backlog?.int64OrNil(1))
            try await self.addOutcomes(to: &report, connection)
            return report
        }
    }


    /// Reminder conversion, cancellations, escalations, money to return and outstanding per
    /// currency, time to payment (see ``SQLiteOrderStore`` for what each counts).
    func addOutcomes(to report: inout Report, _ connection: PostgresConnection) async throws {
        var binds = Binds()
        let since = binds.add(report.since)
        let until = binds.add(report.now)
        if let row = try await first(connection, """
            WITH reminded AS (
                SELECT DISTINCT order_id FROM pw_outbox
                WHERE created_at BETWEEN \(since) AND \(until) AND kind = 'unpaid_reminder' AND state = 'delivered')
            SELECT COUNT(*), COUNT(*) FILTER (WHERE s.status = 'paid' AND s.quarantine IS NULL)
            FROM reminded r LEFT JOIN pw_order_state s ON s.order_id = r.order_id
            """, binds) {
            let reminded = try row.int(0)
            let paid = try row.int(1)
            report.reminderConversion = Report.ReminderConversion(
                remindedOrders: reminded, paidOrders: paid, rate: reminded > 0 ? Double(paid) / Double(reminded) : nil)
        }
        if let row = try await first(connection, """
            WITH cancelled AS (
                SELECT order_id, MIN(at) AS at FROM pw_events
                WHERE event = 'status' AND at BETWEEN $1 AND $2 AND detail LIKE '% → cancelled'
                GROUP BY order_id)
            SELECT COUNT(*), COUNT(*) FILTER (WHERE EXISTS(
                SELECT 1 FROM pw_outbox x WHERE x.order_id = c.order_id AND x.kind = 'unpaid_reminder'
                    AND x.state = 'delivered' AND x.created_at <= c.at))
            FROM cancelled c
            """, binds) {
            report.cancellations = Report.Cancellations(orders: try row.int(0), reminded: try row.int(1))
        }
        let escalationKinds = Set(Report.escalationKinds.map(\.rawValue))
        for row in report.messages where escalationKinds.contains(row.kind) {
            report.escalations[row.kind, default: 0] += row.count
        }
        let amountDue = ShopSelects.expression("o.amount_due", type: try await columns(connection, "orders")["amount_due"], as: .integer)
        report.needsRefundByCurrency = try await money(connection, sum: "s.needs_refund", from: """
            FROM pw_order_state s LEFT JOIN orders o ON o.id::text = s.order_id
            WHERE s.needs_refund > 0 GROUP BY 1 ORDER BY 1
            """)
        report.outstanding = try await money(connection, sum: "GREATEST(\(amountDue) - s.amount_paid, 0)", from: """
            FROM pw_order_state s JOIN orders o ON o.id::text = s.order_id
            WHERE s.status IN (\(SQLiteOrderStore.sqlList(Report.outstandingStatuses.map(\.rawValue)))) AND s.quarantine IS NULL
                AND \(amountDue) IS NOT NULL
            GROUP BY 1 ORDER BY 1
            """)
        let createdAt = ShopSelects.expression("o.created_at", type: try await columns(connection, "orders")["created_at"], as: .integer)
        let paidFrom = SQLiteOrderStore.sqlList(Report.payableStatuses.map { "\($0.rawValue) → paid" })
        let durations = try await rows(connection, """
            SELECT MIN(e.at) - MIN(\(createdAt)) FROM pw_events e JOIN orders o ON o.id::text = e.order_id
            WHERE e.event = 'status' AND e.at BETWEEN $1 AND $2 AND e.detail IN (\(paidFrom)) AND \(createdAt) IS NOT NULL
            GROUP BY e.order_id
            """, binds).compactMap { try $0.int64OrNil(0) }
        report.timeToPayment = Report.TimeToPayment(durations: durations)
    }

    /// `SUM(sum)` per `orders.currency` over `from`, with the count of rows; a sum past `bigint`
    /// is shown as the largest one instead of failing the report.
    func money(_ connection: PostgresConnection, sum: String, from: String) async throws -> [Report.Money] {
        try await rows(connection, """
            SELECT COALESCE(o.currency::text, ''), COUNT(*), LEAST(SUM((\(sum))::numeric), 9223372036854775807)::bigint

            """ + from, Binds()).map {
            Report.Money(currency: try $0.string(0), orders: try $0.int(1), amount: try $0.int64OrNil(2) ?? 0)
        }
    }

    // MARK: replan, lag, heartbeat, health

    public func replanAll() async throws -> Int {
        var marked = 0
        var after = ""
        while true {
            let (count, last) = try await transaction { [after] connection -> (Int, String?) in
                var binds = Binds()
                let rows = try await self.rows(connection, """
                    WITH ids AS (
                        SELECT order_id FROM pw_order_state
                        WHERE order_id > \(binds.add(after))
                          AND (status IS NULL OR status NOT IN \(Self.finalStatuses) OR next_due_at IS NOT NULL)
                        ORDER BY order_id LIMIT 2000)
                    UPDATE pw_order_state s SET next_due_at = 0 FROM ids WHERE s.order_id = ids.order_id
                    RETURNING s.order_id
                    """, binds)
                return (rows.count, try rows.map { try $0.string(0) }.max())
            }
            marked += count
            guard let last else { return marked }
            after = last
        }
    }

    public func lag(now callerNow: Millis) async throws -> Lag {
        try await read { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            let lag = try await self.lag(connection, now: now)
            return Self.shifted(lag, by: callerNow - now)
        }
    }

    /// `lag` with its times moved onto the caller's clock.
    static func shifted(_ lag: Lag, by shift: Millis) -> Lag {
        guard shift != 0 else { return lag }
        var lag = lag
        lag.oldestDueOrderAt = lag.oldestDueOrderAt.map { $0 == 0 ? 0 : $0.saturatingAdd(shift) }
        lag.oldestPendingMessageAt = lag.oldestPendingMessageAt.map { $0.saturatingAdd(shift) }
        return lag
    }

    func lag(_ connection: PostgresConnection, now: Millis) async throws -> Lag {
        var binds = Binds()
        let row = try await first(connection, """
            SELECT (SELECT MIN(next_due_at) FROM pw_order_state WHERE next_due_at IS NOT NULL AND next_due_at > 0 AND next_due_at <= \(binds.add(now))),
                   (SELECT COUNT(*) FROM pw_order_state WHERE next_due_at IS NOT NULL AND next_due_at = 0),
                   (SELECT COUNT(*) FILTER (WHERE due_at <= $1) FROM pw_outbox WHERE state = 'pending'),
                   (SELECT MIN(COALESCE(not_before, created_at)) FROM pw_outbox WHERE state = 'pending')
            """, binds)
        return Lag(oldestDueOrderAt: try row?.int64OrNil(0), changedOrders: try row?.int(1) ?? 0,
                   oldestPendingMessageAt: try row?.int64OrNil(3), dueMessages: try row?.int(2) ?? 0)
    }

    public func writeHeartbeat(_ heartbeat: DaemonHeartbeat) async throws {
        try await transaction { connection in
            var binds = Binds()
            try await self.execute(connection, """
                INSERT INTO pw_daemon(instance, pid, started_at, config_loaded_at, last_sweep_at, last_sweep_ms, stopped_at)
                VALUES (\(binds.add(heartbeat.instance)), \(binds.add(heartbeat.pid)), \(binds.add(heartbeat.startedAt)),
                        \(binds.add(heartbeat.configLoadedAt)), \(binds.add(heartbeat.lastSweepAt)), \(binds.add(heartbeat.lastSweepMs)),
                        \(binds.add(heartbeat.stoppedAt)))
                ON CONFLICT (instance) DO UPDATE SET pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
                    config_loaded_at = EXCLUDED.config_loaded_at, last_sweep_at = EXCLUDED.last_sweep_at,
                    last_sweep_ms = EXCLUDED.last_sweep_ms, stopped_at = EXCLUDED.stopped_at
                """, binds)
        }
    }

    public func health(now callerNow: Millis) async throws -> Health {
        try await read { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            let daemon = try await self.first(connection, """
                SELECT instance, pid, started_at, config_loaded_at, last_sweep_at, last_sweep_ms, stopped_at
                FROM pw_daemon ORDER BY COALESCE(last_sweep_at, started_at) DESC LIMIT 1
                """, Binds()).map { row in
                DaemonHeartbeat(instance: try row.string(0), pid: try row.int64(1), startedAt: try row.int64(2),
                                configLoadedAt: try row.int64(3), lastSweepAt: try row.int64OrNil(4),
                                lastSweepMs: try row.int64OrNil(5), stoppedAt: try row.int64OrNil(6))
            }
            let stalled = { (kind: String, status: String) in
                "COUNT(*) FILTER (WHERE status = '\(status)' AND EXISTS (SELECT 1 FROM pw_outbox o WHERE o.order_id = s.order_id AND o.kind = '\(kind)'))"
            }
            let counts = try await self.first(connection, """
                SELECT COUNT(*) FILTER (WHERE quarantine IS NULL AND (status IS NULL OR status NOT IN \(Self.finalStatuses))),
                       COUNT(*) FILTER (WHERE quarantine IS NOT NULL),
                       COUNT(*) FILTER (WHERE needs_refund > 0),
                       \(stalled("paying_stalled", "paying")),
                       \(stalled("refund_stalled", "refunding")),
                       \(stalled("installment_escalated", "partially_paid"))
                FROM pw_order_state s
                """, Binds())
            var binds = Binds()
            var backlog: [String: Int] = [:]
            for row in try await self.rows(connection, """
                SELECT kind, COUNT(*) FROM pw_outbox WHERE state = 'pending' AND due_at <= \(binds.add(now)) GROUP BY kind
                """, binds) {
                backlog[try row.string(0)] = try row.int(1)
            }
            var outbox: [OutboxState: Int] = [:]
            for row in try await self.rows(connection, """
                SELECT CASE WHEN state = 'pending' AND in_flight THEN 'in_flight' ELSE state END, COUNT(*) FROM pw_outbox GROUP BY 1
                """, Binds()) {
                outbox[OutboxState(rawValue: try row.string(0))] = try row.int(1)
            }
            var escalations: [String: Int] = [:]
            for (index, kind) in ["needs_refund", "paying_stalled", "refund_stalled", "installment_escalated"].enumerated() {
                if let count = try counts?.int(index + 2), count > 0 { escalations[kind] = count }
            }
            let asks = try await self.first(connection, "SELECT COUNT(*) FROM pw_reconcile WHERE state = 'pending'", Binds())
                .map { try $0.int(0) } ?? 0
            if asks > 0 { escalations["reconcile_pending"] = asks }
            return Health(now: callerNow, daemon: daemon, lag: Self.shifted(try await self.lag(connection, now: now), by: callerNow - now),
                          openOrders: try counts?.int(0) ?? 0, quarantined: try counts?.int(1) ?? 0,
                          backlog: backlog, outbox: outbox, escalations: escalations)
        }
    }

    // MARK: Retention

    public func prune(now callerNow: Millis, keepMs: Millis, limit: Int, dryRun: Bool) async throws -> PruneCounts {
        let candidates = """
            SELECT s.order_id FROM pw_order_state s
            WHERE \(Retention.settledConditionSQL) AND updated_at <= $1
                AND quarantine IS NULL AND needs_refund = 0
                AND NOT EXISTS (SELECT 1 FROM pw_outbox o WHERE o.order_id = s.order_id AND o.state = 'pending')
                AND NOT EXISTS (SELECT 1 FROM pw_reconcile r WHERE r.order_id = s.order_id AND r.state = 'pending')
            ORDER BY updated_at
            """
        if dryRun {
            return try await read { connection in
                let now = try await self.effectiveNow(callerNow, connection)
                var binds = Binds()
                _ = binds.add(Retention.cutoff(now: now, keepMs: keepMs))
                let row = try await self.first(connection, """
                    WITH c AS (\(candidates))
                    SELECT (SELECT COUNT(*) FROM c),
                           (SELECT COUNT(*) FROM pw_events WHERE order_id IN (SELECT order_id FROM c)),
                           (SELECT COUNT(*) FROM pw_outbox WHERE order_id IN (SELECT order_id FROM c)),
                           (SELECT COUNT(*) FROM pw_attempts WHERE outbox_id IN (SELECT id FROM pw_outbox WHERE order_id IN (SELECT order_id FROM c)))
                    """, binds)
                guard let row else { return PruneCounts() }
                return PruneCounts(orders: try row.int(0), events: try row.int(1), outbox: try row.int(2), attempts: try row.int(3))
            }
        }
        return try await transaction { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            var binds = Binds()
            _ = binds.add(Retention.cutoff(now: now, keepMs: keepMs))
            let ids = try await self.rows(connection, candidates + " LIMIT \(binds.add(Int64(limit))) FOR UPDATE SKIP LOCKED", binds)
                .map { try $0.string(0) }
            guard !ids.isEmpty else { return PruneCounts() }
            var counts = PruneCounts(orders: ids.count)
            var idBinds = Binds()
            let list = idBinds.add(ids)
            var keys: [String: [String]] = [:]
            for row in try await self.rows(connection, "SELECT order_id, idempotency_key FROM pw_outbox WHERE order_id = ANY(\(list))", idBinds) {
                let id = try row.string(0)
                keys[id, default: []].append(Retention.compactKey(try row.string(1), orderID: id))
            }
            counts.attempts = try await self.rows(connection, """
                DELETE FROM pw_attempts WHERE outbox_id IN (SELECT id FROM pw_outbox WHERE order_id = ANY($1)) RETURNING 1
                """, idBinds).count
            counts.outbox = try await self.rows(connection, "DELETE FROM pw_outbox WHERE order_id = ANY($1) RETURNING 1", idBinds).count
            counts.events = try await self.rows(connection, "DELETE FROM pw_events WHERE order_id = ANY($1) RETURNING 1", idBinds).count
            var markBinds = Binds()
            try await self.execute(connection, """
                UPDATE pw_order_state s SET pruned_at = \(markBinds.add(now)), pruned_keep = \(markBinds.add(keepMs)),
                    pruned_keys = CASE WHEN u.keys = '' THEN s.pruned_keys ELSE COALESCE(s.pruned_keys || E'\\n', '') || u.keys END
                FROM unnest(\(markBinds.add(ids))::text[],
                            \(markBinds.add(ids.map { (keys[$0] ?? []).joined(separator: String(Retention.keySeparator)) }))::text[])
                     AS u(order_id, keys)
                WHERE s.order_id = u.order_id
                """, markBinds)
            return counts
        }
    }
}
