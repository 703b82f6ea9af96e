import Foundation
import PaywatchTestSupport
import Testing

/// `scripts/secret-grep.sh`, run after the suite on the logs it kept, on folders made here: it
/// catches a planted secret (as such, base64-encoded, or registered at run time), and it does not
/// pass on an empty folder.
@Suite struct SecretGrepTests {
    static let script = Repository.root.appendingPathComponent("scripts/secret-grep.sh").path

    /// A folder laid out as TestLogs lays it out, with `logs` (name → text) in one run.
    static func folder(_ logs: [String: String], registry: String? = nil) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-secret-grep-\(UUID().uuidString)")
        let run = dir.appendingPathComponent("run-1")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        for (name, text) in logs { try text.write(to: run.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        if let registry { try registry.write(to: run.appendingPathComponent("secrets.registry"), atomically: true, encoding: .utf8) }
        return dir
    }

    static func grep(_ dir: URL) throws -> (code: Int32, out: String, err: String) {
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try Command.run(["/bin/bash", script, dir.path], seconds: 30, keepLog: false)
        return (result.code, result.out, result.err)
    }

    static let clean = "2026-11-26T07:22:16.000Z INFO delivered channel=sms order_id=A1 to=+86*******8000\n"

    @Test func cleanLogsPass() throws {
        let result = try Self.grep(try Self.folder(["daemon-a.log": Self.clean, "e2e-b.log": Self.clean]))
        #expect(result.code == 0, "\(result.out) \(result.err)")
        #expect(result.out.contains("2 logs"))
    }

    @Test func aPlantedSecretFailsNamingFileAndLine() throws {
        let leak = "2026-11-26T07:22:17.000Z WARNING retry reason=\"HTTP 401 for Bearer tok-e2e-PWSECRET\"\n"
        let result = try Self.grep(try Self.folder(["daemon-a.log": Self.clean + leak, "e2e-b.log": Self.clean]))
        #expect(result.code == 1)
        #expect(result.out.contains("run-1/daemon-a.log:2:"), "\(result.out)")
        #expect(!result.out.contains("e2e-b.log"))
        #expect(result.err.contains("a secret the tests used appears"))
    }

    @Test func aSecretInBase64AtAnyAlignmentFails() throws {
        for credentials in ["AC9:tok-e2e-pwsecret", "AC9:tok-e2e-pwsecret1", "\0shop\0smtp-pwsecret-7d1f"] {
            let encoded = Data(credentials.utf8).base64EncodedString()
            let result = try Self.grep(try Self.folder(["e2e-a.log": "Authorization: Basic \(encoded)\n"]))
            #expect(result.code == 1, "\(encoded)")
        }
    }

    @Test func aRegisteredSecretFails() throws {
        let line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
        let result = try Self.grep(try Self.folder(["e2e-a.log": Self.clean + "key: \(line)\n"],
                                                  registry: line + "\n"))
        #expect(result.code == 1)
        #expect(result.out.contains("e2e-a.log:2:"))
    }

    @Test func noLogAtAllFails() throws {
        let empty = try Self.grep(try Self.folder([:]))
        #expect(empty.code == 2)
        #expect(empty.err.contains("holds no log"))
        let emptyFile = try Self.grep(try Self.folder(["e2e-a.log": ""]))
        #expect(emptyFile.code == 2)
        let missing = try Command.run(["/bin/bash", Self.script, "/nonexistent/paywatch-logs"], seconds: 30, keepLog: false)
        #expect(missing.code == 2)
    }

    /// This very run keeps its logs where the script looks by default.
    @Test func thisRunKeepsItsLogsInTheFolderTheScriptReads() throws {
        let path = TestLogs.file("e2e-secret-grep-self")
        #expect(path.hasPrefix(TestLogs.baseDirectory + "/run-"))
        #expect(FileManager.default.fileExists(atPath: path))
    }
}
