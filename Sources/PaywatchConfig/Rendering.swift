extension PaywatchConfiguration {
    /// The effective configuration as TOML: every key, defaults filled in, channel defaults resolved.
    ///
    /// Keys that are not set (`reconcile_url`, `token_file`, `to`) appear as comments. Credentials are
    /// masked in every URL (`[store] url`, `[paying] reconcile_url`, `[channels.NAME] url`): a userinfo
    /// password and every query value become `****` (see ``maskURL(_:)``), and the masked URL is still
    /// valid; `token_file` paths are shown (they are not secrets, their content is never read here).
    /// For a configuration from `parse`/`load` whose URLs hold no password, query value or fragment,
    /// parsing the output again gives an equal configuration.
    public func rendered() -> String {
        var out: [String] = []
        func key(_ name: String, _ value: String) { out.append("\(name) = \(value)") }
        func duration(_ name: String, _ ms: Int64) { key(name, tomlQuoted(formatDuration(ms))) }
        func durations(_ name: String, _ list: [Int64]) { key(name, renderStringArray(list.map(formatDuration))) }
        func section(_ name: String) {
            if !out.isEmpty { out.append("") }
            out.append("[\(name)]")
        }

        out.append("# paywatch effective configuration (defaults filled in, secrets masked)")
        section("store")
        key("url", tomlQuoted(store.maskedURL))
        duration("busy_timeout", store.busyTimeoutMs)

        section("daemon")
        duration("poll_interval", daemon.pollIntervalMs)
        key("batch_size", "\(daemon.batchSize)")
        key("log_level", tomlQuoted(daemon.logLevel))
        duration("max_clock_skew", daemon.maxClockSkewMs)

        section("delivery")
        key("concurrency", "\(delivery.concurrency)")
        duration("timeout", delivery.timeoutMs)
        key("max_attempts", "\(delivery.maxAttempts)")
        duration("retry_base", delivery.retryBaseMs)
        duration("retry_max", delivery.retryMaxMs)
        duration("retry_after_max", delivery.retryAfterMaxMs)

        section("unpaid")
        duration("hold", unpaid.holdMs)
        durations("reminders", unpaid.remindersMs)
        key("channels", renderStringArray(unpaid.channels))

        section("paying")
        duration("stall_after", paying.stallAfterMs)
        if let url = paying.reconcileURL {
            key("reconcile_url", tomlQuoted(maskURL(url)))
        } else {
            out.append("# reconcile_url is not set")
        }

        section("failed")
        durations("reminders", failed.remindersMs)
        key("channels", renderStringArray(failed.channels))

        section("partially_paid")
        durations("reminders", partiallyPaid.remindersMs)
        duration("balance_due", partiallyPaid.balanceDueMs)
        durations("installment_reminders", partiallyPaid.installmentRemindersMs)
        duration("overdue_every", partiallyPaid.overdueEveryMs)
        key("overdue_max", "\(partiallyPaid.overdueMax)")
        key("on_overdue", tomlQuoted(partiallyPaid.onOverdue.rawValue))
        key("channels", renderStringArray(partiallyPaid.channels))

        section("paid")
        key("channels", renderStringArray(paid.channels))

        section("refunding")
        duration("stall_after", refunding.stallAfterMs)
        key("channels", renderStringArray(refunding.channels))

        for name in channels.keys.sorted() {
            guard let channel = channels[name] else { continue }
            section("channels.\(isBareKey(name) ? name : tomlQuoted(name))")
            key("provider", tomlQuoted(channel.provider))
            key("url", tomlQuoted(maskURL(channel.url)))
            if let tokenFile = channel.tokenFile {
                key("token_file", tomlQuoted(tokenFile))
            } else {
                out.append("# token_file is not set")
            }
            if let to = channel.to {
                key("to", tomlQuoted(to))
            } else {
                out.append("# to is not set")
            }
            if let concurrency = channel.concurrency {
                key("concurrency", "\(concurrency)")
            } else {
                out.append("# concurrency is not set: a fair share of [delivery] concurrency")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }
}

/// A TOML basic string literal.
func tomlQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case "\u{08}": out += "\\b"
        case "\u{0C}": out += "\\f"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

func renderStringArray(_ items: [String]) -> String {
    "[" + items.map(tomlQuoted).joined(separator: ", ") + "]"
}
