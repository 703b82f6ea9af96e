import Foundation
import GRDB
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// Rates, the circuit breaker and the daily cap through the whole daemon: a real SQLite file, a
/// real loopback gateway, a manual clock.
@Suite(.serialized) struct LimitsTests {
    static func config(_ base: String, sms: String = "", delivery: String = "") -> String {
        """
        [daemon]
        poll_interval = "5s"
        [delivery]
        concurrency = 1
        timeout = "10s"
        \(delivery)
        [unpaid]
        hold = "2h"
        reminders = ["10m", "30m"]
        channels = ["sms"]
        [channels.ops]
        provider = "webhook"
        url = "\(base)/ops"
        to = "oncall"
        [channels.sms]
        provider = "webhook"
        url = "\(base)/sms"
        \(sms)

        """
    }

    @Test func theLimitsReachTheLanes() async throws {
        let daemon = try await InProcessDaemon { Self.config($0, sms: "rate = \"600/m\"\nbreaker_failures = 4\nbreaker_probe = \"1m\"") }
        let limits = DeliveryEngine.configuration(daemon.service.runtime, finishWhenIdle: false).laneLimits
        #expect(limits["sms"] == LaneLimits(rate: TokenBucket(count: 600, periodMs: 60_000, burst: 10), breakerFailures: 4,
                                            breakerProbeMs: 60_000))
        #expect(limits["ops"] == LaneLimits(breakerFailures: 20, breakerProbeMs: 30_000))
    }

    @Test func aFailingGatewayPausesItsChannelOpsIsToldOnceAndEverythingGoesOnceItRecovers() async throws {
        let log = CapturedLog()
        let down = Locked(true)
        let daemon = try await InProcessDaemon(logger: log.logger) {
            Self.config($0, sms: "breaker_failures = 3\nbreaker_probe = \"30s\"")
        }
        let gateway = daemon.gateway
        gateway.setResponder { request in
            request.path.hasSuffix("/sms") && down.value ? .init(status: 500, body: "upstream down") : .init(status: 200)
        }
        let created = daemon.clock.now() - 11 * 60_000
        try await daemon.shop().write { db in
            for i in 0..<10 {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: ["O\(i)", created])
            }
        }
        daemon.run()
        // Three failures in a row open the breaker: ops hears of it once.
        #expect(await InProcessDaemon.eventually(10) {
            gateway.requests().contains { $0.path.hasSuffix("/ops") && $0.bodyString.contains("channel_paused") }
        })
        let smsRequests = { gateway.requests().filter { $0.path.hasSuffix("/sms") }.count }
        #expect(smsRequests() == 3)
        // Paused: the retries come due (1–2 s), nothing is sent to sms; the others spent nothing.
        daemon.clock.advance(by: 5_000)
        try await Task.sleep(for: .milliseconds(300))
        daemon.clock.advance(by: 10_000)
        try await Task.sleep(for: .milliseconds(300))
        #expect(smsRequests() == 3)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE kind = 'unpaid_reminder' AND attempts = 0") == 7)
        // The gateway recovers; at the probe time one message goes through and the lane resumes.
        down.set(false)
        daemon.clock.advance(by: 15_000)
        #expect(await InProcessDaemon.eventually(10) {
            (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE kind = 'unpaid_reminder' AND state = 'delivered'")) == 10
                && (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE kind = 'situation_resolved' AND state = 'delivered'")) == 1
        })
        try await daemon.stop()
        // Every message delivered; the three that failed spent one attempt each on the way, the
        // seven paused ones none: 13 requests, 13 attempts.
        #expect(smsRequests() == 13)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_attempts a JOIN pw_outbox o ON o.id = a.outbox_id WHERE o.channel = 'sms'") == 13)
        #expect(try daemon.count("SELECT SUM(attempts) FROM pw_outbox WHERE kind = 'unpaid_reminder'") == 13)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE kind = 'unpaid_reminder' AND state = 'dead'") == 0)
        // Exactly one ops message, one warning; and one line when it resumed.
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE kind = 'channel_paused' AND state = 'delivered'") == 1)
        // …and one when it resumed: the alert resolved.
        let opsBodies = gateway.requests().filter { $0.path.hasSuffix("/ops") }.map(\.bodyString)
        #expect(opsBodies.count == 2)
        #expect(opsBodies.last?.contains("\"kind\":\"situation_resolved\"") == true)
        #expect(opsBodies.last?.contains("\"resolves\":\"channel_paused\"") == true)
        #expect(opsBodies.last?.contains("\"channel\":\"sms\"") == true)
        // (The ops message's own delivery line says event=channel_paused too, at info.)
        let paused = log.entries.filter { $0.metadata["event"] == "channel_paused" && $0.message.hasPrefix("channel paused") }
        #expect(paused.count == 1)
        #expect(paused.first?.level == .warning)
        #expect(paused.first?.metadata["channel"] == "sms")
        #expect(paused.first?.metadata["reason"] == "HTTP 500: upstream down")
        #expect(log.entries.filter { $0.metadata["event"] == "channel_resumed" }.count == 1)
        let ops = try #require(gateway.requests().first { $0.path.hasSuffix("/ops") }?.bodyString)
        #expect(ops.contains("\"kind\":\"channel_paused\""))
        #expect(ops.contains("HTTP 500: upstream down"))
        #expect(!ops.contains("+8613800000000"))
    }

    @Test func aReminderBeyondTheDailyCapIsNotSent() async throws {
        let daemon = try await InProcessDaemon { Self.config($0, delivery: "max_per_order_per_day = 1") }
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('C', 100, ?, '+8613800000000')",
                           arguments: [daemon.clock.now() - 11 * 60_000])
        }
        daemon.run()
        #expect(await daemon.gateway.waitForRequests(1, timeoutSeconds: 10))
        // The second reminder comes due 20 minutes later: the customer had their one message today.
        daemon.clock.advance(by: 20 * 60_000)
        #expect(await InProcessDaemon.eventually(10) {
            (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'capped' AND step = 2")) == 1
        })
        try await daemon.stop()
        #expect(daemon.gateway.requestCount == 1)
        let event = try await daemon.shop().read {
            try String.fetchOne($0, sql: "SELECT detail FROM pw_events WHERE order_id = 'C' AND event = 'capped'")
        }
        #expect(event == "unpaid_reminder step 2 on sms not sent: daily cap of 1 message reached")
    }
}
