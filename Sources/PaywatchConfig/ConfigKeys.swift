// Every key of the configuration file, declared once: name, type, where it lives, and one line of
// documentation. The default is the field's own (`PaywatchConfiguration()`), unless `default:` says
// what it means in words. From these tables follow: the rejection of unknown keys and the reading of
// each value (ConfigReader.swift), `check-config`'s output (`rendered()`), and README.md's
// configuration table (`referenceTable()`, kept in sync by ConfigReferenceTests).
//
// A new key: one line here, plus its field (with its default) in PaywatchConfiguration.swift and its
// line in config/paywatch.toml; then paste the table the failing README test prints. A rule between
// keys (`retry_base ≤ retry_max`) is code in ConfigReader.swift, after the table-driven read.

extension PaywatchConfiguration {
    /// The sections of the file, in the order `check-config` prints them. `[channels.NAME]` sections
    /// follow, read by ``Channel/keys``.
    static var sections: [ConfigSection<PaywatchConfiguration>] {
        [
            ConfigSection("store", [
                .key("url", .storeURL, \.store.url, doc: """
                    `sqlite:///absolute.db` or `sqlite://relative.db` (relative to the config file's folder, not the \
                    working directory: systemd starts services in `/`); optional `?mode=rwc` (default), `rw` (must \
                    exist) or `ro` (refused by `run` and `migrate`; for `orders` and `report`). Or \
                    `postgres://[user[:password]@][host][:port][/database]` as libpq reads it (percent-encoded; \
                    `[::1]`; no host: the socket in `/var/run/postgresql`; port `5432`; database: the user), with \
                    optional `?sslmode=`, `sslrootcert=`, `connect_timeout=` (seconds), `application_name=`, \
                    `host=/socket/folder`
                    """),
                .key("busy_timeout", .duration, \.store.busyTimeoutMs, doc: "how long a write waits for the shop's lock"),
                .optional("password_file", .string, \.store.passwordFile, unset: "the url's password, else `PGPASSFILE` or `~/.pgpass`",
                          doc: """
                    PostgreSQL: a file holding the password on one line; never logged; may name \
                    `$CREDENTIALS_DIRECTORY/NAME`. The password is this file's, else the url's (with a warning: \
                    whoever reads the configuration reads it), else from `$PGPASSFILE`, else `~/.pgpass` (libpq's format)
                    """),
                .key("sslmode", .sslMode, \.store.sslMode, doc: """
                    PostgreSQL, as libpq: `disable`; `prefer`: TLS when the server offers it, else in the clear; \
                    `require`: TLS, not verified; `verify-ca`: TLS, the certificate chain verified; `verify-full`: \
                    and its name too (`allow` is not supported). Or `?sslmode=` in the url (not both, different)
                    """),
                .optional("ca_file", .string, \.store.caFile, unset: "the system's certificate authorities", doc: """
                    PostgreSQL: a PEM file of the certificate authorities the server is verified against \
                    (`verify-ca`, `verify-full`; with `prefer` or `require` the chain is verified too, as libpq does); \
                    not with `disable`. Or `?sslrootcert=` in the url (not both, different)
                    """),
                .key("pool_size", .positiveInt(max: 100, because: "each connection is a server process"), \.store.poolSize,
                     doc: """
                    PostgreSQL: connections per replica, shared by sweeps, delivery and reads; the server's \
                    `max_connections` must cover replicas × (pool_size + 1: each replica's `LISTEN` connection), \
                    besides the shop's own
                    """),
                .key("connect_timeout", .duration, \.store.connectTimeoutMs, doc: """
                    PostgreSQL: how long opening one connection (TCP, TLS, login) may take; or \
                    `?connect_timeout=SECONDS` in the url (not both, different)
                    """),
                .key("lease", .duration(atLeast: minLeaseMs, atMost: maxLeaseMs), \.store.leaseMs, doc: """
                    how long a claim (a message being delivered, a reconcile request, and on PostgreSQL a sweep's \
                    order) is held before another replica may take it; delivery renews its leases every third of it, \
                    so a dead replica's claims are taken over within about one lease. Longer than `[delivery] timeout` + 5s
                    """),
            ]),
            ConfigSection("daemon", [
                .key("poll_interval", .duration, \.daemon.pollIntervalMs,
                     doc: "longest sleep; changes by the shop are noticed within it"),
                .key("batch_size", .positiveInt(max: maxBatchSize, because: "a sweep holds the batch's rows and plans in memory"),
                     \.daemon.batchSize, doc: "orders read and planned per sweep step (read and written 100 at a time, planning beside writing)"),
                .key("log_level", .oneOf(logLevels, unknown: "log level"), \.daemon.logLevel,
                     doc: "the least severe level that is logged"),
                .key("max_clock_skew", .duration, \.daemon.maxClockSkewMs,
                     doc: "payments and refunds dated further than this in the future are quarantined"),
                .key("max_lag", .duration, \.daemon.maxLagMs, default: "`1m`, at least 2 × `poll_interval`", doc: """
                    an action due longer than this (or no sweep for this long) logs a warning and makes \
                    `paywatch status` exit 1; at least twice `poll_interval`
                    """),
                .key("time_zone", .timeZoneName, \.daemon.timeZone, doc: """
                    IANA zone name (`Asia/Shanghai`) of orders whose `time_zone` is NULL or not a zone the system \
                    knows: their quiet hours are in it
                    """),
            ]),
            ConfigSection("delivery", [
                .key("concurrency", .positiveInt(max: maxConcurrency, because: "each transfer in flight holds an open file"),
                     \.delivery.concurrency, doc: """
                    transfers in flight, shared by the channels' lanes; `concurrency + 64` must fit the open-files \
                    hard limit (`LimitNOFILE=`)
                    """),
                .key("timeout", .duration, \.delivery.timeoutMs, doc: "per request"),
                .key("max_attempts", .positiveInt, \.delivery.maxAttempts, doc: "then dead + `delivery_dead`"),
                .key("retry_base", .duration, \.delivery.retryBaseMs,
                     doc: "first retry delay; backoff: base × 2^(attempt−1), with jitter, capped by `retry_max`"),
                .key("retry_max", .duration, \.delivery.retryMaxMs, doc: "cap on one retry delay; at least `retry_base`"),
                .key("retry_after_max", .duration, \.delivery.retryAfterMaxMs, doc: """
                    a gateway's `Retry-After` (seconds or date) is honoured within `retry_base` … this, even beyond \
                    `retry_max`; a past date waits `retry_base`
                    """),
                .optional("max_per_order_per_day", .positiveInt, \.delivery.maxPerOrderPerDay, unset: "no cap", doc: """
                    customer messages delivered per order over any 24 hours, each decision counted once however many \
                    channels carried it; a reminder beyond it is not sent (`capped` on the timeline); confirmations, \
                    cancellations, failures and refund notices always go (and count); ops messages are never capped
                    """),
            ]),
            ConfigSection("unpaid", [
                .key("hold", .duration, \.unpaid.holdMs, doc: "hold time after `created_at` when `expires_at` is NULL"),
                .key("reminders", .durations(.ascending), \.unpaid.remindersMs, doc: "`unpaid_reminder` after `created_at`"),
                .key("hold_by_method", .durationTable, \.unpaid.holdByMethodMs, default: "none", doc: """
                    the hold per payment method (`[unpaid.hold_by_method]`, e.g. `bank_transfer = "3d"`): the order's \
                    `payment_method`, else its latest attempt's `method`, picks it; `expires_at` still wins
                    """),
                .channels(\.unpaid.channels, doc: """
                    every listed channel the order has an address for; when not written, only the default names \
                    that have a `[channels.NAME]` section
                    """),
                .key("fallback", .boolean, \.unpaid.fallback, doc: fallbackDoc),
            ]),
            ConfigSection("paying", [
                .key("stall_after", .duration, \.paying.stallAfterMs,
                     doc: "then reconcile (if configured), else `paying_stalled` to ops"),
                .optional("reconcile_url", .httpURL, \.paying.reconcileURL,
                          doc: "GET per stalled attempt, with `{provider_ref}` filled in (percent-encoded)"),
                .key("reconcile_status_field", .fieldPath, \.paying.reconcileStatusField,
                     doc: "where the answer's JSON holds the payment's state; a dotted path (`data.status`) reaches into objects"),
                .key("reconcile_reason_field", .fieldPath, \.paying.reconcileReasonField,
                     doc: "where it holds the failure reason (written to `payments.failure_reason` when failed)"),
                .key("reconcile_succeeded", .strings, \.paying.reconcileSucceeded,
                     doc: "states that mean the payment succeeded (compared exactly); the defaults cover Stripe, Alipay, WeChat Pay and PayPal"),
                .key("reconcile_failed", .strings, \.paying.reconcileFailed,
                     doc: "states that mean it failed; any other answer (or an HTTP error, a timeout) escalates to ops"),
                .key("escalations", .positiveInt(max: 100, because: "one per stall_after"), \.paying.escalations,
                     doc: "`paying_stalled` (and a new ask) every `stall_after`, at most this many times per attempt"),
                .key("give_up_after", .duration, \.paying.giveUpAfterMs,
                     doc: "after `created_at`, the attempt no longer holds the order: hold and reminders resume, ops is told once"),
                .optional("token_file", .string, \.paying.tokenFile,
                          doc: "bearer token file for the reconcile GET, as for channels; never logged"),
                .optional("headers_file", .string, \.paying.headersFile,
                          doc: "file of `Name: value` lines sent with the reconcile GET (e.g. an API key); checked at start, never logged; may name `$CREDENTIALS_DIRECTORY/NAME`"),
            ]),
            ConfigSection("failed", [
                .key("reminders", .durations(.ascending), \.failed.remindersMs, doc: "after the latest failed attempt"),
                .channels(\.failed.channels, default: unpaidChannels, doc: "where `payment_failed` and its reminders go"),
                .key("fallback", .boolean, \.failed.fallback, doc: fallbackDoc),
            ]),
            ConfigSection("partially_paid", [
                .key("reminders", .durations(.ascending), \.partiallyPaid.remindersMs,
                     doc: "`balance_reminder` after the last payment, when there is no installment plan"),
                .key("balance_due", .duration, \.partiallyPaid.balanceDueMs,
                     doc: "after `created_at`, when there is no plan and no `expires_at`"),
                .key("installment_reminders", .durations(.descending), \.partiallyPaid.installmentRemindersMs,
                     doc: "`installment_due` before each installment's due date"),
                .key("overdue_every", .duration, \.partiallyPaid.overdueEveryMs,
                     doc: "`installment_overdue` repeats while an installment is overdue"),
                .key("overdue_max", .positiveInt, \.partiallyPaid.overdueMax,
                     doc: "then `installment_escalated` to ops, and `on_overdue` applies"),
                .key("on_overdue", .oneOf(unknown: "value"), \.partiallyPaid.onOverdue,
                     doc: "`escalate`: ops only; `cancel`: the order is cancelled and the customer told"),
                .channels(\.partiallyPaid.channels, default: unpaidChannels, doc: "where balance and installment messages go"),
                .key("fallback", .boolean, \.partiallyPaid.fallback, doc: fallbackDoc),
            ]),
            ConfigSection("paid", [
                .channels(\.paid.channels, default: unpaidChannels, doc: "where `payment_confirmed` goes"),
                .key("fallback", .boolean, \.paid.fallback, doc: fallbackDoc),
            ]),
            ConfigSection("refunding", [
                .key("stall_after", .duration, \.refunding.stallAfterMs, doc: "then `refund_stalled` to ops"),
                .channels(\.refunding.channels, default: unpaidChannels, doc: "where refund messages go"),
                .key("fallback", .boolean, \.refunding.fallback, doc: fallbackDoc),
            ]),
            ConfigSection("cancelled", [
                .key("on_late_payment", .oneOf(unknown: "value"), \.cancelled.onLatePayment, doc: """
                    money arriving after the cancel: `escalate` (`late_payment` to ops) or `reinstate` (when it covers \
                    the amount due, the order becomes paid and the customer gets `payment_confirmed`; ops is told either way)
                    """),
            ]),
            ConfigSection("templates", [
                .optional("support_contact", .string, \.templates.supportContact,
                          doc: "how customers reach you (phone, e-mail, URL); added to `payment_failed` and refund messages"),
                .key("default_locale", .oneOf(["zh-CN", "en"], unknown: "locale"), \.templates.defaultLocale,
                     doc: "the language of orders whose `locale` is not set or is neither `zh*` nor `en*`"),
                .optional("dir", .string, \.templates.dir, doc: """
                    a folder of `KIND.CHANNEL.LOCALE.mustache` (and `KIND.email.LOCALE.subject.mustache`) files that \
                    replace the built-in templates of those names (see Templates); a relative path is beside the config file; unset: built-in templates only
                    """),
            ]),
            ConfigSection("quiet_hours", [
                .optional("start", .timeOfDay, \.quietHours.start, unset: "no quiet hours", doc: """
                    `HH:MM` (24 h), in the order's `time_zone`, else `[daemon] time_zone`: a customer message on \
                    `channels` decided from then on waits until `end` (a later reminder step decided by then replaces \
                    it); set with `end`
                    """),
                .optional("end", .timeOfDay, \.quietHours.end, unset: "no quiet hours", doc: """
                    `HH:MM`, when the held messages go; not equal to `start`; earlier than `start`, the window crosses \
                    midnight (`21:00` to `08:00`)
                    """),
                .key("channels", .channelNames, \.quietHours.channels, default: "`[\"sms\", \"push\"]`, those that have a section",
                     doc: "the channels whose customer messages wait; not `ops` (ops messages are never held)"),
            ]),
            ConfigSection("metrics", [
                .optional("listen", .loopbackListen, \.metrics.listen, unset: "no endpoint", doc: """
                    `HOST:PORT` on loopback (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`) where `GET /metrics` \
                    answers in the Prometheus text format
                    """),
            ]),
            ConfigSection("retention", [
                .key("keep", .duration, \.retention.keepMs, doc: """
                    timeline events, outbox rows and attempts of orders final (paid, refunded, cancelled) for longer \
                    than this are pruned; the orders' own rows are the shop's and stay
                    """),
                .key("batch_size", .positiveInt(max: maxBatchSize, because: "each batch is one write transaction"),
                     \.retention.batchSize, doc: "orders pruned per transaction (short writes, so the shop never waits long)"),
            ]),
        ]
    }

    /// The shortest `[store] lease`: renewed every third of it, a shorter one would write more
    /// renewals than deliveries.
    static let minLeaseMs: Int64 = 5_000
    /// The longest `[store] lease`: a dead replica's claims wait up to one lease to be taken over.
    static let maxLeaseMs: Int64 = 3_600_000
    /// What `[store] lease` must exceed `[delivery] timeout` by: the margin for a renewal to
    /// commit while a transfer runs.
    static let leaseMarginMs: Int64 = 5_000

    private static let unpaidChannels = "`[unpaid] channels`"
    private static let fallbackDoc = """
        `true`: each message to the first listed channel with an address that is not suppressed, and to the \
        next one if that channel refuses it for good; `false`: to every listed channel with an address
        """
}

extension PaywatchConfiguration.Channel {
    /// The keys of a `[channels.NAME]` section: every provider's. Which apply to a section, and which
    /// of those it must write, follows from its `provider` (``providerKeys``).
    static var keys: [ConfigKey<PaywatchConfiguration.Channel>] {
        [
            .key("provider", .oneOf(PaywatchConfiguration.providers, unknown: "provider"), \.provider,
                 required: "one of " + PaywatchConfiguration.providers.joined(separator: ", "), doc: """
                `webhook`: a JSON message POSTed to `url`; `twilio`: SMS; `sendgrid`, `smtp`: e-mail; `fcm`: push; \
                `slack`, `pagerduty`: ops. Each provider takes only its own keys
                """),
            .optional("url", .endpointURL, \.url, unset: "required for `webhook` and `smtp`", doc: """
                `webhook`: the http(s) endpoint; `smtp`: `smtp://HOST:PORT` or `smtps://HOST:PORT`
                """),
            .optional("base_url", .httpURL, \.baseURL, unset: "the provider's API (`https://api.twilio.com`, …)", doc: """
                `twilio`, `sendgrid`, `fcm`, `pagerduty`: where the API is (a loopback fake in tests)
                """),
            .optional("token_file", .string, \.tokenFile, doc: """
                `webhook`: bearer token file: one line of printable ASCII, trimmed; never logged. Every `*_file` may \
                name a systemd credential, `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=NAME:PATH` in the unit; \
                see Running under systemd); one readable by group or others gives a warning at start
                """),
            .optional("account_sid", .string, \.accountSID, doc: "`twilio`: the account (`AC…`); required"),
            .optional("auth_token_file", .string, \.authTokenFile, doc: "`twilio`: file holding the auth token; required"),
            .optional("api_key_file", .string, \.apiKeyFile, doc: "`sendgrid`: file holding the API key; required"),
            .optional("from", .string, \.from, doc: "`twilio`: the sending number (E.164); `sendgrid`, `smtp`: the sender's address; required"),
            .optional("from_name", .string, \.fromName, doc: "`sendgrid`, `smtp`: the sender's display name"),
            .optional("username", .string, \.username, doc: "`smtp`: login name (with `password_file`)"),
            .optional("password_file", .string, \.passwordFile, doc: "`smtp`: file holding the password (with `username`)"),
            .optional("starttls", .oneOf(unknown: "starttls"), \.startTLS, unset: "`required`, except `opportunistic` on loopback",
                      doc: "`smtp`: `required` (refuse a server that does not upgrade), `opportunistic` or `never`"),
            .optional("service_account_file", .string, \.serviceAccountFile,
                      doc: "`fcm`: Google's service-account JSON (`project_id`, `client_email`, `private_key`, `token_uri`); required"),
            .optional("url_file", .string, \.urlFile, doc: "`slack`: file holding the incoming-webhook URL (it is a secret); required"),
            .optional("routing_key_file", .string, \.routingKeyFile, doc: "`pagerduty`: file holding the Events API v2 routing key; required"),
            .key("allow_insecure_http", .boolean, \.allowInsecureHTTP, doc: """
                plain `http://` in `url`, `base_url` or a Slack `url_file` is refused unless its host is loopback \
                (127.x, `::1`, `localhost`) or this is true
                """),
            .key("allow_inline_secrets", .boolean, \.allowInlineSecrets, doc: """
                credentials are read from `*_file` keys only; `true` also accepts them written in this section \
                (`token`, `auth_token`, `api_key`, `password`, `routing_key`, and a Slack `url`), with a warning \
                at every start: anyone who can read the configuration, its backups or its copies can take them
                """),
            .optional("ca_file", .string, \.caFile, unset: "the system's certificate authorities", doc: """
                a PEM file of the certificate authorities to verify this channel's TLS peers against (a private \
                CA), FCM's token exchange included; verification is always on
                """),
            .optional("to", .string, \.to, doc: "fixed recipient (ops)"),
            .optional("concurrency", .positiveInt, \.concurrency, unset: "a fair share of [delivery] concurrency", doc: """
                slots this channel is sure to get while it has messages due (at most `[delivery] concurrency`); it \
                may borrow idle ones
                """),
            .optional("rate", .rate, \.rate, unset: "no limit", doc: """
                the channel's sending rate (`"50/s"`, `"600/m"`, `"1000/h"`): a token bucket shared by its whole \
                lane; a message waits for a token, its attempts untouched
                """),
            .optional("burst", .positiveInt(max: maxRateCount, because: "a bucket larger than that is no limit"), \.burst,
                      unset: "one second's worth of `rate`, at least 1",
                      doc: "tokens the bucket holds at most: how many messages may leave at once after a quiet spell; needs `rate`"),
            .key("breaker_failures", .positiveInt(max: 1_000_000, because: "a breaker that never opens is no breaker"),
                 \.breakerFailures, doc: """
                consecutive transport errors or HTTP 5xx answers that pause the channel (its circuit breaker opens; \
                ops is told once)
                """),
            .key("breaker_probe", .duration, \.breakerProbeMs, doc: """
                while paused, one message is sent as a probe this often; its success resumes the channel. Paused \
                messages wait without spending attempts
                """),
        ]
    }
}

extension PaywatchConfiguration {
    /// The keys of a `[channels.NAME]` section by provider, beyond those every section may hold
    /// (``commonChannelKeys``): the ones it must write and the ones it may. A key of another provider
    /// is an error, so a section cannot carry a setting that silently does nothing.
    static let providerKeys: [String: (required: [String], optional: [String])] = [
        "webhook": (["url"], ["token_file", "allow_insecure_http"]),
        "twilio": (["account_sid", "auth_token_file", "from"], ["base_url", "allow_insecure_http"]),
        "sendgrid": (["api_key_file", "from"], ["from_name", "base_url", "allow_insecure_http"]),
        "smtp": (["url", "from"], ["username", "password_file", "from_name", "starttls"]),
        "fcm": (["service_account_file"], ["base_url", "allow_insecure_http"]),
        "slack": (["url_file"], ["allow_insecure_http"]),
        "pagerduty": (["routing_key_file"], ["base_url", "allow_insecure_http"]),
    ]

    /// The keys every `[channels.NAME]` section may hold, whatever its provider.
    static let commonChannelKeys = ["provider", "allow_inline_secrets", "ca_file", "to", "concurrency", "rate", "burst",
                                    "breaker_failures", "breaker_probe"]

    /// The credentials a section may write inline with `allow_inline_secrets = true`: the key, and
    /// the `*_file` key it stands for. (A service account's JSON is always a file.)
    static let inlineSecretKeys: [String: String] = [
        "token": "token_file", "auth_token": "auth_token_file", "api_key": "api_key_file", "password": "password_file",
        "routing_key": "routing_key_file",
    ]

    /// Every key a section of `provider` may hold, in the order of ``Channel/keys``; nil for an
    /// unknown provider.
    static func channelKeys(of provider: String) -> [String]? {
        guard let own = providerKeys[provider] else { return nil }
        let allowed = Set(commonChannelKeys + own.required + own.optional)
        return Channel.keys.map(\.name).filter(allowed.contains)
    }
}
