import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// `paywatch report --json` with the real binary, after a history made by `run --once`
    /// (orders created in the past, so that reminders are due at once).
    @Suite(.serialized) struct ReportEndToEndTests {
        static func config(_ base: String) -> String {
            """
            [unpaid]
            hold = "1h"
            reminders = ["10m"]
            channels = ["sms"]

            [paid]
            channels = ["sms"]

            \(Harness.smsAndOps(base))
            """
        }

        @Test func reportShowsConversionCancellationsEscalationsMoneyAndTimeToPayment() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let created = Harness.nowMs() - 20 * 60_000
            let shop = try h.shop()
            try shop.write { db in
                let insert = "INSERT INTO orders(id, amount_due, currency, created_at, phone) VALUES (?, ?, ?, ?, ?)"
                try db.execute(sql: insert, arguments: ["PAYS", 12_900, "CNY", created, "+8613800000001"])
                try db.execute(sql: insert, arguments: ["QUITS", 5_000, "CNY", created, "+8613800000002"])
                try db.execute(sql: insert, arguments: ["WAITS", 2_000, "USD", created, "+14155552671"])
                try db.execute(sql: insert, arguments: ["TWICE", 3_000, "USD", created, "+14155552672"])
                for id in ["T1", "T2"] {
                    try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, 'TWICE', 3000, 'succeeded', 'ch_1', ?)",
                                   arguments: [id, created])
                }
            }
            // Reminders to PAYS, QUITS and WAITS; TWICE paid, with duplicate_payment to ops.
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            try shop.write { db in
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'PAYS', 12900, 'succeeded', ?)",
                               arguments: [Harness.nowMs()])
                try db.execute(sql: "UPDATE orders SET expires_at = ? WHERE id = 'QUITS'", arguments: [Harness.nowMs() - 1])
            }
            // PAYS paid (about 20 min after its creation), QUITS cancelled.
            let paidAt = Harness.nowMs()
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            let doneAt = Harness.nowMs()

            let result = try h.run(["report", "--since", "1h", "--json", "--config", h.configPath])
            #expect(result.code == 0, "\(result.err)")
            let report = try JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any] ?? [:]
            #expect(report["ordersByStatus"] as? [String: Int] == ["paid": 2, "cancelled": 1, "unpaid": 1])
            let conversion = report["reminderConversion"] as? [String: Any]
            #expect(conversion?["remindedOrders"] as? Int == 3)
            #expect(conversion?["paidOrders"] as? Int == 1)
            #expect(abs((conversion?["rate"] as? Double ?? 0) - 1.0 / 3.0) < 1e-9)
            #expect(report["cancellations"] as? [String: Int] == ["orders": 1, "reminded": 1])
            #expect(report["escalations"] as? [String: Int] == ["duplicate_payment": 1])
            #expect(report["needsRefund"] as? Int == 1)
            let refund = report["needsRefundByCurrency"] as? [[String: Any]] ?? []
            #expect(refund.map { $0["currency"] as? String } == ["USD"])
            #expect(refund.first?["amount"] as? Int == 3_000)
            let outstanding = report["outstanding"] as? [[String: Any]] ?? []
            #expect(outstanding.map { $0["currency"] as? String } == ["USD"])
            #expect(outstanding.first?["amount"] as? Int == 2_000)
            #expect(outstanding.first?["orders"] as? Int == 1)
            let time = report["timeToPayment"] as? [String: Any]
            #expect(time?["orders"] as? Int == 1)
            let median = Int64(time?["medianMs"] as? Int ?? 0)
            #expect(median >= paidAt - created && median <= doneAt - created)

            let text = try h.run(["report", "--since", "1h", "--config", h.configPath])
            #expect(text.code == 0)
            #expect(text.out.contains("Outstanding (unpaid, paying, partially_paid, failed): 20.00 USD (1 order)"))
            #expect(text.out.contains("1 of them paid now (33%)"))
            #expect(text.out.contains("median 20m from creation to payment"))
            #expect(text.out.contains("duplicate_payment 1"))
        }
    }
}
