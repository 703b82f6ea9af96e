/// Masks personal data before it reaches a log line or a CLI listing.
public enum Redact {
    /// `+8613800000000` → `+86138****0000`: keeps the first 6 and last 4 characters.
    public static func phone(_ phone: String) -> String {
        let bytes = phone.utf8
        if bytes.allSatisfy({ $0 < 0x80 }) {
            // ASCII, as an E.164 number is: no grapheme breaking needed (this runs per log line).
            guard bytes.count > 10 else { return String(decoding: bytes.prefix(3), as: UTF8.self) + "****" }
            return String(decoding: bytes.prefix(6), as: UTF8.self) + "****" + String(decoding: bytes.suffix(4), as: UTF8.self)
        }
        let chars = Array(phone)
        guard chars.count > 10 else { return String(chars.prefix(3)) + "****" }
        return String(chars.prefix(6)) + "****" + String(chars.suffix(4))
    }

    /// `alice@example.com` → `a***@example.com`.
    public static func email(_ email: String) -> String {
        guard let at = email.firstIndex(of: "@"), at > email.startIndex else { return "***" }
        return String(email[email.startIndex]) + "***" + String(email[at...])
    }

    /// A push token is a credential for one device: only its last 4 characters are shown.
    public static func token(_ token: String) -> String {
        "…" + String(token.suffix(4))
    }

    /// Masks an address according to the channel it is for.
    public static func address(_ address: String, channel: String) -> String {
        if address.hasPrefix("+") { return phone(address) }
        if address.contains("@") { return email(address) }
        if channel == "push" { return token(address) }
        return address
    }
}
