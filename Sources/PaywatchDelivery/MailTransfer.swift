import CCurl

// MARK: - Public value types

/// What makes an ``HTTPRequest`` an SMTP submission: the envelope (which may differ from the
/// message's own `From`/`To` headers, as in any SMTP), the TLS policy and the credentials.
public struct MailEnvelope: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    /// When the connection must be encrypted on an `smtp://` URL. An `smtps://` URL is encrypted
    /// from its first byte whatever this says.
    public enum StartTLS: String, Sendable, CaseIterable {
        /// STARTTLS or nothing: a server that does not offer it gets no message (and no password).
        case required
        /// STARTTLS when the server offers it, else in the clear (a relay on loopback).
        case opportunistic
        /// Never STARTTLS.
        case never
    }

    /// The envelope sender (`MAIL FROM`), a bare address.
    public var from: String
    /// The envelope recipients (`RCPT TO`), bare addresses. Any one refused fails the transfer.
    public var recipients: [String]
    public var startTLS: StartTLS
    /// With both set, curl authenticates (`AUTH`) with whichever mechanism the server offers.
    public var username: String?
    /// Never printed: `description` and `dump` leave it out.
    public var password: String?

    public init(from: String, recipients: [String], startTLS: StartTLS = .required, username: String? = nil,
                password: String? = nil) {
        self.from = from
        self.recipients = recipients
        self.startTLS = startTLS
        self.username = username
        self.password = password
    }

    public var description: String {
        "MailEnvelope(from: \(from), recipients: \(recipients.count), startTLS: \(startTLS.rawValue), "
            + "username: \(username == nil ? "none" : "set"), password: \(password == nil ? "none" : "set"))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["from": from, "recipients": recipients, "startTLS": startTLS,
                                "username": username == nil ? "none" : "set", "password": password == nil ? "none" : "set"])
    }
}

/// How far an SMTP conversation got: the reply code alone cannot tell a refused recipient (the
/// address is bad) from a refused sender or message (the relay's rules), yet only the first may
/// suppress the customer's address.
public struct MailReply: Sendable, Equatable {
    /// The commands of one submission, in the order curl sends them.
    public enum Step: String, Sendable {
        /// No command yet: the server's banner.
        case greeting
        case hello
        case startTLS
        case auth
        case mailFrom
        case recipient
        case data
        /// The message itself, ended by `.`: a 250 here means the server took it.
        case content
    }

    /// The command the server's last reply answered; nil when no reply came at all (the
    /// connection failed, or TLS on `smtps://` did).
    public var repliedTo: Step?
    /// TLS was required and the server did not offer STARTTLS, or refused it: nothing after
    /// EHLO was sent, the password included.
    public var tlsUnavailable: Bool

    public init(repliedTo: Step?, tlsUnavailable: Bool = false) {
        self.repliedTo = repliedTo
        self.tlsUnavailable = tlsUnavailable
    }
}

// MARK: - Internals

/// One SMTP transfer's state on its easy handle, read and written on the worker thread only.
struct MailProgress {
    /// The `RCPT TO` list given to curl; freed when the handle is recycled.
    var recipientList: UnsafeMutablePointer<curl_slist>?
    var bodyCount: Int
    var readOffset = 0
    /// The last command sent.
    var sent: MailReply.Step = .greeting
    /// The command the last complete or partial reply answered.
    var repliedTo: MailReply.Step?
    /// The last reply line was its reply's final one (`250 ok`, not `250-…`).
    var replyDone = true
    /// curl sent QUIT (it does after a refusal): the `221` that follows says nothing about the
    /// message and must not hide the reply that ended it.
    var quitting = false

    func reply(result: CURLcode) -> MailReply {
        MailReply(repliedTo: repliedTo, tlsUnavailable: result == CURLE_USE_SSL_FAILED)
    }

    /// The step a command line begins, recognised by the exact forms curl writes. SASL
    /// continuation lines (base64, no spaces or colons) match none of them and are not
    /// looked at further: credentials are never copied out of curl.
    static func step(ofCommand line: UnsafeBufferPointer<UInt8>) -> MailReply.Step? {
        func starts(_ prefix: String) -> Bool {
            let bytes = prefix.utf8
            return line.count >= bytes.count && zip(line, bytes).allSatisfy { $0 == $1 }
        }
        if starts("EHLO ") || starts("HELO ") { return .hello }
        if starts("STARTTLS\r\n") { return .startTLS }
        if starts("AUTH ") { return .auth }
        if starts("MAIL FROM:") { return .mailFrom }
        if starts("RCPT TO:") { return .recipient }
        if starts("DATA\r\n") { return .data }
        return nil
    }
}

/// Sets the SMTP options for `request`; returns an error text (safe to log) if it cannot be sent.
/// The options common to every transfer (URL, timeouts, error buffer, CA file) are already set.
func configureMail(_ handle: EasyHandle, _ request: HTTPRequest, _ mail: MailEnvelope) -> String? {
    let e = handle.easy
    let opaque = Unmanaged.passUnretained(handle).toOpaque()
    let scheme = request.url.prefix { $0 != ":" }.lowercased()
    guard scheme == "smtp" || scheme == "smtps" else {
        return "invalid request: a mail transfer needs an smtp:// or smtps:// URL"
    }
    guard !mail.recipients.isEmpty else { return "invalid request: no recipient" }
    // An envelope address ends up inside `MAIL FROM:<…>`: a space, bracket or line break would
    // let it say more than an address.
    let unsafeByte: (UInt8) -> Bool = { $0 <= 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") }
    for address in [mail.from] + mail.recipients where address.isEmpty || address.utf8.contains(where: unsafeByte) {
        return "invalid request: bad envelope address"
    }
    for secret in [mail.username, mail.password] {
        if let secret, secret.utf8.contains(0) { return "invalid request: credentials contain a NUL byte" }
    }

    // The message, copied so it outlives the caller's array; fed to curl by the read callback.
    let count = request.body.count
    _ = handle.keep(request.body)
    handle.mail = MailProgress(bodyCount: count)
    var list: UnsafeMutablePointer<curl_slist>?
    for recipient in mail.recipients {
        guard let appended = curl_slist_append(list, "<\(recipient)>") else {
            if let list { curl_slist_free_all(list) }
            return "curl_slist_append failed"
        }
        list = appended
    }
    handle.mail?.recipientList = list

    _ = ccurl_easy_setopt_string(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps")
    _ = ccurl_easy_setopt_string(e, CURLOPT_MAIL_FROM, "<\(mail.from)>")
    _ = ccurl_easy_setopt_pointer(e, CURLOPT_MAIL_RCPT, list)
    _ = ccurl_easy_setopt_long(e, CURLOPT_UPLOAD, 1)
    _ = ccurl_easy_setopt_off_t(e, CURLOPT_INFILESIZE_LARGE, curl_off_t(count))
    _ = ccurl_easy_setopt_callback(e, CURLOPT_READFUNCTION, curlReadCallback)
    _ = ccurl_easy_setopt_pointer(e, CURLOPT_READDATA, opaque)
    let useSSL: curl_usessl
    switch mail.startTLS {
    case .required: useSSL = CURLUSESSL_ALL
    case .opportunistic: useSSL = CURLUSESSL_TRY
    case .never: useSSL = CURLUSESSL_NONE
    }
    _ = ccurl_easy_setopt_long(e, CURLOPT_USE_SSL, Int(useSSL.rawValue))
    if let username = mail.username { _ = ccurl_easy_setopt_string(e, CURLOPT_USERNAME, username) }
    if let password = mail.password { _ = ccurl_easy_setopt_string(e, CURLOPT_PASSWORD, password) }
    // The conversation's lines reach the debug callback only with VERBOSE on; with a callback
    // set, nothing is printed.
    _ = ccurl_easy_setopt_long(e, CURLOPT_VERBOSE, 1)
    _ = ccurl_easy_setopt_debug_callback(e, CURLOPT_DEBUGFUNCTION, curlMailDebugCallback)
    _ = ccurl_easy_setopt_pointer(e, CURLOPT_DEBUGDATA, opaque)
    return nil
}

/// CURLOPT_READFUNCTION: the message bytes, as fast as curl takes them.
private func curlReadCallback(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ nitems: Int,
                              _ userdata: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let userdata else { return 0 }
    let handle = Unmanaged<EasyHandle>.fromOpaque(userdata).takeUnretainedValue()
    guard let body = handle.requestBody, let progress = handle.mail else { return 0 }
    let n = min(size * nitems, progress.bodyCount - progress.readOffset)
    guard n > 0 else { return 0 }
    UnsafeMutableRawPointer(buffer).copyMemory(from: body + progress.readOffset, byteCount: n)
    handle.mail?.readOffset += n
    return n
}

/// CURLOPT_DEBUGFUNCTION for SMTP: follows which command was sent last (commands are
/// `HEADER_OUT`, the message `DATA_OUT`) and keeps the server's last reply (`HEADER_IN`, one
/// line per call) in `responseBody`. Everything else (curl's own notes, TLS records) is ignored.
private func curlMailDebugCallback(_ easy: UnsafeMutableRawPointer?, _ type: curl_infotype, _ data: UnsafeMutablePointer<CChar>?,
                                   _ size: Int, _ userdata: UnsafeMutableRawPointer?) -> Int32 {
    guard let data, let userdata, size > 0 else { return 0 }
    let handle = Unmanaged<EasyHandle>.fromOpaque(userdata).takeUnretainedValue()
    guard var progress = handle.mail else { return 0 }
    data.withMemoryRebound(to: UInt8.self, capacity: size) { base in
        let bytes = UnsafeBufferPointer(start: base, count: size)
        switch type {
        case CURLINFO_HEADER_OUT:
            if let step = MailProgress.step(ofCommand: bytes) { progress.sent = step }
            // curl may QUIT an idle cached connection through this handle, then go on with this
            // transfer's own commands: only the replies in between are ignored.
            progress.quitting = bytes.elementsEqual("QUIT\r\n".utf8)
        case CURLINFO_DATA_OUT:
            if progress.sent == .data { progress.sent = .content }
        case CURLINFO_HEADER_IN where !progress.quitting:
            var line = bytes[...]
            while let last = line.last, last == 10 || last == 13 { line = line.dropLast() }
            // `250-…` continues a reply, `250 …` (or a bare `250`) ends it.
            let final = line.count <= 3 || line[line.startIndex + 3] != UInt8(ascii: "-")
            if progress.replyDone {
                handle.responseBody.removeAll(keepingCapacity: true)
                progress.repliedTo = progress.sent
            } else if handle.responseBody.count < maxCapturedBodyBytes {
                handle.responseBody.append(32)  // a multi-line reply reads as one line
            }
            let room = maxCapturedBodyBytes - handle.responseBody.count
            if room > 0 { handle.responseBody.append(contentsOf: line.prefix(room)) }
            progress.replyDone = final
        default:
            break
        }
    }
    handle.mail = progress
    return 0
}
