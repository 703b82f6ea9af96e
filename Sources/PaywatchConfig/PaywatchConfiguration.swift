/// paywatch's configuration: one TOML file, every key optional unless marked.
///
/// Durations are strings (`"500ms"`, `"10s"`, `"30m"`, `"1h30m"`, `"2d"`) and are held here as
/// `Int64` milliseconds. Keys, types and defaults:
///
/// | key | type | default |
/// |---|---|---|
/// | `[store] url` | string, `sqlite://PATH` (`sqlite:///abs`, `sqlite://relative`), `postgres://…`, `postgresql://…` | `"sqlite:///var/lib/paywatch/paywatch.db"` |
/// | `[store] busy_timeout` | duration | `"5s"` |
/// | `[daemon] poll_interval` | duration, longest sleep | `"5s"` |
/// | `[daemon] batch_size` | integer ≥ 1 | `500` |
/// | `[daemon] log_level` | trace, debug, info, notice, warning, error, critical | `"info"` |
/// | `[delivery] concurrency` | integer ≥ 1 | `32` |
/// | `[delivery] timeout` | duration | `"10s"` |
/// | `[delivery] max_attempts` | integer ≥ 1 | `8` |
/// | `[delivery] retry_base` | duration, first retry delay (doubles, with jitter) | `"1s"` |
/// | `[delivery] retry_max` | duration ≥ retry_base, cap on one delay | `"1h"` |
/// | `[unpaid] hold` | duration | `"30m"` |
/// | `[unpaid] reminders` | strictly ascending durations after created_at | `["10m", "25m"]` |
/// | `[unpaid] channels` | channel names | `["push", "sms", "email"]` (see below) |
/// | `[paying] stall_after` | duration | `"15m"` |
/// | `[paying] reconcile_url` | http(s) URL with `{provider_ref}` | not set |
/// | `[failed] reminders` | strictly ascending durations | `["10m", "2h"]` |
/// | `[failed] channels` | channel names | `[unpaid] channels` |
/// | `[partially_paid] reminders` | strictly ascending durations | `["1d", "3d"]` |
/// | `[partially_paid] balance_due` | duration | `"7d"` |
/// | `[partially_paid] installment_reminders` | strictly descending durations before each due date | `["3d", "1d"]` |
/// | `[partially_paid] overdue_every` | duration | `"1d"` |
/// | `[partially_paid] overdue_max` | integer ≥ 1 | `3` |
/// | `[partially_paid] on_overdue` | escalate, cancel | `"escalate"` |
/// | `[partially_paid] channels` | channel names | `[unpaid] channels` |
/// | `[paid] channels` | channel names | `[unpaid] channels` |
/// | `[refunding] stall_after` | duration | `"3d"` |
/// | `[refunding] channels` | channel names | `[unpaid] channels` |
/// | `[channels.NAME] provider` | required, `"webhook"` | — |
/// | `[channels.NAME] url` | required, http(s) URL | — |
/// | `[channels.NAME] token_file` | path; its trimmed content is sent as `Authorization: Bearer` | not set |
/// | `[channels.NAME] to` | fixed recipient (the ops channel) | not set |
/// | `[channels.NAME] concurrency` | integer 1 … `[delivery] concurrency`: the slots this channel is sure to get while it has messages due (it may borrow idle ones) | a fair share |
///
/// `NAME` matches `[a-z][a-z0-9_]*`. Every name in a `channels` list written in the file must have a
/// `[channels.NAME]` section. When `[unpaid] channels` is not written, its default keeps only the
/// default names that have a section (a warning names the others), so after `parse`/`load` every
/// name in every `channels` list is a key of ``channels``.
public struct PaywatchConfiguration: Sendable, Equatable {
    public struct Store: Sendable, Equatable {
        public var url: String
        public var busyTimeoutMs: Int64

        public init(url: String = "sqlite:///var/lib/paywatch/paywatch.db", busyTimeoutMs: Int64 = 5_000) {
            self.url = url
            self.busyTimeoutMs = busyTimeoutMs
        }

        /// The SQLite database path for a `sqlite://` url (`sqlite:///var/x.db` → `/var/x.db`,
        /// `sqlite://x.db` → `x.db`), `nil` for PostgreSQL.
        public var sqlitePath: String? {
            guard url.hasPrefix("sqlite://") else { return nil }
            return String(url.dropFirst("sqlite://".count))
        }

        /// ``url`` with any password (userinfo or `password=` query parameter) replaced by `****`.
        public var maskedURL: String { maskURLPassword(url) }
    }

    public struct Daemon: Sendable, Equatable {
        public var pollIntervalMs: Int64
        public var batchSize: Int
        /// One of trace, debug, info, notice, warning, error, critical.
        public var logLevel: String

        public init(pollIntervalMs: Int64 = 5_000, batchSize: Int = 500, logLevel: String = "info") {
            self.pollIntervalMs = pollIntervalMs
            self.batchSize = batchSize
            self.logLevel = logLevel
        }
    }

    public struct Delivery: Sendable, Equatable {
        public var concurrency: Int
        public var timeoutMs: Int64
        public var maxAttempts: Int
        public var retryBaseMs: Int64
        public var retryMaxMs: Int64

        public init(
            concurrency: Int = 32, timeoutMs: Int64 = 10_000, maxAttempts: Int = 8,
            retryBaseMs: Int64 = 1_000, retryMaxMs: Int64 = 3_600_000
        ) {
            self.concurrency = concurrency
            self.timeoutMs = timeoutMs
            self.maxAttempts = maxAttempts
            self.retryBaseMs = retryBaseMs
            self.retryMaxMs = retryMaxMs
        }
    }

    public struct Unpaid: Sendable, Equatable {
        public var holdMs: Int64
        public var remindersMs: [Int64]
        public var channels: [String]

        public init(
            holdMs: Int64 = 1_800_000, remindersMs: [Int64] = [600_000, 1_500_000],
            channels: [String] = PaywatchConfiguration.defaultChannels
        ) {
            self.holdMs = holdMs
            self.remindersMs = remindersMs
            self.channels = channels
        }
    }

    public struct Paying: Sendable, Equatable {
        public var stallAfterMs: Int64
        public var reconcileURL: String?

        public init(stallAfterMs: Int64 = 900_000, reconcileURL: String? = nil) {
            self.stallAfterMs = stallAfterMs
            self.reconcileURL = reconcileURL
        }
    }

    public struct Failed: Sendable, Equatable {
        public var remindersMs: [Int64]
        public var channels: [String]

        public init(remindersMs: [Int64] = [600_000, 7_200_000], channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.remindersMs = remindersMs
            self.channels = channels
        }
    }

    public enum OnOverdue: String, Sendable, Equatable {
        case escalate, cancel
    }

    public struct PartiallyPaid: Sendable, Equatable {
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
        public var channels: [String]

        public init(channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.channels = channels
        }
    }

    public struct Refunding: Sendable, Equatable {
        public var stallAfterMs: Int64
        public var channels: [String]

        public init(stallAfterMs: Int64 = 259_200_000, channels: [String] = PaywatchConfiguration.defaultChannels) {
            self.stallAfterMs = stallAfterMs
            self.channels = channels
        }
    }

    public struct Channel: Sendable, Equatable {
        public var name: String
        /// Only `"webhook"` for now.
        public var provider: String
        public var url: String
        /// A file whose trimmed content is sent as `Authorization: Bearer …`; the path is not a secret.
        public var tokenFile: String?
        /// A fixed recipient (used by the ops channel).
        public var to: String?
        /// The delivery slots this channel is sure to get while it has messages due (it may borrow
        /// idle ones beyond it); nil: a fair share of `[delivery] concurrency`.
        public var concurrency: Int?

        public init(name: String, provider: String = "webhook", url: String, tokenFile: String? = nil, to: String? = nil,
                    concurrency: Int? = nil) {
            self.name = name
            self.provider = provider
            self.url = url
            self.tokenFile = tokenFile
            self.to = to
            self.concurrency = concurrency
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
    /// Configured channels by name.
    public var channels: [String: Channel]

    /// Non-fatal observations made while parsing, e.g. `no [channels.ops]: ops escalations are only logged`.
    /// Not part of equality.
    public internal(set) var warnings: [String] = []

    public static let defaultPath = "/etc/paywatch/paywatch.toml"
    /// The default of `[unpaid] channels`, which the other sections' `channels` default to.
    public static let defaultChannels = ["push", "sms", "email"]
    /// The accepted `[daemon] log_level` values, most verbose first.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    /// The accepted `[channels.NAME] provider` values.
    public static let providers = ["webhook"]

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
        channels = [:]
    }

    public static func == (lhs: PaywatchConfiguration, rhs: PaywatchConfiguration) -> Bool {
        lhs.store == rhs.store && lhs.daemon == rhs.daemon && lhs.delivery == rhs.delivery
            && lhs.unpaid == rhs.unpaid && lhs.paying == rhs.paying && lhs.failed == rhs.failed
            && lhs.partiallyPaid == rhs.partiallyPaid && lhs.paid == rhs.paid && lhs.refunding == rhs.refunding
            && lhs.channels == rhs.channels
    }
}

/// Replaces the password of a URL's userinfo (`user:secret@host`) and any `password=` query value by `****`.
func maskURLPassword(_ url: String) -> String {
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
    var rest = String(afterScheme[authorityEnd...])
    if let question = rest.firstIndex(of: "?") {
        let path = rest[..<question]
        let query = rest[rest.index(after: question)...]
        let fragmentStart = query.firstIndex(of: "#") ?? query.endIndex
        let params = query[..<fragmentStart].split(separator: "&", omittingEmptySubsequences: false).map { param -> String in
            let lower = param.lowercased()
            if lower.hasPrefix("password=") || lower.hasPrefix("pass=") {
                return param[...param.firstIndex(of: "=")!] + "****"
            }
            return String(param)
        }
        rest = path + "?" + params.joined(separator: "&") + query[fragmentStart...]
    }
    return result + rest
}
