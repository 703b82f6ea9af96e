import Foundation
import Testing

extension EndToEnd {
    /// `scripts/install.sh --root DIR` with the binary just built: what lands where, with which
    /// mode; a configuration is never overwritten; `--uninstall` removes the rest and keeps it.
    @Suite(.serialized) struct InstallScriptTests {
        static let script = Repository.root.appendingPathComponent("scripts/install.sh").path
        static let installed: [(path: String, mode: Int)] = [
            ("usr/local/bin/paywatch", 0o755),
            ("usr/local/lib/systemd/system/paywatch.service", 0o644),
            ("usr/local/lib/sysusers.d/paywatch.conf", 0o644),
            ("usr/local/share/doc/paywatch/README.md", 0o644),
            ("etc/paywatch/paywatch.toml", 0o644),
        ]

        func mode(_ path: String) -> Int? {
            (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
        }

        func install(_ root: URL, _ arguments: [String] = []) throws -> (code: Int32, out: String, err: String, pid: Int32) {
            try Command.run(["/bin/bash", Self.script, "--root", root.path] + arguments)
        }

        @Test func installsIntoARootKeepsTheConfigurationAndUninstalls() throws {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-root-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: root) }
            func file(_ path: String) -> String { root.appendingPathComponent(path).path }

            let first = try install(root, ["--binary", Harness.binary])
            #expect(first.code == 0, "\(first.err)")
            for (path, mode) in Self.installed {
                #expect(self.mode(file(path)) == mode, "\(path)")
            }
            #expect(FileManager.default.contentsEqual(atPath: file("usr/local/bin/paywatch"), andPath: Harness.binary))
            #expect(FileManager.default.contentsEqual(atPath: file("usr/local/lib/systemd/system/paywatch.service"), andPath: Repository.unit.path))
            #expect(FileManager.default.contentsEqual(atPath: file("etc/paywatch/paywatch.toml"),
                                                      andPath: Repository.root.appendingPathComponent("config/paywatch.toml").path))
            #expect(first.out.contains("--root: no user created, systemctl not called"))
            // The installed binary works and accepts the installed example configuration.
            let check = try Command.run([file("usr/local/bin/paywatch"), "check-config", "--config", file("etc/paywatch/paywatch.toml")])
            #expect(check.code == 0, "\(check.err)")

            // A second install (an upgrade) keeps the user's configuration as it is.
            try "# mine\n".write(toFile: file("etc/paywatch/paywatch.toml"), atomically: true, encoding: .utf8)
            let again = try install(root, ["--binary", Harness.binary])
            #expect(again.code == 0)
            #expect(again.out.contains("kept \(file("etc/paywatch/paywatch.toml"))"))
            #expect(try String(contentsOfFile: file("etc/paywatch/paywatch.toml"), encoding: .utf8) == "# mine\n")

            // Uninstall: everything but the configuration and the data goes, and it says so.
            try FileManager.default.createDirectory(atPath: file("var/lib/paywatch"), withIntermediateDirectories: true)
            try "db".write(toFile: file("var/lib/paywatch/paywatch.db"), atomically: true, encoding: .utf8)
            let removed = try install(root, ["--uninstall"])
            #expect(removed.code == 0, "\(removed.err)")
            for (path, _) in Self.installed where !path.hasPrefix("etc/") {
                #expect(!FileManager.default.fileExists(atPath: file(path)), "\(path)")
            }
            #expect(FileManager.default.fileExists(atPath: file("etc/paywatch/paywatch.toml")))
            #expect(FileManager.default.fileExists(atPath: file("var/lib/paywatch/paywatch.db")))
            #expect(removed.out.contains("kept: \(file("etc/paywatch")) (configuration), \(file("var/lib/paywatch")) (database)"))
        }

        @Test func aMissingBinaryOrAnUnknownArgumentIsRefused() throws {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-root-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: root) }
            let missing = try install(root, ["--binary", root.appendingPathComponent("nope").path])
            #expect(missing.code == 66)
            #expect(missing.err.contains("is not an executable file"))
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("usr/local/bin/paywatch").path))
            #expect(try install(root, ["--frobnicate"]).code == 64)
        }
    }
}
