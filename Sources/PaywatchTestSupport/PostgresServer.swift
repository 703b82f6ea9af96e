import Foundation

/// A real PostgreSQL server of the test run's own: `initdb` into a temporary folder, then
/// `pg_ctl start` on a free loopback port with its socket in that folder, trust authentication
/// for the role `paywatch`, stopped (`pg_ctl stop -m fast`) and removed by ``stop()``. As root,
/// the server runs as the `postgres` account (PostgreSQL refuses to run as root).
///
/// The binaries are found on `PATH`, else in `/usr/lib/postgresql/VERSION/bin` (Debian's
/// `postgresql` package, which `.ci/run` installs). Starting one takes about a second.
public final class PostgresServer: @unchecked Sendable {
    public let directory: URL
    public private(set) var port: Int
    /// `postgres://paywatch@127.0.0.1:PORT/postgres`: the role and database of the server.
    public var url: String { "postgres://paywatch@127.0.0.1:\(port)/postgres" }
    private let binDirectory: String
    private let runAs: String?
    private var stopped = false

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Where `initdb`, `pg_ctl` and `psql` are, or nil when PostgreSQL is not installed.
    public static func binDirectory() -> String? {
        let fm = FileManager.default
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if let dir = path.first(where: { fm.isExecutableFile(atPath: $0 + "/initdb") && fm.isExecutableFile(atPath: $0 + "/pg_ctl") }) {
            // Its real folder (a link on PATH may point into /usr/lib/postgresql/VERSION/bin), where psql is too.
            return URL(fileURLWithPath: dir + "/pg_ctl").resolvingSymlinksInPath().deletingLastPathComponent().path
        }
        let versions = ((try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted(by: >)
        return versions.map { "/usr/lib/postgresql/\($0)/bin" }.first { fm.isExecutableFile(atPath: $0 + "/pg_ctl") }
    }

    /// - Parameters:
    ///   - fsync: off by default (tests: faster, and a test never survives a power cut); on for
    ///     benchmarks, as a shop runs its server.
    ///   - port: the port to listen on (a client may be waiting for it); a free one by default.
    ///   - start: false to leave the server stopped after `initdb` (``start()`` starts it).
    ///   - settings: more server settings (`-c name=value` each), e.g. to load `pg_stat_statements`.
    public init(fsync: Bool = false, port requestedPort: Int? = nil, start: Bool = true, settings: [String] = []) throws {
        guard let bin = Self.binDirectory() else {
            throw Failure(description: "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin): apt-get install postgresql")
        }
        binDirectory = bin
        runAs = geteuid() == 0 ? "postgres" : nil
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if let account = runAs {
            // The server's account must own its folders (and reach them: /tmp is world-traversable).
            _ = try Self.run("/bin/chown", ["-R", account, directory.path])
        }
        let data = directory.appendingPathComponent("data").path
        // A port free now (bound, then closed): the server takes it a moment later.
        port = try requestedPort ?? Self.freePort()
        baseOptions = "-k \(directory.path) -c listen_addresses=127.0.0.1 -c max_connections=200" + (fsync ? "" : " -c fsync=off")
            + settings.map { " -c \($0)" }.joined()
        try run(bin + "/initdb", ["-D", data, "-U", "paywatch", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        guard start else { return }
        // The free port may be taken in between (another test's listener, a client's outgoing
        // connection): then again on another one, unless the caller asked for this port.
        var attempt = 1
        while true {
            do {
                try self.start()
                return
            } catch {
                let log = (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
                guard requestedPort == nil, attempt < 5, log.contains("could not bind") || log.contains("in use") else {
                    throw Failure(description: "\(error); the server's log ends: \(log.suffix(600))")
                }
                attempt += 1
                port = try Self.freePort()
            }
        }
    }

    private static func freePort() throws -> Int {
        let probe = try listenOnLoopback(port: 0) { Failure(description: "no free port: \($0)") }
        close(probe.fd)
        return probe.port
    }

    private let baseOptions: String
    private var options: String { "-p \(port) " + baseOptions }

    /// Starts the server (after `init(start: false)`, or after ``restart(pauseSeconds:)``'s stop).
    public func start() throws {
        try run(binDirectory + "/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-o", options, "-l",
                                           directory.appendingPathComponent("server.log").path, "-w", "-t", "30", "start"])
    }

    /// Requires a password (scram-sha-256) for TCP connections from now on, and sets the role
    /// `paywatch`'s to `password` (the Unix socket, which `psql` here does not use, stays trusted).
    public func requirePassword(_ password: String) throws {
        try psql("ALTER ROLE paywatch PASSWORD '\(password.replacingOccurrences(of: "'", with: "''"))'")
        let hba = directory.appendingPathComponent("data/pg_hba.conf")
        try "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n".write(to: hba, atomically: false, encoding: .utf8)
        try run(binDirectory + "/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-w", "reload"])
        usleep(200_000)
    }

    /// Stops the server (fast: clients are disconnected), waits `pauseSeconds`, starts it again on
    /// the same port with the same data: a server restart as clients see it.
    public func restart(pauseSeconds: Double = 0) throws {
        try run(binDirectory + "/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
        if pauseSeconds > 0 { usleep(UInt32(pauseSeconds * 1_000_000)) }
        try start()
    }

    /// Runs SQL through `psql` against the server (`-v ON_ERROR_STOP=1`); returns its output.
    @discardableResult
    public func psql(_ sql: String) throws -> String {
        try run(binDirectory + "/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory.path, "-p", "\(port)",
                                         "-U", "paywatch", "-d", "postgres", "-c", sql])
    }

    /// Stops the server at once and removes its folder. Safe to call twice.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? run(binDirectory + "/pg_ctl", ["-D", directory.appendingPathComponent("data").path, "-m", "fast", "-w", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }

    /// Runs `tool` as the server's account (root: through `runuser`).
    @discardableResult
    private func run(_ tool: String, _ arguments: [String]) throws -> String {
        if let account = runAs {
            return try Self.run("/usr/sbin/runuser", ["-u", account, "--", tool] + arguments)
        }
        return try Self.run(tool, arguments)
    }

    private static func run(_ tool: String, _ arguments: [String]) throws -> String {
        // posix_spawn and waitpid, not Foundation's Process: the server `pg_ctl start` leaves
        // running would inherit what Process watches for the child's end, and the wait would never
        // return. The child gets /dev/null for input and a file for its output.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-pg-run-\(UUID().uuidString).out")
        defer { try? FileManager.default.removeItem(at: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // From `/`: the server's account may not enter the caller's working directory.
        let argv = (["/usr/bin/env", "--chdir=/", tool] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(description: "cannot run \(tool): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        // WIFEXITED and WEXITSTATUS, spelled out (the C macros are not imported).
        guard status & 0x7F == 0, (status >> 8) & 0xFF == 0 else {
            throw Failure(description: "\((tool as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
        return text
    }
}
