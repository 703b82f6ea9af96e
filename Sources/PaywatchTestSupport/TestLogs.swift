import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Where the test run keeps every log it produces (the real binary's stdout and stderr, the
/// in-process daemon's log lines), so that `scripts/secret-grep.sh`, run after the suite, can look
/// for every secret the tests used in all of them.
///
/// Secrets written as literals in tests contain the marker ``marker`` (`pwsecret`); secrets
/// made while the tests run (a service account's private key) are written to a registry beside
/// the logs with ``registerSecret(_:)``.
///
/// The folder is `$PAYWATCH_TEST_LOGS`, else `$TMPDIR/paywatch-test-logs` (`/tmp` without
/// `TMPDIR`). Each `swift test` gets a sub-folder `run-PID` named after the process that started
/// the test binary (`swift test` runs it once per test library, both times as its child); the
/// first log of a run removes the folders of earlier runs whose process is gone (a `swift test`
/// still running in another worktree keeps its own).
public enum TestLogs {
    /// The marker every literal secret in the tests contains.
    public static let marker = "pwsecret"

    /// The folder shared by every run; the secret grep reads all of it.
    public static var baseDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["PAYWATCH_TEST_LOGS"], !dir.isEmpty { return dir }
        return FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-test-logs").path
    }

    /// This run's folder, made (and earlier runs' removed) at first use.
    public static var directory: String { runDirectory }

    private static let runDirectory = runFolder(in: baseDirectory)

    /// `base/run-PPID`, made; the `run-*` folders of `swift test` runs that are over are removed.
    static func runFolder(in base: String) -> String {
        let name = "run-\(getppid())"
        let fm = FileManager.default
        for old in (try? fm.contentsOfDirectory(atPath: base)) ?? [] where old.hasPrefix("run-") && old != name {
            if let pid = Int32(old.dropFirst(4)), kill(pid, 0) == 0 || errno == EPERM { continue }  // still running
            try? fm.removeItem(atPath: base + "/" + old)
        }
        let dir = base + "/" + name
        try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A new, empty log file's path in this run's folder: `NAME-UNIQUE.log`.
    public static func file(_ name: String) -> String {
        let safe = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(60))
        let path = directory + "/\(safe)-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        return path
    }

    /// Keeps `text` (a command's output) as a log file of its own; empty text is not kept.
    public static func keep(_ name: String, _ text: String) {
        guard !text.isEmpty else { return }
        let path = file(name)
        try? Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    private static let registryLock = NSLock()

    /// Adds a secret the tests made at run time to the registry (`secrets.registry` in this run's
    /// folder), one line per line of it that is long enough to be telling (a PEM key's base64
    /// lines; the armour lines are left out).
    public static func registerSecret(_ secret: String) {
        let lines = secret.split(whereSeparator: \.isNewline).map(String.init)
            .filter { $0.count >= 16 && !$0.hasPrefix("-----") }
        guard !lines.isEmpty else { return }
        registryLock.withLock {
            let path = directory + "/secrets.registry"
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else { return }
            handle.seekToEndOfFile()
            handle.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            try? handle.close()
        }
    }
}
