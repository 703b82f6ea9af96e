import Foundation
import GRDB
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// A gateway-like provider that refuses one number for good, as Twilio does with 21211.
struct RefusesANumber: DeliveryProvider {
    let name = "refuses"
    let inner: WebhookProvider

    func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        try inner.request(for: message)
    }

    func verdict(for response: HTTPResponse) -> ProviderVerdict {
        if response.status == 400, response.body.contains("21211") { return .dead(reason: "invalid number (21211)", suppress: true) }
        return httpVerdict(response)
    }
}

/// The suppression list: addresses a provider refused for good, and the shop's unsubscribes.
@Suite(.serialized) struct SuppressionTests {
    @Test func aRefusedAddressIsSuppressedAndLaterMessagesToItAreNotSent() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { request in
            request.bodyString.contains("+8613900000000") ? .init(status: 400, body: #"{"code":21211}"#) : .init(status: 200)
        }
        let daemon = try await InProcessDaemon(providers: ["sms": RefusesANumber(inner: WebhookProvider(url: gateway.baseURL + "/sms"))]) {
            PaywatchServiceTests.config($0)
        }
        let created = daemon.clock.now() - 11 * 60_000
        try await daemon.shop().write { db in
            for (id, phone) in [("BAD", "+8613900000000"), ("GOOD", "+8613800000000")] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, ?)",
                               arguments: [id, created, phone])
            }
            // The shop's own unsubscribe.
            try db.execute(sql: "INSERT INTO suppressions(channel, address, reason, created_at) VALUES ('sms', '+8613700000000', 'unsubscribed', ?)",
                           arguments: [created])
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('UNSUB', 100, ?, '+8613700000000')",
                           arguments: [created])
        }
        daemon.run()
        #expect(await InProcessDaemon.eventually(10) {
            (try? daemon.count("SELECT COUNT(*) FROM suppressions WHERE address = '+8613900000000' AND channel = 'sms'")) == 1
        })
        // Another order with the refused number: its reminder is not sent.
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('AGAIN', 100, ?, '+8613900000000')",
                           arguments: [created])
        }
        daemon.clock.advance(by: 5_000)
        #expect(await InProcessDaemon.eventually(10) {
            (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE order_id IN ('AGAIN', 'UNSUB') AND state = 'suppressed'")) == 2
        })
        try await daemon.stop()
        let sent = gateway.requests().map(\.bodyString)
        #expect(sent.filter { $0.contains("\"order_id\":\"GOOD\"") }.count == 1)
        #expect(sent.filter { $0.contains("\"order_id\":\"BAD\"") }.count == 1)
        #expect(!sent.contains { $0.contains("\"order_id\":\"AGAIN\"") || $0.contains("\"order_id\":\"UNSUB\"") })
        // The timelines say why, with the address masked.
        let events = try await daemon.shop().read {
            try String.fetchAll($0, sql: "SELECT order_id || ': ' || event || ' ' || detail FROM pw_events WHERE event IN ('suppressed', 'address_suppressed') ORDER BY order_id")
        }
        #expect(events.contains { $0.hasPrefix("AGAIN: suppressed unpaid_reminder step 1 on sms not sent: +86*******0000 is suppressed (invalid number (21211))") })
        #expect(events.contains { $0.hasPrefix("BAD: address_suppressed +86*******0000 on sms: invalid number (21211)") })
        #expect(events.contains { $0.hasPrefix("UNSUB: suppressed") && $0.hasSuffix("(unsubscribed)") })
        #expect(!events.joined().contains("+8613900000000"))
    }
}
