import Foundation
import PaywatchConfig
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchTestSupport

// PostgreSQL (issue 10): a real server started for the run (initdb into a temp folder, pg_ctl on a
// free loopback port; fsync on, as a shop runs it), the real `paywatch` binary as 1–3 replicas, and
// the sink in its own process (`ext`) or in this one.
//   pg-plan N [R]                  planning throughput in-process: R stores (replicas) sweeping at once
//   pg-burst N R [ext] [kill]      N reminders due at one instant, R replicas; kill: SIGKILL one mid-burst
//   pg-intake N R                  R replicas running; the shop inserts N orders in one statement: orders
//                                  taken in (first seen and planned) per second
//   pg-spread N SECONDS R [ext]    N cancellations spread evenly over SECONDS: lateness of the notices
//   pg-idle N SECONDS R            CPU time of R idle replicas with N open orders, per minute

/// A server for one benchmark run, durable as in production (fsync on).
func benchServer() throws -> PostgresServer {
    // PAYWATCH_BENCH_FSYNC=0: the server without fsync, to see what the disk's flushes cost.
    // PAYWATCH_BENCH_STATEMENTS=1: pg_stat_statements loaded, its top statements printed at the end.
    try PostgresServer(fsync: ProcessInfo.processInfo.environment["PAYWATCH_BENCH_FSYNC"] != "0",
                       settings: profilingStatements ? ["shared_preload_libraries=pg_stat_statements", "log_autovacuum_min_duration=0", "log_min_duration_statement=40", "log_lock_waits=on", "deadlock_timeout=20ms"] : [])
}

let profilingStatements = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_STATEMENTS"] == "1"

/// With `PAYWATCH_BENCH_STATEMENTS=1`: the statements the run sent most, with their calls and time.
func printStatements(_ server: PostgresServer) {
    guard profilingStatements else { return }
    _ = try? server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    print(pgValue(server, """
        SELECT calls || ' calls ' || round(total_exec_time::numeric, 1) || ' ms  ' || regexp_replace(left(query, 110), '\\s+', ' ', 'g')
        FROM pg_stat_statements ORDER BY calls DESC LIMIT 30
        """))
}

func pgValue(_ server: PostgresServer, _ sql: String) -> String {
    ((try? server.psql(sql)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// The benchmark configuration (``config(db:gateway:hold:reminders:concurrency:poll:logLevel:store:)``) on
/// PostgreSQL at `url`; `PAYWATCH_BENCH_LEASE` sets `[store] lease` (longer than the 10 s timeout + 5 s).
func pgConfig(url: String, gateway: String, hold: String = "1h", reminders: String = "[\"8s\"]", concurrency: Int = 32,
              poll: String = "1s") -> String {
    let lease = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_LEASE"] ?? "30s"
    return config(db: "", gateway: gateway, hold: hold, reminders: reminders, concurrency: concurrency, poll: poll,
                  store: "url = \"\(url)\"\nsslmode = \"disable\"\nlease = \"\(lease)\"")
}

/// `count` orders created at `createdSQL` (an SQL expression), expiring at `expiresSQL(n)`.
func pgInsertOrders(_ server: PostgresServer, count: Int, createdSQL: String, expiresSQL: String) throws {
    try server.psql("""
        INSERT INTO orders(id, amount_due, created_at, expires_at, phone)
        SELECT 'B' || n, 12900, \(createdSQL), \(expiresSQL), '+86138' || lpad((n % 100000000)::text, 8, '0')
        FROM generate_series(0, \(count - 1)) AS n
        """)
}

/// Starts `replicas` daemons on `configText`, each in a folder of its own under `dir`.
func startReplicas(_ replicas: Int, dir: URL, configText: String) throws -> [Process] {
    try (1...replicas).map { index in
        let folder = dir.appendingPathComponent("replica-\(index)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try startDaemon(dir: folder, configText: configText)
    }
}

/// Waits until each replica logged "paywatch started".
func waitStarted(_ dir: URL, _ replicas: Int) -> Bool {
    waitUntil(30) {
        (1...replicas).allSatisfy { index in
            let log = (try? String(contentsOfFile: dir.appendingPathComponent("replica-\(index)/paywatch.log").path, encoding: .utf8)) ?? ""
            return log.contains("paywatch started")
        }
    }
}

func benchPgPlan(_ count: Int, replicas: Int) async throws {
    let server = try benchServer()
    defer { server.stop() }
    let settings = PostgresStoreSettings(endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch",
                                         database: "postgres", tls: .disable, clock: .injected)
    let stores = try (1...replicas).map { try PostgresOrderStore(settings: settings, leaseOwner: "bench-\($0)") }
    try await stores[0].migrate()
    let created = nowMs()
    var start = monotonicSeconds()
    try pgInsertOrders(server, count: count, createdSQL: "to_timestamp(\(Double(created) / 1000))", expiresSQL: "NULL")
    let insertSeconds = monotonicSeconds() - start
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"]))
    func sweepAll(now: Millis) async throws -> Int {
        try await withThrowingTaskGroup(of: Int.self) { group in
            for store in stores {
                group.addTask {
                    var planned = 0
                    while true {
                        let result = try await store.sweep(now: now, limit: batchSize) { planner.plan($0, now: now) }
                        planned += result.plans.count
                        if result.claimed == 0 { return planned }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }
    start = monotonicSeconds()
    let firstSight = try await sweepAll(now: created + 1000)
    let firstSeconds = monotonicSeconds() - start
    start = monotonicSeconds()
    let reminded = try await sweepAll(now: created + 10 * 60_000)
    let dueSeconds = monotonicSeconds() - start
    for store in stores { try await store.close() }
    print(String(format: "pg-plan orders=%d replicas=%d insert=%.1fs first-sight=%.0f orders/s due-reminder=%.0f orders/s (planned %d, %d)",
                 count, replicas, insertSeconds, Double(firstSight) / firstSeconds, Double(reminded) / dueSeconds, firstSight, reminded))
}

func benchPgBurst(_ count: Int, replicas: Int, external: Bool, killOne: Bool) async throws {
    let dir = tempDirectory("pg-burst")
    defer { removeUnlessKept(dir) }
    let server = try benchServer()
    defer { server.stop() }
    let sink = try makeSink(external, dir: dir)
    defer { sink.stop() }
    let configText = pgConfig(url: server.url, gateway: sink.baseURL)
    let daemons = try startReplicas(replicas, dir: dir, configText: configText)
    defer { for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
    guard waitStarted(dir, replicas) else { print("pg-burst: the replicas did not start (see \(dir.path))"); return }
    // Orders created now with their reminder at +8 s: first seen by the replicas, then every
    // reminder is due at the same instant.
    let created = nowMs()
    try pgInsertOrders(server, count: count, createdSQL: "to_timestamp(\(Double(created) / 1000))",
                       expiresSQL: "to_timestamp(\(Double(created + 3_600_000) / 1000))")
    let due = created + 8_000
    usleep(UInt32(max(0, due - 500 - nowMs())) * 1000)
    let cpuBefore = daemons.map { cpuSeconds($0.processIdentifier) }
    var killedAt: Int64?
    if killOne {
        _ = waitUntil(60) { Int(pgValue(server, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'")) ?? 0 >= count / 3 }
        kill(daemons[0].processIdentifier, SIGKILL)
        daemons[0].waitUntilExit()
        killedAt = nowMs()
    }
    let complete = waitUntil(180) { pgValue(server, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == "\(count)" }
    let cpu = zip(daemons, cpuBefore).map { cpuSeconds($0.processIdentifier) - $1 }.reduce(0, +)
    for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() }
    let all = sink.arrivals()
    let reminders = all.filter { orderAndKind($0.key)?.kind == "unpaid_reminder" }
    let lateness = reminders.map { $0.at - due }
    let unique = Set(reminders.map(\.key)).count
    let span = Double((lateness.max() ?? 0) - max(0, lateness.min() ?? 0)) / 1000
    print(String(format: "pg-burst messages=%d replicas=%d sink=%@%@ complete=%@ lost=%d repeats=%d rate=%.0f msg/s lateness p50=%dms p99=%dms max=%dms replicas_cpu=%.2fs",
                 unique, replicas, external ? "external" : "in-process", killedAt == nil ? "" : " killed=1", complete ? "yes" : "NO",
                 count - unique, reminders.count - unique, Double(unique) / max(span, 0.001),
                 percentile(lateness, 0.5), percentile(lateness, 0.99), lateness.max() ?? 0, cpu))
}

func benchPgIntake(_ count: Int, replicas: Int) async throws {
    let dir = tempDirectory("pg-intake")
    defer { removeUnlessKept(dir) }
    let server = try benchServer()
    defer { server.stop() }
    let sink = try makeSink(true, dir: dir)
    defer { sink.stop() }
    let daemons = try startReplicas(replicas, dir: dir, configText: pgConfig(url: server.url, gateway: sink.baseURL, reminders: "[\"10m\"]"))
    defer { for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
    guard waitStarted(dir, replicas) else { print("pg-intake: the replicas did not start (see \(dir.path))"); return }
    let start = monotonicSeconds()
    try pgInsertOrders(server, count: count, createdSQL: "now()", expiresSQL: "NULL")
    let inserted = monotonicSeconds() - start
    let done = waitUntil(120) { pgValue(server, "SELECT COUNT(*) FROM pw_order_state WHERE status IS NOT NULL") == "\(count)" }
    let seconds = monotonicSeconds() - start
    print(String(format: "pg-intake orders=%d replicas=%d complete=%@ insert=%.2fs taken_in=%.2fs rate=%.0f orders/s",
                 count, replicas, done ? "yes" : "NO", inserted, seconds, Double(count) / seconds))
}

func benchPgSpread(_ count: Int, seconds: Int, replicas: Int, external: Bool) async throws {
    let dir = tempDirectory("pg-spread")
    defer { removeUnlessKept(dir) }
    let server = try benchServer()
    defer { server.stop() }
    let sink = try makeSink(external, dir: dir)
    defer { sink.stop() }
    let daemons = try startReplicas(replicas, dir: dir, configText: pgConfig(url: server.url, gateway: sink.baseURL, reminders: "[]", poll: "5s"))
    defer { for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
    guard waitStarted(dir, replicas) else { print("pg-spread: the replicas did not start (see \(dir.path))"); return }
    let start = nowMs() + 5_000
    let stepMicros = Int64(seconds) * 1_000_000 / Int64(count)
    try pgInsertOrders(server, count: count, createdSQL: "now() - interval '1 minute'",
                       expiresSQL: "to_timestamp(\(Double(start) / 1000)) + n * interval '\(stepMicros) microseconds'")
    // Nothing is asked of the server until a second after the last expiry: a `psql` every 20 ms
    // (a process each) would take CPU from the replicas during the very window measured.
    let quietUntil = start + Int64(seconds) * 1000 + 1000
    if quietUntil > nowMs() { usleep(UInt32((quietUntil - nowMs()) * 1000)) }
    _ = waitUntil(60) { pgValue(server, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == "\(count)" }
    for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() }
    printStatements(server)
    if profilingStatements {
        // Where the lateness goes: the sweep's `now` (the outbox row's created_at) after the expiry.
        print("sweep start after expiry (ms) p50 / p99: " + pgValue(server, """
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY late) || ' / ' || percentile_cont(0.99) WITHIN GROUP (ORDER BY late)
            FROM (SELECT o.created_at - floor(extract(epoch FROM r.expires_at) * 1000) AS late
                  FROM pw_outbox o JOIN orders r ON r.id = o.order_id WHERE o.kind = 'order_cancelled') x
            """))
    }
    let lateness = sink.arrivals().compactMap { arrival -> Int64? in
        guard let (order, kind) = orderAndKind(arrival.key), kind == "order_cancelled", let n = Int64(order.dropFirst()) else { return nil }
        return arrival.at - (start + n * stepMicros / 1000)
    }
    if profilingStatements {
        // The latest arrivals: when in the spread (seconds from its start) and how late.
        let worst = sink.arrivals().compactMap { arrival -> (Int64, Int64)? in
            guard let (order, kind) = orderAndKind(arrival.key), kind == "order_cancelled", let n = Int64(order.dropFirst()) else { return nil }
            let due = start + n * stepMicros / 1000
            return (due - start, arrival.at - due)
        }.sorted { $0.1 > $1.1 }.prefix(10)
        print("latest: " + worst.map { "\(Double($0.0) / 1000)s:\($0.1)ms" }.joined(separator: " "))
    }
    print(String(format: "pg-spread orders=%d spread=%ds replicas=%d sink=%@ delivered=%d lateness p50=%dms p99=%dms max=%dms early=%d",
                 count, seconds, replicas, external ? "external" : "in-process", lateness.count, percentile(lateness, 0.5),
                 percentile(lateness, 0.99), lateness.max() ?? 0, lateness.filter { $0 < 0 }.count))
}

/// CPU time of idle replicas with `count` open orders (nothing due for a day) over `seconds`,
/// after their first sweep: what LISTEN, the poll, lease renewal and the pool cost when nothing happens.
func benchPgIdle(_ count: Int, seconds: Int, replicas: Int) async throws {
    let dir = tempDirectory("pg-idle")
    defer { removeUnlessKept(dir) }
    let server = try benchServer()
    defer { server.stop() }
    let sink = try makeSink(true, dir: dir)
    defer { sink.stop() }
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let daemons = try startReplicas(replicas, dir: dir, configText: pgConfig(url: server.url, gateway: sink.baseURL, hold: "2d",
                                                                              reminders: "[\"1d\"]", poll: "5s"))
    defer { for daemon in daemons where daemon.isRunning { daemon.terminate(); daemon.waitUntilExit() } }
    guard waitStarted(dir, replicas) else { print("pg-idle: the replicas did not start (see \(dir.path))"); return }
    try pgInsertOrders(server, count: count, createdSQL: "now()", expiresSQL: "NULL")
    _ = waitUntil(120) { pgValue(server, "SELECT COUNT(*) FROM pw_order_state WHERE status IS NOT NULL") == "\(count)" }
    sleep(5)
    let before = daemons.map { cpuSeconds($0.processIdentifier) }
    sleep(UInt32(seconds))
    let used = zip(daemons, before).map { cpuSeconds($0.processIdentifier) - $1 }
    print(String(format: "pg-idle orders=%d replicas=%d seconds=%d cpu_per_replica=%@ CPU-s/min",
                 count, replicas, seconds, used.map { String(format: "%.2f", $0 * 60 / Double(seconds)) }.joined(separator: ",")))
}

/// The latency of one sweep of one due order and of one delivery claim, in-process: the fixed
/// cost a lone expiry pays on PostgreSQL (round trips and commits), beside SQLite's.
func benchPgSweepLatency(_ count: Int) async throws {
    let server = try benchServer()
    defer { server.stop() }
    let store = try PostgresOrderStore(settings: PostgresStoreSettings(
        endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch", database: "postgres", tls: .disable))
    try await store.migrate()
    try pgInsertOrders(server, count: count, createdSQL: "now() - interval '2 hours'", expiresSQL: "now() - interval '1 hour'")
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"]))
    var sweeps: [Int64] = []
    var claims: [Int64] = []
    let request = DeliveryClaimRequest(perChannel: ["sms": 10], knownChannels: ["sms"], leaseMs: 30_000)
    for _ in 0..<count {
        let now = nowMs()
        var start = monotonicSeconds()
        _ = try await store.sweep(now: now, limit: 1) { planner.plan($0, now: now) }
        sweeps.append(Int64((monotonicSeconds() - start) * 1_000_000))
        start = monotonicSeconds()
        _ = try await store.claimDeliveries(request, now: now)
        claims.append(Int64((monotonicSeconds() - start) * 1_000_000))
    }
    // One round trip of a trivial statement (the reconcile queue is empty): the floor of each.
    var trips: [Int64] = []
    for _ in 0..<count {
        let start = monotonicSeconds()
        _ = try await store.nextReconcileAt()
        trips.append(Int64((monotonicSeconds() - start) * 1_000_000))
    }
    try await store.close()
    print("pg-sweep1 orders=\(count) sweep of one order p50=\(percentile(sweeps, 0.5))µs p99=\(percentile(sweeps, 0.99))µs claim p50=\(percentile(claims, 0.5))µs p99=\(percentile(claims, 0.99))µs one statement p50=\(percentile(trips, 0.5))µs p99=\(percentile(trips, 0.99))µs")
}
