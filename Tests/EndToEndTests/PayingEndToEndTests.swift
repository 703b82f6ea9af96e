import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// Stalled `paying` attempts with the real binary and a loopback fake payment provider that
    /// answers the reconcile GETs.
    @Suite(.serialized) struct PayingEndToEndTests {
        static func config(_ base: String, tokenFile: String) -> String {
            """
            \(Harness.quietUnpaid)

            [paying]
            stall_after = "1s"
            escalations = 2
            reconcile_url = "\(base)/psp/v1/payments/{provider_ref}"
            reconcile_status_field = "data.status"
            token_file = "\(tokenFile)"

            \(Harness.smsAndOps(base))
            """
        }

        @Test func theProviderSettlesAStalledPaymentAndAnUnansweredOneGoesToOps() throws {
            let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("psp-\(UUID().uuidString).token").path
            try "psp-pwsecret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: tokenFile) }
            let h = try Harness { Self.config($0, tokenFile: tokenFile) }
            h.gateway.setResponder { request in
                guard request.path.hasPrefix("/psp/") else { return FakeGateway.Response() }
                if request.path.hasSuffix("/ref%2Fok") {
                    return FakeGateway.Response(body: #"{"data":{"status":"TRADE_SUCCESS","id":"ref/ok"}}"#)
                }
                return FakeGateway.Response(status: 500, body: #"{"error":"try later"}"#)
            }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let created = Harness.nowMs()
            try h.shop().write { db in
                for (order, ref) in [("OK", "ref/ok"), ("BAD", "ref-bad")] {
                    try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 12900, ?, '+8613800000000')",
                                   arguments: [order, created])
                    try db.execute(sql: """
                        INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES (?, ?, 12900, 'pending', ?, ?)
                        """, arguments: ["P-" + order, order, ref, created])
                }
            }
            try h.start()
            let tests = EndToEndTests()
            #expect(Harness.eventually(15) {
                tests.kinds(h.gateway.requests(), order: "OK").contains { $0.kind == "payment_confirmed" }
                    && tests.kinds(h.gateway.requests(), order: "BAD").filter { $0.kind == "paying_stalled" }.count == 2
            })
            Thread.sleep(forTimeInterval: 0.5)
            #expect(h.stop() == 0)

            let requests = h.gateway.requests()
            let asks = requests.filter { $0.path.hasPrefix("/psp/") }
            #expect(asks.allSatisfy { $0.method == "GET" && $0.headers["authorization"] == "Bearer psp-pwsecret" })
            // OK: asked once, settled; BAD: asked at each of its 2 escalations, never more.
            #expect(asks.filter { $0.path.hasSuffix("/ref%2Fok") }.count == 1)
            #expect(asks.filter { $0.path.hasSuffix("/ref-bad") }.count == 2)
            #expect(tests.kinds(requests, order: "OK").map(\.kind) == ["payment_confirmed"])
            let ops = requests.filter { $0.path == "/ops" }
            #expect(ops.count == 2)
            #expect(ops.allSatisfy { $0.bodyString.contains("\"kind\":\"paying_stalled\"") && $0.bodyString.contains("\"order_id\":\"BAD\"") })

            let status = try h.shop().read { db in
                try String.fetchAll(db, sql: "SELECT status FROM payments ORDER BY id")
            }
            #expect(status == ["pending", "succeeded"])  // P-BAD, P-OK
            let show = try h.run(["orders", "show", "OK", "--config", h.configPath])
            #expect(show.out.contains("status: paid"))
            #expect(show.out.contains("reconciled"))
            #expect(show.out.contains("TRADE_SUCCESS"))
            let bad = try h.run(["orders", "show", "BAD", "--config", h.configPath])
            #expect(bad.out.contains("status: paying"))
            #expect(bad.out.contains("reconcile_unresolved"))
            #expect(bad.out.contains("HTTP 500"))
            // The token never reaches the log.
            let log = (try? String(contentsOfFile: h.stderrPath, encoding: .utf8)) ?? ""
            #expect(!log.contains("psp-pwsecret"))
            #expect(log.contains("reconciled"))
        }

        @Test func aBadHeadersFileStopsTheStart() throws {
            let h = try Harness { base in
                """
                [paying]
                reconcile_url = "\(base)/psp/{provider_ref}"
                headers_file = "/nonexistent/paywatch-headers"

                [channels.ops]
                provider = "webhook"
                url = "\(base)/ops"
                """
            }
            let checked = try h.run(["check-config", "--config", h.configPath])
            #expect(checked.code == 78)
            #expect(checked.err.contains("[paying] headers_file"))
        }
    }
}
