import PaywatchCore
import PaywatchStore
import PostgresNIO

extension PostgresOrderStore {
    // MARK: Leases

    /// This store's own leases (``leaseOwner``'s: claimed messages, reconcile requests, orders a
    /// sweep holds) given back at once; other replicas' are never touched.
    public func releaseLeases(now callerNow: Millis) async throws -> Int {
        let owner = leaseOwner
        return try await transaction { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            var binds = Binds()
            let released = try await self.rows(connection, """
                UPDATE pw_outbox SET in_flight = false, lease_owner = NULL, due_at = \(binds.add(now))
                WHERE state = 'pending' AND in_flight AND lease_owner = \(binds.add(owner))
                RETURNING 1
                """, binds).count
            try await self.execute(connection, """
                UPDATE pw_reconcile SET due_at = $1, lease_owner = NULL WHERE state = 'pending' AND due_at > $1 AND lease_owner = $2
                """, binds)
            var orderBinds = Binds()
            try await self.execute(connection, """
                UPDATE pw_order_state SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = \(orderBinds.add(owner))
                """, orderBinds)
            return released
        }
    }

    /// Always 0: with replicas on one database, no replica can know that another is gone; a dead
    /// replica's leases come back when they expire (`[store] lease`).
    public func recoverLeasesOfDeadOwners(now: Millis) async throws -> Int { 0 }

    /// Extends to `until` the leases of `ids` still leased to this store (pending, in flight);
    /// returns the ids it could not renew (recorded, or expired and taken by another owner).
    public func renewLeases(_ ids: [Int64], until callerUntil: Millis, now callerNow: Millis) async throws -> [Int64] {
        guard !ids.isEmpty else { return [] }
        let owner = leaseOwner
        return try await autocommit { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            let until = callerUntil.saturatingAdd(now - callerNow)
            var binds = Binds()
            let renewed = Set(try await self.rows(connection, """
                UPDATE pw_outbox SET due_at = GREATEST(due_at, \(binds.add(until))), updated_at = \(binds.add(now))
                WHERE id = ANY(\(binds.add(ids))) AND lease_owner = \(binds.add(owner)) AND state = 'pending' AND in_flight
                RETURNING id
                """, binds).map { try $0.int64(0) })
            return ids.filter { !renewed.contains($0) }
        }
    }

    // MARK: Delivery

    public func exchangeDeliveries(recording results: [DeliveryResult], deciding decisions: [OutgoingMessage],
                                   claiming claim: DeliveryClaimRequest?, now callerNow: Millis) async throws -> DeliveryClaim {
        try await transaction { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            var result = DeliveryClaim()
            result.staleResults = try await self.record(results, shift: now - callerNow, now: now, connection)
            for message in decisions { try await self.insertOutbox(connection, message, now: now) }
            if let claim {
                try await self.claim(claim, now: now, connection, into: &result)
            }
            let channels = (claim?.knownChannels ?? []).filter { !result.saturatedChannels.contains($0) }
            if !channels.isEmpty {
                var binds = Binds()
                for row in try await self.rows(connection, """
                    SELECT c, (SELECT MIN(due_at) FROM pw_outbox WHERE state = 'pending' AND channel = c)
                    FROM unnest(\(binds.add(channels))::text[]) AS c
                    """, binds) {
                    // Reported on the caller's clock.
                    if let at = try row.int64OrNil(1) { result.nextDueAt[try row.string(0)] = at.saturatingSubtract(now - callerNow) }
                }
            }
            return result
        }
    }

    /// Writes one attempt row per counted result and moves each message to its new state, in a
    /// few statements for the whole batch. Fenced: a result applies only to a message still
    /// leased to this store and, when the result carries it, still at the attempt number it was
    /// claimed at; the others are returned (stale). `shift` moves the caller's due times onto the
    /// database's clock.
    func record(_ results: [DeliveryResult], shift: Millis, now: Millis, _ connection: PostgresConnection) async throws -> [Int64] {
        guard !results.isEmpty else { return [] }
        var states: [String] = []
        var counted: [Int64] = []
        var dueTimes: [Millis] = []
        var reasons: [String] = []
        for result in results {
            switch result.outcome {
            case .delivered: states.append(OutboxState.delivered.rawValue); counted.append(1); dueTimes.append(now)
            case .retry(let at, _): states.append(OutboxState.pending.rawValue); counted.append(1); dueTimes.append(at.saturatingAdd(shift))
            case .dead: states.append(OutboxState.dead.rawValue); counted.append(1); dueTimes.append(now)
            case .notAttempted: states.append(OutboxState.pending.rawValue); counted.append(0); dueTimes.append(now)
            case .deferred(let until, _):
                states.append(OutboxState.pending.rawValue); counted.append(0); dueTimes.append(until.saturatingAdd(shift))
            }
            reasons.append(result.outcome.reason ?? "")
        }
        var binds = Binds()
        let updated = try await rows(connection, """
            UPDATE pw_outbox o SET state = r.state, attempts = o.attempts + r.counted, in_flight = false, due_at = r.due_at,
                updated_at = \(binds.add(now)), last_error = COALESCE(NULLIF(r.reason, ''), o.last_error), lease_owner = NULL
            FROM unnest(\(binds.add(results.map(\.outboxID)))::bigint[], \(binds.add(states))::text[], \(binds.add(counted))::bigint[],
                        \(binds.add(dueTimes))::bigint[], \(binds.add(reasons))::text[],
                        \(binds.add(results.map { Int64($0.attempts ?? -1) }))::bigint[])
                 AS r(id, state, counted, due_at, reason, expect)
            WHERE o.id = r.id AND o.lease_owner = \(binds.add(leaseOwner)) AND (r.expect < 0 OR o.attempts = r.expect)
            RETURNING o.id, o.attempts
            """, binds)
        var attemptNumber: [Int64: Int64] = [:]
        for row in updated { attemptNumber[try row.int64(0)] = try row.int64(1) }
        // The attempt rows of the counted results applied.
        let attempts = results.filter { result in
            guard attemptNumber[result.outboxID] != nil else { return false }
            switch result.outcome {
            case .notAttempted, .deferred: return false
            default: return true
            }
        }
        if !attempts.isEmpty {
            var binds = Binds()
            try await execute(connection, """
                INSERT INTO pw_attempts(outbox_id, attempt, at, http_status, error, duration_ms, outcome)
                SELECT u.id, u.attempt, u.at, NULLIF(u.http_status, -1), NULLIF(u.error, ''), u.duration_ms, u.outcome
                FROM unnest(\(binds.add(attempts.map(\.outboxID)))::bigint[], \(binds.add(attempts.map { attemptNumber[$0.outboxID] ?? 0 }))::bigint[],
                            \(binds.add(attempts.map { $0.startedAt.saturatingAdd(shift) }))::bigint[],
                            \(binds.add(attempts.map { Int64($0.httpStatus ?? -1) }))::bigint[], \(binds.add(attempts.map { $0.error ?? "" }))::text[],
                            \(binds.add(attempts.map(\.durationMs)))::bigint[], \(binds.add(attempts.map(\.outcome.name)))::text[])
                     AS u(id, attempt, at, http_status, error, duration_ms, outcome)
                """, binds)
        }
        var stale: [Int64] = []
        for result in results {
            guard attemptNumber[result.outboxID] != nil else {
                stale.append(result.outboxID)
                continue
            }
            if case .dead(let reason) = result.outcome {
                try await settleDead(result, reason: reason, now: now, connection)
            }
            if let followUp = result.followUp { try await insertOutbox(connection, followUp, now: now) }
        }
        return stale
    }

    /// A message that died: its `delivery_dead` event, its address suppressed when the result
    /// blames it (customer messages only), and its fallback.
    func settleDead(_ result: DeliveryResult, reason: String, now: Millis, _ connection: PostgresConnection) async throws {
        var binds = Binds()
        guard let row = try await first(connection, """
            SELECT order_id, channel, recipient, kind, step, alternates FROM pw_outbox WHERE id = \(binds.add(result.outboxID))
            """, binds) else { return }
        let orderID = try row.string(0)
        let channel = try row.string(1)
        let recipient = try row.string(2)
        let kind = NotificationKind(rawValue: try row.string(3))
        let isOps = kind?.isOps ?? false
        try await insertEvents(connection, [(orderID, "delivery_dead", reason)], at: now)
        if result.suppress, !isOps {
            var binds = Binds()
            try await execute(connection, """
                INSERT INTO suppressions(channel, address, reason, created_at)
                VALUES (\(binds.add(channel)), \(binds.add(recipient)), \(binds.add(reason)), to_timestamp(\(binds.add(Double(now) / 1000))))
                ON CONFLICT (channel, address) DO NOTHING
                """, binds)
            try await insertEvents(connection, [(orderID, "address_suppressed",
                                                 "\(Redact.address(recipient, channel: channel)) on \(channel): \(reason)")], at: now)
        }
        if !isOps, let kind {
            let refused = OutgoingMessage(idempotencyKey: "", orderID: orderID, kind: kind, step: try row.int(4), channel: channel,
                                          recipient: recipient, payload: "")
            try await fallBack(connection, from: refused, alternates: try row.stringOrNil(5), why: "it is dead", now: now)
        }
    }

    /// `fallback = true`: the first alternate whose address is not suppressed is decided in the
    /// refused message's place; the timeline says which channel took over, or that none was left.
    func fallBack(_ connection: PostgresConnection, from refused: OutgoingMessage, alternates: String?, why: String, now: Millis) async throws {
        let candidates = Alternates.decode(alternates, orderID: refused.orderID, kind: refused.kind, step: refused.step)
        guard !candidates.isEmpty else { return }
        let what = "\(refused.kind.rawValue) step \(refused.step) on \(refused.channel) (\(why))"
        var skipped: [String] = []
        for next in candidates {
            var binds = Binds()
            if let reason = try await first(connection, """
                SELECT reason FROM suppressions WHERE channel = \(binds.add(next.channel)) AND address = \(binds.add(next.recipient))
                """, binds).map({ try $0.stringOrNil(0) ?? "" }) {
                skipped.append("\(next.channel) (\(Redact.address(next.recipient, channel: next.channel)) is suppressed: \(Validator.display(reason, limit: 80)))")
                continue
            }
            try await insertOutbox(connection, next, now: now)
            try await insertEvents(connection, [(refused.orderID, "fallback",
                                                 ([what + ": sent on \(next.channel) instead"] + skipped).joined(separator: "; skipped "))], at: now)
            return
        }
        try await insertEvents(connection, [(refused.orderID, "fallback",
                                             ([what + ": no channel left"] + skipped).joined(separator: "; skipped "))], at: now)
    }

    /// Decides a message: a new outbox row, or nothing if its key was decided before (or pruned).
    @discardableResult
    func insertOutbox(_ connection: PostgresConnection, _ message: OutgoingMessage, now: Millis) async throws -> Bool {
        var binds = Binds()
        let compact = Retention.compactKey(message.idempotencyKey, orderID: message.orderID)
        let nowBind = binds.add(now)
        return try await !rows(connection, """
            INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, due_at, created_at, updated_at,
                                  alternates, not_before)
            SELECT \(binds.add(message.idempotencyKey)), \(binds.add(message.orderID)), \(binds.add(message.kind.rawValue)),
                   \(binds.add(Int64(message.step))), \(binds.add(message.channel)), \(binds.add(message.recipient)),
                   \(binds.add(message.payload)), \(binds.add(max(now, message.notBefore ?? now))), \(nowBind), \(nowBind),
                   \(binds.add(Alternates.encode(message.alternates))), \(binds.add(Self.heldUntil(message, now: now)))
            WHERE NOT EXISTS (SELECT 1 FROM pw_order_state WHERE order_id = $3 AND pruned_keys IS NOT NULL
                              AND position(E'\\n' || \(binds.add(compact)) || E'\\n' IN E'\\n' || pruned_keys || E'\\n') > 0)
            ON CONFLICT (order_id, idempotency_key) DO NOTHING
            RETURNING 1
            """, binds).isEmpty
    }

    /// The customer kinds, as stored: what the daily cap counts.
    static let customerKinds = NotificationKind.allCases.filter { !$0.isOps }.map(\.rawValue)

    /// Claims per channel, earliest due first, with `FOR UPDATE SKIP LOCKED` (a replica claiming
    /// at the same time skips these rows): leases what is still right to send, settles the rest.
    func claim(_ request: DeliveryClaimRequest, now: Millis, _ connection: PostgresConnection, into result: inout DeliveryClaim) async throws {
        let leaseUntil = now.saturatingAdd(request.leaseMs)
        var claimed: [(row: PostgresRandomAccessRow, due: Millis)] = []
        func take(_ condition: String, _ binds: Binds, limit: Int) async throws -> Int {
            var binds = binds
            let rows = try await self.rows(connection, """
                WITH c AS (
                    SELECT id, due_at FROM pw_outbox
                    WHERE state = 'pending' AND \(condition) AND due_at <= \(binds.add(now))
                    ORDER BY due_at LIMIT \(binds.add(Int64(limit)))
                    FOR UPDATE SKIP LOCKED)
                UPDATE pw_outbox o SET in_flight = true, due_at = \(binds.add(leaseUntil)), updated_at = \(binds.add(now)),
                    lease_owner = \(binds.add(leaseOwner))
                FROM c WHERE o.id = c.id
                RETURNING o.id, o.idempotency_key, o.order_id, o.kind, o.step, o.channel, o.recipient, o.body, o.attempts,
                    (SELECT s.status FROM pw_order_state s WHERE s.order_id = o.order_id),
                    (SELECT x.reason FROM suppressions x WHERE x.channel = o.channel AND x.address = o.recipient),
                    o.alternates, c.due_at
                """, binds)
            for row in rows { claimed.append((row, try row.int64(12))) }
            return rows.count
        }
        for (channel, limit) in request.perChannel.sorted(by: { $0.key < $1.key }) where limit > 0 {
            var binds = Binds()
            let condition = "channel = \(binds.add(channel))"
            if try await take(condition, binds, limit: limit) == limit { result.saturatedChannels.insert(channel) }
        }
        if request.others > 0 {
            var binds = Binds()
            let condition = "channel <> ALL(\(binds.add(request.knownChannels))::text[])"
            result.othersSaturated = try await take(condition, binds, limit: request.others) == request.others
        }
        claimed.sort { ($0.due, (try? $0.row.int64(0)) ?? 0) < ($1.due, (try? $1.row.int64(0)) ?? 0) }
        let claimedIDs = try claimed.map { try $0.row.int64(0) }
        // Decisions leased by this claim so far, per order (the daily cap counts them).
        var leasedNow: [String: Set<String>] = [:]
        for (row, _) in claimed {
            let id = try row.int64(0)
            guard let kind = NotificationKind(rawValue: try row.string(3)) else {
                // Not a kind this release knows: it would be claimed again forever. Dead instead.
                try await settle(connection, id: id, state: .dead, error: "unknown message kind: not sent", now: now)
                continue
            }
            let message = OutboxMessage(
                id: id,
                message: OutgoingMessage(
                    idempotencyKey: try row.string(1), orderID: try row.string(2), kind: kind, step: try row.int(4),
                    channel: try row.string(5), recipient: try row.string(6), payload: try row.string(7)),
                attempts: try row.int(8))
            let orderID = message.message.orderID
            let status = try row.stringOrNil(9).flatMap(OrderStatus.init(rawValue:))
            if let reason = try row.stringOrNil(10), !kind.isOps {
                let masked = Redact.address(message.message.recipient, channel: message.message.channel)
                try await settle(connection, id: id, state: .suppressed, error: "suppressed: \(reason)", now: now)
                try await insertEvents(connection, [(orderID, "suppressed",
                    "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) not sent: \(masked) is suppressed (\(reason))")], at: now)
                result.suppressed.append(message)
                try await fallBack(connection, from: message.message, alternates: try row.stringOrNil(11), why: "\(masked) is suppressed", now: now)
            } else if kind.stillApplies(to: status) {
                let decision = "\(kind.rawValue):\(message.message.step)"
                if let cap = request.maxPerOrderPerDay, kind.isReminder {
                    let sent = try await decisionsSent(connection, orderID: orderID, excluding: claimedIDs, now: now)
                        .union(leasedNow[orderID] ?? [])
                    if !sent.contains(decision), sent.count >= cap {
                        let why = "daily cap of \(cap) message\(cap == 1 ? "" : "s") reached"
                        try await settle(connection, id: id, state: .capped, error: why, now: now)
                        try await insertEvents(connection, [(orderID, "capped",
                            "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) not sent: \(why)")], at: now)
                        result.capped.append(message)
                        continue
                    }
                }
                if !kind.isOps { leasedNow[orderID, default: []].insert(decision) }
                result.messages.append(message)
            } else {
                try await settle(connection, id: id, state: .superseded, error: nil, now: now)
                try await insertEvents(connection, [(orderID, "superseded",
                    "\(kind.rawValue) step \(message.message.step) on \(message.message.channel) dropped: the order moved on")], at: now)
                result.superseded.append(message)
            }
        }
    }

    /// A claimed row that will not be sent: final, its lease gone.
    func settle(_ connection: PostgresConnection, id: Int64, state: OutboxState, error: String?, now: Millis) async throws {
        var binds = Binds()
        try await execute(connection, """
            UPDATE pw_outbox SET state = \(binds.add(state.rawValue)), in_flight = false, lease_owner = NULL,
                last_error = COALESCE(\(binds.add(error)), last_error), updated_at = \(binds.add(now))
            WHERE id = \(binds.add(id))
            """, binds)
    }

    /// The decisions (`kind:step`) of customer messages this order's customer was sent over the
    /// 24 hours before `now`, or that are being sent (leased by an earlier claim), leaving out the
    /// rows of this claim (counted as they are accepted).
    func decisionsSent(_ connection: PostgresConnection, orderID: String, excluding: [Int64], now: Millis) async throws -> Set<String> {
        var binds = Binds()
        let rows = try await self.rows(connection, """
            SELECT DISTINCT kind, step FROM pw_outbox
            WHERE order_id = \(binds.add(orderID)) AND kind = ANY(\(binds.add(Self.customerKinds))::text[])
              AND ((state = 'delivered' AND updated_at > \(binds.add(now - 86_400_000))) OR (state = 'pending' AND in_flight))
              AND id <> ALL(\(binds.add(excluding))::bigint[])
            """, binds)
        return Set(try rows.map { "\(try $0.string(0)):\(try $0.int(1))" })
    }

    // MARK: Reconciliation

    public func claimReconciles(now callerNow: Millis, limit: Int, leaseMs: Millis) async throws -> [ReconcileTask] {
        let owner = leaseOwner
        return try await autocommit { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            var binds = Binds()
            let rows = try await self.rows(connection, """
                WITH c AS (
                    SELECT id, due_at FROM pw_reconcile WHERE state = 'pending' AND due_at <= \(binds.add(now))
                    ORDER BY due_at, id LIMIT \(binds.add(Int64(limit))) FOR UPDATE SKIP LOCKED)
                UPDATE pw_reconcile r SET due_at = \(binds.add(now.saturatingAdd(leaseMs))), updated_at = $1, lease_owner = \(binds.add(owner))
                FROM c WHERE r.id = c.id
                RETURNING r.id, r.order_id, r.payment_id, r.provider_ref, r.step, r.fallback_key, r.fallback_kind, r.fallback_step,
                    r.fallback_channel, r.fallback_recipient, r.fallback_body, c.due_at
                """, binds)
            var tasks: [(Millis, ReconcileTask)] = []
            for row in rows {
                var fallback: OutgoingMessage?
                if let key = try row.stringOrNil(5), let kind = try row.stringOrNil(6).flatMap(NotificationKind.init(rawValue:)) {
                    fallback = OutgoingMessage(
                        idempotencyKey: key, orderID: try row.string(1), kind: kind, step: Int(try row.int64OrNil(7) ?? 0),
                        channel: try row.stringOrNil(8) ?? "", recipient: try row.stringOrNil(9) ?? "", payload: try row.stringOrNil(10) ?? "")
                }
                tasks.append((try row.int64(11), ReconcileTask(id: try row.int64(0), request: ReconcileRequest(
                    orderID: try row.string(1), paymentID: try row.string(2), providerRef: try row.string(3), step: try row.int(4),
                    fallback: fallback))))
            }
            return tasks.sorted { ($0.0, $0.1.id) < ($1.0, $1.1.id) }.map(\.1)
        }
    }

    public func recordReconciles(_ outcomes: [ReconcileOutcome], now callerNow: Millis) async throws {
        guard !outcomes.isEmpty else { return }
        try await transaction { connection in
            let now = try await self.effectiveNow(callerNow, connection)
            for outcome in outcomes {
                let state: ReconcileState
                switch outcome.answer {
                case .definite: state = .reconciled
                case .unresolved: state = .unresolved
                }
                var binds = Binds()
                let recorded = try await self.rows(connection, """
                    UPDATE pw_reconcile SET state = \(binds.add(state.rawValue)), answer = \(binds.add(outcome.detail)),
                        updated_at = \(binds.add(now)), lease_owner = NULL
                    WHERE id = \(binds.add(outcome.task.id)) AND state = 'pending'
                    RETURNING 1
                    """, binds)
                guard !recorded.isEmpty else { continue }
                let request = outcome.task.request
                let payment = Validator.display(request.paymentID)
                switch outcome.answer {
                case .definite(let status, let reason):
                    // The only write paywatch makes to a payments row; the shop's triggers mark the order.
                    var binds = Binds()
                    let applied = try await !self.rows(connection, """
                        UPDATE payments SET status = \(binds.add(status.rawValue)),
                            failure_reason = COALESCE(\(binds.add(status == .failed ? reason : nil)), failure_reason)
                        WHERE id::text = \(binds.add(request.paymentID)) AND order_id::text = \(binds.add(request.orderID)) AND status = 'pending'
                        RETURNING 1
                        """, binds).isEmpty
                    try await self.insertEvents(connection, [(request.orderID, "reconciled", applied
                        ? "payment \(payment) → \(status.rawValue): \(outcome.detail)"
                        : "payment \(payment) was no longer pending, left as it is: \(outcome.detail)")], at: now)
                case .unresolved:
                    if let fallback = request.fallback { try await self.insertOutbox(connection, fallback, now: now) }
                    try await self.insertEvents(connection, [(request.orderID, "reconcile_unresolved", "payment \(payment): \(outcome.detail)")],
                                                at: now)
                }
            }
        }
    }

    public func nextReconcileAt() async throws -> Millis? {
        try await autocommit { connection in
            try await self.first(connection, "SELECT MIN(due_at) FROM pw_reconcile WHERE state = 'pending'", Binds())
                .flatMap { try $0.int64OrNil(0) }
        }
    }
}
