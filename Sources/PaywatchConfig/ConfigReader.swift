// The reader: from the TOML tree to a validated PaywatchConfiguration. Problems are collected as
// ConfigErrors (the caller throws the one on the earliest line); warnings are kept beside them.

/// Whether `name` is a valid channel name: `[a-z][a-z0-9_]*`.
func isValidChannelName(_ name: String) -> Bool {
    guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
    return name.utf8.allSatisfy {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
            || $0 == UInt8(ascii: "_")
    }
}

struct ConfigReader {
    let file: String
    let locator: KeyLocator
    var errors: [ConfigError] = []
    var warnings: [String] = []
    /// The tables of the sections written in the file, by name.
    private var tables: [String: [String: TOMLNode]] = [:]
    /// `[section, key]` of every key written but not accepted (an error says why).
    private var rejected: Set<[String]> = []

    init(file: String, locator: KeyLocator) {
        self.file = file
        self.locator = locator
    }

    // MARK: reporting

    private mutating func fail(section: [String], key: String?, _ message: String) {
        let line: Int?
        let name: String
        if let key {
            line = locator.line(of: section + [key]) ?? locator.line(of: section)
            name = section.isEmpty ? displayKey(key) : displaySection(section) + " " + displayKey(key)
        } else {
            line = locator.line(of: section)
            name = displaySection(section)
        }
        errors.append(ConfigError(file: file, line: line, key: name, message: message))
    }

    /// Reports every key of `table` that is not in `known`; `why` may say more than "unknown key".
    private mutating func rejectUnknown(
        _ table: [String: TOMLNode], section: [String], known: [String], why: (String) -> String? = { _ in nil }
    ) {
        for (key, value) in table where !known.contains(key) {
            if case .table = value {
                fail(section: section + [key], key: nil, "unknown section")
            } else {
                fail(section: section, key: key, why(key) ?? "unknown key")
            }
        }
    }

    // MARK: the table-driven read

    /// Reads the keys of one section (`table`, written at `section`) into `root`, as `keys` declare
    /// them: an unknown key, a missing required one and every value not accepted is an error.
    /// - Returns: the names of the keys that are required or written but not accepted.
    private mutating func read<Root>(
        _ table: [String: TOMLNode], section: [String], keys: [ConfigKey<Root>], into root: inout Root,
        unknown why: (String) -> String? = { _ in nil }
    ) -> Set<String> {
        rejectUnknown(table, section: section, known: keys.map(\.name), why: why)
        var notAccepted: Set<String> = []
        for key in keys {
            guard let node = table[key.name] else {
                if let required = key.required {
                    fail(section: section, key: key.name, "missing required key (\(required))")
                    notAccepted.insert(key.name)
                }
                continue
            }
            if let problem = key.read(node, &root) {
                fail(section: section, key: key.name, problem.message)
                notAccepted.insert(key.name)
            }
        }
        return notAccepted
    }

    /// Whether `key` of `section` is written in the file.
    private func written(_ section: String, _ key: String) -> Bool {
        tables[section]?[key] != nil
    }

    /// Whether `key` of `section` holds a value to trust: written and accepted, or not written (its default).
    private func usable(_ section: String, _ key: String) -> Bool {
        !rejected.contains([section, key])
    }

    private mutating func section(_ root: [String: TOMLNode], _ name: String) -> [String: TOMLNode]? {
        guard let value = root[name] else { return nil }
        guard case .table(let entries) = value else {
            fail(section: [], key: name, "expected a [\(name)] section (a table), got \(value.summary)")
            return nil
        }
        return entries
    }

    // MARK: the file

    mutating func read(_ root: [String: TOMLNode]) -> PaywatchConfiguration {
        var config = PaywatchConfiguration()
        let sections = PaywatchConfiguration.sections
        rejectUnknown(root, section: [], known: sections.map(\.name) + ["channels"])
        for declared in sections {
            guard let table = section(root, declared.name) else { continue }
            tables[declared.name] = table
            for key in read(table, section: [declared.name], keys: declared.keys, into: &config) {
                rejected.insert([declared.name, key])
            }
        }
        checkStore(&config.store)
        checkRetryDelays(config.delivery)
        checkLease(config)
        checkMaxLag(&config.daemon)
        if let url = config.paying.reconcileURL, !url.contains("{provider_ref}") {
            warnings.append("[paying] reconcile_url has no {provider_ref} placeholder: every stalled payment is looked up at the same URL")
        }
        if usable("paying", "reconcile_succeeded"), usable("paying", "reconcile_failed"),
           let both = config.paying.reconcileSucceeded.first(where: config.paying.reconcileFailed.contains) {
            fail(section: ["paying"], key: written("paying", "reconcile_failed") ? "reconcile_failed" : "reconcile_succeeded",
                 "\(tomlQuoted(both)) is in both reconcile_succeeded and reconcile_failed")
        }
        if config.paying.giveUpAfterMs <= config.paying.stallAfterMs {
            warnings.append("[paying] give_up_after is not after stall_after: a pending attempt is given up before it is ever asked about")
        }

        // [channels.NAME]; names with any section (even a broken one) count as defined,
        // so a broken section is reported once, not again at every list that names it.
        var defined: Set<String> = []
        if let table = section(root, "channels") {
            for name in table.keys.sorted() {
                guard let value = table[name] else { continue }
                let s = ["channels", name]
                guard case .table(let entries) = value else {
                    fail(section: ["channels"], key: name, "expected a [channels.\(displayKey(name))] section (a table), got \(value.summary)")
                    continue
                }
                defined.insert(name)
                guard isValidChannelName(name) else {
                    fail(section: s, key: nil, "invalid channel name: expected lowercase letters, digits and _, starting with a letter")
                    continue
                }
                if let channel = readChannel(name, entries, deliveryConcurrency: config.delivery.concurrency) { config.channels[name] = channel }
            }
        }
        if defined.isEmpty, errors.isEmpty {
            // Only when nothing more precise is wrong; on the [channels] line if there is one, else
            // for the whole file.
            let line = locator.line(of: ["channels"])
            errors.append(ConfigError(file: file, line: line, key: line == nil ? "" : "[channels]",
                                      message: "no channel is configured: add a [channels.NAME] section"))
        }
        resolveChannelLists(&config, defined: defined)
        checkQuietHours(&config, defined: defined)
        addWarnings(config)
        config.warnings = warnings
        return config
    }

    /// `[store]`: the PostgreSQL keys only with a `postgres://` url; the url's `?sslmode=`,
    /// `?sslrootcert=` and `?connect_timeout=` folded into the keys' fields (both written and
    /// different: an error on the key, naming both places); no CA file with `sslmode = disable`; a
    /// warning for a password in the url. Not judged while the url itself is not accepted.
    private mutating func checkStore(_ store: inout PaywatchConfiguration.Store) {
        let s = ["store"]
        guard usable("store", "url") else { return }
        guard let url = store.postgres else {
            let why = written("store", "url") ? "[store] url is a sqlite:// url" : "[store] url is not set (SQLite by default)"
            for key in PaywatchConfiguration.Store.postgresKeys where written("store", key) {
                fail(section: s, key: key, "only a PostgreSQL store (a postgres:// url) reads it, and \(why)")
            }
            return
        }
        if url.password != nil {
            warnings.append(store.passwordFile == nil
                ? "[store] url holds a password: anyone who can read this file, its backups or its copies can take it; "
                    + "prefer password_file (or ~/.pgpass)"
                : "[store] url holds a password, which is not used (password_file comes first): remove it from the url")
        }
        func fold<Value: Equatable>(_ key: String, _ parameter: String, _ fromURL: Value?, into field: inout Value, shown: (Value) -> String) {
            guard let fromURL else { return }
            if !written("store", key) {
                field = fromURL
            } else if usable("store", key), field != fromURL {
                fail(section: s, key: key,
                     "\(key) \(shown(field)) differs from the url's ?\(parameter)= (\(shown(fromURL))): set it in one place")
            }
        }
        fold("sslmode", "sslmode", url.sslMode, into: &store.sslMode) { tomlQuoted($0.rawValue) }
        fold("connect_timeout", "connect_timeout", url.connectTimeoutMs, into: &store.connectTimeoutMs) {
            tomlQuoted(formatDuration($0))
        }
        fold("ca_file", "sslrootcert", url.sslRootCert.map { Optional($0) }, into: &store.caFile) { tomlQuoted($0 ?? "") }
        if store.caFile != nil, store.sslMode == .disable, usable("store", "sslmode"), usable("store", "ca_file") {
            let blamed = written("store", "ca_file") ? "ca_file" : written("store", "sslmode") ? "sslmode" : "url"
            fail(section: s, key: blamed, "a CA file (ca_file or ?sslrootcert=) with sslmode disable: nothing is verified without TLS; "
                + "remove the CA file, or choose verify-full")
        }
        if store.caFile != nil, store.sslMode == .prefer {
            warnings.append("[store] ca_file with sslmode prefer: a server that offers no TLS is still used in the clear; "
                + "choose verify-full (or verify-ca) to insist on a verified server")
        }
        if case .unixSocket = url.endpoint, store.sslMode != .disable, store.sslMode != .prefer {
            warnings.append("[store] sslmode \(store.sslMode.rawValue): the url names a Unix socket, where (as in libpq) "
                + "no TLS is used; the socket's own permissions protect the connection")
        }
    }

    /// `retry_base` must not be longer than `retry_max` nor than `retry_after_max` (each as written,
    /// else its default); blamed on the key written, and not checked when either was not accepted.
    private mutating func checkRetryDelays(_ delivery: PaywatchConfiguration.Delivery) {
        let s = ["delivery"]
        if usable("delivery", "retry_base"), usable("delivery", "retry_max"), delivery.retryBaseMs > delivery.retryMaxMs {
            fail(section: s, key: written("delivery", "retry_base") ? "retry_base" : "retry_max",
                 "retry_base (\(formatDuration(delivery.retryBaseMs))) must not be longer than retry_max (\(formatDuration(delivery.retryMaxMs)))")
        }
        if usable("delivery", "retry_base"), usable("delivery", "retry_after_max"), delivery.retryBaseMs > delivery.retryAfterMaxMs {
            fail(section: s, key: written("delivery", "retry_after_max") ? "retry_after_max" : "retry_base",
                 "retry_after_max (\(formatDuration(delivery.retryAfterMaxMs))) must not be shorter than retry_base (\(formatDuration(delivery.retryBaseMs)))")
        }
    }

    /// `[store] lease` must be longer than `[delivery] timeout` + 5s: a transfer runs inside its
    /// lease, renewed every third of it, so a shorter lease could expire (and be taken over by
    /// another replica) while the transfer is still under way. Blamed on the key written (the
    /// lease when both are), and not checked when either was not accepted.
    private mutating func checkLease(_ config: PaywatchConfiguration) {
        guard usable("store", "lease"), usable("delivery", "timeout") else { return }
        let margin = PaywatchConfiguration.leaseMarginMs
        let timeout = config.delivery.timeoutMs
        guard config.store.leaseMs <= timeout + margin else { return }
        let blamed = written("store", "lease") || !written("delivery", "timeout") ? (["store"], "lease") : (["delivery"], "timeout")
        fail(section: blamed.0, key: blamed.1,
             "[store] lease (\(formatDuration(config.store.leaseMs))) must be longer than [delivery] timeout "
                + "(\(formatDuration(timeout))) + \(formatDuration(margin)): a transfer must finish inside its lease between renewals")
    }

    /// An idle daemon sweeps once per `poll_interval`, so a `max_lag` shorter than two of them would
    /// call a healthy daemon stalled: written, that is an error; not written, its default grows to
    /// two poll intervals.
    private mutating func checkMaxLag(_ daemon: inout PaywatchConfiguration.Daemon) {
        // Capped by the longest duration a file can hold.
        let floor = min(daemon.pollIntervalMs, maxDurationMs / 2) * 2
        guard usable("daemon", "poll_interval"), daemon.maxLagMs < floor else { return }
        if written("daemon", "max_lag") {
            if usable("daemon", "max_lag") {
                fail(section: ["daemon"], key: "max_lag",
                     "max_lag (\(formatDuration(daemon.maxLagMs))) must be at least twice poll_interval "
                        + "(\(formatDuration(daemon.pollIntervalMs))): an idle daemon sweeps once per poll_interval")
            }
        } else {
            daemon.maxLagMs = floor
        }
    }

    /// The `channels` lists: one written in the file must name defined channels; `[unpaid]`'s default
    /// keeps the default names that have a section, and the other lists default to `[unpaid]`'s.
    private mutating func resolveChannelLists(_ config: inout PaywatchConfiguration, defined: Set<String>) {
        for (section, key, path) in channelLists() where written(section, key) && usable(section, key) {
            for name in config[keyPath: path] where !defined.contains(name) {
                fail(section: [section], key: key, "channel \(tomlQuoted(name)) has no [channels.\(displayKey(name))] section")
            }
        }
        if !(written("unpaid", "channels") && usable("unpaid", "channels")) {
            let kept = PaywatchConfiguration.defaultChannels.filter { config.channels[$0] != nil }
            let dropped = PaywatchConfiguration.defaultChannels.filter { config.channels[$0] == nil }
            if !dropped.isEmpty {
                warnings.append(
                    "[unpaid] channels is not set and there is no section for "
                        + dropped.map { "[channels.\($0)]" }.joined(separator: ", ")
                        + ": the default channels are " + renderStringArray(kept))
            }
            config.unpaid.channels = kept
        }
        for (section, key, path) in channelLists() where section != "unpaid" && !(written(section, key) && usable(section, key)) {
            config[keyPath: path] = config.unpaid.channels
        }
    }

    /// `[quiet_hours]`: `start` and `end` together and different; `channels` written must name
    /// defined channels other than `ops` (ops messages are never held), and when not written keeps
    /// the default names that have a section.
    private mutating func checkQuietHours(_ config: inout PaywatchConfiguration, defined: Set<String>) {
        let s = ["quiet_hours"]
        let quiet = config.quietHours
        if usable("quiet_hours", "start"), usable("quiet_hours", "end"), (quiet.start == nil) != (quiet.end == nil) {
            fail(section: s, key: quiet.start == nil ? "start" : "end",
                 "start and end go together: set both for quiet hours, or neither")
        }
        if let start = quiet.start, let end = quiet.end, start == end {
            fail(section: s, key: "end", "end equals start (\(tomlQuoted(formatTimeOfDay(end)))): the quiet hours would be empty, or the whole day")
        }
        if written("quiet_hours", "channels") {
            guard usable("quiet_hours", "channels") else { return }
            for name in quiet.channels {
                if name == "ops" {
                    fail(section: s, key: "channels", "\(tomlQuoted(name)) is the ops channel: ops messages are never held")
                } else if !defined.contains(name) {
                    fail(section: s, key: "channels", "channel \(tomlQuoted(name)) has no [channels.\(displayKey(name))] section")
                }
            }
        } else {
            config.quietHours.channels = PaywatchConfiguration.QuietHours.defaultChannels.filter { config.channels[$0] != nil }
        }
        if config.quietHours.isOn, config.quietHours.channels.isEmpty {
            warnings.append("[quiet_hours] channels is empty: no message is held")
        }
    }

    /// Every `channels` list of the table: section, key and where it is held.
    private func channelLists() -> [(section: String, key: String, path: WritableKeyPath<PaywatchConfiguration, [String]>)] {
        PaywatchConfiguration.sections.flatMap { section in
            section.keys.compactMap { key in key.channelList.map { (section.name, key.name, $0) } }
        }
    }

    private mutating func readChannel(_ name: String, _ table: [String: TOMLNode], deliveryConcurrency: Int) -> PaywatchConfiguration.Channel? {
        let s = ["channels", name]
        var channel = PaywatchConfiguration.Channel(name: name)
        var table = table
        let inlineAllowed: Bool
        if case .boolean(true)? = table["allow_inline_secrets"] { inlineAllowed = true } else { inlineAllowed = false }
        var inlineRefused: Set<String> = []
        if inlineAllowed {
            // Credentials written here: taken out of the table and kept by the key they stand for.
            for (key, fileKey) in PaywatchConfiguration.inlineSecretKeys.sorted(by: { $0.key < $1.key }) {
                guard let node = table.removeValue(forKey: key) else { continue }
                guard case .string(let value) = node else {
                    fail(section: s, key: key, "expected a string, got \(node.summary)")
                    inlineRefused.insert(fileKey)
                    continue
                }
                if table[fileKey] != nil {
                    fail(section: s, key: key, "both \(key) and \(fileKey) are set: keep one")
                    inlineRefused.insert(fileKey)
                    continue
                }
                channel.inlineSecrets[fileKey] = value
            }
            if case .string(let provider)? = table["provider"], provider == "slack", case .string(let url)? = table["url"] {
                table["url"] = nil
                if table["url_file"] != nil {
                    fail(section: s, key: "url", "both url and url_file are set: keep one")
                    inlineRefused.insert("url_file")
                } else {
                    channel.inlineSecrets["url_file"] = url
                }
            }
        }
        var notAccepted = read(table, section: s, keys: PaywatchConfiguration.Channel.keys, into: &channel, unknown: inlineSecretHint)
        notAccepted.formUnion(inlineRefused)
        if !channel.inlineSecrets.isEmpty {
            let keys = channel.inlineSecrets.keys.sorted().map { $0 == "url_file" ? "url" : String($0.dropLast(5)) }
            warnings.append("""
                [channels.\(displayKey(name))] \(keys.joined(separator: ", ")): an inline secret (allow_inline_secrets = true): anyone who can read \
                this file, its backups or its copies can take it; prefer a *_file key or a systemd credential
                """)
        }
        if let concurrency = channel.concurrency, concurrency > deliveryConcurrency {
            fail(section: s, key: "concurrency",
                 "\(concurrency) is more than [delivery] concurrency (\(deliveryConcurrency)): a channel's share cannot exceed every slot")
            notAccepted.insert("concurrency")
        }
        if channel.burst != nil, channel.rate == nil, !notAccepted.contains("burst"), !notAccepted.contains("rate") {
            fail(section: s, key: "burst", "burst needs a rate: set rate (e.g. rate = \"50/s\") or remove burst")
            notAccepted.insert("burst")
        }
        if !notAccepted.contains("provider") {
            notAccepted.formUnion(checkProviderKeys(channel, table, section: s, notAccepted: notAccepted))
        }
        return notAccepted.isEmpty ? channel : nil
    }

    /// Why an unknown channel key is refused, when it looks like an inline secret: `auth_token` for
    /// `auth_token_file`. Credentials are only read from files (a systemd credential, or a file only
    /// the service can read), so a copy of the configuration file never carries one.
    private func inlineSecretHint(_ key: String) -> String? {
        let keys = PaywatchConfiguration.Channel.keys.map(\.name)
        if keys.contains(key + "_file") {
            return "an inline secret is refused: put it in a file: \(key)_file = \"/etc/paywatch/\(String(key.map { $0 == "_" ? "-" : $0 }))\""
                + (PaywatchConfiguration.inlineSecretKeys[key] != nil ? " (or set allow_inline_secrets = true)" : "")
        }
        return nil
    }

    /// The rules of the channel's provider: only its keys (``PaywatchConfiguration/providerKeys``),
    /// its required ones written, its URL schemes, and plain `http://` only to loopback.
    /// - Returns: the keys not accepted.
    private mutating func checkProviderKeys(
        _ channel: PaywatchConfiguration.Channel, _ table: [String: TOMLNode], section s: [String], notAccepted: Set<String>
    ) -> Set<String> {
        let provider = channel.provider
        guard let own = PaywatchConfiguration.providerKeys[provider],
              let allowed = PaywatchConfiguration.channelKeys(of: provider) else { return [] }
        var refused: Set<String> = []
        let ownKeys = allowed.filter { !PaywatchConfiguration.commonChannelKeys.contains($0) }
        for key in PaywatchConfiguration.Channel.keys.map(\.name) where table[key] != nil && !allowed.contains(key) {
            let message = provider == "slack" && key == "url"
                ? "the Slack webhook URL is a secret: put it in a file: url_file = \"/etc/paywatch/slack.url\""
                : "does not apply to provider \(tomlQuoted(provider)) (its keys: \(ownKeys.joined(separator: ", ")))"
            fail(section: s, key: key, message)
            refused.insert(key)
        }
        for fileKey in channel.inlineSecrets.keys.sorted() where !allowed.contains(fileKey) {
            let key = fileKey == "url_file" ? "url" : String(fileKey.dropLast(5))
            fail(section: s, key: key, "does not apply to provider \(tomlQuoted(provider)) (its keys: \(ownKeys.joined(separator: ", ")))")
            refused.insert(fileKey)
        }
        for key in own.required where table[key] == nil && channel.inlineSecrets[key] == nil && !notAccepted.contains(key) {
            fail(section: s, key: key, "missing required key (\(Self.requiredMeaning(key, provider: provider)))")
            refused.insert(key)
        }
        let usable = { (key: String) in table[key] != nil && !notAccepted.contains(key) && !refused.contains(key) }
        if usable("url"), let url = channel.url {
            let schemes = provider == "smtp" ? ["smtp://", "smtps://"] : ["http://", "https://"]
            if !schemes.contains(where: url.lowercased().hasPrefix) {
                fail(section: s, key: "url", provider == "smtp"
                     ? "expected an smtp:// or smtps:// url" : "expected an http:// or https:// url")
                refused.insert("url")
            }
        }
        if provider == "smtp", usable("url"), !refused.contains("url"), let url = channel.url, urlHasPassword(url) {
            fail(section: s, key: "url", "a password in the url is an inline secret: put the login in username and password_file")
            refused.insert("url")
        }
        // Not judged while allow_insecure_http itself is wrong: its error says enough.
        let insecureAllowed = channel.allowInsecureHTTP || notAccepted.contains("allow_insecure_http")
        for key in ["url", "base_url"] where usable(key) && !refused.contains(key) && !insecureAllowed {
            guard let url = key == "url" ? channel.url : channel.baseURL, isInsecureHTTP(url) else { continue }
            fail(section: s, key: key, """
                plain http:// to a host other than loopback would send the request (credentials included) unencrypted: \
                use https://, or set allow_insecure_http = true
                """)
            refused.insert(key)
        }
        if provider == "smtp", (channel.username == nil) != (channel.passwordFile == nil) {
            let written = channel.username == nil ? "password_file" : "username"
            fail(section: s, key: written, "username and password_file go together: set both, or neither for a relay without login")
            refused.insert(written)
        }
        return refused
    }

    /// What a required key of `provider` holds, for `missing required key (…)`.
    private static func requiredMeaning(_ key: String, provider: String) -> String {
        switch (key, provider) {
        case ("url", "smtp"): return "the smtp:// or smtps:// server"
        case ("url", _): return "the http:// or https:// endpoint"
        case ("from", "twilio"): return "the sending number, E.164"
        case ("from", _): return "the sender's e-mail address"
        case ("account_sid", _): return "the Twilio account, AC…"
        default: return "provider \(tomlQuoted(provider)) reads its credential from this file"
        }
    }

    private mutating func addWarnings(_ config: PaywatchConfiguration) {
        if config.channels["ops"] == nil {
            warnings.append("no [channels.ops]: ops escalations are only logged")
        }
        let lists = channelLists().map { ($0.section, config[keyPath: $0.path]) }
        for (section, names) in lists where names.isEmpty {
            warnings.append("[\(section)] channels is empty: no customer messages are sent for [\(section)]")
        }
        let used = Set(lists.flatMap { $0.1 })
        for name in config.channels.keys.sorted() where name != "ops" && !used.contains(name) {
            warnings.append("[channels.\(name)] is not in any channels list: it is only used by send-test")
        }
        for ms in config.unpaid.remindersMs where ms >= config.unpaid.holdMs {
            warnings.append(
                "[unpaid] reminders: \"\(formatDuration(ms))\" is not before hold \"\(formatDuration(config.unpaid.holdMs))\": that reminder is never sent")
        }
    }
}

/// Why `url` is not an accepted store URL, or nil. Never echoes the URL (it may hold a password).
func storeURLProblem(_ url: String) -> String? {
    let expected = "expected a url starting with sqlite://, postgres:// or postgresql://"
    if url.hasPrefix("sqlite://") {
        let path = url.dropFirst("sqlite://".count).prefix { $0 != "?" }
        if path.isEmpty || path == "/" { return "the sqlite url has no database path (sqlite:///absolute/path.db or sqlite://relative/path.db)" }
        if path.hasSuffix("/") { return "the sqlite url names a folder, not a database file" }
        if case .failure(let problem) = sqliteURLOptions(url) { return problem.message }
        return nil
    }
    if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
        if case .failure(let problem) = PostgresURL.parse(url) { return problem.message }
        return nil
    }
    return expected
}
