import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchDaemon

/// The watchdog's view of the loops: waiting counts as progress, one pass that does not end does not.
@Suite(.serialized) struct WatchdogTests {
    @Test func aHeartbeatIsStuckOnlyWhileBusyForLongerThanTheLimit() async throws {
        let loop = LoopHeartbeat("planning")
        let check = WatchdogCheck(limitUsec: 2_000)
        #expect(check.stuck([loop]).isEmpty)
        loop.busy()
        #expect(check.stuck([loop]).isEmpty)
        try await Task.sleep(for: .milliseconds(10))
        #expect(check.stuck([loop]).map(\.name) == ["planning"])
        // busy() again inside the same pass does not restart its clock.
        loop.busy()
        #expect(check.stuck([loop]).map(\.name) == ["planning"])
        // Progress inside the pass (a batch written) starts its clock again.
        loop.progressed()
        #expect(check.stuck([loop]).isEmpty)
        loop.idle()
        #expect(check.stuck([loop]).isEmpty)
        #expect(loop.busyFor() == nil)
        // Progress while idle does not make it busy.
        loop.progressed()
        #expect(loop.busyFor() == nil)
    }

    @Test func anIdleDaemonIsNotStuckAndAPassBlockedOnTheStoreIs() async throws {
        // A long busy timeout: a write waits for the shop's lock instead of failing.
        let daemon = try await InProcessDaemon(busyTimeoutMs: 60_000) { PaywatchServiceTests.config($0) }
        let check = WatchdogCheck(limitUsec: 50_000)
        daemon.run()
        // After its first pass the planning loop sleeps (on the manual clock); delivery waits.
        #expect(await InProcessDaemon.eventually(5) {
            daemon.service.stats.planningPasses >= 1 && daemon.monitor.planning.busyFor() == nil
        })
        try await Task.sleep(for: .milliseconds(100))
        #expect(check.stuck([daemon.monitor.planning, daemon.monitor.delivery]).isEmpty)

        // An order to plan, and the shop holding the write lock: the next pass cannot write.
        try await daemon.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('W1', 100, ?, '+8613800000000')",
                           arguments: [daemon.clock.now()])
        }
        let lock = try daemon.shop()
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        Thread {
            try? lock.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    held.signal()
                    release.wait()
                    return .rollback
                }
            }
        }.start()
        held.wait()
        daemon.clock.advance(by: 5_000)
        #expect(await InProcessDaemon.eventually(5) {
            check.stuck([daemon.monitor.planning, daemon.monitor.delivery]).map(\.name) == ["planning"]
        })
        // The lock released, the pass ends and the loop waits again.
        release.signal()
        #expect(await InProcessDaemon.eventually(5) { daemon.monitor.planning.busyFor() == nil })
        #expect(check.stuck([daemon.monitor.planning, daemon.monitor.delivery]).isEmpty)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_order_state WHERE order_id = 'W1' AND status = 'unpaid'") == 1)
        try await daemon.stop()
    }
}
