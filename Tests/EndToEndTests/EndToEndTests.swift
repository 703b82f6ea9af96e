import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// The real binary, a real SQLite file, a real HTTP gateway on 127.0.0.1, real time in seconds.
    @Suite(.serialized) struct EndToEndTests {
        static func config(_ base: String, concurrency: Int = 32, maxAttempts: Int = 8, ops: Bool = true, extra: String = "") -> String {
            """
            [daemon]
            poll_interval = "200ms"

            [delivery]
            concurrency = \(concurrency)
            max_attempts = \(maxAttempts)
            timeout = "3s"
            retry_base = "100ms"
            retry_max = "500ms"

            [unpaid]
            hold = "4s"
            reminders = ["1s", "2s"]
            channels = ["sms"]

            [paid]
            channels = ["sms"]

            [channels.sms]
            provider = "webhook"
            url = "\(base)/sms"

            \(ops ? "[channels.ops]\nprovider = \"webhook\"\nurl = \"\(base)/ops\"\nto = \"oncall\"" : "")
            \(extra)
            """
        }

        func kinds(_ requests: [FakeGateway.Request], order: String) -> [(kind: String, at: Int64, key: String)] {
            requests.compactMap { request in
                guard let json = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
                      json["order_id"] as? String == order, let kind = json["kind"] as? String else { return nil }
                return (kind, request.receivedAtMs, request.headers["idempotency-key"] ?? "")
            }
        }

        @Test func remindsOnScheduleCancelsOnTimeAndConfirmsPaymentsOnce() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try h.start()
            // A second daemon on the same SQLite file refuses to start.
            #expect(h.waitUntilStarted())
            let second = try h.run(["run", "--config", h.configPath])
            #expect(second.code == 1)
            #expect(second.err.contains("another paywatch is already running"))
            let shop = try h.shop()
            let created = Harness.nowMs()
            try shop.write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, locale) VALUES ('UNPAID', 12900, ?, '+8613800000000', 'zh-CN')", arguments: [created])
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('PAYS', 5000, ?, '+8613900000000')", arguments: [created])
            }
            // The PAYS customer pays at 1.5 s.
            usleep(1_500_000)
            let paidAt = Harness.nowMs()
            try shop.write { db in
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES ('P1', 'PAYS', 5000, 'succeeded', ?)", arguments: [paidAt])
            }
            let done = Harness.eventually(8) {
                kinds(h.gateway.requests(), order: "UNPAID").contains { $0.kind == "order_cancelled" }
            }
            #expect(done)
            usleep(500_000)  // anything wrongly sent after the cancel would show up now
            #expect(h.stop() == 0)  // SIGTERM: clean exit

            let unpaid = kinds(h.gateway.requests(), order: "UNPAID")
            #expect(unpaid.map(\.kind) == ["unpaid_reminder", "unpaid_reminder", "order_cancelled"])
            if unpaid.count == 3 {
                // Never early; on time within the poll interval.
                #expect(unpaid[0].at >= created + 1000)
                #expect(unpaid[1].at >= created + 2000)
                #expect(unpaid[2].at >= created + 4000)
                #expect(unpaid[2].at < created + 4000 + 1500)
                #expect(unpaid[0].key == "pw1:UNPAID:unpaid_reminder:1:sms")
            }
            let pays = kinds(h.gateway.requests(), order: "PAYS")
            // Reminded at 1 s, confirmed once, never cancelled, never reminded after paying (on a
            // heavily loaded machine the payment may land after 2 s: then step 2 went out before it).
            #expect(pays.first?.kind == "unpaid_reminder")
            #expect(pays.filter { $0.kind == "payment_confirmed" }.count == 1)
            #expect(!pays.contains { $0.kind == "order_cancelled" })
            let confirmedAt = pays.first { $0.kind == "payment_confirmed" }?.at ?? 0
            #expect(pays.filter { $0.kind == "unpaid_reminder" }.allSatisfy { $0.at < confirmedAt })
            if paidAt < created + 1900 {
                #expect(pays.map(\.kind) == ["unpaid_reminder", "payment_confirmed"])
            }

            let statuses = try shop.read { db in
                try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, status FROM orders").map { ($0["id"] as String, $0["status"] as String) })
            }
            #expect(statuses == ["UNPAID": "cancelled", "PAYS": "paid"])

            // `orders show` tells the story, with the phone masked.
            let show = try h.run(["orders", "show", "UNPAID", "--config", h.configPath])
            #expect(show.code == 0)
            #expect(show.out.contains("status: cancelled"))
            #expect(show.out.contains("+86*******0000"))
            #expect(!show.out.contains("+8613800000000"))
            #expect(show.out.contains("order_cancelled"))
            let json = try h.run(["orders", "show", "PAYS", "--json", "--config", h.configPath])
            let parsed = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
            #expect(parsed?["status"] as? String == "paid")
            #expect(parsed?["amount_paid"] as? Int == 5000)
            // `report` counts orders by status and messages by kind/channel/state.
            let report = try h.run(["report", "--since", "1h", "--json", "--config", h.configPath])
            #expect(report.code == 0)
            let counts = try JSONSerialization.jsonObject(with: Data(report.out.utf8)) as? [String: Any]
            #expect(counts?["ordersByStatus"] as? [String: Int] == ["cancelled": 1, "paid": 1])
            let rows = counts?["messages"] as? [[String: Any]] ?? []
            let delivered = rows.filter { $0["state"] as? String == "delivered" }.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }
            #expect(delivered == 5)
            #expect((counts?["attempts"] as? [String: Int])?["delivered"] == 5)
            let text = try h.run(["report", "--config", h.configPath])
            #expect(text.out.contains("unpaid_reminder"))
            #expect(text.out.contains("Backlog: none"))
            // The log names orders and events, and masks phones.
            let log = try String(contentsOfFile: h.stderrPath, encoding: .utf8)
            #expect(log.contains("order_id=UNPAID"))
            #expect(log.contains("event=order_cancelled"))
            #expect(!log.contains("+8613800000000"))
        }

        @Test func badConfigurationStopsTheStartWithExit78() throws {
            let h = try Harness { base in
                """
                [unpaid]
                hodl = "30m"
                """
            }
            let result = try h.run(["run", "--config", h.configPath])
            #expect(result.code == 78)
            #expect(result.err.contains("paywatch.toml:4: [unpaid] hodl: unknown key"))  // line 1-2 are [store]
            let missing = try h.run(["check-config", "--config", h.directory.appendingPathComponent("nope.toml").path])
            #expect(missing.code == 78)
            // A PostgreSQL url that cannot be read: a configuration error naming the line, never the password.
            let pg = h.directory.appendingPathComponent("pg.toml").path
            try "[store]\nurl = \"postgres://pw:pwsecret-in-url@127.0.0.1:99999/pw\"\n[channels.ops]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:9/ops\"\n"
                .write(toFile: pg, atomically: true, encoding: .utf8)
            let postgres = try h.run(["run", "--config", pg])
            #expect(postgres.code == 78)
            #expect(postgres.err.contains("pg.toml:2: [store] url:"))
            #expect(!postgres.err.contains("pwsecret"))
        }

        @Test func checkConfigAndUnknownOrders() throws {
            let h = try Harness { Self.config($0) }
            let check = try h.run(["check-config", "--config", h.configPath])
            #expect(check.code == 0)
            #expect(check.out.contains("hold = \"4s\""))
            // Inspecting before the database exists says so, and creates nothing.
            let early = try h.run(["orders", "list", "--config", h.configPath])
            #expect(early.code == 1)
            #expect(early.err.contains("no database at"))
            #expect(!FileManager.default.fileExists(atPath: h.dbPath))
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let unknown = try h.run(["orders", "show", "NOPE", "--config", h.configPath])
            #expect(unknown.code != 0)
            #expect(unknown.err.contains("no order with id \"NOPE\""))
            let list = try h.run(["orders", "list", "--status", "bogus", "--config", h.configPath])
            #expect(list.code != 0)
        }

        @Test func withoutAnOpsChannelDeadMessagesAreKeptAndLogged() throws {
            let h = try Harness { Self.config($0, ops: false) }
            h.gateway.setResponder { _ in FakeGateway.Response(status: 400) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, phone) VALUES ('NOOPS', 100, ?, ?, '+8613800000000')",
                               arguments: [Harness.nowMs() - 2_500, Harness.nowMs() + 600_000])
            }
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            let rows = try h.shop().read { db in
                try Row.fetchAll(db, sql: "SELECT kind, state, last_error FROM pw_outbox ORDER BY id").map {
                    ($0["kind"] as String, $0["state"] as String, $0["last_error"] as String?)
                }
            }
            #expect(rows.map(\.0) == ["unpaid_reminder", "delivery_dead"])
            #expect(rows.allSatisfy { $0.1 == "dead" })
            #expect(rows.last?.2 == "no [channels.ops] section is configured")
        }

        @Test func sendTestSendsOneRealMessage() throws {
            let h = try Harness { Self.config($0) }
            let sent = try h.run(["send-test", "--channel", "sms", "--to", "+8613800000000", "--config", h.configPath])
            #expect(sent.code == 0)
            #expect(sent.out.contains("HTTP 200"))
            #expect(sent.out.contains("+86*******0000"))
            let request = try #require(h.gateway.requests().first)
            #expect(request.path == "/sms")
            #expect(request.bodyString.contains("\"kind\":\"test\""))
            #expect(request.headers["idempotency-key"]?.hasPrefix("pw1:test:") == true)
            let unknown = try h.run(["send-test", "--channel", "fax", "--to", "x", "--config", h.configPath])
            #expect(unknown.code == 78)
            h.gateway.setResponder { _ in FakeGateway.Response(status: 401, body: "bad token") }
            let refused = try h.run(["send-test", "--channel", "sms", "--to", "+8613800000000", "--config", h.configPath])
            #expect(refused.code == 1)
            #expect(refused.err.contains("HTTP 401"))
        }

        @Test func sendTestRendersAKindWithTheShopsTemplatesForASampleOrder() throws {
            let h = try Harness { Self.config($0) }
            h.gateway.setResponder { _ in FakeGateway.Response(status: 200, body: #"{"id":"m-1"}"#) }
            let sent = try h.run(["send-test", "--channel", "sms", "--to", "+8613800000000", "--kind", "unpaid_reminder",
                                  "--locale", "en", "--config", h.configPath])
            #expect(sent.code == 0, "\(sent.err)")
            #expect(sent.out.contains("provider=webhook"))
            #expect(sent.out.contains(#"answer: {"id":"m-1"}"#))
            let request = try #require(h.gateway.requests().first)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
            #expect(body["kind"] as? String == "unpaid_reminder")
            #expect(body["order_id"] as? String == "TEST-0001")
            #expect(body["amount_due"] as? Int == 12900)
            #expect((body["body"] as? String)?.contains("TEST-0001") == true)
            #expect((body["body"] as? String)?.contains("129.00") == true)
            let zh = try h.run(["send-test", "--channel", "sms", "--to", "+8613800000000", "--kind", "payment_confirmed",
                                "--locale", "zh-CN", "--config", h.configPath])
            #expect(zh.code == 0)
            let chinese = try #require(h.gateway.requests().last)
            #expect(chinese.bodyString.contains("\"kind\":\"payment_confirmed\""))
            #expect(chinese.bodyString.unicodeScalars.contains { $0.value >= 0x4E00 && $0.value <= 0x9FFF })
            let unknown = try h.run(["send-test", "--channel", "sms", "--to", "x", "--kind", "nonsense", "--config", h.configPath])
            #expect(unknown.code == 64)
            #expect(unknown.err.contains("unknown kind \"nonsense\""))
        }

        /// send-test through a Twilio channel: the binary reads the token from its file, sends the
        /// form Twilio documents, and prints Twilio's error without the token.
        @Test func sendTestGoesThroughTwilio() throws {
            let h = try Harness { Self.config($0) }
            let token = h.directory.appendingPathComponent("twilio.token").path
            try "tok-e2e-pwsecret\n".write(toFile: token, atomically: true, encoding: .utf8)
            #expect(chmod(token, 0o600) == 0)
            try (try String(contentsOfFile: h.configPath, encoding: .utf8) + """

                [channels.texts]
                provider = "twilio"
                account_sid = "AC9"
                auth_token_file = "\(token)"
                from = "+15005550006"
                base_url = "\(h.gateway.baseURL)"
                """).write(toFile: h.configPath, atomically: true, encoding: .utf8)
            h.gateway.setResponder { _ in FakeGateway.Response(status: 201, body: #"{"sid": "SM1"}"#) }
            let sent = try h.run(["send-test", "--channel", "texts", "--to", "+8613800000000", "--config", h.configPath])
            #expect(sent.code == 0, "\(sent.err)")
            #expect(sent.out.contains("provider=twilio"))
            let request = try #require(h.gateway.requests().first)
            #expect(request.path == "/2010-04-01/Accounts/AC9/Messages.json")
            #expect(request.headers["authorization"] == "Basic " + Data("AC9:tok-e2e-pwsecret".utf8).base64EncodedString())
            #expect(request.bodyString.hasPrefix("To=%2B8613800000000&From=%2B15005550006&Body="))
            h.gateway.setResponder { request in
                // An answer that echoes the credentials back: the output must not show them.
                FakeGateway.Response(status: 400, body: """
                    {"code": 21211, "message": "Invalid 'To' Phone Number (\(request.headers["authorization"] ?? ""))", "status": 400}
                    """)
            }
            let refused = try h.run(["send-test", "--channel", "texts", "--to", "+8613800000000", "--config", h.configPath])
            #expect(refused.code == 1)
            #expect(refused.err.contains("HTTP 400: Twilio error 21211: Invalid 'To' Phone Number (Basic ****)"), "\(refused.err)")
            #expect(!(refused.out + refused.err).contains("tok-e2e-pwsecret"))
            #expect(!(refused.out + refused.err).contains(Data("AC9:tok-e2e-pwsecret".utf8).base64EncodedString()))
        }

        /// The daemon e-mails through an SMTP server: a reminder decided for an order arrives as a
        /// MIME message with its envelope, AUTH as configured, the password read from its file.
        @Test func theDaemonEmailsThroughSMTP() throws {
            let smtp = try FakeSMTPServer(credentials: ("shop", "smtp-e2e-pwsecret"))
            defer { smtp.stop() }
            let h = try Harness { base in
                """
                [daemon]
                poll_interval = "200ms"
                [unpaid]
                hold = "1h"
                reminders = ["10m"]
                channels = ["email"]
                [channels.email]
                provider = "smtp"
                url = "\(smtp.url)"
                from = "orders@shop.example"
                from_name = "Shop 商店"
                username = "shop"
                password_file = "PASSWORD_FILE"
                \(Harness.smsAndOps(base))
                """
            }
            let password = h.directory.appendingPathComponent("smtp.password").path
            try "smtp-e2e-pwsecret\n".write(toFile: password, atomically: true, encoding: .utf8)
            #expect(chmod(password, 0o600) == 0)
            try String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(of: "PASSWORD_FILE", with: password)
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, email, locale) VALUES ('MAIL1', 12900, ?, 'li@example.com', 'zh-CN')",
                               arguments: [Harness.nowMs() - 11 * 60_000])
            }
            try h.start()
            #expect(Harness.eventually(10) { !smtp.messages().isEmpty })
            #expect(h.stop() == 0)
            let message = try #require(smtp.messages().first)
            #expect(message.mailFrom == "orders@shop.example")
            #expect(message.recipients == ["li@example.com"])
            #expect(message.authenticatedAs == "shop")
            #expect(message.text.contains("X-Paywatch-Key: pw1:MAIL1:unpaid_reminder:1:email"))
            #expect(message.text.contains("Subject: =?UTF-8?B?"))
            #expect(message.text.contains("MIME-Version: 1.0"))
            #expect(!h.log.contains("smtp-e2e-pwsecret"))
            let state = try h.shop().read { try String.fetchOne($0, sql: "SELECT state FROM pw_outbox WHERE order_id = 'MAIL1'") }
            #expect(state == "delivered")
        }

        @Test func runOnceDeliversWhatIsDueAndExits() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('OLD', 100, ?, '+8613800000000')", arguments: [Harness.nowMs() - 60_000])
            }
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('FRESH', 100, ?, '+8613800000000')", arguments: [Harness.nowMs()])
            }
            let result = try h.run(["run", "--once", "--config", h.configPath])
            #expect(result.code == 0)
            // First seen after its hold: cancelled, with one notice (no burst of missed reminders).
            #expect(kinds(h.gateway.requests(), order: "OLD").map(\.kind) == ["order_cancelled"])
            // Nothing due yet for FRESH; `orders show` names the next planned action.
            #expect(kinds(h.gateway.requests(), order: "FRESH").isEmpty)
            let show = try h.run(["orders", "show", "FRESH", "--config", h.configPath])
            #expect(show.out.contains("status: unpaid"))
            #expect(show.out.contains("unpaid_reminder step 1 on sms"))
            // SIGINT stops the service cleanly too.
            try h.start()
            #expect(h.waitUntilStarted())
            #expect(h.stop(signal: SIGINT) == 0)
        }

        @Test func retriesWithTheSameKeyThenDeadLettersToOps() throws {
            let h = try Harness { Self.config($0, maxAttempts: 3) }
            let counter = Counter()
            h.gateway.setResponder { request in
                if request.path == "/ops" { return FakeGateway.Response(status: 200) }
                if request.bodyString.contains("\"order_id\":\"BAD\"") { return FakeGateway.Response(status: 400, body: "{\"error\":\"invalid number\"}") }
                // FLAKY: 503, then 429 with Retry-After, then accepted.
                switch counter.increment() {
                case 1: return FakeGateway.Response(status: 503)
                case 2: return FakeGateway.Response(status: 429, headers: ["Retry-After": "1"])
                default: return FakeGateway.Response(status: 200)
                }
            }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let shop = try h.shop()
            // Both reminder steps have passed: one message per order (step 2).
            let created = Harness.nowMs() - 2_500
            try shop.write { db in
                for id in ["FLAKY", "BAD"] {
                    try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, phone) VALUES (?, 100, ?, ?, '+8613800000000')",
                                   arguments: [id, created, created + 600_000])
                }
            }
            try h.start()
            let settled = try Harness.eventually(15) {
                try shop.read { db in
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_outbox WHERE state = 'pending'") == 0
                        && Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_outbox WHERE kind = 'delivery_dead' AND state = 'delivered'") == 1
                }
            }
            #expect(settled)
            #expect(h.stop() == 0)

            let flaky = kinds(h.gateway.requests(), order: "FLAKY")
            #expect(flaky.count == 3)
            #expect(Set(flaky.map(\.key)) == ["pw1:FLAKY:unpaid_reminder:2:sms"])
            if flaky.count == 3 {
                #expect(flaky[2].at - flaky[1].at >= 1000)  // Retry-After: 1 honoured
            }
            let bad = kinds(h.gateway.requests(), order: "BAD")
            #expect(bad.map(\.kind) == ["unpaid_reminder", "delivery_dead"])  // one attempt, then ops is told
            let opsBody = h.gateway.requests().first { $0.path == "/ops" }?.bodyString ?? ""
            #expect(opsBody.contains("\"dead_idempotency_key\":\"pw1:BAD:unpaid_reminder:2:sms\""))
            #expect(opsBody.contains("\"to\":\"oncall\""))

            let show = try h.run(["orders", "show", "FLAKY", "--config", h.configPath])
            #expect(show.out.contains("attempt 1"))
            #expect(show.out.contains("HTTP 503"))
            #expect(show.out.contains("HTTP 429"))
            #expect(show.out.contains("delivered"))
            let badShow = try h.run(["orders", "show", "BAD", "--config", h.configPath])
            #expect(badShow.out.contains("dead"))
            #expect(badShow.out.contains("HTTP 400"))
        }
        /// Orders whose (collapsed) reminder is due now, with an hour before they expire.
        func insertDueOrders(_ shop: DatabaseQueue, prefix: String, count: Int) throws {
            let created = Harness.nowMs() - 2_500
            try shop.write { db in
                for i in 0..<count {
                    try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, phone) VALUES (?, 100, ?, ?, '+8613800000000')",
                                   arguments: ["\(prefix)\(i)", created, created + 3_600_000])
                }
            }
        }

        @Test func anIdleDaemonUsesNoCPUAfterABurst() throws {
            let h = try Harness { Self.config($0) }
            // The first 15 answers fail: retries, timers and every wake-up path get used (fewer than
            // the default breaker_failures, 20, which would pause the channel for 30 s).
            let counter = Counter()
            h.gateway.setResponder { _ in FakeGateway.Response(status: counter.increment() <= 15 ? 503 : 200) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let shop = try h.shop()
            try insertDueOrders(shop, prefix: "B", count: 300)
            // 200 open orders with nothing due for an hour.
            try shop.write { db in
                for i in 0..<200 {
                    try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, phone) VALUES (?, 100, ?, ?, '+8613800000000')",
                                   arguments: ["O\(i)", Harness.nowMs() + 3_600_000, Harness.nowMs() + 7_200_000])
                }
            }
            try h.start()
            #expect(try h.waitUntilAllDelivered(300))
            sleep(1)
            let pid = try #require(h.process?.processIdentifier)
            let before = try cpuSeconds(pid)
            sleep(4)
            let used = try cpuSeconds(pid) - before
            // Idle with 200 open orders and a 200 ms poll: a few hundredths of a second at most.
            // (The loop that spun used a whole core: 4 s here.)
            #expect(used < 0.4, "idle daemon used \(used) CPU-seconds in 4 s")
            #expect(h.stop() == 0)
        }

        /// utime + stime of a process, from /proc/PID/stat.
        func cpuSeconds(_ pid: Int32) throws -> Double {
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            // Fields after the command name (which is in parentheses and may hold spaces).
            let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
            let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)  // fields 14 and 15 of the whole line
            return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        }

        /// A running daemon with `count` reminders due at once, its gateway answering after `delayMs`;
        /// returns once `sent` of them reached the gateway.
        func burst(concurrency: Int, delayMs: Int, count: Int, sent: Int) throws -> (Harness, DatabaseQueue) {
            let h = try Harness { Self.config($0, concurrency: concurrency) }
            h.gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: delayMs) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let shop = try h.shop()
            try insertDueOrders(shop, prefix: "M", count: count)
            try h.start()
            #expect(Harness.eventually(20) { h.gateway.requestCount >= sent })
            return (h, shop)
        }

        @Test func killNineMidBurstRepeatsOnlyWhatWasInFlightOrUncommitted() throws {
            let (h, shop) = try burst(concurrency: 32, delayMs: 30, count: 600, sent: 200)
            _ = h.stop(signal: SIGKILL)
            let beforeRestart = h.gateway.requestCount
            #expect(beforeRestart < 600)
            try h.start()
            #expect(try h.waitUntilAllDelivered(600))
            #expect(h.stop() == 0)
            let keys = h.gateway.requests().compactMap { $0.headers["idempotency-key"] }
            let outboxKeys = try Set(shop.read { try String.fetchAll($0, sql: "SELECT idempotency_key FROM pw_outbox") })
            #expect(outboxKeys.count == 600)
            #expect(Set(keys) == outboxKeys)
            // Every decided message arrived, only with its original key; sent again were only the
            // ones in flight (≤ 32) or completed but not yet committed (≤ 32).
            let repeats = keys.count - Set(keys).count
            #expect(repeats <= 64, "\(repeats) messages were sent twice")
        }

        @Test func sigtermWithTransfersInFlightLosesNothingAndRepeatsNothingCompleted() throws {
            let (h, shop) = try burst(concurrency: 8, delayMs: 500, count: 40, sent: 10)
            #expect(h.stop() == 0)  // SIGTERM: the 8 transfers in flight finish first
            let received = h.gateway.requestCount
            #expect(received < 40)
            let rows = try shop.read { db in
                try Row.fetchAll(db, sql: "SELECT state, attempts, in_flight FROM pw_outbox").map {
                    ($0["state"] as String, $0["attempts"] as Int, $0["in_flight"] as Int)
                }
            }
            // Everything that reached the gateway is recorded as delivered; the rest is due, untouched.
            #expect(rows.filter { $0.0 == "delivered" }.count == received)
            #expect(rows.filter { $0.0 == "pending" }.allSatisfy { $0.1 == 0 && $0.2 == 0 }, "\(rows.filter { $0.0 == "pending" && ($0.1 != 0 || $0.2 != 0) }) \((try? String(contentsOfFile: h.stderrPath, encoding: .utf8)) ?? "")")
            // A clean stop leaves no lease behind, and the log named the owner of its leases.
            #expect(try shop.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE lease_owner IS NOT NULL") } == 0)
            #expect(((try? String(contentsOfFile: h.stderrPath, encoding: .utf8)) ?? "").contains("lease_owner"))
            try h.start()
            #expect(try h.waitUntilAllDelivered(40))
            #expect(h.stop() == 0)
            let keys = h.gateway.requests().compactMap { $0.headers["idempotency-key"] }
            #expect(keys.count == 40)
            #expect(Set(keys).count == 40)  // nothing that had completed was sent again
        }
    }
}
