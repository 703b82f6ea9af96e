import Foundation
import Testing

extension EndToEnd {
    /// The real binary on configurations that must be refused (exit 78, EX_CONFIG) or read with care:
    /// resource and duration limits, an empty file, token files, masked URLs, the store URL.
    @Suite(.serialized) struct ConfigEndToEndTests {
        /// One channel (the smallest valid file) plus `extra`.
        static func config(_ base: String, extra: String = "") -> String {
            """
            \(extra)

            [channels.ops]
            provider = "webhook"
            url = "\(base)/ops"
            to = "oncall"
            """
        }

        /// Runs the binary with `arguments` in `directory`, optionally under `ulimit -n openFiles`.
        static func run(_ arguments: [String], in directory: URL, openFiles: Int? = nil) throws -> (code: Int32, out: String, err: String) {
            try Harness.runBinary(arguments, in: directory, openFiles: openFiles)
        }

        /// Writes `text` as `name` in the harness's folder and returns its path.
        func write(_ h: Harness, _ name: String, _ text: String) throws -> String {
            let path = h.directory.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        @Test func concurrencyBeyondTheCapIsRefusedByCheckConfigAndRun() throws {
            let h = try Harness { Self.config($0, extra: "[delivery]\nconcurrency = 100000\n") }
            for command in ["check-config", "run"] {
                let result = try h.run([command, "--config", h.configPath])
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains("\(h.configPath):4: [delivery] concurrency: must be at most 4096, got 100000"), "\(result.err)")
            }
        }

        @Test func concurrencyThatDoesNotFitTheOpenFilesLimitIsRefused() throws {
            let h = try Harness { Self.config($0, extra: "[delivery]\nconcurrency = 100\n") }
            let result = try Self.run(["check-config", "--config", h.configPath], in: h.directory, openFiles: 150)
            #expect(result.code == 78, "\(result.err)")
            #expect(result.err.contains("\(h.configPath):4: [delivery] concurrency: 100 transfers need 164 open files"), "\(result.err)")
            #expect(result.err.contains("hard limit (RLIMIT_NOFILE) is 150"))
            #expect(result.err.contains("LimitNOFILE=164"))
            #expect(result.out.isEmpty)
            // Under a limit it fits, the same file is fine.
            let fits = try Self.run(["check-config", "--config", h.configPath], in: h.directory, openFiles: 164)
            #expect(fits.code == 0, "\(fits.err)")
        }

        @Test func durationsBeyondAHundredYearsAreRefused() throws {
            let h = try Harness { Self.config($0, extra: "[daemon]\npoll_interval = \"106751991167d\"\n") }
            for command in ["check-config", "run"] {
                let result = try h.run([command, "--config", h.configPath])
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains(
                    "\(h.configPath):4: [daemon] poll_interval: duration \"106751991167d\" is longer than 100 years"), "\(result.err)")
            }
            // report --since takes the same limit.
            let good = try Harness { Self.config($0) }
            #expect(try good.run(["migrate", "--config", good.configPath]).code == 0)
            let report = try good.run(["report", "--config", good.configPath, "--since", "106751991167d"])
            #expect(report.code == 64, "\(report.err)")
            #expect(report.err.contains("longer than 100 years"))
            #expect(try good.run(["report", "--config", good.configPath, "--since", "36500d"]).code == 0)
        }

        @Test func aConfigWithoutAnyChannelIsRefused() throws {
            let h = try Harness { _ in "" }
            let empty = try write(h, "empty.toml", "")
            for (path, command) in [(empty, "check-config"), (empty, "run"), (h.configPath, "check-config"), (h.configPath, "run")] {
                let result = try h.run([command, "--config", path])
                #expect(result.code == 78, "\(command) \(path): \(result.err)")
                #expect(result.err.contains("\(path): no channel is configured: add a [channels.NAME] section"), "\(result.err)")
            }
            #expect(!FileManager.default.fileExists(atPath: h.dbPath))
        }

        @Test func aTokenFileWithALineBreakInsideIsRefusedWithoutShowingIt() throws {
            let h = try Harness { _ in "" }
            let token = try write(h, "sms.token", "abc123-pwsecret\r\nX-Injected: yes\n")
            try (try String(contentsOfFile: h.configPath, encoding: .utf8) + """

                [channels.sms]
                provider = "webhook"
                url = "\(h.gateway.baseURL)/sms"
                token_file = "\(token)"
                """).write(toFile: h.configPath, atomically: true, encoding: .utf8)
            for command in ["check-config", "run", "send-test"] {
                let arguments = command == "send-test" ? [command, "--config", h.configPath, "--channel", "sms", "--to", "+8613800000000"]
                    : [command, "--config", h.configPath]
                let result = try h.run(arguments)
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains("\(h.configPath):7: [channels.sms] token_file: \(token) holds more than one line"), "\(result.err)")
                #expect(!(result.out + result.err).contains("abc123-pwsecret"))
                #expect(!(result.out + result.err).contains("Injected"))
            }
            #expect(h.gateway.requests().isEmpty)
            // One trailing newline (and blanks around) is fine.
            try "  abc123-pwsecret \n".write(toFile: token, atomically: true, encoding: .utf8)
            let fine = try h.run(["check-config", "--config", h.configPath])
            #expect(fine.code == 0, "\(fine.err)")
            #expect(!fine.out.contains("abc123-pwsecret"))
            // Readable by others: a warning on stderr naming the file, line and key; none once it is the owner's alone.
            #expect(chmod(token, 0o644) == 0)
            let exposed = try h.run(["check-config", "--config", h.configPath])
            #expect(exposed.code == 0, "\(exposed.err)")
            #expect(exposed.err.contains("warning: \(h.configPath):7: [channels.sms] token_file: \(token) is readable by group or others (mode 0644)"),
                    "\(exposed.err)")
            #expect(chmod(token, 0o600) == 0)
            #expect(try !h.run(["check-config", "--config", h.configPath]).err.contains("readable by group or others"))
            for bad in ["", "\n", "abc 123\n", "abc\u{7}123", "abc\n\n"] {
                try bad.write(toFile: token, atomically: true, encoding: .utf8)
                let result = try h.run(["check-config", "--config", h.configPath])
                #expect(result.code == 78, "\(bad.debugDescription): \(result.err)")
                #expect(result.err.contains("[channels.sms] token_file: \(token) "))
            }
        }

        @Test func checkConfigMasksPasswordsAndQueryValuesInEveryURL() throws {
            let h = try Harness { base in
                let authority = base.replacingOccurrences(of: "http://", with: "")
                return """
                    [paying]
                    reconcile_url = "https://psp:psp-pwsecret-1@psp.example/v1/payments/{provider_ref}?merchant=m-pwsecret-2"

                    [channels.sms]
                    provider = "webhook"
                    url = "http://gw-user:hunter2-pwsecret-3@\(authority)/sms?api_key=pwsecret-4&sig=pwsecret-5"

                    [channels.ops]
                    provider = "webhook"
                    url = "\(base)/ops?token=pwsecret-6"
                    """
            }
            let result = try h.run(["check-config", "--config", h.configPath])
            #expect(result.code == 0, "\(result.err)")
            for secret in ["psp-pwsecret-1", "m-pwsecret-2", "hunter2-pwsecret-3", "pwsecret-4", "pwsecret-5", "pwsecret-6"] {
                #expect(!(result.out + result.err).contains(secret), "\(secret)")
            }
            #expect(result.out.contains("/sms?api_key=****&sig=****\""), "\(result.out)")
            #expect(result.out.contains("gw-user:****@"))
            #expect(result.out.contains("reconcile_url = \"https://psp:****@psp.example/v1/payments/{provider_ref}?merchant=****\""))
            // The printed configuration is itself a valid one.
            let printed = try write(h, "printed.toml", result.out)
            #expect(try h.run(["check-config", "--config", printed]).code == 0)
        }

        @Test func aStoreURLThatIsAFolderOrNotADatabaseIsAConfigError() throws {
            let h = try Harness { Self.config($0) }
            try FileManager.default.createDirectory(atPath: h.dbPath, withIntermediateDirectories: true)
            for arguments in [["migrate"], ["run", "--once"], ["orders", "list"], ["report"]] {
                let result = try h.run(arguments + ["--config", h.configPath])
                #expect(result.code == 78, "\(arguments): \(result.err)")
                #expect(result.err.contains("\(h.configPath):2: [store] url: \(h.dbPath) is a folder, not a database file"), "\(result.err)")
            }
            try FileManager.default.removeItem(atPath: h.dbPath)
            try "this is not a database, just text that is long enough\n".write(toFile: h.dbPath, atomically: true, encoding: .utf8)
            let garbage = try h.run(["migrate", "--config", h.configPath])
            #expect(garbage.code == 78, "\(garbage.err)")
            #expect(garbage.err.contains("[store] url: \(h.dbPath) is not an SQLite database"), "\(garbage.err)")
            // A folder that is a file: the database cannot be created under it.
            let under = try write(h, "under.toml", "[store]\nurl = \"sqlite://\(h.dbPath)/x.db\"\n" + Self.config(h.gateway.baseURL))
            let blocked = try h.run(["migrate", "--config", under])
            #expect(blocked.code == 78, "\(blocked.err)")
            #expect(blocked.err.contains("[store] url: "), "\(blocked.err)")
        }

        @Test func sqliteModeOption() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
            let readOnly = try write(h, "ro.toml", text.replacingOccurrences(of: "paywatch.db\"", with: "paywatch.db?mode=ro\""))
            for command in ["migrate", "run"] {
                let result = try h.run([command, "--config", readOnly])
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains(
                    "\(readOnly):2: [store] url: the store is opened read-only (mode=ro) but \(command) needs to write"), "\(result.err)")
            }
            // The read-only commands open the same file (not a file named "paywatch.db?mode=ro").
            let list = try h.run(["orders", "list", "--config", readOnly])
            #expect(list.code == 0, "\(list.err)")
            #expect(try h.run(["report", "--config", readOnly]).code == 0)
            #expect(!FileManager.default.fileExists(atPath: h.dbPath + "?mode=ro"))
            let unknown = try write(h, "bad.toml", text.replacingOccurrences(of: "paywatch.db\"", with: "paywatch.db?cache=shared\""))
            let bad = try h.run(["check-config", "--config", unknown])
            #expect(bad.code == 78)
            #expect(bad.err.contains("[store] url: unknown sqlite option \"cache=shared\""), "\(bad.err)")
            // mode=rw does not create a missing database.
            let missing = try write(h, "rw.toml", text.replacingOccurrences(of: "paywatch.db\"", with: "other.db?mode=rw\""))
            let rw = try h.run(["migrate", "--config", missing])
            #expect(rw.code == 78, "\(rw.err)")
            #expect(!FileManager.default.fileExists(atPath: h.directory.appendingPathComponent("other.db").path))
        }

        @Test func aRelativeSQLitePathIsBesideTheConfigFileNotTheWorkingDirectory() throws {
            let h = try Harness { _ in "" }
            let folder = h.directory.appendingPathComponent("etc")
            let elsewhere = h.directory.appendingPathComponent("elsewhere")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: elsewhere, withIntermediateDirectories: true)
            let config = folder.appendingPathComponent("x.toml").path
            try ("[store]\nurl = \"sqlite://x.db\"\n" + Self.config(h.gateway.baseURL)).write(toFile: config, atomically: true, encoding: .utf8)
            let migrated = try Self.run(["migrate", "--config", config], in: elsewhere)
            #expect(migrated.code == 0, "\(migrated.err)")
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("x.db").path))
            #expect(!FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("x.db").path))
            #expect(migrated.out.contains("sqlite://\(folder.path)/x.db"), "\(migrated.out)")
            // check-config shows the resolved path.
            let checked = try Self.run(["check-config", "--config", config], in: elsewhere)
            #expect(checked.out.contains("url = \"sqlite://\(folder.path)/x.db\""), "\(checked.out)")
            // A relative --config: the same file, from its own folder and from its parent.
            let fromFolder = try Self.run(["orders", "list", "--config", "x.toml"], in: folder)
            #expect(fromFolder.code == 0, "\(fromFolder.err)")
            let fromParent = try Self.run(["report", "--config", "etc/x.toml"], in: h.directory)
            #expect(fromParent.code == 0, "\(fromParent.err)")
            // A nested relative path: its folders are created beside the config file.
            try ("[store]\nurl = \"sqlite://data/y.db\"\n" + Self.config(h.gateway.baseURL)).write(toFile: config, atomically: true, encoding: .utf8)
            #expect(try Self.run(["migrate", "--config", config], in: elsewhere).code == 0)
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("data/y.db").path))
        }
    }
}
