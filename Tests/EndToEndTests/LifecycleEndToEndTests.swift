import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// The payment lifecycle beyond unpaid orders, with the real binary and real time in seconds.
    @Suite(.serialized) struct LifecycleEndToEndTests {
        static func config(_ base: String) -> String {
            """
            \(Harness.quietUnpaid)

            [partially_paid]
            reminders = ["1s"]
            balance_due = "3s"
            overdue_every = "1s"
            overdue_max = 1
            on_overdue = "cancel"

            \(Harness.smsAndOps(base))
            """
        }

        @Test func aPartiallyPaidOrderIsRemindedOfItsBalanceThenOverdueThenEscalatedAndCancelled() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let created = Harness.nowMs()
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('PART', 10000, ?, '+8613800000000')",
                               arguments: [created])
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'PART', 4000, 'succeeded', ?)",
                               arguments: [created])
            }
            try h.start()
            #expect(Harness.eventually(15) { h.gateway.requests().contains { $0.path == "/ops" } })
            Thread.sleep(forTimeInterval: 0.5)
            #expect(h.stop() == 0)
            let sent = EndToEndTests().kinds(h.gateway.requests(), order: "PART")
            // The escalation (ops) and the cancel (sms) are decided together and travel in two lanes.
            #expect(sent.prefix(2).map(\.kind) == ["balance_reminder", "installment_overdue"])
            #expect(Set(sent.dropFirst(2).map(\.kind)) == ["installment_escalated", "order_cancelled"])
            // Each at its time: 1 s after the payment, at the due time (3 s), one period later (4 s).
            let offsets = sent.map { $0.at - created }
            #expect(offsets.count == 4)
            if offsets.count == 4 {
                #expect(offsets[0] >= 1_000 && offsets[0] < 2_500)
                #expect(offsets[1] >= 3_000 && offsets[1] < 4_500)
                #expect(offsets[2] >= 4_000 && offsets[2] < 5_500)
            }
            let show = try h.run(["orders", "show", "PART", "--config", h.configPath])
            #expect(show.out.contains("status: cancelled"))
            #expect(show.out.contains("installment_escalated"))
        }

        @Test func aDoublePaymentIsEscalatedFlaggedAndItsRefundFollowed() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let created = Harness.nowMs()
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, locale) VALUES ('TWICE', 10000, ?, '+8613800000000', 'en')",
                               arguments: [created])
                for id in ["P1", "P2"] {
                    try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, 'TWICE', 10000, 'succeeded', 'ch_7', ?)",
                                   arguments: [id, created])
                }
            }
            try h.start()
            #expect(Harness.eventually(10) { h.gateway.requests().contains { $0.path == "/ops" } })
            let flagged = try h.run(["orders", "list", "--status", "needs_refund", "--config", h.configPath])
            #expect(flagged.out.contains("TWICE"))
            #expect(flagged.out.contains("needs_refund 100.00 CNY"))
            // The shop refunds the second charge: the customer hears of each step, the flag clears.
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO refunds(id, order_id, amount, status, requested_at) VALUES ('R1', 'TWICE', 10000, 'processing', ?)",
                               arguments: [Harness.nowMs()])
            }
            #expect(Harness.eventually(10) { EndToEndTests().kinds(h.gateway.requests(), order: "TWICE").contains { $0.kind == "refund_progress" } })
            try h.shop().write { db in
                try db.execute(sql: "UPDATE refunds SET status = 'succeeded' WHERE id = 'R1'")
            }
            #expect(Harness.eventually(10) {
                EndToEndTests().kinds(h.gateway.requests(), order: "TWICE").filter { $0.kind == "refund_progress" }.count == 2
            })
            #expect(h.stop() == 0)
            let kinds = EndToEndTests().kinds(h.gateway.requests(), order: "TWICE").map(\.kind)
            #expect(kinds.filter { $0 == "duplicate_payment" }.count == 1)
            #expect(kinds.filter { $0 == "payment_confirmed" }.count == 1)
            let show = try h.run(["orders", "show", "TWICE", "--config", h.configPath])
            #expect(!show.out.contains("NEEDS REFUND"))
            #expect(show.out.contains("status: paid"))
            let report = try h.run(["report", "--config", h.configPath])
            #expect(report.code == 0)
        }
    }
}
