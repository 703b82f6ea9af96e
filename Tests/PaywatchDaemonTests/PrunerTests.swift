import Foundation
import GRDB
import Logging
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

    /// Orders paid, planned and confirmed two days before the daemon starts.
    func settledBeforeStart(_ daemon: InProcessDaemon, _ ids: [String]) async throws {
        let then = InProcessDaemon.start - 2 * Self.day
        for id in ids { try insertPaidOrder(daemon, id, at: then) }
        let planner = daemon.service.runtime.planner
        _ = try await daemon.store.sweep(now: then, limit: 10) { planner.plan($0, now: then) }
        let claim = try await daemon.store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10], knownChannels: ["sms"], leaseMs: 60_000), now: then)
        #expect(claim.messages.count == ids.count)
        try await daemon.store.recordDeliveries(claim.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: then, httpStatus: 200, error: nil, durationMs: 1, outcome: .delivered)
        }, now: then)
    }

    @Test func prunesAtStartThenEveryHour() async throws {
        let daemon = try await InProcessDaemon { Self.config($0) }
        let start = InProcessDaemon.start
        // Three orders paid and planned two days before the daemon starts (found by the run at start),
        // in two batches of batch_size 2.
        try await settledBeforeStart(daemon, ["OLD1", "OLD2", "OLD3"])
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

    @Test func aBusyStoreIsRetriedAMinuteLater() async throws {
        let daemon = try await InProcessDaemon(busyTimeoutMs: 50) { Self.config($0) }
        let start = InProcessDaemon.start
        try insertPaidOrder(daemon, "PAID", at: start)
        daemon.run()
        #expect(try await InProcessDaemon.eventually(20) {
            try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 1
        })
        // The shop holds the write lock when the hourly run a day later comes: it fails.
        var lockHolder = Configuration()
        lockHolder.allowsUnsafeTransactions = true
        let shop = try DatabaseQueue(path: daemon.dbPath, configuration: lockHolder)
        try shop.inDatabase { try $0.execute(sql: "BEGIN IMMEDIATE") }
        let due = start + Self.day + Pruner.intervalMs
        daemon.clock.advance(to: due)
        try await Task.sleep(for: .milliseconds(500))
        try shop.inDatabase { try $0.execute(sql: "COMMIT") }
        // Not retried before a minute has passed on the daemon's clock; then it is.
        try await Task.sleep(for: .milliseconds(200))
        #expect(try history(daemon, "PAID") > 0)
        daemon.clock.advance(to: due + Pruner.retryMs)
        #expect(try await InProcessDaemon.eventually(20) { try history(daemon, "PAID") == 0 })
        #expect(try daemon.count("SELECT pruned_at FROM pw_order_state WHERE order_id = 'PAID'") == Int(due + Pruner.retryMs))
        try await daemon.stop()
    }

    @Test func oneSummaryLinePerRunThatPrunedAndNoneOtherwise() async throws {
        let daemon = try await InProcessDaemon { Self.config($0) }
        try await settledBeforeStart(daemon, ["A", "B", "C"])
        let log = CapturedLog()
        var runtime = daemon.service.runtime
        runtime.logger = log.logger
        let pruner = Pruner(runtime: runtime)
        try await pruner.pruneNow()
        try await pruner.pruneNow()
        let lines = log.entries
        #expect(lines.map(\.message) == ["history pruned"])
        // Three orders in two batches of two, summed: tracked and status events, one message and attempt each.
        #expect(lines.first?.metadata["orders"] == "3")
        #expect(lines.first?.metadata["events"] == "6")
        #expect(lines.first?.metadata["outbox"] == "3" && lines.first?.metadata["attempts"] == "3")
        #expect(lines.first?.level == .notice)
    }

    @Test func anOutageIsLoggedWhenItStartsAndWhenItEnds() async throws {
        let daemon = try await InProcessDaemon(busyTimeoutMs: 50) { Self.config($0) }
        try await settledBeforeStart(daemon, ["A"])
        let log = CapturedLog()
        var runtime = daemon.service.runtime
        runtime.logger = log.logger
        var lockHolder = Configuration()
        lockHolder.allowsUnsafeTransactions = true
        let shop = try DatabaseQueue(path: daemon.dbPath, configuration: lockHolder)
        try shop.inDatabase { try $0.execute(sql: "BEGIN IMMEDIATE") }
        let task = Task { await Pruner(runtime: runtime).run() }
        #expect(await InProcessDaemon.eventually(20) { log.entries.count == 1 })
        #expect(log.entries.first?.message == "pruning failed; retrying" && log.entries.first?.level == .error)
        try shop.inDatabase { try $0.execute(sql: "COMMIT") }
        daemon.clock.advance(by: Pruner.retryMs)
        #expect(await InProcessDaemon.eventually(20) { log.entries.count == 3 })
        #expect(log.entries.map(\.message) == ["pruning failed; retrying", "history pruned", "pruning works again"])
        task.cancel()
        await task.value
    }

    @Test func theSummaryNamesEveryCount() {
        let metadata = Pruner.metadata(.init(orders: 2, events: 3, outbox: 4, attempts: 5), keepMs: 90 * Self.day)
        #expect(metadata["orders"] == "2" && metadata["events"] == "3" && metadata["outbox"] == "4" && metadata["attempts"] == "5")
        #expect(metadata["keep"] == "90d")
    }
}

/// Log entries kept in memory, for tests that read what the daemon logged.
final class CapturedLog: @unchecked Sendable {
    struct Entry {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }
    private let lock = NSLock()
    private var stored: [Entry] = []

    var entries: [Entry] { lock.withLock { stored } }
    var logger: Logger { Logger(label: "test") { _ in Handler(log: self) } }

    fileprivate func append(_ entry: Entry) { lock.withLock { stored.append(entry) } }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.append(Entry(level: event.level, message: event.message.description, metadata: all.mapValues { "\($0)" }))
        }
    }
}
