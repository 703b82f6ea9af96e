extension PaywatchConfiguration {
    /// The effective configuration as TOML: every key, defaults filled in, channel defaults resolved.
    ///
    /// Keys that are not set (`reconcile_url`, `token_file`, `to`) appear as comments. Credentials are
    /// masked in every URL (`[store] url`, `[paying] reconcile_url`, `[channels.NAME] url`): a userinfo
    /// password and every query value become `****` (see ``maskURL(_:)``), and the masked URL is still
    /// valid; `*_file` paths are shown (they are not secrets, their content is never read here), and
    /// a credential written inline (`allow_inline_secrets`) shows as `"****"`. A channel shows its provider's
    /// keys only; with a `sqlite://` store, the PostgreSQL keys of `[store]` are comments.
    /// For a configuration from `parse`/`load` whose URLs hold no password, query value or fragment, and without inline secrets,
    /// parsing the output again gives an equal configuration.
    public func rendered() -> String {
        var out = ["# paywatch effective configuration (defaults filled in, secrets masked)"]
        func section<Root>(_ header: String, _ keys: [ConfigKey<Root>], of root: Root, unused: [String: String] = [:]) {
            out.append("")
            out.append("[\(header)]")
            for key in keys {
                if let why = unused[key.name] {
                    out.append("# \(key.name) is not used: \(why)")
                } else if let value = key.render(root) {
                    out.append("\(key.name) = \(value)")
                } else {
                    out.append("# \(key.name) is not set" + (key.unsetMeaning.map { ": " + $0 } ?? ""))
                }
            }
        }
        // A SQLite store: the PostgreSQL keys as comments (written, they would be refused).
        let unusedStoreKeys = store.sqlitePath == nil
            ? [:] : Dictionary(uniqueKeysWithValues: Store.postgresKeys.map { ($0, "the store is SQLite") })
        for declared in Self.sections {
            section(declared.name, declared.keys, of: self, unused: declared.name == "store" ? unusedStoreKeys : [:])
        }
        for name in channels.keys.sorted() {
            guard let channel = channels[name] else { continue }
            // Only the keys of its provider: another provider's would be refused if written back.
            let own = Self.channelKeys(of: channel.provider) ?? Channel.keys.map(\.name)
            section("channels.\(displayKey(name))", Channel.keys.filter { own.contains($0.name) }, of: channel)
            for fileKey in channel.inlineSecrets.keys.sorted() {
                let key = fileKey == "url_file" ? "url" : String(fileKey.dropLast(5))
                out.append("\(key) = \"****\"  # an inline secret (allow_inline_secrets), masked")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// The configuration reference as a Markdown table — every key with its type, default and meaning —
    /// as README.md shows it between `<!-- config-table:begin -->` and `<!-- config-table:end -->`.
    public static func referenceTable() -> String {
        var rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
        func add<Root>(_ section: String, _ keys: [ConfigKey<Root>], defaults: Root) {
            for key in keys {
                let defaultText: String
                if key.required != nil {
                    defaultText = "required"
                } else if let text = key.defaultDoc {
                    defaultText = text
                } else if let value = key.render(defaults) {
                    // A plain string without its quotes: `5s`, `info`; lists and numbers as written.
                    let plain = value.hasPrefix("\"") && !value.dropFirst().dropLast().contains(where: { $0 == "\"" || $0 == "\\" })
                    defaultText = "`" + (plain ? String(value.dropFirst().dropLast()) : value) + "`"
                } else {
                    defaultText = key.unsetMeaning ?? "none"
                }
                let cells = ["`\(section) \(key.name)`", key.type, defaultText, key.doc]
                rows.append("| " + cells.map { $0.replacingPipes() }.joined(separator: " | ") + " |")
            }
        }
        let defaults = PaywatchConfiguration()
        for declared in sections {
            add("[\(declared.name)]", declared.keys, defaults: defaults)
        }
        add("[channels.NAME]", Channel.keys, defaults: Channel(name: "NAME"))
        return rows.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// `|` escaped for a Markdown table cell.
    fileprivate func replacingPipes() -> String {
        split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")
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
