import Foundation
import GRDB
import PaywatchCore
import PaywatchStore
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// The pruner inside the running service, on the manual clock: once at start, then hourly.
@Suite(.serialized) struct PrunerTests {
    static let day: Millis = 86_400_000

    static func config(_ base: String) -> String {
        PaywatchServiceTests.config(base) + """
            [paid]
            channels = ["sms"]
            [retention]
            keep = "1d"
            batch_size = 2

            """
    }

    func insertPaidOrder(_ daemon: InProcessDaemon, _ id: String, at: Millis) throws {
        try daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')", arguments: [id, at])
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES (?, ?, 100, 'succeeded', ?)",
                           arguments: ["\(id)-p", id, at])
        }
    }

    func history(_ daemon: InProcessDaemon, _ id: String) throws -> Int {
        try daemon.count("SELECT (SELECT COUNT(*) FROM pw_events WHERE order_id = '\(id)') + (SELECT COUNT(*) FROM pw_outbox WHERE order_id = '\(id)')")
    }

    @Test func prunesAtStartThenEveryHour() async throws {
        let daemon = try await InProcessDaemon { Self.config($0) }
        let start = InProcessDaemon.start
        // Three orders paid and planned two days before the daemon starts (found by the run at start),
        // in two batches of batch_size 2.
        for id in ["OLD1", "OLD2", "OLD3"] { try insertPaidOrder(daemon, id, at: start - 2 * Self.day) }
        let planner = daemon.service.runtime.planner
        let then = start - 2 * Self.day
        _ = try await daemon.store.sweep(now: then, limit: 10) { planner.plan($0, now: then) }
        let claim = try await daemon.store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10], knownChannels: ["sms"], leaseMs: 60_000), now: then)
        #expect(claim.messages.count == 3)
        try await daemon.store.recordDeliveries(claim.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: then, httpStatus: 200, error: nil, durationMs: 1, outcome: .delivered)
        }, now: then)
        #expect(try history(daemon, "OLD1") > 0)
        // One paid while it runs.
        try insertPaidOrder(daemon, "NEW", at: start)
        daemon.run()
        #expect(try await InProcessDaemon.eventually(20) {
            try daemon.count("SELECT COUNT(*) FROM pw_order_state WHERE pruned_at = \(start)") == 3
        })
        #expect(try history(daemon, "OLD3") == 0)
        #expect(try await InProcessDaemon.eventually(20) {
            try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE order_id = 'NEW' AND state = 'delivered'") == 1
        })
        // A day is not over at the next hourly run: NEW keeps its history.
        daemon.clock.advance(by: Pruner.intervalMs)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try history(daemon, "NEW") > 0)
        // The first hourly run a day after NEW was paid prunes it; nothing else moves.
        daemon.clock.advance(to: start + Self.day + Pruner.intervalMs)
        #expect(try await InProcessDaemon.eventually(20) { try history(daemon, "NEW") == 0 })
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_order_state WHERE pruned_at = \(start + Self.day + Pruner.intervalMs)") == 1)
        try await daemon.stop()
        // The customer was told once, before and after.
        #expect(daemon.gateway.requestCount == 1)

        // `orders show` says so, in text and JSON.
        let detail = try #require(try await daemon.store.order(id: "NEW"))
        let view = OrderView(detail: detail, policy: daemon.service.runtime.planner.policy)
        #expect(view.text().contains("history pruned at \(Timestamp.iso8601(start + Self.day + Pruner.intervalMs)) (retention keep 1d)"))
        #expect(view.json().contains("\"keep\" : \"1d\""))
    }

    @Test func theSummaryNamesEveryCount() {
        let metadata = Pruner.metadata(.init(orders: 2, events: 3, outbox: 4, attempts: 5), keepMs: 90 * Self.day)
        #expect(metadata["orders"] == "2" && metadata["events"] == "3" && metadata["outbox"] == "4" && metadata["attempts"] == "5")
        #expect(metadata["keep"] == "90d")
    }
}
