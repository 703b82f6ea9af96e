import Foundation
import PaywatchTestSupport

/// Runs a system tool (systemd-analyze, journalctl, scripts/install.sh, …) to completion.
enum Command {
    /// The first executable `name` in the usual system folders, else nil: tests look for tools
    /// there rather than in `$PATH`, which a developer's shell may point at other builds.
    static func find(_ name: String) -> String? {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"].map { "\($0)/\(name)" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `argv` with `environment` added to this process's; returns exit code, stdout, stderr and
    /// the pid it had. A command that hangs is killed after `seconds`, so the suite fails instead of hanging.
    /// - Parameter stderrFile: an existing file that receives stderr and is kept; by default a
    ///   temporary one, removed.
    /// - Parameter keepLog: whether its output is kept in the run's log folder (``TestLogs``) for
    ///   `scripts/secret-grep.sh`; only the tests of that script itself, which plant secrets, say no.
    static func run(_ argv: [String], environment: [String: String] = [:], in directory: URL? = nil,
                    stderrFile: URL? = nil, seconds: Double = 60, keepLog: Bool = true) throws -> (code: Int32, out: String, err: String, pid: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let directory { process.currentDirectoryURL = directory }
        // stdout through a pipe, stderr into a file: a tool that filled a second pipe while this
        // process waits on the first would block forever.
        let errFile = stderrFile ?? FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-cmd-\(UUID().uuidString).err")
        if stderrFile == nil { _ = FileManager.default.createFile(atPath: errFile.path, contents: nil) }
        defer { if stderrFile == nil { try? FileManager.default.removeItem(at: errFile) } }
        let err = try FileHandle(forWritingTo: errFile)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let pid = process.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: watchdog)
        defer { watchdog.cancel() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try err.close()
        let errText = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
        // Everything a command printed is kept for the secret grep (a stderrFile is kept already).
        let name = "e2e-" + URL(fileURLWithPath: argv[0]).lastPathComponent + "-" + (argv.dropFirst().first ?? "")
        if keepLog { TestLogs.keep(name, String(decoding: outData, as: UTF8.self) + (stderrFile == nil ? errText : "")) }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), errText, pid)
    }
}
