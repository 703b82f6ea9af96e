import Foundation
import Logging
import NIOSSL
import PaywatchCore
import PaywatchStore
import PostgresNIO

/// How to reach the PostgreSQL server, and how this store uses it. Plain values: the daemon
/// builds them from `[store]` (the url, `password_file`, `sslmode`, `pool_size`, `lease`).
public struct PostgresStoreSettings: Sendable {
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        /// The server's socket file (`/var/run/postgresql/.s.PGSQL.5432`).
        case unixSocket(path: String)
    }

    /// libpq's `sslmode`: `prefer` tries TLS and falls back to plain when the server does not
    /// offer it; `require` insists on TLS without checking the certificate; `verifyCA` checks the
    /// certificate against `caFile` (or the system's CAs); `verifyFull` also checks the host name.
    public enum TLSMode: String, Sendable, Equatable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// Which clock due times and leases are compared with.
    public enum Clock: Sendable, Equatable {
        /// The database server's (the default): replicas whose own clocks disagree still agree on
        /// what is due. The `now` a caller passes is replaced by the server's time (the host's
        /// clock plus an offset measured against `clock_timestamp()` at most every 30 s).
        case database
        /// The `now` each call passes (tests, with an injected clock).
        case injected
    }

    public var endpoint: Endpoint
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// A CA bundle (PEM) for `verifyCA` / `verifyFull`; the system's trust store when nil.
    public var caFile: String?
    /// Connections this replica opens at most (sweeps, delivery and reads share them), plus one
    /// for `LISTEN`.
    public var poolSize: Int
    public var connectTimeoutMs: Int64
    /// How long a sweep's lease on an order holds before another replica may plan it.
    public var leaseMs: Millis
    public var clock: Clock
    public var applicationName: String
    /// How long one of the daemon's operations may hold its connection before it fails and the
    /// connection is closed (see ``PostgresOrderStore/operationTimeoutMs``).
    public var operationTimeoutMs: Int64 = PostgresOrderStore.operationTimeoutMs

    public init(endpoint: Endpoint, username: String, password: String? = nil, database: String, tls: TLSMode = .prefer,
                caFile: String? = nil, poolSize: Int = 4, connectTimeoutMs: Int64 = 10_000, leaseMs: Millis = 30_000,
                clock: Clock = .database, applicationName: String = "paywatch") {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.caFile = caFile
        self.poolSize = poolSize
        self.connectTimeoutMs = connectTimeoutMs
        self.leaseMs = leaseMs
        self.clock = clock
        self.applicationName = applicationName
    }

    /// Where it connects, for messages: never the password.
    public var displayName: String {
        switch endpoint {
        case .tcp(let host, let port): return "postgres://\(username)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
        case .unixSocket(let path): return "postgres://\(username)@/\(database) (socket \(path))"
        }
    }
}

/// The order store on PostgreSQL, for several paywatch replicas on one database. The same
/// contract as ``SQLiteOrderStore`` (see ``OrderStore``), with what sharing needs:
/// - **sweeps lease their orders** (`pw_order_state.lease_owner/lease_until`, taken with
///   `FOR UPDATE SKIP LOCKED`), so that one order is planned by one replica at a time, and a plan
///   is written only while its lease holds;
/// - **claims** take rows with `FOR UPDATE SKIP LOCKED` in a CTE bounded by the limit, so
///   replicas claiming at once never get the same message;
/// - **recording is fenced** by lease owner and attempt number;
/// - **due times** compare with the database's clock (``PostgresStoreSettings/Clock/database``);
/// - **wake-ups**: triggers `NOTIFY` on the shop's writes and on new outbox rows
///   (``notifications()``), polling stays the fallback.
///
/// Errors: a server that cannot be reached, restarts, or refuses for a passing reason (a
/// serialization failure, a deadlock, too many connections) is transient (the daemon logs and
/// retries); a wrong password, a missing database, a shop schema that does not fit and a newer
/// paywatch's schema are configuration errors (`isConfiguration`).
public final class PostgresOrderStore: OrderStore, @unchecked Sendable {
    public let settings: PostgresStoreSettings
    public let leaseOwner: String
    let client: PostgresClient
    let logger: Logger
    private let runTask: Task<Void, Never>
    private let offset = ClockOffset()
    /// Set by ``close()``: the listener then ends without reporting its connection's end.
    let closing = LeaseStarted()
    /// The shop tables' shape, as a sweep reads them, and when it was read.
    let selectsCache = Locked<(ShopSelects, ContinuousClock.Instant)?>(nil)
    /// The time limits of the operations under way (``leased(timeoutMs:_:)``).
    let deadlines: Deadlines
    /// The `LISTEN` connections of ``changes()``.
    let listeners = Listeners()

    /// Creates the connection pool (connections open on first use: an unreachable server is not
    /// an error here, but at the first operation, as a transient ``StoreError``).
    /// - Parameters:
    ///   - leaseOwner: written into this store's leases; a new unique one (`host:pid:random`) by default.
    ///   - logger: postgres-nio's background log (connection failures, at debug level and above).
    public init(settings: PostgresStoreSettings, leaseOwner: String? = nil, logger: Logger = Logger(label: "paywatch.postgres")) throws {
        self.settings = settings
        self.leaseOwner = leaseOwner ?? SQLiteOrderStore.newLeaseOwner()
        self.logger = logger
        var configuration: PostgresClient.Configuration
        switch settings.endpoint {
        case .tcp(let host, let port):
            configuration = PostgresClient.Configuration(
                host: host, port: port, username: settings.username, password: settings.password,
                database: settings.database, tls: try Self.tls(settings))
        case .unixSocket(let path):
            configuration = PostgresClient.Configuration(
                unixSocketPath: path, username: settings.username, password: settings.password, database: settings.database)
        }
        configuration.options.maximumConnections = max(1, settings.poolSize)
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .milliseconds(settings.connectTimeoutMs)
        configuration.options.additionalStartupParameters = [("application_name", settings.applicationName)]
        // postgres-nio's own log: errors only (this store reports outages itself, once each).
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        runTask = Task { await client.run() }
        deadlines = Deadlines()
    }

    static func tls(_ settings: PostgresStoreSettings) throws -> PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch settings.tls {
        case .disable: return .disable
        case .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let caFile = settings.caFile {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw StoreError(description: "cannot read the CA file \(caFile) ([store] ca_file): \(error)", isConfiguration: true)
            }
        }
        return settings.tls == .prefer ? .prefer(tls) : .require(tls)
    }

    public func verifyStillOpen() throws {}

    public func close() async throws {
        closing.set()
        deadlines.stop()
        listeners.closeAll()
        runTask.cancel()
        _ = await runTask.value
    }

    // MARK: Time

    /// The `now` an operation works with: the caller's, or the database's (see ``PostgresStoreSettings/Clock``).
    func effectiveNow(_ now: Millis, _ connection: PostgresConnection) async throws -> Millis {
        guard settings.clock == .database else { return now }
        let host = Self.hostNow()
        if let known = offset.current(at: host) { return host + known }
        let row = try await first(connection, "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", Binds())
        let server = try row.map { try $0.int64(0) } ?? host
        let after = Self.hostNow()
        // The server read its clock about halfway through the round trip.
        let measured = server - (host + (after - host) / 2)
        offset.set(measured, at: after)
        return after + measured
    }

    static func hostNow() -> Millis {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Millis(spec.tv_sec) * 1000 + Millis(spec.tv_nsec) / 1_000_000
    }

    // MARK: Connections and transactions

    /// Runs `work` in one transaction (READ COMMITTED) on a pooled connection; errors become
    /// ``StoreError``s (``mapError(_:)``).
    func transaction<T: Sendable>(_ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await rawTransaction(work)
        } catch {
            throw Self.mapError(error, settings: settings)
        }
    }

    /// `work` on a pooled connection without BEGIN and COMMIT: each statement is its own
    /// transaction (for a single statement, or reads that need no common snapshot). Two round
    /// trips fewer than ``transaction(_:)``, which a sweep of one order feels.
    func autocommit<T: Sendable>(_ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await leased(work)
        } catch {
            throw Self.mapError(error, settings: settings)
        }
    }

    /// ``transaction(_:)`` with postgres-nio's errors as they are (to look at their SQLSTATE);
    /// `begin` opens the transaction (`BEGIN`, or one with an isolation level).
    func rawTransaction<T: Sendable>(begin: PostgresQuery = "BEGIN", timeoutMs: Int64? = nil,
                                     _ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await leased(timeoutMs: timeoutMs) { connection in
            try await connection.query(begin, logger: self.logger)
            do {
                let value = try await work(connection)
                try await connection.query("COMMIT", logger: self.logger)
                return value
            } catch {
                if Self.connectionUsable(after: error) { _ = try? await connection.query("ROLLBACK", logger: self.logger) }
                throw error
            }
        }
    }

    /// Whether a connection may still be used after `error` (to roll back): not after the
    /// connection itself failed or the server ended it (class 08, 57).
    static func connectionUsable(after error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return true }
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return !state.hasPrefix("08") && !state.hasPrefix("57")
    }

    /// Runs read-only `work` on a pooled connection in one REPEATABLE READ transaction (a
    /// consistent snapshot, as `orders show` and `report` promise).
    func read<T: Sendable>(_ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            return try await rawTransaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", timeoutMs: Self.readTimeoutMs, work)
        } catch {
            throw Self.mapError(error, settings: settings)
        }
    }

    /// `work` on a pooled connection, bounded in time so that no operation of the daemon can wait
    /// forever: at most `connect_timeout` + 5 s for a connection (while the server cannot be
    /// reached, the pool itself would keep a caller waiting a minute), then at most
    /// ``operationTimeoutMs`` for the work, after which its connection is closed (a query on a
    /// connection that died without a word fails then). Either way the caller gets a transient
    /// ``StoreError`` and the daemon logs the outage and retries. The work runs in a task of its
    /// own, so a caller is never held by a wait that does not end; a cancelled caller returns at once.
    func leased<T: Sendable>(timeoutMs: Int64? = nil,
                             _ work: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let operationMs = timeoutMs ?? settings.operationTimeoutMs
        let lease = LeaseStarted()
        let waitMs = settings.connectTimeoutMs + 5_000
        let client = self.client
        let display = settings.displayName
        let outcome = Outcome<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                outcome.install(continuation)
                let deadlines = self.deadlines
                let worker = Task {
                    do {
                        let value = try await client.withConnection { connection in
                            lease.set(connection)
                            // From here the work has `operationMs`: then its connection is closed.
                            let limit = deadlines.add(after: .milliseconds(operationMs)) {
                                if outcome.finish(.failure(StoreError(description: "PostgreSQL at \(display) did not answer within \(operationMs / 1000) s; the connection was closed"))) {
                                    lease.closeConnection()
                                }
                            }
                            outcome.onFinish { deadlines.remove(limit) }
                            return try await work(connection)
                        }
                        outcome.finish(.success(value))
                    } catch {
                        outcome.finish(.failure(error))
                    }
                }
                let wait = deadlines.add(after: .milliseconds(waitMs)) {
                    guard !lease.isSet else { return }
                    // Why: one connection of its own says (a refused login is a configuration
                    // error, not an outage; the pool would only keep retrying it).
                    Task {
                        let cause = await self.probeError()
                        let error = cause.map { Self.mapError($0, settings: self.settings) }
                            ?? StoreError(description: "cannot reach PostgreSQL at \(display): no connection within \(waitMs / 1000) s")
                        if outcome.finish(.failure(error)) { worker.cancel() }
                    }
                }
                outcome.onFinish { deadlines.remove(wait) }
                outcome.onCancel { worker.cancel() }
            }
        } onCancel: {
            outcome.cancel()
        }
    }

    /// Opens one connection of its own and closes it: nil when that works, else why not (the
    /// server's answer: a refused login, a missing database; or the connection's failure).
    func probeError() async -> (any Error)? {
        do {
            let connection = try await PostgresConnection.connect(
                configuration: try Self.connectionConfiguration(settings), id: 0, logger: logger)
            try? await connection.close()
            return nil
        } catch {
            return error
        }
    }

    /// How long one of the daemon's operations may hold its connection (``leased(timeoutMs:_:)``):
    /// each takes milliseconds (a chunk of a sweep, a claim, a batch of results), so 15 s means a
    /// connection that died without a word, or a lock the shop holds for that long; either way the
    /// operation fails, its connection is closed, and the daemon tries again. (A connection ended
    /// by a server restart has been seen to leave its query waiting for ever.)
    public static let operationTimeoutMs: Int64 = 15_000
    /// The same for the reads of `orders show`, `report` and `status`, which may scan much more.
    static let readTimeoutMs: Int64 = 120_000

    func rows(_ connection: PostgresConnection, _ sql: String, _ binds: Binds) async throws -> [PostgresRandomAccessRow] {
        let sequence = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds.bindings), logger: logger)
        var result: [PostgresRandomAccessRow] = []
        for try await row in sequence { result.append(row.makeRandomAccess()) }
        return result
    }

    func first(_ connection: PostgresConnection, _ sql: String, _ binds: Binds) async throws -> PostgresRandomAccessRow? {
        try await rows(connection, sql, binds).first
    }

    /// Runs a statement and drains it (use `RETURNING 1` and count the rows when the count matters).
    func execute(_ connection: PostgresConnection, _ sql: String, _ binds: Binds = Binds()) async throws {
        _ = try await rows(connection, sql, binds)
    }

    // MARK: Errors

    /// SQLSTATEs that are the shop's data or triggers refusing a plan: the order is quarantined.
    static func isDataRefusal(_ error: any Error) -> Bool {
        guard let state = sqlState(error) else { return false }
        // 22: data exception; 23: integrity constraint; P0: PL/pgSQL raise; 42: a shop trigger's
        // own broken SQL; 2F/38/39: routine exceptions.
        return ["22", "23", "P0", "42", "2F", "38", "39"].contains(String(state.prefix(2)))
    }

    static func sqlState(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] }
        return nil
    }

    /// A ``StoreError`` for `error`: free of SQL arguments and personal data. Authentication and
    /// a missing database or role are configuration errors (exit 78); the rest is transient.
    static func mapError(_ error: any Error, settings: PostgresStoreSettings) -> any Error {
        if error is StoreError || error is CancellationError { return error }
        if let error = error as? PSQLError {
            let where_ = settings.displayName
            if let info = error.serverInfo {
                let state = info[.sqlState] ?? "?"
                let message = Validator.display(info[.message] ?? "no message", limit: 200)
                switch state {
                case "28P01", "28000":
                    return StoreError(description: "PostgreSQL refused the login to \(where_): \(message) (check the user, [store] password_file, PGPASSFILE, or pg_hba.conf)",
                                      isConfiguration: true)
                case "3D000":
                    return StoreError(description: "PostgreSQL at \(where_): \(message) (create it, or fix the database in [store] url)",
                                      isConfiguration: true)
                case "42501":
                    return StoreError(description: "PostgreSQL at \(where_): \(message) (grant paywatch's role the rights it needs)",
                                      isConfiguration: true)
                default:
                    return StoreError(description: "PostgreSQL error \(state) at \(where_): \(message)")
                }
            }
            switch error.code {
            case .sslUnsupported:
                return StoreError(description: "PostgreSQL at \(where_) does not offer TLS, and [store] sslmode requires it", isConfiguration: true)
            case .authMechanismRequiresPassword:
                return StoreError(description: "PostgreSQL at \(where_) asks for a password and none was given ([store] password_file, the url, or PGPASSFILE)",
                                  isConfiguration: true)
            case .unsupportedAuthMechanism:
                return StoreError(description: "PostgreSQL at \(where_) asks for an authentication method paywatch does not support (use scram-sha-256, md5 or trust)",
                                  isConfiguration: true)
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
                let cause = error.underlying.map { Validator.display(String(describing: $0), limit: 200) } ?? "\(error.code)"
                return StoreError(description: "cannot reach PostgreSQL at \(where_): \(cause)")
            case .poolClosed:
                return StoreError(description: "the PostgreSQL store is closed")
            default:
                return StoreError(description: "PostgreSQL at \(where_): \(error.code)")
            }
        }
        if String(describing: error).contains("CircuitBreakerTripped") {
            return StoreError(description: "cannot reach PostgreSQL at \(settings.displayName): every connection attempt failed")
        }
        if let error = error as? NIOSSLError {
            return StoreError(description: "TLS with PostgreSQL at \(settings.displayName) failed: \(error)")
        }
        return StoreError(description: "PostgreSQL at \(settings.displayName): \(Validator.display(String(describing: error), limit: 200))")
    }
}

/// A value shared between tasks.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// Whether a pooled operation got its connection (and which), or a flag.
final class LeaseStarted: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var connection: PostgresConnection?
    func set(_ connection: PostgresConnection? = nil) {
        lock.withLock {
            value = true
            self.connection = connection
        }
    }
    var isSet: Bool { lock.withLock { value } }
    /// Closes the connection the operation got (its queries then fail).
    func closeConnection() {
        let connection = lock.withLock { self.connection }
        let closing: EventLoopFuture<Void>? = connection?.close()
        _ = closing
    }
}

/// The one outcome of a ``PostgresOrderStore/leased(_:)`` operation: the first of its result, its
/// timeout and its caller's cancellation resumes the caller; the others are dropped.
final class Outcome<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?
    private var done = false
    private var finished: [@Sendable () -> Void] = []
    private var cancelled: [@Sendable () -> Void] = []

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let resume: Result<T, any Error>? = lock.withLock {
            if let early { return early }
            self.continuation = continuation
            return nil
        }
        if let resume { continuation.resume(with: resume) }
    }

    /// Resumes the caller with `result` if nothing did yet; returns whether this call did.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let (first, continuation, callbacks): (Bool, CheckedContinuation<T, any Error>?, [@Sendable () -> Void]) = lock.withLock {
            guard !done else { return (false, nil, []) }
            done = true
            let waiting = self.continuation
            self.continuation = nil
            if waiting == nil { early = result }
            let callbacks = finished
            finished = []
            return (true, waiting, callbacks)
        }
        continuation?.resume(with: result)
        for callback in callbacks { callback() }
        return first
    }

    func onFinish(_ callback: @escaping @Sendable () -> Void) {
        let now = lock.withLock {
            if done { return true }
            finished.append(callback)
            return false
        }
        if now { callback() }
    }

    func onCancel(_ callback: @escaping @Sendable () -> Void) {
        lock.withLock { cancelled.append(callback) }
    }

    func cancel() {
        if finish(.failure(CancellationError())) {
            for callback in lock.withLock({ cancelled }) { callback() }
        }
    }
}

/// Time limits of operations, checked by one task of the store's every quarter of a second while
/// any is set (instead of a sleeping task per limit: two task switches fewer per operation,
/// which a sweep of one order on a busy two-core host feels). A limit fires within 250 ms of its
/// time; it is for connections that died without a word, not for precision.
final class Deadlines: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [Int: (at: ContinuousClock.Instant, fire: @Sendable () -> Void)] = [:]
    private var nextID = 0
    private var sleeper: CheckedContinuation<Void, Never>?
    private var stopped = false
    private var task: Task<Void, Never>?

    static let tick: Duration = .milliseconds(250)

    /// Calls `fire` once `duration` from now unless ``remove(_:)`` comes first; returns its id.
    func add(after duration: Duration, _ fire: @escaping @Sendable () -> Void) -> Int {
        let (id, wake): (Int, CheckedContinuation<Void, Never>?) = lock.withLock {
            nextID += 1
            entries[nextID] = (ContinuousClock.now + duration, fire)
            if task == nil, !stopped { task = Task { [weak self] in await self?.run() } }
            let wake = sleeper
            sleeper = nil
            return (nextID, wake)
        }
        wake?.resume()
        return id
    }

    func remove(_ id: Int) {
        _ = lock.withLock { entries.removeValue(forKey: id) }
    }

    func stop() {
        let (task, wake) = lock.withLock { () -> (Task<Void, Never>?, CheckedContinuation<Void, Never>?) in
            stopped = true
            let wake = sleeper
            sleeper = nil
            return (self.task, wake)
        }
        task?.cancel()
        wake?.resume()
    }

    private func run() async {
        while !Task.isCancelled {
            // Nothing to watch: wait (no wake-ups while idle) until a limit is set.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resume = lock.withLock {
                    if !entries.isEmpty || stopped { return true }
                    sleeper = continuation
                    return false
                }
                if resume { continuation.resume() }
            }
            if lock.withLock({ stopped }) { return }
            try? await Task.sleep(for: Self.tick)
            let now = ContinuousClock.now
            let due: [@Sendable () -> Void] = lock.withLock {
                let expired = entries.filter { $0.value.at <= now }
                for id in expired.keys { entries.removeValue(forKey: id) }
                return expired.values.map(\.fire)
            }
            for fire in due { fire() }
        }
    }
}

/// The measured offset of the database's clock from the host's, and when it was measured.
final class ClockOffset: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Millis?
    private var measuredAt: Millis = 0
    static let refreshMs: Millis = 30_000

    func current(at now: Millis) -> Millis? {
        lock.lock()
        defer { lock.unlock() }
        guard let value, now - measuredAt < Self.refreshMs, now >= measuredAt else { return nil }
        return value
    }

    func set(_ offset: Millis, at now: Millis) {
        lock.lock()
        value = offset
        measuredAt = now
        lock.unlock()
    }
}

/// Bind parameters built alongside the SQL: `\(binds.add(value))` appends the value and returns
/// its `$n` placeholder.
struct Binds: Sendable {
    var bindings = PostgresBindings()
    private var count = 0

    init() {}

    mutating func add<T: PostgresDynamicTypeEncodable>(_ value: T) -> String {
        bindings.append(value)
        count += 1
        return "$\(count)"
    }

    mutating func add<T: PostgresDynamicTypeEncodable>(_ value: T?) -> String {
        bindings.append(value)
        count += 1
        return "$\(count)"
    }
}

extension PostgresRandomAccessRow {
    func int64(_ index: Int) throws -> Int64 { try self[index].decode(Int64.self) }
    func int64OrNil(_ index: Int) throws -> Int64? { try self[index].decode(Int64?.self) }
    func int(_ index: Int) throws -> Int { Int(try self[index].decode(Int64.self)) }
    func string(_ index: Int) throws -> String { try self[index].decode(String.self) }
    func stringOrNil(_ index: Int) throws -> String? { try self[index].decode(String?.self) }
    func bool(_ index: Int) throws -> Bool { try self[index].decode(Bool.self) }
}
