import Foundation
import GRDB
import PaywatchCore
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
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(legacy.utf8)) as? NSDictionary)
        let received = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? NSDictionary)
        #expect(received == expected)
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
