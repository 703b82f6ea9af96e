import Foundation
import GRDB
import PaywatchTestSupport
import Testing

/// The repository's files outside Sources and Tests: the unit, the scripts.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let unit = root.appendingPathComponent("systemd/paywatch.service")
}

extension EndToEnd {
    /// `systemd/paywatch.service` as systemd's own tools judge it, and the hardening it promises
    /// checked against the real binary where this machine can.
    @Suite(.serialized) struct SystemdUnitTests {
        static var analyze: String? {
            let path = Command.find("systemd-analyze")
            if path == nil { print("skipped: systemd-analyze is missing") }
            return path
        }

        /// The unit's `Key=value` lines (comments and sections left out); a key may repeat.
        static func directives() throws -> [(key: String, value: String)] {
            try String(contentsOf: Repository.unit, encoding: .utf8).split(separator: "\n").compactMap { line in
                guard !line.hasPrefix("#"), !line.hasPrefix("["), let equals = line.firstIndex(of: "=") else { return nil }
                return (String(line[..<equals]), String(line[line.index(after: equals)...]))
            }
        }

        /// The overall exposure from `systemd-analyze security` output (`→ Overall exposure level for
        /// paywatch.service: 1.1 OK 🙂`).
        static func exposure(_ output: String) -> Double? {
            guard let line = output.split(separator: "\n").last(where: { $0.contains("Overall exposure level") }),
                  let colon = line.lastIndex(of: ":") else { return nil }
            return line[line.index(after: colon)...].split(separator: " ").first.flatMap { Double($0) }
        }

        @Test func exposureIsAtMostOnePointFive() throws {
            guard let analyze = Self.analyze else { return }
            let result = try Command.run([analyze, "security", "--offline=yes", "--no-pager", Repository.unit.path])
            #expect(result.code == 0, "\(result.err)")
            let exposure = try #require(Self.exposure(result.out), "no exposure in: \(result.out.suffix(300))")
            print("systemd-analyze security --offline=yes: exposure \(exposure)")
            #expect(exposure <= 1.5)
            // The score of a unit without hardening, so that the parse above is known to read the right number.
            let bare = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-bare-\(UUID().uuidString).service")
            try "[Service]\nExecStart=/bin/true\n".write(to: bare, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: bare) }
            let unhardened = try Command.run([analyze, "security", "--offline=yes", "--no-pager", bare.path])
            #expect((Self.exposure(unhardened.out) ?? 0) > 9)
        }

        /// `systemd-analyze verify` checks every directive and that the commands exist and are
        /// executable. `/usr/local/bin/paywatch` is not installed on a build machine: a copy of the unit
        /// names the binary just built instead; everything else is verified as shipped.
        @Test func verifyFindsNothingToSay() throws {
            guard let analyze = Self.analyze else { return }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-verify-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }
            let unit = try String(contentsOf: Repository.unit, encoding: .utf8)
            #expect(unit.contains("/usr/local/bin/paywatch "))
            let copy = folder.appendingPathComponent("paywatch.service")
            try unit.replacingOccurrences(of: "/usr/local/bin/paywatch", with: Harness.binary).write(to: copy, atomically: true, encoding: .utf8)
            let result = try Command.run([analyze, "verify", copy.path])
            #expect(result.code == 0)
            #expect(result.out.isEmpty && result.err.isEmpty, "\(result.out)\(result.err)")
            // verify does complain, on the same copy, about a directive it does not know.
            try (unit.replacingOccurrences(of: "/usr/local/bin/paywatch", with: Harness.binary) + "\n[Service]\nProtectEverything=yes\n")
                .write(to: copy, atomically: true, encoding: .utf8)
            #expect(try Command.run([analyze, "verify", copy.path]).err.contains("ProtectEverything"))
        }

        /// What the daemon relies on, which a score alone would not catch if it went missing.
        @Test func theUnitDeclaresTheServiceContract() throws {
            let directives = try Self.directives()
            func values(_ key: String) -> [String] { directives.filter { $0.key == key }.map(\.value) }
            #expect(values("Type") == ["notify"])
            #expect(values("NotifyAccess") == ["main"])
            #expect(values("WatchdogSec") == ["30s"])
            #expect(values("ExecReload") == ["/bin/kill -HUP $MAINPID"])
            #expect(values("ExecStartPre") == ["/usr/local/bin/paywatch migrate --config /etc/paywatch/paywatch.toml"])
            #expect(values("ExecStart") == ["/usr/local/bin/paywatch run --config /etc/paywatch/paywatch.toml"])
            #expect(values("RestartPreventExitStatus") == ["78"])
            #expect(values("TimeoutStopSec") == ["30s"])
            #expect(values("StateDirectory") == ["paywatch"])
            #expect(values("ConfigurationDirectory") == ["paywatch"])
            #expect(values("UMask") == ["0077"])
            #expect(values("LimitNOFILE") == ["65536"])
            #expect(values("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"])
            #expect(values("SystemCallFilter") == ["@system-service", "~@privileged @resources"])
            #expect(values("CapabilityBoundingSet") == [""])
            #expect(values("MemoryDenyWriteExecute") == ["yes"])
            // The default store of the example configuration is inside StateDirectory=, the only
            // place ProtectSystem=strict leaves writable.
            let example = try String(contentsOf: Repository.root.appendingPathComponent("config/paywatch.toml"), encoding: .utf8)
            #expect(example.contains(#"url = "sqlite:///var/lib/paywatch/paywatch.db""#))
        }

        /// MemoryDenyWriteExecute=yes is safe only if nothing in the process maps memory writable and
        /// executable (no JIT; no executable stack). The kernel's own switch for it, PR_SET_MDWE
        /// (Linux 6.3+; what systemd uses where it can), is set before exec'ing the real binary, which
        /// then serves an order: SQLite, libcurl, OpenSSL and Swift concurrency all run under it.
        @Test func theBinaryRunsWithMemoryDenyWriteExecute() throws {
            guard let python = Command.find("python3") else {
                print("skipped: python3 is missing (it sets PR_SET_MDWE before exec)")
                return
            }
            let h = try Harness.withRemindersDue(["MDWE"])
            let script = """
                import ctypes, os, sys
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
                    print("PR_SET_MDWE is not supported by this kernel"); sys.exit(77)
                libc.mmap.restype = ctypes.c_void_p
                if libc.mmap(None, 4096, 7, 0x22, -1, 0) != 2**64 - 1:  # PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS
                    print("a writable and executable mapping was allowed"); sys.exit(70)
                os.execv(sys.argv[1], sys.argv[1:])
                """
            let result = try Command.run([python, "-c", script, Harness.binary, "run", "--once", "--config", h.configPath])
            if result.code == 77 {
                print("skipped: \(result.out)")
                return
            }
            #expect(result.code == 0, "\(result.out)\(result.err)")
            #expect(EndToEndTests().kinds(h.gateway.requests(), order: "MDWE").map(\.kind) == ["unpaid_reminder"])
        }

        /// The system calls `SystemCallFilter=` entries stand for (`@system-service`, `~@privileged
        /// @resources`), nested groups expanded, as systemd-analyze lists them.
        static func syscalls(in group: String, analyze: String) throws -> Set<String> {
            let listing = try Command.run([analyze, "syscall-filter", group]).out
            var names = Set<String>()
            for line in listing.split(separator: "\n").dropFirst() {
                let word = line.trimmingCharacters(in: .whitespaces)
                if word.isEmpty || word.hasPrefix("#") { continue }
                if word.hasPrefix("@") { names.formUnion(try syscalls(in: word, analyze: analyze)) } else { names.insert(word) }
            }
            return names
        }

        /// What the unit's `SystemCallFilter=` lines allow: the union of the allow lists minus the
        /// union of the `~` deny lists.
        static func allowedSyscalls(analyze: String) throws -> Set<String> {
            var allowed = Set<String>(), denied = Set<String>()
            for value in try directives().filter({ $0.key == "SystemCallFilter" }).map(\.value) {
                let deny = value.hasPrefix("~")
                for word in value.dropFirst(deny ? 1 : 0).split(separator: " ") {
                    let names = word.hasPrefix("@") ? try syscalls(in: String(word), analyze: analyze) : [String(word)]
                    if deny { denied.formUnion(names) } else { allowed.formUnion(names) }
                }
            }
            return allowed.subtracting(denied)
        }

        /// Every system call the real binary makes while it serves an order (SQLite, libcurl, Swift
        /// concurrency) as a non-root user, as under the unit, traced with strace: all are allowed by
        /// the unit's filter but `setpriority`, which libdispatch calls per worker thread to set its
        /// nice value and whose failure it ignores (a non-root service gets EACCES for it anyway;
        /// under the filter it gets EPERM, `SystemCallErrorNumber=`).
        @Test func theFilterAllowsEverySystemCallTheBinaryMakes() throws {
            guard let analyze = Self.analyze, let strace = Self.strace else { return }
            let h = try Harness.withRemindersDue(["SYSCALLS"])
            let trace = h.directory.appendingPathComponent("strace.txt").path
            let result = try Command.run(try Self.traced(["run", "--once", "--config", h.configPath], strace: strace, into: trace, h))
            #expect(result.code == 0, "\(result.err)")
            #expect(EndToEndTests().kinds(h.gateway.requests(), order: "SYSCALLS").map(\.kind) == ["unpaid_reminder"])
            let used = try Self.syscalls(traced: trace)
            let allowed = try Self.allowedSyscalls(analyze: analyze)
            #expect(used.count > 30 && allowed.count > 200)
            #expect(used.subtracting(allowed).subtracting(["setpriority"]).isEmpty, "denied: \(used.subtracting(allowed).sorted())")
        }

        /// The same for the daemon as the unit runs it: `Type=notify` with a watchdog, the metrics
        /// endpoint scraped, a reload on SIGHUP, a stop on SIGTERM.
        @Test func theFilterAllowsEverySystemCallOfTheServiceItsReloadAndItsMetrics() throws {
            guard let analyze = Self.analyze, let strace = Self.strace else { return }
            let h = try Harness.withRemindersDue(["SERVICE"])
            let port = freePort()
            try (String(contentsOfFile: h.configPath, encoding: .utf8) + "\n[metrics]\nlisten = \"127.0.0.1:\(port)\"\n")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            let notify = try NotifySocket()
            chmod(notify.path, 0o777)
            let trace = h.directory.appendingPathComponent("strace.txt").path
            let command = try Self.traced(["run", "--config", h.configPath], strace: strace, into: trace, h)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
            process.environment = ProcessInfo.processInfo.environment.merging(
                ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"]) { $1 }
            _ = FileManager.default.createFile(atPath: h.stderrPath, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: h.stderrPath))
            try process.run()
            defer { if process.isRunning { process.terminate() } }
            #expect(Harness.eventually(20) { notify.first("READY=1") != nil })
            #expect(Harness.eventually(10) { h.gateway.requests().contains { $0.path == "/sms" } })
            #expect(Harness.eventually(5) { httpGet(port: port, path: "/metrics")?.status == 200 })
            // The traced binary itself (strace and setpriv are its ancestors), by its own config
            // path: other paywatch processes on the machine (another checkout's tests) are not ours.
            let pid = try #require(Self.pids(named: "paywatch", with: h.configPath).first)
            kill(pid, SIGHUP)
            #expect(Harness.eventually(10) { h.log.contains("configuration reloaded") })
            kill(pid, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            #expect(notify.first("STOPPING=1") != nil)
            let used = try Self.syscalls(traced: trace)
            let allowed = try Self.allowedSyscalls(analyze: analyze)
            #expect(used.count > 30 && used.isSuperset(of: ["bind", "listen", "accept", "sendmsg"]), "\(used.sorted())")
            #expect(used.subtracting(allowed).subtracting(["setpriority"]).isEmpty, "denied: \(used.subtracting(allowed).sorted())")
        }

        /// strace, or nil (and a printed reason) where it is missing.
        static var strace: String? {
            let found = Command.find("strace")
            if found == nil { print("skipped: strace is missing") }
            return found
        }

        /// The binary with `arguments` under `strace -f` (output to `trace`); as root, run as nobody,
        /// so that nothing root alone does (SQLite's fchown of its journal files) is counted.
        static func traced(_ arguments: [String], strace: String, into trace: String, _ h: Harness) throws -> [String] {
            let command = [strace, "-f", "-qq", "-o", trace, Harness.binary] + arguments
            guard geteuid() == 0, let setpriv = Command.find("setpriv") else { return command }
            #expect(try Command.run(["/bin/chown", "-R", "65534:65534", h.directory.path]).code == 0)
            return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        }

        /// The system calls named in an `strace -f -qq` output file.
        static func syscalls(traced path: String) throws -> Set<String> {
            Set(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
                // "PID name(args…"; "<... name resumed>" and "--- SIGNAL …" lines name no new call.
                guard let open = line.firstIndex(of: "("), let space = line.firstIndex(of: " ") else { return nil }
                let name = line[space..<open].trimmingCharacters(in: .whitespaces)
                return !name.isEmpty && name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "_" }) ? name : nil
            })
        }

        /// The pids of the processes whose command name (`/proc/PID/comm`) is `name` and whose
        /// command line holds `argument`.
        static func pids(named name: String, with argument: String) -> [Int32] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
                guard let pid = Int32(entry),
                      let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
                      comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                      let line = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                      line.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == argument })
                else { return nil }
                return pid
            }
        }

        /// A `token_file` naming a credential, run outside systemd (no `$CREDENTIALS_DIRECTORY`):
        /// `check-config` and `run` stop with exit 78 and say what is missing, naming file, line and key.
        @Test func aCredentialWithoutLoadCredentialIsAConfigurationError() throws {
            let h = try Harness { base in
                EndToEndTests.config(base) + "\n[channels.push]\nprovider = \"webhook\"\nurl = \"\(base)/push\"\ntoken_file = \"$CREDENTIALS_DIRECTORY/push.token\"\n"
            }
            let line = try String(contentsOfFile: h.configPath, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
                .firstIndex { $0.hasPrefix("token_file") }.map { $0 + 1 }
            for command in [["check-config"], ["run", "--once"]] {
                let result = try h.run(command + ["--config", h.configPath])
                #expect(result.code == 78)
                #expect(result.err.contains("\(h.configPath):\(line ?? 0): [channels.push] token_file: $CREDENTIALS_DIRECTORY/push.token names $CREDENTIALS_DIRECTORY, which is not set"))
                #expect(result.err.contains("LoadCredential="))
            }
        }
    }
}
