// TOMLKit (toml++) does not expose source positions of keys, so this small scanner walks the raw
// text once and remembers the line where each key path is first written: table headers
// (`[channels.sms]` → ["channels", "sms"]), keys under them, dotted keys (`sms.url = …` under
// `[channels]`) and keys inside inline tables. It only runs on text TOMLKit has already accepted,
// so it is lenient and never fails; it skips strings (including multi-line ones), arrays and comments.

/// Maps key paths to the 1-based line where they first appear in a TOML document.
struct KeyLocator: Sendable {
    private(set) var lines: [[String]: Int] = [:]

    init(_ text: String) {
        var scanner = LocatorScanner(bytes: Array(text.utf8))
        scanner.run()
        self.lines = scanner.lines
    }

    /// The line of `path`, e.g. `["unpaid", "hold"]` or `["channels", "sms"]`.
    func line(of path: [String]) -> Int? {
        lines[path]
    }
}

private struct LocatorScanner {
    let bytes: [UInt8]
    var index = 0
    var line = 1
    var lines: [[String]: Int] = [:]

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private static let quote = UInt8(ascii: "\"")
    private static let apostrophe = UInt8(ascii: "'")
    private static let backslash = UInt8(ascii: "\\")
    private static let newline = UInt8(ascii: "\n")

    private func peek(_ offset: Int = 0) -> UInt8? {
        let at = index + offset
        return at < bytes.count ? bytes[at] : nil
    }

    private mutating func record(_ path: [String], line: Int) {
        guard !path.isEmpty else { return }
        for length in 1...path.count {
            let prefix = Array(path.prefix(length))
            if lines[prefix] == nil { lines[prefix] = line }
        }
    }

    mutating func run() {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        var current: [String] = []
        while true {
            skipTrivia(newlines: true)
            guard let byte = peek() else { return }
            let startLine = line
            if byte == UInt8(ascii: "[") {
                let arrayOfTables = peek(1) == UInt8(ascii: "[")
                index += arrayOfTables ? 2 : 1
                skipTrivia(newlines: false)
                let path = parseKeyPath()
                current = path
                record(path, line: startLine)
                skipRestOfLine()
            } else {
                let keyPath = parseKeyPath()
                guard !keyPath.isEmpty else {
                    skipRestOfLine()
                    continue
                }
                skipTrivia(newlines: false)
                if peek() == UInt8(ascii: "=") { index += 1 }
                let full = current + keyPath
                record(full, line: startLine)
                parseValue(base: full)
            }
        }
    }

    /// Skips spaces, tabs, carriage returns and comments; newlines too if asked.
    private mutating func skipTrivia(newlines: Bool) {
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                index += 1
            case Self.newline:
                guard newlines else { return }
                line += 1
                index += 1
            case UInt8(ascii: "#"):
                while let c = peek(), c != Self.newline { index += 1 }
            default:
                return
            }
        }
    }

    private mutating func skipRestOfLine() {
        while let c = peek(), c != Self.newline { index += 1 }
    }

    private static func isBareKeyByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Parses `a.b."c d".'e'`; returns [] if no key starts here.
    private mutating func parseKeyPath() -> [String] {
        var path: [String] = []
        while true {
            skipTrivia(newlines: false)
            guard let byte = peek() else { return path }
            if byte == Self.quote {
                index += 1
                path.append(parseBasicStringBody())
            } else if byte == Self.apostrophe {
                index += 1
                let start = index
                while let c = peek(), c != Self.apostrophe, c != Self.newline { index += 1 }
                path.append(String(decoding: bytes[start..<index], as: UTF8.self))
                if peek() == Self.apostrophe { index += 1 }
            } else if Self.isBareKeyByte(byte) {
                let start = index
                while let c = peek(), Self.isBareKeyByte(c) { index += 1 }
                path.append(String(decoding: bytes[start..<index], as: UTF8.self))
            } else {
                return path
            }
            skipTrivia(newlines: false)
            if peek() == UInt8(ascii: ".") {
                index += 1
            } else {
                return path
            }
        }
    }

    /// Reads a single-line basic string after its opening quote, decoding escapes; consumes the closing quote.
    private mutating func parseBasicStringBody() -> String {
        var scalars = String.UnicodeScalarView()
        var raw: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while let byte = peek(), byte != Self.newline {
            index += 1
            if byte == Self.quote { break }
            guard byte == Self.backslash, let escaped = peek() else {
                raw.append(byte)
                continue
            }
            index += 1
            flush()
            switch escaped {
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "e"): scalars.append("\u{1B}")
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let width = escaped == UInt8(ascii: "u") ? 4 : 8
                let end = min(index + width, bytes.count)
                let hex = String(decoding: bytes[index..<end], as: UTF8.self)
                index = end
                if let value = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(value) {
                    scalars.append(scalar)
                }
            default:
                raw.append(escaped)
            }
        }
        flush()
        return String(scalars)
    }

    /// Skips one value; records keys of inline tables under `base` (nil inside arrays).
    private mutating func parseValue(base: [String]?) {
        skipTrivia(newlines: false)
        guard let byte = peek() else { return }
        switch byte {
        case Self.quote, Self.apostrophe:
            if peek(1) == byte, peek(2) == byte {
                index += 3
                skipMultilineString(delimiter: byte)
            } else {
                index += 1
                if byte == Self.quote {
                    _ = parseBasicStringBody()
                } else {
                    while let c = peek(), c != Self.newline {
                        index += 1
                        if c == Self.apostrophe { break }
                    }
                }
            }
        case UInt8(ascii: "["):
            index += 1
            while true {
                skipTrivia(newlines: true)
                guard let c = peek() else { return }
                if c == UInt8(ascii: "]") { index += 1; return }
                if c == UInt8(ascii: ",") { index += 1; continue }
                let before = index
                parseValue(base: nil)
                if index == before { index += 1 }
            }
        case UInt8(ascii: "{"):
            index += 1
            while true {
                skipTrivia(newlines: true)
                guard let c = peek() else { return }
                if c == UInt8(ascii: "}") { index += 1; return }
                if c == UInt8(ascii: ",") { index += 1; continue }
                let keyLine = line
                let keyPath = parseKeyPath()
                if keyPath.isEmpty { index += 1; continue }
                skipTrivia(newlines: false)
                if peek() == UInt8(ascii: "=") { index += 1 }
                let full = base.map { $0 + keyPath }
                if let full { record(full, line: keyLine) }
                let before = index
                parseValue(base: full)
                if index == before, let c = peek(), c != UInt8(ascii: "}"), c != UInt8(ascii: ",") { index += 1 }
            }
        default:
            // number, boolean, date: runs to a separator
            while let c = peek() {
                switch c {
                case UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}"), UInt8(ascii: "#"), Self.newline:
                    return
                default:
                    index += 1
                }
            }
        }
    }

    private mutating func skipMultilineString(delimiter: UInt8) {
        while let c = peek() {
            if c == Self.newline {
                line += 1
                index += 1
            } else if c == Self.backslash, delimiter == Self.quote {
                index += 1
                if peek() == Self.newline { line += 1 }
                if peek() != nil { index += 1 }
            } else if c == delimiter, peek(1) == delimiter, peek(2) == delimiter {
                index += 3
                // up to two more delimiter characters belong to the content: """a"""""
                var extra = 0
                while extra < 2, peek() == delimiter {
                    index += 1
                    extra += 1
                }
                return
            } else {
                index += 1
            }
        }
    }
}
