import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore

/// A configured channel as delivery needs it: where to POST and with which bearer token.
public struct ChannelEndpoint: Sendable {
    public var name: String
    public var url: String
    /// The token read from `token_file` at start; never logged.
    var token: String?

    /// The webhook request headers for one message.
    public func headers(idempotencyKey: String) -> [(String, String)] {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", idempotencyKey),
            ("User-Agent", "paywatch/0.1"),
        ]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return headers
    }
}

/// Startup problems that are the configuration's fault (exit 78).
public struct RuntimeConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension Policy {
    /// The planner's parameters from the TOML configuration.
    public init(_ config: PaywatchConfiguration) {
        var fixed: [String: String] = [:]
        for (name, channel) in config.channels {
            if let to = channel.to { fixed[name] = to }
        }
        self.init(
            unpaidHoldMs: config.unpaid.holdMs,
            unpaidRemindersMs: config.unpaid.remindersMs,
            unpaidChannels: config.unpaid.channels,
            failedRemindersMs: config.failed.remindersMs,
            failedChannels: config.failed.channels,
            paidChannels: config.paid.channels,
            fixedRecipients: fixed
        )
    }
}

/// Everything a running paywatch holds, wired once: the factory of the daemon. The CLI builds it
/// from the configuration file; tests build it in-process with their own clock, store and
/// transport and run ``PaywatchService`` on it.
public struct Runtime: Sendable {
    public var config: PaywatchConfiguration
    public var planner: Planner
    public var store: any OrderStore
    public var transport: HTTPTransport
    public var channels: [String: ChannelEndpoint]
    public var clock: any PaywatchClock
    public var logger: Logger
    /// Every channel a message can name: the configured ones, those the rules list, and `ops`.
    /// Delivery keeps a lane for each.
    public var knownChannels: [String]

    /// - Parameters:
    ///   - transport: the HTTP transport; by default one sized by `[delivery]`.
    ///   - configPath: named in configuration errors (an unreadable `token_file`).
    public init(
        config: PaywatchConfiguration, store: any OrderStore, clock: any PaywatchClock = SystemClock(),
        transport: HTTPTransport? = nil, logger: Logger, configPath: String = "paywatch.toml"
    ) throws {
        let policy = Policy(config)
        self.config = config
        self.planner = Planner(policy: policy)
        self.store = store
        self.clock = clock
        self.logger = logger
        self.transport = transport ?? HTTPTransport(concurrency: config.delivery.concurrency, timeoutMs: config.delivery.timeoutMs)
        self.channels = try Runtime.endpoints(config, configPath: configPath)
        let named = config.unpaid.channels + config.failed.channels + config.partiallyPaid.channels + config.paid.channels
            + config.refunding.channels + [policy.opsChannel]
        self.knownChannels = Set(named).union(config.channels.keys).sorted()
    }

    /// The configured channels with their tokens read; an unreadable `token_file` is a configuration error.
    public static func endpoints(_ config: PaywatchConfiguration, configPath: String) throws -> [String: ChannelEndpoint] {
        var result: [String: ChannelEndpoint] = [:]
        for (name, channel) in config.channels {
            var token: String? = nil
            if let file = channel.tokenFile {
                guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                    throw RuntimeConfigError(description: "\(configPath): [channels.\(name)] token_file: cannot read \(file)")
                }
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            result[name] = ChannelEndpoint(name: name, url: channel.url, token: token)
        }
        return result
    }

    /// Opens the store named by `[store] url`. With `mustExist` (the inspection commands) a
    /// missing database is an error instead of being created empty.
    public static func openStore(_ config: PaywatchConfiguration, mustExist: Bool = false) throws -> any OrderStore {
        // The configuration allows only sqlite:// and postgres:// URLs.
        guard let path = config.store.sqlitePath else {
            throw RuntimeConfigError(description: "[store] url: PostgreSQL is not supported by this build yet; use sqlite://")
        }
        if mustExist, !FileManager.default.fileExists(atPath: path) {
            throw StoreError(description: "no database at \(path): run `paywatch migrate` (or start the service) first")
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        return try SQLiteOrderStore(path: path, busyTimeoutMs: config.store.busyTimeoutMs)
    }
}
