/// Reads the stored form ``MessagePayload/encoded()`` writes, byte by byte: every attempt of every
/// message decodes its payload, and Foundation's JSONSerialization (boxing each value) cost the
/// delivery loop about a fifth of its CPU. It reads standard JSON strings (every escape, surrogate
/// pairs) and integers, in the object shape of version 1; anything else is nil, and
/// ``MessagePayload/decode(_:)`` tries the general reader.
struct PayloadReader {
    private let bytes: [UInt8]
    private var at = 0

    init(_ text: String) {
        bytes = Array(text.utf8)
    }

    static func read(_ text: String) -> MessagePayload? {
        var reader = PayloadReader(text)
        return reader.payload()
    }

    private mutating func payload() -> MessagePayload? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var version: Int64?
        var subject: String?
        var text: String?
        var html: String?
        var facts: [MessagePayload.Fact]?
        repeat {
            guard let key = string(), take(UInt8(ascii: ":")) else { return nil }
            switch key {
            case "v": version = integer()
            case "subject": subject = string()
            case "text": text = string()
            case "html": html = string()
            case "facts": facts = factList()
            default: return nil
            }
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")), skipSpaces() == nil, version == 1, let subject, let text, let facts else { return nil }
        return MessagePayload(subject: subject, text: text, html: html, facts: facts)
    }

    private mutating func factList() -> [MessagePayload.Fact]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var facts: [MessagePayload.Fact] = []
        if take(UInt8(ascii: "]")) { return facts }
        repeat {
            guard take(UInt8(ascii: "[")), let name = string(), take(UInt8(ascii: ",")) else { return nil }
            let value: MessagePayload.Value
            if skipSpaces() == UInt8(ascii: "\"") {
                guard let text = string() else { return nil }
                value = .text(text)
            } else {
                guard let number = integer() else { return nil }
                value = .number(number)
            }
            guard take(UInt8(ascii: "]")) else { return nil }
            facts.append(MessagePayload.Fact(name, value))
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? facts : nil
    }

    /// The next byte after spaces, not consumed; nil at the end.
    private mutating func skipSpaces() -> UInt8? {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        return at < bytes.count ? bytes[at] : nil
    }

    private mutating func take(_ byte: UInt8) -> Bool {
        guard skipSpaces() == byte else { return false }
        at += 1
        return true
    }

    private mutating func integer() -> Int64? {
        guard skipSpaces() != nil else { return nil }
        let negative = bytes[at] == UInt8(ascii: "-")
        if negative { at += 1 }
        let start = at
        var magnitude: UInt64 = 0
        while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 {
            let (times, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(bytes[at] - 0x30))
            guard !o1, !o2 else { return nil }
            magnitude = sum
            at += 1
        }
        guard at > start else { return nil }
        // A fraction or an exponent is no integer: leave it to the general reader.
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") || bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
            return nil
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    private mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while at < bytes.count {
            let byte = bytes[at]
            at += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard at < bytes.count else { return nil }
                let escape = bytes[at]
                at += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by its low one.
                        guard at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else { return nil }
                        at += 2
                        guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        return nil
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default: return nil
                }
            default:
                guard byte >= 0x20 else { return nil }  // a control character must be escaped
                out.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard at + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[at]
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            at += 1
        }
        return value
    }
}
