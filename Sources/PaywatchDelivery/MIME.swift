import PaywatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One e-mail as it goes over SMTP (RFC 5322 with MIME): built from a ``MessagePayload`` by the
/// `smtp` provider, with nothing read from the clock or the host (the date and the domain are
/// given), so the same input always gives the same bytes.
///
/// Every line ends in CRLF, and none passes 76 characters except a header holding one longer
/// word that cannot be folded (a `Message-ID` from a very long key). Header text outside printable ASCII is
/// written as RFC 2047 encoded-words (`=?UTF-8?B?…?=`); bodies are UTF-8 in quoted-printable,
/// which keeps them 7-bit (no relay has to convert them) and readable in a raw dump. A line
/// starting with a dot is left as it is: curl dot-stuffs the message as SMTP requires.
public struct MailMessage: Sendable, Equatable {
    /// The sender's bare address (validated by the caller: see ``MailAddress``).
    public var from: String
    /// Shown as the sender's name; any text.
    public var fromName: String?
    /// The recipient's bare address (validated by the caller).
    public var to: String
    public var subject: String
    public var text: String
    /// With it, the body is `multipart/alternative` (text first, HTML preferred by readers).
    public var html: String?
    /// The `Date` header, in ms since the epoch (written in UTC).
    public var dateMs: Millis
    /// The idempotency key: `X-Paywatch-Key`, and the source of `Message-ID` and the boundary.
    public var key: String

    public init(from: String, fromName: String? = nil, to: String, subject: String, text: String, html: String? = nil,
                dateMs: Millis, key: String) {
        self.from = from
        self.fromName = fromName
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
        self.dateMs = dateMs
        self.key = key
    }

    /// `<escaped-key@sender's domain>`. The same decision gives the same id, so a message sent
    /// again after a lost `250` looks like the duplicate it is to a receiving system; different
    /// decisions never share one (the escaping is one-to-one).
    public var messageID: String {
        "<\(MIME.atext(key))@\(MailAddress.domain(of: from))>"
    }

    /// The whole message: headers, a blank line, the body.
    public func rendered() -> [UInt8] {
        var out = ""
        var sender = MIME.phraseWords(fromName.map(MIME.headerText) ?? "")
        sender.append("<\(from)>")
        out += MIME.header("From", sender)
        out += MIME.header("To", [to])
        out += MIME.header("Subject", MIME.unstructuredWords(MIME.headerText(subject)))
        out += MIME.header("Date", [MIME.date(dateMs)])
        out += MIME.header("Message-ID", [messageID])
        out += MIME.header("MIME-Version", ["1.0"])
        out += MIME.header("X-Paywatch-Key", MIME.unstructuredWords(MIME.headerText(key)))
        if let html {
            // `=` never appears bare in quoted-printable, so a boundary starting `=_` cannot
            // occur in either part.
            let boundary = "=_paywatch_" + MIME.hex(MIME.fnv1a(key))
            out += MIME.header("Content-Type", ["multipart/alternative;", "boundary=\"\(boundary)\""])
            out += "\r\n"
            out += "--\(boundary)\r\n" + MIME.part("text/plain", text)
            out += "\r\n--\(boundary)\r\n" + MIME.part("text/html", html)
            out += "\r\n--\(boundary)--\r\n"
        } else {
            out += MIME.part("text/plain", text) + "\r\n"
        }
        return Array(out.utf8)
    }
}

/// E-mail addresses as the `smtp` provider accepts them: plain ASCII `local@domain.tld`, nothing
/// that could close `<…>` in the envelope or end a header line. Internationalised addresses
/// (SMTPUTF8) are not taken.
public enum MailAddress {
    public static func isPlausible(_ address: String) -> Bool {
        guard Validator.isEmail(address) else { return false }
        let specials = Set("<>()[]\\,;:\"".utf8)
        return address.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !specials.contains($0) }
    }

    /// What follows the last `@`.
    static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return address }
        return String(address[address.index(after: at)...])
    }
}

/// The encodings behind ``MailMessage``.
enum MIME {
    /// The longest line written, as RFC 2045 and 2047 ask.
    static let lineLimit = 76

    /// Header text as one line: every run of control characters (CR and LF above all, which
    /// would start a header of the sender's choosing) becomes one space.
    static func headerText(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var inControls = false
        for scalar in text.unicodeScalars {
            if Validator.isControl(scalar) {
                if !inControls { out.append(" ") }
                inControls = true
            } else {
                out.append(scalar)
                inControls = false
            }
        }
        return String(out)
    }

    /// `Name: word word…`, folded before a word that would pass the line limit. Unfolding
    /// (removing the CRLFs) gives back the words joined by single spaces.
    static func header(_ name: String, _ words: [String]) -> String {
        var out = name + ":"
        var lineLength = out.count
        for word in words {
            if lineLength + 1 + word.count > lineLimit && lineLength > name.count + 1 {
                out += "\r\n " + word
                lineLength = 1 + word.count
            } else {
                out += " " + word
                lineLength += 1 + word.count
            }
        }
        return out + "\r\n"
    }

    /// An unstructured value (a subject) as words to fold: printable ASCII as it is, split at its
    /// spaces; anything else (non-ASCII, runs of spaces, a long word, text that could read as an
    /// encoded-word) as encoded-words.
    static func unstructuredWords(_ text: String) -> [String] {
        let plain = text.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F } && !text.contains("=?") && !text.contains("  ")
            && !text.hasPrefix(" ") && !text.hasSuffix(" ")
        if plain {
            let words = text.split(separator: " ").map(String.init)
            if words.allSatisfy({ $0.count <= lineLimit - 20 }) { return words }
        }
        return encodedWords(text)
    }

    /// A display name as words: a quoted-string when it is printable ASCII and short, else
    /// encoded-words (RFC 2047 allows them in a phrase). Empty: no words.
    static func phraseWords(_ name: String) -> [String] {
        let trimmed = name.trimmingSpaces
        guard !trimmed.isEmpty else { return [] }
        if trimmed.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) && !trimmed.contains("=?") && trimmed.count <= 40 {
            var quoted = "\""
            for character in trimmed {
                if character == "\"" || character == "\\" { quoted += "\\" }
                quoted.append(character)
            }
            return [quoted + "\""]
        }
        return encodedWords(trimmed)
    }

    /// `=?UTF-8?B?…?=` words of at most 36 bytes each (60 characters with the framing), cut
    /// between characters as RFC 2047 requires, so each decodes on its own. Folded one per line
    /// at worst, no line passes 76 characters (the longest name written, `X-Paywatch-Key`,
    /// leaves exactly 60).
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > 36 {
                words.append("=?UTF-8?B?" + base64(chunk) + "?=")
                chunk.removeAll(keepingCapacity: true)
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + base64(chunk) + "?=") }
        return words
    }

    /// One body part's headers and its text in quoted-printable.
    static func part(_ type: String, _ text: String) -> String {
        "Content-Type: \(type); charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            + quotedPrintable(text)
    }

    /// RFC 2045 quoted-printable: line breaks (LF, CRLF or CR) become CRLF; `=`, controls,
    /// non-ASCII bytes and a space or tab before a line break are escaped; longer lines are cut
    /// with soft breaks (`=` at the end) so that none passes 76 characters.
    static func quotedPrintable(_ text: String) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8)
        var lineLength = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 13 || byte == 10 {
                out += [13, 10]
                lineLength = 0
                index += byte == 13 && index + 1 < bytes.count && bytes[index + 1] == 10 ? 2 : 1
                continue
            }
            let last = index + 1 == bytes.count || bytes[index + 1] == 13 || bytes[index + 1] == 10
            let literal = (byte >= 33 && byte <= 126 && byte != 61) || ((byte == 32 || byte == 9) && !last)
            let token: [UInt8] = literal ? [byte] : [61, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
            // Room is kept for a soft break's `=` unless this token ends the line.
            if lineLength + token.count > (last ? lineLimit : lineLimit - 1) {
                out += [61, 13, 10]
                lineLength = 0
            }
            out += token
            lineLength += token.count
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 5322 date-time in UTC: `Thu, 26 Nov 2026 07:22:16 +0000`.
    static func date(_ ms: Millis) -> String {
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        var time = time_t(ms >= 0 ? ms / 1000 : (ms - 999) / 1000)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }

    /// `text` as RFC 5322 atext, one-to-one: letters, digits and `-_.+` as they are (a dot only
    /// between two kept characters), every other byte as `=XX`.
    static func atext(_ text: String) -> String {
        let bytes = Array(text.utf8)
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for (index, byte) in bytes.enumerated() {
            let alnum = (byte >= 48 && byte <= 57) || (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
            let dotOK = byte == 46 && index > 0 && index < bytes.count - 1 && bytes[index - 1] != 46 && bytes[index + 1] != 46
            if alnum || byte == 45 || byte == 95 || byte == 43 || dotOK {
                out.append(byte)
            } else {
                out += [61, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 15)]]
            }
        }
        return out.isEmpty ? "=" : String(decoding: out, as: UTF8.self)
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = UInt32(bytes[index])
            let b1 = index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0
            let b2 = index + 2 < bytes.count ? UInt32(bytes[index + 2]) : 0
            let triple = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(triple >> 18 & 63)])
            out.append(alphabet[Int(triple >> 12 & 63)])
            out.append(index + 1 < bytes.count ? alphabet[Int(triple >> 6 & 63)] : 61)
            out.append(index + 2 < bytes.count ? alphabet[Int(triple & 63)] : 61)
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// FNV-1a, 64 bits: a boundary that differs from message to message without a random source.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension String {
    /// Without leading and trailing spaces (no Foundation).
    fileprivate var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " { scalars = scalars.dropFirst() }
        while scalars.last == " " { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
