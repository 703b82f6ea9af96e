import Foundation
import GRDB
import PaywatchCore

/// Errors of the store, free of SQL arguments and personal data.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// The shop's schema or the store's settings are wrong (exit 78), not a passing fault.
    public let isConfiguration: Bool
    /// The store can no longer be used by this process (its file was deleted or replaced): the
    /// daemon exits so that its supervisor starts it again on the right file.
    public let isFatal: Bool

    public init(description: String, isConfiguration: Bool = false, isFatal: Bool = false) {
        self.description = description
        self.isConfiguration = isConfiguration
        self.isFatal = isFatal
    }
    public static func cannotOpen(_ path: String, _ reason: String) -> StoreError {
        StoreError(description: "cannot open the SQLite database \(path): \(reason)")
    }
}

/// The embedded order store on SQLite (WAL, busy timeout, IMMEDIATE write transactions).
/// One paywatch process per database file; several replicas share PostgreSQL instead.
public final class SQLiteOrderStore: OrderStore {
    public let path: String
    let pool: DatabasePool
    /// Device and inode of the database file when it was opened: a file deleted or replaced
    /// under a running daemon is noticed at the next poll (``verifyStillOpen()``).
    private let identity: FileIdentity?
    /// Checkpoints the WAL beside the writer instead of inside its commits.
    private let checkpointer: WALCheckpointer
    /// Who this store's leases belong to (`pw_outbox.lease_owner`, `pw_reconcile.lease_owner`):
    /// unique per store opened, with the host and process id for people reading it in logs.
    public let leaseOwner: String
    /// The single-daemon lock, held for the life of the store when it was opened with `runLock`.
    private let runLock: RunLock?

    /// Opens the database at `path`.
    /// - Parameters:
    ///   - runLock: for the daemon (`paywatch run`): first takes the exclusive lock on
    ///     `path + ".lock"` (see ``RunLock``) and holds it for the life of the store, so that no
    ///     other paywatch runs on this file; throws a ``StoreError`` ("another paywatch is already
    ///     running on this database …") when another process holds it. While it is held,
    ///     ``recoverLeasesOfDeadOwners(now:)`` takes back every other owner's leases at once.
    ///   - leaseOwner: the owner written into this store's leases; a new unique one by default.
    public init(path: String, busyTimeoutMs: Int64 = 5000, runLock: Bool = false, leaseOwner: String? = nil) throws {
        self.path = path
        self.runLock = runLock ? try RunLock(path: path + ".lock") : nil
        self.leaseOwner = leaseOwner ?? Self.newLeaseOwner()
        let checkpointer = WALCheckpointer(path: path)
        self.checkpointer = checkpointer
        var config = Configuration()
        config.busyMode = .timeout(Double(busyTimeoutMs) / 1000)
        config.label = "paywatch"
        config.prepareDatabase { db in
            // WAL + NORMAL: durable across process crashes; a power loss may undo the last commits.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB): a burst's outbox
            // pages stay in memory instead of being re-read from the WAL (+15–20 % burst throughput).
            try db.execute(sql: "PRAGMA cache_size = -16000")
            if let connection = db.sqliteConnection { checkpointer.install(on: connection) }
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path, error.message ?? "error \(error.resultCode)")
        }
        identity = FileIdentity(path: path)
    }

    /// Creates or upgrades paywatch's tables and brings the shop's tables to the contract's
    /// shape (missing optional columns, a unique key). Refuses, changing nothing, a database
    /// migrated by a newer paywatch, and shop tables without a required column or with repeated
    /// keys. Returns what it changed: paywatch's schema versions applied to an older database,
    /// then the shop's tables.
    @discardableResult
    public func migrate() async throws -> [String] {
        let migrator = SQLiteSchema.migrator()
        let (superseded, problems) = try await pool.read { db in
            (try migrator.hasBeenSuperseded(db), try ShopTables.problems(db))
        }
        if superseded {
            let applied = try await pool.read { try migrator.appliedIdentifiers($0) }
            let unknown = applied.subtracting(migrator.migrations).sorted()
            throw StoreError(description: "\(path) was migrated by a newer paywatch (unknown schema version \(unknown.joined(separator: ", "))): run that release, or restore a backup",
                             isConfiguration: true)
        }
        if !problems.isEmpty {
            throw StoreError(description: "the shop's tables in \(path) do not fit the contract: " + problems.joined(separator: "; "),
                             isConfiguration: true)
        }
        let before = try await pool.read { try migrator.appliedIdentifiers($0) }
        try migrator.migrate(pool)
        let upgraded = before.isEmpty ? [] : migrator.migrations.filter { !before.contains($0) }
        return (upgraded.isEmpty ? [] : [Self.upgradeLine(upgraded)]) + (try await pool.write { try ShopTables.conform($0) })
    }

    /// What `migrate` says of paywatch's own schema versions it applied to a database that had
    /// older ones (after an upgrade of paywatch); nothing for a new database.
    package static func upgradeLine(_ versions: [String]) -> String {
        "paywatch's schema upgraded: applied \(versions.joined(separator: ", "))"
    }

    public func verifyStillOpen() throws {
        guard let identity else { return }
        guard let now = FileIdentity(path: path) else {
            throw StoreError(description: "the database file \(path) was deleted while paywatch was running", isFatal: true)
        }
        if now != identity {
            throw StoreError(description: "the database file \(path) was replaced while paywatch was running", isFatal: true)
        }
    }

    /// `host:pid:random`: unique per store opened, readable in logs.
    package static func newLeaseOwner() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count - 1) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        let random = (0..<4).map { _ in String(UInt8.random(in: 0...255), radix: 16).leftPadded(2) }.joined()
        return "\(host):\(getpid()):\(random)"
    }

    /// Whether this store holds the single-daemon lock (opened with `runLock`).
    public var holdsRunLock: Bool { runLock != nil }

    func writeImmediate<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
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
        // The due list, and the first chunk's rows with it (one trip to a reader, not two).
        let dueRead = try await pool.read { db -> (due: [DueOrder], keys: [String: DueKey], selects: ShopSelects, first: [OrderSnapshot])? in
            let states = try Row.fetchAll(db, sql: """
                SELECT order_id, status, marks, first_seen_at, version, typeof(order_id), CAST(order_id AS BLOB), pruned_keys
                FROM pw_order_state WHERE next_due_at IS NOT NULL AND next_due_at <= ? ORDER BY next_due_at LIMIT ?
                """, arguments: [now, limit])
            let (due, keys) = Self.dueOrders(states)
            guard !due.isEmpty else { return nil }
            let selects = try ShopSelects(db)
            return (due, keys, selects, try Self.loadSnapshots(db, due: Array(due.prefix(Self.writeChunk)), selects: selects))
        }
        guard let (due, keys, selects, first) = dueRead else { return SweepResult(plans: [], claimed: 0) }
        // Read, planned and written in chunks, one write transaction each, so the write lock is
        // never held for long (delivery's commits and the shop's own writes get their turn in
        // between), and the first messages can leave while the rest of the batch is planned.
        //
        // Pipelined, so that planning and SQLite use both cores and no thread waits on another's
        // wake-up: the next chunk's rows are read (on a reader connection) while this one is
        // planned, and up to two planned chunks wait for the writer, so it goes from one
        // transaction to the next without waiting for the planner. Chunks are applied and
        // reported in order. A chunk's rows are read after the due list: an order the shop
        // changed in between has a new version, so its plan is not applied (it is planned again
        // at the next sweep).
        typealias Written = ([Plan], [OutboxMessage])
        var applied: [Plan] = []
        let slices = stride(from: 0, to: due.count, by: Self.writeChunk).map { Array(due[$0..<min($0 + Self.writeChunk, due.count)]) }
        func read(_ index: Int) -> Task<[OrderSnapshot], any Error>? {
            guard index < slices.count else { return nil }
            guard index > 0 else { return Task { first } }
            let slice = slices[index]
            return Task { try await self.pool.read { db in try Self.loadSnapshots(db, due: slice, selects: selects) } }
        }
        var reading = read(0)
        var writing: [Task<Written, any Error>] = []
        do {
            var index = 0
            while let current = reading {
                let snapshots = try await current.value
                index += 1
                reading = read(index)
                let chunk = snapshots.map(plan)
                if writing.count == Self.writesQueued {
                    let (written, handed) = try await writing.removeFirst().value
                    onApplied(written, handed)
                    applied += written
                }
                writing.append(Task { try await self.apply(chunk, keys: keys, handOff: handOff, now: now) })
            }
            while !writing.isEmpty {
                let (written, handed) = try await writing.removeFirst().value
                onApplied(written, handed)
                applied += written
            }
        } catch {
            // Nothing is left running behind the error: what was queued is written (or fails)
            // first, and what was written is reported, so delivery learns of every handed-off message.
            _ = await reading?.result
            for task in writing {
                if case .success(let (written, handed)) = await task.result {
                    onApplied(written, handed)
                }
            }
            throw error
        }
        return SweepResult(plans: applied, claimed: due.count)
    }

    /// Planned chunks waiting for the writer at most.
    static let writesQueued = 2

    /// Plans applied per write transaction.
    static let writeChunk = 100

    /// Applies `decided` in one `IMMEDIATE` transaction; returns the plans that were applied and
    /// the messages handed off, leased, to delivery.
    private func apply(_ decided: [Plan], keys: [String: DueKey], handOff: DeliveryHandOff?,
                       now: Millis) async throws -> ([Plan], [OutboxMessage]) {
        let owner = leaseOwner
        return try await writeImmediate { db -> ([Plan], [OutboxMessage]) in
            var plans = decided
            var applied = [Bool](repeating: false, count: plans.count)
            var handed: [OutboxMessage] = []
            let statements = try PlanStatements(db)
            do {
                // Fast path: the whole batch at once.
                try db.inSavepoint {
                    for index in plans.indices {
                        let taken = try Self.apply(plans[index], key: keys[plans[index].orderID], handOff: handOff,
                                                   owner: owner, db: db, now: now, statements: statements)
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
                    let key = keys[plans[index].orderID]
                    do {
                        try db.inSavepoint {
                            let taken = try Self.apply(plans[index], key: key, handOff: handOff, owner: owner, db: db,
                                                       now: now, statements: statements)
                            applied[index] = taken != nil
                            handed += taken ?? []
                            return .commit
                        }
                    } catch let error as DatabaseError where !Self.isTransient(error) {
                        plans[index].quarantine = "the plan could not be written: SQLite error \(error.resultCode.rawValue) (\(Validator.display(error.message ?? "no message", limit: 200)))"
                        plans[index].messages = []
                        plans[index].nextDueAt = nil
                        applied[index] = try Self.apply(plans[index], key: key, handOff: nil, owner: owner, db: db,
                                                        now: now, statements: statements) != nil
                    }
                }
            }
            return (plans.indices.filter { applied[$0] }.map { plans[$0] }, handed)
        }
    }

    /// How a due order is addressed when its plan is written back: the version read with it, and
    /// its stored id when that id cannot be read back as the same text (not UTF-8, a BLOB).
    struct DueKey {
        var version: Int64
        var raw: Data?
        /// Keys of messages decided before and pruned since (retention): not decided again.
        var prunedKeys: Set<String>? = nil
    }

    /// An order due for planning, as its `pw_order_state` row says: its id (as text, or shown in
    /// hex when its bytes are not text), what paywatch tracked, and why it cannot be read.
    struct DueOrder: Sendable {
        var id: String
        var tracked: TrackedState
        var problem: String?
    }

    /// The due orders of `states` (rows of `pw_order_state`: order_id, status, marks,
    /// first_seen_at, version, typeof(order_id), CAST(order_id AS BLOB), and optionally
    /// pruned_keys by name), keyed for writing back.
    /// Nothing in a row can make this trap: content that cannot be read becomes nil (the
    /// validator quarantines it) or a read problem.
    private static func dueOrders(_ states: [Row]) -> ([DueOrder], [String: DueKey]) {
        var keys: [String: DueKey] = [:]
        var due: [DueOrder] = []
        for state in states {
            let version = int(state[4]) ?? 0
            let tracked = TrackedState(
                status: text(state[1]).flatMap(OrderStatus.init(rawValue:)),
                marks: MarksCodec.decode(text(state[2])),
                firstSeenAt: int(state[3]))
            let raw = (state[6] as DatabaseValue).storage
            let bytes: Data
            if case .blob(let data) = raw { bytes = data } else { bytes = Data() }
            if (state[5] as String?) == "text", case .string(let id) = (state[0] as DatabaseValue).storage,
               id.utf8.elementsEqual(bytes) {
                keys[id] = DueKey(version: version, prunedKeys: Retention.decodeKeys(state["pruned_keys"]))
                due.append(DueOrder(id: id, tracked: tracked))
            } else {
                // Bytes that do not read back as the same text: addressed by those bytes when
                // written, shown in hex, quarantined. (Matched by their own text, this id would
                // never be written back and would be claimed again forever.)
                let hex = bytes.prefix(64).map { String($0, radix: 16, uppercase: true).leftPadded(2) }.joined()
                let display = "\u{FFFD}x'\(hex)\(bytes.count > 64 ? "…" : "")'"
                let kind = (state[5] as String?) == "text" ? "is not valid UTF-8 text" : "is not text (a \(text(state[5]) ?? "?") value)"
                keys[display] = DueKey(version: version, raw: bytes)
                due.append(DueOrder(id: display, tracked: tracked, problem: "order id \(kind): x'\(hex)'"))
            }
        }
        return (due, keys)
    }

    /// The snapshots of `due` orders: their rows in the shop's tables. Nothing in a row can make
    /// this throw or trap. A shop table missing a column the contract requires throws: that is
    /// the schema's fault, not a row's.
    private static func loadSnapshots(_ db: Database, due: [DueOrder], selects: ShopSelects) throws -> [OrderSnapshot] {
        let readable = due.filter { $0.problem == nil }.map(\.id)
        var orders: [String: OrderRecord] = [:]
        var payments: [String: [PaymentRecord]] = [:]
        var installments: [String: [InstallmentRecord]] = [:]
        var refunds: [String: [RefundRecord]] = [:]
        var problems: [String: String] = [:]
        if !readable.isEmpty {
            let placeholders = databaseQuestionMarks(count: readable.count)
            let args = StatementArguments(readable)
            for row in try shopRows(db, selects.orders, placeholders, args) {
                let record = orderRecord(row)
                if orders[record.id] == nil { orders[record.id] = record }
            }
            for row in try shopRows(db, selects.payments, placeholders, args) {
                let record = paymentRecord(row)
                if case .blob = (row[0] as DatabaseValue).storage { problems[record.orderID] = "a payment id is not text (a BLOB)" }
                payments[record.orderID, default: []].append(record)
            }
            for row in try shopRows(db, selects.installments, placeholders, args) {
                installments[text(row[0]) ?? "", default: []].append(
                    InstallmentRecord(seq: int(row[1]) ?? 0, amount: int(row[2]), dueAt: int(row[3])))
            }
            for row in try shopRows(db, selects.refunds, placeholders, args) {
                let orderID = text(row[0]) ?? ""
                if case .blob = (row[1] as DatabaseValue).storage { problems[orderID] = "a refund id is not text (a BLOB)" }
                refunds[orderID, default: []].append(RefundRecord(
                    id: text(row[1]) ?? "", amount: int(row[2]), status: text(row[3]) ?? "", requestedAt: int(row[4])))
            }
        }
        // The orders' suppressed addresses, for `fallback = true` (most shops suppress nothing: one
        // look). Asked per channel, by the table's key (channel, address): a long list of
        // unsubscribes is never scanned.
        var suppressed: [String: [Suppression]] = [:]
        if !orders.isEmpty, try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM suppressions)")) ?? false {
            let byChannel: [(String, KeyPath<OrderRecord, String?>)] = [("sms", \.phone), ("email", \.email), ("push", \.pushToken)]
            for (channel, field) in byChannel {
                let list = Array(Set(orders.values.compactMap { $0[keyPath: field] }.filter { !$0.isEmpty }))
                for start in stride(from: 0, to: list.count, by: 500) {
                    let chunk = Array(list[start..<min(start + 500, list.count)])
                    for row in try Row.fetchAll(db, sql: "SELECT address, reason FROM suppressions WHERE channel = ? AND address IN (\(databaseQuestionMarks(count: chunk.count)))",
                                                arguments: StatementArguments([channel] + chunk)) {
                        guard let address = text(row[0]) else { continue }
                        suppressed[address, default: []].append(Suppression(channel: channel, address: address, reason: text(row[1]) ?? ""))
                    }
                }
            }
        }
        return due.map { entry in
            var snapshot = OrderSnapshot(
                orderID: entry.id, order: orders[entry.id], payments: unique(payments[entry.id] ?? []),
                installments: unique(installments[entry.id] ?? []), refunds: unique(refunds[entry.id] ?? []),
                state: entry.tracked, readProblem: entry.problem ?? problems[entry.id])
            if !suppressed.isEmpty, let order = orders[entry.id] {
                snapshot.suppressions = [order.email, order.phone, order.pushToken].compactMap { $0 }.flatMap { suppressed[$0] ?? [] }
            }
            return snapshot
        }
    }

    /// The contract's columns of `orders` and `payments` a sweep reads, in the order it selects
    /// them (``orderRecord(_:)`` and ``paymentRecord(_:)`` read by position).
    static let orderColumns = ["id", "amount_due", "currency", "created_at", "expires_at", "email", "phone", "push_token",
                               "locale", "time_zone", "pay_url", "customer_name", "payment_method"]
    static let paymentColumns = ["id", "order_id", "amount", "status", "provider_ref", "method", "failure_reason", "created_at"]

    /// How a sweep selects each shop table's rows: `SELECT columns FROM table WHERE key IN`, the
    /// contract's columns in the order the record readers expect, NULL for an optional one the
    /// table lacks, nothing of the shop's own columns. Made once per sweep from the tables'
    /// current columns (looking them up per chunk re-read the schema each time: +70 % read time).
    struct ShopSelects: Sendable {
        var orders, payments, installments, refunds: String

        /// Throws, naming it, when a table lacks a column a sweep cannot do without (dropped or
        /// renamed while running): the sweep fails and is retried at the next poll.
        init(_ db: Database) throws {
            func select(_ table: String, _ keyColumn: String, _ wanted: [String]) throws -> String {
                let present = Set(try db.columns(in: table).map { $0.name.lowercased() })
                let missing = ShopTables.requiredWhileRunning(table).filter { !present.contains($0) }
                if !missing.isEmpty {
                    throw StoreError(description: "the shop's \(table) table has no column \(missing.joined(separator: ", ")) (the contract requires it): restore it, then run `paywatch migrate`")
                }
                let columns = wanted.map { present.contains($0) ? $0 : "NULL" }.joined(separator: ", ")
                return "SELECT \(columns) FROM \(table) WHERE \(keyColumn) IN "
            }
            orders = try select("orders", "id", SQLiteOrderStore.orderColumns)
            payments = try select("payments", "order_id", SQLiteOrderStore.paymentColumns)
            installments = try select("installments", "order_id", ["order_id", "seq", "amount", "due_at"])
            refunds = try select("refunds", "order_id", ["order_id", "id", "amount", "status", "requested_at"])
        }
    }

    /// The rows `select` (of ``ShopSelects``) finds for the bound ids.
    private static func shopRows(_ db: Database, _ select: String, _ placeholders: String, _ args: StatementArguments) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: select + "(" + placeholders + ")"), arguments: args)
    }

    /// The rows without exact repeats (a shop table without a unique key may hold a row twice):
    /// each row counts once. Repeated ids with different contents are left for the validator.
    package static func unique<T: Hashable>(_ rows: [T]) -> [T] {
        guard rows.count > 1 else { return rows }
        var seen: Set<T> = []
        return rows.filter { seen.insert($0).inserted }
    }

    /// Errors that say nothing about the rows (lock, disk, I/O): the sweep fails and is retried.
    private static func isTransient(_ error: DatabaseError) -> Bool {
        [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_NOMEM, .SQLITE_READONLY, .SQLITE_CANTOPEN]
            .contains(error.resultCode)
    }

    /// The statements a transaction writes plans with, prepared once for its orders and bound
    /// directly (``RawStatement``).
    struct PlanStatements {
        let updateState: RawStatement
        let updateOrderStatus: RawStatement
        let insertOutbox: RawStatement
        let insertEvent: RawStatement
        /// Whether any address is suppressed: when none is (most of the time), no message needs a look-up.
        let anySuppressed: Bool
        /// Whether any message held for the quiet hours has not gone out: when none has (outside
        /// the quiet hours, or without them), no reminder needs to look for one to collapse.
        let anyHeld: Bool

        init(_ db: Database) throws {
            anySuppressed = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM suppressions)") ?? false
            anyHeld = try Bool.fetchOne(db, sql: SQLiteOrderStore.anyHeldSQL) ?? false
            updateState = try RawStatement(db, sql: """
                UPDATE pw_order_state SET status = ?, amount_paid = ?, marks = ?, next_due_at = ?, quarantine = NULL,
                    first_seen_at = COALESCE(first_seen_at, ?), updated_at = ?, needs_refund = ?
                WHERE order_id = ? AND version = ?
                """)
            updateOrderStatus = try RawStatement(db, sql: "UPDATE orders SET status = ? WHERE id = ? AND status IS NOT ?")
            insertOutbox = try RawStatement(db, sql: SQLiteOrderStore.insertOutboxSQL)
            insertEvent = try RawStatement(db, sql: SQLiteOrderStore.insertEventSQL)
        }
    }

    /// Applies one plan if the order is still at `version`: nil if not, else the messages handed
    /// off to delivery (inserted leased, to `owner`).
    private static func apply(_ plan: Plan, key: DueKey?, handOff: DeliveryHandOff?, owner: String, db: Database,
                              now: Millis, statements: PlanStatements) throws -> [OutboxMessage]? {
        let version = key?.version ?? 0
        if let reason = plan.quarantine {
            // Not due again until the shop changes the order (the triggers mark it), or until
            // the plan's recheck time when time alone can fix it.
            if let raw = key?.raw {
                // Stored bytes that are not the text they read as: matched as a BLOB or as text.
                try db.execute(sql: """
                    UPDATE pw_order_state SET quarantine = ?, next_due_at = ?, updated_at = ?
                    WHERE order_id IN (?, CAST(? AS TEXT)) AND version = ?
                    """, arguments: [reason, plan.nextDueAt, now, raw, raw, version])
            } else {
                try db.cachedStatement(sql: """
                    UPDATE pw_order_state SET quarantine = ?, next_due_at = ?, updated_at = ? WHERE order_id = ? AND version = ?
                    """).execute(arguments: [reason, plan.nextDueAt, now, plan.orderID, version])
            }
            guard db.changesCount > 0 else { return nil }
            try insertEvent(db, orderID: plan.orderID, at: now, event: "quarantined", detail: reason)
            return []
        }
        guard key?.raw == nil else { return nil }
        let changed = try statements.updateState.execute(
            .text(plan.status.rawValue), .int(plan.amountPaid), .text(MarksCodec.encode(plan.marks)), .int(plan.nextDueAt),
            .int(now), .int(now), .int(plan.needsRefund), .text(plan.orderID), .int(version))
        // The shop changed the order since it was read: it is marked changed, planned again next.
        guard changed > 0 else { return nil }
        if plan.statusChanged {
            // Only when it differs, so the shop's view changes exactly when paywatch decides.
            try statements.updateOrderStatus.execute(.text(plan.status.rawValue), .text(plan.orderID), .text(plan.status.rawValue))
        }
        var handed: [OutboxMessage] = []
        for message in plan.messages {
            // Decided before and pruned since: its outbox row (the record that it was decided)
            // is gone, its key is not. (The marks prevent most repeats; this one catches a
            // decision made again on purpose, such as a refund back in an earlier status.)
            if let pruned = key?.prunedKeys, pruned.contains(Retention.compactKey(message.idempotencyKey, orderID: plan.orderID)) {
                continue
            }
            // A resolution of an alert ops never got (the provider answered for a stalled
            // payment; the alert is dead) resolves nothing: not written.
            if let resolved = message.resolves, try !(Bool.fetchOne(db.cachedStatement(sql: """
                SELECT EXISTS(SELECT 1 FROM pw_outbox WHERE order_id = ? AND kind = ? AND state IN ('pending', 'delivered'))
                """), arguments: [message.orderID, resolved.rawValue]) ?? false) {
                continue
            }
            // A message to a suppressed address is never handed over: the claim finds it and
            // records it suppressed, not sent, with the reason.
            let suppressed = try statements.anySuppressed && !message.kind.isOps && (Bool.fetchOne(
                db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM suppressions WHERE channel = ? AND address = ?)"),
                arguments: [message.channel, message.recipient]) ?? false)
            // Nor is a reminder under a daily cap: the claim counts it. Nor one held for the quiet
            // hours: due at their end, so delivery does not take it before.
            let capped = handOff?.claimsReminders == true && message.kind.isReminder
            let dueAt = max(now, message.notBefore ?? now)
            let leased = suppressed || capped || dueAt > now ? nil : handOff.flatMap { $0.take(message.channel) ? now + $0.leaseMs : nil }
            let inserted = try statements.insertOutbox.execute(
                .text(message.idempotencyKey), .text(message.orderID), .text(message.kind.rawValue), .int(message.step),
                .text(message.channel), .text(message.recipient), .text(message.payload), .int(leased == nil ? 0 : 1),
                .int(leased ?? dueAt), .int(now), .int(now), Alternates.encode(message.alternates).map { .text($0) } ?? .null,
                .int(heldUntil(message, now: now)), leased == nil ? .null : .text(owner))
            if leased != nil, inserted > 0 {
                // Leased to delivery from the start: it goes out without being claimed.
                handed.append(OutboxMessage(id: db.lastInsertedRowID, message: message, attempts: 0))
            }
            // (After the hand-off, which reads the row id of the insert.)
            if inserted > 0, message.collapsesHeld, statements.anyHeld {
                try collapseHeld(into: message, db: db, now: now)
            }
        }
        for event in plan.events {
            try statements.insertEvent.execute(.text(plan.orderID), .int(now), .text(event.event), .text(event.detail))
        }
        for request in plan.reconciles {
            let fallback = request.fallback
            try db.cachedStatement(sql: """
                INSERT INTO pw_reconcile(order_id, payment_id, provider_ref, step, fallback_key, fallback_kind, fallback_step,
                    fallback_channel, fallback_recipient, fallback_body, due_at, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(order_id, payment_id, step) DO NOTHING
                """).execute(arguments: [request.orderID, request.paymentID, request.providerRef, request.step,
                                         fallback?.idempotencyKey, fallback?.kind.rawValue, fallback?.step, fallback?.channel,
                                         fallback?.recipient, fallback?.payload, now, now, now])
        }
        return handed
    }

    /// Whether a message held for the quiet hours has not gone out (`pw_outbox_held`: those only).
    static let anyHeldSQL = "SELECT EXISTS(SELECT 1 FROM pw_outbox WHERE not_before IS NOT NULL AND state = 'pending')"

    /// The order's held earlier steps of a kind on a channel, superseded. By the order's rows
    /// (`pw_outbox_held` or `pw_outbox_key`): `+channel` keeps SQLite off the channel's pending
    /// index, which holds every message waiting for the quiet hours (a scan of them per message
    /// made a night's planning quadratic).
    static let collapseHeldSQL = """
        UPDATE pw_outbox SET state = 'superseded', updated_at = ?
        WHERE order_id = ? AND kind = ? AND +channel = ? AND step < ? AND state = 'pending' AND in_flight = 0
            AND attempts = 0 AND not_before IS NOT NULL
        RETURNING step
        """

    /// When a message decided at `now` is held until (the end of the quiet hours), nil when it may go at once.
    private static func heldUntil(_ message: OutgoingMessage, now: Millis) -> Millis? {
        message.notBefore.flatMap { $0 > now ? $0 : nil }
    }

    /// `message`, a later step of a reminder series, was just decided: the earlier steps of its
    /// kind on its channel that were held for the quiet hours and have not gone out (pending, never
    /// attempted nor leased: still waiting, or due but not claimed yet) would only repeat it. They
    /// are superseded, and the timeline says into which step they collapsed.
    private static func collapseHeld(into message: OutgoingMessage, db: Database, now: Millis) throws {
        let steps = try Int.fetchAll(db.cachedStatement(sql: collapseHeldSQL),
                                     arguments: [now, message.orderID, message.kind.rawValue, message.channel, message.step])
        for step in steps.sorted() {
            try insertEvent(db, orderID: message.orderID, at: now, event: "collapsed", detail: """
                \(message.kind.rawValue) step \(step) on \(message.channel), held for the quiet hours, collapsed into step \(message.step)
                """)
        }
    }

    // MARK: Reconciliation

    public func claimReconciles(now: Millis, limit: Int, leaseMs: Millis) async throws -> [ReconcileTask] {
        let owner = leaseOwner
        return try await writeImmediate { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT * FROM pw_reconcile WHERE state = 'pending' AND due_at <= ? ORDER BY due_at, id LIMIT ?
                """, arguments: [now, limit])
            var tasks: [ReconcileTask] = []
            for row in rows {
                let id: Int64 = row["id"]
                try db.execute(sql: "UPDATE pw_reconcile SET due_at = ?, updated_at = ?, lease_owner = ? WHERE id = ?",
                               arguments: [now.saturatingAdd(leaseMs), now, owner, id])
                var fallback: OutgoingMessage?
                if let key: String = row["fallback_key"], let kindText: String = row["fallback_kind"],
                   let kind = NotificationKind(rawValue: kindText) {
                    fallback = OutgoingMessage(
                        idempotencyKey: key, orderID: row["order_id"], kind: kind, step: row["fallback_step"] ?? 0,
                        channel: row["fallback_channel"] ?? "", recipient: row["fallback_recipient"] ?? "",
                        payload: row["fallback_body"] ?? "")
                }
                tasks.append(ReconcileTask(id: id, request: ReconcileRequest(
                    orderID: row["order_id"], paymentID: row["payment_id"], providerRef: row["provider_ref"],
                    step: row["step"], fallback: fallback)))
            }
            return tasks
        }
    }

    public func recordReconciles(_ outcomes: [ReconcileOutcome], now: Millis) async throws {
        guard !outcomes.isEmpty else { return }
        try await writeImmediate { db in
            for outcome in outcomes {
                let state: ReconcileState
                switch outcome.answer {
                case .definite: state = .reconciled
                case .unresolved: state = .unresolved
                }
                try db.execute(sql: """
                    UPDATE pw_reconcile SET state = ?, answer = ?, updated_at = ?, lease_owner = NULL WHERE id = ? AND state = 'pending'
                    """, arguments: [state.rawValue, outcome.detail, now, outcome.task.id])
                // Recorded before (a repeated record): nothing more to do.
                guard db.changesCount > 0 else { continue }
                let request = outcome.task.request
                let payment = request.paymentID
                switch outcome.answer {
                case .definite(let status, let reason):
                    // The only write paywatch makes to a payments row; the shop's triggers mark the order.
                    try db.execute(sql: """
                        UPDATE payments SET status = ?, failure_reason = COALESCE(?, failure_reason)
                        WHERE id = ? AND order_id = ? AND status = 'pending'
                        """, arguments: [status.rawValue, status == .failed ? reason : nil, payment, request.orderID])
                    let applied = db.changesCount > 0
                    try Self.insertEvent(db, orderID: request.orderID, at: now, event: "reconciled", detail: applied
                        ? "payment \(Self.shown(payment)) → \(status.rawValue): \(outcome.detail)"
                        : "payment \(Self.shown(payment)) was no longer pending, left as it is: \(outcome.detail)")
                case .unresolved:
                    if let fallback = request.fallback { try Self.insertOutbox(db, fallback, now: now) }
                    try Self.insertEvent(db, orderID: request.orderID, at: now, event: "reconcile_unresolved",
                                         detail: "payment \(Self.shown(payment)): \(outcome.detail)")
                }
            }
        }
    }

    public func nextReconcileAt() async throws -> Millis? {
        try await pool.read { db in
            try Millis.fetchOne(db, sql: "SELECT MIN(due_at) FROM pw_reconcile WHERE state = 'pending'")
        }
    }

    private static func shown(_ text: String) -> String {
        Validator.display(text)
    }

    static let insertEventSQL = "INSERT INTO pw_events(order_id, at, event, detail) VALUES (?, ?, ?, ?)"

    private static func insertEvent(_ db: Database, orderID: String, at: Millis, event: String, detail: String) throws {
        try db.cachedStatement(sql: insertEventSQL).execute(arguments: [orderID, at, event, detail])
    }

    static let insertOutboxSQL = """
        INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, in_flight, due_at, created_at, updated_at,
            alternates, not_before, lease_owner)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(order_id, idempotency_key) DO NOTHING
        """

    /// `fallback = true`: `refused` will not reach the customer (dead, or its address suppressed),
    /// so the first of its alternates whose address is not suppressed is decided in its place,
    /// carrying the ones after it. The timeline says which channel took over, or that none was left.
    private static func fallBack(_ db: Database, from refused: OutgoingMessage, alternates: String?, why: String, now: Millis) throws {
        let candidates = Alternates.decode(alternates, orderID: refused.orderID, kind: refused.kind, step: refused.step)
        guard !candidates.isEmpty else { return }
        let what = "\(refused.kind.rawValue) step \(refused.step) on \(refused.channel) (\(why))"
        var skipped: [String] = []
        for next in candidates {
            if let reason = try String.fetchOne(db.cachedStatement(sql: "SELECT reason FROM suppressions WHERE channel = ? AND address = ?"),
                                                arguments: [next.channel, next.recipient]) {
                skipped.append("\(next.channel) (\(Redact.address(next.recipient, channel: next.channel)) is suppressed: \(Validator.display(reason, limit: 80)))")
                continue
            }
            try insertOutbox(db, next, now: now)
            try insertEvent(db, orderID: refused.orderID, at: now, event: "fallback",
                            detail: ([what + ": sent on \(next.channel) instead"] + skipped).joined(separator: "; skipped "))
            return
        }
        try insertEvent(db, orderID: refused.orderID, at: now, event: "fallback",
                        detail: ([what + ": no channel left"] + skipped).joined(separator: "; skipped "))
    }

    /// Decides a message: a new outbox row, or nothing if its key was decided before.
    /// Returns whether a row was inserted (false: the key was decided before).
    @discardableResult
    private static func insertOutbox(_ db: Database, _ message: OutgoingMessage, now: Millis) throws -> Bool {
        if try wasPruned(db, message) { return false }
        try db.cachedStatement(sql: insertOutboxSQL).execute(arguments: [message.idempotencyKey, message.orderID, message.kind.rawValue, message.step,
                                     message.channel, message.recipient, message.payload, 0,
                                     max(now, message.notBefore ?? now), now, now, Alternates.encode(message.alternates),
                                     heldUntil(message, now: now), nil as String?])
        return db.changesCount > 0
    }

    public func nextPlanningAt() async throws -> Millis? {
        try await pool.read { db in
            try Millis.fetchOne(db, sql: "SELECT MIN(next_due_at) FROM pw_order_state WHERE next_due_at IS NOT NULL")
        }
    }

    // MARK: Delivery

    /// This store's own leases (``leaseOwner``) due again at once; other owners' are left alone.
    public func releaseLeases(now: Millis) async throws -> Int {
        try await release(now: now, owner: leaseOwner)
    }

    /// SQLite only, and only while this store holds the run lock (opened with `runLock`; otherwise
    /// it does nothing and returns 0): every lease of another owner due again at once. The lock
    /// proves that no other paywatch runs on this file, so those owners are runs that ended
    /// (a crash, kill -9): their messages go out now rather than when their leases expire. Leases
    /// written before owners were recorded (migration v13) count as another owner's.
    public func recoverLeasesOfDeadOwners(now: Millis) async throws -> Int {
        guard runLock != nil else { return 0 }
        return try await release(now: now, owner: nil)
    }

    /// One `IMMEDIATE` transaction, one indexed UPDATE per id: a row still pending and leased to
    /// this store's owner gets `due_at = MAX(due_at, until)`; the ids of the others are returned.
    public func renewLeases(_ ids: [Int64], until: Millis, now: Millis) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let owner = leaseOwner
        return try await writeImmediate { db in
            let renew = try db.cachedStatement(sql: """
                UPDATE pw_outbox SET due_at = MAX(due_at, ?), updated_at = ?
                WHERE id = ? AND state = 'pending' AND in_flight = 1 AND lease_owner = ?
                """)
            var lost: [Int64] = []
            for id in ids {
                try renew.execute(arguments: [until, now, id, owner])
                if db.changesCount == 0 { lost.append(id) }
            }
            return lost
        }
    }

    /// Leases due again at `now`: `owner`'s, or (nil) every other owner's.
    private func release(now: Millis, owner: String?) async throws -> Int {
        let mine = leaseOwner
        return try await writeImmediate { db in
            let whose = owner == nil ? "lease_owner IS NOT ?" : "lease_owner = ?"
            try db.execute(sql: """
                UPDATE pw_outbox SET in_flight = 0, lease_owner = NULL, due_at = ? WHERE state = 'pending' AND in_flight = 1 AND \(whose)
                """, arguments: [now, owner ?? mine])
            let released = db.changesCount
            // Asks claimed and not answered: due again (a GET may be repeated, it changes nothing).
            try db.execute(sql: """
                UPDATE pw_reconcile SET due_at = ?, lease_owner = NULL WHERE state = 'pending' AND due_at > ? AND \(whose)
                """, arguments: [now, now, owner ?? mine])
            return released
        }
    }

    public func exchangeDeliveries(recording results: [DeliveryResult], deciding decisions: [OutgoingMessage],
                                   claiming claim: DeliveryClaimRequest?, now: Millis) async throws -> DeliveryClaim {
        let owner = leaseOwner
        return try await writeImmediate { db in
            var result = DeliveryClaim()
            result.staleResults = try Self.record(results, owner: owner, db: db, now: now)
            for message in decisions { try Self.insertOutbox(db, message, now: now) }
            if let claim {
                try Self.claim(claim, owner: owner, db: db, now: now, into: &result)
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

    /// The customer kinds, as stored: what the daily cap counts.
    private static let customerKinds = NotificationKind.allCases.filter { !$0.isOps }.map { "'\($0.rawValue)'" }
        .joined(separator: ", ")

    /// The rolling window of `max_per_order_per_day`.
    static let capWindowMs: Millis = 86_400_000

    /// The decisions (`kind:step`) of customer messages this order's customer was sent over the
    /// 24 hours before `now`, or that are being sent (leased, this claim's included): each decision
    /// once, however many channels carried it.
    private static func decisionsSent(_ db: Database, orderID: String, now: Millis) throws -> Set<String> {
        let rows = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT DISTINCT kind, step FROM pw_outbox
            WHERE order_id = ? AND kind IN (\(customerKinds))
              AND ((state = 'delivered' AND updated_at > ?) OR (state = 'pending' AND in_flight = 1))
            """), arguments: [orderID, now - capWindowMs])
        return Set(rows.map { "\($0[0] as String):\($0[1] as Int)" })
    }

    /// Claims per channel, earliest due first: leases what is still right to send, supersedes the rest.
    private static func claim(_ request: DeliveryClaimRequest, owner: String, db: Database, now: Millis,
                              into result: inout DeliveryClaim) throws {
        let columns = """
            SELECT o.id, o.idempotency_key, o.order_id, o.kind, o.step, o.channel, o.recipient, o.body, o.attempts,
                   s.status AS order_status,
                   (SELECT x.reason FROM suppressions x WHERE x.channel = o.channel AND x.address = o.recipient) AS suppressed,
                   o.alternates
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
        // A message whose lease expired is pending and due: claimed anew, under this owner.
        let lease = try db.cachedStatement(sql: "UPDATE pw_outbox SET in_flight = 1, due_at = ?, updated_at = ?, lease_owner = ? WHERE id = ?")
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
                    payload: row[7]),
                attempts: row[8])
            let status = (row[9] as String?).flatMap(OrderStatus.init(rawValue:))
            if let reason = row[10] as String?, !kind.isOps {
                // The address is on the suppression list (an unsubscribe, a refusal for good): not sent.
                let masked = Redact.address(message.message.recipient, channel: message.message.channel)
                try db.execute(sql: "UPDATE pw_outbox SET state = 'suppressed', last_error = ?, updated_at = ? WHERE id = ?",
                               arguments: ["suppressed: \(reason)", now, id])
                try insertEvent(db, orderID: message.message.orderID, at: now, event: "suppressed",
                                detail: "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) not sent: \(masked) is suppressed (\(reason))")
                result.suppressed.append(message)
                try fallBack(db, from: message.message, alternates: row[11], why: "\(masked) is suppressed", now: now)
            } else if kind.stillApplies(to: status) {
                if let cap = request.maxPerOrderPerDay, kind.isReminder {
                    // A reminder beyond the customer's daily cap is not sent; another channel of a
                    // decision already sent (or being sent) is the same message and goes.
                    let sent = try decisionsSent(db, orderID: message.message.orderID, now: now)
                    if !sent.contains("\(kind.rawValue):\(message.message.step)"), sent.count >= cap {
                        let why = "daily cap of \(cap) message\(cap == 1 ? "" : "s") reached"
                        try db.execute(sql: "UPDATE pw_outbox SET state = 'capped', last_error = ?, updated_at = ? WHERE id = ?",
                                       arguments: [why, now, id])
                        try insertEvent(db, orderID: message.message.orderID, at: now, event: "capped",
                                        detail: "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) not sent: \(why)")
                        result.capped.append(message)
                        continue
                    }
                }
                try lease.execute(arguments: [leaseUntil, now, owner, id])
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
    /// Fenced: a result applies only to a message still leased to `owner` and, when the result
    /// carries its claim's attempt number, whose `attempts` still equal it; the others (their
    /// lease expired and another owner claimed them, they were recorded already, or a later
    /// attempt of the same owner was) are left as they are and returned.
    private static func record(_ results: [DeliveryResult], owner: String, db: Database, now: Millis) throws -> [Int64] {
        guard !results.isEmpty else { return [] }
        // `?8 IS NULL OR attempts = ?8`: the attempt number fences only when the result has one.
        let attempt = try db.cachedStatement(sql: """
            INSERT INTO pw_attempts(outbox_id, attempt, at, http_status, error, duration_ms, outcome)
            SELECT ?1, attempts + 1, ?2, ?3, ?4, ?5, ?6 FROM pw_outbox
            WHERE id = ?1 AND lease_owner = ?7 AND (?8 IS NULL OR attempts = ?8)
            """)
        let update = try db.cachedStatement(sql: """
            UPDATE pw_outbox SET state = ?1, attempts = attempts + ?2, in_flight = 0, due_at = ?3, updated_at = ?4,
                last_error = COALESCE(?5, last_error), lease_owner = NULL
            WHERE id = ?6 AND lease_owner = ?7 AND (?8 IS NULL OR attempts = ?8)
            """)
        var stale: [Int64] = []
        for result in results {
            let state: OutboxState
            var dueAt = now
            var counted = true
            switch result.outcome {
            case .delivered: state = .delivered
            case .retry(let at, _): state = .pending; dueAt = at
            case .dead: state = .dead
            case .notAttempted: state = .pending; counted = false
            case .deferred(let until, _): state = .pending; dueAt = until; counted = false
            }
            if counted {
                try attempt.execute(arguments: [result.outboxID, result.startedAt, result.httpStatus, result.error,
                                                result.durationMs, result.outcome.name, owner, result.attempts])
            }
            try update.execute(arguments: [state.rawValue, counted ? 1 : 0, dueAt, now, result.outcome.reason, result.outboxID, owner,
                                           result.attempts])
            guard db.changesCount > 0 else {
                stale.append(result.outboxID)
                continue
            }
            if case .dead(let reason) = result.outcome,
               let row = try Row.fetchOne(db, sql: "SELECT order_id, channel, recipient, kind, step, alternates FROM pw_outbox WHERE id = ?",
                                          arguments: [result.outboxID]) {
                let orderID: String = row[0]
                try insertEvent(db, orderID: orderID, at: now, event: "delivery_dead", detail: reason)
                let channel: String = row[1]
                let recipient: String = row[2]
                let isOps = (row[3] as String?).flatMap(NotificationKind.init(rawValue:))?.isOps ?? false
                if result.suppress, !isOps {
                    try db.execute(sql: """
                        INSERT INTO suppressions(channel, address, reason, created_at) VALUES (?, ?, ?, ?)
                        ON CONFLICT(channel, address) DO NOTHING
                        """, arguments: [channel, recipient, reason, now])
                    try insertEvent(db, orderID: orderID, at: now, event: "address_suppressed",
                                    detail: "\(Redact.address(recipient, channel: channel)) on \(channel): \(reason)")
                }
                if !isOps, let kind = (row[3] as String?).flatMap(NotificationKind.init(rawValue:)) {
                    let refused = OutgoingMessage(idempotencyKey: "", orderID: orderID, kind: kind, step: row[4], channel: channel,
                                                  recipient: recipient, payload: "")
                    try fallBack(db, from: refused, alternates: row[5], why: "it is dead", now: now)
                }
            }
            if let followUp = result.followUp {
                try insertOutbox(db, followUp, now: now)
            }
        }
        return stale
    }

    // MARK: Inspection

    public func order(id: String) async throws -> OrderDetail? {
        try await pool.read { db in
            let columns = "order_id, status, marks, first_seen_at, version, typeof(order_id), CAST(order_id AS BLOB), amount_paid, next_due_at, quarantine, needs_refund, pruned_at, pruned_keep"
            var state = try Row.fetchOne(db, sql: "SELECT \(columns) FROM pw_order_state WHERE order_id = ?", arguments: [id])
            if state == nil, try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM orders WHERE id = ?)", arguments: [id]) ?? false {
                // In orders, not planned yet.
                state = try Row.fetchOne(db, sql: "SELECT ?, NULL, NULL, NULL, 0, 'text', CAST(? AS BLOB), 0, NULL, NULL, 0",
                                         arguments: [id, id])
            }
            guard let state, let snapshot = try Self.loadSnapshots(db, due: Self.dueOrders([state]).0, selects: ShopSelects(db)).first else { return nil }
            let events = try Row.fetchAll(db, sql: "SELECT at, event, detail FROM pw_events WHERE order_id = ? ORDER BY at, id",
                                          arguments: [id]).map {
                TimelineEntry(at: $0["at"], event: $0["event"], detail: $0["detail"])
            }
            var attempts: [Int64: [AttemptRecord]] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT a.* FROM pw_attempts a JOIN pw_outbox o ON o.id = a.outbox_id WHERE o.order_id = ? ORDER BY a.attempt
                """, arguments: [id]) {
                attempts[row["outbox_id"], default: []].append(AttemptRecord(
                    attempt: row["attempt"], at: row["at"], httpStatus: row["http_status"], error: row["error"],
                    durationMs: row["duration_ms"], outcome: AttemptOutcome(rawValue: row["outcome"])))
            }
            let deliveries = try Row.fetchAll(db, sql: "SELECT * FROM pw_outbox WHERE order_id = ? ORDER BY created_at, id",
                                              arguments: [id]).map { row -> DeliveryRecord in
                let channel: String = row["channel"]
                return DeliveryRecord(
                    idempotencyKey: row["idempotency_key"], kind: row["kind"], step: row["step"], channel: channel,
                    to: Redact.address(row["recipient"], channel: channel), state: OutboxState(rawValue: row["state"]), createdAt: row["created_at"],
                    dueAt: row["due_at"], lastError: row["last_error"], attempts: attempts[row["id"]] ?? [],
                    heldUntil: row["not_before"])
            }
            let timeline = Self.timeline(events: events, deliveries: deliveries)
            return OrderDetail(
                orderID: id, snapshot: snapshot,
                trackedStatus: text(state[1]).flatMap(OrderStatus.init(rawValue:)),
                amountPaid: int(state[7]) ?? 0, nextDueAt: int(state[8]), quarantine: text(state[9]), needsRefund: int(state[10]) ?? 0,
                timeline: timeline, deliveries: deliveries, prunedAt: state["pruned_at"], prunedKeepMs: state["pruned_keep"])
        }
    }

    public func orders(_ filter: OrderFilter?, limit: Int) async throws -> [OrderSummary] {
        try await pool.read { db in
            var sql = """
                SELECT s.order_id, COALESCE(s.status, o.status, '?') AS status, o.amount_due, s.amount_paid,
                       COALESCE(o.currency, '') AS currency, s.next_due_at, s.quarantine, s.needs_refund
                FROM pw_order_state s LEFT JOIN orders o ON o.id = s.order_id
                """
            var arguments: StatementArguments = []
            switch filter {
            case .quarantined?:
                sql += " WHERE s.quarantine IS NOT NULL"
            case .needsRefund?:
                sql += " WHERE s.needs_refund > 0"
            case .status(let status)?:
                sql += " WHERE s.status = ? AND s.quarantine IS NULL"
                arguments += [status.rawValue]
            case nil:
                break
            }
            sql += " ORDER BY s.order_id LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                // Whatever the shop stored: an id that is not text is shown in hex, never trapped on.
                let id: String
                if let readable = text(row["order_id"]) {
                    id = Validator.display(readable, limit: 200)
                } else if case .blob(let data) = (row["order_id"] as DatabaseValue).storage {
                    id = "x'" + data.prefix(64).map { String($0, radix: 16, uppercase: true).leftPadded(2) }.joined() + "'"
                } else {
                    id = "?"
                }
                return OrderSummary(id: id, status: text(row["status"]) ?? "?", amountDue: int(row["amount_due"]),
                                    amountPaid: int(row["amount_paid"]) ?? 0, currency: text(row["currency"]) ?? "",
                                    nextDueAt: int(row["next_due_at"]), quarantine: text(row["quarantine"]),
                                    needsRefund: int(row["needs_refund"]) ?? 0)
            }
        }
    }

    /// An order's timeline: its events, and its decisions read from the outbox (each message's
    /// row is the record of its decision, so none is stored twice): one entry per kind and step
    /// decided at one time, naming its channels, after the events of that time (the transition
    /// that caused it comes first).
    package static func timeline(events: [TimelineEntry], deliveries: [DeliveryRecord]) -> [TimelineEntry] {
        // Deliveries are in (created_at, id) order: a decision's channels are consecutive.
        var groups: [(first: DeliveryRecord, channels: [String])] = []
        for delivery in deliveries {
            if let last = groups.last?.first, last.createdAt == delivery.createdAt, last.kind == delivery.kind,
               last.step == delivery.step {
                groups[groups.count - 1].channels.append(delivery.channel)
            } else {
                groups.append((delivery, [delivery.channel]))
            }
        }
        let decisions = groups.map {
            TimelineEntry(at: $0.first.createdAt, event: $0.first.kind,
                          detail: "step \($0.first.step) decided for " + $0.channels.joined(separator: ","))
        }
        // Both are in time order: merge, events first at equal times.
        var merged: [TimelineEntry] = []
        merged.reserveCapacity(events.count + decisions.count)
        var next = decisions.makeIterator()
        var decision = next.next()
        for event in events {
            while let pending = decision, pending.at < event.at {
                merged.append(pending)
                decision = next.next()
            }
            merged.append(event)
        }
        while let pending = decision {
            merged.append(pending)
            decision = next.next()
        }
        return merged
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
            let needsRefund = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_order_state WHERE needs_refund > 0") ?? 0
            // Over the period's rows in rowid order (see firstRowID): `+created_at` keeps SQLite
            // off the created_at index, whose row-by-row lookups are several times slower when
            // the period holds much of the table.
            let firstOutbox = try Self.firstRowID(db, "pw_outbox", "created_at", since: since)
            let messages = try Row.fetchAll(db, sql: """
                SELECT kind, channel, state, COUNT(*) AS n FROM pw_outbox WHERE id >= ? AND +created_at >= ?
                GROUP BY kind, channel, state ORDER BY kind, channel, state
                """, arguments: [firstOutbox, since]).map {
                Report.MessageCount(kind: $0["kind"], channel: $0["channel"], state: OutboxState(rawValue: $0["state"]), count: $0["n"])
            }
            var attempts: [AttemptOutcome: Int] = [:]
            let firstAttempt = try Self.firstRowID(db, "pw_attempts", "at", since: since)
            for row in try Row.fetchAll(db, sql: "SELECT outcome, COUNT(*) AS n FROM pw_attempts WHERE rowid >= ? AND +at >= ? GROUP BY outcome",
                                        arguments: [firstAttempt, since]) {
                attempts[AttemptOutcome(rawValue: row["outcome"])] = row["n"]
            }
            let backlog = try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS n, MIN(due_at) AS oldest FROM pw_outbox WHERE state = 'pending' AND due_at <= ?
                """, arguments: [now])
            var report = Report(since: since, now: now, ordersByStatus: byStatus, quarantined: quarantined, needsRefund: needsRefund,
                                messages: messages,
                                attempts: attempts, backlog: backlog?["n"] ?? 0, oldestBacklogDueAt: backlog?["oldest"])
            try Self.addOutcomes(to: &report, db: db, firstOutbox: firstOutbox)
            return report
        }
    }

    /// The smallest rowid of `table` whose `column` (indexed) is at least `since`, `Int64.max`
    /// when there is none. A period's rows are then read in rowid order from there, sequentially,
    /// whatever order the times were written in (a clock step back included).
    private static func firstRowID(_ db: Database, _ table: String, _ column: String, since: Millis) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT MIN(rowid) FROM \(table) WHERE \(column) >= ?", arguments: [since]) ?? Int64.max
    }

    /// Quoted, comma-separated SQL string literals of `values` (names this code owns, never input).
    package static func sqlList(_ values: [String]) -> String {
        values.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }.joined(separator: ", ")
    }

    /// What the reminders and escalations came to over `report.since … report.now`: reminder
    /// conversion, cancellations, escalations, money to return and outstanding per currency, time
    /// to payment. Each figure is one query over the outbox, the attempts, the timeline (the
    /// `status` events, `"unpaid → paid"`) and the shop's `orders` (amount_due, currency,
    /// created_at); nothing per order in Swift but the median.
    private static func addOutcomes(to report: inout Report, db: Database, firstOutbox: Int64) throws {
        let period: StatementArguments = [report.since, report.now]
        // Orders sent an unpaid_reminder in the period (decided in it, and delivered), and how
        // many are paid now. (From the outbox alone: joining each delivered attempt to its
        // message took twice as long with 100k orders in the period.)
        if let row = try Row.fetchOne(db, sql: """
            WITH reminded AS (
                SELECT DISTINCT order_id FROM pw_outbox
                WHERE id >= ? AND +created_at BETWEEN ? AND ? AND kind = 'unpaid_reminder' AND state = 'delivered')
            SELECT COUNT(*) AS reminded, COALESCE(SUM(s.status = 'paid' AND s.quarantine IS NULL), 0) AS paid
            FROM reminded r LEFT JOIN pw_order_state s ON s.order_id = r.order_id
            """, arguments: [firstOutbox] + period) {
            let reminded: Int = row["reminded"]
            let paid: Int = row["paid"]
            report.reminderConversion = Report.ReminderConversion(
                remindedOrders: reminded, paidOrders: paid, rate: reminded > 0 ? Double(paid) / Double(reminded) : nil)
        }
        // Transitions to cancelled in the period (the first per order), and whether a reminder
        // had reached the customer before.
        if let row = try Row.fetchOne(db, sql: """
            WITH cancelled AS (
                SELECT order_id, MIN(at) AS at FROM pw_events
                WHERE event = 'status' AND at BETWEEN ? AND ? AND detail LIKE '% → cancelled'
                GROUP BY order_id)
            SELECT COUNT(*) AS n, COALESCE(SUM(EXISTS(
                SELECT 1 FROM pw_outbox x WHERE x.order_id = c.order_id AND x.kind = 'unpaid_reminder'
                    AND x.state = 'delivered' AND x.created_at <= c.at)), 0) AS reminded
            FROM cancelled c
            """, arguments: period) {
            report.cancellations = Report.Cancellations(orders: row["n"], reminded: row["reminded"])
        }
        // Escalations decided in the period, by kind: from the messages already counted.
        let escalationKinds = Set(Report.escalationKinds.map(\.rawValue))
        for row in report.messages where escalationKinds.contains(row.kind) {
            report.escalations[row.kind, default: 0] += row.count
        }
        // Money to return now, per currency.
        report.needsRefundByCurrency = try money(db, sum: "s.needs_refund", from: """
            FROM pw_order_state s LEFT JOIN orders o ON o.id = s.order_id
            WHERE s.needs_refund > 0 GROUP BY 1 ORDER BY 1
            """)
        // Money still to come, per currency: what is due less what was paid, on open orders.
        report.outstanding = try money(db, sum: "MAX(o.amount_due - s.amount_paid, 0)", from: """
            FROM pw_order_state s JOIN orders o ON o.id = s.order_id
            WHERE s.status IN (\(sqlList(Report.outstandingStatuses.map(\.rawValue)))) AND s.quarantine IS NULL
                AND typeof(o.amount_due) = 'integer'
            GROUP BY 1 ORDER BY 1
            """)
        // Creation to payment, for orders that became paid in the period (their first payment in
        // it): not back from refunding, not first seen already paid (then the time of payment is unknown).
        let paidFrom = sqlList(Report.payableStatuses.map { "\($0.rawValue) → paid" })
        let durations = try Millis.fetchAll(db, sql: """
            SELECT MIN(e.at) - o.created_at FROM pw_events e JOIN orders o ON o.id = e.order_id
            WHERE e.event = 'status' AND e.at BETWEEN ? AND ? AND e.detail IN (\(paidFrom))
                AND typeof(o.created_at) = 'integer'
            GROUP BY e.order_id
            """, arguments: period)
        report.timeToPayment = Report.TimeToPayment(durations: durations)
    }

    /// `SUM(sum)` per `orders.currency` over `from` (which ends with its GROUP BY), with the
    /// count of rows. A sum past SQLite's integers (absurd amounts in the shop's rows) is shown as
    /// the largest integer instead of failing the whole report.
    private static func money(_ db: Database, sum: String, from: String) throws -> [Report.Money] {
        let rows: [Row]
        do {
            rows = try Row.fetchAll(db, sql: "SELECT COALESCE(o.currency, '') AS currency, COUNT(*) AS n, SUM(\(sum)) AS amount " + from)
        } catch let error as DatabaseError where error.message?.contains("overflow") == true {
            rows = try Row.fetchAll(db, sql: "SELECT COALESCE(o.currency, '') AS currency, COUNT(*) AS n, CAST(MIN(TOTAL(\(sum)), 9.2e18) AS INTEGER) AS amount " + from)
        }
        return rows.map {
            Report.Money(currency: text($0["currency"]) ?? "", orders: $0["n"], amount: int($0["amount"]) ?? 0)
        }
    }

    /// WAL checkpoints run beside the writer so far.
    var backgroundCheckpoints: Int { checkpointer.checkpoints }

    public func close() async throws {
        try pool.close()
        checkpointer.close()
    }

    // MARK: Lenient decoding (bad content becomes nil, which the validator quarantines)

    /// An `orders` row selected as ``orderColumns``.
    static func orderRecord(_ row: Row) -> OrderRecord {
        OrderRecord(
            id: text(row[0]) ?? "", amountDue: int(row[1]), currency: text(row[2]) ?? "", createdAt: int(row[3]),
            expiresAt: int(row[4]), email: text(row[5]), phone: text(row[6]), pushToken: text(row[7]), locale: text(row[8]),
            timeZone: text(row[9]), payURL: text(row[10]), customerName: text(row[11]), paymentMethod: text(row[12]))
    }

    /// A `payments` row selected as ``paymentColumns``.
    static func paymentRecord(_ row: Row) -> PaymentRecord {
        PaymentRecord(
            id: text(row[0]) ?? "", orderID: text(row[1]) ?? "", amount: int(row[2]), status: text(row[3]) ?? "",
            providerRef: text(row[4]), method: text(row[5]), failureReason: text(row[6]), createdAt: int(row[7]))
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

extension String {
    /// Left-padded with zeros to `width` characters.
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
