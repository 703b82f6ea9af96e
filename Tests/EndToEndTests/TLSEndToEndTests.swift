import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// The real binary over real TLS: `[channels.NAME] ca_file` read from the configuration and
    /// trusted for HTTPS and SMTP; without it the peer is refused and the message retried.
    @Suite(.serialized) struct TLSEndToEndTests {
        /// `[daemon]`, `[delivery]` and `[unpaid]` with a reminder due as soon as `remindable` is inserted.
        static func head(channel: String) -> String {
            """
            [daemon]
            poll_interval = "200ms"

            [delivery]
            timeout = "3s"
            retry_base = "100ms"
            retry_max = "300ms"
            max_attempts = 50

            [unpaid]
            hold = "1h"
            reminders = ["10m"]
            channels = ["\(channel)"]

            """
        }

        static func insertRemindable(_ h: Harness, id: String, column: String, address: String) throws {
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, \(column)) VALUES (?, 12900, ?, ?)",
                               arguments: [id, Harness.nowMs() - 11 * 60_000, address])
            }
        }

        static func outbox(_ h: Harness, _ order: String) throws -> (state: String, attempts: Int, error: String)? {
            try h.shop().read { db in
                try Row.fetchOne(db, sql: "SELECT state, attempts, last_error FROM pw_outbox WHERE order_id = ?", arguments: [order])
                    .map { ($0["state"], $0["attempts"], $0["last_error"] ?? "") }
            }
        }

        @Test func anHTTPSWebhookIsRefusedAndRetriedWithoutCAFileAndDeliveredWithIt() throws {
            let pki = try TestPKI.shared()
            let tls = try pki.serverContext()
            let secure = try FakeGateway(tls: tls)
            defer { secure.stop() }
            let h = try Harness { base in
                Self.head(channel: "sms") + """
                    [channels.sms]
                    provider = "webhook"
                    url = "\(secure.baseURL)/sms"
                    CA_FILE

                    [channels.ops]
                    provider = "webhook"
                    url = "\(base)/ops"
                    to = "oncall"
                    """
            }
            let template = try String(contentsOfFile: h.configPath, encoding: .utf8)
            try template.replacingOccurrences(of: "CA_FILE", with: "").write(toFile: h.configPath, atomically: true, encoding: .utf8)
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try Self.insertRemindable(h, id: "TLS1", column: "phone", address: "+8613800000000")

            // The system's CAs do not know the test CA: refused, retried, never dead.
            try h.start()
            #expect(try Harness.eventually(15) { (try Self.outbox(h, "TLS1")?.attempts ?? 0) >= 3 })
            #expect(h.stop() == 0)
            let refused = try #require(try Self.outbox(h, "TLS1"))
            #expect(refused.state == "pending")
            #expect(refused.error.contains("TLS verification failed, certificate refused"), "\(refused.error)")
            #expect(refused.error.contains("ca_file"))
            #expect(secure.requestCount == 0)
            #expect(tls.handshakes == 0)

            // ca_file names the test CA: the same message goes through.
            try template.replacingOccurrences(of: "CA_FILE", with: "ca_file = \"\(pki.caFile)\"")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            try h.start()
            #expect(try Harness.eventually(15) { try Self.outbox(h, "TLS1")?.state == "delivered" })
            #expect(h.stop() == 0)
            let request = try #require(secure.requests().first)
            #expect(request.path == "/sms")
            #expect(request.headers["idempotency-key"] == "pw1:TLS1:unpaid_reminder:1:sms")
            #expect(tls.handshakes >= 1)
        }

        @Test func theDaemonMailsOverSTARTTLSTrustingItsCAFile() throws {
            let pki = try TestPKI.shared()
            let tls = try pki.serverContext()
            let smtp = try FakeSMTPServer(credentials: ("shop", "smtp-tls-e2e-pwsecret"), tls: tls)
            defer { smtp.stop() }
            let h = try Harness { base in
                Self.head(channel: "email") + """
                    [channels.email]
                    provider = "smtp"
                    url = "\(smtp.url)"
                    from = "orders@shop.example"
                    username = "shop"
                    password_file = "PASSWORD_FILE"
                    starttls = "required"
                    ca_file = "\(pki.caFile)"

                    [channels.ops]
                    provider = "webhook"
                    url = "\(base)/ops"
                    to = "oncall"
                    """
            }
            let password = h.directory.appendingPathComponent("smtp.password").path
            try "smtp-tls-e2e-pwsecret\n".write(toFile: password, atomically: true, encoding: .utf8)
            #expect(chmod(password, 0o600) == 0)
            try String(contentsOfFile: h.configPath, encoding: .utf8).replacingOccurrences(of: "PASSWORD_FILE", with: password)
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try Self.insertRemindable(h, id: "MAILTLS", column: "email", address: "li@example.com")
            try h.start()
            #expect(try Harness.eventually(15) { try Self.outbox(h, "MAILTLS")?.state == "delivered" })
            #expect(h.stop() == 0)
            let message = try #require(smtp.messages().first)
            #expect(message.overTLS)
            #expect(message.authenticatedAs == "shop")
            #expect(smtp.logins().allSatisfy { $0.overTLS })
            let clear = smtp.clearTextReceived()
            #expect(clear.hasPrefix("EHLO ") && clear.hasSuffix("STARTTLS\r\n"), "\(clear)")
            #expect(!clear.contains("AUTH") && !clear.contains("MAIL FROM"))
            #expect(tls.handshakes >= 1)
        }
    }
}
