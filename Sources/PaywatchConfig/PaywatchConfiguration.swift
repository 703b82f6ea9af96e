/// paywatch's configuration: one TOML file, every key optional unless marked.
///
/// Durations are strings (`"500ms"`, `"10s"`, `"30m"`, `"1h30m"`, `"2d"`) and are held here as
/// `Int64` milliseconds. Every key — its name, type, field, and one line of documentation — is declared
/// once in ConfigKeys.swift (``sections``, ``Channel/keys``); the defaults are the fields' own (the
/// `init`s below). README.md's configuration table is generated from those declarations
/// (``referenceTable()``).
///
/// Every duration is at most 100 years (``maxDurationMs``). At least one `[channels.NAME]` section is
/// required (in `parse`/`load`; a configuration built in code may have none).
///
/// `NAME` matches `[a-z][a-z0-9_]*`. Every name in a `channels` list written in the file must have a
/// `[channels.NAME]` section. When `[unpaid] channels` is not written, its default keeps only the
/// default names that have a section (a warning names the others), so after `parse`/`load` every
/// name in every `channels` list is a key of ``channels``.
public struct PaywatchConfiguration: Sendable, Equatable {
    /// `[store]`: where the orders are. A `sqlite://` url is an SQLite file; a `postgres://` url a
    /// PostgreSQL server (``postgres``), which the other keys describe: they mean nothing for SQLite,
    /// and `parse`/`load` refuse them with a `sqlite://` url.
    ///
    /// After `parse`/`load`, ``sslMode``, ``caFile`` and ``connectTimeoutMs`` are the settings to
    /// connect with: the url's `?sslmode=`, `?sslrootcert=` and `?connect_timeout=` are folded into
    /// them (the same setting written both in the url and as a key, with different values, is an
    /// error). A `Store` built in code should set these fields; its url's parameters are not consulted.
    ///
    /// The password comes from, in this order: ``passwordFile``; the url's password (with a warning:
    /// anyone who can read the configuration can read it); the password file libpq would read,
    /// `$PGPASSFILE`, else `~/.pgpass` (``PGPassFile``); else none.
    public struct Store: Sendable, Equatable {
        public var url: String
        public var busyTimeoutMs: Int64
        /// PostgreSQL: a file holding the password on one line (a trailing newline is not part of
        /// it); it may name a systemd credential, `$CREDENTIALS_DIRECTORY/NAME`. Nil: the url's
        /// password, else `$PGPASSFILE` or `~/.pgpass`.
        public var passwordFile: String?
        /// PostgreSQL: whether and how the connection is encrypted and the server verified
        /// (`prefer` by default: TLS when the server offers it).
        public var sslMode: PostgresURL.SSLMode
        /// PostgreSQL: a PEM file of the certificate authorities the server's certificate is
        /// verified against (`verify-ca`, `verify-full`; with `prefer` or `require`, as in libpq,
        /// the chain is verified too when TLS is used). Nil: the system's certificate authorities.
        /// Never set with `disable`.
        public var caFile: String?
        /// PostgreSQL: connections per replica. Sweeps, delivery and reads share them; each replica
        /// also holds one more for `LISTEN`, so the server's `max_connections` must cover
        /// replicas × (pool_size + 1), besides the shop's own.
        public var poolSize: Int
        /// PostgreSQL: how long opening one connection (TCP, TLS and login) may take.
        public var connectTimeoutMs: Int64
        /// `[store] lease`: how long a claim (a message claimed or handed off for delivery, a
        /// reconcile request, a sweep's lease on an order on PostgreSQL) is held before anyone may
        /// take it. Delivery renews its leases every third of it while the work runs, so a dead
        /// replica's claims are taken over within about one lease. 5 s … 1 h, and longer than
        /// `[delivery] timeout` + 5 s (a transfer must finish inside its lease between renewals).
        public var leaseMs: Int64

        public init(
            url: String = "sqlite:///var/lib/paywatch/paywatch.db", busyTimeoutMs: Int64 = 5_000, passwordFile: String? = nil,
            sslMode: PostgresURL.SSLMode = .prefer, caFile: String? = nil, poolSize: Int = 4, connectTimeoutMs: Int64 = 10_000,
            leaseMs: Int64 = 30_000
        ) {
            self.url = url
            self.busyTimeoutMs = busyTimeoutMs
            self.passwordFile = passwordFile
            self.sslMode = sslMode
            self.caFile = caFile
            self.poolSize = poolSize
            self.connectTimeoutMs = connectTimeoutMs
            self.leaseMs = leaseMs
        }

        /// The `postgres://` or `postgresql://` url, read (``PostgresURL``); nil for SQLite (and for
        /// a url that is not valid, which `parse`/`load` refuse).
        public var postgres: PostgresURL? {
            guard sqlitePath == nil, case .success(let parsed) = PostgresURL.parse(url) else { return nil }
            return parsed
        }

        /// The keys of `[store]` that only a PostgreSQL store reads.
        static let postgresKeys = ["password_file", "sslmode", "ca_file", "pool_size", "connect_timeout"]

        /// The SQLite database path for a `sqlite://` url, without its `?options`
        /// (`sqlite:///var/x.db` → `/var/x.db`, `sqlite://x.db?mode=ro` → `x.db`), `nil` for PostgreSQL.
        ///
        /// ``PaywatchConfiguration/load(path:)`` resolves a relative path against the configuration
        /// file's folder (systemd runs the service from `/`), so after `load` it is absolute; after
        /// `parse` (or in code) a relative path is relative to the working directory.
        public var sqlitePath: String? {
            guard url.hasPrefix("sqlite://") else { return nil }
            let rest = url.dropFirst("sqlite://".count)
            return String(rest.prefix { $0 != "?" })
        }

        /// How a `sqlite://` database is opened, from its `?mode=` option; `nil` for PostgreSQL.
        public enum SQLiteMode: String, Sendable, Equatable, CaseIterable {
            /// Read only: refused by the commands that write (`run`, `migrate`).
            case ro
            /// Read and write an existing database; it is not created.
            case rw
            /// Read and write, created when missing (the default).
            case rwc
        }

        /// The `mode` of a `sqlite://` url (`rwc` when not given); `nil` for PostgreSQL. A url whose
        /// options are invalid (only possible when built in code) reads as `rwc`.
        public var sqliteMode: SQLiteMode? {
            guard url.hasPrefix("sqlite://") else { return nil }
            if case .success(let mode) = sqliteURLOptions(url) { return mode }
            return .rwc
        }

        /// `sqlite://…?mode=ro`: the store may only be read.
        public var readOnly: Bool { sqliteMode == .ro }

        /// ``url`` with credentials masked: a userinfo password and every query value become `****`.
        public var maskedURL: String { maskURL(url) }

        /// A `sqlite://` url with a relative path made absolute against `directory`; others unchanged.
        func resolvingRelativePath(against directory: String) -> Store {
            guard let path = sqlitePath, !path.hasPrefix("/") else { return self }
            var copy = self
            let query = url.dropFirst("sqlite://".count).drop { $0 != "?" }
            let base = directory.hasSuffix("/") ? directory : directory + "/"
            copy.url = "sqlite://" + base + path + query
            return copy
        }
    }

    public struct Daemon: Sendable, Equatable {
        public var pollIntervalMs: Int64
        public var batchSize: Int
        /// One of trace, debug, info, notice, warning, error, critical.
        public var logLevel: String
        /// Payments and refunds dated further than this in the future (by the shop's clock against
        /// paywatch's) are quarantined instead of acted on.
        public var maxClockSkewMs: Int64
        /// The lag (age of the oldest action due but not done) past which paywatch logs a warning
        /// and `paywatch status` exits 1; also the longest a sweep may be overdue.
        public var maxLagMs: Int64
        /// The IANA zone of orders whose `time_zone` is NULL or not a zone the system knows (their
        /// quiet hours are in it).
        public var timeZone: String

        public init(pollIntervalMs: Int64 = 5_000, batchSize: Int = 2_000, logLevel: String = "info",
                    maxClockSkewMs: Int64 = 300_000, maxLagMs: Int64 = 60_000, timeZone: String = "UTC") {
            self.pollIntervalMs = pollIntervalMs
            self.batchSize = batchSize
            self.logLevel = logLevel
            self.maxClockSkewMs = maxClockSkewMs
            self.maxLagMs = maxLagMs
            self.timeZone = timeZone
        }
    }

    public struct Delivery: Sendable, Equatable {
        public var concurrency: Int
        public var timeoutMs: Int64
        public var maxAttempts: Int
        public var retryBaseMs: Int64
        public var retryMaxMs: Int64
        /// The longest wait a gateway's `Retry-After` can impose; shorter ones (a date in the past
        /// included) are raised to ``retryBaseMs``.
        public var retryAfterMaxMs: Int64
        /// At most this many customer messages (distinct decisions, every channel counted once)
        /// delivered per order over any 24 hours; a reminder beyond it is not sent (`capped`).
        /// Transactional notices always go, and count. Nil: no cap.
        public var maxPerOrderPerDay: Int?

        public init(
            concurrency: Int = 32, timeoutMs: Int64 = 10_000, maxAttempts: Int = 8,
            retryBaseMs: Int64 = 1_000, retryMaxMs: Int64 = 3_600_000, retryAfterMaxMs: Int64 = 3_600_000,
            maxPerOrderPerDay: Int? = nil
        ) {
            self.maxPerOrderPerDay = maxPerOrderPerDay
            self.concurrency = concurrency
            self.timeoutMs = timeoutMs
            self.maxAttempts = maxAttempts
            self.retryBaseMs = retryBaseMs
            self.retryMaxMs = retryMaxMs
            self.retryAfterMaxMs = retryAfterMaxMs
        }
    }

    public struct Unpaid: Sendable, Equatable {
        /// `fallback = true`: each message goes to the first listed channel that has an address that is
        /// not suppressed (then, if that one is refused, to the next), instead of to every listed channel.
        public var fallback: Bool = false
        public var holdMs: Int64
        public var remindersMs: [Int64]
        public var channels: [String]
        /// `[unpaid.hold_by_method]`: payment method → hold.
        public var holdByMethodMs: [String: Int64]

        public init(
            holdMs: Int64 = 1_800_000, remindersMs: [Int64] = [600_000, 1_500_000],
            channels: [String] = PaywatchConfiguration.defaultChannels, holdByMethodMs: [String: Int64] = [:]
        ) {
            self.holdMs = holdMs
            self.remindersMs = remindersMs
            self.channels = channels
            self.holdByMethodMs = holdByMethodMs
        }
    }

    public struct Paying: Sendable, Equatable {
        public var stallAfterMs: Int64
        public var reconcileURL: String?
        /// Dotted path into the answer's JSON objects.
        public var reconcileStatusField: String
        public var reconcileReasonField: String
        public var reconcileSucceeded: [String]
        public var reconcileFailed: [String]
        public var escalations: Int
        public var giveUpAfterMs: Int64
        /// As a channel's: one line of printable ASCII, sent as `Authorization: Bearer …`.
        public var tokenFile: String?
        /// `Name: value` lines sent as headers with the reconcile GET.
        public var headersFile: String?

        public static let defaultSucceeded = ["succeeded", "success", "paid", "SUCCESS", "TRADE_SUCCESS", "TRADE_FINISHED", "COMPLETED"]
        public static let defaultFailed = ["failed", "canceled", "cancelled", "FAIL", "FAILED", "CLOSED", "TRADE_CLOSED",
                                           "PAYERROR", "REVOKED", "DECLINED"]

        public init(
            stallAfterMs: Int64 = 900_000, reconcileURL: String? = nil, reconcileStatusField: String = "status",
            reconcileReasonField: String = "failure_reason", reconcileSucceeded: [String] = Paying.defaultSucceeded,
            reconcileFailed: [String] = Paying.defaultFailed, escalations: Int = 3, giveUpAfterMs: Int64 = 86_400_000,
            tokenFile: String? = nil, headersFile: String? = nil
        ) {
            self.stallAfterMs = stallAfterMs
            self.reconcileURL = reconcileURL
            self.reconcileStatusField = reconcileStatusField
            self.reconcileReasonField = reconcileReasonField
            self.reconcileSucceeded = reconcileSucceeded
            self.reconcileFailed = reconcileFailed
            self.escalations = escalations
            self.giveUpAfterMs = giveUpAfterMs
            self.tokenFile = tokenFile
            self.headersFile = headersFile
        }
    }

    public struct Failed: Sendable, Equatable {
        /// `fallback = true`: each message goes to the first listed channel that has an address that is
        /// not suppressed (then, if that one is refused, to the next), instead of to every listed channel.
        public var fallback: Bool = false
        public var remindersMs: [Int64]
        public var channels: [String]

        public init(remindersMs: [Int64] = [600_000, 7_200_000], channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.remindersMs = remindersMs
            self.channels = channels
        }
    }

    public enum OnOverdue: String, Sendable, Equatable, CaseIterable {
        case escalate, cancel
    }

    public struct PartiallyPaid: Sendable, Equatable {
        /// `fallback = true`: each message goes to the first listed channel that has an address that is
        /// not suppressed (then, if that one is refused, to the next), instead of to every listed channel.
        public var fallback: Bool = false
        public var remindersMs: [Int64]
        public var balanceDueMs: Int64
        /// Before each installment's due date, in descending order (e.g. 3d, then 1d before).
        public var installmentRemindersMs: [Int64]
        public var overdueEveryMs: Int64
        public var overdueMax: Int
        public var onOverdue: OnOverdue
        public var channels: [String]

        public init(
            remindersMs: [Int64] = [86_400_000, 259_200_000], balanceDueMs: Int64 = 604_800_000,
            installmentRemindersMs: [Int64] = [259_200_000, 86_400_000], overdueEveryMs: Int64 = 86_400_000,
            overdueMax: Int = 3, onOverdue: OnOverdue = .escalate, channels: [String] = PaywatchConfiguration.defaultChannels
        ) {
            self.remindersMs = remindersMs
            self.balanceDueMs = balanceDueMs
            self.installmentRemindersMs = installmentRemindersMs
            self.overdueEveryMs = overdueEveryMs
            self.overdueMax = overdueMax
            self.onOverdue = onOverdue
            self.channels = channels
        }
    }

    public struct Paid: Sendable, Equatable {
        /// `fallback = true`: each message goes to the first listed channel that has an address that is
        /// not suppressed (then, if that one is refused, to the next), instead of to every listed channel.
        public var fallback: Bool = false
        public var channels: [String]

        public init(channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.channels = channels
        }
    }

    public struct Refunding: Sendable, Equatable {
        /// `fallback = true`: each message goes to the first listed channel that has an address that is
        /// not suppressed (then, if that one is refused, to the next), instead of to every listed channel.
        public var fallback: Bool = false
        public var stallAfterMs: Int64
        public var channels: [String]

        public init(stallAfterMs: Int64 = 259_200_000, channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.stallAfterMs = stallAfterMs
            self.channels = channels
        }
    }

    public enum OnLatePayment: String, Sendable, Equatable, CaseIterable {
        case escalate, reinstate
    }

    public struct Cancelled: Sendable, Equatable {
        public var onLatePayment: OnLatePayment

        public init(onLatePayment: OnLatePayment = .escalate) {
            self.onLatePayment = onLatePayment
        }
    }

    public struct Templates: Sendable, Equatable {
        /// How customers reach the shop (a phone number, an address, a URL), added to failure and
        /// refund messages.
        public var supportContact: String?
        /// The language for orders whose `locale` is not set or has no texts: `zh-CN` or `en`.
        public var defaultLocale: String
        /// A folder of `.mustache` files that override built-in templates by name.
        public var dir: String?

        public init(supportContact: String? = nil, defaultLocale: String = "zh-CN", dir: String? = nil) {
            self.supportContact = supportContact
            self.defaultLocale = defaultLocale
            self.dir = dir
        }
    }

    /// `[quiet_hours]`: customer messages on ``channels`` decided between ``start`` and ``end``
    /// (local time of the order's zone) wait for ``end``. Off unless both times are set.
    public struct QuietHours: Sendable, Equatable {
        /// Minutes after local midnight (`"21:00"` is 1260); nil: no quiet hours.
        public var start: Int?
        /// Minutes after local midnight, not equal to ``start``; not after it: the window crosses midnight.
        public var end: Int?
        /// Channels whose messages wait; never the ops channel. When not written: those of
        /// ``defaultChannels`` that have a section.
        public var channels: [String]

        public static let defaultChannels = ["sms", "push"]

        public init(start: Int? = nil, end: Int? = nil, channels: [String] = QuietHours.defaultChannels) {
            self.start = start
            self.end = end
            self.channels = channels
        }

        /// Whether messages are held at all: both times set.
        public var isOn: Bool { start != nil && end != nil }
    }

    public struct Metrics: Sendable, Equatable {
        /// `HOST:PORT` on a loopback address where a Prometheus text endpoint answers `GET /metrics`;
        /// nil (the default): no endpoint.
        public var listen: String?

        public init(listen: String? = nil) {
            self.listen = listen
        }
    }

    public struct Retention: Sendable, Equatable {
        /// How long an order stays in a final state (paid, refunded, cancelled) before its timeline,
        /// outbox rows and attempts are pruned.
        public var keepMs: Int64
        /// Orders pruned per transaction: each is a short write, so the shop's own writes never wait long.
        public var batchSize: Int

        public init(keepMs: Int64 = 90 * 86_400_000, batchSize: Int = 200) {
            self.keepMs = keepMs
            self.batchSize = batchSize
        }
    }

    /// One `[channels.NAME]` section. Which keys a section may hold follows from its ``provider``
    /// (``PaywatchConfiguration/providerKeys``); the others stay nil. Credentials are never held here,
    /// only the paths of the files that hold them (`*_file`), read at start by the daemon.
    /// A sending rate: `count` messages per `periodMs` (`"50/s"`, `"600/m"`, `"1000/h"`).
    public struct Rate: Sendable, Equatable {
        public var count: Int
        public var periodMs: Int64

        public init(count: Int, periodMs: Int64) {
            self.count = count
            self.periodMs = periodMs
        }

        /// Whole messages per second, at least 1 (the default burst).
        public var perSecondFloor: Int { max(1, Int(Int64(count) * 1_000 / periodMs)) }

        /// `"50/s"` as written back.
        public var text: String {
            "\(count)/" + (periodMs == 1_000 ? "s" : periodMs == 60_000 ? "m" : "h")
        }
    }

    public struct Channel: Sendable, Equatable {
        /// How `smtp` meets STARTTLS.
        public enum StartTLS: String, Sendable, Equatable, CaseIterable {
            /// Refuse to send unless the server upgrades the connection.
            case required
            /// Upgrade when the server offers it, else send in the clear.
            case opportunistic
            /// Never upgrade (`smtps://` is TLS from the start and needs none).
            case never
        }

        public var name: String
        /// One of ``PaywatchConfiguration/providers``.
        public var provider: String
        /// `webhook`: the http(s) endpoint; `smtp`: the `smtp://` or `smtps://` server. Nil for the others.
        public var url: String?
        /// `twilio`, `sendgrid`, `fcm`, `pagerduty`: the API's base URL; nil: the provider's own
        /// (``PaywatchConfiguration/defaultBaseURLs``). Tests point it at loopback fakes.
        public var baseURL: String?
        /// A file whose content — one line of printable ASCII, trimmed — is sent as
        /// `Authorization: Bearer …`; the path is not a secret, the content is never shown.
        public var tokenFile: String?
        /// `twilio`: the account (`AC…`), which is part of the path and the basic-auth user.
        public var accountSID: String?
        /// `twilio`: the file holding the auth token.
        public var authTokenFile: String?
        /// `twilio`: the sending number; `sendgrid`, `smtp`: the sender's address.
        public var from: String?
        /// `sendgrid`, `smtp`: the sender's display name.
        public var fromName: String?
        /// `sendgrid`: the file holding the API key.
        public var apiKeyFile: String?
        /// `smtp`: the login name (with ``passwordFile``).
        public var username: String?
        /// `smtp`: the file holding the password.
        public var passwordFile: String?
        /// `smtp`: nil lets the provider decide (`required`, except `opportunistic` on loopback).
        public var startTLS: StartTLS?
        /// `fcm`: Google's service-account JSON.
        public var serviceAccountFile: String?
        /// `slack`: the file holding the incoming-webhook URL (the URL is the credential).
        public var urlFile: String?
        /// `pagerduty`: the file holding the Events API v2 routing key.
        public var routingKeyFile: String?
        /// Plain `http://` to a host other than loopback is refused unless this is set.
        public var allowInsecureHTTP: Bool
        /// A PEM bundle of the certificate authorities this channel's TLS peers are verified
        /// against, instead of the system's (a relay or gateway with a private CA). Verification
        /// itself is always on.
        public var caFile: String?
        /// A fixed recipient (used by the ops channel).
        public var to: String?
        /// `allow_inline_secrets = true`: credentials may be written in the section itself.
        public var allowInlineSecrets: Bool = false
        /// Credentials written inline (`auth_token = "…"`, allowed by ``allowInlineSecrets``), by the
        /// `*_file` key they stand for (`auth_token_file`). Never logged; masked when rendered.
        public var inlineSecrets: [String: String] = [:]
        /// The delivery slots this channel is sure to get while it has messages due (it may borrow
        /// idle ones beyond it); nil: a fair share of `[delivery] concurrency`.
        public var concurrency: Int?
        /// The channel's sending rate (`rate = "50/s"`): a token bucket shared by its whole lane.
        /// Nil: no limit.
        public var rate: Rate?
        /// How many tokens the bucket holds at most (a burst sent at once); nil: one second's
        /// worth of ``rate``, at least 1 (``effectiveBurst``).
        public var burst: Int?
        /// Consecutive transport errors or HTTP 5xx answers that open the circuit breaker.
        public var breakerFailures: Int = 20
        /// While the breaker is open, one message is sent as a probe every this long.
        public var breakerProbeMs: Int64 = 30_000

        /// The bucket's capacity: `burst`, else one second's worth of the rate (at least 1).
        public var effectiveBurst: Int? {
            guard let rate else { return nil }
            return burst ?? rate.perSecondFloor
        }

        public init(name: String, provider: String = "webhook", url: String? = nil, tokenFile: String? = nil, to: String? = nil,
                    concurrency: Int? = nil) {
            self.name = name
            self.provider = provider
            self.url = url
            self.tokenFile = tokenFile
            self.to = to
            self.concurrency = concurrency
            self.allowInsecureHTTP = false
        }

        /// The keys that name a file holding a credential, and where each is held.
        public static var secretFileKeys: [(key: String, path: KeyPath<Channel, String?>)] {
            [
                ("token_file", \.tokenFile), ("auth_token_file", \.authTokenFile), ("api_key_file", \.apiKeyFile),
                ("password_file", \.passwordFile), ("service_account_file", \.serviceAccountFile), ("url_file", \.urlFile),
                ("routing_key_file", \.routingKeyFile),
            ]
        }

        /// `base_url` if written, else the provider's own API (nil for providers without one).
        public var effectiveBaseURL: String? {
            baseURL ?? PaywatchConfiguration.defaultBaseURLs[provider]
        }
    }

    public var store: Store
    public var daemon: Daemon
    public var delivery: Delivery
    public var unpaid: Unpaid
    public var paying: Paying
    public var failed: Failed
    public var partiallyPaid: PartiallyPaid
    public var paid: Paid
    public var refunding: Refunding
    public var cancelled: Cancelled
    public var templates: Templates
    public var quietHours: QuietHours
    public var metrics: Metrics
    public var retention: Retention
    /// Configured channels by name.
    public var channels: [String: Channel]

    /// Non-fatal observations made while parsing, e.g. `no [channels.ops]: ops escalations are only logged`.
    /// Not part of equality.
    public internal(set) var warnings: [String] = []

    /// Where each key was written, for errors found after parsing (e.g. at start). Not part of equality.
    var locator: KeyLocator?

    /// The largest `[delivery] concurrency`: each transfer in flight holds an open file.
    public static let maxConcurrency = 4_096
    /// The largest `[daemon] batch_size`: a sweep binds the batch's ids in one SQL `IN (…)`
    /// (SQLite allows 32,766 variables by default).
    public static let maxBatchSize = 10_000

    /// The 1-based line where `path` (e.g. `["delivery", "concurrency"]`) is written in the file this
    /// configuration was parsed from; `nil` when not written or built in code.
    public func line(of path: [String]) -> Int? {
        locator?.line(of: path)
    }

    /// A ``ConfigError`` about `key` of `section` (e.g. `["delivery"]`, `"concurrency"`) found after
    /// parsing, in the parser's form: `FILE:LINE: [delivery] concurrency: MESSAGE`. The line is the
    /// key's, else its section's, else left out.
    public func error(file: String, section: [String], key: String, message: String) -> ConfigError {
        ConfigError(file: file, line: line(of: section + [key]) ?? line(of: section),
                    key: displaySection(section) + " " + displayKey(key), message: message)
    }

    public static let defaultPath = "/etc/paywatch/paywatch.toml"
    /// The default of `[unpaid] channels`, which the other sections' `channels` default to.
    public static let defaultChannels = ["push", "sms", "email"]
    /// The accepted `[daemon] log_level` values, most verbose first.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// The accepted `[channels.NAME] provider` values.
    public static let providers = ["webhook", "twilio", "sendgrid", "smtp", "fcm", "slack", "pagerduty"]
    /// The APIs of the providers that have a `base_url`, when it is not written.
    public static let defaultBaseURLs = [
        "twilio": "https://api.twilio.com", "sendgrid": "https://api.sendgrid.com",
        "fcm": "https://fcm.googleapis.com", "pagerduty": "https://events.pagerduty.com",
    ]

    /// All defaults, no channels configured, no warnings. (Unlike `parse("")`, the channel lists
    /// keep the documented default names even though no channel sections exist.)
    public init() {
        store = Store()
        daemon = Daemon()
        delivery = Delivery()
        unpaid = Unpaid()
        paying = Paying()
        failed = Failed()
        partiallyPaid = PartiallyPaid()
        paid = Paid()
        refunding = Refunding()
        cancelled = Cancelled()
        templates = Templates()
        quietHours = QuietHours()
        metrics = Metrics()
        retention = Retention()
        channels = [:]
    }

    public static func == (lhs: PaywatchConfiguration, rhs: PaywatchConfiguration) -> Bool {
        lhs.store == rhs.store && lhs.daemon == rhs.daemon && lhs.delivery == rhs.delivery
            && lhs.unpaid == rhs.unpaid && lhs.paying == rhs.paying && lhs.failed == rhs.failed
            && lhs.partiallyPaid == rhs.partiallyPaid && lhs.paid == rhs.paid && lhs.refunding == rhs.refunding
            && lhs.quietHours == rhs.quietHours && lhs.channels == rhs.channels
    }
}

/// Masks the credentials of a URL for display: the password of its userinfo
/// (`user:secret@host` → `user:****@host`), every query value (`?key=v&sig=w` → `?key=****&sig=****`,
/// a bare `?token` → `?****`) and a fragment. The `{provider_ref}` placeholder is kept. The result is
/// still a valid URL of the same kind. `sqlite://` urls hold no credentials (their only option is
/// `mode`) and are returned unchanged.
public func maskURL(_ url: String) -> String {
    if url.hasPrefix("sqlite://") { return url }
    guard let schemeEnd = url.firstRange(of: "://") else { return url }
    let afterScheme = url[schemeEnd.upperBound...]
    let authorityEnd = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? afterScheme.endIndex
    let authority = afterScheme[..<authorityEnd]
    var result = String(url[..<schemeEnd.upperBound])
    if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
        result += authority[...colon] + "****" + authority[at...]
    } else {
        result += authority
    }
    let rest = afterScheme[authorityEnd...]
    let fragmentStart = rest.firstIndex(of: "#") ?? rest.endIndex
    let beforeFragment = rest[..<fragmentStart]
    if let question = beforeFragment.firstIndex(of: "?") {
        result += beforeFragment[..<question] + "?"
        let query = beforeFragment[beforeFragment.index(after: question)...]
        result += query.split(separator: "&", omittingEmptySubsequences: false).map { param -> String in
            if param.isEmpty { return "" }
            guard let equals = param.firstIndex(of: "=") else { return "****" }
            let value = param[param.index(after: equals)...]
            if value.isEmpty || value == "{provider_ref}" { return String(param) }
            return param[...equals] + "****"
        }.joined(separator: "&")
    } else {
        result += beforeFragment
    }
    if fragmentStart < rest.endIndex {
        result += rest.index(after: fragmentStart) < rest.endIndex ? "#****" : "#"
    }
    return result
}

/// The `mode` option of a `sqlite://` url (`rwc` when there is none), or why its `?options` are not
/// accepted. Never echoes the url.
func sqliteURLOptions(_ url: String) -> Result<PaywatchConfiguration.Store.SQLiteMode, SQLiteOptionProblem> {
    let rest = url.dropFirst("sqlite://".count)
    guard let question = rest.firstIndex(of: "?") else { return .success(.rwc) }
    var mode: PaywatchConfiguration.Store.SQLiteMode?
    let modes = PaywatchConfiguration.Store.SQLiteMode.allCases.map { "mode=\($0.rawValue)" }.joined(separator: ", ")
    for option in rest[rest.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false) {
        let shown = option.count > 40 ? String(option.prefix(37)) + "..." : String(option)
        guard option.hasPrefix("mode="), let value = PaywatchConfiguration.Store.SQLiteMode(rawValue: String(option.dropFirst(5))) else {
            if option.hasPrefix("mode=") {
                return .failure(SQLiteOptionProblem(message: "unknown sqlite option \(tomlQuoted(shown)): the mode is one of \(modes)"))
            }
            return .failure(SQLiteOptionProblem(message: "unknown sqlite option \(tomlQuoted(shown)): the only option is \(modes)"))
        }
        if mode != nil {
            return .failure(SQLiteOptionProblem(message: "the sqlite option mode is given twice"))
        }
        mode = value
    }
    return .success(mode ?? .rwc)
}

struct SQLiteOptionProblem: Error {
    var message: String
}
