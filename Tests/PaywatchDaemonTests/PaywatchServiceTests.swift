import Foundation
import GRDB
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// The service in-process on a manual clock: loop passes are counted, so a loop that spins
/// instead of sleeping fails here, and lanes and streaming are checked against a real gateway.
@Suite(.serialized) struct PaywatchServiceTests {
    static func config(_ base: String, concurrency: Int = 8, channels: [String] = ["sms"], extra: String = "") -> String {
        var text = """
            [daemon]
            poll_interval = "5s"
            [delivery]
            concurrency = \(concurrency)
            timeout = "10s"
            [unpaid]
            hold = "1h"
            reminders = ["10m", "30m"]
            channels = [\(channels.map { "\"\($0)\"" }.joined(separator: ", "))]
            [channels.ops]
            provider = "webhook"
            url = "\(base)/ops"
            to = "oncall"

            """
        for name in channels {
            text += "[channels.\(name)]\nprovider = \"webhook\"\nurl = \"\(base)/\(name)\"\n"
        }
        return text + extra
    }

    func insertOrders(_ daemon: InProcessDaemon, prefix: String, count: Int, createdAgoMs: Millis,
                      phone: Bool = true, email: Bool = false) throws {
        let created = daemon.clock.now() - createdAgoMs
        try daemon.shop().write { db in
            for i in 0..<count {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES (?, 100, ?, ?, ?)",
                               arguments: ["\(prefix)\(i)", created, phone ? "+8613800000000" : nil, email ? "a@shop.example" : nil])
            }
        }
    }

    @Test func theConfigurationReachesTheDeliveryLanes() async throws {
        let daemon = try await InProcessDaemon {
            Self.config($0, concurrency: 8, channels: ["sms", "email"]) + "[channels.fax]\nprovider = \"webhook\"\nurl = \"\($0)/fax\"\nconcurrency = 3\n"
        }
        let configuration = DeliveryEngine.configuration(daemon.service.runtime, finishWhenIdle: false)
        #expect(configuration.concurrency == 8)
        #expect(configuration.laneConcurrency == ["fax": 3])
        // Every channel a rule or the configuration names has a lane, ops included.
        #expect(configuration.knownLanes == ["email", "fax", "ops", "sms"])
        // The lease is `[store] lease` (30 s by default), renewed every third of it; the longest
        // queue wait is still two transfer timeouts.
        #expect(configuration.leaseMs == 30_000)
        #expect(configuration.renewEveryMs == 10_000)
        #expect(configuration.maxQueueWaitMs == 20_000)
        #expect(DeliveryEngine(runtime: daemon.service.runtime, stats: LoopStats()).handOff.leaseMs == 30_000)
    }

    @Test func anIdleDaemonDoesNothingUntilItsNextDueTime() async throws {
        let daemon = try await InProcessDaemon { Self.config($0) }
        // 10 orders due their first reminder now, 50 open orders with nothing due for 10 minutes.
        try insertOrders(daemon, prefix: "DUE", count: 10, createdAgoMs: 11 * 60_000)
        try insertOrders(daemon, prefix: "OPEN", count: 50, createdAgoMs: 0)
        daemon.run()
        #expect(try await InProcessDaemon.eventually(20) {
            try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 10
        })
        // Every wake-up path has been used (start, planner's wake-up, completions, commits).
        // Now the clock stands still: so must the loops.
        try await Task.sleep(for: .milliseconds(100))
        let stats = daemon.service.stats
        let planning = stats.planningPasses
        let events = stats.deliveryEvents
        let storeOps = stats.storeOperations
        try await Task.sleep(for: .milliseconds(500))
        #expect(stats.planningPasses == planning)
        #expect(stats.deliveryEvents == events)
        #expect(stats.storeOperations == storeOps)

        // One poll interval later: one planning pass and one look at the outbox, no more.
        daemon.clock.advance(by: 5_000)
        try await Task.sleep(for: .milliseconds(300))
        #expect(stats.planningPasses - planning == 1)
        #expect(stats.storeOperations - storeOps == 1)
        #expect(stats.deliveryEvents - events <= 3)

        // Ten minutes on, the open orders' first reminder comes due and goes out.
        daemon.clock.advance(by: 10 * 60_000)
        #expect(try await InProcessDaemon.eventually(20) {
            try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 60
        })
        try await daemon.stop()
        #expect(daemon.gateway.requestCount == 60)
    }

    @Test func aSlowChannelDoesNotHoldBackAFastOne() async throws {
        let daemon = try await InProcessDaemon { Self.config($0, concurrency: 4, channels: ["sms", "email"]) }
        let slowMs = 5_000
        daemon.gateway.setResponder { request in
            FakeGateway.Response(status: 200, delayMs: request.path == "/sms" ? slowMs : 0)
        }
        // 20 SMS-only orders decided first, then 40 e-mail-only ones.
        try insertOrders(daemon, prefix: "S", count: 20, createdAgoMs: 11 * 60_000)
        try insertOrders(daemon, prefix: "E", count: 40, createdAgoMs: 11 * 60_000 - 1, phone: false, email: true)
        daemon.run()
        // Every e-mail, however many SMS borrowed an idle slot before the e-mails were decided.
        #expect(await InProcessDaemon.eventually(20) { daemon.gateway.requests().filter { $0.path == "/email" }.count == 40 })
        let requests = daemon.gateway.requests()
        let emails = requests.filter { $0.path == "/email" }.map(\.receivedAtMs)
        let firstSMS = try #require(requests.filter { $0.path == "/sms" }.map(\.receivedAtMs).min())
        // Every e-mail went out while the first SMS answers were still pending: the SMS lane held
        // its share of the slots, not all of them.
        #expect(emails.count == 40)
        #expect((emails.max() ?? .max) < firstSMS + Int64(slowMs))
        #expect(daemon.gateway.maxConcurrentRequests <= 4)
        try await daemon.stop()
    }

    @Test func aFewSlowAnswersHoldOnlyTheirOwnSlots() async throws {
        let daemon = try await InProcessDaemon { Self.config($0, concurrency: 8) }
        let slowMs: Int64 = 3_000
        let slowOrders: Set<String> = ["M7", "M37", "M77"]
        daemon.gateway.setResponder { request in
            let slow = slowOrders.contains { request.bodyString.contains("\"order_id\":\"\($0)\"") }
            return FakeGateway.Response(status: 200, delayMs: slow ? Int(slowMs) : 0)
        }
        try insertOrders(daemon, prefix: "M", count: 100, createdAgoMs: 11 * 60_000)
        daemon.run()
        // The 97 fast answers are committed while the 3 slow ones are still being answered.
        var committedAt: Int64 = .max
        let committed = try await InProcessDaemon.eventually(20) {
            let done = try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") >= 97
            if done { committedAt = Int64(Date().timeIntervalSince1970 * 1000) }
            return done
        }
        #expect(committed)
        let requests = daemon.gateway.requests()
        let slowArrivals = requests.filter { r in slowOrders.contains { r.bodyString.contains("\"order_id\":\"\($0)\"") } }
            .map(\.receivedAtMs)
        let firstSlowAnswer = (slowArrivals.min() ?? 0) + slowMs
        #expect(slowArrivals.count == 3)
        #expect(committedAt < firstSlowAnswer)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 97)
        // Arrival times: every fast message reached the gateway before the first slow answer.
        let fastArrivals = requests.filter { r in !slowOrders.contains { r.bodyString.contains("\"order_id\":\"\($0)\"") } }
        #expect(fastArrivals.count == 97)
        #expect((fastArrivals.map(\.receivedAtMs).max() ?? .max) < firstSlowAnswer)
        // Stopping waits for the slow transfers and records them too.
        try await daemon.stop()
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 100)
        #expect(daemon.gateway.requestCount == 100)
    }

    @Test func aLongTransferHasItsLeaseRenewedAndALeaseLostToAnotherOwnerIsLoggedOnce() async throws {
        let log = CapturedLog()
        let daemon = try await InProcessDaemon(logger: log.logger) { Self.config($0, concurrency: 1) }
        // Each answer takes 4 s of real time: on the manual clock, the transfer lasts as long as
        // the test wants.
        daemon.gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: 4_000) }
        try insertOrders(daemon, prefix: "L", count: 1, createdAgoMs: 11 * 60_000)
        let start = daemon.clock.now()
        daemon.run()
        #expect(await InProcessDaemon.eventually(10) { daemon.gateway.requestCount == 1 })
        let lease = {
            try daemon.shop().read { db in
                try Row.fetchOne(db, sql: "SELECT id, due_at, lease_owner, state, attempts FROM pw_outbox WHERE channel = 'sms'")
            }
        }
        #expect(try lease()?["due_at"] as Millis? == start + 30_000)
        // A third of the lease on, the transfer still running: the lease is renewed for another 30 s.
        daemon.clock.advance(by: 10_000)
        #expect(try await InProcessDaemon.eventually(3) { try lease()?["due_at"] as Millis? == start + 40_000 })
        #expect(log.entries.filter { $0.metadata["event"] == "lease_lost" }.isEmpty)

        // Another replica takes the message over (as if this one had stalled past its lease): the
        // next renewal finds it lost and logs it once; the transfer's result is then stale.
        try await daemon.shop().write { try $0.execute(sql: "UPDATE pw_outbox SET lease_owner = 'replica-b' WHERE channel = 'sms'") }
        daemon.clock.advance(by: 10_000)
        #expect(await InProcessDaemon.eventually(3) { log.entries.contains { $0.metadata["event"] == "lease_lost" } })
        #expect(await InProcessDaemon.eventually(10) { log.entries.contains { $0.metadata["event"] == "stale_results" } })
        daemon.clock.advance(by: 10_000)
        try await Task.sleep(for: .milliseconds(200))
        try await daemon.stop()
        let id = try #require(try lease()?["id"] as Int64?)
        let lost = log.entries.filter { $0.metadata["event"] == "lease_lost" }
        #expect(lost.count == 1)
        #expect(lost.first?.level == .warning)
        #expect(lost.first?.metadata["outbox_ids"] == "\(id)")
        #expect(lost.first?.metadata["in_flight"] == "1")
        // The other owner's lease stands: nothing recorded over it, the message not sent again.
        let row = try #require(try lease())
        #expect(row["lease_owner"] as String? == "replica-b")
        #expect(row["state"] as String == "pending")
        #expect(row["attempts"] as Int == 0)
        #expect(daemon.gateway.requestCount == 1)
    }
}
