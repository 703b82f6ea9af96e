import ArgumentParser
import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDaemon
import PaywatchDelivery
import PaywatchStore
import ServiceLifecycle
import UnixSignals

/// Exit codes (sysexits.h): 78 EX_CONFIG for a bad or missing configuration.
enum Exit {
    static let config = ExitCode(78)
    static let notFound = ExitCode(2)
    /// EX_TEMPFAIL: the store went away under the daemon (its file deleted or replaced); the
    /// supervisor starts it again.
    static let storeLost = ExitCode(75)
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $PAYWATCH_CONFIG, else /etc/paywatch/paywatch.toml).")
    var config: String?

    var path: String {
        config ?? ProcessInfo.processInfo.environment["PAYWATCH_CONFIG"] ?? PaywatchConfiguration.defaultPath
    }

    /// Loads and validates the configuration; a problem prints `file:line: [section] key: message`
    /// and exits 78.
    func load() throws -> PaywatchConfiguration {
        do {
            return try PaywatchConfiguration.load(path: path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

func makeLogger(_ config: PaywatchConfiguration) -> Logger {
    let level = Logger.Level(rawValue: config.daemon.logLevel) ?? .info
    return Logger(label: "paywatch") { label in PaywatchLogging.makeHandler(label: label, level: level) }
}

/// Opens the store for a command; a problem of `[store] url` (a folder, an unwritable folder,
/// `mode=ro` for a writer, not an SQLite file, …) exits 78, anything else 1.
/// - Parameter intent: `.write(command:)` for `run` and `migrate` (the default: `run`), `.read` for the
///   inspection commands (the database must exist).
func openStore(
    _ config: PaywatchConfiguration, configPath: String, intent: Runtime.StoreIntent = .write(command: "run"),
    runLock: Bool = false, logger: Logger? = nil
) throws -> any OrderStore {
    do {
        return try Runtime.openStore(config, configPath: configPath, intent: intent, runLock: runLock, logger: logger)
    } catch let error as RuntimeConfigError {
        printError("paywatch: \(error)")
        throw Exit.config
    } catch {
        printError("paywatch: \(error)")
        throw ExitCode.failure
    }
}

@main
struct Paywatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "paywatch",
        abstract: "Acts on time when an order's payment is not finished: reminds, cancels, confirms.",
        subcommands: [Run.self, Migrate.self, CheckConfig.self, Orders.self, ReportCommand.self, StatusCommand.self, Prune.self, SendTest.self]
    )

    static func main() async {
        // A closed pipe (stderr into `head`, a collector that went away) must not end the
        // process: writes fail with EPIPE instead, which the log handler ignores.
        signal(SIGPIPE, SIG_IGN)
        await main(nil)
    }
}

/// Migrates the store; a shop schema paywatch cannot use is a configuration error (exit 78).
/// Returns what it changed in the shop's tables.
func migrate(_ store: any OrderStore) async throws -> [String] {
    do {
        return try await store.migrate()
    } catch let error as StoreError where error.isConfiguration {
        printError("paywatch: \(error)")
        throw Exit.config
    }
}

/// ``migrate(_:)`` for the daemon: while the store cannot be reached (a PostgreSQL server down or
/// restarting, a network outage), it logs and tries again after a pause (1 s, doubling up to 30 s)
/// instead of exiting; a configuration problem still exits 78, and SIGTERM ends the wait. (The
/// SQLite store is a local file: an error there is reported and ends the command, as before.)
func migrateWhenReachable(_ store: any OrderStore, logger: Logger) async throws -> [String] {
    if store is SQLiteOrderStore { return try await migrate(store) }
    var pauseMs: UInt64 = 1000
    while true {
        do {
            return try await migrate(store)
        } catch let error as StoreError where !error.isConfiguration && !error.isFatal {
            logger.warning("the order store cannot be used yet; trying again", metadata: [
                "event": "store_unavailable", "error": "\(error)", "retry_in": "\(pauseMs)ms",
            ])
            try await Task.sleep(nanoseconds: pauseMs * 1_000_000)
            pauseMs = min(pauseMs * 2, 30_000)
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the service (SIGTERM or SIGINT stops it cleanly).")

    @OptionGroup var options: ConfigOption
    @Flag(help: "One sweep and one delivery pass, then exit.")
    var once = false

    func run() async throws {
        // Up to the hard limit: every transfer holds a socket, SQLite a few descriptors.
        Runtime.raiseOpenFilesLimit()
        let config = try options.load()
        do {
            try Runtime.checkResources(config, configPath: options.path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        let logger = makeLogger(config)
        for warning in config.warnings {
            logger.warning("\(warning)")
        }
        // One daemon per SQLite file: the store takes the run lock as it opens (exit 1 when
        // another paywatch holds it).
        let store = try openStore(config, configPath: options.path, intent: .write(command: "run"), runLock: true, logger: logger)
        for change in try await migrateWhenReachable(store, logger: logger) {
            logger.notice("schema migrated", metadata: ["change": "\(change)"])
        }
        let metrics = config.metrics.listen.map { _ in PaywatchMetrics() }
        var runtime: Runtime
        do {
            runtime = try Runtime(config: config, store: store, logger: logger, configPath: options.path)
            runtime.metrics = metrics
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        if once {
            try await PaywatchService(runtime: runtime).runOnce()
        } else {
            let endpoint = config.metrics.listen.flatMap { try? ListenAddress.parse($0).get() }.map {
                MetricsEndpoint(address: $0, metrics: metrics ?? PaywatchMetrics(), logger: logger)
            }
            endpoint?.start()
            defer { endpoint?.stop() }
            let path = options.path
            let service = DaemonService(runtime: runtime) {
                // SIGHUP: the whole file read and checked again, as at start; any problem keeps
                // the running configuration.
                let config = try PaywatchConfiguration.load(path: path)
                try Runtime.checkResources(config, configPath: path)
                var fresh = try Runtime(config: config, store: store, logger: makeLogger(config), configPath: path)
                fresh.metrics = metrics
                return fresh
            }
            let group = ServiceGroup(
                services: [service], gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [], logger: logger)
            do {
                try await group.run()
            } catch let error as StoreError where error.isFatal {
                printError("paywatch: \(error)")
                throw Exit.storeLost
            }
        }
        // A clean stop: whatever this process still holds leased is due again at once (delivery
        // gave back what it had claimed as it drained; this catches the rest, and only its own).
        // (Best effort: a lease not released comes back when it expires.)
        _ = try? await store.releaseLeases(now: runtime.clock.now())
        try await store.close()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the schema; safe to repeat.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let store = try openStore(config, configPath: options.path, intent: .write(command: "migrate"))
        let changes = try await migrate(store)
        try await store.close()
        for change in changes { print(change) }
        print("schema is up to date: \(config.store.maskedURL)")
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration and print the effective one (secrets masked).")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        do {
            // What the TOML parser cannot check: every token_file holds one printable line, and
            // [delivery] concurrency fits the open-files limit (as `run` checks at start).
            _ = try Runtime.endpoints(config, configPath: options.path)
            _ = try Runtime.reconcileEndpoint(config, configPath: options.path)
            // Every template compiles and names only known variables (as `run` checks at start).
            _ = try Runtime.templates(config, configPath: options.path)
            try Runtime.checkResources(config, configPath: options.path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        print("# effective configuration of \(options.path)")
        print(config.rendered(), terminator: "")
        for warning in config.warnings + Runtime.secretFileWarnings(config, configPath: options.path) {
            printError("warning: \(warning)")
        }
    }
}

struct Orders: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect orders.", subcommands: [Show.self, List.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Status, ledger, next planned action, timeline and deliveries of one order.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The order id.") var id: String
        @Flag(help: "Machine-readable output.") var json = false

        func run() async throws {
            let config = try options.load()
            let store = try openStore(config, configPath: options.path, intent: .read)
            guard let detail = try await store.order(id: id) else {
                printError("paywatch: no order with id \"\(id)\" (neither in orders nor tracked by paywatch)")
                throw Exit.notFound
            }
            let view = OrderView(detail: detail, policy: Policy(config))
            print(json ? view.json() : view.text())
            try await store.close()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tracked orders.")
        @OptionGroup var options: ConfigOption
        @Option(help: "Only this status (unpaid, paying, partially_paid, paid, failed, refunding, refunded, cancelled), or quarantined, or needs_refund.")
        var status: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "Machine-readable output.") var json = false

        func validate() throws {
            if let status, OrderFilter(rawValue: status) == nil {
                throw ValidationError("unknown status \"\(status)\"")
            }
        }

        func run() async throws {
            let config = try options.load()
            let store = try openStore(config, configPath: options.path, intent: .read)
            let rows = try await store.orders(status.flatMap(OrderFilter.init(rawValue:)), limit: limit)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            } else {
                print(pad("ID", 24) + pad("STATUS", 16) + pad("DUE", 16) + pad("PAID", 16) + "NEXT")
                for row in rows {
                    let due = row.amountDue.map { Messages.money($0, row.currency) } ?? "?"
                    var next = row.quarantine.map { "quarantined: \($0)" } ?? row.nextDueAt.map { $0 == 0 ? "now" : Timestamp.iso8601($0) } ?? "-"
                    if row.needsRefund > 0 { next = "needs_refund \(Messages.money(row.needsRefund, row.currency)); " + next }
                    print(pad(row.id, 24) + pad(row.status, 16) + pad(due, 16) + pad(Messages.money(row.amountPaid, row.currency), 16) + next)
                }
            }
            try await store.close()
        }
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Orders by status, money outstanding and to refund, reminder conversion, cancellations, time to payment, escalations, messages, attempts, backlog.")
    @OptionGroup var options: ConfigOption
    @Option(help: "The period to count over (reminders, cancellations, payments, escalations, messages, attempts), as a duration (\"24h\", \"7d\").")
    var since = "24h"
    @Flag(help: "Machine-readable output.") var json = false

    func validate() throws {
        if case .failure(let problem) = parseBoundedDuration(since) {
            throw ValidationError("--since: \(problem) (a duration such as \"24h\")")
        }
    }

    func run() async throws {
        let config = try options.load()
        let store = try openStore(config, configPath: options.path, intent: .read)
        let now = SystemClock().now()
        let sinceMs = (try? parseBoundedDuration(since).get()) ?? 0
        let report = try await store.report(since: now - sinceMs, now: now)
        try await store.close()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("Orders (\(report.ordersByStatus.values.reduce(0, +) + report.quarantined) tracked):")
        for status in OrderStatus.allCases {
            if let count = report.ordersByStatus[status.rawValue] { print("  " + pad(status.rawValue, 16) + "\(count)") }
        }
        if report.quarantined > 0 { print("  " + pad("quarantined", 16) + "\(report.quarantined)") }
        if report.needsRefund > 0 { print("  " + pad("needs_refund", 16) + "\(report.needsRefund) (money to return: paywatch orders list --status needs_refund)") }
        print("Outstanding (unpaid, paying, partially_paid, failed): " + moneyList(report.outstanding))
        print("To refund (needs_refund): " + moneyList(report.needsRefundByCurrency))
        print("Since \(Timestamp.iso8601(report.since)):")
        let conversion = report.reminderConversion
        print("  " + pad("reminded", 16) + "\(conversion.remindedOrders) order(s) got an unpaid_reminder, \(conversion.paidOrders) of them paid now"
            + (conversion.rate.map { " (\(percent($0)))" } ?? ""))
        print("  " + pad("cancelled", 16) + "\(report.cancellations.orders) order(s), \(report.cancellations.reminded) of them reminded before")
        print("  " + pad("paid", 16) + "\(report.timeToPayment.orders) order(s)"
            + (report.timeToPayment.medianMs.map { ", median \(humanDuration($0)) from creation to payment" } ?? ""))
        print("  " + pad("escalations", 16) + (report.escalations.isEmpty ? "none" :
            report.escalations.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        print("Messages decided since \(Timestamp.iso8601(report.since)):")
        if report.messages.isEmpty { print("  none") }
        for row in report.messages {
            print("  " + pad(row.kind, 22) + pad(row.channel, 10) + pad(row.state.rawValue, 12) + "\(row.count)")
        }
        print("Delivery attempts: " + (report.attempts.isEmpty ? "none" :
            report.attempts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        if let oldest = report.oldestBacklogDueAt {
            print("Backlog: \(report.backlog) message(s) due and not delivered, oldest due \(Timestamp.iso8601(oldest))")
        } else {
            print("Backlog: none")
        }
    }
}

/// `1290.00 CNY (3 orders), 20.00 USD (1 order)`, or `none`.
func moneyList(_ rows: [Report.Money]) -> String {
    rows.isEmpty ? "none" : rows.map {
        "\(Messages.money($0.amount, $0.currency.isEmpty ? "(no currency)" : $0.currency)) (\($0.orders) order\($0.orders == 1 ? "" : "s"))"
    }.joined(separator: ", ")
}

/// `0.333…` → `33%`.
func percent(_ rate: Double) -> String {
    "\(Int((rate * 100).rounded()))%"
}

/// A duration read at a glance: `45s`, `12m`, `3h20m`, `2d4h` (minutes under a day, hours above).
func humanDuration(_ ms: Int64) -> String {
    if ms < 1_000 { return "<1s" }
    if ms < 60_000 { return "\(ms / 1_000)s" }
    let minutes = (ms + 30_000) / 60_000
    if minutes < 24 * 60 { return formatDuration(minutes * 60_000) }
    return formatDuration((minutes + 30) / 60 * 3_600_000)
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Whether the daemon keeps up: last sweep, lag, backlog, outbox, open escalations. Exits 1 when it does not.",
        discussion: """
            Exit 0: a daemon swept within [daemon] max_lag and nothing has been due for longer. Exit 1: no \
            daemon ever ran on this store, it stopped, its last sweep is older than max_lag, or the lag \
            (the age of the oldest action due and not done) exceeds max_lag. Usable as a monitoring check.
            """)
    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false

    struct Output: Encodable {
        var healthy: Bool
        var problems: [String]
        var lagMs: Int64
        var maxLagMs: Int64
        var health: Health
    }

    func run() async throws {
        let config = try options.load()
        // A store that cannot be opened is a daemon that does not keep up: exit 1, as documented,
        // so that a monitoring check reads it as such (openStore has said why).
        let store: any OrderStore
        do {
            store = try openStore(config, configPath: options.path, intent: .read)
        } catch {
            throw ExitCode.failure
        }
        let now = SystemClock().now()
        let health: Health
        do {
            health = try await store.health(now: now)
        } catch {
            printError("paywatch: cannot read the daemon's state from \(config.store.maskedURL): \(error) (run `paywatch migrate`?)")
            throw ExitCode.failure
        }
        try await store.close()
        let maxLag = config.daemon.maxLagMs
        var problems: [String] = []
        if let daemon = health.daemon {
            if let stopped = daemon.stoppedAt {
                problems.append("the daemon stopped at \(Timestamp.iso8601(stopped))")
            } else if let swept = daemon.lastSweepAt {
                if now - swept > maxLag {
                    problems.append("the last sweep was \(humanDuration(now - swept)) ago, longer than max_lag \(formatDuration(maxLag))")
                }
            } else if now - daemon.startedAt > maxLag {
                problems.append("the daemon started \(humanDuration(now - daemon.startedAt)) ago and has not finished a sweep")
            }
        } else {
            problems.append("no daemon has run on this store (paywatch run)")
        }
        if health.lagMs > maxLag {
            problems.append("an action has been due for \(humanDuration(health.lagMs)), longer than max_lag \(formatDuration(maxLag))")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let output = Output(healthy: problems.isEmpty, problems: problems, lagMs: health.lagMs, maxLagMs: maxLag, health: health)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
        } else {
            print(statusText(health, problems: problems, maxLag: maxLag, now: now))
        }
        if !problems.isEmpty { throw ExitCode.failure }
    }

    func statusText(_ health: Health, problems: [String], maxLag: Int64, now: Millis) -> String {
        var lines = [problems.isEmpty ? "OK: paywatch keeps up" : "NOT OK: " + problems.joined(separator: "; ")]
        if let daemon = health.daemon {
            var line = "Daemon: pid \(daemon.pid) on \(daemon.instance), started \(Timestamp.iso8601(daemon.startedAt)), "
                + "configuration loaded \(Timestamp.iso8601(daemon.configLoadedAt))"
            if let stopped = daemon.stoppedAt { line += ", stopped \(Timestamp.iso8601(stopped))" }
            lines.append(line)
            lines.append("Last sweep: " + (daemon.lastSweepAt.map {
                "\(Timestamp.iso8601($0)) (\(humanDuration(max(0, now - $0))) ago, took \(daemon.lastSweepMs ?? 0) ms)"
            } ?? "none yet"))
        }
        lines.append("Lag: \(humanDuration(health.lagMs)) (max_lag \(formatDuration(maxLag)))"
            + (health.lag.changedOrders > 0 ? ", \(health.lag.changedOrders) changed order(s) to plan" : ""))
        lines.append("Open orders: \(health.openOrders)" + (health.quarantined > 0 ? " (and \(health.quarantined) quarantined)" : ""))
        lines.append("Backlog (due, not delivered): " + counts(health.backlog))
        lines.append("Outbox: " + counts(Dictionary(uniqueKeysWithValues: health.outbox.map { ($0.key.rawValue, $0.value) })))
        lines.append("Open escalations: " + counts(health.escalations))
        return lines.joined(separator: "\n")
    }

    func counts(_ values: [String: Int]) -> String {
        values.isEmpty ? "none" : values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}

/// The provider's request for `message`, or why it cannot make one.
func providerRequest(_ endpoint: ChannelEndpoint, _ message: ProviderMessage) -> Result<HTTPRequest, ProviderError> {
    do {
        return .success(try endpoint.request(for: message))
    } catch {
        return .failure(error)
    }
}

struct SendTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send-test",
        abstract: "Send one real message through a configured channel's provider, and print the provider's answer.")
    @OptionGroup var options: ConfigOption
    @Option(help: "A channel configured as [channels.NAME].") var channel: String
    @Option(help: "The address: E.164 phone, e-mail, push token, or anything the ops gateway takes.") var to: String
    @Option(help: "Render this kind (unpaid_reminder, payment_confirmed, …) with the shop's templates for a sample order TEST-0001, instead of a plain test text.")
    var kind: String?
    @Option(help: "With --kind: the sample order's locale (zh-CN, en); default [templates] default_locale.") var locale: String?

    func validate() throws {
        if let kind, NotificationKind(rawValue: kind) == nil {
            throw ValidationError("unknown kind \"\(kind)\": one of \(NotificationKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let config = try options.load()
        let endpoints: [String: ChannelEndpoint]
        do {
            endpoints = try Runtime.endpoints(config, configPath: options.path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        guard let endpoint = endpoints[channel] else {
            printError("paywatch: no [channels.\(channel)] in \(options.path) (configured: \(endpoints.keys.sorted().joined(separator: ", ")))")
            throw Exit.config
        }
        let now = SystemClock().now()
        let key = "pw1:test:\(now):\(channel)"
        var payload = MessagePayload(subject: "paywatch test message",
                                     text: "This is a test message from paywatch (send-test) at \(Timestamp.iso8601(now)).")
        if let kind = kind.flatMap(NotificationKind.init(rawValue:)) {
            let policy: Policy
            do {
                policy = Policy(config, templates: try Runtime.templates(config, configPath: options.path))
            } catch {
                printError("paywatch: \(error)")
                throw Exit.config
            }
            payload = Messages.sample(kind: kind, channel: channel, policy: policy, now: now, locale: locale)
        }
        let message = ProviderMessage(id: 1, key: key, kind: kind ?? "test", channel: channel, orderID: kind == nil ? nil : "TEST-0001",
                                      to: to, payload: payload)
        defer { endpoint.provider.shutdown() }
        // A provider that first fetches an access token says so (transient): wait for it, as long
        // as one transfer may take.
        let deadline = Date().addingTimeInterval(Double(config.delivery.timeoutMs) / 1_000)
        var built = providerRequest(endpoint, message)
        while case .failure(let error) = built, error.transient, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
            built = providerRequest(endpoint, message)
        }
        let request: HTTPRequest
        switch built {
        case .success(let made): request = made
        case .failure(let error):
            printError("paywatch: send-test: \(endpoint.provider.name) cannot send to \(Redact.address(to, channel: channel)): \(error)")
            throw ExitCode.failure
        }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: config.delivery.timeoutMs)
        defer { transport.shutdown() }
        let response = await transport.perform([request])[0]
        let masked = Redact.address(to, channel: channel)
        var answer = response
        answer.body = Redact.scrub(String(response.body.prefix(1024)), addresses: [to])
        switch endpoint.provider.verdict(for: answer) {
        case .delivered:
            print("sent: channel=\(channel) provider=\(endpoint.provider.name) to=\(masked) HTTP \(response.status ?? 0) "
                + "in \(response.durationMs) ms (key \(key))")
            let reply = answer.body.prefix(300).filter { !$0.isNewline }
            if !reply.isEmpty { print("answer: \(reply)") }
        case .retry(let why), .dead(let why, _):
            printError("paywatch: send-test failed: channel=\(channel) provider=\(endpoint.provider.name) to=\(masked): \(why)")
            throw ExitCode.failure
        }
    }
}

/// Applies `[retention]` now, as the daemon does every hour (safe beside a running daemon: each
/// batch is one short transaction, and nothing of an order with work open is touched).
struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune the history (timeline, outbox, attempts) of orders final for longer than [retention] keep.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Count what would be pruned; delete nothing.") var dryRun = false

    func run() async throws {
        let config = try options.load()
        // A dry run only reads: it works for a read-only user and never migrates the schema under a
        // daemon of an older release.
        let store = try openStore(config, configPath: options.path, intent: dryRun ? .read : .write(command: "prune"))
        if !dryRun { _ = try await migrate(store) }
        let keep = config.retention.keepMs
        let counts = try await store.pruneAll(now: SystemClock().now(), keepMs: keep, batchSize: config.retention.batchSize,
                                              dryRun: dryRun)
        try await store.close()
        let rows = "\(counts.events) timeline event(s), \(counts.outbox) outbox row(s), \(counts.attempts) delivery attempt(s)"
        print("\(dryRun ? "would prune" : "pruned") the history of \(counts.orders) order(s) final for longer than \(formatDuration(keep)): \(rows)")
    }
}
