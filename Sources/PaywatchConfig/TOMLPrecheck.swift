// A pre-check of the configuration text, in Swift, before TOMLKit sees it.
//
// toml++ (the C++ parser under TOMLKit 0.6.0) keeps `TOML_ASSERT_ASSUME`s that abort the process
// (or, with NDEBUG, are undefined behaviour) on some small malformed inputs, all found by fuzzing or
// by reading its parser (toml.hpp, toml++ 3.x):
//
// 1. `parse_key` from `parse_table_header`: the first character after `[` / `[[` (and spaces) is
//    neither a bare-key character nor a quote (`[.`, `[\u{1}`, `[` + newline, `[[[`, `[é]`).
// 2. `parse_value` from `parse_array`: an element position holding `}` or a Unicode line break
//    (U+0085, U+2028, U+2029), which toml++ counts as a value terminator but does not skip
//    (`7=[}`).
// 3. `parse_value`'s scan for a date-time with a space: `YYYY-MM-DD`, a space, one digit and then
//    a value terminator (`a = 1979-05-27 0` + newline).
// 4. The same scan stepping back further than its 127-character history: a date padded with `_`
//    to about 125 characters, then a space and a digit.
// 5. `parse_time` from `parse_date_time`: `YYYY-MM-DDT` not followed by a digit (`1979-05-27T:00`).
//
// The pre-check walks the text like toml++ does (statements, keys, table headers, basic and
// literal strings, multi-line strings, comments, arrays and inline tables with an explicit stack)
// and rejects exactly those shapes, all of which are invalid TOML. Where the text is invalid in any
// other way, it stops and leaves the error to toml++ (which stops at its first error too). It is
// linear-time, and it rejects arrays and inline tables nested more than ``maximumNesting`` deep
// (toml++ allows 256 through recursion; the configuration never needs more than a few).

/// A problem found by ``tomlPrecheck(_:)``: 1-based line and column (in Unicode scalars) and a message.
struct TOMLPrecheckFailure: Equatable, Sendable {
    var line: Int
    var column: Int
    var message: String
}

/// How deep arrays and inline tables may nest (toml++'s own limit is 256).
let maximumNesting = 64

/// Returns the first shape in `text` that would make toml++ abort, or `nil` (which does not mean
/// the text is valid TOML: toml++ still reports every other error).
func tomlPrecheck(_ text: String) -> TOMLPrecheckFailure? {
    var lexer = PrecheckLexer(Array(text.unicodeScalars.lazy.map(\.value)))
    switch lexer.run() {
    case .reject(let at, let message):
        return lexer.failure(at: at, message: message)
    case .done, .leaveToParser:
        return nil
    }
}

private enum Outcome {
    /// No assert shape; toml++ decides.
    case done
    /// The text is invalid here in a way toml++ reports as an error (it stops before any later shape).
    case leaveToParser
    /// An assert shape at this index.
    case reject(Int, String)
}

private struct PrecheckLexer {
    let s: [UInt32]
    var i = 0

    /// Where the text starts: after a UTF-8 byte order mark, which toml++ skips.
    let start: Int

    init(_ s: [UInt32]) {
        self.s = s
        start = s.first == 0xFEFF ? 1 : 0
        i = start
    }

    private enum Frame {
        case array(afterValue: Bool, afterComma: Bool)
        case inlineTable(afterPair: Bool, afterComma: Bool)
    }

    func failure(at index: Int, message: String) -> TOMLPrecheckFailure {
        var line = 1
        var lineStart = start
        var k = start
        while k < index && k < s.count {
            if s[k] == 0x0A {
                line += 1
                lineStart = k + 1
            }
            k += 1
        }
        return TOMLPrecheckFailure(line: line, column: index - lineStart + 1, message: message)
    }

    // MARK: character classes (as in toml.hpp)

    static func isBareKey(_ c: UInt32) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }
    static func isQuote(_ c: UInt32) -> Bool { c == 0x22 || c == 0x27 }
    static func isDigit(_ c: UInt32) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isNonASCIIHorizontalWhitespace(_ c: UInt32) -> Bool {
        c == 0xA0 || c == 0x1680 || c == 0x180E || (c >= 0x2000 && c <= 0x200B) || c == 0x202F
            || c == 0x205F || c == 0x2060 || c == 0x3000 || c == 0xFEFF
    }
    static func isNonASCIIVerticalWhitespace(_ c: UInt32) -> Bool { c == 0x85 || c == 0x2028 || c == 0x2029 }
    static func isWhitespace(_ c: UInt32) -> Bool {
        c == 0x20 || c == 0x09 || (c >= 0x0A && c <= 0x0D) || isNonASCIIHorizontalWhitespace(c)
            || isNonASCIIVerticalWhitespace(c)
    }
    static func isValueTerminator(_ c: UInt32) -> Bool {
        isWhitespace(c) || c == 0x5D || c == 0x7D || c == 0x2C || c == 0x23
    }

    var atEnd: Bool { i >= s.count }
    var current: UInt32 { s[i] }
    func peek(_ offset: Int) -> UInt32? { i + offset < s.count ? s[i + offset] : nil }

    /// Spaces and tabs; `false` if a non-ASCII horizontal space follows (toml++ reports that).
    mutating func skipSpaces() -> Bool {
        while !atEnd {
            let c = current
            if c == 0x20 || c == 0x09 {
                i += 1
            } else if Self.isNonASCIIHorizontalWhitespace(c) {
                return false
            } else {
                break
            }
        }
        return true
    }

    /// A line break (`\n` or `\r\n`) → true; `nil` for a bad one (toml++ reports it); false if none.
    mutating func skipLineBreak() -> Bool? {
        guard !atEnd else { return false }
        switch current {
        case 0x0A:
            i += 1
            return true
        case 0x0D:
            guard peek(1) == 0x0A else { return nil }
            i += 2
            return true
        case 0x0B, 0x0C:
            return nil
        default:
            return false
        }
    }

    /// A comment up to (not including) its line break.
    mutating func skipComment() -> Bool {
        guard !atEnd, current == 0x23 else { return false }
        while !atEnd && current != 0x0A && current != 0x0D { i += 1 }
        return true
    }

    /// Spaces, tabs, line breaks and comments (between array elements, or statements).
    /// `false` if toml++ reports an error there.
    mutating func skipBlank() -> Bool {
        while true {
            guard skipSpaces() else { return false }
            guard let lineBreak = skipLineBreak() else { return false }
            if lineBreak { continue }
            if skipComment() { continue }
            return true
        }
    }

    /// After a statement: spaces, then end, a comment or a line break. `false`: toml++ reports an error.
    mutating func endOfStatement() -> Bool {
        guard skipSpaces() else { return false }
        if atEnd { return true }
        if skipComment() { return true }
        return skipLineBreak() == true
    }

    /// A string starting at the quote under the cursor; `false` if toml++ reports an error in it.
    /// `multiLine` tells whether it was a `"""` / `'''` string.
    mutating func skipString(multiLine: inout Bool) -> Bool {
        let quote = current
        let literal = quote == 0x27
        multiLine = peek(1) == quote && peek(2) == quote
        if !multiLine {
            if peek(1) == quote {  // ""
                i += 2
                return true
            }
            i += 1
            while !atEnd {
                let c = current
                if c == quote {
                    i += 1
                    return true
                }
                if c == 0x0A || c == 0x0D { return false }
                if !literal && c == 0x5C {  // backslash: skip the escaped character
                    i += 2
                    continue
                }
                i += 1
            }
            return false
        }
        i += 3
        while !atEnd {
            let c = current
            if c == quote {
                var run = 0
                while run < 5 && peek(run) == quote { run += 1 }
                i += run
                if run >= 3 { return true }
                continue
            }
            if !literal && c == 0x5C {
                i += 2
                continue
            }
            i += 1
        }
        return false
    }

    /// A key (bare, quoted, dotted). `false` if toml++ reports an error in it.
    mutating func skipKey() -> Bool {
        while true {
            guard !atEnd else { return false }
            let c = current
            if Self.isBareKey(c) {
                while !atEnd && Self.isBareKey(current) { i += 1 }
            } else if Self.isQuote(c) {
                var multiLine = false
                guard skipString(multiLine: &multiLine), !multiLine else { return false }
            } else {
                return false
            }
            guard skipSpaces() else { return false }
            if atEnd || current != 0x2E { return true }
            i += 1
            guard skipSpaces(), !atEnd else { return false }
        }
    }

    /// A table header at the `[` under the cursor (start of a statement).
    mutating func tableHeader() -> Outcome? {
        i += 1
        let before = i
        guard skipSpaces(), !atEnd else { return .leaveToParser }
        if current == 0x5B {
            if i != before { return .leaveToParser }  // "[ [" is an error in toml++
            i += 1
            guard skipSpaces(), !atEnd else { return .leaveToParser }
        }
        let c = current
        if c == 0x5D { return .leaveToParser }  // "[]": an error in toml++
        if !Self.isBareKey(c) && !Self.isQuote(c) {
            return .reject(i, "a table header must start with a key name or a quoted key, not \(describe(c))")
        }
        guard skipKey() else { return .leaveToParser }
        return nil
    }

    /// The rest of a table header after its key: `]` or `]]`, then the end of the statement.
    mutating func tableHeaderEnd(array: Bool) -> Bool {
        guard !atEnd, current == 0x5D else { return false }
        i += 1
        if array {
            guard !atEnd, current == 0x5D else { return false }
            i += 1
        }
        return endOfStatement()
    }

    /// A scalar value (not a string, array or inline table) starting under the cursor.
    mutating func scalar() -> Outcome? {
        let start = i
        while !atEnd && !Self.isValueTerminator(current) { i += 1 }
        let token = s[start..<i]
        guard let first = token.first, Self.isDigit(first) else { return nil }
        // 5. "YYYY-MM-DDT" must be followed by a digit (toml++ asserts in parse_time otherwise).
        if token.count >= 11 {
            let t = Array(token.prefix(12))
            let dateShape = [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy { Self.isDigit(t[$0]) } && t[4] == 0x2D && t[7] == 0x2D
            if dateShape && (t[10] == 0x54 || t[10] == 0x74) && (t.count < 12 || !Self.isDigit(t[11])) {
                return .reject(start + 11, "a date-time needs a time (HH:MM:SS) right after its 'T'")
            }
        }
        // 3. and 4.: a date (10 characters besides '_') followed by a space and a digit is read as a
        // date-time with a space by toml++.
        let significant = token.filter { $0 != 0x5F }
        if significant.count == 10 && significant[significant.startIndex + 4] == 0x2D
            && significant[significant.startIndex + 7] == 0x2D && peek(0) == 0x20, let digit = peek(1),
            Self.isDigit(digit)
        {
            if significant.count != token.count {
                return .reject(start, "a date may not contain '_'")
            }
            if let after = peek(2), Self.isValueTerminator(after) {
                return .reject(i + 2, "a date-time needs a time (HH:MM:SS) after the space")
            }
            // the time part belongs to the same value
            i += 1
            while !atEnd && !Self.isValueTerminator(current) { i += 1 }
        }
        return nil
    }

    func describe(_ c: UInt32) -> String {
        switch c {
        case 0x0A: return "a line break"
        case 0x0D: return "a carriage return"
        case 0x09: return "a tab"
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(UInt8(c))))'"
        default: return "U+" + String(String(c, radix: 16, uppercase: true).paddedLeft(to: 4))
        }
    }

    mutating func run() -> Outcome {
        var stack: [Frame] = []
        // At the top of the loop: either at the start of a statement (stack empty, `needValue` false),
        // or where a value must start (`needValue`), or inside the innermost frame.
        var needValue = false
        while true {
            if needValue {
                needValue = false
                guard !atEnd else { return .leaveToParser }
                let c = current
                if c < 0x20 || c == 0x7F || c == 0x5F { return .leaveToParser }  // toml++: an error
                if Self.isQuote(c) {
                    var multiLine = false
                    guard skipString(multiLine: &multiLine) else { return .leaveToParser }
                } else if c == 0x5B || c == 0x7B {
                    if stack.count >= maximumNesting {
                        return .reject(i, "arrays and inline tables are nested more than \(maximumNesting) deep")
                    }
                    i += 1
                    stack.append(c == 0x5B ? .array(afterValue: false, afterComma: false) : .inlineTable(afterPair: false, afterComma: false))
                    continue
                } else if let outcome = scalar() {
                    return outcome
                }
                // a complete value
                if stack.isEmpty {
                    guard endOfStatement() else { return .leaveToParser }
                }
                continue
            }
            guard let frame = stack.last else {
                // start of a statement
                guard skipBlank() else { return .leaveToParser }
                if atEnd { return .done }
                let c = current
                if c == 0x5B {
                    let array = peek(1) == 0x5B
                    if let outcome = tableHeader() { return outcome }
                    guard tableHeaderEnd(array: array) else { return .leaveToParser }
                } else if Self.isBareKey(c) || Self.isQuote(c) {
                    guard keyAndEquals() else { return .leaveToParser }
                    needValue = true
                } else {
                    return .leaveToParser
                }
                continue
            }
            switch frame {
            case .array(let afterValue, _):
                guard skipBlank(), !atEnd else { return .leaveToParser }
                let c = current
                if c == 0x2C {
                    guard afterValue else { return .leaveToParser }  // toml++: "expected value or closing ']'"
                    i += 1
                    stack[stack.count - 1] = .array(afterValue: false, afterComma: true)
                } else if c == 0x5D {
                    i += 1
                    stack.removeLast()
                    if stack.isEmpty { guard endOfStatement() else { return .leaveToParser } }
                } else {
                    guard !afterValue else { return .leaveToParser }  // toml++: "expected comma"
                    if c == 0x7D {
                        return .reject(i, "an array element is missing before '}'")
                    }
                    if Self.isNonASCIIVerticalWhitespace(c) {
                        return .reject(i, "an array element is missing before \(describe(c)) (a Unicode line break)")
                    }
                    stack[stack.count - 1] = .array(afterValue: true, afterComma: false)
                    needValue = true
                }
            case .inlineTable(let afterPair, let afterComma):
                guard skipSpaces(), !atEnd else { return .leaveToParser }
                let c = current
                if c == 0x2C {
                    guard afterPair else { return .leaveToParser }
                    i += 1
                    stack[stack.count - 1] = .inlineTable(afterPair: false, afterComma: true)
                } else if c == 0x7D {
                    guard !afterComma else { return .leaveToParser }  // toml++: dangling comma
                    i += 1
                    stack.removeLast()
                    if stack.isEmpty { guard endOfStatement() else { return .leaveToParser } }
                } else if Self.isBareKey(c) || Self.isQuote(c) {
                    guard !afterPair, keyAndEquals() else { return .leaveToParser }
                    stack[stack.count - 1] = .inlineTable(afterPair: true, afterComma: false)
                    needValue = true
                } else {
                    return .leaveToParser
                }
            }
        }
    }

    /// `key =` and the spaces after it, leaving the cursor where the value must start.
    /// `false` if toml++ reports an error (including a value position holding a value terminator).
    mutating func keyAndEquals() -> Bool {
        guard skipKey(), !atEnd, current == 0x3D else { return false }
        i += 1
        guard skipSpaces(), !atEnd, !Self.isValueTerminator(current) else { return false }
        return true
    }
}

extension String {
    fileprivate func paddedLeft(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
