import Foundation
import GRDB
import PaywatchCore
import PaywatchStore
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// Quiet hours through the whole daemon: a real SQLite file, the real HTTP gateway, the injected clock.
@Suite(.serialized) struct QuietHoursServiceTests {
    static let quiet = """
        [quiet_hours]
        start = "21:00"
        end = "08:00"
        channels = ["sms"]

        """

    @Test func aHeldReminderGoesWhenTheQuietHoursEndNotBefore() async throws {
        let daemon = try await InProcessDaemon { PaywatchServiceTests.config($0, channels: ["sms", "email"], extra: Self.quiet) }
        // The clock starts at 2026-09-21T14:13:20Z: 22:13 in Shanghai, inside the quiet hours,
        // which end at 08:00 there, 2026-09-22T00:00:00Z.
        let start = daemon.clock.now()
        let end: Millis = start + 35_200_000
        #expect(Timestamp.iso8601(end) == "2026-09-22T00:00:00Z")
        // Reminders at 10 and 30 minutes: step 1 due now, step 2 in 19 minutes. Not cancelled meanwhile.
        try await daemon.shop().write { db in
            try db.execute(sql: """
                INSERT INTO orders(id, amount_due, created_at, expires_at, phone, email, time_zone)
                VALUES ('NIGHT', 100, ?, ?, '+8613800000000', 'n@shop.example', 'Asia/Shanghai')
                """, arguments: [start - 11 * 60_000, start + 2 * 86_400_000])
        }
        let gateway = daemon.gateway
        func sent(_ channel: String) -> [String] {
            gateway.requests().filter { $0.path == "/\(channel)" }.map { $0.headers["idempotency-key"] ?? $0.headers["Idempotency-Key"] ?? "?" }
        }
        daemon.run()
        // The e-mail (not a quiet channel) goes at once; the sms waits, due at the end.
        #expect(await InProcessDaemon.eventually(10) { sent("email").count == 1 })
        #expect(sent("sms").isEmpty)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE channel = 'sms' AND state = 'pending' AND due_at = \(end) AND not_before = \(end)") == 1)
        let view = OrderView(detail: try #require(try await daemon.store.order(id: "NIGHT")), policy: daemon.service.runtime.planner.policy)
        #expect(view.text().contains("    waiting for the quiet hours to end: held until 2026-09-22 08:00 (Asia/Shanghai), 2026-09-22T00:00:00Z"))
        #expect(view.text().contains("quiet_hours  unpaid_reminder step 1 on sms waits for the quiet hours to end"))

        // Step 2, still inside: held too, and step 1 collapses into it.
        daemon.clock.advance(by: 20 * 60_000)
        #expect(await InProcessDaemon.eventually(10) { sent("email").count == 2 })
        #expect(await InProcessDaemon.eventually(10) {
            (try? daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE channel = 'sms' AND step = 1 AND state = 'superseded'")) == 1
        })

        // A millisecond before the end: the daemon plans and looks at the outbox, and sends nothing.
        // (Once the planner is idle, it has read the clock for its sleep: the advance wakes it.)
        #expect(await InProcessDaemon.eventually(10) { daemon.monitor.planning.busyFor() == nil })
        let passes = daemon.service.stats.planningPasses
        daemon.clock.advance(to: end - 1)
        #expect(await InProcessDaemon.eventually(10) { daemon.service.stats.planningPasses > passes })
        try await Task.sleep(for: .milliseconds(300))
        #expect(sent("sms").isEmpty)

        // At the end: step 2 goes, once; step 1 never.
        daemon.clock.advance(to: end)
        #expect(await InProcessDaemon.eventually(10) { sent("sms").count == 1 })
        try await daemon.stop()
        #expect(sent("sms") == ["pw1:NIGHT:unpaid_reminder:2:sms"])
        let timeline = try #require(try await daemon.store.order(id: "NIGHT")).timeline
        #expect(timeline.contains { $0.event == "collapsed" && $0.detail == "unpaid_reminder step 1 on sms, held for the quiet hours, collapsed into step 2" })
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE channel = 'sms' AND step = 2 AND state = 'delivered'") == 1)
    }
}
