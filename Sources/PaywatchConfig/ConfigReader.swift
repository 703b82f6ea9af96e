// The reader: from the TOML tree to a validated PaywatchConfiguration. Problems are collected as
// ConfigErrors (the caller throws the one on the earliest line); warnings are kept beside them.

private let durationHint = "expected a duration string such as \"30m\""

/// Whether `name` is a valid channel name: `[a-z][a-z0-9_]*`.
func isValidChannelName(_ name: String) -> Bool {
    guard let first = name.utf8.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first) else { return false }
    return name.utf8.allSatisfy {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
            || $0 == UInt8(ascii: "_")
    }
}


private enum ListOrder {
    case ascending, descending
}

/// A channels list as written, with the line to blame for its problems.
private struct ChannelList {
    var section: [String]
    var names: [String]
}

struct ConfigReader {
    let file: String
    let locator: KeyLocator
    var errors: [ConfigError] = []
    var warnings: [String] = []

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

    /// Reports every key of `table` that is not in `known`.
    private mutating func rejectUnknown(_ table: [String: TOMLNode], section: [String], known: [String]) {
        for (key, value) in table where !known.contains(key) {
            if case .table = value {
                fail(section: section + [key], key: nil, "unknown section")
            } else {
                fail(section: section, key: key, "unknown key")
            }
        }
    }

    // MARK: typed getters: nil when absent or invalid (then an error is recorded)

    private mutating func duration(_ table: [String: TOMLNode], _ section: [String], _ key: String) -> Int64? {
        guard let value = table[key] else { return nil }
        return durationValue(value, section, key, entry: nil)
    }

    private mutating func durationValue(_ value: TOMLNode, _ section: [String], _ key: String, entry: Int?) -> Int64? {
        let prefix = entry.map { "entry \($0): " } ?? ""
        guard case .string(let text) = value else {
            fail(section: section, key: key, prefix + "\(durationHint), got \(value.summary)")
            return nil
        }
        switch parseBoundedDuration(text) {
        case .success(let ms):
            return ms
        case .failure(let problem):
            fail(section: section, key: key, prefix + problem.description)
            return nil
        }
    }

    private mutating func durationList(
        _ table: [String: TOMLNode], _ section: [String], _ key: String, order: ListOrder
    ) -> [Int64]? {
        guard let value = table[key] else { return nil }
        guard case .array(let items) = value else {
            let example = order == .ascending ? "[\"10m\", \"25m\"]" : "[\"3d\", \"1d\"]"
            fail(section: section, key: key, "expected a list of duration strings such as \(example), got \(value.summary)")
            return nil
        }
        var result: [Int64] = []
        var texts: [String] = []
        for (offset, item) in items.enumerated() {
            guard let ms = durationValue(item, section, key, entry: offset + 1) else { return nil }
            guard case .string(let text) = item else { return nil }
            if let previous = result.last {
                if let same = result.firstIndex(of: ms) {
                    let original = texts[same]
                    fail(section: section, key: key, original == text
                        ? "duplicate entry \(tomlQuoted(text))"
                        : "duplicate entry \(tomlQuoted(text)) (the same as \(tomlQuoted(original)))")
                    return nil
                }
                let inOrder = order == .ascending ? ms > previous : ms < previous
                if !inOrder {
                    let word = order == .ascending ? "ascending (shortest first)" : "descending (longest before the due date first)"
                    fail(section: section, key: key,
                         "must be in \(word) order: \(tomlQuoted(text)) comes after \(tomlQuoted(texts[texts.count - 1]))")
                    return nil
                }
            }
            result.append(ms)
            texts.append(text)
        }
        return result
    }

    private mutating func positiveInt(
        _ table: [String: TOMLNode], _ section: [String], _ key: String, max limit: (value: Int, why: String)? = nil
    ) -> Int? {
        guard let value = table[key] else { return nil }
        guard case .integer(let number) = value else {
            fail(section: section, key: key, "expected an integer, got \(value.summary)")
            return nil
        }
        guard number >= 1 else {
            fail(section: section, key: key, "must be at least 1, got \(number)")
            return nil
        }
        if let limit, number > Int64(limit.value) {
            fail(section: section, key: key, "must be at most \(limit.value), got \(number) (\(limit.why))")
            return nil
        }
        guard let result = Int(exactly: number) else {
            fail(section: section, key: key, "\(number) is too large")
            return nil
        }
        return result
    }

    private mutating func string(_ table: [String: TOMLNode], _ section: [String], _ key: String) -> String? {
        guard let value = table[key] else { return nil }
        guard case .string(let text) = value else {
            fail(section: section, key: key, "expected a string, got \(value.summary)")
            return nil
        }
        guard !text.isEmpty else {
            fail(section: section, key: key, "must not be empty")
            return nil
        }
        return text
    }

    private mutating func httpURL(_ table: [String: TOMLNode], _ section: [String], _ key: String) -> String? {
        guard let text = string(table, section, key) else { return nil }
        let lower = text.lowercased()
        for scheme in ["http://", "https://"] where lower.hasPrefix(scheme) {
            let host = text.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" }) { return text }
            fail(section: section, key: key, "the url has no host")
            return nil
        }
        fail(section: section, key: key, "expected an http:// or https:// url")
        return nil
    }

    private mutating func channelNames(_ table: [String: TOMLNode], _ section: [String]) -> [String]? {
        guard let value = table["channels"] else { return nil }
        guard case .array(let items) = value else {
            fail(section: section, key: "channels", "expected a list of channel names such as [\"sms\", \"email\"], got \(value.summary)")
            return nil
        }
        var names: [String] = []
        for (offset, item) in items.enumerated() {
            guard case .string(let name) = item else {
                fail(section: section, key: "channels", "entry \(offset + 1): expected a channel name string, got \(item.summary)")
                return nil
            }
            guard !name.isEmpty else {
                fail(section: section, key: "channels", "entry \(offset + 1): the channel name is empty")
                return nil
            }
            guard !names.contains(name) else {
                fail(section: section, key: "channels", "channel \(tomlQuoted(name)) is listed twice")
                return nil
            }
            names.append(name)
        }
        return names
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
        let sections = ["store", "daemon", "delivery", "unpaid", "paying", "failed", "partially_paid", "paid", "refunding", "channels"]
        rejectUnknown(root, section: [], known: sections)
        var lists: [String: ChannelList] = [:]
        func note(_ list: [String]?, _ name: String) {
            if let list { lists[name] = ChannelList(section: [name], names: list) }
        }

        if let table = section(root, "store") {
            let s = ["store"]
            rejectUnknown(table, section: s, known: ["url", "busy_timeout"])
            if let url = string(table, s, "url") {
                if let problem = storeURLProblem(url) {
                    fail(section: s, key: "url", problem)
                } else {
                    config.store.url = url
                }
            }
            if let v = duration(table, s, "busy_timeout") { config.store.busyTimeoutMs = v }
        }

        if let table = section(root, "daemon") {
            let s = ["daemon"]
            rejectUnknown(table, section: s, known: ["poll_interval", "batch_size", "log_level", "max_clock_skew"])
            if let v = duration(table, s, "poll_interval") { config.daemon.pollIntervalMs = v }
            if let v = positiveInt(table, s, "batch_size", max: (
                PaywatchConfiguration.maxBatchSize, "a sweep binds the batch's ids in one SQL statement"))
            {
                config.daemon.batchSize = v
            }
            if let v = duration(table, s, "max_clock_skew") { config.daemon.maxClockSkewMs = v }
            if let level = string(table, s, "log_level") {
                if PaywatchConfiguration.logLevels.contains(level) {
                    config.daemon.logLevel = level
                } else {
                    fail(section: s, key: "log_level",
                         "unknown log level \(tomlQuoted(level)): expected one of \(PaywatchConfiguration.logLevels.joined(separator: ", "))")
                }
            }
        }

        if let table = section(root, "delivery") {
            let s = ["delivery"]
            rejectUnknown(table, section: s, known: ["concurrency", "timeout", "max_attempts", "retry_base", "retry_max", "retry_after_max"])
            if let v = positiveInt(table, s, "concurrency", max: (
                PaywatchConfiguration.maxConcurrency, "each transfer in flight holds an open file"))
            {
                config.delivery.concurrency = v
            }
            if let v = duration(table, s, "timeout") { config.delivery.timeoutMs = v }
            if let v = positiveInt(table, s, "max_attempts") { config.delivery.maxAttempts = v }
            let base = duration(table, s, "retry_base")
            let max = duration(table, s, "retry_max")
            if let base { config.delivery.retryBaseMs = base }
            if let max { config.delivery.retryMaxMs = max }
            let baseOK = table["retry_base"] == nil || base != nil
            let maxOK = table["retry_max"] == nil || max != nil
            if baseOK, maxOK, config.delivery.retryBaseMs > config.delivery.retryMaxMs {
                fail(section: s, key: table["retry_base"] != nil ? "retry_base" : "retry_max",
                     "retry_base (\(formatDuration(config.delivery.retryBaseMs))) must not be longer than retry_max (\(formatDuration(config.delivery.retryMaxMs)))")
            }
            let afterMax = duration(table, s, "retry_after_max")
            if let afterMax { config.delivery.retryAfterMaxMs = afterMax }
            let afterMaxOK = table["retry_after_max"] == nil || afterMax != nil
            if baseOK, afterMaxOK, config.delivery.retryBaseMs > config.delivery.retryAfterMaxMs {
                fail(section: s, key: table["retry_after_max"] != nil ? "retry_after_max" : "retry_base",
                     "retry_after_max (\(formatDuration(config.delivery.retryAfterMaxMs))) must not be shorter than retry_base (\(formatDuration(config.delivery.retryBaseMs)))")
            }
        }

        if let table = section(root, "unpaid") {
            let s = ["unpaid"]
            rejectUnknown(table, section: s, known: ["hold", "reminders", "channels"])
            if let v = duration(table, s, "hold") { config.unpaid.holdMs = v }
            if let v = durationList(table, s, "reminders", order: .ascending) { config.unpaid.remindersMs = v }
            note(channelNames(table, s), "unpaid")
        }

        if let table = section(root, "paying") {
            let s = ["paying"]
            rejectUnknown(table, section: s, known: ["stall_after", "reconcile_url"])
            if let v = duration(table, s, "stall_after") { config.paying.stallAfterMs = v }
            if let url = httpURL(table, s, "reconcile_url") {
                config.paying.reconcileURL = url
                if !url.contains("{provider_ref}") {
                    warnings.append("[paying] reconcile_url has no {provider_ref} placeholder: every stalled payment is looked up at the same URL")
                }
            }
        }

        if let table = section(root, "failed") {
            let s = ["failed"]
            rejectUnknown(table, section: s, known: ["reminders", "channels"])
            if let v = durationList(table, s, "reminders", order: .ascending) { config.failed.remindersMs = v }
            note(channelNames(table, s), "failed")
        }

        if let table = section(root, "partially_paid") {
            let s = ["partially_paid"]
            rejectUnknown(table, section: s, known: [
                "reminders", "balance_due", "installment_reminders", "overdue_every", "overdue_max", "on_overdue", "channels",
            ])
            if let v = durationList(table, s, "reminders", order: .ascending) { config.partiallyPaid.remindersMs = v }
            if let v = duration(table, s, "balance_due") { config.partiallyPaid.balanceDueMs = v }
            if let v = durationList(table, s, "installment_reminders", order: .descending) {
                config.partiallyPaid.installmentRemindersMs = v
            }
            if let v = duration(table, s, "overdue_every") { config.partiallyPaid.overdueEveryMs = v }
            if let v = positiveInt(table, s, "overdue_max") { config.partiallyPaid.overdueMax = v }
            if let text = string(table, s, "on_overdue") {
                if let value = PaywatchConfiguration.OnOverdue(rawValue: text) {
                    config.partiallyPaid.onOverdue = value
                } else {
                    fail(section: s, key: "on_overdue", "unknown value \(tomlQuoted(text)): expected \"escalate\" or \"cancel\"")
                }
            }
            note(channelNames(table, s), "partially_paid")
        }

        if let table = section(root, "paid") {
            let s = ["paid"]
            rejectUnknown(table, section: s, known: ["channels"])
            note(channelNames(table, s), "paid")
        }

        if let table = section(root, "refunding") {
            let s = ["refunding"]
            rejectUnknown(table, section: s, known: ["stall_after", "channels"])
            if let v = duration(table, s, "stall_after") { config.refunding.stallAfterMs = v }
            note(channelNames(table, s), "refunding")
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

        // Channel lists: explicit ones must name defined channels; the [unpaid] default keeps the defined ones.
        for (_, list) in lists.sorted(by: { $0.key < $1.key }) {
            for name in list.names where !defined.contains(name) {
                fail(section: list.section, key: "channels",
                     "channel \(tomlQuoted(name)) has no [channels.\(displayKey(name))] section")
            }
        }
        if let explicit = lists["unpaid"] {
            config.unpaid.channels = explicit.names
        } else {
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
        config.failed.channels = lists["failed"]?.names ?? config.unpaid.channels
        config.partiallyPaid.channels = lists["partially_paid"]?.names ?? config.unpaid.channels
        config.paid.channels = lists["paid"]?.names ?? config.unpaid.channels
        config.refunding.channels = lists["refunding"]?.names ?? config.unpaid.channels

        addWarnings(config)
        config.warnings = warnings
        return config
    }

    private mutating func readChannel(_ name: String, _ table: [String: TOMLNode], deliveryConcurrency: Int) -> PaywatchConfiguration.Channel? {
        let s = ["channels", name]
        rejectUnknown(table, section: s, known: ["provider", "url", "token_file", "to", "concurrency"])
        var ok = true
        var provider: String?
        if table["provider"] == nil {
            fail(section: s, key: "provider", "missing required key (only \"webhook\" is supported)")
            ok = false
        } else if let text = string(table, s, "provider") {
            if PaywatchConfiguration.providers.contains(text) {
                provider = text
            } else {
                fail(section: s, key: "provider", "unknown provider \(tomlQuoted(text)): only \"webhook\" is supported")
                ok = false
            }
        } else {
            ok = false
        }
        var url: String?
        if table["url"] == nil {
            fail(section: s, key: "url", "missing required key (the http:// or https:// endpoint)")
            ok = false
        } else {
            url = httpURL(table, s, "url")
            if url == nil { ok = false }
        }
        let tokenFile = string(table, s, "token_file")
        if table["token_file"] != nil, tokenFile == nil { ok = false }
        let to = string(table, s, "to")
        if table["to"] != nil, to == nil { ok = false }
        let concurrency = positiveInt(table, s, "concurrency")
        if table["concurrency"] != nil, concurrency == nil { ok = false }
        if let concurrency, concurrency > deliveryConcurrency {
            fail(section: s, key: "concurrency",
                 "\(concurrency) is more than [delivery] concurrency (\(deliveryConcurrency)): a channel's share cannot exceed every slot")
            ok = false
        }
        guard ok, let provider, let url else { return nil }
        return PaywatchConfiguration.Channel(name: name, provider: provider, url: url, tokenFile: tokenFile, to: to,
                                             concurrency: concurrency)
    }

    private mutating func addWarnings(_ config: PaywatchConfiguration) {
        if config.channels["ops"] == nil {
            warnings.append("no [channels.ops]: ops escalations are only logged")
        }
        let lists: [(String, [String])] = [
            ("unpaid", config.unpaid.channels), ("failed", config.failed.channels),
            ("partially_paid", config.partiallyPaid.channels), ("paid", config.paid.channels),
            ("refunding", config.refunding.channels),
        ]
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
    for scheme in ["postgres://", "postgresql://"] where url.hasPrefix(scheme) {
        if url.count == scheme.count { return "the postgres url has no host or database" }
        return nil
    }
    return expected
}
