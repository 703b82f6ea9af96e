import TOMLKit

// TOML text → a plain Swift tree (TOMLNode) and the line of every key (KeyLocator.swift). Nothing
// past this file sees TOMLKit.

/// A parsed TOML document: its root table and where each key is written.
struct TOMLDocument: Sendable {
    var root: [String: TOMLNode]
    var locator: KeyLocator

    /// Parses `text` (already checked for NUL characters). A syntax error is a ``ConfigError`` with
    /// the line and column; `fileName` is only used in errors.
    init(parsing text: String, fileName: String) throws(ConfigError) {
        // toml++ aborts the process on a few malformed shapes (TOMLPrecheck.swift): refuse them first.
        if let problem = tomlPrecheck(text) {
            throw ConfigError(
                file: fileName, line: problem.line, key: "",
                message: "invalid TOML at column \(problem.column): \(problem.message)"
            )
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw ConfigError(
                file: fileName, line: position.line > 0 ? position.line : nil, key: "",
                message: "invalid TOML at column \(position.column): \(error.description)"
            )
        } catch {
            throw ConfigError(file: fileName, line: nil, key: "", message: "invalid TOML: \(error)")
        }
        root = TOMLNode(table).tableValue ?? [:]
        locator = KeyLocator(text)
    }
}

/// A plain Swift copy of the TOMLKit tree.
indirect enum TOMLNode: Sendable {
    case table([String: TOMLNode])
    case array([TOMLNode])
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    /// dates and times, with their TOML text
    case other(kind: String, text: String)

    init(_ value: any TOMLValueConvertible) {
        switch value.type {
        case .table:
            var entries: [String: TOMLNode] = [:]
            if let table = value.table {
                for (key, child) in table { entries[key] = TOMLNode(child) }
            }
            self = .table(entries)
        case .array:
            var items: [TOMLNode] = []
            if let array = value.array {
                for child in array { items.append(TOMLNode(child)) }
            }
            self = .array(items)
        case .string: self = .string(value.string ?? "")
        case .int: self = .integer(Int64(value.int ?? 0))
        case .double: self = .float(value.double ?? 0)
        case .bool: self = .boolean(value.bool ?? false)
        case .date: self = .other(kind: "date", text: value.debugDescription)
        case .time: self = .other(kind: "time", text: value.debugDescription)
        case .dateTime: self = .other(kind: "date-time", text: value.debugDescription)
        }
    }

    var tableValue: [String: TOMLNode]? {
        if case .table(let entries) = self { return entries }
        return nil
    }

    /// "integer 30", "string \"30\"", "an array", … for "expected …, got …" messages.
    var summary: String {
        switch self {
        case .table: return "a table"
        case .array: return "an array"
        case .string(let text):
            let shown = text.count > 60 ? String(text.prefix(57)) + "..." : text
            return "string " + tomlQuoted(shown)
        case .integer(let value): return "integer \(value)"
        case .float(let value): return "floating-point number \(value)"
        case .boolean(let value): return "boolean \(value)"
        case .other(let kind, let text): return "\(kind) \(text)"
        }
    }
}

// MARK: - Names as TOML writes them

/// Whether a TOML key can be written bare.
func isBareKey(_ key: String) -> Bool {
    !key.isEmpty && key.utf8.allSatisfy {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
    }
}

func displayKey(_ key: String) -> String {
    isBareKey(key) ? key : tomlQuoted(key)
}

/// `[unpaid]`, `[channels.sms]`
func displaySection(_ path: [String]) -> String {
    "[" + path.map(displayKey).joined(separator: ".") + "]"
}
