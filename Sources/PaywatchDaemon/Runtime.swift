import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchPostgres
import PaywatchStore

/// A configured channel as delivery needs it: its provider, credentials read.
public struct ChannelEndpoint: Sendable {
    public var name: String
    public var provider: any DeliveryProvider
    /// `[channels.NAME] ca_file`: set on every request of the channel (TLS peers verified against it).
    public var caFile: String?

    public init(name: String, provider: any DeliveryProvider, caFile: String? = nil) {
        self.name = name
        self.provider = provider
        self.caFile = caFile
    }

    /// The provider's request for `message`, with the channel's `ca_file`.
    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        var request = try provider.request(for: message)
        if let caFile { request.caFile = caFile }
        return request
    }
}

/// Startup problems that are the configuration's fault (exit 78).
public struct RuntimeConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension Policy {
    /// The planner's parameters from the TOML configuration; `templates` as ``Runtime/templates(_:configPath:)``
    /// compiled them (by default the built-in ones with `[templates] default_locale`).
    public init(_ config: PaywatchConfiguration, templates: Templates? = nil) {
        var fixed: [String: String] = [:]
        for (name, channel) in config.channels {
            if let to = channel.to { fixed[name] = to }
        }
        self.init(
            unpaidHoldMs: config.unpaid.holdMs,
            holdByMethodMs: config.unpaid.holdByMethodMs,
            unpaidRemindersMs: config.unpaid.remindersMs,
            unpaidChannels: config.unpaid.channels,
            failedRemindersMs: config.failed.remindersMs,
            failedChannels: config.failed.channels,
            paidChannels: config.paid.channels,
            balanceRemindersMs: config.partiallyPaid.remindersMs,
            balanceDueMs: config.partiallyPaid.balanceDueMs,
            installmentRemindersMs: config.partiallyPaid.installmentRemindersMs,
            overdueEveryMs: config.partiallyPaid.overdueEveryMs,
            overdueMax: config.partiallyPaid.overdueMax,
            cancelOnOverdue: config.partiallyPaid.onOverdue == .cancel,
            partiallyPaidChannels: config.partiallyPaid.channels,
            refundStallAfterMs: config.refunding.stallAfterMs,
            refundingChannels: config.refunding.channels,
            payingStallAfterMs: config.paying.stallAfterMs,
            payingEscalations: config.paying.escalations,
            payingGiveUpAfterMs: config.paying.giveUpAfterMs,
            reconcileEnabled: config.paying.reconcileURL != nil,
            reinstateLatePayments: config.cancelled.onLatePayment == .reinstate,
            supportContact: config.templates.supportContact,
            chineseByDefault: config.templates.defaultLocale.hasPrefix("zh"),
            templates: templates ?? Templates.builtIn.withDefaultLocale(config.templates.defaultLocale),
            fixedRecipients: fixed,
            maxClockSkewMs: config.daemon.maxClockSkewMs,
            quietHours: config.quietHours.start.flatMap { start in
                config.quietHours.end.map { QuietHours(start: start, end: $0, channels: Set(config.quietHours.channels)) }
            },
            defaultTimeZone: config.daemon.timeZone
        )
        let fallback: [(Policy.RuleSection, Bool)] = [
            (.unpaid, config.unpaid.fallback), (.failed, config.failed.fallback), (.partiallyPaid, config.partiallyPaid.fallback),
            (.paid, config.paid.fallback), (.refunding, config.refunding.fallback),
        ]
        self.fallback = Set(fallback.filter(\.1).map(\.0))
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
    /// Where stalled payment attempts are asked about; nil without `[paying] reconcile_url`.
    public var reconcile: ReconcileEndpoint?
    public var clock: any PaywatchClock
    public var logger: Logger
    /// Every channel a message can name: the configured ones, those the rules list, and `ops`.
    /// Delivery keeps a lane for each.
    public var knownChannels: [String]
    /// Where messages, transitions, sweeps and lag are counted; nil without `[metrics] listen`.
    public var metrics: PaywatchMetrics?

    /// - Parameters:
    ///   - transport: the HTTP transport; by default one sized by `[delivery]`.
    ///   - configPath: named in configuration errors (an unreadable `token_file`).
    public init(
        config: PaywatchConfiguration, store: any OrderStore, clock: any PaywatchClock = SystemClock(),
        transport: HTTPTransport? = nil, logger: Logger, configPath: String = "paywatch.toml"
    ) throws {
        let policy = Policy(config, templates: try Runtime.templates(config, configPath: configPath))
        self.config = config
        self.planner = Planner(policy: policy)
        self.store = store
        self.clock = clock
        self.logger = logger
        self.transport = transport ?? HTTPTransport(concurrency: config.delivery.concurrency, timeoutMs: config.delivery.timeoutMs)
        self.channels = try Runtime.endpoints(config, configPath: configPath)
        for warning in Runtime.secretFileWarnings(config, configPath: configPath) {
            logger.warning("\(warning)", metadata: ["event": "secret_file_exposed"])
        }
        self.reconcile = try Runtime.reconcileEndpoint(config, configPath: configPath)
        let named = config.unpaid.channels + config.failed.channels + config.partiallyPaid.channels + config.paid.channels
            + config.refunding.channels + [policy.opsChannel]
        self.knownChannels = Set(named).union(config.channels.keys).sorted()
    }

    /// Every template compiled: the built-in ones and the `.mustache` files of `[templates] dir`. An
    /// unreadable dir, a file name that is no template name, a syntax error or an unknown variable
    /// is a configuration error naming the file (and line) — found at start, never at a send.
    public static func templates(_ config: PaywatchConfiguration, configPath: String) throws -> Templates {
        var overrides: [String: (file: String, source: String)] = [:]
        if var dir = config.templates.dir {
            // Relative: beside the config file (systemd starts services in /), as a sqlite path.
            if !dir.hasPrefix("/") {
                dir = ((configPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent(dir)
            }
            func failure(_ message: String) -> RuntimeConfigError {
                RuntimeConfigError(description: config.error(
                    file: configPath, section: ["templates"], key: "dir", message: message).description)
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), isDirectory.boolValue,
                  let names = try? FileManager.default.contentsOfDirectory(atPath: dir)
            else { throw failure("cannot read the folder \(dir)") }
            for name in names.sorted() where name.hasSuffix(".mustache") && !name.hasPrefix(".") {
                let path = (dir as NSString).appendingPathComponent(name)
                guard let data = FileManager.default.contents(atPath: path) else { throw failure("cannot read \(path)") }
                guard let source = String(data: data, encoding: .utf8) else {
                    throw RuntimeConfigError(description: "\(path): template: not UTF-8 text")
                }
                overrides[String(name.dropLast(".mustache".count))] = (path, source)
            }
        }
        do {
            return try Templates(overrides: overrides, defaultLocale: config.templates.defaultLocale)
        } catch {
            throw RuntimeConfigError(description: error.description)
        }
    }

    /// The configured channels, each with its provider built and its credentials read: a `*_file`
    /// key's file must hold one line of printable ASCII (after trimming surrounding spaces and one
    /// trailing newline); a Slack `url_file` an http(s) URL (plain `http://` to loopback only, unless
    /// `allow_insecure_http`). An unreadable or unfit file is a configuration error naming the file
    /// and the key — never the content. A `*_file` may name a systemd credential,
    /// `$CREDENTIALS_DIRECTORY/NAME` (``SecretFile``). `base_url` defaults to the provider's API.
    ///
    /// - Parameter credentialsDirectory: `$CREDENTIALS_DIRECTORY`; by default the process's.
    public static func endpoints(
        _ config: PaywatchConfiguration, configPath: String, credentialsDirectory: String? = SecretFile.credentialsDirectory()
    ) throws -> [String: ChannelEndpoint] {
        var result: [String: ChannelEndpoint] = [:]
        for name in config.channels.keys.sorted() {
            guard let channel = config.channels[name] else { continue }
            func failure(_ key: String, _ message: String) -> RuntimeConfigError {
                RuntimeConfigError(description: config.error(
                    file: configPath, section: ["channels", name], key: key, message: message).description)
            }
            /// A key the provider needs (the reader makes sure of it; a configuration built in code may not).
            func needed(_ key: String, _ value: String?) throws -> String {
                guard let value else { throw failure(key, "missing required key for provider \"\(channel.provider)\"") }
                return value
            }
            func secret(_ key: String, _ file: String?) throws -> String? {
                if let inline = channel.inlineSecrets[key] {
                    // Written in the section (allow_inline_secrets): held to a file's rules.
                    switch bearerToken(Array(inline.utf8)) {
                    case .success(let text): return text
                    case .failure:
                        let name = key == "url_file" ? "url" : String(key.dropLast(5))
                        throw failure(name, "the inline \(name) must be one line of printable ASCII without spaces")
                    }
                }
                guard let file else { return nil }
                switch SecretFile.read(file, credentialsDirectory: credentialsDirectory, as: bearerToken) {
                case .success(let text): return text
                case .failure(let problem): throw failure(key, problem.description)
                }
            }
            var caFile: String?
            if let file = channel.caFile {
                // Relative: beside the configuration file, as the other paths.
                let path = file.hasPrefix("/") ? file
                    : ((configPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent(file)
                guard FileManager.default.isReadableFile(atPath: path) else { throw failure("ca_file", "cannot read \(path)") }
                caFile = path
            }
            let provider: any DeliveryProvider
            switch channel.provider {
            case "webhook":
                provider = WebhookProvider(url: try needed("url", channel.url), token: try secret("token_file", channel.tokenFile))
            case "twilio":
                provider = TwilioProvider(
                    baseURL: try needed("base_url", channel.effectiveBaseURL), accountSID: try needed("account_sid", channel.accountSID),
                    authToken: try needed("auth_token_file", secret("auth_token_file", channel.authTokenFile)),
                    from: try needed("from", channel.from))
            case "sendgrid":
                provider = SendGridProvider(
                    baseURL: try needed("base_url", channel.effectiveBaseURL),
                    apiKey: try needed("api_key_file", secret("api_key_file", channel.apiKeyFile)),
                    from: try needed("from", channel.from), fromName: channel.fromName)
            case "slack":
                let inline = channel.inlineSecrets["url_file"] != nil
                let file = inline ? "the inline url" : try needed("url_file", channel.urlFile)
                let url = try needed("url_file", secret("url_file", channel.urlFile))
                if !["http://", "https://"].contains(where: url.lowercased().hasPrefix) || urlHost(url) == nil {
                    throw failure(inline ? "url" : "url_file", "\(file) does not hold an http:// or https:// URL (the incoming webhook's)")
                }
                if isInsecureHTTP(url), !channel.allowInsecureHTTP {
                    throw failure(inline ? "url" : "url_file", "\(file) holds a plain http:// URL to a host other than loopback, which would "
                        + "send the message unencrypted: use https://, or set allow_insecure_http = true")
                }
                provider = SlackProvider(url: url)
            case "pagerduty":
                provider = PagerDutyProvider(
                    baseURL: try needed("base_url", channel.effectiveBaseURL),
                    routingKey: try needed("routing_key_file", secret("routing_key_file", channel.routingKeyFile)))
            case "smtp":
                do {
                    provider = try SMTPProvider(
                        url: try needed("url", channel.url), from: try needed("from", channel.from), fromName: channel.fromName,
                        username: channel.username, password: try secret("password_file", channel.passwordFile),
                        startTLS: channel.startTLS.flatMap { MailEnvelope.StartTLS(rawValue: $0.rawValue) },
                        now: { SystemClock().now() })
                } catch let error as ProviderError {
                    // Each refusal names the setting it is about (its first word): the key the error names.
                    let key = ["from": "from", "username": "password_file", "credentials": "starttls"][
                        String(error.description.prefix { $0 != " " })] ?? "url"
                    throw failure(key, error.description)
                }
            case "fcm":
                let file = try needed("service_account_file", channel.serviceAccountFile)
                let account: ServiceAccount
                switch SecretFile.read(file, credentialsDirectory: credentialsDirectory, as: {
                    ServiceAccount.parse($0).mapError { TokenProblem(description: $0.description) }
                }) {
                case .success(let parsed): account = parsed
                case .failure(let problem): throw failure("service_account_file", problem.description)
                }
                if isInsecureHTTP(account.tokenURI), !channel.allowInsecureHTTP {
                    throw failure("service_account_file", "\(file): token_uri is a plain http:// URL to a host other than "
                        + "loopback, which would send the signed assertion unencrypted: use https://, or set allow_insecure_http = true")
                }
                do {
                    provider = try FCMProvider(account: account, baseURL: channel.effectiveBaseURL,
                                               timeoutMs: config.delivery.timeoutMs, caFile: caFile, now: { SystemClock().now() })
                } catch {
                    throw failure("service_account_file", error.description)
                }
            default:
                throw failure("provider", "provider \"\(channel.provider)\" is not available in this build")
            }
            result[name] = ChannelEndpoint(name: name, provider: provider, caFile: caFile)
        }
        return result
    }

    /// Every secret file the configuration names, by section and key: the channels' `*_file` keys
    /// and `[paying] token_file`, `headers_file`.
    public static func secretFiles(_ config: PaywatchConfiguration) -> [(section: [String], key: String, file: String)] {
        var files: [(section: [String], key: String, file: String)] = []
        for name in config.channels.keys.sorted() {
            guard let channel = config.channels[name] else { continue }
            for (key, path) in PaywatchConfiguration.Channel.secretFileKeys {
                if let file = channel[keyPath: path] { files.append((["channels", name], key, file)) }
            }
        }
        if let file = config.store.passwordFile { files.append((["store"], "password_file", file)) }
        if let file = config.paying.tokenFile { files.append((["paying"], "token_file", file)) }
        if let file = config.paying.headersFile { files.append((["paying"], "headers_file", file)) }
        return files
    }

    /// One warning per secret file that group or others may read (`FILE:LINE: [channels.sms]
    /// auth_token_file: PATH is readable by …`): any account on the machine could take the
    /// credential. Shown at start, in the log (`run`, through ``Runtime/init``) and on stderr
    /// (`check-config`). Files that cannot be read are left to ``endpoints(_:configPath:credentialsDirectory:)``.
    public static func secretFileWarnings(
        _ config: PaywatchConfiguration, configPath: String, credentialsDirectory: String? = SecretFile.credentialsDirectory()
    ) -> [String] {
        secretFiles(config).compactMap { entry in
            SecretFile.exposure(entry.file, credentialsDirectory: credentialsDirectory).map {
                config.error(file: configPath, section: entry.section, key: entry.key, message: $0).description
            }
        }
    }

    /// Why a token file's bytes cannot be a bearer token, worded after the file name; never the content.
    public struct TokenProblem: Error, Sendable, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// The bearer token in a token file's bytes: surrounding spaces and tabs and one trailing newline
    /// (`\n` or `\r\n`) are trimmed; what remains must be one non-empty run of printable ASCII
    /// (0x21–0x7E): no CR or LF (a header could be forged), no other control character, no space inside.
    public static func bearerToken(_ bytes: [UInt8]) -> Result<String, TokenProblem> {
        func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        var slice = bytes[...]
        while let last = slice.last, isBlank(last) { slice = slice.dropLast() }
        if slice.last == 0x0A {
            slice = slice.dropLast()
            if slice.last == 0x0D { slice = slice.dropLast() }
        }
        while let last = slice.last, isBlank(last) { slice = slice.dropLast() }
        while let first = slice.first, isBlank(first) { slice = slice.dropFirst() }
        if slice.isEmpty {
            return .failure(TokenProblem(description: "is empty: it must hold the token on one line"))
        }
        if slice.contains(0x0A) || slice.contains(0x0D) {
            return .failure(TokenProblem(description: "holds more than one line (a CR or LF inside): the token must be one line"))
        }
        if let bad = slice.first(where: { !(0x21...0x7E).contains($0) }) {
            let what = bad == 0x20 || bad == 0x09 ? "a space inside"
                : bad < 0x20 || bad == 0x7F ? "a control character" : "a byte outside printable ASCII"
            return .failure(TokenProblem(description: "holds \(what): the token must be printable ASCII (0x21-0x7E)"))
        }
        return .success(String(decoding: slice, as: UTF8.self))
    }

    /// What a command will do with the store: ``openStore(_:configPath:intent:)``.
    public enum StoreIntent: Sendable, Equatable {
        /// The command writes (`run`, `migrate`): `?mode=ro` is refused; the database is created if
        /// missing (unless `?mode=rw`).
        case write(command: String)
        /// The command only reads (`orders`, `report`): the database must already exist.
        case read
    }

    /// Opens the store named by `[store] url` for `intent`.
    ///
    /// Configuration errors (``RuntimeConfigError``, exit 78, in the form `FILE:LINE: [store] url: …`):
    /// PostgreSQL (not in this build); `?mode=ro` for a writer; a path that is a folder; a folder that
    /// cannot be created or written; a file that cannot be read (or written, by a writer); a file that
    /// is not an SQLite database; with `?mode=rw`, a missing file. A missing database for
    /// ``StoreIntent/read`` is a ``StoreError`` (run `migrate` first).
    ///
    /// With `runLock` (the daemon), the store takes the single-daemon lock as it opens (SQLite:
    /// `PATH.lock`, see ``SQLiteOrderStore/init(path:busyTimeoutMs:runLock:leaseOwner:)``); a
    /// ``StoreError`` when another paywatch runs on the database.
    public static func openStore(
        _ config: PaywatchConfiguration, configPath: String = "paywatch.toml", intent: StoreIntent = .write(command: "run"),
        runLock: Bool = false, logger: Logger? = nil
    ) throws -> any OrderStore {
        func failure(_ message: String) -> RuntimeConfigError {
            RuntimeConfigError(description: config.error(file: configPath, section: ["store"], key: "url", message: message).description)
        }
        if let url = config.store.postgres {
            return try openPostgres(config, url: url, configPath: configPath, logger: logger)
        }
        // The configuration allows only sqlite:// and postgres:// URLs.
        guard let path = config.store.sqlitePath, let mode = config.store.sqliteMode else {
            throw failure("expected a sqlite:// or postgres:// url")
        }
        if case .write(let command) = intent, mode == .ro {
            throw failure("the store is opened read-only (mode=ro) but \(command) needs to write")
        }
        var info = stat()
        let exists: Bool
        if stat(path, &info) == 0 {
            exists = true
            if (info.st_mode & S_IFMT) == S_IFDIR {
                throw failure("\(path) is a folder, not a database file")
            }
        } else if errno == ENOENT {
            exists = false
        } else {
            throw failure("cannot use \(path): \(String(cString: strerror(errno)))")
        }
        if !exists {
            if intent == .read {
                throw StoreError(description: "no database at \(path): run `paywatch migrate` (or start the service) first")
            }
            if mode == .rw {
                throw failure("no database at \(path), and mode=rw does not create one (use mode=rwc, or run with the right path)")
            }
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, intent != .read {
            if let problem = makeDirectories(directory) {
                throw failure("cannot create the folder \(directory) for \(path): \(problem)")
            }
            // SQLite writes its -wal and -shm files (and the lock) beside the database.
            if access(directory, W_OK) != 0 {
                throw failure("the folder \(directory) is not writable by this user: SQLite keeps \((path as NSString).lastPathComponent)-wal beside the database")
            }
        }
        if exists {
            if access(path, R_OK) != 0 {
                throw failure("\(path) is not readable by this user: \(String(cString: strerror(errno)))")
            }
            if intent != .read, access(path, W_OK) != 0 {
                throw failure("\(path) is not writable by this user: \(String(cString: strerror(errno)))")
            }
            if let problem = sqliteHeaderProblem(path) {
                throw failure("\(path) \(problem)")
            }
        }
        return try SQLiteOrderStore(path: path, busyTimeoutMs: config.store.busyTimeoutMs, runLock: runLock)
    }

    /// The PostgreSQL store for `[store] url = "postgres://…"`: several replicas may share it (no
    /// run lock). The password comes from `[store] password_file`, else the url, else
    /// `$PGPASSFILE` (or `~/.pgpass`, ignored when group or others may read it, as libpq does); the
    /// user from the url, else `$PGUSER`, else the account paywatch runs as. Nothing is connected
    /// here: a server that cannot be reached is a transient error of the first operation.
    /// Configuration errors (exit 78): a password file that cannot be read or holds no password, a
    /// CA file that cannot be read.
    static func openPostgres(_ config: PaywatchConfiguration, url: PostgresURL, configPath: String, logger: Logger?) throws -> any OrderStore {
        let store = config.store
        func failure(_ key: String, _ message: String) -> RuntimeConfigError {
            RuntimeConfigError(description: config.error(file: configPath, section: ["store"], key: key, message: message).description)
        }
        let environment = ProcessInfo.processInfo.environment
        let user = url.user ?? environment["PGUSER"].flatMap { $0.isEmpty ? nil : $0 } ?? currentUserName()
        var password = url.password
        if let file = store.passwordFile {
            switch SecretFile.read(file, credentialsDirectory: SecretFile.credentialsDirectory(), as: passwordLine) {
            case .success(let value): password = value
            case .failure(let problem): throw failure("password_file", problem.description)
            }
        } else if password == nil, let location = PGPassFile.location(pgpassfile: environment["PGPASSFILE"], home: environment["HOME"]) {
            var info = stat()
            if stat(location, &info) == 0, info.st_mode & 0o077 == 0, let data = FileManager.default.contents(atPath: location) {
                password = url.password(fromPassFile: String(decoding: data, as: UTF8.self), user: user)
            }
        }
        let endpoint: PostgresStoreSettings.Endpoint
        var tls = PostgresStoreSettings.TLSMode(rawValue: store.sslMode.rawValue) ?? .prefer
        switch url.endpoint {
        case .tcp(let host, let port): endpoint = .tcp(host: host, port: port)
        case .unixSocket(let path):
            endpoint = .unixSocket(path: path)
            tls = .disable  // as libpq: no TLS over a Unix socket
        }
        let settings = PostgresStoreSettings(
            endpoint: endpoint, username: user, password: password, database: url.database, tls: tls, caFile: store.caFile,
            poolSize: store.poolSize, connectTimeoutMs: store.connectTimeoutMs, leaseMs: store.leaseMs,
            applicationName: url.applicationName ?? "paywatch")
        do {
            return try PostgresOrderStore(settings: settings, logger: logger ?? Logger(label: "paywatch"))
        } catch let error as StoreError where error.isConfiguration {
            throw failure("ca_file", error.description)
        }
    }

    /// A password file's content: one line, the trailing newline dropped; not empty.
    static func passwordLine(_ bytes: [UInt8]) -> Result<String, TokenProblem> {
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        if text.isEmpty { return .failure(TokenProblem(description: "is empty: it must hold the password on one line")) }
        if text.contains("\n") || text.contains("\r") {
            return .failure(TokenProblem(description: "holds more than one line: the password must be one line"))
        }
        return .success(text)
    }

    /// The name of the account this process runs as (libpq's default user).
    static func currentUserName() -> String {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "paywatch" }
        return String(cString: name)
    }

    /// Open files paywatch needs besides one per transfer in flight: SQLite (database, WAL, shared
    /// memory, a connection per reader), logs, curl's own sockets and pipes.
    public static let openFilesReserve = 64

    /// Checks what the configuration needs from the machine, at start (`run`) and in `check-config`:
    /// `[delivery] concurrency` + ``openFilesReserve`` open files must fit the hard limit of
    /// `RLIMIT_NOFILE` (the soft limit is raised to it by ``raiseOpenFilesLimit()``). A configuration
    /// error (exit 78) names the key and how to raise the limit.
    /// - Parameter openFilesHardLimit: the limit to check against; by default `getrlimit`'s `rlim_max`.
    public static func checkResources(
        _ config: PaywatchConfiguration, configPath: String, openFilesHardLimit: UInt64? = nil
    ) throws(RuntimeConfigError) {
        let hard: UInt64
        if let openFilesHardLimit {
            hard = openFilesHardLimit
        } else {
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
            if limit.rlim_max == rlimInfinity { return }
            hard = UInt64(limit.rlim_max)
        }
        let needed = UInt64(max(0, config.delivery.concurrency)) + UInt64(openFilesReserve)
        guard needed > hard else { return }
        let written = config.line(of: ["delivery", "concurrency"]) != nil
        let message = (written ? "" : "the default ") + "\(config.delivery.concurrency) transfers need \(needed) open files (\(openFilesReserve) more for SQLite, "
            + "logs and curl), more than this process may open: the open-files hard limit (RLIMIT_NOFILE) is \(hard). "
            + "Lower concurrency to at most \(hard > UInt64(openFilesReserve) ? hard - UInt64(openFilesReserve) : 0), "
            + "or raise the limit: LimitNOFILE=\(needed) in the [Service] section of the systemd unit "
            + "(or `ulimit -Hn \(needed)` as root in a shell)"
        throw RuntimeConfigError(description: config.error(
            file: configPath, section: ["delivery"], key: "concurrency", message: message).description)
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit (the usual soft limit, 1,024, is far below
    /// what systemd allows), so that `[delivery] concurrency` transfers fit.
    /// - Returns: the soft limit now in force (unchanged if it could not be raised; `UInt64.max` for unlimited).
    @discardableResult
    public static func raiseOpenFilesLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        func value(_ v: rlim_t) -> UInt64 { v == rlimInfinity ? .max : UInt64(v) }
        if limit.rlim_cur == limit.rlim_max { return value(limit.rlim_cur) }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return value(raised.rlim_cur) }
        return value(limit.rlim_cur)
    }
}

/// `mkdir -p`: nil when `path` is (now) a folder, else why not (`Permission denied`, `… is a file`).
private func makeDirectories(_ path: String) -> String? {
    var info = stat()
    if stat(path, &info) == 0 {
        return (info.st_mode & S_IFMT) == S_IFDIR ? nil : "\(path) exists and is not a folder"
    }
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty, parent != path, let problem = makeDirectories(parent) { return problem }
    if mkdir(path, 0o755) == 0 || errno == EEXIST { return nil }
    return String(cString: strerror(errno))
}

/// Why the file at `path` is not an SQLite database, or nil: an empty file is a new database; any
/// other must start with the 16-byte header `"SQLite format 3\0"`. Cheap: one 16-byte read.
private func sqliteHeaderProblem(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }  // reported by the open that follows
    defer { close(fd) }
    var header = [UInt8](repeating: 0, count: 16)
    let count = header.withUnsafeMutableBytes { read(fd, $0.baseAddress, 16) }
    if count == 0 { return nil }
    if count == 16, header == Array("SQLite format 3".utf8) + [0] { return nil }
    return "is not an SQLite database (its first bytes are not the SQLite header)"
}

/// `RLIM_INFINITY` (all bits set; the C macro does not import into Swift).
private let rlimInfinity = rlim_t.max
