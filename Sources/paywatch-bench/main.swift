import Foundation
import GRDB
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchStore
import PaywatchTestSupport

// paywatch-bench: figures for docs/BENCHMARKS.md. Build in release and run:
//   swift build -c release --product paywatch && swift build -c release --product paywatch-bench
//   .build/release/paywatch-bench all
// Subcommands: plan N | burst N | deliver N | cancels N SECONDS | rss N | crash N | all
// Every run uses a fresh SQLite file in a temp directory and a loopback HTTP sink.


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
    return url
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

func config(db: String, gateway: String, hold: String = "30m", reminders: String = "[\"10m\", \"25m\"]",
            concurrency: Int = 32, poll: String = "1s", logLevel: String = "info") -> String {
    """
    [store]
    url = "sqlite://\(db)"
    [daemon]
    poll_interval = "\(poll)"
    batch_size = 500
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
    [channels.ops]
    provider = "webhook"
    url = "\(gateway)/ops"
    """
}

/// Starts `paywatch run` on `configText`; stderr goes to a file in `dir`.
func startDaemon(dir: URL, configText: String) throws -> Process {
    let configPath = dir.appendingPathComponent("paywatch.toml").path
    try configText.write(toFile: configPath, atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: paywatchBinary)
    process.arguments = ["run", "--config", configPath]
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
        usleep(5_000)
    }
    return false
}

/// Body fields of the requests the sink received (kind, order id) with arrival time.
func received(_ gateway: FakeGateway) -> [(kind: String, order: String, at: Int64)] {
    gateway.requests().compactMap { request in
        guard let json = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
              let kind = json["kind"] as? String, let order = json["order_id"] as? String else { return nil }
        return (kind, order, request.receivedAtMs)
    }
}

// MARK: Benchmarks

/// Planning throughput: orders planned and committed per second, in-process on the store.
func benchPlan(_ count: Int) async throws {
    let dir = tempDirectory("plan")
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let created = nowMs()
    var start = monotonicSeconds()
    try await populate(path: path, count: count) { _ in (created, nil) }
    let insertSeconds = monotonicSeconds() - start
    let store = try SQLiteOrderStore(path: path)
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"]))

    // 1. First sight of every order: validated, planned, state and timeline written.
    start = monotonicSeconds()
    var planned = 0
    while true {
        let now = created + 1000
        let result = try await store.sweep(now: now, limit: 500) { planner.plan($0, now: now) }
        planned += result.claimed
        if result.claimed < 500 { break }
    }
    let firstSeconds = monotonicSeconds() - start

    // 2. The first reminder comes due for all: planned, one outbox row each, committed.
    start = monotonicSeconds()
    var reminded = 0
    while true {
        let now = created + 10 * 60_000
        let result = try await store.sweep(now: now, limit: 500) { planner.plan($0, now: now) }
        reminded += result.plans.reduce(0) { $0 + $1.messages.count }
        if result.claimed < 500 { break }
    }
    let dueSeconds = monotonicSeconds() - start
    try await store.close()
    print(String(format: "plan orders=%d insert=%.1fs first-sight=%.0f orders/s due-reminder=%.0f orders/s (%d messages)",
                 count, insertSeconds, Double(planned) / firstSeconds, Double(count) / dueSeconds, reminded))
}

/// A burst of `count` reminders due at one instant, through the real daemon to a loopback sink.
func benchBurst(_ count: Int) async throws {
    let dir = tempDirectory("burst")
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway()
    defer { gateway.stop() }
    // Orders created now with a reminder at +8 s: the daemon plans them first (first sight),
    // then all their reminders come due at the same instant.
    let created = nowMs()
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: gateway.baseURL, reminders: "[\"8s\"]"))
    let due = created + 8_000
    let ok = waitUntil(120) { gateway.requestCount >= count }
    daemon.terminate()
    daemon.waitUntilExit()
    let arrivals = received(gateway).filter { $0.kind == "unpaid_reminder" }.map { $0.at - due }
    let early = arrivals.filter { $0 < 0 }.count
    let span = Double((arrivals.max() ?? 0) - max(0, arrivals.min() ?? 0)) / 1000
    print(String(format: "burst messages=%d complete=%@ rate=%.0f msg/s lateness p50=%dms p99=%dms max=%dms early=%d",
                 arrivals.count, ok ? "yes" : "NO", Double(arrivals.count) / max(span, 0.001),
                 percentile(arrivals, 0.5), percentile(arrivals, 0.99), arrivals.max() ?? 0, early))
}

/// `count` cancels spread evenly over `spread` seconds (light load): lateness of the notice.
func benchCancels(_ count: Int, spread: Int) async throws {
    let dir = tempDirectory("cancels")
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway()
    defer { gateway.stop() }
    let start = nowMs() + 5_000
    var expiries: [String: Int64] = [:]
    try await populate(path: path, count: count) { i in
        let expires = start + Int64(i) * Int64(spread) * 1000 / Int64(count)
        return (start - 60_000, expires)
    }
    for i in 0..<count { expiries["B\(i)"] = start + Int64(i) * Int64(spread) * 1000 / Int64(count) }
    let daemon = try startDaemon(dir: dir, configText: config(db: path, gateway: gateway.baseURL, reminders: "[]", poll: "5s"))
    _ = waitUntil(Double(spread) + 60) { gateway.requestCount >= count }
    let peak = peakRSSKiB(pid: daemon.processIdentifier)
    daemon.terminate()
    daemon.waitUntilExit()
    let lateness = received(gateway).filter { $0.kind == "order_cancelled" }.compactMap { r in expiries[r.order].map { r.at - $0 } }
    print(String(format: "cancels orders=%d spread=%ds delivered=%d lateness p50=%dms p99=%dms max=%dms early=%d peak_rss=%.1fMiB",
                 count, spread, lateness.count, percentile(lateness, 0.5), percentile(lateness, 0.99), lateness.max() ?? 0,
                 lateness.filter { $0 < 0 }.count, Double(peak) / 1024))
}

/// Peak RSS of the daemon holding `count` open orders (first sweep of all, then idle).
func benchRSS(_ count: Int) async throws {
    let dir = tempDirectory("rss")
    defer { try? FileManager.default.removeItem(at: dir) }
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
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway(recordBodies: false)
    defer { gateway.stop() }
    let created = nowMs() - 60_000
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let store = try SQLiteOrderStore(path: path)
    let planner = Planner(policy: Policy(unpaidRemindersMs: [30_000], unpaidChannels: ["sms"]))
    let now = nowMs()
    while try await store.sweep(now: now, limit: 500, plan: { planner.plan($0, now: now) }).claimed == 500 {}
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

/// kill -9 in the middle of a burst, restart: how many decided messages were stranded.
func benchCrash(_ count: Int) async throws {
    let dir = tempDirectory("crash")
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.db").path
    let gateway = try FakeGateway()
    defer { gateway.stop() }
    let created = nowMs() - 60_000
    try await populate(path: path, count: count) { _ in (created, created + 3_600_000) }
    let text = config(db: path, gateway: gateway.baseURL, reminders: "[\"30s\"]")
    var daemon = try startDaemon(dir: dir, configText: text)
    _ = waitUntil(60) { gateway.requestCount >= count / 3 }
    kill(daemon.processIdentifier, SIGKILL)
    daemon.waitUntilExit()
    let atKill = gateway.requestCount
    let restart = monotonicSeconds()
    daemon = try startDaemon(dir: dir, configText: text)
    var reader = Configuration()
    reader.readonly = true
    let queue = try DatabaseQueue(path: path, configuration: reader)
    let drained = try waitUntil(120) {
        try queue.unsafeReentrantRead { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE state != 'delivered'") } == 0
            && queue.unsafeReentrantRead { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox") } == count
    }
    let drainSeconds = monotonicSeconds() - restart
    daemon.terminate()
    daemon.waitUntilExit()
    let keys = gateway.requests().compactMap { $0.headers["idempotency-key"] }
    let unique = Set(keys).count
    let stranded = try queue.unsafeReentrantRead { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE state != 'delivered'") } ?? -1
    print(String(format: "crash messages=%d sent_before_kill=%d drained_after_restart=%@ in %.1fs stranded=%d unique_keys=%d repeats_same_key=%d",
                 count, atKill, drained ? "yes" : "NO", drainSeconds, stranded, unique, keys.count - unique))
}

let args = Array(CommandLine.arguments.dropFirst())
func arg(_ index: Int, _ fallback: Int) -> Int { args.count > index ? Int(args[index]) ?? fallback : fallback }

switch args.first ?? "all" {
case "plan": try await benchPlan(arg(1, 100_000))
case "burst": try await benchBurst(arg(1, 20_000))
case "cancels": try await benchCancels(arg(1, 10_000), spread: arg(2, 60))
case "rss": try await benchRSS(arg(1, 1_000_000))
case "crash": try await benchCrash(arg(1, 20_000))
case "deliver": try await benchDeliver(arg(1, 20_000))
case "all":
    try await benchPlan(100_000)
    try await benchPlan(1_000_000)
    try await benchBurst(20_000)
    try await benchDeliver(20_000)
    try await benchCancels(10_000, spread: 60)
    try await benchRSS(1_000_000)
    try await benchCrash(20_000)
default:
    print("usage: paywatch-bench [plan N | burst N | deliver N | cancels N SECONDS | rss N | crash N | all]")
    exit(64)
}
