import Foundation
import Testing

/// A received message split into unfolded headers and a body.
struct ParsedMail {
    var headers: [(name: String, raw: String)]
    var body: String

    init(_ data: [UInt8]) throws {
        try self.init(String(decoding: data, as: UTF8.self))
    }

    init(_ text: String) throws {
        let split = try #require(text.range(of: "\r\n\r\n"))
        body = String(text[split.upperBound...])
        headers = []
        for line in text[..<split.lowerBound].components(separatedBy: "\r\n") {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                let last = try #require(headers.indices.last)
                headers[last].raw += "\r\n" + line
            } else {
                let colon = try #require(line.firstIndex(of: ":"))
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
    }

    /// The header as written, folding included.
    func rawHeader(_ name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.raw
    }

    /// Unfolded (CRLF removed) and trimmed, as RFC 5322 reads it.
    func header(_ name: String) -> String? {
        rawHeader(name).map { $0.replacingOccurrences(of: "\r\n", with: "").trimmingCharacters(in: .whitespaces) }
    }

    /// The body decoded by its Content-Transfer-Encoding, without a final CRLF.
    var decodedBody: String {
        var text = body
        if text.hasSuffix("\r\n") { text.removeLast(1) }  // "\r\n" is one Character
        if header("Content-Transfer-Encoding")?.lowercased() == "quoted-printable" { return decodeQuotedPrintable(text) }
        return text
    }

    /// The parts of a multipart body, checked to open with `--boundary` and close with `--boundary--`.
    func parts(boundary: String) throws -> [ParsedMail] {
        let sections = body.components(separatedBy: "--" + boundary)
        try #require(sections.count >= 3)
        try #require(sections.last?.hasPrefix("--") == true)
        return try sections.dropFirst().dropLast().map { section in
            var part = section
            try #require(part.hasPrefix("\r\n") && part.hasSuffix("\r\n"))
            part.removeFirst()
            part.removeLast()
            return try ParsedMail(part)
        }
    }
}

/// Quoted-printable decoding (RFC 2045 6.7): soft breaks removed, `=XX` to bytes.
func decodeQuotedPrintable(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    var index = 0
    while index < bytes.count {
        if bytes[index] == 61, index + 2 < bytes.count, bytes[index + 1] == 13, bytes[index + 2] == 10 {
            index += 3
        } else if bytes[index] == 61, index + 2 < bytes.count,
                  let value = UInt8(String(decoding: bytes[index + 1...index + 2], as: UTF8.self), radix: 16) {
            out.append(value)
            index += 3
        } else {
            out.append(bytes[index])
            index += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// RFC 2047 decoding of `=?UTF-8?B?…?=` words, unfolding as it goes; whitespace between two
/// encoded-words is dropped.
func decodeRFC2047(_ text: String) -> String {
    var out = ""
    var rest = Substring(text)
    var pendingSpace = ""
    var previousWasEncoded = false
    while !rest.isEmpty {
        if rest.hasPrefix("=?UTF-8?B?"), let end = rest.dropFirst(10).range(of: "?=") {
            let payload = rest[rest.index(rest.startIndex, offsetBy: 10)..<end.lowerBound]
            let decoded = Data(base64Encoded: String(payload)).map { String(decoding: $0, as: UTF8.self) } ?? "<bad base64>"
            out += (previousWasEncoded ? "" : pendingSpace) + decoded
            pendingSpace = ""
            previousWasEncoded = true
            rest = rest[end.upperBound...]
        } else if rest.first == " " {
            pendingSpace += " "
            rest = rest.dropFirst()
        } else if rest.first == "\r\n" {
            rest = rest.dropFirst()  // unfolding
        } else {
            out += pendingSpace + String(rest.first!)
            pendingSpace = ""
            previousWasEncoded = false
            rest = rest.dropFirst()
        }
    }
    return out + pendingSpace
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { self[$0..<$0 + needle.count].elementsEqual(needle) }
    }
}
