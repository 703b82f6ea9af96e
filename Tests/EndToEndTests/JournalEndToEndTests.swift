import Foundation
import GRDB
import PaywatchTestSupport
import Testing

/// A real systemd-journald for the tests: the one already listening on
/// `/run/systemd/journal/socket`, or one started here as root that keeps its journal in a temporary
/// folder. It runs in a mount namespace of its own (`unshare --mount`) where that folder is bound
/// over `/run/log/journal` and `/etc/systemd` holds only a `journald.conf` with `Storage=volatile`
/// and `ReadKMsg=no`: the host's journal and configuration are left alone, yet its sockets in the
/// shared `/run/systemd/journal` are the ones every process on the machine sends to. Without
/// `unshare`, journald starts with the host's configuration and folders, which journalctl reads by default.
final class TestJournal: @unchecked Sendable {
    static let journald = "/lib/systemd/systemd-journald"
    static let socketPath = "/run/systemd/journal/socket"

    /// The folder of the journal started here; nil for a journald that was already running.
    let directory: URL?
    private let process: Process?

    private init(directory: URL?, process: Process?) {
        self.directory = directory
        self.process = process
    }

    deinit { stop() }

    /// Why this machine cannot run the journal tests, or nil: only a missing root or missing tools.
    static func skipReason() -> String? {
        if geteuid() != 0 { return "not root: a journald cannot be started" }
        if !FileManager.default.isExecutableFile(atPath: journald) { return "\(journald) is missing" }
        if journalctl == nil { return "journalctl is missing" }
        return nil
    }

    static var journalctl: String? { Command.find("journalctl") }
    static var unshare: String? { Command.find("unshare") }

    /// The running journald, else one started here; nil (with the reason printed) when
    /// ``skipReason()`` says the test cannot run.
    static func open() throws -> TestJournal? {
        if let reason = skipReason() {
            print("skipped: \(reason)")
            return nil
        }
        if accepts(socketPath) { return TestJournal(directory: nil, process: nil) }
        return try start()
    }

    private static func start() throws -> TestJournal {
        let process = Process()
        var directory: URL? = nil
        if let unshare {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-journal-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            // The mount point; journald would create it itself.
            try FileManager.default.createDirectory(atPath: "/run/log/journal", withIntermediateDirectories: true)
            let script = """
                set -e
                mount --bind "$0" /run/log/journal
                mount -t tmpfs -o mode=0755 tmpfs /etc/systemd
                printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToWall=no\\nRateLimitBurst=0\\n' > /etc/systemd/journald.conf
                exec \(journald)
                """
            process.executableURL = URL(fileURLWithPath: unshare)
            process.arguments = ["--mount", "--propagation", "private", "/bin/sh", "-c", script, folder.path]
            directory = folder
        } else {
            // Without unshare: the host's configuration and journal folders; journalctl reads them by default.
            process.executableURL = URL(fileURLWithPath: journald)
        }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let journal = TestJournal(directory: directory, process: process)
        guard Harness.eventually(10, { accepts(socketPath) }) else {
            throw TestSetupError(description: "the journald started by the test does not listen on \(socketPath)")
        }
        return journal
    }

    /// Stops the journald started here (never one that was already running) and removes its folder.
    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    /// The entries matching `matches` (`FIELD=value`, as journalctl takes them), as
    /// `journalctl -o json` gives them: a field's value is a string, or an array of byte values
    /// when it is not printable text (a newline inside).
    func entries(_ matches: [String]) throws -> [[String: Any]] {
        guard let journalctl = TestJournal.journalctl else { return [] }
        let directoryOption = directory.map { ["--directory", $0.path] } ?? []
        let result = try Command.run([journalctl] + directoryOption + ["-o", "json", "--no-pager"] + matches)
        return result.out.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// A field's value as text, decoding the byte-array form.
    static func text(_ value: Any?) -> String? {
        if let string = value as? String { return string }
        if let bytes = value as? [Int] { return String(decoding: bytes.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self) }
        return nil
    }

    /// Whether a datagram socket at `path` accepts a connection (a stale socket file refuses).
    static func accepts(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.prefix(capacity - 1).enumerated() { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }
}

extension EndToEnd {
    /// The real binary logging to a real journald, as under systemd with `StandardError=journal`.
    @Suite(.serialized) struct JournalEndToEndTests {
        static let phone = "+8613800000000"
        static let masked = "+86*******0000"

        @Test func entriesCarryTheOrderEventChannelAndPriorityAsFields() throws {
            guard let journal = try TestJournal.open() else { return }
            defer { journal.stop() }
            let run = UUID().uuidString
            let order = "J-\(run)"
            let hostile = "Q-\(run)\nMESSAGE=forged-\(run)"
            let dead = "D-\(run)"
            // order is reminded; hostile's id holds a newline and a would-be field (quarantined, and
            // logged with that id); the gateway refuses dead's reminder for good (a dead letter, escalated to ops).
            let h = try Harness.withRemindersDue([order, hostile, dead])
            h.gateway.setResponder { request in
                request.path == "/sms" && request.bodyString.contains(dead) ? FakeGateway.Response(status: 400) : FakeGateway.Response(status: 200)
            }

            let result = try h.runAsJournalService(["run", "--once", "--config", h.configPath], logPath: h.stderrPath)
            #expect(result.code == 0)
            var entries: [[String: Any]] = []
            #expect(try Harness.eventually(10) {
                entries = try journal.entries(["ORDER_ID=\(order)"])
                return entries.contains { TestJournal.text($0["MESSAGE"]) == "message delivered" }
            })
            let decided = try #require(entries.first { TestJournal.text($0["MESSAGE"]) == "message decided" })
            #expect(TestJournal.text(decided["EVENT"]) == "unpaid_reminder")
            #expect(TestJournal.text(decided["CHANNEL"]) == "sms")
            #expect(TestJournal.text(decided["PRIORITY"]) == "6")
            #expect(TestJournal.text(decided["SYSLOG_IDENTIFIER"]) == "paywatch")
            #expect(TestJournal.text(decided["TO"]) == Self.masked)
            #expect(TestJournal.text(decided["STEP"]) == "1")
            #expect(TestJournal.text(decided["CODE_FILE"])?.hasSuffix("PaywatchService.swift") == true)
            #expect(Int(TestJournal.text(decided["CODE_LINE"]) ?? "") != nil)
            #expect(TestJournal.text(decided["CODE_FUNC"])?.isEmpty == false)
            #expect(TestJournal.text(decided["_PID"]) == "\(result.pid)")
            let delivered = try #require(entries.first { TestJournal.text($0["MESSAGE"]) == "message delivered" })
            #expect(TestJournal.text(delivered["ATTEMPT"]) == "1")
            #expect(TestJournal.text(delivered["HTTP_STATUS"]) == "200")
            #expect(TestJournal.text(delivered["OUTCOME"]) == "delivered")
            #expect(TestJournal.text(delivered["KIND"]) == "unpaid_reminder")
            #expect(Int(TestJournal.text(delivered["DELIVERY_ID"]) ?? "") != nil)
            #expect(TestJournal.text(decided["KIND"]) == "unpaid_reminder")

            // The README's queries: dead letters (OUTCOME=dead) and escalations (CHANNEL=ops, EVENT=delivery_dead).
            let deadEntries = try journal.entries(["ORDER_ID=\(dead)"])
            #expect(deadEntries.contains { TestJournal.text($0["OUTCOME"]) == "dead" && TestJournal.text($0["PRIORITY"]) == "3" })
            #expect(deadEntries.contains { TestJournal.text($0["EVENT"]) == "delivery_dead" && TestJournal.text($0["CHANNEL"]) == "ops" })

            // A newline inside a value stays inside that value: the whole id comes back as one field
            // of one entry, and no entry has the forged MESSAGE.
            let everything = try journal.entries(["_PID=\(result.pid)"])
            let quarantined = everything.filter { TestJournal.text($0["EVENT"]) == "quarantined" }
            #expect(quarantined.count == 1)
            #expect(quarantined.first.flatMap { TestJournal.text($0["ORDER_ID"]) } == hostile)
            #expect(quarantined.first.flatMap { TestJournal.text($0["PRIORITY"]) } == "4")
            #expect(!everything.contains { TestJournal.text($0["MESSAGE"]) == "forged-\(run)" })

            // The masked number is logged, the full one never; and nothing went to stderr twice.
            let text = everything.map { $0.values.compactMap(TestJournal.text).joined(separator: "\n") }.joined(separator: "\n")
            #expect(text.contains(Self.masked))
            #expect(!text.contains(Self.phone))
            let stderr = (try? String(contentsOfFile: h.stderrPath, encoding: .utf8)) ?? ""
            #expect(!stderr.contains("message decided"))
        }

        /// With `JOURNAL_STREAM` matching stderr but no journald behind the native socket (hidden by
        /// an empty tmpfs in a mount namespace), every entry is written to stderr as a line instead.
        @Test func withoutAJournaldEntriesFallBackToStderrLines() throws {
            guard let unshare = TestJournal.unshare, TestJournal.skipReason() == nil else {
                print("skipped: \(TestJournal.skipReason() ?? "unshare (util-linux) is missing"): the journal socket cannot be hidden")
                return
            }
            try FileManager.default.createDirectory(atPath: "/run/systemd/journal", withIntermediateDirectories: true)
            let run = UUID().uuidString
            let h = try Harness.withRemindersDue(["F-\(run)"])
            let hide = [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
                        #"mount -t tmpfs tmpfs /run/systemd/journal && exec "$0" "$@""#]
            let result = try h.runAsJournalService(["run", "--once", "--config", h.configPath], logPath: h.stderrPath, wrapper: hide)
            #expect(result.code == 0)
            let stderr = try String(contentsOfFile: h.stderrPath, encoding: .utf8)
            let delivered = stderr.split(separator: "\n").filter { $0.contains("message delivered") && $0.contains("order_id=F-\(run)") }
            #expect(delivered.count == 1)
            #expect(delivered.first?.contains("INFO") == true)
            #expect(stderr.contains(Self.masked))
            #expect(!stderr.contains(Self.phone))
        }
    }
}
