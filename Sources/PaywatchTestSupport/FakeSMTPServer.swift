import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real SMTP server on 127.0.0.1 (RFC 5321: EHLO, HELO, AUTH PLAIN and LOGIN, MAIL, RCPT,
/// DATA, RSET, NOOP, QUIT), so the `smtp` provider is tested through libcurl's real SMTP
/// client, with nothing installed beside the test binary.
///
/// It records every accepted message (envelope and data, with and without dot-stuffing) and
/// every command line. It can refuse a recipient or answer the end of the data with any reply
/// (`550`, `451`). Without `tls` it never offers STARTTLS, so a client that requires it must stop
/// after EHLO; with `tls` it offers STARTTLS and performs it (a fresh EHLO, no authentication
/// carried over, RFC 3207), or, with `implicitTLS`, speaks TLS from the first byte (`smtps://`).
/// Every byte it received in the clear is kept (``clearTextReceived()``): what an eavesdropper saw.
/// One thread per connection; several transactions per connection, as curl reuses connections.
/// Call `stop()` when done.
public final class FakeSMTPServer: @unchecked Sendable {
    /// A message the server accepted.
    public struct Message: Sendable {
        /// `MAIL FROM:<…>`, without the brackets.
        public var mailFrom: String
        /// Every accepted `RCPT TO:<…>`, without the brackets.
        public var recipients: [String]
        /// The message as the client meant it: dot-stuffing undone, the final `.` line left out.
        public var data: [UInt8]
        /// The data as it came over the wire (dot-stuffed), the final `.` line left out.
        public var rawData: [UInt8]
        /// The user the session authenticated as, if it did.
        public var authenticatedAs: String?
        /// 1-based id of the TCP connection.
        public var connectionID: Int
        /// The message came over TLS.
        public var overTLS: Bool

        public var text: String { String(decoding: data, as: UTF8.self) }
    }

    /// One `AUTH` attempt, as the server decoded it.
    public struct Login: Sendable, Equatable {
        public var mechanism: String
        public var username: String
        public var password: String
        public var accepted: Bool
        /// The credentials came over TLS.
        public var overTLS: Bool

        public init(mechanism: String, username: String, password: String, accepted: Bool, overTLS: Bool = false) {
            self.mechanism = mechanism
            self.username = username
            self.password = password
            self.accepted = accepted
            self.overTLS = overTLS
        }
    }

    private let credentials: (username: String, password: String)?
    private let listener: LoopbackListener
    /// Bound TCP port.
    public let port: Int
    /// Set when the server offers STARTTLS, or speaks TLS from the start (`implicitTLS`).
    public let tls: TLSServerContext?
    public let implicitTLS: Bool

    // Guarded by `cond`.
    private let cond = NSCondition()
    private var recorded: [Message] = []
    private var commandLog: [String] = []
    private var loginLog: [Login] = []
    private var recipientReplies: [String: String] = [:]
    private var endOfDataReply = "250 2.0.0 Ok: queued"
    private var clearText: [UInt8] = []

    /// Binds 127.0.0.1 and starts serving.
    /// - Parameters:
    ///   - credentials: when set, EHLO offers `AUTH PLAIN LOGIN`, these are the only ones
    ///     accepted, and `MAIL` needs a successful `AUTH` first (`530`).
    ///   - port: TCP port, 0 for an ephemeral one.
    ///   - tls: the certificate to offer STARTTLS with (EHLO lists it until TLS is on).
    ///   - implicitTLS: with `tls`, every connection starts with the handshake (`smtps://`) and
    ///     STARTTLS is not offered.
    /// - Throws: ``FakeGatewayError`` when the socket cannot be bound.
    public init(credentials: (username: String, password: String)? = nil, port requestedPort: Int = 0,
                tls: TLSServerContext? = nil, implicitTLS: Bool = false) throws {
        self.credentials = credentials
        self.tls = tls
        self.implicitTLS = implicitTLS && tls != nil
        listener = try LoopbackListener(port: requestedPort) { FakeGatewayError(description: $0) }
        port = listener.port
        listener.start(name: "fake-smtp") { [self] fd, connectionID in
            var session = Session(connection: LoopbackConnection(fd: fd), connectionID: connectionID)
            if self.implicitTLS, let tls, !session.connection.startTLS(tls) { return }
            serve(&session)
        }
    }

    deinit {
        stop()
    }

    /// `"smtp://127.0.0.1:PORT"`, or `"smtps://…"` with implicit TLS.
    public var url: String { "\(implicitTLS ? "smtps" : "smtp")://127.0.0.1:\(port)" }

    /// `RCPT TO:<address>` (any letter case) is answered with `reply` (a whole reply line, such as
    /// `550 5.1.1 No such user here` or `451 4.3.0 Try again later`) instead of `250`.
    public func refuse(recipient address: String, with reply: String = "550 5.1.1 No such user here") {
        cond.lock()
        recipientReplies[address.lowercased()] = reply
        cond.unlock()
    }

    /// The end of the data (the `.` line) is answered with `reply`; a message is recorded only
    /// when it starts with `2`. Default: `250 2.0.0 Ok: queued`.
    public func answerEndOfData(with reply: String) {
        cond.lock()
        endOfDataReply = reply
        cond.unlock()
    }

    /// Accepted messages in arrival order.
    public func messages() -> [Message] {
        cond.lock()
        defer { cond.unlock() }
        return recorded
    }

    /// Every line received outside the data, in order (SASL lines as sent: base64).
    public func commands() -> [String] {
        cond.lock()
        defer { cond.unlock() }
        return commandLog
    }

    /// Every byte received outside TLS, on every connection, in arrival order (connections
    /// interleaved): what the wire showed anyone listening.
    public func clearTextReceived() -> String {
        cond.lock()
        defer { cond.unlock() }
        return String(decoding: clearText, as: UTF8.self)
    }

    /// Every `AUTH` attempt, decoded.
    public func logins() -> [Login] {
        cond.lock()
        defer { cond.unlock() }
        return loginLog
    }

    /// TCP connections accepted so far.
    public var connectionsAccepted: Int { listener.connectionsAccepted }

    /// Closes the listening socket and all connections and waits for every server thread to
    /// exit. Idempotent.
    public func stop() {
        listener.stop()
    }

    // MARK: - Conversation

    /// One connection's state.
    private struct Session {
        let connection: LoopbackConnection
        let connectionID: Int
        var input: [UInt8] = []
        var authenticatedAs: String?
        var mailFrom: String?
        var recipients: [String] = []
        /// Bytes received in the clear, not yet handed to the server's log.
        var clearText: [UInt8] = []

        init(connection: LoopbackConnection, connectionID: Int) {
            self.connection = connection
            self.connectionID = connectionID
        }

        /// The next line without its CRLF; nil when the peer closed or the line is absurdly long.
        mutating func readLine() -> [UInt8]? {
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            while true {
                if let lf = input.firstIndex(of: 10) {
                    var line = Array(input[..<lf])
                    input.removeSubrange(...lf)
                    if line.last == 13 { line.removeLast() }
                    return line
                }
                guard input.count < 1_000_000 else { return nil }
                let n = connection.receive(into: &chunk)
                if n <= 0 { return nil }
                input.append(contentsOf: chunk[0..<n])
                if !connection.isEncrypted { clearText.append(contentsOf: chunk[0..<n]) }
            }
        }

        func reply(_ text: String) -> Bool {
            connection.send(Array((text + "\r\n").utf8))
        }
    }

    private func log(_ line: [UInt8], _ session: inout Session) {
        cond.lock()
        commandLog.append(String(decoding: line, as: UTF8.self))
        cond.unlock()
        flushClearText(&session)
    }

    private func flushClearText(_ session: inout Session) {
        guard !session.clearText.isEmpty else { return }
        cond.lock()
        clearText += session.clearText
        cond.unlock()
        session.clearText.removeAll()
    }

    /// Runs the conversation until QUIT, the peer closing, or `stop()`.
    private func serve(_ session: inout Session) {
        defer { flushClearText(&session) }
        guard session.reply("220 127.0.0.1 paywatch test ESMTP") else { return }
        while let line = session.readLine() {
            log(line, &session)
            let text = String(decoding: line, as: UTF8.self)
            let verb = text.prefix { $0 != " " }.uppercased()
            let argument = String(text.dropFirst(verb.count).drop { $0 == " " })
            var keepGoing = true
            switch verb {
            case "EHLO":
                session.mailFrom = nil
                session.recipients = []
                var lines = ["250-127.0.0.1", "250-8BITMIME", "250-SIZE 10485760"]
                if tls != nil && !session.connection.isEncrypted { lines.append("250-STARTTLS") }
                if credentials != nil { lines.append("250-AUTH PLAIN LOGIN") }
                lines.append("250 ENHANCEDSTATUSCODES")
                keepGoing = session.reply(lines.joined(separator: "\r\n"))
            case "HELO":
                keepGoing = session.reply("250 127.0.0.1")
            case "AUTH":
                keepGoing = authenticate(&session, argument)
            case "MAIL":
                if credentials != nil && session.authenticatedAs == nil {
                    keepGoing = session.reply("530 5.7.0 Authentication required")
                } else if let address = Self.address(after: "FROM:", in: argument) {
                    session.mailFrom = address
                    session.recipients = []
                    keepGoing = session.reply("250 2.1.0 Ok")
                } else {
                    keepGoing = session.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                }
            case "RCPT":
                if session.mailFrom == nil {
                    keepGoing = session.reply("503 5.5.1 Error: need MAIL command")
                } else if let address = Self.address(after: "TO:", in: argument) {
                    cond.lock()
                    let refusal = recipientReplies[address.lowercased()]
                    cond.unlock()
                    if let refusal {
                        keepGoing = session.reply(refusal)
                    } else {
                        session.recipients.append(address)
                        keepGoing = session.reply("250 2.1.5 Ok")
                    }
                } else {
                    keepGoing = session.reply("501 5.5.4 Syntax: RCPT TO:<address>")
                }
            case "DATA":
                if session.recipients.isEmpty {
                    keepGoing = session.reply("554 5.5.1 Error: no valid recipients")
                } else {
                    keepGoing = receiveData(&session)
                }
            case "RSET":
                session.mailFrom = nil
                session.recipients = []
                keepGoing = session.reply("250 2.0.0 Ok")
            case "STARTTLS" where tls != nil && !session.connection.isEncrypted:
                guard let tls, session.reply("220 2.0.0 Ready to start TLS") else { return }
                // Anything sent after STARTTLS in the same packet was injected in the clear: dropped.
                session.input.removeAll()
                guard session.connection.startTLS(tls) else { return }
                session.authenticatedAs = nil
                session.mailFrom = nil
                session.recipients = []
            case "NOOP":
                keepGoing = session.reply("250 2.0.0 Ok")
            case "QUIT":
                _ = session.reply("221 2.0.0 Bye")
                return
            default:
                // STARTTLS included when not offered (no `tls`, or TLS already on).
                keepGoing = session.reply("502 5.5.2 Error: command not recognized")
            }
            if !keepGoing { return }
        }
    }

    /// `354`, then lines up to the lone `.`; the reply set by `answerEndOfData`.
    private func receiveData(_ session: inout Session) -> Bool {
        guard session.reply("354 End data with <CR><LF>.<CR><LF>") else { return false }
        var raw: [UInt8] = []
        var data: [UInt8] = []
        while true {
            guard let line = session.readLine() else { return false }
            if line == [46] { break }
            raw += line + [13, 10]
            data += (line.first == 46 ? Array(line.dropFirst()) : line) + [13, 10]
        }
        cond.lock()
        let answer = endOfDataReply
        if answer.hasPrefix("2"), let from = session.mailFrom {
            recorded.append(Message(mailFrom: from, recipients: session.recipients, data: data, rawData: raw,
                                    authenticatedAs: session.authenticatedAs, connectionID: session.connectionID,
                                    overTLS: session.connection.isEncrypted))
        }
        cond.unlock()
        session.mailFrom = nil
        session.recipients = []
        return session.reply(answer)
    }

    /// AUTH PLAIN (`\0user\0password`, with or without an initial response) and AUTH LOGIN.
    private func authenticate(_ session: inout Session, _ argument: String) -> Bool {
        guard let credentials else { return session.reply("502 5.5.2 Error: authentication not enabled") }
        let parts = argument.split(separator: " ", maxSplits: 1).map(String.init)
        let mechanism = parts.first?.uppercased() ?? ""
        func ask(_ prompt: String) -> [UInt8]? {
            guard session.reply("334 " + prompt), let line = session.readLine() else { return nil }
            log(line, &session)
            return Data(base64Encoded: Data(line)).map { Array($0) }
        }
        var username: String
        var password: String
        switch mechanism {
        case "PLAIN":
            let initial = parts.count > 1 ? Data(base64Encoded: parts[1]).map { Array($0) } : ask("")
            guard let initial else { return session.reply("501 5.5.2 Cannot decode response") }
            let fields = initial.split(separator: 0, omittingEmptySubsequences: false)
            guard fields.count == 3 else { return session.reply("501 5.5.2 Malformed PLAIN response") }
            username = String(decoding: fields[1], as: UTF8.self)
            password = String(decoding: fields[2], as: UTF8.self)
        case "LOGIN":
            let user = parts.count > 1 ? Data(base64Encoded: parts[1]).map { Array($0) } : ask("VXNlcm5hbWU6")
            guard let user, let pass = ask("UGFzc3dvcmQ6") else { return session.reply("501 5.5.2 Cannot decode response") }
            username = String(decoding: user, as: UTF8.self)
            password = String(decoding: pass, as: UTF8.self)
        default:
            return session.reply("504 5.5.4 Unrecognized authentication type")
        }
        let ok = username == credentials.username && password == credentials.password
        cond.lock()
        loginLog.append(Login(mechanism: mechanism, username: username, password: password, accepted: ok,
                              overTLS: session.connection.isEncrypted))
        cond.unlock()
        if ok { session.authenticatedAs = username }
        return session.reply(ok ? "235 2.7.0 Authentication successful" : "535 5.7.8 Authentication credentials invalid")
    }

    /// The address in `FROM:<a@b> SIZE=…` (after `prefix`, brackets removed).
    private static func address(after prefix: String, in argument: String) -> String? {
        guard argument.uppercased().hasPrefix(prefix) else { return nil }
        let rest = argument.dropFirst(prefix.count).drop { $0 == " " }
        guard rest.hasPrefix("<"), let close = rest.firstIndex(of: ">") else { return nil }
        return String(rest[rest.index(after: rest.startIndex)..<close])
    }
}
