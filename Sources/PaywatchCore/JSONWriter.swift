/// A minimal JSON object writer: keys in insertion order, strings escaped per RFC 8259.
/// Used for the webhook body, which is built for every message and must be cheap.
public struct JSONObjectWriter: Sendable {
    private var text = "{"
    private var first = true

    public init() {}

    public mutating func add(_ key: String, _ value: String?) {
        guard let value else { return }
        separator(key)
        JSONObjectWriter.appendString(value, to: &text)
    }

    public mutating func add(_ key: String, _ value: Int64?) {
        guard let value else { return }
        separator(key)
        text += String(value)
    }

    public mutating func add(_ key: String, _ value: Int?) {
        add(key, value.map(Int64.init))
    }

    public func finish() -> String { text + "}" }

    private mutating func separator(_ key: String) {
        if !first { text += "," }
        first = false
        JSONObjectWriter.appendString(key, to: &text)
        text += ":"
    }

    public static func appendString(_ value: String, to out: inout String) {
        out += "\""
        // Fast path: most values (ids, amounts, addresses, texts) need no escaping at all.
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out += value
            out += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}
