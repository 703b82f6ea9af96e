import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// `paywatch prune [--dry-run]` and `orders show` of a pruned order, with the real binary.
    @Suite(.serialized) struct PruneEndToEndTests {
        static func config(_ base: String) -> String {
            """
            \(Harness.quietUnpaid)

            [paid]
            channels = ["sms"]

            [retention]
            keep = "1s"

            \(Harness.smsAndOps(base))
            """
        }

        @Test func pruneDryRunCountsThenPruneDeletesOnlySettledHistory() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let shop = try h.shop()
            let now = Harness.nowMs()
            try shop.write { db in
                let insert = "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000001')"
                try db.execute(sql: insert, arguments: ["PAID", now])
                try db.execute(sql: insert, arguments: ["OPEN", now])
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P', 'PAID', 100, 'succeeded', ?)",
                               arguments: [now])
            }
            // PAID confirmed (delivered); OPEN tracked, its reminder 50 s away.
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            #expect(h.gateway.requestCount == 1)
            usleep(1_200_000)  // PAID settled for longer than keep
            func rows() throws -> [Int] {
                try shop.read { db in
                    try ["pw_events", "pw_outbox", "pw_attempts"].map { try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \($0)") ?? 0 }
                }
            }
            let before = try rows()
            // Each order: its tracked and status events; PAID: one message, one attempt.
            #expect(before == [4, 1, 1])

            let dry = try h.run(["prune", "--dry-run", "--config", h.configPath])
            #expect(dry.code == 0, "\(dry.err)")
            #expect(dry.out.contains("would prune the history of 1 order(s) final for longer than 1s: 2 timeline event(s), 1 outbox row(s), 1 delivery attempt(s)"),
                    "\(dry.out)")
            #expect(try rows() == before)

            let real = try h.run(["prune", "--config", h.configPath])
            #expect(real.code == 0, "\(real.err)")
            #expect(real.out.contains("pruned the history of 1 order(s) final for longer than 1s: 2 timeline event(s), 1 outbox row(s), 1 delivery attempt(s)"),
                    "\(real.out)")
            #expect(try rows() == [2, 0, 0])
            let again = try h.run(["prune", "--config", h.configPath])
            #expect(again.out.contains("pruned the history of 0 order(s)"), "\(again.out)")

            let show = try h.run(["orders", "show", "PAID", "--config", h.configPath])
            #expect(show.code == 0)
            #expect(show.out.contains("history pruned at ") && show.out.contains("(retention keep 1s)"), "\(show.out)")
            let json = try h.run(["orders", "show", "PAID", "--json", "--config", h.configPath])
            let body = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any] ?? [:]
            #expect((body["pruned"] as? [String: Any])?["keep"] as? String == "1s")
            #expect(try h.run(["orders", "show", "OPEN", "--config", h.configPath]).out.contains("pruned") == false)

            // Planned again (run --once), the pruned order is not confirmed a second time.
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            #expect(h.gateway.requestCount == 1)
        }
    }
}
