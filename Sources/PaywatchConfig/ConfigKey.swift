// The configuration's keys are declared once, as tables (ConfigKeys.swift). A `ConfigKey` says how
// one key is read from the TOML tree and checked, where its value lives in the Swift struct, how
// `check-config` writes it back and how the reference documents it. The reader (ConfigReader.swift),
// `rendered()` and `referenceTable()` (Rendering.swift) walk these tables; nothing else lists keys.

/// One `[section]` of the file and its keys, in the order `check-config` and the reference show them.
struct ConfigSection<Root> {
    /// `"delivery"`
    let name: String
    let keys: [ConfigKey<Root>]

    init(_ name: String, _ keys: [ConfigKey<Root>]) {
        self.name = name
        self.keys = keys
    }
}

/// One key of a section, read into `Root` (``PaywatchConfiguration``, or a
/// ``PaywatchConfiguration/Channel`` for `[channels.NAME]`).
struct ConfigKey<Root> {
    /// `"retry_base"`
    let name: String
    /// For the reference: `"duration"`, `"integer 1 … 4,096"`, …
    let type: String
    /// For the reference: one line saying what the key does.
    let doc: String
    /// Set for a key that must be written; says what it holds (`missing required key (TEXT)`).
    let required: String?
    /// For the reference, when the default is not simply the value `PaywatchConfiguration()` holds.
    let defaultDoc: String?
    /// For an optional value: what not setting it means (`# concurrency is not set: TEXT`).
    let unsetMeaning: String?
    /// Set for a channels list: its names must have `[channels.NAME]` sections (ConfigReader.swift).
    private(set) var channelList: WritableKeyPath<Root, [String]>?
    /// Stores the value of `node` in `root`, or says why it is not accepted.
    let read: (TOMLNode, inout Root) -> ValueProblem?
    /// The value as TOML for `check-config` (URLs masked); nil for an optional value not set.
    let render: (Root) -> String?

    /// A key whose value is always there (the default when not written).
    static func key<Value>(
        _ name: String, _ kind: ValueKind<Value>, _ path: WritableKeyPath<Root, Value>,
        required: String? = nil, default defaultDoc: String? = nil, doc: String
    ) -> ConfigKey {
        ConfigKey(
            name: name, type: kind.type, doc: doc, required: required, defaultDoc: defaultDoc, unsetMeaning: nil,
            channelList: nil, read: { node, root in store(kind.read(node), into: &root, at: path) },
            render: { kind.render($0[keyPath: path]) })
    }

    /// A key that may be left unset (nil); `unset` says what that means, if more than "not set".
    static func optional<Value>(
        _ name: String, _ kind: ValueKind<Value>, _ path: WritableKeyPath<Root, Value?>, unset: String? = nil, doc: String
    ) -> ConfigKey {
        ConfigKey(
            name: name, type: kind.type, doc: doc, required: nil, defaultDoc: nil, unsetMeaning: unset,
            channelList: nil, read: { node, root in store(kind.read(node).map { Optional($0) }, into: &root, at: path) },
            render: { $0[keyPath: path].map(kind.render) })
    }

    /// A `channels` list: every name needs a `[channels.NAME]` section.
    static func channels(
        _ path: WritableKeyPath<Root, [String]>, default defaultDoc: String? = nil, doc: String
    ) -> ConfigKey {
        var list = key("channels", .channelNames, path, default: defaultDoc, doc: doc)
        list.channelList = path
        return list
    }
}

private func store<Root, Value>(
    _ result: Result<Value, ValueProblem>, into root: inout Root, at path: WritableKeyPath<Root, Value>
) -> ValueProblem? {
    switch result {
    case .success(let value):
        root[keyPath: path] = value
        return nil
    case .failure(let problem):
        return problem
    }
}

/// Why a value is not accepted, e.g. `must be at least 1, got 0`; the reader puts file, line and key
/// in front of it.
struct ValueProblem: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}

/// One type of value: its name in the reference, how it is read from the tree and checked, and how
/// it is written as TOML.
struct ValueKind<Value> {
    let type: String
    let read: (TOMLNode) -> Result<Value, ValueProblem>
    let render: (Value) -> String
}

// MARK: - The kinds

enum ListOrder {
    case ascending, descending
}

private let durationHint = "expected a duration string such as \"30m\""

extension ValueKind where Value == Int64 {
    /// A duration string (`"30m"`) held as milliseconds; greater than zero, at most 100 years.
    static var duration: ValueKind {
        ValueKind(type: "duration", read: { durationValue($0, entry: nil) }, render: { tomlQuoted(formatDuration($0)) })
    }

    /// A duration string held as milliseconds, `low` … `high` (both included).
    static func duration(atLeast low: Int64, atMost high: Int64) -> ValueKind {
        ValueKind(
            type: "duration \(formatDuration(low)) … \(formatDuration(high))",
            read: { node in
                durationValue(node, entry: nil).flatMap { ms in
                    if ms < low { return .failure(ValueProblem("must be at least \(formatDuration(low)), got \(tomlQuoted(formatDuration(ms)))")) }
                    if ms > high { return .failure(ValueProblem("must be at most \(formatDuration(high)), got \(tomlQuoted(formatDuration(ms)))")) }
                    return .success(ms)
                }
            },
            render: { tomlQuoted(formatDuration($0)) })
    }
}

/// The most messages a `rate` may name per unit: a million per second is far beyond any provider.
let maxRateCount = 1_000_000

extension ValueKind where Value == PaywatchConfiguration.Rate {
    /// `"N/s"`, `"N/m"` or `"N/h"`: N a whole number 1 … 1,000,000.
    static var rate: ValueKind {
        ValueKind(
            type: "rate `N/s`, `N/m` or `N/h`",
            read: { node in nonEmptyString(node).flatMap(parseRate) },
            render: { tomlQuoted($0.text) })
    }
}

/// Reads `"50/s"`: digits, a slash, one unit.
func parseRate(_ text: String) -> Result<PaywatchConfiguration.Rate, ValueProblem> {
    let hint = "expected a rate such as \"50/s\", \"600/m\" or \"1000/h\""
    let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
        return .failure(ValueProblem("invalid rate \(tomlQuoted(text)): \(hint)"))
    }
    let periods: [Substring: Int64] = ["s": 1_000, "m": 60_000, "h": 3_600_000]
    guard let period = periods[parts[1]] else {
        return .failure(ValueProblem("invalid rate \(tomlQuoted(text)): the unit must be s, m or h (\(hint))"))
    }
    guard parts[0].count <= 7, let count = Int(parts[0]), count <= maxRateCount else {
        return .failure(ValueProblem("rate \(tomlQuoted(text)) is too large: at most \(groupedDigits(maxRateCount)) per unit"))
    }
    guard count >= 1 else {
        return .failure(ValueProblem("rate \(tomlQuoted(text)) sends nothing: at least 1 per unit (remove the key for no limit)"))
    }
    return .success(PaywatchConfiguration.Rate(count: count, periodMs: period))
}

extension ValueKind where Value == [String: Int64] {
    /// A table of names to durations (`[unpaid.hold_by_method]`: `bank_transfer = "3d"`), written
    /// back as an inline table.
    static var durationTable: ValueKind {
        ValueKind(
            type: "table of durations",
            read: { node in
                guard case .table(let entries) = node else {
                    return .failure(ValueProblem("expected a table of durations such as { bank_transfer = \"3d\" }, got \(node.summary)"))
                }
                var result: [String: Int64] = [:]
                for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
                    switch durationValue(value, entry: nil) {
                    case .success(let ms): result[name] = ms
                    case .failure(let problem): return .failure(ValueProblem("\(displayKey(name)): \(problem.message)"))
                    }
                }
                return .success(result)
            },
            render: { table in
                "{" + table.sorted { $0.key < $1.key }
                    .map { " \(displayKey($0.key)) = \(tomlQuoted(formatDuration($0.value)))" }.joined(separator: ",")
                    + (table.isEmpty ? "}" : " }")
            })
    }
}

extension ValueKind where Value == [Int64] {
    /// A list of durations, strictly in `order`, no duplicates.
    static func durations(_ order: ListOrder) -> ValueKind {
        ValueKind(
            type: order == .ascending ? "durations, strictly ascending" : "durations, strictly descending",
            read: { durationList($0, order: order) },
            render: { renderStringArray($0.map(formatDuration)) })
    }
}

extension ValueKind where Value == Int {
    /// An integer ≥ 1.
    static var positiveInt: ValueKind { positiveInt(max: nil) }

    /// An integer 1 … `limit`; `why` says where the limit comes from (in the error).
    static func positiveInt(max limit: Int, because why: String) -> ValueKind { positiveInt(max: (limit, why)) }

    private static func positiveInt(max limit: (value: Int, why: String)?) -> ValueKind {
        ValueKind(
            type: limit.map { "integer 1 … \(groupedDigits($0.value))" } ?? "integer ≥ 1",
            read: { node in
                guard case .integer(let number) = node else {
                    return .failure(ValueProblem("expected an integer, got \(node.summary)"))
                }
                guard number >= 1 else { return .failure(ValueProblem("must be at least 1, got \(number)")) }
                if let limit, number > Int64(limit.value) {
                    return .failure(ValueProblem("must be at most \(limit.value), got \(number) (\(limit.why))"))
                }
                guard let result = Int(exactly: number) else { return .failure(ValueProblem("\(number) is too large")) }
                return .success(result)
            },
            render: { "\($0)" })
    }
}

extension ValueKind where Value == String {
    /// A non-empty string.
    static var string: ValueKind {
        ValueKind(type: "string", read: nonEmptyString, render: tomlQuoted)
    }

    /// A string that is one of `values`; `noun` names it in the error (`unknown log level "x": …`).
    static func oneOf(_ values: [String], unknown noun: String) -> ValueKind {
        let expected: String
        switch values.count {
        case 1: expected = "only \(tomlQuoted(values[0])) is supported"
        case 2: expected = "expected \(tomlQuoted(values[0])) or \(tomlQuoted(values[1]))"
        default: expected = "expected one of " + values.joined(separator: ", ")
        }
        return ValueKind(
            type: "one of " + values.map { "`\($0)`" }.joined(separator: ", "),
            read: { node in
                nonEmptyString(node).flatMap { text in
                    values.contains(text)
                        ? .success(text) : .failure(ValueProblem("unknown \(noun) \(tomlQuoted(text)): \(expected)"))
                }
            },
            render: tomlQuoted)
    }

    /// An `http://` or `https://` URL with a host; shown with its credentials masked.
    static var httpURL: ValueKind {
        ValueKind(
            type: "http(s) URL",
            read: { node in
                nonEmptyString(node).flatMap { text in
                    let lower = text.lowercased()
                    for scheme in ["http://", "https://"] where lower.hasPrefix(scheme) {
                        let host = text.dropFirst(scheme.count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
                        if !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" }) { return .success(text) }
                        return .failure(ValueProblem("the url has no host"))
                    }
                    return .failure(ValueProblem("expected an http:// or https:// url"))
                }
            },
            render: { tomlQuoted(maskURL($0)) })
    }

    /// A `SCHEME://HOST…` URL: which schemes a channel takes depends on its provider, so the reader
    /// checks them (``ConfigReader``); shown with its credentials masked.
    static var endpointURL: ValueKind {
        ValueKind(
            type: "URL",
            read: { node in
                nonEmptyString(node).flatMap { text in
                    guard text.contains("://") else { return .failure(ValueProblem("expected a url such as \"https://host/path\"")) }
                    return urlHost(text) == nil ? .failure(ValueProblem("the url has no host")) : .success(text)
                }
            },
            render: { tomlQuoted(maskURL($0)) })
    }

    /// `HOST:PORT` where HOST is a loopback address (`127.x.x.x`, `::1` written `[::1]`, `localhost`)
    /// and PORT 1 … 65535: the metrics endpoint is never reachable from another machine.
    static var loopbackListen: ValueKind {
        ValueKind(
            type: "loopback `HOST:PORT`",
            read: { node in
                nonEmptyString(node).flatMap { text in
                    switch ListenAddress.parse(text) {
                    case .success: return .success(text)
                    case .failure(let problem): return .failure(ValueProblem(problem.message))
                    }
                }
            },
            render: tomlQuoted)
    }

    /// A `sqlite://` or `postgres://` URL (``storeURLProblem(_:)``); shown with its credentials masked.
    static var storeURL: ValueKind {
        ValueKind(
            type: "`sqlite://` or `postgres://` URL",
            read: { node in
                nonEmptyString(node).flatMap { url in
                    storeURLProblem(url).map { .failure(ValueProblem($0)) } ?? .success(url)
                }
            },
            render: { tomlQuoted(maskURL($0)) })
    }
}

extension ValueKind where Value == PostgresURL.SSLMode {
    /// libpq's `sslmode`, `allow` excepted (``PostgresURL/SSLMode``).
    static var sslMode: ValueKind {
        ValueKind(
            type: "one of " + Value.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "),
            read: { node in
                nonEmptyString(node).flatMap { text in Value.named(text).mapError { ValueProblem($0.message) } }
            },
            render: { tomlQuoted($0.rawValue) })
    }
}

extension ValueKind where Value: RawRepresentable & CaseIterable, Value.RawValue == String {
    /// A string that is one of the enum's raw values.
    static func oneOf(unknown noun: String) -> ValueKind {
        let text = ValueKind<String>.oneOf(Value.allCases.map(\.rawValue), unknown: noun)
        return ValueKind(
            type: text.type,
            read: { node in
                text.read(node).flatMap { raw in
                    Value(rawValue: raw).map { .success($0) } ?? .failure(ValueProblem("unknown \(noun) \(tomlQuoted(raw))"))
                }
            },
            render: { text.render($0.rawValue) })
    }
}

extension ValueKind where Value == String {
    /// A dotted path of JSON object keys (`data.status`): non-empty parts.
    static var fieldPath: ValueKind {
        ValueKind(
            type: "dotted field path",
            read: { node in
                nonEmptyString(node).flatMap { text in
                    text.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty)
                        ? .failure(ValueProblem("expected a field name or a dotted path such as \"data.status\" (no empty parts)"))
                        : .success(text)
                }
            },
            render: tomlQuoted)
    }
}

extension ValueKind where Value == Bool {
    /// `true` or `false`.
    static var boolean: ValueKind {
        ValueKind(type: "boolean", read: { node in
            guard case .boolean(let value) = node else { return .failure(ValueProblem("expected true or false, got \(node.summary)")) }
            return .success(value)
        }, render: { $0 ? "true" : "false" })
    }
}

extension ValueKind where Value == [String] {
    /// A list of non-empty strings, each at most once.
    static var strings: ValueKind {
        ValueKind(type: "strings", read: { node in
            guard case .array(let items) = node else {
                return .failure(ValueProblem("expected a list of strings such as [\"paid\"], got \(node.summary)"))
            }
            var values: [String] = []
            for (offset, item) in items.enumerated() {
                guard case .string(let text) = item, !text.isEmpty else {
                    return .failure(ValueProblem("entry \(offset + 1): expected a non-empty string, got \(item.summary)"))
                }
                guard !values.contains(text) else { return .failure(ValueProblem("\(tomlQuoted(text)) is listed twice")) }
                values.append(text)
            }
            return .success(values)
        }, render: renderStringArray)
    }

    /// Channel names, each at most once (whether each has a section is checked by the reader).
    static var channelNames: ValueKind {
        ValueKind(type: "channel names", read: channelNameList, render: renderStringArray)
    }
}

// MARK: - Reading values

private func nonEmptyString(_ node: TOMLNode) -> Result<String, ValueProblem> {
    guard case .string(let text) = node else { return .failure(ValueProblem("expected a string, got \(node.summary)")) }
    guard !text.isEmpty else { return .failure(ValueProblem("must not be empty")) }
    return .success(text)
}

private func durationValue(_ node: TOMLNode, entry: Int?) -> Result<Int64, ValueProblem> {
    let prefix = entry.map { "entry \($0): " } ?? ""
    guard case .string(let text) = node else {
        return .failure(ValueProblem(prefix + "\(durationHint), got \(node.summary)"))
    }
    return parseBoundedDuration(text).mapError { ValueProblem(prefix + $0.description) }
}

private func durationList(_ node: TOMLNode, order: ListOrder) -> Result<[Int64], ValueProblem> {
    guard case .array(let items) = node else {
        let example = order == .ascending ? "[\"10m\", \"25m\"]" : "[\"3d\", \"1d\"]"
        return .failure(ValueProblem("expected a list of duration strings such as \(example), got \(node.summary)"))
    }
    var result: [Int64] = []
    var texts: [String] = []
    for (offset, item) in items.enumerated() {
        let ms: Int64
        switch durationValue(item, entry: offset + 1) {
        case .success(let value): ms = value
        case .failure(let problem): return .failure(problem)
        }
        guard case .string(let text) = item else { return .failure(ValueProblem("entry \(offset + 1): not a string")) }
        if let previous = result.last {
            if let same = result.firstIndex(of: ms) {
                let original = texts[same]
                return .failure(ValueProblem(original == text
                    ? "duplicate entry \(tomlQuoted(text))"
                    : "duplicate entry \(tomlQuoted(text)) (the same as \(tomlQuoted(original)))"))
            }
            let inOrder = order == .ascending ? ms > previous : ms < previous
            if !inOrder {
                let word = order == .ascending ? "ascending (shortest first)" : "descending (longest before the due date first)"
                return .failure(ValueProblem(
                    "must be in \(word) order: \(tomlQuoted(text)) comes after \(tomlQuoted(texts[texts.count - 1]))"))
            }
        }
        result.append(ms)
        texts.append(text)
    }
    return .success(result)
}

private func channelNameList(_ node: TOMLNode) -> Result<[String], ValueProblem> {
    guard case .array(let items) = node else {
        return .failure(ValueProblem("expected a list of channel names such as [\"sms\", \"email\"], got \(node.summary)"))
    }
    var names: [String] = []
    for (offset, item) in items.enumerated() {
        guard case .string(let name) = item else {
            return .failure(ValueProblem("entry \(offset + 1): expected a channel name string, got \(item.summary)"))
        }
        guard !name.isEmpty else { return .failure(ValueProblem("entry \(offset + 1): the channel name is empty")) }
        guard !names.contains(name) else { return .failure(ValueProblem("channel \(tomlQuoted(name)) is listed twice")) }
        names.append(name)
    }
    return .success(names)
}

/// `4096` → `"4,096"`
private func groupedDigits(_ number: Int) -> String {
    var digits = Array(String(number))
    var index = digits.count - 3
    while index > 0 {
        digits.insert(",", at: index)
        index -= 3
    }
    return String(digits)
}
