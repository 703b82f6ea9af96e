import Foundation
import GRDB
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchStore
import PaywatchTestSupport

// paywatch-bench: figures for docs/BENCHMARKS.md. Build in release and run:
//   swift build -c release --product paywatch && swift build -c release --product paywatch-bench \
//     && swift build -c release --product fake-gateway
//   .build/release/paywatch-bench all
// Subcommands (each prints one line of figures):
//   plan N | deliver N | rss N                      in-process sink
//   burst N [ext] [slow]                            N reminders due at one instant; ext: the sink is the
//                                                   fake-gateway binary in its own process; slow: 1 % of
//                                                   its answers take 2 s
//   cancels N SECONDS [ext]                         N cancels spread evenly over SECONDS
//   crash N [ext] [DELAY_MS]                        kill -9 mid-burst, restart: repeats, time to drain
//   reload N                                        SIGHUP with N open orders: to reloaded, to re-planned
//   idle N SECONDS [systemd]                        CPU time of the idle daemon with N open orders (systemd:
//                                                   NOTIFY_SOCKET, a 30 s watchdog and metrics on)
//   retention N [EVERY] [prune]                     database size under a steady load until N messages are
//                                                   delivered, with [retention] keep = 1d (prune) or without
//   tls-http N [CONC] [plain] [close]               the transport alone: N HTTPS POSTs (CONC in flight) to
//   tls-smtp N [CONC] [plain] [starttls]            fake-gateway --tls (a private CA, trusted by caFile), or
//                                                   N e-mails over smtps:// (or STARTTLS); plain: no TLS.
//                                                   Prints msg/s, connections and TLS handshakes;
//                                                   close: a new connection per request (no keep-alive)
//   pg-plan, pg-burst, pg-intake, pg-spread       PostgreSQL with 1–3 replicas: see Postgres.swift
//   all
// Every run uses a fresh SQLite file in a temp directory and a loopback HTTP sink on 127.0.0.1.


func nowMs() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
}

func monotonicSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func percentile(_ values: [Int64], _ p: Double) -> Int64 {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[index]
}

func tempDirectory(_ name: String) -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-bench-\(name)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    if keepFiles { print("files kept in \(url.path)") }
    return url
}

/// `PAYWATCH_BENCH_KEEP=1`: leave each run's database, log and sink record behind for a look.
let keepFiles = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_KEEP"] == "1"

func removeUnlessKept(_ url: URL) {
    if !keepFiles { try? FileManager.default.removeItem(at: url) }
}

/// The paywatch binary next to this one.
let paywatchBinary: String = {
    let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    return me.deletingLastPathComponent().appendingPathComponent("paywatch").path
}()

/// Creates the schema and inserts `count` orders with `makeRow(i)` = (created_at, expires_at?).
func populate(path: String, count: Int, phone: Bool = true, _ times: @escaping @Sendable (Int) -> (Int64, Int64?)) async throws {
    let store = try SQLiteOrderStore(path: path)
    try await store.migrate()
    try await store.close()
    var config = Configuration()
    config.busyMode = .timeout(30)
    let queue = try DatabaseQueue(path: path, configuration: config)
    try await queue.write { db in
        let statement = try db.makeStatement(sql: """
            INSERT INTO orders(id, amount_due, currency, created_at, expires_at, phone, locale) VALUES (?, 12900, 'CNY', ?, ?, ?, 'zh-CN')
            """)
        for i in 0..<count {
            let (created, expires) = times(i)
            try statement.execute(arguments: ["B\(i)", created, expires, phone ? "+86138\(String(format: "%08d", i % 100_000_000))" : nil])
        }
    }
    try queue.close()
}

/// `PAYWATCH_BENCH_RATE=500/s` (and `PAYWATCH_BENCH_BURST=N`): the sms lane's `rate` (and `burst`).
let benchRate: (text: String, perSecond: Double)? = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_RATE"].flatMap { text in
    let parts = text.split(separator: "/")
    guard parts.count == 2, let count = Double(parts[0]), let unit = ["s": 1.0, "m": 60.0, "h": 3_600.0][String(parts[1])] else { return nil }
    return (text, count / unit)
}
let benchBurst = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_BURST"].flatMap(Int.init)

/// - Parameter store: the `[store]` section's keys; an SQLite file at `db` by default.
func config(db: String, gateway: String, hold: String = "30m", reminders: String = "[\"10m\", \"25m\"]",
            concurrency: Int = 32, poll: String = "1s", logLevel: String = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_LOG"] ?? "info",
            store: String? = nil) -> String {
    """
    [store]
    \(store ?? "url = \"sqlite://\(db)\"")
    [daemon]
    poll_interval = "\(poll)"
    batch_size = \(ProcessInfo.processInfo.environment["PAYWATCH_BENCH_BATCH"] ?? "\(PaywatchConfiguration.Daemon().batchSize)")
    log_level = "\(logLevel)"
    [delivery]
    concurrency = \(concurrency)
    timeout = "10s"
    [unpaid]
    hold = "\(hold)"
    reminders = \(reminders)
    channels = ["sms"]
    [paid]
    channels = ["sms"]
    [channels.sms]
    provider = "webhook"
    url = "\(gateway)/sms"
    \(benchRate.map { "rate = \"\($0.text)\"" } ?? "")
    \(benchBurst.map { "burst = \($0)" } ?? "")
    [channels.ops]
    provider = "webhook"
    url = "\(gateway)/ops"
    """
}

/// Starts `paywatch run` on `configText`; stderr goes to a file in `dir`.
func startDaemon(dir: URL, configText: String, environment: [String: String] = [:]) throws -> Process {
    let configPath = dir.appendingPathComponent("paywatch.toml").path
    try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: paywatchBinary)
    process.arguments = ["run", "--config", configPath]
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let logPath = dir.appendingPathComponent("paywatch.log").path
    _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
    try process.run()
    return process
}

func peakRSSKiB(pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}

func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = monotonicSeconds() + seconds
    while monotonicSeconds() < deadline {
        if try condition() { return true }
        usleep(20_000)  // cheap queries, but not so often that the bench takes a core from the daemon
    }
    return false
}

/// Where the daemon's messages go: the in-process FakeGateway (sharing this process's cores) or
/// the `fake-gateway` binary in its own process, as a real provider would be.
protocol Sink {
    var baseURL: String { get }
    /// What arrived: (idempotency key, arrival ms). For an external sink, after `stop()`.
    func arrivals() -> [(key: String, at: Int64)]
    func stop()
}

final class InProcessSink: Sink {
    let gateway: FakeGateway
    init(delayMs: Int = 0) throws {
        gateway = try FakeGateway(recordBodies: false)
        if delayMs > 0 { gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: delayMs) } }
    }
    var baseURL: String { gateway.baseURL }
    func arrivals() -> [(key: String, at: Int64)] {
        gateway.requests().map { ($0.headers["idempotency-key"] ?? "", $0.receivedAtMs) }
    }
    func stop() { gateway.stop() }
}

final class ExternalSink: Sink {
    let process = Process()
    let record: String
    let port: Int
    private var stopped = false

    /// Starts `fake-gateway` (next to this binary) on an ephemeral port.
    init(dir: URL, arguments: [String] = []) throws {
        record = dir.appendingPathComponent("sink.txt").path
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.executableURL = me.deletingLastPathComponent().appendingPathComponent("fake-gateway")
        process.arguments = ["0", "--no-stdin", "--record", record] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw FakeGatewayError(description: "fake-gateway did not print its port")
        }
        self.port = port
    }
    var baseURL: String { "http://127.0.0.1:\(port)" }
    func stop() {
        guard !stopped else { return }
        stopped = true
        process.terminate()
        process.waitUntilExit()
    }
    func arrivals() -> [(key: String, at: Int64)] {
        stop()
        guard let text = try? String(contentsOfFile: record, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let at = Int64(parts[0]) else { return nil }
            return (String(parts[1]), at)
        }
    }
}

func makeSink(_ external: Bool, dir: URL, delayMs: Int = 0, slow: Bool = false) throws -> any Sink {
    guard external else { return try InProcessSink(delayMs: delayMs) }
    var arguments: [String] = []
    if delayMs > 0 { arguments += ["--delay-ms", "\(delayMs)"] }
    if slow { arguments += ["--slow-every", "100", "--slow-ms", "2000"] }
    return try ExternalSink(dir: dir, arguments: arguments)
}

/// `pw1:ORDER:KIND:STEP:CHANNEL` → (order, kind).
func orderAndKind(_ key: String) -> (order: String, kind: String)? {
    let parts = key.split(separator: ":")
    guard parts.count == 5 else { return nil }
    return (String(parts[1]), String(parts[2]))
}

/// A read-only view of the daemon's database, for progress.
func reader(_ path: String) throws -> DatabaseQueue {
    var config = Configuration()
    config.readonly = true
    config.busyMode = .timeout(10)
    return try DatabaseQueue(path: path, configuration: config)
}

func benchCount(_ queue: DatabaseQueue, _ sql: String) -> Int {
    (try? queue.unsafeReentrantRead { try Int.fetchOne($0, sql: sql) }) ?? -1
}

/// `count` messages were decided and none is pending any more (two index look-ups, not a scan).
func settled(_ queue: DatabaseQueue, _ count: Int) -> Bool {
    benchCount(queue, "SELECT COALESCE(MAX(id), 0) FROM pw_outbox") >= count
        && benchCount(queue, "SELECT EXISTS(SELECT 1 FROM pw_outbox WHERE state = 'pending')") == 0
}

/// utime + stime of a process in seconds, from /proc/PID/stat.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

// MARK: Benchmarks

/// Orders per sweep, as the daemon runs it by default (`[daemon] batch_size`).
let batchSize = PaywatchConfiguration.Daemon().batchSize


/// Planning throughput: orders planned and committed per second, in-process on the store.
/// With `threeChannels`, every order also has an e-mail address and a push token, and reminders go
/// to push, sms and e-mail (the example configuration's default): three messages per decision.
func benchPlan(_ count: Int, threeChannels: Bool = false) async throws {
    let dir = tempDirectory("plan")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let created = nowMs()
    var start = monotonicSeconds()
    try await populate(path: path, count: count) { _ in (created, nil) }
    if threeChannels {
        let queue = try DatabaseQueue(path: path)
        try await queue.write { try $0.execute(sql: "UPDATE orders SET email = 'c' || rowid || '@shop.example', push_token = 'tok-' || rowid") }
        try queue.close()
    }
    let insertSeconds = monotonicSeconds() - start
    let store = try SQLiteOrderStore(path: path)
    if ProcessInfo.processInfo.environment["PAYWATCH_BENCH_SUPPRESSED"] != nil {
        // One unsubscribed address (not one of these orders'): every decided message is looked up.
        try await store.migrate()
        let queue = try DatabaseQueue(path: path)
        try await queue.write {
            try $0.execute(sql: "INSERT INTO suppressions(channel, address, reason, created_at) VALUES ('sms', '+10000000000', 'unsubscribed', 0)")
        }
        try queue.close()
    }
    var policy = Policy(unpaidChannels: threeChannels ? ["push", "sms", "email"] : ["sms"])
    if ProcessInfo.processInfo.environment["PAYWATCH_BENCH_FALLBACK"] != nil {
        // fallback = true: one channel per decision, the others kept as its alternates.
        policy.fallback = [.unpaid]
    }
    if let quiet = ProcessInfo.processInfo.environment["PAYWATCH_BENCH_QUIET"] {
        // Quiet hours from an hour before now to an hour after, on sms and push: every reminder
        // on them is held (its zone looked up, the end computed, an event written, a collapse tried).
        // `outside`: from two hours after now to three, so nothing is held (the cost of having them).
        let minute = Int((created / 60_000) % 1440)
        policy.quietHours = quiet == "outside"
            ? QuietHours(start: (minute + 120) % 1440, end: (minute + 180) % 1440, channels: ["sms", "push"])
            : QuietHours(start: (minute + 1380) % 1440, end: (minute + 60) % 1440, channels: ["sms", "push"])
    }
    let planner = Planner(policy: policy)

    // 1. First sight of every order: validated, planned, state and timeline written.
    start = monotonicSeconds()
    var planned = 0
    while true {
        let now = created + 1000
        let result = try await store.sweep(now: now, limit: batchSize) { planner.plan($0, now: now) }
        planned += result.claimed
        if result.claimed < batchSize { break }
    }
    let firstSeconds = monotonicSeconds() - start

    // 2. The first reminder comes due for all: planned, one outbox row each, committed.
    start = monotonicSeconds()
    var reminded = 0
    while true {
        let now = created + 10 * 60_000
        let result = try await store.sweep(now: now, limit: batchSize) { planner.plan($0, now: now) }
        reminded += result.plans.reduce(0) { $0 + $1.messages.count }
        if result.claimed < batchSize { break }
    }
    let dueSeconds = monotonicSeconds() - start
    try await store.close()
    print(String(format: "plan orders=%d channels=%d insert=%.1fs first-sight=%.0f orders/s due-reminder=%.0f orders/s (%d messages)",
                 count, threeChannels ? 3 : 1, insertSeconds, Double(planned) / firstSeconds, Double(count) / dueSeconds, reminded))
}

/// Planning throughput over a mix of statuses (issue 7): 30 % unpaid, 20 % partially paid without
/// a plan, 15 % with an installment plan, 15 % paid with a refund under way, 10 % failed, 5 %
/// paying, 5 % paid twice with one provider_ref. First sight, then a sweep a day and a half later
/// when balance and installment reminders, refund and failure messages come due.
func benchPlanMix(_ count: Int) async throws {
    let dir = tempDirectory("planmix")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, nil) }
    var config = Configuration()
    config.busyMode = .timeout(30)
    let queue = try DatabaseQueue(path: path, configuration: config)
    try await queue.write { db in
        // The share of each kind by rowid modulo 20: 0–5 unpaid, 6–9 balance, 10–12 plan, 13–15 refund,
        // 16–17 failed, 18 paying, 19 duplicate.
        let at = created + 60_000
        try db.execute(sql: """
            INSERT INTO payments(id, order_id, amount, status, provider_ref, failure_reason, created_at)
            SELECT 'P' || rowid, id,
                   CASE WHEN rowid % 20 BETWEEN 6 AND 9 THEN 5000 WHEN rowid % 20 BETWEEN 10 AND 12 THEN 4300 ELSE 12900 END,
                   CASE WHEN rowid % 20 BETWEEN 16 AND 17 THEN 'failed' WHEN rowid % 20 = 18 THEN 'pending' ELSE 'succeeded' END,
                   'ch_' || rowid, CASE WHEN rowid % 20 BETWEEN 16 AND 17 THEN 'card_declined' END, ?
            FROM orders WHERE rowid % 20 >= 6
            """, arguments: [at])
        try db.execute(sql: """
            INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at)
            SELECT 'Q' || rowid, id, 12900, 'succeeded', 'ch_' || rowid, ? FROM orders WHERE rowid % 20 = 19
            """, arguments: [at + 1])
        for (seq, amount, due) in [(1, 4300, created + 60_000), (2, 4300, created + 2 * 86_400_000), (3, 4300, created + 30 * 86_400_000)] {
            try db.execute(sql: """
                INSERT INTO installments(order_id, seq, amount, due_at) SELECT id, ?, ?, ? FROM orders WHERE rowid % 20 BETWEEN 10 AND 12
                """, arguments: [seq, amount, due])
        }
        try db.execute(sql: """
            INSERT INTO refunds(id, order_id, amount, status, requested_at)
            SELECT 'R' || rowid, id, 2000, 'processing', ? FROM orders WHERE rowid % 20 BETWEEN 13 AND 15
            """, arguments: [at + 2])
    }
    try queue.close()
    let store = try SQLiteOrderStore(path: path)
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"], fixedRecipients: ["ops": "oncall"]))
    func sweepAll(at now: Millis) async throws -> (orders: Int, messages: Int, seconds: Double) {
        let start = monotonicSeconds()
        var planned = 0
        var messages = 0
        while true {
            let result = try await store.sweep(now: now, limit: batchSize) { planner.plan($0, now: now) }
            planned += result.claimed
            messages += result.plans.reduce(0) { $0 + $1.messages.count }
            if result.claimed < batchSize { break }
        }
        return (planned, messages, monotonicSeconds() - start)
    }
    let first = try await sweepAll(at: created + 120_000)
    let cpuBefore = cpuSeconds(getpid())
    let later = try await sweepAll(at: created + 36 * 3_600_000)
    let cores = (cpuSeconds(getpid()) - cpuBefore) / later.seconds
    try await store.close()
    print(String(format: "planmix orders=%d first-sight=%.0f orders/s (%d messages) day-and-a-half=%.0f orders/s (%d orders, %d messages, %.2f cores)",
                 count, Double(first.orders) / first.seconds, first.messages, Double(later.orders) / later.seconds, later.orders,
                 later.messages, cores))
}

/// A burst of `count` reminders due at one instant, through the real daemon to a loopback sink.
func benchBurst(_ count: Int, external: Bool, slow: Bool) async throws {
    let dir = tempDirectory("burst")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let sink = try makeSink(external, dir: dir, slow: slow)
    defer { sink.stop() }
    // Orders created now with a reminder at +8 s: the daemon plans them first (first sight),
    // then all their reminders come due at the same instant.
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: sink.baseURL, reminders: "[\"8s\"]"))
    let due = created + 8_000
    let db = try reader(path)
    usleep(UInt32(max(0, due - 500 - nowMs())) * 1000)
    let cpuBefore = cpuSeconds(daemon.processIdentifier)
    let ok = waitUntil(slow ? 300 : 120) {
        settled(db, count)
    }
    let cpu = cpuSeconds(daemon.processIdentifier) - cpuBefore
    daemon.terminate()
    daemon.waitUntilExit()
    let arrivals = sink.arrivals().compactMap { a in orderAndKind(a.key).flatMap { $0.kind == "unpaid_reminder" ? a.at - due : nil } }
    let early = arrivals.filter { $0 < 0 }.count
    let span = Double((arrivals.max() ?? 0) - max(0, arrivals.min() ?? 0)) / 1000
    print(String(format: "burst messages=%d sink=%@%@ complete=%@ rate=%.0f msg/s lateness p50=%dms p99=%dms max=%dms early=%d daemon_cpu=%.2fs",
                 arrivals.count, external ? "external" : "in-process", slow ? " slow_tail=1%/2s" : "", ok ? "yes" : "NO",
                 Double(arrivals.count) / max(span, 0.001),
                 percentile(arrivals, 0.5), percentile(arrivals, 0.99), arrivals.max() ?? 0, early, cpu))
    if let rate = benchRate {
        // A token bucket of `burst` at `rate`: after the burst, (n − burst) / span is the rate
        // achieved; no prefix of the arrivals may exceed burst + rate × t (t from the first).
        let burst = Double(benchBurst ?? max(1, Int(rate.perSecond)))
        let sorted = arrivals.sorted()
        let first = sorted.first ?? 0
        var over = 0.0
        for (i, at) in sorted.enumerated() { over = max(over, Double(i + 1) - (burst + rate.perSecond * Double(at - first) / 1000)) }
        print(String(format: "rate configured=%@ (%.0f msg/s, burst %.0f) achieved=%.1f msg/s after the burst; most beyond the bucket=%.0f messages",
                     rate.text, rate.perSecond, burst, (Double(sorted.count) - burst) / max(span, 0.001), over))
    }
}

/// `count` cancels spread evenly over `spread` seconds (light load): lateness of the notice.
func benchCancels(_ count: Int, spread: Int, external: Bool) async throws {
    let dir = tempDirectory("cancels")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let sink = try makeSink(external, dir: dir)
    defer { sink.stop() }
    let start = nowMs() + 5_000
    var expiries: [String: Int64] = [:]
    try await populate(path: path, count: count) { i in
        let expires = start + Int64(i) * Int64(spread) * 1000 / Int64(count)
        return (start - 60_000, expires)
    }
    for i in 0..<count { expiries["B\(i)"] = start + Int64(i) * Int64(spread) * 1000 / Int64(count) }
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: sink.baseURL, reminders: "[]", poll: "5s"))
    let db = try reader(path)
    _ = waitUntil(Double(spread) + 60) { settled(db, count) }
    let peak = peakRSSKiB(pid: daemon.processIdentifier)
    daemon.terminate()
    daemon.waitUntilExit()
    let lateness = sink.arrivals().compactMap { a -> Int64? in
        guard let (order, kind) = orderAndKind(a.key), kind == "order_cancelled", let expiry = expiries[order] else { return nil }
        return a.at - expiry
    }
    print(String(format: "cancels orders=%d spread=%ds sink=%@ delivered=%d lateness p50=%dms p99=%dms max=%dms early=%d peak_rss=%.1fMiB",
                 count, spread, external ? "external" : "in-process", lateness.count, percentile(lateness, 0.5),
                 percentile(lateness, 0.99), lateness.max() ?? 0, lateness.filter { $0 < 0 }.count, Double(peak) / 1024))
}

/// Peak RSS of the daemon holding `count` open orders (first sweep of all, then idle).
func benchRSS(_ count: Int) async throws {
    let dir = tempDirectory("rss")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway(recordBodies: false)
    defer { gateway.stop() }
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, created + 86_400_000) }
    let started = monotonicSeconds()
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: gateway.baseURL, hold: "1d", reminders: "[\"12h\"]"))
    var config = Configuration()
    config.readonly = true
    let reader = try DatabaseQueue(path: path, configuration: config)
    _ = try waitUntil(1800) {
        try reader.unsafeReentrantRead { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_order_state WHERE next_due_at = 0") } == 0
    }
    let sweepSeconds = monotonicSeconds() - started
    sleep(2)
    let peak = peakRSSKiB(pid: daemon.processIdentifier)
    daemon.terminate()
    daemon.waitUntilExit()
    print(String(format: "rss open_orders=%d first_sweep=%.1fs (%.0f orders/s) peak_rss=%.1fMiB exit=%d",
                 count, sweepSeconds, Double(count) / sweepSeconds, Double(peak) / 1024, daemon.terminationStatus))
}

/// Delivery alone: `count` messages already decided (outbox full), then the daemon starts.
func benchDeliver(_ count: Int) async throws {
    let dir = tempDirectory("deliver")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway(recordBodies: false)
    defer { gateway.stop() }
    let created = nowMs() - 60_000
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let store = try SQLiteOrderStore(path: path)
    let planner = Planner(policy: Policy(unpaidRemindersMs: [30_000], unpaidChannels: ["sms"]))
    let now = nowMs()
    while try await store.sweep(now: now, limit: batchSize, plan: { planner.plan($0, now: now) }).claimed == batchSize {}
    try await store.close()
    let started = monotonicSeconds()
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: gateway.baseURL, reminders: "[\"30s\"]"))
    let ok = waitUntil(120) { gateway.requestCount >= count }
    let seconds = monotonicSeconds() - started
    daemon.terminate()
    daemon.waitUntilExit()
    let arrivals = gateway.requests().map(\.receivedAtMs)
    let span = Double((arrivals.max() ?? 0) - (arrivals.min() ?? 0)) / 1000
    print(String(format: "deliver messages=%d complete=%@ rate=%.0f msg/s (first to last arrival) start_to_done=%.2fs connections=%d",
                 gateway.requestCount, ok ? "yes" : "NO", Double(count) / max(span, 0.001), seconds, gateway.connectionsAccepted))
}

/// kill -9 in the middle of a burst, restart: how many messages were sent twice, how long the rest took.
func benchCrash(_ count: Int, external: Bool, delayMs: Int) async throws {
    let dir = tempDirectory("crash")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let sink = try makeSink(external, dir: dir, delayMs: delayMs)
    defer { sink.stop() }
    let created = nowMs() - 60_000
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let text = config(db: path, gateway: sink.baseURL, reminders: "[\"30s\"]")
    var daemon = try startDaemon(dir: dir, configText: text)
    let db = try reader(path)
    _ = waitUntil(60) { benchCount(db, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") >= count / 3 }
    kill(daemon.processIdentifier, SIGKILL)
    daemon.waitUntilExit()
    let killedAt = nowMs()
    let restart = monotonicSeconds()
    daemon = try startDaemon(dir: dir, configText: text)
    let drained = waitUntil(120) {
        settled(db, count)
    }
    let drainSeconds = monotonicSeconds() - restart
    daemon.terminate()
    daemon.waitUntilExit()
    let arrivals = sink.arrivals()
    let keys = arrivals.map(\.key)
    let unique = Set(keys).count
    let stranded = benchCount(db, "SELECT COUNT(*) FROM pw_outbox WHERE state != 'delivered'")
    print(String(format: "crash messages=%d sink=%@ answer=%dms sent_before_kill=%d drained_after_restart=%@ drain=%.2fs stranded=%d unique_keys=%d repeats_same_key=%d",
                 count, external ? "external" : "in-process", delayMs, arrivals.filter { $0.at <= killedAt }.count,
                 drained ? "yes" : "NO", drainSeconds, stranded, unique, keys.count - unique))
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`; it counts what arrives.
final class NotifySink: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    init(dir: URL) {
        path = dir.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                let first = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? ""
                let key = String(first.prefix { $0 != "=" })
                lock.withLock { counts[key, default: 0] += 1 }
            }
        }.start()
    }

    func count(_ key: String) -> Int { lock.withLock { counts[key] ?? 0 } }
    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}

/// CPU time of the idle daemon: `count` open orders with nothing due for an hour, measured over
/// `seconds` after its first sweep, with the sink in its own process. With `systemd`, as the
/// hardened unit runs it: `NOTIFY_SOCKET` (a datagram socket here), `WATCHDOG_USEC` of 30 s and the
/// metrics endpoint on.
func benchIdle(_ count: Int, seconds: Int, systemd: Bool = false) async throws {
    let dir = tempDirectory("idle")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let sink = try makeSink(true, dir: dir)
    defer { sink.stop() }
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, created + 7_200_000) }
    let notify = systemd ? NotifySink(dir: dir) : nil
    defer { notify?.stop() }
    var text = config(db: path, gateway: sink.baseURL, hold: "2h", reminders: "[\"1h\"]")
    if systemd { text += "\n[metrics]\nlisten = \"127.0.0.1:19464\"\n" }
    let environment = notify.map { ["NOTIFY_SOCKET": $0.path, "WATCHDOG_USEC": "30000000"] } ?? [:]
    let daemon = try startDaemon(dir: dir, configText: text, environment: environment)
    let db = try reader(path)
    _ = waitUntil(600) { benchCount(db, "SELECT COUNT(*) FROM pw_order_state WHERE next_due_at = 0") == 0 }
    sleep(5)
    let before = cpuSeconds(daemon.processIdentifier)
    let pingsBefore = notify?.count("WATCHDOG") ?? 0
    sleep(UInt32(seconds))
    let used = cpuSeconds(daemon.processIdentifier) - before
    let pings = (notify?.count("WATCHDOG") ?? 0) - pingsBefore
    daemon.terminate()
    daemon.waitUntilExit()
    print(String(format: "idle%@ open_orders=%d seconds=%d poll=1s cpu=%.2fs cpu_per_minute=%.3fs%@",
                 systemd ? "-systemd" : "", count, seconds, used, used * 60 / Double(seconds),
                 systemd ? " watchdog_pings=\(pings) ready=\(notify?.count("READY") ?? 0)" : ""))
}

/// A reload under load: `count` open orders, the daemon idle; the hold changes from 2 h to 3 h and
/// SIGHUP is sent. Measured: from the signal to "configuration reloaded" (the file checked, delivery
/// drained, every open order marked), and to the end of the re-planning sweep (none marked left).
func benchReload(_ count: Int) async throws {
    let dir = tempDirectory("reload")
    defer { removeUnlessKept(dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let sink = try makeSink(true, dir: dir)
    defer { sink.stop() }
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, nil) }
    let text = config(db: path, gateway: sink.baseURL, hold: "2h", reminders: "[]")
    let daemon = try startDaemon(dir: dir, configText: text)
    let db = try reader(path)
    let marked = "SELECT COUNT(*) FROM pw_order_state WHERE next_due_at = 0"
    _ = waitUntil(600) { benchCount(db, marked) == 0 }
    sleep(2)
    try text.replacingOccurrences(of: "hold = \"2h\"", with: "hold = \"3h\"")
        .write(toFile: dir.appendingPathComponent("paywatch.toml").path, atomically: true, encoding: .utf8)
    let logPath = dir.appendingPathComponent("paywatch.log").path
    let start = monotonicSeconds()
    kill(daemon.processIdentifier, SIGHUP)
    let reloaded = waitUntil(120) {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("configuration reloaded")
    }
    let reloadedAt = monotonicSeconds() - start
    let replanned = waitUntil(600) { benchCount(db, marked) == 0 }
    let replannedAt = monotonicSeconds() - start
    let due = benchCount(db, "SELECT MIN(next_due_at) FROM pw_order_state WHERE next_due_at > 0")
    daemon.terminate()
    daemon.waitUntilExit()
    print(String(format: "reload open_orders=%d reloaded=%@ to_reloaded=%.2fs to_replanned=%.2fs replanned=%@ next_due_is_new_hold=%@",
                 count, reloaded ? "yes" : "NO", reloadedAt, replannedAt, replanned ? "yes" : "NO",
                 Int64(due) >= created + 3 * 3_600_000 - 1_000 ? "yes" : "NO"))
}

let args = Array(CommandLine.arguments.dropFirst())
/// The numbers after the subcommand, in order (words such as `ext` and `slow` aside).
let numbers = args.dropFirst().compactMap { Int($0) }
func arg(_ index: Int, _ fallback: Int) -> Int { numbers.count > index - 1 ? numbers[index - 1] : fallback }
let external = args.contains("ext")
let slow = args.contains("slow")

switch args.first ?? "all" {
case "pg-plan": try await benchPgPlan(arg(1, 100_000), replicas: arg(2, 1))
case "pg-burst": try await benchPgBurst(arg(1, 20_000), replicas: arg(2, 3), external: external, killOne: args.contains("kill"))
case "pg-intake": try await benchPgIntake(arg(1, 20_000), replicas: arg(2, 3))
case "pg-sweep1": try await benchPgSweepLatency(arg(1, 500))
case "pg-idle": try await benchPgIdle(arg(1, 100_000), seconds: arg(2, 60), replicas: arg(3, 1))
case "pg-spread": try await benchPgSpread(arg(1, 10_000), seconds: arg(2, 60), replicas: arg(3, 3), external: external)
case "plan": try await benchPlan(arg(1, 100_000), threeChannels: args.contains("3ch"))
case "planmix": try await benchPlanMix(arg(1, 100_000))
case "burst": try await benchBurst(arg(1, 20_000), external: external, slow: slow)
case "cancels": try await benchCancels(arg(1, 10_000), spread: arg(2, 60), external: external)
case "rss": try await benchRSS(arg(1, 1_000_000))
case "crash": try await benchCrash(arg(1, 20_000), external: external, delayMs: arg(2, 0))
case "deliver": try await benchDeliver(arg(1, 20_000))
case "reload": try await benchReload(arg(1, 100_000))
case "idle": try await benchIdle(arg(1, 100_000), seconds: arg(2, 60), systemd: args.contains("systemd"))
case "tls-http", "tls-smtp":
    try await benchTLS(arg(1, 5_000), concurrency: arg(2, 1), smtp: args.first == "tls-smtp", plain: args.contains("plain"),
                       startTLS: args.contains("starttls"), close: args.contains("close"))
case "retention": try await benchRetention(arg(1, 1_000_000), prune: args.contains("prune"), every: arg(2, 100_000))
case "all":
    try await benchPlan(100_000)
    try await benchPlanMix(100_000)
    try await benchPlan(1_000_000)
    try await benchBurst(20_000, external: false, slow: false)
    try await benchBurst(20_000, external: true, slow: false)
    try await benchBurst(20_000, external: true, slow: true)
    try await benchDeliver(20_000)
    try await benchCancels(10_000, spread: 60, external: false)
    try await benchCancels(10_000, spread: 60, external: true)
    try await benchRSS(1_000_000)
    try await benchCrash(20_000, external: false, delayMs: 0)
    try await benchCrash(600, external: true, delayMs: 30)
    try await benchIdle(100_000, seconds: 60)
default:
    print("usage: paywatch-bench [plan N | burst N [ext] [slow] | deliver N | cancels N SECONDS [ext] | rss N | crash N [ext] [DELAY_MS] | idle N SECONDS | retention N [EVERY] [prune] | tls-http N [CONC] [plain] [close] | tls-smtp N [CONC] [plain] [starttls] | all]")
    exit(64)
}
