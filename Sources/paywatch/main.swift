import ArgumentParser
import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDaemon
import PaywatchStore
import ServiceLifecycle
import UnixSignals

/// Exit codes (sysexits.h): 78 EX_CONFIG for a bad or missing configuration.
enum Exit {
    static let config = ExitCode(78)
    static let notFound = ExitCode(2)
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
    return Logger(label: "paywatch") { label in LineLogHandler(label: label, level: level) }
}

func openStore(_ config: PaywatchConfiguration) throws -> any OrderStore {
    do {
        return try Runtime.openStore(config)
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
        subcommands: [Run.self, Migrate.self, CheckConfig.self, Orders.self]
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the service (SIGTERM or SIGINT stops it cleanly).")

    @OptionGroup var options: ConfigOption
    @Flag(help: "One sweep and one delivery pass, then exit.")
    var once = false

    func run() async throws {
        let config = try options.load()
        let logger = makeLogger(config)
        for warning in config.warnings {
            logger.warning("\(warning)")
        }
        let store = try openStore(config)
        try await store.migrate()
        let runtime: Runtime
        do {
            runtime = try Runtime(config: config, store: store, logger: logger, configPath: options.path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        let service = PaywatchService(runtime: runtime)
        if once {
            try await service.runOnce()
        } else {
            let group = ServiceGroup(
                services: [service], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
            try await group.run()
        }
        try await store.close()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the schema; safe to repeat.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let store = try openStore(config)
        try await store.migrate()
        try await store.close()
        print("schema is up to date: \(config.store.url)")
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration and print the effective one (secrets masked).")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        do {
            _ = try Runtime.endpointsChecked(config, configPath: options.path)
        } catch {
            printError("paywatch: \(error)")
            throw Exit.config
        }
        print("# effective configuration of \(options.path)")
        print(config.rendered(), terminator: "")
        for warning in config.warnings {
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
            let store = try openStore(config)
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
        @Option(help: "Only this status (unpaid, paying, partially_paid, paid, failed, refunding, refunded, cancelled, quarantined).")
        var status: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "Machine-readable output.") var json = false

        func validate() throws {
            if let status, OrderStatus(rawValue: status) == nil, status != "quarantined" {
                throw ValidationError("unknown status \"\(status)\"")
            }
        }

        func run() async throws {
            let config = try options.load()
            let store = try openStore(config)
            let rows = try await store.orders(status: status, limit: limit)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            } else {
                print(pad("ID", 24) + pad("STATUS", 16) + pad("DUE", 16) + pad("PAID", 16) + "NEXT")
                for row in rows {
                    let due = row.amountDue.map { Messages.money($0, row.currency) } ?? "?"
                    let next = row.quarantine.map { "quarantined: \($0)" } ?? row.nextDueAt.map { $0 == 0 ? "now" : Timestamp.iso8601($0) } ?? "-"
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
