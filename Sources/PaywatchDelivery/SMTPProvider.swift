import PaywatchCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `provider = "smtp"`: e-mail through the shop's own relay, over libcurl's SMTP on the same
/// transport (lanes, concurrency, timeouts) as every other provider. Each message is a MIME
/// e-mail (``MailMessage``) submitted with `MAIL FROM` the channel's `from` and `RCPT TO` the
/// customer's address.
///
/// Reading the answer (``verdict(for:)``):
/// - the server took the message (`250` after the data): delivered;
/// - a `5xx` to `RCPT TO`: dead, and the address suppressed, when the reply is about the address
///   (no enhanced status code, or `5.1.x` addressing, or `5.2.1` mailbox disabled). A `5.7.x`
///   (relaying denied, policy) is the relay refusing paywatch, not a bad address: dead only;
/// - any other `5xx` (sender, authentication, the message itself): dead, no suppression;
/// - a `4xx` at any step, or a transport error (refused connection, timeout, TLS failure): retry;
/// - `starttls = "required"` and the server offers no STARTTLS (or refuses it): dead, no
///   suppression, nothing sent after `EHLO`. This is a configuration mismatch (or someone
///   stripping STARTTLS on the way) that no retry will mend: dead at the first message, ops
///   hears of it through `delivery_dead` at once instead of after every message has spent its
///   attempts over the retry window.
public struct SMTPProvider: DeliveryProvider {
    public let name = "smtp"
    /// `smtp://host[:port]` or `smtps://host[:port]` (implicit TLS, port 465 by default).
    public let url: String
    /// The envelope sender and `From` address.
    public let from: String
    /// Shown as the sender's name (`From: "Shop" <shop@example.com>`).
    public let fromName: String?
    /// The policy in force: given, or chosen from the host (see `init`).
    public let startTLS: MailEnvelope.StartTLS
    /// PEM bundle of trusted CAs (`ca_file`); nil: the system's.
    public let caFile: String?
    /// Read from `password_file` at start; never logged.
    let username: String?
    let password: String?
    let now: @Sendable () -> Millis

    /// - Parameters:
    ///   - url: `smtp://host[:port]` or `smtps://host[:port]`; no user or password in it (they
    ///     would be printed wherever the URL is).
    ///   - from: the sender's address; `fromName`, its display name (any text).
    ///   - username, password: both or neither; with them, curl authenticates (`AUTH`). They go
    ///     only over TLS (`smtps://`, or STARTTLS required) or to a loopback host.
    ///   - startTLS: nil means `required`, except on a loopback host (`localhost`, `127.x.x.x`,
    ///     `::1`), where a local relay rarely has a certificate: `opportunistic`.
    ///   - caFile: `ca_file`. Verification stays on either way.
    ///   - now: the wall clock, for the `Date` header (the daemon's clock; a fixed one in tests).
    /// - Throws: ``ProviderError`` naming the setting that is wrong.
    public init(url: String, from: String, fromName: String? = nil, username: String? = nil, password: String? = nil,
                startTLS: MailEnvelope.StartTLS? = nil, caFile: String? = nil,
                now: @escaping @Sendable () -> Millis) throws(ProviderError) {
        guard let target = SMTPURL(url) else {
            throw ProviderError("url must be smtp://host[:port] or smtps://host[:port], without user or password")
        }
        guard MailAddress.isPlausible(from) else { throw ProviderError("from is not an e-mail address") }
        guard (username == nil) == (password == nil) else {
            throw ProviderError("username and password go together")
        }
        let policy = startTLS ?? (target.isLoopback ? .opportunistic : .required)
        if password != nil && !target.implicitTLS && policy != .required && !target.isLoopback {
            throw ProviderError("credentials would be sent in the clear: use smtps:// or starttls = \"required\"")
        }
        self.url = url
        self.from = from
        self.fromName = fromName
        self.startTLS = policy
        self.caFile = caFile
        self.username = username
        self.password = password
        self.now = now
    }

    /// The message as MIME, addressed to `message.to`.
    /// - Throws: ``ProviderError`` when `to` is not a plausible e-mail address: the message is
    ///   dead without a transfer.
    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        guard MailAddress.isPlausible(message.to) else {
            throw ProviderError("not an e-mail address: \(Redact.email(message.to))")
        }
        let mail = MailMessage(from: from, fromName: fromName, to: message.to, subject: message.payload.subject,
                               text: message.payload.text, html: message.payload.html, dateMs: now(), key: message.key)
        let envelope = MailEnvelope(from: from, recipients: [message.to], startTLS: startTLS, username: username,
                                    password: password)
        return HTTPRequest(id: message.id, url: url, body: mail.rendered(), mail: envelope, caFile: caFile)
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        if response.mail?.tlsUnavailable == true {
            return .dead(reason: "starttls = \"required\" but the server offers no STARTTLS (or refused it); "
                + "nothing was sent: use smtps://, or set starttls if the relay is trusted", suppress: false)
        }
        if response.error == nil, let status = response.status, (200...299).contains(status) { return .delivered }
        if let status = response.status, (400...599).contains(status), let step = response.mail?.repliedTo {
            let reply = bodySummary(response.body)
            let reason = "\(step.command) answered \(reply.isEmpty ? String(status) : reply)"
            if status < 500 { return .retry(reason: reason) }
            return .dead(reason: reason, suppress: step == .recipient && Self.isAboutTheAddress(reply))
        }
        return .retry(reason: "transport error: \(response.error ?? "unknown")")
    }

    /// Whether a `5xx` reply to `RCPT TO` blames the address: its enhanced status code (RFC 3463)
    /// is `5.1.x` (bad mailbox, bad domain) or `5.2.1` (mailbox disabled); or there is none (a
    /// server without them) and the reply is a `550`/`551`/`553` whose text does not speak of
    /// relaying, authentication, policy or access (Exim's classic `550 relay not permitted` is the
    /// relay refusing paywatch, not a bad address).
    static func isAboutTheAddress(_ reply: String) -> Bool {
        let afterCode = reply.utf8.dropFirst(4)
        let token = afterCode.prefix { $0 != 32 }
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        let isEnhanced = parts.count == 3 && parts.allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.allSatisfy { $0 >= 48 && $0 <= 57 } }
        guard isEnhanced else {
            let lower = reply.lowercased()
            let aboutUs = ["relay", "auth", "policy", "denied", "access", "spam", "blocked"].contains { lower.contains($0) }
            return ["550", "551", "553"].contains { reply.hasPrefix($0) } && !aboutUs
        }
        let code = String(decoding: token, as: UTF8.self)
        return code.hasPrefix("5.1.") || code == "5.2.1"
    }
}

extension MailReply.Step {
    /// As a reason names it.
    var command: String {
        switch self {
        case .greeting: return "the greeting"
        case .hello: return "EHLO"
        case .startTLS: return "STARTTLS"
        case .auth: return "AUTH"
        case .mailFrom: return "MAIL FROM"
        case .recipient: return "RCPT TO"
        case .data: return "DATA"
        case .content: return "the message"
        }
    }
}

/// The parts of an SMTP URL the provider decides by.
struct SMTPURL {
    var host: String
    var implicitTLS: Bool

    init?(_ url: String) {
        guard url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return nil }
        let lower = url.lowercased()
        let rest: Substring
        if lower.hasPrefix("smtp://") {
            implicitTLS = false
            rest = url.dropFirst(7)
        } else if lower.hasPrefix("smtps://") {
            implicitTLS = true
            rest = url.dropFirst(8)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { return nil }
        var port: Substring
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            port = authority[authority.index(after: close)...]
        } else {
            host = String(authority.prefix { $0 != ":" })
            port = authority.drop { $0 != ":" }
        }
        if port.hasPrefix(":") {
            port = port.dropFirst()
            guard let number = Int(port), (1...65535).contains(number) else { return nil }
        } else if !port.isEmpty {
            return nil
        }
        guard !host.isEmpty else { return nil }
    }

    /// `localhost`, `127.0.0.0/8` or `::1`, read by `inet_pton` (so `127.0.0.01` is no address).
    var isLoopback: Bool {
        if host.lowercased() == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }
}
