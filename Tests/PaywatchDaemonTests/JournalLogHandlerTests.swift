import Foundation
import Logging
import Testing
@testable import PaywatchDaemon

/// The journal entry an event becomes, and the choice of handler; no journald needed (the
/// end-to-end JournalEndToEndTests send to a real one).
@Suite struct JournalLogHandlerTests {
    func fields(_ level: Logger.Level = .info, _ message: String = "message decided", _ metadata: Logger.Metadata) -> [String] {
        JournalLogHandler.fields(level: level, message: message, metadata: metadata,
                                 file: "PaywatchDaemon/PaywatchService.swift", function: "log(_:)", line: 164)
            .map(\.description)
    }

    @Test func anEventBecomesMessagePriorityIdentifierItsMetadataAndTheCodeLocation() {
        let entry = fields(.info, "message delivered", [
            "order_id": "A1001", "event": "unpaid_reminder", "channel": "sms", "to": "+86*******0000",
            "attempt": "2", "http_status": "200", "kind": "unpaid_reminder", "delivery_id": "17",
        ])
        #expect(entry == [
            "MESSAGE=message delivered", "PRIORITY=6", "SYSLOG_IDENTIFIER=paywatch",
            "ATTEMPT=2", "CHANNEL=sms", "DELIVERY_ID=17", "EVENT=unpaid_reminder", "HTTP_STATUS=200", "KIND=unpaid_reminder",
            "ORDER_ID=A1001", "TO=+86*******0000",
            "CODE_FILE=PaywatchDaemon/PaywatchService.swift", "CODE_LINE=164", "CODE_FUNC=log(_:)",
        ])
    }

    @Test func levelsAreSyslogPriorities() {
        let expected: [(Logger.Level, Int)] = [(.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2)]
        for (level, priority) in expected {
            #expect(JournalLogHandler.priority(level) == priority)
            #expect(fields(level, "m", [:])[1] == "PRIORITY=\(priority)")
        }
    }

    @Test func keysBecomeValidFieldNames() {
        #expect(JournalLogHandler.fieldName(forKey: "order_id") == "ORDER_ID")
        #expect(JournalLogHandler.fieldName(forKey: "http-status") == "HTTP_STATUS")
        #expect(JournalLogHandler.fieldName(forKey: "retry.at ms") == "RETRY_AT_MS")
        #expect(JournalLogHandler.fieldName(forKey: "订单") == "META_______")  // six UTF-8 bytes, six underscores
        // `_` starts trusted fields only journald may set; a digit cannot start a name.
        #expect(JournalLogHandler.fieldName(forKey: "_pid") == "META__PID")
        #expect(JournalLogHandler.fieldName(forKey: "2fa") == "META_2FA")
        // A key cannot add a second MESSAGE or PRIORITY, nor one journald reads otherwise.
        #expect(JournalLogHandler.fieldName(forKey: "message") == "META_MESSAGE")
        #expect(JournalLogHandler.fieldName(forKey: "Priority") == "META_PRIORITY")
        #expect(JournalLogHandler.fieldName(forKey: "errno") == "META_ERRNO")
        #expect(JournalLogHandler.fieldName(forKey: "") == nil)
        let long = JournalLogHandler.fieldName(forKey: String(repeating: "k", count: 100))
        #expect(long == String(repeating: "K", count: 64))
        for key in ["x", "_", "9", "a-b", "message", String(repeating: "é", count: 40), "CODE_LINE"] {
            let name = JournalLogHandler.fieldName(forKey: key) ?? ""
            #expect(Self.isValidFieldName(name), "\(key) -> \(name)")
        }
    }

    /// journald's rule (journal_field_valid): 1 to 64 characters of `[A-Z0-9_]`, not starting with a digit;
    /// `_` is for journald's own fields.
    static func isValidFieldName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 64, first != UInt8(ascii: "_"),
              !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }

    @Test func valuesKeepTheirBytesNewlinesIncluded() {
        let entry = JournalLogHandler.fields(level: .warning, message: "two\nlines", metadata: ["order_id": "A1\nMESSAGE=forged\u{0}"],
                                             file: "f", function: "g", line: 1)
        #expect(entry[0].value == Array("two\nlines".utf8))
        let order = entry.first { $0.name == "ORDER_ID" }
        #expect(order?.value == Array("A1\nMESSAGE=forged\u{0}".utf8))
        #expect(entry.filter { $0.name == "MESSAGE" }.count == 1)
    }

    @Test func theJournalIsChosenOnlyWhenStderrIsTheStreamNamed() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journal-stream-\(UUID().uuidString)").path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        #expect(PaywatchLogging.isJournalStream("\(info.st_dev):\(info.st_ino)", fd: fd))
        #expect(!PaywatchLogging.isJournalStream("\(info.st_dev):\(info.st_ino + 1)", fd: fd))
        #expect(!PaywatchLogging.isJournalStream("\(info.st_dev + 1):\(info.st_ino)", fd: fd))
        for bad in [nil, "", ":", "\(info.st_dev)", "x:\(info.st_ino)", "\(info.st_dev):\(info.st_ino):1"] as [String?] {
            #expect(!PaywatchLogging.isJournalStream(bad, fd: fd))
        }
        // stderr of this test process is not that file: the line handler.
        #expect(PaywatchLogging.makeHandler(label: "t", level: .info, journalStream: "\(info.st_dev):\(info.st_ino)") is LineLogHandler)
        #expect(PaywatchLogging.makeHandler(label: "t", level: .info, journalStream: nil) is LineLogHandler)
        #expect(PaywatchLogging.makeHandler(label: "t", level: .notice, journalStream: nil).logLevel == .notice)
    }
}
