import PaywatchCore
import PaywatchStore
import PostgresNIO

/// `NULL` in a `bigint[]` bound for `unnest` (postgres-nio arrays have no NULL elements).
let nullMillis = Millis.min

extension PostgresOrderStore {
    /// An order a sweep leased: what paywatch tracked, the version it read, and the keys of its
    /// pruned messages.
    struct DueOrder: Sendable {
        var id: String
        var tracked: TrackedState
        var version: Int64
        var prunedKeys: Set<String>?
    }

    /// Leases up to `limit` due orders to this store (`FOR UPDATE SKIP LOCKED`: replicas sweeping
    /// at once take different orders; an order leased by another replica whose lease has not
    /// expired is skipped), then reads, plans and writes them in chunks of ``writeChunk``, one
    /// transaction each. A plan is written only if the order's version is the one read (the shop
    /// did not change it since) and the lease is still this store's; either way the lease ends
    /// with the chunk's transaction.
    public func sweep(now callerNow: Millis, limit: Int, plan: @escaping @Sendable (OrderSnapshot) -> Plan,
                      handOff: DeliveryHandOff?,
                      applied onApplied: @escaping @Sendable ([Plan], [OutboxMessage]) -> Void) async throws -> SweepResult {
        let owner = leaseOwner
        let leaseMs = settings.leaseMs
        // One statement: the lease is taken atomically without a transaction around it.
        let claimed = try await autocommit { connection -> Leased in
            let now = try await self.effectiveNow(callerNow, connection)
            var binds = Binds()
            // pw_lease_due_orders (migration 3): FOR UPDATE SKIP LOCKED in a CTE bounded by the limit.
            let rows = try await self.rows(connection, """
                SELECT * FROM pw_lease_due_orders(\(binds.add(now)), \(binds.add(Int64(limit))), \(binds.add(owner)),
                                                  \(binds.add(now.saturatingAdd(leaseMs))))
                """, binds)
            // Nothing due for this store: one row saying when planning and reconciliation are next
            // due (the sweep's result says it, and the daemon asks neither).
            if let row = rows.first, try row.stringOrNil(0) == nil {
                return .nothing(NextDueTimes(planning: try row.int64OrNil(6), reconcile: try row.int64OrNil(7)))
            }
            var due: [(DueOrder, Millis)] = []
            for row in rows {
                let tracked = TrackedState(
                    status: try row.stringOrNil(1).flatMap(OrderStatus.init(rawValue:)),
                    marks: MarksCodec.decode(try row.stringOrNil(2)),
                    firstSeenAt: try row.int64OrNil(3))
                due.append((DueOrder(id: try row.string(0), tracked: tracked, version: try row.int64(4),
                                     prunedKeys: Retention.decodeKeys(try row.stringOrNil(5))), try row.int64OrNil(6) ?? 0))
            }
            due.sort { ($0.1, $0.0.id) < ($1.1, $1.0.id) }
            return .orders(now: now, due: due.map(\.0), selects: try await self.shopSelects(connection))
        }
        guard case .orders(let now, let due, let selects) = claimed else {
            guard case .nothing(let next) = claimed else { return SweepResult() }
            return SweepResult(plans: [], claimed: 0, nextDue: next)
        }
        var applied: [Plan] = []
        var remaining = due.map(\.id)
        // Pipelined: the next chunk's rows are read (on another connection) while this one is
        // planned and written.
        let slices = stride(from: 0, to: due.count, by: Self.writeChunk).map { Array(due[$0..<min($0 + Self.writeChunk, due.count)]) }
        func read(_ index: Int) -> Task<(snapshots: [OrderSnapshot], anySuppressed: Bool), any Error>? {
            guard index < slices.count else { return nil }
            let slice = slices[index]
            // Without a common snapshot: a row the shop changes between these reads bumps the order's
            // version, and its plan is not written (planned again next sweep).
            return Task { try await self.autocommit { connection in try await self.loadSnapshots(connection, due: slice, selects: selects) } }
        }
        var reading = read(0)
        var nextDue: NextDueTimes?
        do {
            for index in slices.indices {
                guard let current = reading else { break }
                let (snapshots, anySuppressed) = try await current.value
                reading = read(index + 1)
                let slice = slices[index]
                let plans = snapshots.map(plan)
                let keys = Dictionary(slice.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                let (written, handed, next) = try await apply(plans, keys: keys, handOff: handOff, anySuppressed: anySuppressed, now: now)
                // Of a sweep of one chunk only (the times of a later chunk's orders are not in an earlier's answer).
                nextDue = slices.count == 1 ? next : nil
                remaining.removeFirst(slice.count)
                onApplied(written, handed)
                applied += written
            }
        } catch {
            selectsCache.value = nil
            _ = await reading?.result
            // The orders not reached go back at once instead of when their leases expire.
            if !remaining.isEmpty {
                let ids = remaining
                _ = try? await autocommit { connection in try await self.endLeases(of: ids, connection) }
            }
            throw error
        }
        return SweepResult(plans: applied, claimed: due.count, nextDue: nextDue)
    }

    /// The sweep's ``ShopSelects``, read again from the catalog at most every 5 s (a sweep of one
    /// order must not pay for reading the tables' shape: a column the shop drops or renames is
    /// noticed within 5 s, and a sweep that fails on it reads the shape again).
    func shopSelects(_ connection: PostgresConnection) async throws -> ShopSelects {
        let now = ContinuousClock.now
        if let (selects, at) = selectsCache.value, now - at < .seconds(5) { return selects }
        let selects = try await ShopSelects(self, connection)
        selectsCache.value = (selects, now)
        return selects
    }

    /// What a sweep's lease took: orders (read at `now`, on the database's clock), or nothing and
    /// when planning and reconciliation are next due.
    enum Leased: Sendable {
        case orders(now: Millis, due: [DueOrder], selects: ShopSelects)
        case nothing(NextDueTimes)
    }

    /// Plans applied per write transaction (each kind of row is one statement for the whole chunk,
    /// so a larger chunk costs few more round trips).
    static let writeChunk = 250

    /// The earliest due time of an order no sweep holds, and the earliest time a held one comes
    /// free (its lease ends): a replica does not poll while another's sweep, or a dead replica's
    /// lease, holds the orders that are due.
    public func nextPlanningAt() async throws -> Millis? {
        try await autocommit { connection in
            // pw_next_planning_at (migration 3): the lesser of the first due order no sweep holds
            // and the first lease end (a held order was due when it was leased).
            try await self.first(connection, """
                SELECT pw_next_planning_at()
                """, Binds()).flatMap { try $0.int64OrNil(0) }
        }
    }

    // MARK: Reading the shop's rows

    /// How a sweep selects the shop's rows of a set of orders, in one statement (one round trip
    /// for the four tables): the contract's columns of each table as text (money and times as
    /// the decimal text of a `bigint`, times from `timestamptz` in milliseconds), `NULL` for an
    /// optional column the table lacks or a value that cannot be read (the validator quarantines
    /// it), nothing of the shop's own columns. Each row starts with its table's ``Table`` number;
    /// an orders row ends with whether any address is suppressed. Made from the tables' current
    /// columns.
    struct ShopSelects: Sendable {
        var combined: String

        /// The first column of a ``combined`` row: which table it comes from.
        enum Table: Int64 { case orders = 0, payments, installments, refunds }

        /// The widest table's columns (orders: 13, and the suppressed flag).
        static let width = 14

        /// Throws, naming it, when a table lacks a column a sweep cannot do without.
        init(_ store: PostgresOrderStore, _ connection: PostgresConnection) async throws {
            let types = try await store.columns(connection, tables: ["orders", "payments", "installments", "refunds"])
            func select(_ table: String, _ tag: Table, _ key: String, _ wanted: [(String, Kind)]) throws -> String {
                let present = types[table] ?? [:]
                let missing = PostgresSchema.requiredWhileRunning(table).filter { present[$0] == nil }
                if !missing.isEmpty {
                    throw StoreError(description: "the shop's \(table) table has no column \(missing.joined(separator: ", ")) (the contract requires it): restore it, then run `paywatch migrate`")
                }
                var columns = wanted.map { name, kind in
                    let expression = Self.expression(name, type: present[name], as: kind)
                    return kind == .text ? expression : "(\(expression))::text"
                }
                // The orders' rows also say whether any address is suppressed (one round trip less).
                if tag == .orders { columns.append("EXISTS(SELECT 1 FROM suppressions)::text") }
                columns += Array(repeating: "NULL::text", count: Self.width - columns.count)
                let keyIsText = Self.isText(present[key])
                return "SELECT \(tag.rawValue)::bigint, \(columns.joined(separator: ", ")) FROM \(table) WHERE \(keyIsText ? key : "\(key)::text") = ANY($1)"
            }
            combined = [
                try select("orders", .orders, "id", [
                    ("id", .text), ("amount_due", .integer), ("currency", .text), ("created_at", .integer), ("expires_at", .integer),
                    ("email", .text), ("phone", .text), ("push_token", .text), ("locale", .text), ("time_zone", .text),
                    ("pay_url", .text), ("customer_name", .text), ("payment_method", .text),
                ]),
                try select("payments", .payments, "order_id", [
                    ("id", .text), ("order_id", .text), ("amount", .integer), ("status", .text), ("provider_ref", .text),
                    ("method", .text), ("failure_reason", .text), ("created_at", .integer),
                ]),
                try select("installments", .installments, "order_id", [("order_id", .text), ("seq", .integer), ("amount", .integer), ("due_at", .integer)]),
                try select("refunds", .refunds, "order_id", [
                    ("order_id", .text), ("id", .text), ("amount", .integer), ("status", .text), ("requested_at", .integer),
                ]),
            ].joined(separator: "\nUNION ALL ")
        }

        enum Kind { case text, integer }

        static func isText(_ type: String?) -> Bool {
            ["text", "character varying", "character"].contains(type ?? "")
        }

        /// `column` of `type` (its `data_type`, nil when the table lacks it) as text or bigint;
        /// NULL for what cannot be read as such (never an error: a bad value must not stop a sweep).
        static func expression(_ column: String, type: String?, as kind: Kind) -> String {
            guard let type else { return kind == .text ? "NULL::text" : "NULL::bigint" }
            switch kind {
            case .text:
                return type == "text" || type == "character varying" ? column : "\(column)::text"
            case .integer:
                switch type {
                case "smallint", "integer", "bigint":
                    return "\(column)::bigint"
                case "numeric", "real", "double precision":
                    return "CASE WHEN \(column) = trunc(\(column)) AND abs(\(column)) < 9e15 THEN \(column)::bigint END"
                case "timestamp with time zone", "timestamp without time zone", "date":
                    return "CASE WHEN isfinite(\(column)) THEN floor(extract(epoch FROM \(column)) * 1000)::bigint END"
                case "text", "character varying", "character":
                    return "CASE WHEN \(column) ~ '^-?[0-9]{1,15}$' THEN \(column)::bigint END"
                default:
                    return "NULL::bigint"
                }
            }
        }
    }

    /// The snapshots of `due` orders: their rows in the shop's tables and, when any address is
    /// suppressed, the orders' suppressed addresses (for `fallback = true`); and whether any
    /// address at all is suppressed.
    func loadSnapshots(_ connection: PostgresConnection, due: [DueOrder], selects: ShopSelects) async throws
        -> (snapshots: [OrderSnapshot], anySuppressed: Bool) {
        var orders: [String: OrderRecord] = [:]
        var payments: [String: [PaymentRecord]] = [:]
        var installments: [String: [InstallmentRecord]] = [:]
        var refunds: [String: [RefundRecord]] = [:]
        var binds = Binds()
        _ = binds.add(due.map(\.id))
        var anySuppressed = false
        for row in try await rows(connection, selects.combined, binds) {
            // Columns from 1 on, as text (numbers in decimal).
            func text(_ index: Int) throws -> String? { try row.stringOrNil(index + 1) }
            func number(_ index: Int) throws -> Int64? { try text(index).flatMap { Int64($0) } }
            switch ShopSelects.Table(rawValue: try row.int64(0)) {
            case .orders:
                anySuppressed = try text(13) == "true"
                let record = OrderRecord(
                    id: try text(0) ?? "", amountDue: try number(1), currency: try text(2) ?? "",
                    createdAt: try number(3), expiresAt: try number(4), email: try text(5),
                    phone: try text(6), pushToken: try text(7), locale: try text(8),
                    timeZone: try text(9), payURL: try text(10), customerName: try text(11),
                    paymentMethod: try text(12))
                if orders[record.id] == nil { orders[record.id] = record }
            case .payments:
                let record = PaymentRecord(
                    id: try text(0) ?? "", orderID: try text(1) ?? "", amount: try number(2),
                    status: try text(3) ?? "", providerRef: try text(4), method: try text(5),
                    failureReason: try text(6), createdAt: try number(7))
                payments[record.orderID, default: []].append(record)
            case .installments:
                installments[try text(0) ?? "", default: []].append(InstallmentRecord(
                    seq: try number(1) ?? 0, amount: try number(2), dueAt: try number(3)))
            case .refunds:
                refunds[try text(0) ?? "", default: []].append(RefundRecord(
                    id: try text(1) ?? "", amount: try number(2), status: try text(3) ?? "", requestedAt: try number(4)))
            case nil:
                continue
            }
        }
        var suppressed: [String: [Suppression]] = [:]
        if !orders.isEmpty, anySuppressed {
            var channels: [String] = []
            var addresses: [String] = []
            for order in orders.values {
                for (channel, address) in [("sms", order.phone), ("email", order.email), ("push", order.pushToken)] {
                    if let address, !address.isEmpty {
                        channels.append(channel)
                        addresses.append(address)
                    }
                }
            }
            var binds = Binds()
            for row in try await rows(connection, """
                SELECT x.channel, x.address, x.reason FROM suppressions x
                JOIN unnest(\(binds.add(channels))::text[], \(binds.add(addresses))::text[]) AS u(channel, address)
                  ON x.channel = u.channel AND x.address = u.address
                """, binds) {
                let address = try row.string(1)
                suppressed[address, default: []].append(Suppression(channel: try row.string(0), address: address,
                                                                    reason: try row.stringOrNil(2) ?? ""))
            }
        }
        return (due.map { entry in
            var snapshot = OrderSnapshot(
                orderID: entry.id, order: orders[entry.id], payments: SQLiteOrderStore.unique(payments[entry.id] ?? []),
                installments: SQLiteOrderStore.unique(installments[entry.id] ?? []), refunds: SQLiteOrderStore.unique(refunds[entry.id] ?? []),
                state: entry.tracked, readProblem: nil)
            if !suppressed.isEmpty, let order = orders[entry.id] {
                snapshot.suppressions = [order.email, order.phone, order.pushToken].compactMap { $0 }.flatMap { suppressed[$0] ?? [] }
            }
            return snapshot
        }, anySuppressed)
    }

    // MARK: Writing plans

    /// Applies `decided` in one transaction, all at once; when the database refuses something
    /// (a shop trigger or constraint), again plan by plan, each in a savepoint, quarantining the
    /// ones refused. Returns the plans applied, the messages handed off, leased, to delivery, and
    /// (written in one statement, every plan applied) the next due times as the write left them.
    func apply(_ decided: [Plan], keys: [String: DueOrder], handOff: DeliveryHandOff?, anySuppressed: Bool, now: Millis) async throws
        -> ([Plan], [OutboxMessage], NextDueTimes?) {
        do {
            if Self.writableAtOnce(decided, anySuppressed: anySuppressed) {
                return try await leased { connection in
                    try await self.applyAtOnce(decided, keys: keys, handOff: handOff, now: now, connection)
                }
            }
            let (written, handed) = try await rawTransaction { connection in
                try await self.applyPlans(decided, keys: keys, handOff: handOff, anySuppressed: anySuppressed, now: now, connection)
            }
            return (written, handed, nil)
        } catch {
            guard Self.isDataRefusal(error) else { throw Self.mapError(error, settings: settings) }
            let (written, handed) = try await transaction { connection in
                var applied: [Plan] = []
                var handed: [OutboxMessage] = []
                for plan in decided {
                    try await self.execute(connection, "SAVEPOINT pw_plan")
                    do {
                        let (written, taken) = try await self.applyPlans([plan], keys: keys, handOff: handOff, anySuppressed: anySuppressed, now: now, connection)
                        try await self.execute(connection, "RELEASE SAVEPOINT pw_plan")
                        applied += written
                        handed += taken
                    } catch {
                        guard Self.isDataRefusal(error) else { throw error }
                        try await self.execute(connection, "ROLLBACK TO SAVEPOINT pw_plan")
                        let server = (error as? PSQLError)?.serverInfo
                        var quarantined = plan
                        quarantined.quarantine = "the plan could not be written: PostgreSQL error \(server?[.sqlState] ?? "?") (\(Validator.display(server?[.message] ?? "no message", limit: 200)))"
                        quarantined.messages = []
                        quarantined.nextDueAt = nil
                        applied += try await self.applyPlans([quarantined], keys: keys, handOff: nil, anySuppressed: anySuppressed, now: now, connection).0
                    }
                }
                return (applied, handed)
            }
            return (written, handed, nil)
        }
    }

    /// Ends this store's leases of the orders `ids` (others' leases stay): they are due again as
    /// they were, at once.
    func endLeases(of ids: [String], _ connection: PostgresConnection) async throws {
        guard !ids.isEmpty else { return }
        var binds = Binds()
        try await execute(connection, """
            UPDATE pw_order_state SET lease_owner = NULL, lease_until = NULL
            WHERE order_id = ANY(\(binds.add(ids))) AND lease_owner = \(binds.add(leaseOwner))
            """, binds)
    }

    /// Whether `plans` are written by ``applyAtOnce(_:keys:handOff:now:_:)``: no quarantine, no
    /// reconcile request, no message that resolves an alert or collapses held steps, and no
    /// address suppressed anywhere (each of those asks the database first).
    static func writableAtOnce(_ plans: [Plan], anySuppressed: Bool) -> Bool {
        !anySuppressed && plans.allSatisfy { plan in
            plan.quarantine == nil && plan.reconciles.isEmpty && plan.messages.allSatisfy { $0.resolves == nil && !$0.collapsesHeld }
        }
    }

    /// ``applyPlans(_:keys:handOff:anySuppressed:now:_:)`` for plans ``writableAtOnce(_:anySuppressed:)``,
    /// in one statement (atomic without BEGIN and COMMIT): the tracked states, fenced by version
    /// and lease as there; then, for the orders written, `orders.status` where it changed, the
    /// timeline events and the outbox rows (idempotent by key, leased to delivery where `handOff`
    /// takes them). A sweep of one order is one round trip here instead of six.
    /// The statement also says when planning and reconciliation are next due: as it found them,
    /// leaving out this store's own leases (the orders it is writing), with the plans' own next
    /// due times; nil when a plan was not written (its order is due again at once).
    func applyAtOnce(_ plans: [Plan], keys: [String: DueOrder], handOff: DeliveryHandOff?, now: Millis,
                     _ connection: PostgresConnection) async throws -> ([Plan], [OutboxMessage], NextDueTimes?) {
        let owner = leaseOwner
        let messages = Self.unpruned(plans, keys: keys)
        // No address is suppressed here (writableAtOnce).
        let (leasedFlags, dueTimes) = Self.handOffDecisions(messages, suppressed: [], handOff: handOff, now: now)
        var events: [(String, String, String)] = []
        for plan in plans {
            for event in plan.events { events.append((plan.orderID, event.event, event.detail)) }
        }
        var binds = Binds()
        let nowBind = binds.add(now)
        let ownerBind = binds.add(owner)
        let rows = try await self.rows(connection, """
            WITH u AS (
                SELECT * FROM unnest(\(binds.add(plans.map(\.orderID)))::text[], \(binds.add(plans.map(\.status.rawValue)))::text[],
                                     \(binds.add(plans.map(\.amountPaid)))::bigint[], \(binds.add(plans.map { MarksCodec.encode($0.marks) }))::text[],
                                     \(binds.add(plans.map { $0.nextDueAt ?? nullMillis }))::bigint[], \(binds.add(plans.map(\.needsRefund)))::bigint[],
                                     \(binds.add(plans.map { keys[$0.orderID]?.version ?? 0 }))::bigint[],
                                     \(binds.add(plans.map(\.statusChanged)))::boolean[])
                    AS u(order_id, status, amount_paid, marks, next_due_at, needs_refund, version, status_changed)),
            applied AS (
                UPDATE pw_order_state s SET status = u.status, amount_paid = u.amount_paid, marks = u.marks,
                    next_due_at = NULLIF(u.next_due_at, \(nullMillis)), quarantine = NULL,
                    first_seen_at = COALESCE(s.first_seen_at, \(nowBind)), updated_at = \(nowBind), needs_refund = u.needs_refund,
                    lease_owner = NULL, lease_until = NULL
                FROM u WHERE s.order_id = u.order_id AND s.version = u.version AND s.lease_owner = \(ownerBind)
                RETURNING s.order_id),
            shop AS (
                UPDATE orders o SET status = u.status FROM u JOIN applied a ON a.order_id = u.order_id
                WHERE u.status_changed AND o.id::text = u.order_id AND o.status IS DISTINCT FROM u.status),
            events AS (
                INSERT INTO pw_events(order_id, at, event, detail)
                SELECT e.order_id, \(nowBind), e.event, e.detail
                FROM unnest(\(binds.add(events.map(\.0)))::text[], \(binds.add(events.map(\.1)))::text[], \(binds.add(events.map(\.2)))::text[])
                     AS e(order_id, event, detail)
                WHERE EXISTS (SELECT 1 FROM applied a WHERE a.order_id = e.order_id)),
            outbox AS (
                \(Self.outboxInsert(messages, leased: leasedFlags, dueTimes: dueTimes, now: nowBind, owner: ownerBind, nowMs: now,
                                    binds: &binds, where: "EXISTS (SELECT 1 FROM applied a WHERE a.order_id = m.order_id)"))
                RETURNING id, order_id, idempotency_key, in_flight)
            SELECT a.order_id, NULL::bigint, NULL::text, NULL::boolean FROM applied a
            UNION ALL
            SELECT o.order_id, o.id, o.idempotency_key, o.in_flight FROM outbox o
            UNION ALL
            SELECT NULL, pw_next_planning_at(\(ownerBind)), 'planning', NULL
            UNION ALL
            SELECT NULL, (SELECT MIN(r.due_at) FROM pw_reconcile r WHERE r.state = 'pending'), 'reconcile', NULL
            """, binds)
        var appliedIDs: Set<String> = []
        var inserted: [String: (id: Int64, leased: Bool)] = [:]
        var nextPlanning: Millis?
        var nextReconcile: Millis?
        for row in rows {
            if try row.stringOrNil(0) == nil {
                if try row.stringOrNil(2) == "planning" { nextPlanning = try row.int64OrNil(1) } else { nextReconcile = try row.int64OrNil(1) }
            } else if let id = try row.int64OrNil(1) {
                inserted[try row.string(0) + "\u{1}" + row.string(2)] = (id, try row.bool(3))
            } else {
                appliedIDs.insert(try row.string(0))
            }
        }
        // The leases of orders not written (changed by the shop meanwhile: planned again next sweep).
        let notApplied = plans.map(\.orderID).filter { !appliedIDs.contains($0) }
        try await endLeases(of: notApplied, connection)
        var handed: [OutboxMessage] = []
        for message in messages {
            guard let row = inserted[message.orderID + "\u{1}" + message.idempotencyKey], row.leased else { continue }
            handed.append(OutboxMessage(id: row.id, message: message, attempts: 0))
        }
        let next = notApplied.isEmpty
            ? NextDueTimes(planning: ([nextPlanning] + plans.map(\.nextDueAt)).compactMap { $0 }.min(), reconcile: nextReconcile) : nil
        return (plans.filter { appliedIDs.contains($0.orderID) }, handed, next)
    }

    /// Writes `plans` inside the caller's transaction: each only if its order is still at the
    /// version read and leased to this store. Set-wise: one statement per kind of row for the
    /// whole chunk (`unnest` of arrays), so a chunk of 100 orders costs a handful of round trips.
    func applyPlans(_ plans: [Plan], keys: [String: DueOrder], handOff: DeliveryHandOff?, anySuppressed: Bool, now: Millis,
                    _ connection: PostgresConnection) async throws -> ([Plan], [OutboxMessage]) {
        let owner = leaseOwner
        var appliedIDs: Set<String> = []
        // Quarantines, one by one (rare).
        for plan in plans {
            guard let reason = plan.quarantine else { continue }
            var binds = Binds()
            let changed = try await rows(connection, """
                UPDATE pw_order_state SET quarantine = \(binds.add(reason)), next_due_at = \(binds.add(plan.nextDueAt)),
                    updated_at = \(binds.add(now)), lease_owner = NULL, lease_until = NULL
                WHERE order_id = \(binds.add(plan.orderID)) AND version = \(binds.add(keys[plan.orderID]?.version ?? 0))
                  AND lease_owner = \(binds.add(owner))
                RETURNING 1
                """, binds)
            if !changed.isEmpty {
                appliedIDs.insert(plan.orderID)
                try await insertEvents(connection, [(plan.orderID, "quarantined", reason)], at: now)
            }
        }
        let normal = plans.filter { $0.quarantine == nil }
        if !normal.isEmpty {
            var binds = Binds()
            let ids = binds.add(normal.map(\.orderID))
            let statuses = binds.add(normal.map(\.status.rawValue))
            let paid = binds.add(normal.map(\.amountPaid))
            let marks = binds.add(normal.map { MarksCodec.encode($0.marks) })
            let due = binds.add(normal.map { $0.nextDueAt ?? nullMillis })
            let refund = binds.add(normal.map(\.needsRefund))
            let versions = binds.add(normal.map { keys[$0.orderID]?.version ?? 0 })
            let nowBind = binds.add(now)
            let ownerBind = binds.add(owner)
            let updated = try await rows(connection, """
                UPDATE pw_order_state s SET status = u.status, amount_paid = u.amount_paid, marks = u.marks,
                    next_due_at = NULLIF(u.next_due_at, \(nullMillis)), quarantine = NULL,
                    first_seen_at = COALESCE(s.first_seen_at, \(nowBind)), updated_at = \(nowBind), needs_refund = u.needs_refund,
                    lease_owner = NULL, lease_until = NULL
                FROM unnest(\(ids)::text[], \(statuses)::text[], \(paid)::bigint[], \(marks)::text[], \(due)::bigint[],
                            \(refund)::bigint[], \(versions)::bigint[])
                     AS u(order_id, status, amount_paid, marks, next_due_at, needs_refund, version)
                WHERE s.order_id = u.order_id AND s.version = u.version AND s.lease_owner = \(ownerBind)
                RETURNING s.order_id
                """, binds)
            for row in updated { appliedIDs.insert(try row.string(0)) }
        }
        // The leases of orders not applied (changed by the shop meanwhile: planned again next sweep).
        try await endLeases(of: plans.map(\.orderID).filter { !appliedIDs.contains($0) }, connection)
        let applied = normal.filter { appliedIDs.contains($0.orderID) }
        // The shop's view: only where the status changed.
        let changedStatus = applied.filter(\.statusChanged)
        if !changedStatus.isEmpty {
            var binds = Binds()
            try await execute(connection, """
                UPDATE orders o SET status = u.status
                FROM unnest(\(binds.add(changedStatus.map(\.orderID)))::text[], \(binds.add(changedStatus.map(\.status.rawValue)))::text[]) AS u(id, status)
                WHERE o.id::text = u.id AND o.status IS DISTINCT FROM u.status
                """, binds)
        }
        let handed = try await insertPlanned(applied, keys: keys, handOff: handOff, anySuppressed: anySuppressed, now: now, connection)
        var events: [(String, String, String)] = []
        for plan in applied {
            for event in plan.events { events.append((plan.orderID, event.event, event.detail)) }
        }
        try await insertEvents(connection, events, at: now)
        for plan in applied {
            for request in plan.reconciles { try await insertReconcile(connection, request, now: now) }
        }
        let quarantinedApplied = plans.filter { $0.quarantine != nil && appliedIDs.contains($0.orderID) }
        let order = Dictionary(plans.enumerated().map { ($1.orderID, $0) }, uniquingKeysWith: { first, _ in first })
        return ((applied + quarantinedApplied).sorted { (order[$0.orderID] ?? 0) < (order[$1.orderID] ?? 0) }, handed)
    }

    /// The applied plans' messages: inserted in one statement (idempotent by key), leased to
    /// delivery where `handOff` takes them; then the held earlier steps they collapse.
    /// `anySuppressed`: whether any address was suppressed when the orders were read (their
    /// messages' addresses are looked up only then).
    func insertPlanned(_ plans: [Plan], keys: [String: DueOrder], handOff: DeliveryHandOff?, anySuppressed: Bool, now: Millis,
                       _ connection: PostgresConnection) async throws -> [OutboxMessage] {
        let candidates = Self.unpruned(plans, keys: keys)
        guard !candidates.isEmpty else { return [] }
        // Whether any message is held for the quiet hours: asked only when one of these could collapse it.
        var anyHeld = false
        if candidates.contains(where: \.collapsesHeld) {
            anyHeld = try await first(connection, """
                SELECT EXISTS(SELECT 1 FROM pw_outbox WHERE not_before IS NOT NULL AND state = 'pending')
                """, Binds()).map { try $0.bool(0) } ?? false
        }
        // A resolution of an alert ops never got resolves nothing: not written.
        var messages: [OutgoingMessage] = []
        for message in candidates {
            if let resolved = message.resolves {
                var binds = Binds()
                let exists = try await first(connection, """
                    SELECT EXISTS(SELECT 1 FROM pw_outbox WHERE order_id = \(binds.add(message.orderID))
                        AND kind = \(binds.add(resolved.rawValue)) AND state IN ('pending', 'delivered'))
                    """, binds).map { try $0.bool(0) } ?? false
                if !exists { continue }
            }
            messages.append(message)
        }
        var suppressed: Set<String> = []
        if anySuppressed {
            let customer = messages.filter { !$0.kind.isOps }
            var binds = Binds()
            for row in try await rows(connection, """
                SELECT x.channel, x.address FROM suppressions x
                JOIN unnest(\(binds.add(customer.map(\.channel)))::text[], \(binds.add(customer.map(\.recipient)))::text[]) AS u(channel, address)
                  ON x.channel = u.channel AND x.address = u.address
                """, binds) {
                suppressed.insert(try row.string(0) + "\u{1}" + row.string(1))
            }
        }
        let (leasedFlags, dueTimes) = Self.handOffDecisions(messages, suppressed: suppressed, handOff: handOff, now: now)
        var binds = Binds()
        let nowBind = binds.add(now)
        let ownerBind = binds.add(leaseOwner)
        let rows = try await self.rows(connection, """
            \(Self.outboxInsert(messages, leased: leasedFlags, dueTimes: dueTimes, now: nowBind, owner: ownerBind, nowMs: now, binds: &binds))
            RETURNING id, order_id, idempotency_key, in_flight
            """, binds)
        var inserted: [String: (id: Int64, leased: Bool)] = [:]
        for row in rows {
            inserted[try row.string(1) + "\u{1}" + row.string(2)] = (try row.int64(0), try row.bool(3))
        }
        var handed: [OutboxMessage] = []
        for message in messages {
            guard let row = inserted[message.orderID + "\u{1}" + message.idempotencyKey] else { continue }
            if row.leased { handed.append(OutboxMessage(id: row.id, message: message, attempts: 0)) }
            if message.collapsesHeld, anyHeld { try await collapseHeld(into: message, now: now, connection) }
        }
        return handed
    }

    /// The plans' messages but those whose keys retention pruned (decided and gone before).
    static func unpruned(_ plans: [Plan], keys: [String: DueOrder]) -> [OutgoingMessage] {
        plans.flatMap { plan in
            let pruned = keys[plan.orderID]?.prunedKeys
            return plan.messages.filter { message in
                pruned.map { !$0.contains(Retention.compactKey(message.idempotencyKey, orderID: plan.orderID)) } ?? true
            }
        }
    }

    /// Per message: whether delivery takes it now (leased to it, `handOff.take`) and its due time
    /// (the lease's end, else when it may go). A suppressed address (`channel \u{1} address` in
    /// `suppressed`), a reminder under a daily cap, a message held for the quiet hours: never
    /// handed over (the claim settles them, or takes them when due).
    static func handOffDecisions(_ messages: [OutgoingMessage], suppressed: Set<String>, handOff: DeliveryHandOff?,
                                 now: Millis) -> (leased: [Bool], dueTimes: [Millis]) {
        var leasedFlags: [Bool] = []
        var dueTimes: [Millis] = []
        for message in messages {
            let isSuppressed = !message.kind.isOps && suppressed.contains(message.channel + "\u{1}" + message.recipient)
            let capped = handOff?.claimsReminders == true && message.kind.isReminder
            let dueAt = max(now, message.notBefore ?? now)
            let leased = isSuppressed || capped || dueAt > now ? nil : handOff.flatMap { $0.take(message.channel) ? now.saturatingAdd($0.leaseMs) : nil }
            leasedFlags.append(leased != nil)
            dueTimes.append(leased ?? dueAt)
        }
        return (leasedFlags, dueTimes)
    }

    /// `INSERT INTO pw_outbox … SELECT … FROM unnest(…) AS m(…) [WHERE condition] ON CONFLICT DO
    /// NOTHING` for `messages` (idempotent by key), without its RETURNING; `now` and `owner` are
    /// binds already made.
    static func outboxInsert(_ messages: [OutgoingMessage], leased: [Bool], dueTimes: [Millis], now: String, owner: String,
                             nowMs: Millis, binds: inout Binds, where condition: String? = nil) -> String {
        """
        INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, in_flight, due_at, created_at,
                              updated_at, alternates, not_before, lease_owner)
        SELECT m.key, m.order_id, m.kind, m.step, m.channel, m.recipient, m.body, m.leased, m.due_at, \(now), \(now),
               NULLIF(m.alternates, ''), NULLIF(m.not_before, \(nullMillis)), CASE WHEN m.leased THEN \(owner) END
        FROM unnest(\(binds.add(messages.map(\.idempotencyKey)))::text[], \(binds.add(messages.map(\.orderID)))::text[],
                    \(binds.add(messages.map(\.kind.rawValue)))::text[], \(binds.add(messages.map { Int64($0.step) }))::bigint[],
                    \(binds.add(messages.map(\.channel)))::text[], \(binds.add(messages.map(\.recipient)))::text[],
                    \(binds.add(messages.map(\.payload)))::text[], \(binds.add(leased))::boolean[],
                    \(binds.add(dueTimes))::bigint[], \(binds.add(messages.map { Alternates.encode($0.alternates) ?? "" }))::text[],
                    \(binds.add(messages.map { heldUntil($0, now: nowMs) ?? nullMillis }))::bigint[])
             AS m(key, order_id, kind, step, channel, recipient, body, leased, due_at, alternates, not_before)
        \(condition.map { "WHERE \($0)" } ?? "")
        ON CONFLICT (order_id, idempotency_key) DO NOTHING
        """
    }

    /// When a message decided at `now` is held until (the end of the quiet hours), nil when it may go at once.
    static func heldUntil(_ message: OutgoingMessage, now: Millis) -> Millis? {
        message.notBefore.flatMap { $0 > now ? $0 : nil }
    }

    /// The order's earlier held steps of `message`'s kind on its channel that have not gone out:
    /// superseded, with a `collapsed` event each.
    func collapseHeld(into message: OutgoingMessage, now: Millis, _ connection: PostgresConnection) async throws {
        var binds = Binds()
        let steps = try await rows(connection, """
            UPDATE pw_outbox SET state = 'superseded', updated_at = \(binds.add(now))
            WHERE order_id = \(binds.add(message.orderID)) AND kind = \(binds.add(message.kind.rawValue))
              AND channel = \(binds.add(message.channel)) AND step < \(binds.add(Int64(message.step))) AND state = 'pending'
              AND NOT in_flight AND attempts = 0 AND not_before IS NOT NULL
            RETURNING step
            """, binds).map { try $0.int(0) }
        try await insertEvents(connection, steps.sorted().map { step in
            (message.orderID, "collapsed",
             "\(message.kind.rawValue) step \(step) on \(message.channel), held for the quiet hours, collapsed into step \(message.step)")
        }, at: now)
    }

    /// Timeline events (order id, event, detail), in one statement.
    func insertEvents(_ connection: PostgresConnection, _ events: [(String, String, String)], at now: Millis) async throws {
        guard !events.isEmpty else { return }
        var binds = Binds()
        try await execute(connection, """
            INSERT INTO pw_events(order_id, at, event, detail)
            SELECT u.order_id, \(binds.add(now)), u.event, u.detail
            FROM unnest(\(binds.add(events.map(\.0)))::text[], \(binds.add(events.map(\.1)))::text[], \(binds.add(events.map(\.2)))::text[])
                 AS u(order_id, event, detail)
            """, binds)
    }

    func insertReconcile(_ connection: PostgresConnection, _ request: ReconcileRequest, now: Millis) async throws {
        let fallback = request.fallback
        var binds = Binds()
        let nowBind = binds.add(now)
        try await execute(connection, """
            INSERT INTO pw_reconcile(order_id, payment_id, provider_ref, step, fallback_key, fallback_kind, fallback_step,
                fallback_channel, fallback_recipient, fallback_body, due_at, created_at, updated_at)
            VALUES (\(binds.add(request.orderID)), \(binds.add(request.paymentID)), \(binds.add(request.providerRef)),
                    \(binds.add(Int64(request.step))), \(binds.add(fallback?.idempotencyKey)), \(binds.add(fallback?.kind.rawValue)),
                    \(binds.add(fallback.map { Int64($0.step) })), \(binds.add(fallback?.channel)), \(binds.add(fallback?.recipient)),
                    \(binds.add(fallback?.payload)), \(nowBind), \(nowBind), \(nowBind))
            ON CONFLICT (order_id, payment_id, step) DO NOTHING
            """, binds)
    }
}
