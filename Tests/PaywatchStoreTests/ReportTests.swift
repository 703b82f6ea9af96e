import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// `report` over a small history built with real sweeps and deliveries on a real SQLite file:
/// every figure checked, over the whole history and over a later window.
@Suite struct ReportTests {
    /// Claims every due message and records it delivered, except the keys in `dead`.
    func deliverAll(_ store: SQLiteOrderStore, now: Millis, dead: Set<String> = []) async throws {
        let channels = ["email", "ops", "push", "sms"]
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, 100) }), knownChannels: channels,
                                 leaseMs: 60_000),
            now: now)
        try await store.recordDeliveries(claim.messages.map { message in
            DeliveryResult(outboxID: message.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 5,
                           outcome: dead.contains(message.message.idempotencyKey) ? .dead(reason: "HTTP 400") : .delivered)
        }, now: now)
    }

    func step(_ store: SQLiteOrderStore, now: Millis, dead: Set<String> = []) async throws {
        _ = try await sweepAll(store, now: now)
        try await deliverAll(store, now: now, dead: dead)
    }

    @Test func reportsConversionCancellationsEscalationsMoneyAndTimeToPayment() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        let shop = try temp.shop()
        try await shop.write { db in
            let insert = "INSERT INTO orders(id, amount_due, currency, created_at, expires_at, phone) VALUES (?, ?, ?, ?, ?, '+8613800000000')"
            // A: reminded, then paid 15 min after creation.
            try db.execute(sql: insert, arguments: ["A", 10_000, "CNY", t0, nil])
            // B: reminded (its e-mail dead, its SMS delivered), then cancelled at the end of the hold.
            try db.execute(sql: insert, arguments: ["B", 5_000, "CNY", t0, nil])
            // C: reminded, still unpaid (held for 2 h): 20.00 USD outstanding.
            try db.execute(sql: insert, arguments: ["C", 2_000, "USD", t0, t0 + 120 * minute])
            // D: paid twice with one provider_ref: paid, duplicate_payment to ops, 30.00 USD to return.
            try db.execute(sql: insert, arguments: ["D", 3_000, "USD", t0, nil])
            // E: partially paid (30.00 of 80.00 CNY), balance due in 2 h: 50.00 CNY outstanding.
            try db.execute(sql: insert, arguments: ["E", 8_000, "CNY", t0, t0 + 120 * minute])
            // F: found after its hold ended: cancelled without a reminder.
            try db.execute(sql: insert, arguments: ["F", 1_000, "CNY", t0 - 40 * minute, nil])
            for id in ["D1", "D2"] {
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, 'D', 3000, 'succeeded', 'ch_9', ?)",
                               arguments: [id, t0])
            }
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('E1', 'E', 3000, 'succeeded', ?)",
                           arguments: [t0])
        }
        try await step(store, now: t0 + 1)
        // The first reminders (A, B, C on sms and email); B's e-mail bounces.
        try await step(store, now: t0 + 10 * minute, dead: ["pw1:B:unpaid_reminder:1:email"])
        try await shop.write { db in
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('A1', 'A', 10000, 'succeeded', ?)",
                           arguments: [t0 + 15 * minute])
        }
        try await step(store, now: t0 + 15 * minute)
        try await step(store, now: t0 + 25 * minute)  // second reminders: B and C
        try await step(store, now: t0 + 30 * minute)  // B cancelled
        let now = t0 + 40 * minute

        let statuses = try await shop.read {
            try Dictionary(uniqueKeysWithValues: Row.fetchAll($0, sql: "SELECT order_id, status FROM pw_order_state").map {
                ($0["order_id"] as String, $0["status"] as String)
            })
        }
        #expect(statuses == ["A": "paid", "B": "cancelled", "C": "unpaid", "D": "paid", "E": "partially_paid", "F": "cancelled"])

        let all = try await store.report(since: t0, now: now)
        #expect(all.ordersByStatus == ["paid": 2, "cancelled": 2, "unpaid": 1, "partially_paid": 1])
        // A, B and C were reminded; A is paid now.
        #expect(all.reminderConversion == Report.ReminderConversion(remindedOrders: 3, paidOrders: 1, rate: 1.0 / 3.0))
        // B (reminded) and F (not) were cancelled.
        #expect(all.cancellations == Report.Cancellations(orders: 2, reminded: 1))
        #expect(all.escalations == ["duplicate_payment": 1])
        #expect(all.needsRefund == 1)
        #expect(all.needsRefundByCurrency == [Report.Money(currency: "USD", orders: 1, amount: 3_000)])
        #expect(all.outstanding == [Report.Money(currency: "CNY", orders: 1, amount: 5_000),
                                    Report.Money(currency: "USD", orders: 1, amount: 2_000)])
        // A went unpaid → paid 15 min after its creation; D was first seen paid (time unknown).
        #expect(all.timeToPayment == Report.TimeToPayment(orders: 1, medianMs: 15 * minute))
        // Every figure is in the JSON.
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(all)) as? [String: Any]
        for key in ["reminderConversion", "cancellations", "escalations", "needsRefundByCurrency", "outstanding", "timeToPayment",
                    "ordersByStatus", "messages", "attempts", "backlog"] {
            #expect(json?[key] != nil, "\(key)")
        }

        // From minute 20 on: only the second reminders (B, C; neither paid), B's cancel, no payment,
        // no escalation. Money outstanding and to refund are the state now, whatever the window.
        let later = try await store.report(since: t0 + 20 * minute, now: now)
        #expect(later.reminderConversion == Report.ReminderConversion(remindedOrders: 2, paidOrders: 0, rate: 0))
        #expect(later.cancellations == Report.Cancellations(orders: 1, reminded: 1))
        #expect(later.escalations == [:])
        #expect(later.timeToPayment == Report.TimeToPayment(orders: 0, medianMs: nil))
        #expect(later.outstanding == all.outstanding)
        #expect(later.needsRefundByCurrency == all.needsRefundByCurrency)

        // An empty period: no rate, no median.
        let empty = try await store.report(since: now + 1, now: now + 2)
        #expect(empty.reminderConversion == Report.ReminderConversion(remindedOrders: 0, paidOrders: 0, rate: nil))
        #expect(empty.cancellations == Report.Cancellations(orders: 0, reminded: 0))
    }

    @Test func theMedianOfAnEvenCountIsTheMeanOfTheMiddleTwoAndRefundsDoNotCountAsPayments() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path)
        try await store.migrate()
        try await temp.shop().write { db in
            for (id, created) in [("P1", t0 - 10 * minute), ("P2", t0 - 20 * minute), ("P3", t0 - 200 * minute), ("R", t0 - 5 * minute)] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (?, 100, ?)", arguments: [id, created])
            }
            let event = "INSERT INTO pw_events(order_id, at, event, detail) VALUES (?, ?, 'status', ?)"
            try db.execute(sql: event, arguments: ["P1", t0, "unpaid → paid"])
            try db.execute(sql: event, arguments: ["P2", t0, "paying → paid"])
            try db.execute(sql: event, arguments: ["P2", t0 + 50 * minute, "refunding → paid"])  // not a payment
            try db.execute(sql: event, arguments: ["P3", t0, "partially_paid → paid"])
            try db.execute(sql: event, arguments: ["R", t0, "refunding → paid"])
            try db.execute(sql: event, arguments: ["X", t0, "new → paid"])
        }
        let report = try await store.report(since: t0 - minute, now: t0 + 60 * minute)
        #expect(report.timeToPayment == Report.TimeToPayment(orders: 3, medianMs: 20 * minute))
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES ('P4', 100, ?)", arguments: [t0 - 30 * minute])
            try db.execute(sql: "INSERT INTO pw_events(order_id, at, event, detail) VALUES ('P4', ?, 'status', 'failed → paid')",
                           arguments: [t0])
        }
        #expect(try await store.report(since: t0 - minute, now: t0 + 60 * minute).timeToPayment
                == Report.TimeToPayment(orders: 4, medianMs: 25 * minute))
    }
}
