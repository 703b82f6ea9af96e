import Foundation
import GRDB
import PaywatchCore

/// Errors of the store, free of SQL arguments and personal data.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(description: String) {
        self.description = description
    }
    public static func cannotOpen(_ path: String, _ reason: String) -> StoreError {
        StoreError(description: "cannot open the SQLite database \(path): \(reason)")
    }
}

/// The embedded order store on SQLite (WAL, busy timeout, IMMEDIATE write transactions).
/// One paywatch process per database file; several replicas share PostgreSQL instead.
public final class SQLiteOrderStore: OrderStore {
    public let path: String
    private let pool: DatabasePool

    public init(path: String, busyTimeoutMs: Int64 = 5000) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(Double(busyTimeoutMs) / 1000)
        config.label = "paywatch"
        config.prepareDatabase { db in
            // WAL + NORMAL: durable across process crashes; a power loss may undo the last commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB): a burst's outbox
            // pages stay in memory instead of being re-read from the WAL (+15–20 % burst throughput).
            try db.execute(sql: "PRAGMA cache_size = -16000")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path, error.message ?? "error \(error.resultCode)")
        }
    }

    public func migrate() async throws {
        try SQLiteSchema.migrator().migrate(pool)
    }

    private func writeImmediate<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try work(db)
                return .commit
            }
            return result!
        }
    }

    // MARK: Planning

    /// Reads what is due and plans it on a reader connection, outside the write lock (so delivery's
    /// commits are not held up by the planner's work), then applies the plans in short `IMMEDIATE`
    /// transactions of ``writeChunk`` orders (each order's status, outbox rows, timeline and next
    /// due time in one of them). Optimistic: an order the shop changed in between (its `version`,
    /// bumped by the triggers, moved) is not applied; it is marked changed and planned again at
    /// the next sweep.
    public func sweep(now: Millis, limit: Int, plan: @escaping @Sendable (OrderSnapshot) -> Plan, handOff: DeliveryHandOff?,
                      applied onApplied: @escaping @Sendable ([Plan], [OutboxMessage]) -> Void) async throws -> SweepResult {
        let (snapshots, versions) = try await pool.read { db -> ([OrderSnapshot], [String: Int64]) in
            let states = try Row.fetchAll(db, sql: """
                SELECT order_id, status, marks, first_seen_at, version FROM pw_order_state
                WHERE next_due_at IS NOT NULL AND next_due_at <= ? ORDER BY next_due_at LIMIT ?
                """, arguments: [now, limit])
            var versions: [String: Int64] = [:]
            for state in states { versions[state["order_id"]] = state["version"] }
            return (try Self.loadSnapshots(db, states: states), versions)
        }
        guard !snapshots.isEmpty else { return SweepResult(plans: [], claimed: 0) }
        // Planned and written in chunks, one transaction each, so the write lock is never held
        // for long (delivery's commits and the shop's own writes get their turn in between), and
        // the first messages can leave while the rest of the batch is still being planned.
        var applied: [Plan] = []
        var start = 0
        while start < snapshots.count {
            let chunk = snapshots[start..<min(start + Self.writeChunk, snapshots.count)].map(plan)
            start += chunk.count
            let (written, handed) = try await apply(chunk, versions: versions, handOff: handOff, now: now)
            onApplied(written, handed)
            applied += written
        }
        return SweepResult(plans: applied, claimed: snapshots.count)
    }

    /// Plans applied per write transaction.
    static let writeChunk = 100

    /// Applies `decided` in one `IMMEDIATE` transaction; returns the plans that were applied and
    /// the messages handed off, leased, to delivery.
    private func apply(_ decided: [Plan], versions: [String: Int64], handOff: DeliveryHandOff?,
                       now: Millis) async throws -> ([Plan], [OutboxMessage]) {
        try await writeImmediate { db -> ([Plan], [OutboxMessage]) in
            var plans = decided
            var applied = [Bool](repeating: false, count: plans.count)
            var handed: [OutboxMessage] = []
            do {
                // Fast path: the whole batch at once.
                try db.inSavepoint {
                    for index in plans.indices {
                        let taken = try Self.apply(plans[index], version: versions[plans[index].orderID] ?? 0, handOff: handOff,
                                                   db: db, now: now)
                        applied[index] = taken != nil
                        handed += taken ?? []
                    }
                    return .commit
                }
            } catch let error as DatabaseError where !Self.isTransient(error) {
                handed = []  // rolled back with the batch
                // Something in the batch cannot be written (a shop trigger or constraint rejects
                // it): apply order by order, and quarantine the ones that fail instead of
                // letting one order block every other.
                for index in plans.indices {
                    let version = versions[plans[index].orderID] ?? 0
                    do {
                        try db.inSavepoint {
                            let taken = try Self.apply(plans[index], version: version, handOff: handOff, db: db, now: now)
                            applied[index] = taken != nil
                            handed += taken ?? []
                            return .commit
                        }
                    } catch let error as DatabaseError where !Self.isTransient(error) {
                        plans[index].quarantine = "the plan could not be written: SQLite error \(error.resultCode.rawValue) (\(error.message ?? "no message"))"
                        plans[index].messages = []
                        applied[index] = try Self.apply(plans[index], version: version, handOff: nil, db: db, now: now) != nil
                    }
                }
            }
            return (plans.indices.filter { applied[$0] }.map { plans[$0] }, handed)
        }
    }

    private static func loadSnapshots(_ db: Database, states: [Row]) throws -> [OrderSnapshot] {
        let ids: [String] = states.map { $0["order_id"] }
        let placeholders = databaseQuestionMarks(count: ids.count)
        let args = StatementArguments(ids)
        var orders: [String: OrderRecord] = [:]
        let orderRows = try Row.fetchAll(db, sql: "SELECT * FROM orders WHERE id IN (\(placeholders))", arguments: args)
        let orderColumns = ColumnMap(orderRows.first)
        for row in orderRows {
            let record = orderRecord(row, orderColumns)
            orders[record.id] = record
        }
        var payments: [String: [PaymentRecord]] = [:]
        let paymentRows = try Row.fetchAll(db, sql: "SELECT * FROM payments WHERE order_id IN (\(placeholders))", arguments: args)
        let paymentColumns = ColumnMap(paymentRows.first)
        for row in paymentRows {
            let record = paymentRecord(row, paymentColumns)
            payments[record.orderID, default: []].append(record)
        }
        var installments: [String: [InstallmentRecord]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT * FROM installments WHERE order_id IN (\(placeholders))", arguments: args) {
            let orderID: String = row["order_id"]
            installments[orderID, default: []].append(
                InstallmentRecord(seq: int(row["seq"]) ?? 0, amount: int(row["amount"]), dueAt: int(row["due_at"])))
        }
        var refunds: [String: [RefundRecord]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT * FROM refunds WHERE order_id IN (\(placeholders))", arguments: args) {
            let orderID: String = row["order_id"]
            refunds[orderID, default: []].append(RefundRecord(
                id: text(row["id"]) ?? "", amount: int(row["amount"]), status: text(row["status"]) ?? "",
                requestedAt: int(row["requested_at"])))
        }
        return states.map { state in
            let id: String = state["order_id"]
            let tracked = TrackedState(
                status: (state["status"] as String?).flatMap(OrderStatus.init(rawValue:)),
                marks: MarksCodec.decode(state["marks"]),
                firstSeenAt: state["first_seen_at"]
            )
            return OrderSnapshot(
                orderID: id, order: orders[id], payments: payments[id] ?? [], installments: installments[id] ?? [],
                refunds: refunds[id] ?? [], state: tracked
            )
        }
    }

    /// Errors that say nothing about the rows (lock, disk, I/O): the sweep fails and is retried.
    private static func isTransient(_ error: DatabaseError) -> Bool {
        [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_NOMEM, .SQLITE_READONLY, .SQLITE_CANTOPEN]
            .contains(error.resultCode)
    }

    /// Applies one plan if the order is still at `version`: nil if not, else the messages handed
    /// off to delivery (inserted leased).
    private static func apply(_ plan: Plan, version: Int64, handOff: DeliveryHandOff?, db: Database,
                              now: Millis) throws -> [OutboxMessage]? {
        if let reason = plan.quarantine {
            try db.cachedStatement(sql: """
                UPDATE pw_order_state SET quarantine = ?, next_due_at = NULL, updated_at = ? WHERE order_id = ? AND version = ?
                """).execute(arguments: [reason, now, plan.orderID, version])
            guard db.changesCount > 0 else { return nil }
            try insertEvent(db, orderID: plan.orderID, at: now, event: "quarantined", detail: reason)
            return []
        }
        try db.cachedStatement(sql: """
            UPDATE pw_order_state SET status = ?, amount_paid = ?, marks = ?, next_due_at = ?, quarantine = NULL,
                first_seen_at = COALESCE(first_seen_at, ?), updated_at = ?
            WHERE order_id = ? AND version = ?
            """).execute(arguments: [plan.status.rawValue, plan.amountPaid, MarksCodec.encode(plan.marks), plan.nextDueAt,
                             now, now, plan.orderID, version])
        // The shop changed the order since it was read: it is marked changed, planned again next.
        guard db.changesCount > 0 else { return nil }
        if plan.statusChanged {
            // Only when it differs, so the shop's view changes exactly when paywatch decides.
            try db.cachedStatement(sql: "UPDATE orders SET status = ? WHERE id = ? AND status IS NOT ?")
                .execute(arguments: [plan.status.rawValue, plan.orderID, plan.status.rawValue])
        }
        var handed: [OutboxMessage] = []
        for message in plan.messages {
            if let handOff, handOff.take(message.channel) {
                // Leased to delivery from the start: it goes out without being claimed.
                if try insertOutbox(db, message, now: now, leasedUntil: now + handOff.leaseMs) {
                    handed.append(OutboxMessage(id: db.lastInsertedRowID, message: message, attempts: 0))
                }
            } else {
                try insertOutbox(db, message, now: now)
            }
        }
        for event in plan.events {
            try insertEvent(db, orderID: plan.orderID, at: now, event: event.event, detail: event.detail)
        }
        return handed
    }

    private static func insertEvent(_ db: Database, orderID: String, at: Millis, event: String, detail: String) throws {
        try db.cachedStatement(sql: "INSERT INTO pw_events(order_id, at, event, detail) VALUES (?, ?, ?, ?)")
            .execute(arguments: [orderID, at, event, detail])
    }

    /// Decides a message: a new outbox row, or nothing if its key was decided before.
    /// Returns whether a row was inserted (false: the key was decided before).
    @discardableResult
    private static func insertOutbox(_ db: Database, _ message: OutgoingMessage, now: Millis, leasedUntil: Millis? = nil) throws -> Bool {
        try db.cachedStatement(sql: """
            INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, in_flight, due_at, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING
            """).execute(arguments: [message.idempotencyKey, message.orderID, message.kind.rawValue, message.step,
                                     message.channel, message.recipient, message.body, leasedUntil == nil ? 0 : 1,
                                     leasedUntil ?? now, now, now])
        return db.changesCount > 0
    }

    public func nextPlanningAt() async throws -> Millis? {
        try await pool.read { db in
            try Millis.fetchOne(db, sql: "SELECT MIN(next_due_at) FROM pw_order_state WHERE next_due_at IS NOT NULL")
        }
    }

    // MARK: Delivery

    public func releaseLeases(now: Millis) async throws -> Int {
        try await writeImmediate { db in
            try db.execute(sql: "UPDATE pw_outbox SET in_flight = 0, due_at = ? WHERE state = 'pending' AND in_flight = 1",
                           arguments: [now])
            return db.changesCount
        }
    }

    public func exchangeDeliveries(recording results: [DeliveryResult], claiming claim: DeliveryClaimRequest?,
                                   now: Millis) async throws -> DeliveryClaim {
        try await writeImmediate { db in
            try Self.record(results, db: db, now: now)
            var result = DeliveryClaim()
            if let claim {
                try Self.claim(claim, db: db, now: now, into: &result)
            }
            // Where each channel stands after this operation: when delivery should look again.
            let next = try db.cachedStatement(sql: "SELECT MIN(due_at) FROM pw_outbox WHERE state = 'pending' AND channel = ?")
            // (A channel whose claim came back full has more due now: no need to look.)
            for channel in claim?.knownChannels ?? [] where !result.saturatedChannels.contains(channel) {
                if let at = try Millis.fetchOne(next, arguments: [channel]) { result.nextDueAt[channel] = at }
            }
            return result
        }
    }

    /// Claims per channel, earliest due first: leases what is still right to send, supersedes the rest.
    private static func claim(_ request: DeliveryClaimRequest, db: Database, now: Millis, into result: inout DeliveryClaim) throws {
        let columns = """
            SELECT o.id, o.idempotency_key, o.order_id, o.kind, o.step, o.channel, o.recipient, o.body, o.attempts,
                   s.status AS order_status
            FROM pw_outbox o LEFT JOIN pw_order_state s ON s.order_id = o.order_id
            """
        var rows: [Row] = []
        for (channel, limit) in request.perChannel.sorted(by: { $0.key < $1.key }) where limit > 0 {
            let found = try Row.fetchAll(db.cachedStatement(sql: columns + """
                 WHERE o.state = 'pending' AND o.channel = ? AND o.due_at <= ? ORDER BY o.due_at LIMIT ?
                """), arguments: [channel, now, limit])
            if found.count == limit { result.saturatedChannels.insert(channel) }
            rows += found
        }
        if request.others > 0 {
            let known = request.knownChannels
            let found = try Row.fetchAll(db, sql: columns + """
                 WHERE o.state = 'pending' AND o.due_at <= ? AND o.channel NOT IN (\(databaseQuestionMarks(count: known.count)))
                 ORDER BY o.due_at LIMIT ?
                """, arguments: StatementArguments([now]) + StatementArguments(known) + StatementArguments([request.others]))
            result.othersSaturated = found.count == request.others
            rows += found
        }
        let lease = try db.cachedStatement(sql: "UPDATE pw_outbox SET in_flight = 1, due_at = ?, updated_at = ? WHERE id = ?")
        let leaseUntil = now.addingReportingOverflow(request.leaseMs).overflow ? Millis.max : now + request.leaseMs
        // Read by position, in the order of `columns`.
        for row in rows {
            let id: Int64 = row[0]
            guard let kind = (row[3] as String?).flatMap(NotificationKind.init(rawValue:)) else {
                // Not a kind this version knows (written by hand or by a newer release): it would
                // be claimed again forever. Dead, with the reason, instead.
                try db.execute(sql: "UPDATE pw_outbox SET state = 'dead', last_error = ?, updated_at = ? WHERE id = ?",
                               arguments: ["unknown message kind: not sent", now, id])
                continue
            }
            let message = OutboxMessage(
                id: id,
                message: OutgoingMessage(
                    idempotencyKey: row[1], orderID: row[2], kind: kind, step: row[4], channel: row[5], recipient: row[6],
                    body: row[7]),
                attempts: row[8])
            let status = (row[9] as String?).flatMap(OrderStatus.init(rawValue:))
            if kind.stillApplies(to: status) {
                try lease.execute(arguments: [leaseUntil, now, id])
                result.messages.append(message)
            } else {
                try db.execute(sql: "UPDATE pw_outbox SET state = 'superseded', updated_at = ? WHERE id = ?", arguments: [now, id])
                try insertEvent(db, orderID: message.message.orderID, at: now, event: "superseded",
                                detail: "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) dropped: the order moved on")
                result.superseded.append(message)
            }
        }
    }

    /// Writes one attempt row per counted result and moves each message to its new state.
    private static func record(_ results: [DeliveryResult], db: Database, now: Millis) throws {
        guard !results.isEmpty else { return }
        let attempt = try db.cachedStatement(sql: """
            INSERT INTO pw_attempts(outbox_id, attempt, at, http_status, error, duration_ms, outcome)
            SELECT ?, attempts + 1, ?, ?, ?, ?, ? FROM pw_outbox WHERE id = ?
            """)
        let update = try db.cachedStatement(sql: """
            UPDATE pw_outbox SET state = ?, attempts = attempts + ?, in_flight = 0, due_at = ?, updated_at = ?,
                last_error = COALESCE(?, last_error)
            WHERE id = ?
            """)
        for result in results {
            let state: String
            var dueAt = now
            var counted = true
            switch result.outcome {
            case .delivered: state = "delivered"
            case .retry(let at, _): state = "pending"; dueAt = at
            case .dead: state = "dead"
            case .notAttempted: state = "pending"; counted = false
            }
            if counted {
                try attempt.execute(arguments: [result.outboxID, result.startedAt, result.httpStatus, result.error,
                                                result.durationMs, result.outcome.name, result.outboxID])
            }
            try update.execute(arguments: [state, counted ? 1 : 0, dueAt, now, result.outcome.reason, result.outboxID])
            if case .dead(let reason) = result.outcome,
               let orderID = try String.fetchOne(db, sql: "SELECT order_id FROM pw_outbox WHERE id = ?", arguments: [result.outboxID]) {
                try insertEvent(db, orderID: orderID, at: now, event: "delivery_dead", detail: reason)
            }
            if let followUp = result.followUp {
                try insertOutbox(db, followUp, now: now)
            }
        }
    }

    // MARK: Inspection

    public func order(id: String) async throws -> OrderDetail? {
        try await pool.read { db in
            let state = try Row.fetchOne(db, sql: "SELECT * FROM pw_order_state WHERE order_id = ?", arguments: [id])
            let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM orders WHERE id = ?)", arguments: [id]) ?? false
            guard let state = state ?? (exists ? Row(["order_id": id]) : nil) else { return nil }
            guard let snapshot = try Self.loadSnapshots(db, states: [state]).first else { return nil }
            let timeline = try Row.fetchAll(db, sql: "SELECT at, event, detail FROM pw_events WHERE order_id = ? ORDER BY at, id",
                                            arguments: [id]).map {
                TimelineEntry(at: $0["at"], event: $0["event"], detail: $0["detail"])
            }
            var attempts: [Int64: [AttemptRecord]] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT a.* FROM pw_attempts a JOIN pw_outbox o ON o.id = a.outbox_id WHERE o.order_id = ? ORDER BY a.attempt
                """, arguments: [id]) {
                attempts[row["outbox_id"], default: []].append(AttemptRecord(
                    attempt: row["attempt"], at: row["at"], httpStatus: row["http_status"], error: row["error"],
                    durationMs: row["duration_ms"], outcome: row["outcome"]))
            }
            let deliveries = try Row.fetchAll(db, sql: "SELECT * FROM pw_outbox WHERE order_id = ? ORDER BY created_at, id",
                                              arguments: [id]).map { row -> DeliveryRecord in
                let channel: String = row["channel"]
                return DeliveryRecord(
                    idempotencyKey: row["idempotency_key"], kind: row["kind"], step: row["step"], channel: channel,
                    to: Redact.address(row["recipient"], channel: channel), state: row["state"], createdAt: row["created_at"],
                    dueAt: row["due_at"], lastError: row["last_error"], attempts: attempts[row["id"]] ?? [])
            }
            return OrderDetail(
                orderID: id, snapshot: snapshot,
                trackedStatus: (state["status"] as String?).flatMap(OrderStatus.init(rawValue:)),
                amountPaid: state["amount_paid"] ?? 0, nextDueAt: state["next_due_at"], quarantine: state["quarantine"],
                timeline: timeline, deliveries: deliveries)
        }
    }

    public func orders(status: String?, limit: Int) async throws -> [OrderSummary] {
        try await pool.read { db in
            var sql = """
                SELECT s.order_id, COALESCE(s.status, o.status, '?') AS status, o.amount_due, s.amount_paid,
                       COALESCE(o.currency, '') AS currency, s.next_due_at, s.quarantine
                FROM pw_order_state s LEFT JOIN orders o ON o.id = s.order_id
                """
            var arguments: StatementArguments = []
            if let status {
                if status == "quarantined" {
                    sql += " WHERE s.quarantine IS NOT NULL"
                } else {
                    sql += " WHERE s.status = ? AND s.quarantine IS NULL"
                    arguments += [status]
                }
            }
            sql += " ORDER BY s.order_id LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                OrderSummary(id: row["order_id"], status: row["status"], amountDue: int(row["amount_due"]),
                             amountPaid: row["amount_paid"], currency: row["currency"], nextDueAt: row["next_due_at"],
                             quarantine: row["quarantine"])
            }
        }
    }

    public func report(since: Millis, now: Millis) async throws -> Report {
        try await pool.read { db in
            var byStatus: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT COALESCE(status, 'new') AS status, COUNT(*) AS n FROM pw_order_state WHERE quarantine IS NULL GROUP BY 1
                """) {
                byStatus[row["status"]] = row["n"]
            }
            let quarantined = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_order_state WHERE quarantine IS NOT NULL") ?? 0
            let messages = try Row.fetchAll(db, sql: """
                SELECT kind, channel, state, COUNT(*) AS n FROM pw_outbox WHERE created_at >= ?
                GROUP BY kind, channel, state ORDER BY kind, channel, state
                """, arguments: [since]).map {
                Report.MessageCount(kind: $0["kind"], channel: $0["channel"], state: $0["state"], count: $0["n"])
            }
            var attempts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT outcome, COUNT(*) AS n FROM pw_attempts WHERE at >= ? GROUP BY outcome",
                                        arguments: [since]) {
                attempts[row["outcome"]] = row["n"]
            }
            let backlog = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, MIN(due_at) AS oldest FROM pw_outbox WHERE state = 'pending' AND due_at <= ?
                """, arguments: [now])
            return Report(since: since, now: now, ordersByStatus: byStatus, quarantined: quarantined, messages: messages,
                          attempts: attempts, backlog: backlog?["n"] ?? 0, oldestBacklogDueAt: backlog?["oldest"])
        }
    }

    public func close() async throws {
        try pool.close()
    }

    // MARK: Lenient decoding (bad content becomes nil, which the validator quarantines)

    static func orderRecord(_ row: Row, _ c: ColumnMap) -> OrderRecord {
        OrderRecord(
            id: text(c[row, "id"]) ?? "", amountDue: int(c[row, "amount_due"]), currency: text(c[row, "currency"]) ?? "",
            createdAt: int(c[row, "created_at"]), expiresAt: int(c[row, "expires_at"]), email: text(c[row, "email"]),
            phone: text(c[row, "phone"]), pushToken: text(c[row, "push_token"]), locale: text(c[row, "locale"]),
            timeZone: text(c[row, "time_zone"]), payURL: text(c[row, "pay_url"]), customerName: text(c[row, "customer_name"]))
    }

    static func paymentRecord(_ row: Row, _ c: ColumnMap) -> PaymentRecord {
        PaymentRecord(
            id: text(c[row, "id"]) ?? "", orderID: text(c[row, "order_id"]) ?? "", amount: int(c[row, "amount"]),
            status: text(c[row, "status"]) ?? "", providerRef: text(c[row, "provider_ref"]), method: text(c[row, "method"]),
            failureReason: text(c[row, "failure_reason"]), createdAt: int(c[row, "created_at"]))
    }
}

/// Column positions of one result set, looked up once: GRDB's lookup by name lowercases the
/// name on every access, which showed in profiles of the planning path. A column the shop's
/// table lacks reads as NULL.
struct ColumnMap {
    private var positions: [String: Int] = [:]

    init(_ row: Row?) {
        guard let row else { return }
        for (index, name) in row.columnNames.enumerated() where positions[name.lowercased()] == nil {
            positions[name.lowercased()] = index
        }
    }

    subscript(_ row: Row, _ name: String) -> DatabaseValue {
        guard let index = positions[name] else { return .null }
        return row[index]
    }
}

/// An integer column, or nil for NULL, text, blobs and non-integral reals.
func int(_ value: DatabaseValue) -> Int64? {
    switch value.storage {
    case .int64(let v): return v
    case .double(let d) where d.rounded() == d && abs(d) < 9e15: return Int64(d)
    default: return nil
    }
}

func text(_ value: DatabaseValue) -> String? {
    switch value.storage {
    case .string(let s): return s
    case .int64(let v): return String(v)
    default: return nil
    }
}
