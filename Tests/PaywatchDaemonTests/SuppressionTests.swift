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

    /// `fallback = true`: one channel per decision, the first with an address that is not
    /// suppressed; a channel that refuses the message for good hands it to the next.
    @Test func fallbackSendsOnTheFirstUsableChannelAndMovesOnWhenRefused() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { request in
            request.path == "/sms" && request.bodyString.contains("+8613900000000") ? .init(status: 400, body: #"{"code":21211}"#) : .init(status: 200)
        }
        let daemon = try await InProcessDaemon(providers: ["sms": RefusesANumber(inner: WebhookProvider(url: gateway.baseURL + "/sms"))]) {
            _ in PaywatchServiceTests.config(gateway.baseURL, channels: ["sms", "email"])
                .replacingOccurrences(of: "channels = [\"sms\", \"email\"]\n", with: "channels = [\"sms\", \"email\"]\nfallback = true\n")
        }
        let created = daemon.clock.now() - 11 * 60_000
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO suppressions(channel, address, reason, created_at) VALUES ('sms', '+8613700000000', 'unsubscribed', ?)",
                           arguments: [created])
            for (id, phone, email) in [("BOTH", "+8613800000000", "both@example.com"), ("UNSUB", "+8613700000000", "unsub@example.com"),
                                       ("REFUSED", "+8613900000000", "refused@example.com"), ("ONLY", "+8613700000000", nil)] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES (?, 100, ?, ?, ?)",
                               arguments: [id, created, phone, email])
            }
        }
        daemon.run()
        func sent(_ id: String) -> [String] {
            gateway.requests().filter { $0.path != "/ops" && $0.bodyString.contains("\"order_id\":\"\(id)\"") }.map(\.path)
        }
        #expect(await InProcessDaemon.eventually(10) { sent("REFUSED") == ["/sms", "/email"] })
        #expect(await InProcessDaemon.eventually(10) { sent("BOTH") == ["/sms"] && sent("UNSUB") == ["/email"] })
        // The second reminder: the refused number is suppressed now, so e-mail at once.
        daemon.clock.advance(by: 20 * 60_000)
        #expect(await InProcessDaemon.eventually(10) { sent("REFUSED") == ["/sms", "/email", "/email"] && sent("BOTH") == ["/sms", "/sms"] })
        try await daemon.stop()
        #expect(sent("ONLY").isEmpty)
        // Ops hears of the dead sms once, as of any dead message.
        #expect(gateway.requests().filter { $0.path == "/ops" }.map(\.bodyString).filter { $0.contains("REFUSED") }.count == 1)
        #expect(sent("UNSUB") == ["/email", "/email"])
        let events = try await daemon.shop().read {
            try String.fetchAll($0, sql: "SELECT order_id || ': ' || event || ' ' || detail FROM pw_events WHERE event IN ('fallback', 'unpaid_reminder') ORDER BY order_id, id")
        }
        #expect(events.contains("UNSUB: fallback unpaid_reminder step 1 on email: sms (+86*******0000 is suppressed: unsubscribed)"))
        #expect(events.contains("REFUSED: fallback unpaid_reminder step 1 on sms (it is dead): sent on email instead"))
        #expect(events.contains("REFUSED: fallback unpaid_reminder step 2 on email: sms (+86*******0000 is suppressed: invalid number (21211))"))
        #expect(events.contains("ONLY: unpaid_reminder step 1 decided; no usable address: sms (+86*******0000 is suppressed: unsubscribed)"))
        #expect(!events.joined().contains("+8613900000000") && !events.joined().contains("+8613700000000"))
        // Every step of BOTH went to sms alone: e-mail was never decided.
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE order_id = 'BOTH' AND channel = 'email'") == 0)
    }
}
