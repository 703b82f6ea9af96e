/// Masks personal data before it reaches a log line or a CLI listing.
public enum Redact {
    /// `+14155552671` → `+1*******2671`, `+8613800000000` → `+86*******0000`: the country code
    /// and the last 4 digits, with a fixed-width mask (the length is not shown either). Anything
    /// that is not an E.164 number shows only its last 2 characters.
    public static func phone(_ phone: String) -> String {
        let bytes = Array(phone.utf8)
        guard Validator.isE164(phone) else {
            guard bytes.count > 6, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return "****" }
            return "****" + String(decoding: bytes.suffix(2), as: UTF8.self)
        }
        let digits = bytes.dropFirst()
        let code = countryCodeLength(digits)
        return "+" + String(decoding: digits.prefix(code), as: UTF8.self) + "*******"
            + String(decoding: digits.suffix(4), as: UTF8.self)
    }

    /// Length of the ITU country calling code at the start of `digits`: 1 for 1 (NANP) and 7,
    /// 2 for the two-digit codes, else 3.
    static func countryCodeLength(_ digits: ArraySlice<UInt8>) -> Int {
        guard let first = digits.first else { return 0 }
        let d1 = Int(first) - 48
        if d1 == 1 || d1 == 7 { return 1 }
        guard digits.count >= 2 else { return 1 }
        let two = d1 * 10 + Int(digits[digits.startIndex + 1]) - 48
        let twoDigit: Set<Int> = [
            20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57, 58,
            60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
        ]
        return twoDigit.contains(two) ? 2 : 3
    }

    /// `alice@example.com` → `a***@example.com`.
    public static func email(_ email: String) -> String {
        guard let at = email.lastIndex(of: "@"), at > email.startIndex else { return "***" }
        return Validator.display(String(email[email.startIndex]) + "***" + String(email[at...]), limit: 128)
    }

    /// A push token is a credential for one device: only its last 4 characters are shown.
    public static func token(_ token: String) -> String {
        "…" + Validator.display(String(token.suffix(4)))
    }

    /// `text` (a gateway's error body, say) with every occurrence of the order's addresses
    /// replaced by their masked form: a gateway that echoes the recipient must not put the full
    /// number into the log, `orders show` or an ops message. Phones are also found without
    /// their `+`; e-mail addresses in any letter case.
    public static func scrub(_ text: String, addresses: [String]) -> String {
        var out = text
        for address in addresses where address.utf8.count >= 4 {
            let masked = address.contains("@") ? email(address) : address.hasPrefix("+") ? phone(address) : token(address)
            var forms = [address]
            if address.hasPrefix("+") { forms.append(String(address.dropFirst())) }
            for form in forms where form.utf8.count >= 4 {
                out = replacingCaseInsensitive(form, in: out, with: masked)
            }
        }
        return out
    }

    private static func replacingCaseInsensitive(_ needle: String, in haystack: String, with replacement: String) -> String {
        let lowerHay = Array(haystack.lowercased().utf8)
        let hay = Array(haystack.utf8)
        let target = Array(needle.lowercased().utf8)
        // lowercased() may change byte lengths outside ASCII: then match exactly only.
        guard lowerHay.count == hay.count, !target.isEmpty, target.count <= hay.count else {
            return haystack.replacingAll(needle, with: replacement)
        }
        var out: [UInt8] = []
        out.reserveCapacity(hay.count)
        var index = 0
        let rep = Array(replacement.utf8)
        while index < hay.count {
            if index + target.count <= hay.count, lowerHay[index..<index + target.count].elementsEqual(target) {
                out += rep
                index += target.count
            } else {
                out.append(hay[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Masks an address according to the channel it is for.
    public static func address(_ address: String, channel: String) -> String {
        if address.hasPrefix("+") { return phone(address) }
        if address.contains("@") { return email(address) }
        if channel == "push" { return token(address) }
        return Validator.display(address)
    }
}

extension String {
    /// Every occurrence of `needle` replaced (byte-wise, no Foundation).
    func replacingAll(_ needle: String, with replacement: String) -> String {
        let hay = Array(utf8), target = Array(needle.utf8)
        guard !target.isEmpty, target.count <= hay.count else { return self }
        var out: [UInt8] = []
        var index = 0
        while index < hay.count {
            if index + target.count <= hay.count, hay[index..<index + target.count].elementsEqual(target) {
                out += replacement.utf8
                index += target.count
            } else {
                out.append(hay[index])
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
