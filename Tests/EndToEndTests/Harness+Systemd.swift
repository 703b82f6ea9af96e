import Foundation
import GRDB

extension Harness {
    /// Runs the binary to completion with its stderr in the file `logPath` and `JOURNAL_STREAM` set
    /// to that file's `st_dev:st_ino` — what systemd does for a service whose stderr is the journal,
    /// so the binary takes the file for its journal stream. `wrapper` runs before it (e.g. `unshare`).
    /// Returns the exit code and the pid that logged (the binary's: wrappers `exec` it).
    func runAsJournalService(_ arguments: [String], logPath: String, wrapper: [String] = []) throws -> (code: Int32, pid: Int32) {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        var info = stat()
        guard stat(logPath, &info) == 0 else { throw TestSetupError(description: "cannot stat \(logPath)") }
        let result = try Command.run(wrapper + [Harness.binary] + arguments, environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"],
                                     stderrFile: URL(fileURLWithPath: logPath), seconds: 30)
        return (result.code, result.pid)
    }

    /// A harness on ``EndToEndTests/config(_:concurrency:maxAttempts:ops:extra:)`` with the store
    /// migrated and each of `orders` (phone +8613800000000) created 1.5 s ago: due its first
    /// reminder on sms, not yet its cancel.
    static func withRemindersDue(_ orders: [String]) throws -> Harness {
        let h = try Harness { EndToEnd.EndToEndTests.config($0) }
        let migrated = try h.run(["migrate", "--config", h.configPath])
        guard migrated.code == 0 else { throw TestSetupError(description: "migrate failed: \(migrated.err)") }
        try h.shop().write { db in
            for order in orders {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 100, ?, '+8613800000000')",
                               arguments: [order, Harness.nowMs() - 1_500])
            }
        }
        return h
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}
