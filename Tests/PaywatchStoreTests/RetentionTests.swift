import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// Retention on a real SQLite file: what is pruned, what is never touched, batches, dry runs, and
/// that a pruned order that moves again is not sent anything it was sent before.
@Suite struct RetentionTests {
    static let day: Millis = 86_400_000

    /// Claims every due message and records it delivered (or as `outcome` says).
    func deliverAll(_ store: SQLiteOrderStore, now: Millis,
                    outcome: (OutboxMessage) -> DeliveryOutcome = { _ in .delivered }) async throws {
        let channels = ["email", "ops", "sms"]
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, 1000) }),
                                 knownChannels: channels, leaseMs: 60_000), now: now)
        try await store.recordDeliveries(claim.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 1, outcome: outcome($0))
        }, now: now)
    }

    /// Plans what is due at `now` and delivers what that decided.
    func step(_ store: SQLiteOrderStore, _ planner: Planner = planner, now: Millis) async throws {
        _ = try await store.sweep(now: now, limit: 500) { planner.plan($0, now: now) }
        try await deliverAll(store, now: now)
    }

    /// Events, outbox rows and attempts of one order.
    func history(_ temp: TempDatabase, _ id: String) throws -> [Int] {
        try temp.shop().read { db in
            [try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_events WHERE order_id = ?", arguments: [id]) ?? 0,
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_outbox WHERE order_id = ?", arguments: [id]) ?? 0,
             try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM pw_attempts WHERE outbox_id IN (SELECT id FROM pw_outbox WHERE order_id = ?)
                """, arguments: [id]) ?? 0]
        }
    }

    func insertOrder(_ temp: TempDatabase, _ id: String, created: Millis, paid: [Int64] = []) throws {
        try temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES (?, 100, ?, '+8613800000000', 'a@shop.example')",
                           arguments: [id, created])
            for (index, amount) in paid.enumerated() {
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, ?, ?, 'succeeded', ?, ?)",
                               arguments: ["\(id)-p\(index)", id, amount, "ref-\(id)-\(index)", created])
            }
        }
    }

    /// A fresh store with `ids` paid in full at t0 and confirmed (delivered) a minute later.
    func paidOrders(_ ids: [String]) async throws -> (TempDatabase, SQLiteOrderStore) {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        for id in ids { try insertOrder(temp, id, created: t0, paid: [100]) }
        try await step(store, now: t0 + minute)
        return (temp, store)
    }

    /// A day of orders, each with delivered history, then one day later:
    /// PAID and CANCELLED are settled for longer than a day; the others are not, or have work open.
    func aDayOfOrders() async throws -> (TempDatabase, SQLiteOrderStore) {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try insertOrder(temp, "PAID", created: t0, paid: [100])
        try insertOrder(temp, "CANCELLED", created: t0)
        try insertOrder(temp, "DUPLICATE", created: t0, paid: [100, 100])   // needs_refund
        try insertOrder(temp, "RETRYING", created: t0, paid: [100])
        for at in [t0 + minute, t0 + 10 * minute, t0 + 25 * minute, t0 + 31 * minute] {
            _ = try await store.sweep(now: at, limit: 500) { planner.plan($0, now: at) }
            // RETRYING's confirmation keeps failing: it is retried, never settled.
            try await deliverAll(store, now: at) {
                $0.message.orderID == "RETRYING" ? .retry(atMs: at + 3 * Self.day, reason: "HTTP 503") : .delivered
            }
        }
        // Paid a day later: final, but not for a day yet.
        try insertOrder(temp, "RECENT", created: t0 + Self.day, paid: [100])
        // Unpaid: reminders ahead.
        try insertOrder(temp, "OPEN", created: t0 + Self.day)
        try await step(store, now: t0 + Self.day + minute)
        return (temp, store)
    }

    @Test func prunesOnlyOrdersSettledForLongerThanKeepAndKeepsEveryOpenOrdersHistory() async throws {
        let (temp, store) = try await aDayOfOrders()
        let kept = ["DUPLICATE", "RETRYING", "RECENT", "OPEN"]
        var before: [String: [Int]] = [:]
        for id in kept + ["PAID", "CANCELLED"] { before[id] = try history(temp, id) }
        // Every order has history of every kind worth checking.
        #expect(before["PAID"]!.allSatisfy { $0 > 0 })
        #expect(before["CANCELLED"]!.allSatisfy { $0 > 0 })
        #expect(before["RETRYING"]![2] > 0)

        let now = t0 + Self.day + 40 * minute
        let counts = try await store.prune(now: now, keepMs: Self.day, limit: 200, dryRun: false)
        #expect(counts.orders == 2)
        #expect(counts.events == before["PAID"]![0] + before["CANCELLED"]![0])
        #expect(counts.outbox == before["PAID"]![1] + before["CANCELLED"]![1])
        #expect(counts.attempts == before["PAID"]![2] + before["CANCELLED"]![2])
        #expect(try history(temp, "PAID") == [0, 0, 0])
        #expect(try history(temp, "CANCELLED") == [0, 0, 0])
        for id in kept { #expect(try history(temp, id) == before[id], "\(id) was touched") }

        // Recorded for `orders show`; the tracking row (status, marks) stays.
        let paid = try #require(try await store.order(id: "PAID"))
        #expect(paid.prunedAt == now)
        #expect(paid.prunedKeepMs == Self.day)
        #expect(paid.trackedStatus == .paid)
        #expect(paid.timeline.isEmpty && paid.deliveries.isEmpty)
        #expect(try await store.order(id: "OPEN")?.prunedAt == nil)
        // The pruned messages' keys, kept without the order's prefix.
        let keys = try await temp.shop().read { try String.fetchOne($0, sql: "SELECT pruned_keys FROM pw_order_state WHERE order_id = 'PAID'") }
        #expect(Set((keys ?? "").split(separator: "\n")) == ["payment_confirmed:1:sms", "payment_confirmed:1:email"])

        // Nothing left: a second run finds nothing (and does not loop on what it pruned).
        #expect(try await store.prune(now: now + 1, keepMs: Self.day, limit: 200, dryRun: false) == PruneCounts())
    }

    @Test func aPendingReconcileRequestOrAQuarantineKeepsAFinalOrdersHistory() async throws {
        let (temp, store) = try await paidOrders(["ASKED", "QUARANTINED"])
        // Paid while a stalled attempt's ask was still due; and a row a later plan found unusable.
        try await temp.shop().write { db in
            try db.execute(sql: """
                INSERT INTO pw_reconcile(order_id, payment_id, provider_ref, step, due_at, created_at, updated_at)
                VALUES ('ASKED', 'x', 'ref', 1, ?, ?, ?)
                """, arguments: [t0, t0, t0])
            try db.execute(sql: "UPDATE pw_order_state SET quarantine = 'amount_due is negative' WHERE order_id = 'QUARANTINED'")
        }
        let before = [try history(temp, "ASKED"), try history(temp, "QUARANTINED")]
        let now = t0 + 2 * Self.day
        #expect(try await store.pruneAll(now: now, keepMs: Self.day, batchSize: 200) == PruneCounts())
        #expect([try history(temp, "ASKED"), try history(temp, "QUARANTINED")] == before)
        // Once the ask is recorded, nothing is open any more.
        try await temp.shop().write { try $0.execute(sql: "UPDATE pw_reconcile SET state = 'reconciled'") }
        #expect(try await store.pruneAll(now: now, keepMs: Self.day, batchSize: 200).orders == 1)
        #expect(try history(temp, "ASKED") == [0, 0, 0])
        #expect(try history(temp, "QUARANTINED") == before[1])
    }

    @Test func aDryRunCountsWhatARunDeletesAndDeletesNothing() async throws {
        let (temp, store) = try await aDayOfOrders()
        let now = t0 + Self.day + 40 * minute
        let ids = ["PAID", "CANCELLED", "DUPLICATE", "RETRYING", "RECENT", "OPEN"]
        let before = try ids.map { try history(temp, $0) }
        let dry = try await store.pruneAll(now: now, keepMs: Self.day, batchSize: 1, dryRun: true)
        #expect(try ids.map { try history(temp, $0) } == before)
        #expect(try await store.order(id: "PAID")?.prunedAt == nil)
        let real = try await store.pruneAll(now: now, keepMs: Self.day, batchSize: 1)
        #expect(dry == real)
        #expect(real.orders == 2 && real.rows > 0)
    }

    @Test func batchesOfBatchSizeUntilNothingIsLeft() async throws {
        let (temp, store) = try await paidOrders((0..<25).map { "P\($0)" })
        var batches: [Int] = []
        let total = try await store.pruneAll(now: t0 + 2 * Self.day, keepMs: Self.day, batchSize: 10) { batches.append($0.orders) }
        #expect(batches == [10, 10, 5])
        #expect(total.orders == 25)
        // Each paid order had its confirmation on sms and email, each delivered once.
        #expect(total.outbox == 50 && total.attempts == 50)
        #expect(try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox") } == 0)
    }

    @Test func aPrunedCancelledOrderPaidLateGetsNoEarlierMessageAgain() async throws {
        let (temp, store) = try await aDayOfOrders()
        let sentBefore = try await temp.shop().read {
            try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox WHERE order_id = 'CANCELLED'")
        }
        #expect(sentBefore.count == 6)  // two reminders and the cancellation, on sms and email
        let now = t0 + 2 * Self.day
        _ = try await store.pruneAll(now: now, keepMs: Self.day, batchSize: 200)
        // The money arrives late.
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('late', 'CANCELLED', 100, 'succeeded', ?)",
                           arguments: [now])
        }
        try await step(store, now: now + minute)
        let sentAfter = try await temp.shop().read {
            try Row.fetchAll($0, sql: "SELECT idempotency_key, kind, state FROM pw_outbox WHERE order_id = 'CANCELLED'")
        }
        // Ops hears of the late payment; the customer hears nothing of what was said before.
        #expect(sentAfter.map { $0["kind"] as String } == ["late_payment"])
        #expect(sentAfter.map { $0["state"] as String } == ["delivered"])
        #expect(Set(sentAfter.map { $0["idempotency_key"] as String }).isDisjoint(with: sentBefore))
    }

    @Test func aPrunedRefundBackInAnEarlierStatusIsNotToldAgain() async throws {
        // The marks remember a refund's last status only; that a status was told before is kept
        // by the outbox row's key — and, once pruned, by the tracking row's pruned keys.
        let (temp, store) = try await paidOrders(["R"])
        func refund(_ status: String, at: Millis) async throws {
            try await temp.shop().write { db in
                try db.execute(sql: """
                    INSERT INTO refunds(id, order_id, amount, status, requested_at) VALUES ('rf', 'R', 100, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET status = excluded.status
                    """, arguments: [status, t0 + 2 * minute])
            }
            try await step(store, now: at)
        }
        try await refund("requested", at: t0 + 3 * minute)
        try await refund("failed", at: t0 + 4 * minute)   // back to paid: final
        let told = try await temp.shop().read {
            try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox WHERE kind = 'refund_progress' ORDER BY id")
        }
        #expect(told.count == 4)  // requested and failed, on sms and email
        let pruned = try await store.pruneAll(now: t0 + 2 * Self.day, keepMs: Self.day, batchSize: 200)
        #expect(pruned.orders == 1 && pruned.outbox == 6)

        // The shop retries the same refund: "requested" again, which the customer was told.
        try await refund("requested", at: t0 + 2 * Self.day + minute)
        let after = try await temp.shop().read {
            try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox")
        }
        #expect(after.isEmpty)
        #expect(try await store.order(id: "R")?.trackedStatus == .refunding)
        // It goes on from there: "processing" was never told, so it is.
        try await refund("processing", at: t0 + 2 * Self.day + 2 * minute)
        let kinds = try await temp.shop().read { try String.fetchAll($0, sql: "SELECT kind FROM pw_outbox") }
        #expect(kinds == ["refund_progress", "refund_progress"])
    }

    @Test func aDeadLetterOfAPrunedMessageIsNotDecidedAgain() async throws {
        let (temp, store) = try await paidOrders(["D"])
        let dead = OutgoingMessage(idempotencyKey: OutgoingMessage.key(orderID: "D", kind: .paymentConfirmed, step: 1, channel: "sms"),
                                   orderID: "D", kind: .paymentConfirmed, step: 1, channel: "sms", recipient: "+8613800000000", payload: "{}")
        let followUp = planner.deliveryDeadMessage(for: dead, reason: "HTTP 410")
        _ = try await store.pruneAll(now: t0 + 2 * Self.day, keepMs: Self.day, batchSize: 200)
        // Recording the dead letter of a message pruned (as a repeated record would) inserts nothing.
        try await temp.shop().write { db in
            try db.execute(sql: "UPDATE pw_order_state SET pruned_keys = pruned_keys || char(10) || ? WHERE order_id = 'D'",
                           arguments: [followUp.idempotencyKey])
        }
        try await store.recordDeliveries([DeliveryResult(outboxID: 999, startedAt: t0, httpStatus: 410, error: nil, durationMs: 1,
                                                         outcome: .dead(reason: "HTTP 410"), followUp: followUp)], now: t0 + 2 * Self.day)
        #expect(try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox") } == 0)
    }

    @Test func runsFindTheirOrdersThroughThePartialIndex() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let plan = try await temp.shop().read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + Retention.candidatesSQL + " LIMIT 10", arguments: [t0])
                .map { $0["detail"] as String }.joined(separator: "\n")
        }
        #expect(plan.contains("pw_order_state_settled"), "\(plan)")
    }

    @Test func migrationV9KeepsEveryRow() async throws {
        let temp = try TempDatabase()
        let pool = try DatabasePool(path: temp.path)
        try SQLiteSchema.migrator().migrate(pool, upTo: "v7: outbox keyed by order")
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, status) VALUES ('A', 100, ?, 'paid')", arguments: [t0])
            try db.execute(sql: "UPDATE pw_order_state SET status = 'paid', marks = 'payment_confirmed=1', next_due_at = NULL, updated_at = ? WHERE order_id = 'A'",
                           arguments: [t0])
            try db.execute(sql: """
                INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, state, due_at, created_at, updated_at)
                VALUES ('k', 'A', 'payment_confirmed', 1, 'sms', '+8613800000000', '{}', 'delivered', ?, ?, ?)
                """, arguments: [t0, t0, t0])
            try db.execute(sql: "INSERT INTO pw_events(order_id, at, event) VALUES ('A', ?, 'status')", arguments: [t0])
        }
        try pool.close()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let row = try #require(try await temp.shop().read { try Row.fetchOne($0, sql: "SELECT marks, pruned_at, pruned_keys FROM pw_order_state") })
        #expect(row["marks"] as String == "payment_confirmed=1")
        #expect(row["pruned_at"] as Millis? == nil)
        #expect(try history(temp, "A") == [1, 1, 0])
        // Settled before v9: found by the first run.
        #expect(try await store.prune(now: t0 + 2 * Self.day, keepMs: Self.day, limit: 10, dryRun: false)
            == PruneCounts(orders: 1, events: 1, outbox: 1, attempts: 0))
    }
}
