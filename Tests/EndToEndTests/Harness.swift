import Foundation
import GRDB
import PaywatchTestSupport
import Testing

/// Runs the real `paywatch` binary against a temp SQLite database and a fake gateway.
/// Every suite that runs the real binary, one test at a time: on 2 cores, daemons and their
/// gateways started side by side would measure each other instead of themselves.
@Suite(.serialized) enum EndToEnd {}

final class Harness: @unchecked Sendable {
    let directory: URL
    let dbPath: String
    let configPath: String
    let gateway: FakeGateway
    var process: Process?
    /// The daemon's stdout and stderr, kept after the test in the run's log folder (``TestLogs``)
    /// for `scripts/secret-grep.sh`.
    let stderrPath = TestLogs.file("e2e-paywatch-run")

    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["PAYWATCH_BIN"] { return path }
        // The test bundle sits in the build products folder, next to the paywatch executable.
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("paywatch").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return ".build/debug/paywatch"
    }

    init(config: (String) -> String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        dbPath = directory.appendingPathComponent("paywatch.db").path
        configPath = directory.appendingPathComponent("paywatch.toml").path
        gateway = try FakeGateway()
        let text = """
            [store]
            url = "sqlite://\(dbPath)"

            """ + config(gateway.baseURL)
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        gateway.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs a paywatch command to completion; returns exit code, stdout and stderr.
    @discardableResult
    func run(_ arguments: [String]) throws -> (code: Int32, out: String, err: String) {
        try Harness.runBinary(arguments)
    }

    /// Runs the binary with `arguments` (in `directory`, under `ulimit -n openFiles` when given)
    /// to completion. A command that should finish but hangs is killed after 30 s, so the suite
    /// fails instead of hanging.
    static func runBinary(_ arguments: [String], in directory: URL? = nil,
                          openFiles: Int? = nil) throws -> (code: Int32, out: String, err: String) {
        let command = openFiles.map { ["/bin/sh", "-c", "ulimit -n \($0) && exec \"$0\" \"$@\"", Harness.binary] } ?? [Harness.binary]
        let result = try Command.run(command + arguments, in: directory, seconds: 30)
        return (result.code, result.out, result.err)
    }

    /// Starts `paywatch run` in the background, logging to `stderrPath`; `environment` is added
    /// to the test's own (e.g. `NOTIFY_SOCKET`).
    func start(environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.binary)
        process.arguments = ["run", "--config", configPath]
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        log.seekToEndOfFile()
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.process = process
    }

    /// Waits until the daemon logged that it runs (it holds its lock and has migrated).
    func waitUntilStarted() -> Bool {
        Harness.eventually(10) {
            (try? String(contentsOfFile: stderrPath, encoding: .utf8))?.contains("paywatch started") ?? false
        }
    }

    func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard let process else { return -1 }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
        return process.terminationStatus
    }

    /// What the daemon logged so far.
    var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    func shop() throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(10)
        return try DatabaseQueue(path: dbPath, configuration: config)
    }

    /// Waits until `count` messages were decided and every one is delivered (none pending or dead).
    func waitUntilAllDelivered(_ count: Int, seconds: Double = 30) throws -> Bool {
        let shop = try shop()
        return try Harness.eventually(seconds) {
            try shop.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_outbox") == count
                    && Int.fetchOne(db, sql: "SELECT COUNT(*) FROM pw_outbox WHERE state != 'delivered'") == 0
            }
        }
    }

    /// `[daemon]`, `[delivery]` and `[unpaid]` for tests about other statuses: a quick poll and
    /// retry, and an unpaid order that is neither reminded nor cancelled while the test runs.
    static let quietUnpaid = """
        [daemon]
        poll_interval = "200ms"

        [delivery]
        retry_base = "100ms"

        [unpaid]
        hold = "1m"
        reminders = ["50s"]
        channels = ["sms"]
        """

    /// The `[channels.sms]` and `[channels.ops]` (to "oncall") sections most end-to-end configs use,
    /// pointing at `base`.
    static func smsAndOps(_ base: String) -> String {
        """
        [channels.sms]
        provider = "webhook"
        url = "\(base)/sms"

        [channels.ops]
        provider = "webhook"
        url = "\(base)/ops"
        to = "oncall"
        """
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Polls `condition` every 20 ms for at most `seconds`.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(20_000)
        }
        return try condition()
    }
}
