import Foundation
import GRDB
import Logging
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

@Suite(.serialized) struct StoreFaultTests {
    /// The shop holds the write lock far longer than the busy timeout — and the leases run out —
    /// while transfers complete: their outcomes wait in memory, are recorded when the lock is
    /// released, and no message goes out twice.
    @Test func outcomesThatCannotBeRecordedAreKeptAndNeverSentAgain() async throws {
        let daemon = try await InProcessDaemon(busyTimeoutMs: 50) { PaywatchServiceTests.config($0, concurrency: 8) }
        daemon.gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: 200) }
        try PaywatchServiceTests().insertOrders(daemon, prefix: "L", count: 50, createdAgoMs: 11 * 60_000)
        daemon.run()
        #expect(await daemon.gateway.waitForRequests(1, timeoutSeconds: 20))

        let locked = Locked(false)
        let release = Locked(false)
        let dbPath = daemon.dbPath
        let holder = Thread {
            var config = Configuration()
            config.busyMode = .timeout(10)
            guard let shop = try? DatabaseQueue(path: dbPath, configuration: config) else { return }
            try? shop.inTransaction(.immediate) { _ in
                locked.set(true)
                while !release.value { usleep(10_000) }
                return .commit
            }
        }
        holder.start()
        #expect(await InProcessDaemon.eventually(5) { locked.value })
        let receivedAtLock = daemon.gateway.requestCount
        let deliveredAtLock = try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'")
        // Two minutes pass on the daemon's clock (every lease of 60 s runs out), two seconds of real
        // time: every store retry meets the lock.
        for _ in 0..<20 {
            daemon.clock.advance(by: 6_000)
            try await Task.sleep(for: .milliseconds(100))
        }
        // Nothing could be recorded meanwhile.
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == deliveredAtLock)
        release.set(true)

        // Store retries run on the daemon's clock: keep it moving.
        #expect(try await InProcessDaemon.eventually(20) {
            daemon.clock.advance(by: 1_000)
            return try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 50
        })
        try await daemon.stop()
        let keys = daemon.gateway.requests().map { $0.headers["idempotency-key"] ?? "" }
        #expect(keys.count == 50)
        #expect(Set(keys).count == 50)
        // The lock really stalled outcomes: transfers that were in flight when it was taken
        // completed (200 ms each) while nothing could be recorded.
        #expect(deliveredAtLock < receivedAtLock)
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_attempts") == 50)
    }
}

extension StoreFaultTests {
    /// Whether this machine lets the tests mount a small tmpfs (root, and mounts allowed): the
    /// only honest way to fill a disk.
    static let canMountTmpfs: Bool = {
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-mount-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: probe) }
        guard (try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)) != nil,
              shell("/bin/mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe.path) else { return false }
        return shell("/bin/umount", probe.path)
    }()

    @discardableResult
    static func shell(_ command: String, _ arguments: String...) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    /// The disk fills up while transfers are in flight: their outcomes wait in memory and are
    /// recorded once there is room again; nothing is sent twice, nothing is lost.
    @Test(.enabled(if: StoreFaultTests.canMountTmpfs, "needs root and permission to mount a tmpfs"))
    func aFullDiskLosesNothingAndRepeatsNothing() async throws {
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-full-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        #expect(Self.shell("/bin/mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mountPoint.path))
        defer {
            Self.shell("/bin/umount", "-l", mountPoint.path)
            try? FileManager.default.removeItem(at: mountPoint)
        }
        let daemon = try await InProcessDaemon(busyTimeoutMs: 50, directory: mountPoint) {
            PaywatchServiceTests.config($0, concurrency: 8)
        }
        daemon.gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: 200) }
        try PaywatchServiceTests().insertOrders(daemon, prefix: "F", count: 50, createdAgoMs: 11 * 60_000)
        daemon.run()
        #expect(await daemon.gateway.waitForRequests(1, timeoutSeconds: 20))

        // Fill the disk to the last byte.
        let filler = mountPoint.appendingPathComponent("filler").path
        let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        close(fd)
        let receivedAtFull = daemon.gateway.requestCount
        let deliveredAtFull = try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'")
        for _ in 0..<20 {
            daemon.clock.advance(by: 6_000)
            try await Task.sleep(for: .milliseconds(100))
        }
        // Nothing could be recorded while the disk was full.
        #expect(try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == deliveredAtFull)
        #expect(deliveredAtFull < receivedAtFull)

        try FileManager.default.removeItem(atPath: filler)
        #expect(try await InProcessDaemon.eventually(20) {
            daemon.clock.advance(by: 1_000)
            return try daemon.count("SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == 50
        })
        try await daemon.stop()
        try await daemon.store.close()
        let keys = daemon.gateway.requests().map { $0.headers["idempotency-key"] ?? "" }
        #expect(keys.count == 50)
        #expect(Set(keys).count == 50)
    }
}

/// A value shared with another thread.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func set(_ value: Value) { lock.withLock { stored = value } }
}

@Suite struct LogLineTests {
    func line(_ message: String, _ metadata: Logger.Metadata) -> String {
        LineLogHandler.line(at: 1_790_000_000_000, level: .warning, message: message, metadata: metadata)
    }

    @Test func oneEventIsOneLineWhateverItsValuesHold() {
        let forged = line("order quarantined", ["order_id": "A1\r\nX-Injected: yes", "reason": "say \"hi\" = \\ok"])
        #expect(forged == #"2026-09-21T14:13:20Z WARNING order quarantined order_id="A1\r\nX-Injected: yes" reason="say \"hi\" = \\ok""# + "\n")
        #expect(forged.filter { $0 == "\n" }.count == 1)
        #expect(line("multi\nline", [:]) == "2026-09-21T14:13:20Z WARNING multi\\nline\n")
        #expect(line("m", ["k": "tab\there", "e": "", "c": "bell\u{7}\u{2028}"]) ==
            "2026-09-21T14:13:20Z WARNING m c=bell\\u{7}\\u{2028} e=\"\" k=tab\\there\n")
        // Plain values stay plain.
        #expect(line("m", ["order_id": "A1", "to": "+86*******0000"]) == "2026-09-21T14:13:20Z WARNING m order_id=A1 to=+86*******0000\n")
    }
}
