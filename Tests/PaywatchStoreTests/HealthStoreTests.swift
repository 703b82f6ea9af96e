import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// What `paywatch status` and the daemon's lag check read, and the re-planning after a reload.
@Suite struct HealthStoreTests {
    /// Three orders: A and C unpaid with a reminder due at t0+10m, B paid (its confirmation delivered).
    func threeOrders() async throws -> (TempDatabase, SQLiteOrderStore) {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for id in ["A", "B", "C"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: [id, t0])
            }
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P', 'B', 100, 'succeeded', ?)",
                           arguments: [t0])
        }
        _ = try await sweepAll(store, now: t0)
        try await temp.shop().write { db in try db.execute(sql: "UPDATE pw_outbox SET state = 'delivered'") }
        return (temp, store)
    }

    @Test func replanAllMarksEveryOpenOrderAndLeavesSettledOnes() async throws {
        let (temp, store) = try await threeOrders()
        let due = try await temp.shop().read {
            try [String: Millis?](uniqueKeysWithValues: Row.fetchAll($0, sql: "SELECT order_id, next_due_at FROM pw_order_state")
                .map { ($0["order_id"], $0["next_due_at"]) })
        }
        #expect(due["A"] == .some(t0 + 10 * minute))
        #expect(try await store.replanAll() == 2)
        let after = try await temp.shop().read {
            try [String: Millis?](uniqueKeysWithValues: Row.fetchAll($0, sql: "SELECT order_id, next_due_at FROM pw_order_state")
                .map { ($0["order_id"], $0["next_due_at"]) })
        }
        #expect(after["A"] == .some(0))
        #expect(after["C"] == .some(0))
        #expect(after["B"] == due["B"])
        // The next sweep plans them again, and nothing is decided twice.
        let plans = try await sweepAll(store, now: t0 + 1)
        #expect(Set(plans.map(\.orderID)) == ["A", "C"])
        #expect(plans.allSatisfy { $0.messages.isEmpty })
        try await store.close()
    }

    @Test func lagCountsDueOrdersChangedOrdersAndUndeliveredMessages() async throws {
        let (temp, store) = try await threeOrders()
        // Nothing due at t0 + 1: no lag.
        var lag = try await store.lag(now: t0 + 1)
        #expect(lag == Lag())
        #expect(lag.ms(now: t0 + 1, lastSweepAt: t0) == 0)
        // The reminder has been due for 5 minutes and nobody swept.
        lag = try await store.lag(now: t0 + 15 * minute)
        #expect(lag.oldestDueOrderAt == t0 + 10 * minute)
        #expect(lag.ms(now: t0 + 15 * minute, lastSweepAt: t0) == 5 * minute)
        // Swept: the message is decided at t0+15m and waits for delivery (a gateway down).
        _ = try await sweepAll(store, now: t0 + 15 * minute)
        lag = try await store.lag(now: t0 + 20 * minute)
        #expect(lag.dueMessages == 2)
        #expect(lag.oldestPendingMessageAt == t0 + 15 * minute)
        #expect(lag.ms(now: t0 + 20 * minute, lastSweepAt: t0 + 19 * minute) == 5 * minute)
        // The shop changes an order: it counts from the last sweep.
        try await temp.shop().write { db in try db.execute(sql: "UPDATE orders SET phone = '+8613900000000' WHERE id = 'C'") }
        lag = try await store.lag(now: t0 + 20 * minute)
        #expect(lag.changedOrders == 1)
        try await store.close()
    }

    @Test func healthShowsHeartbeatOutboxBacklogAndOpenEscalations() async throws {
        let (temp, store) = try await threeOrders()
        var health = try await store.health(now: t0 + 1)
        #expect(health.daemon == nil)
        #expect(health.openOrders == 2)
        #expect(health.outbox == [.delivered: 1])
        let beat = DaemonHeartbeat(instance: "host", pid: 42, startedAt: t0, configLoadedAt: t0, lastSweepAt: t0 + 1, lastSweepMs: 3)
        try await store.writeHeartbeat(beat)
        _ = try await sweepAll(store, now: t0 + 15 * minute)
        try await temp.shop().write { db in
            // A's reminder delivered, C's leased (in flight); C's stalled payment escalated to ops.
            try db.execute(sql: "UPDATE pw_outbox SET state = 'delivered' WHERE order_id = 'A' AND channel = 'sms'")
            try db.execute(sql: "UPDATE pw_outbox SET in_flight = 1 WHERE order_id = 'C' AND kind = 'unpaid_reminder'")
            try db.execute(sql: "UPDATE pw_order_state SET status = 'paying', needs_refund = 100 WHERE order_id = 'C'")
            try db.execute(sql: """
                INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, due_at, created_at, updated_at)
                VALUES ('k', 'C', 'paying_stalled', 1, 'ops', 'oncall', '{}', ?, ?, ?)
                """, arguments: [t0 + 15 * minute, t0 + 15 * minute, t0 + 15 * minute])
        }
        health = try await store.health(now: t0 + 16 * minute)
        #expect(health.daemon == beat)
        #expect(health.outbox[.delivered] == 2)
        #expect(health.outbox[.inFlight] == 1)
        #expect(health.outbox[.pending] == 1)
        #expect(health.backlog["unpaid_reminder"] == 1)
        #expect(health.backlog["paying_stalled"] == 1)
        #expect(health.escalations == ["paying_stalled": 1, "needs_refund": 1])
        #expect(health.lagMs == minute)
        // A stop is recorded on the same row.
        var stopped = beat
        stopped.stoppedAt = t0 + 17 * minute
        try await store.writeHeartbeat(stopped)
        #expect(try await store.health(now: t0 + 18 * minute).daemon?.stoppedAt == t0 + 17 * minute)
        try await store.close()
    }
}
