import Foundation
import GRDB
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// Messages are stored as their content and sent in the provider's format; rows an earlier release
/// stored as webhook JSON are still sent as they were decided.
@Suite(.serialized) struct PayloadDeliveryTests {
    @Test func aMessageStoredAsWebhookJSONByAnEarlierReleaseIsSentAsDecided() async throws {
        let daemon = try await InProcessDaemon { PaywatchServiceTests.config($0) }
        let legacy = """
            {"idempotency_key":"pw1:OLD:unpaid_reminder:1:sms","kind":"unpaid_reminder","channel":"sms","order_id":"OLD",\
            "to":"+8613800000000","subject":"Pay","body":"Please pay order OLD","locale":"en","amount_due":12900,"currency":"CNY"}
            """
        let now = daemon.clock.now()
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('OLD', 12900, ?, '+8613800000000')",
                           arguments: [now])
            try db.execute(sql: """
                INSERT INTO pw_outbox(idempotency_key, order_id, kind, step, channel, recipient, body, due_at, created_at, updated_at)
                VALUES ('pw1:OLD:unpaid_reminder:1:sms', 'OLD', 'unpaid_reminder', 1, 'sms', '+8613800000000', ?, ?, ?, ?)
                """, arguments: [legacy, now, now, now])
        }
        daemon.run()
        #expect(await InProcessDaemon.eventually(10) { daemon.gateway.requests().contains { $0.path == "/sms" } })
        try await daemon.stop()
        let sent = try #require(daemon.gateway.requests().first { $0.path == "/sms" })
        // Byte for byte, as it was decided.
        #expect(sent.bodyString == legacy)
        #expect(sent.headers["idempotency-key"] ?? sent.headers["Idempotency-Key"] == "pw1:OLD:unpaid_reminder:1:sms")
    }

    @Test func aNewMessageIsStoredAsItsContent() async throws {
        let daemon = try await InProcessDaemon { PaywatchServiceTests.config($0) }
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('NEW', 12900, ?, '+8613800000000')",
                           arguments: [daemon.clock.now() - 11 * 60_000])
        }
        daemon.run()
        #expect(await InProcessDaemon.eventually(10) { daemon.gateway.requests().contains { $0.path == "/sms" } })
        try await daemon.stop()
        let stored = try await daemon.shop().read { try String.fetchOne($0, sql: "SELECT body FROM pw_outbox WHERE order_id = 'NEW'") }
        let payload = try #require(stored.flatMap(MessagePayload.decode))
        #expect(stored?.hasPrefix("{\"v\":1,") == true)
        #expect(payload.fact("amount_due") == .number(12900))
        let sent = try #require(daemon.gateway.requests().first { $0.path == "/sms" })
        #expect(sent.bodyString.contains("\"body\":\"\(payload.text.replacingOccurrences(of: "\n", with: "\\n"))\""))
    }
}

/// A provider that is not ready for its first `refusals` requests (as FCM before its access token).
final class NotReadyYet: DeliveryProvider, @unchecked Sendable {
    let name = "notready"
    private let lock = NSLock()
    private var refusals: Int
    private let inner: WebhookProvider

    init(refusals: Int, url: String) {
        self.refusals = refusals
        inner = WebhookProvider(url: url)
    }

    func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        let refuse = lock.withLock { () -> Bool in
            refusals -= 1
            return refusals >= 0
        }
        if refuse { throw ProviderError.transient("waiting for an access token") }
        return try inner.request(for: message)
    }

    func verdict(for response: HTTPResponse) -> ProviderVerdict { inner.verdict(for: response) }
}

extension PayloadDeliveryTests {
    @Test func aProviderNotReadyYetDefersItsMessagesWithoutSpendingAttempts() async throws {
        let gateway = try PaywatchTestSupport.FakeGateway()
        defer { gateway.stop() }
        let daemon = try await InProcessDaemon(providers: ["sms": NotReadyYet(refusals: 2, url: gateway.baseURL + "/sms")]) {
            PaywatchServiceTests.config($0)
        }
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('T1', 100, ?, '+8613800000000')",
                           arguments: [daemon.clock.now() - 11 * 60_000])
        }
        daemon.run()
        // Refused: deferred a few seconds, no attempt spent, the reason kept.
        #expect(await InProcessDaemon.eventually(5) {
            (try? daemon.count("""
                SELECT COUNT(*) FROM pw_outbox WHERE order_id = 'T1' AND attempts = 0 AND state = 'pending'
                  AND last_error LIKE '%waiting for an access token%'
                """)) == 1
        })
        for _ in 0..<20 where gateway.requests().isEmpty {
            daemon.clock.advance(by: 1_000)
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(await InProcessDaemon.eventually(5) {
            (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE order_id = 'T1' AND state = 'delivered' AND attempts = 1")) == 1
        })
        try await daemon.stop()
        #expect(gateway.requests().count == 1)
        // Only the real attempt is an attempt row.
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_attempts") == 1)
    }
}
