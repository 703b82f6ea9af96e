import Foundation
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchDelivery

/// The `smtp` provider through the real libcurl transport against a real SMTP server on
/// 127.0.0.1 (``FakeSMTPServer``): what arrives is parsed back with an independent reader
/// (Foundation's base64, a separate quoted-printable decoder), never compared with the encoder's
/// own output.
@Suite struct SMTPProviderTests {
    /// 2026-11-26T07:22:16Z, a Thursday.
    static let now: Millis = 1_795_677_736_000

    static func provider(_ server: FakeSMTPServer, fromName: String? = "Paywatch Shop", username: String? = nil,
                         password: String? = nil, startTLS: MailEnvelope.StartTLS? = nil) throws -> SMTPProvider {
        try SMTPProvider(url: server.url, from: "shop@shop.example", fromName: fromName, username: username,
                         password: password, startTLS: startTLS, now: { now })
    }

    static func message(to: String = "jane@example.com", key: String = "pw1:A1:unpaid_reminder:1:email",
                        subject: String = "Your order A1 is waiting", text: String = "Please pay 129.00 CNY.",
                        html: String? = "<p>Please pay <b>129.00 CNY</b>.</p>") -> ProviderMessage {
        ProviderMessage(id: 11, key: key, kind: "unpaid_reminder", channel: "email", orderID: "A1", to: to,
                        payload: MessagePayload(subject: subject, text: text, html: html))
    }

    /// Sends one message through a fresh transport and returns the response and the verdict.
    static func send(_ provider: SMTPProvider, _ message: ProviderMessage) async throws -> (HTTPResponse, ProviderVerdict) {
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 10_000)
        defer { transport.shutdown() }
        let request = try provider.request(for: message)
        let response = try #require(await transport.perform([request]).first)
        return (response, provider.verdict(for: response))
    }

    @Test func aMessageArrivesAsMultipartAlternativeWithBothPartsAndItsEnvelope() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        let (response, verdict) = try await Self.send(try Self.provider(server), Self.message())
        #expect(verdict == .delivered)
        #expect(response.status == 250)
        #expect(response.error == nil)
        #expect(response.mail?.repliedTo == .content)
        #expect(response.body.hasPrefix("250 2.0.0"))

        let received = try #require(server.messages().first)
        #expect(server.messages().count == 1)
        #expect(received.mailFrom == "shop@shop.example")
        #expect(received.recipients == ["jane@example.com"])
        #expect(received.authenticatedAs == nil)
        #expect(!server.commands().contains { $0.uppercased().hasPrefix("AUTH") })

        let mail = try ParsedMail(received.data)
        #expect(mail.header("From") == "\"Paywatch Shop\" <shop@shop.example>")
        #expect(mail.header("To") == "jane@example.com")
        #expect(mail.header("Subject") == "Your order A1 is waiting")
        #expect(mail.header("Date") == "Thu, 26 Nov 2026 07:22:16 +0000")
        #expect(mail.header("Message-ID") == "<pw1=3AA1=3Aunpaid_reminder=3A1=3Aemail@shop.example>")
        #expect(mail.header("MIME-Version") == "1.0")
        #expect(mail.header("X-Paywatch-Key") == "pw1:A1:unpaid_reminder:1:email")

        let contentType = try #require(mail.header("Content-Type"))
        #expect(contentType.hasPrefix("multipart/alternative;"))
        let boundary = try #require(contentType.components(separatedBy: "boundary=\"").last?.dropLast())
        let parts = try mail.parts(boundary: String(boundary))
        try #require(parts.count == 2)
        #expect(parts[0].header("Content-Type") == "text/plain; charset=UTF-8")
        #expect(parts[0].header("Content-Transfer-Encoding") == "quoted-printable")
        #expect(parts[0].decodedBody == "Please pay 129.00 CNY.")
        #expect(parts[1].header("Content-Type") == "text/html; charset=UTF-8")
        #expect(parts[1].decodedBody == "<p>Please pay <b>129.00 CNY</b>.</p>")
        // The closing delimiter is there: nothing after the HTML part was lost.
        #expect(received.text.hasSuffix("--\(boundary)--\r\n"))
    }

    @Test func aChineseSubjectAndNameAreEncodedWordsThatDecodeBack() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        let subject = "您的订单 A1 还未付款，请在今天 21:00 之前完成支付，否则订单将被自动取消。谢谢！"
        let (_, verdict) = try await Self.send(try Self.provider(server, fromName: "小店 “北京”"),
                                               Self.message(subject: subject, text: "请付款：¥129.00", html: nil))
        #expect(verdict == .delivered)
        let received = try #require(server.messages().first)
        let mail = try ParsedMail(received.data)

        let rawSubject = try #require(mail.rawHeader("Subject"))
        #expect(rawSubject.contains("=?UTF-8?B?"))
        #expect(rawSubject.contains("\r\n "))  // folded: too long for one line
        #expect(decodeRFC2047(mail.header("Subject") ?? "") == subject)
        #expect(decodeRFC2047(mail.header("From") ?? "") == "小店 “北京” <shop@shop.example>")
        // Every line of the message is within 76 characters, and ends in CRLF.
        for line in received.text.components(separatedBy: "\r\n") {
            #expect(line.count <= 76, "\(line)")
            #expect(!line.contains("\n") && !line.contains("\r"))
        }
        // Without HTML, a single text/plain part in UTF-8.
        #expect(mail.header("Content-Type") == "text/plain; charset=UTF-8")
        #expect(mail.decodedBody == "请付款：¥129.00")
    }

    @Test func linesStartingWithADotAndBareLineFeedsArriveIntact() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        // A lone "." would end the data early if curl did not dot-stuff it.
        let text = "first\n.\n.hidden line\nlast\r\nafter CRLF\rafter CR"
        let (_, verdict) = try await Self.send(try Self.provider(server), Self.message(text: text, html: nil))
        #expect(verdict == .delivered)
        let received = try #require(server.messages().first)
        #expect(received.rawData.containsSubsequence(Array("\r\n..\r\n..hidden line".utf8)))
        let mail = try ParsedMail(received.data)
        #expect(mail.decodedBody == "first\r\n.\r\n.hidden line\r\nlast\r\nafter CRLF\r\nafter CR")
        // No bare LF or CR anywhere.
        let bytes = received.rawData
        for (index, byte) in bytes.enumerated() where byte == 10 { #expect(index > 0 && bytes[index - 1] == 13) }
        for (index, byte) in bytes.enumerated() where byte == 13 { #expect(index + 1 < bytes.count && bytes[index + 1] == 10) }
    }

    @Test func aCRLFInTheSubjectOrNameCreatesNoHeader() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        let subject = "Hello\r\nBcc: victim@example.org\r\n\r\nInjected body"
        let (_, verdict) = try await Self.send(try Self.provider(server, fromName: "Shop\nReply-To: evil@example.org"),
                                               Self.message(subject: subject, html: nil))
        #expect(verdict == .delivered)
        let received = try #require(server.messages().first)
        #expect(received.recipients == ["jane@example.com"])
        let mail = try ParsedMail(received.data)
        #expect(mail.header("Bcc") == nil)
        #expect(mail.header("Reply-To") == nil)
        #expect(mail.header("Subject") == "Hello Bcc: victim@example.org Injected body")
        #expect(mail.header("From") == "\"Shop Reply-To: evil@example.org\" <shop@shop.example>")
        #expect(mail.decodedBody == "Please pay 129.00 CNY.")
        // An address with a line break is refused before any transfer.
        #expect(throws: ProviderError.self) {
            try Self.provider(server).request(for: Self.message(to: "jane@example.com\r\nRCPT TO:<x@example.org>"))
        }
    }

    @Test func credentialsAreSentWithAUTHAndAWrongPasswordIsDeadWithoutLeakingIt() async throws {
        let server = try FakeSMTPServer(credentials: ("shop", "s3cret-pwsecret-pass"))
        defer { server.stop() }
        let (_, verdict) = try await Self.send(try Self.provider(server, username: "shop", password: "s3cret-pwsecret-pass"), Self.message())
        #expect(verdict == .delivered)
        #expect(server.logins() == [.init(mechanism: "PLAIN", username: "shop", password: "s3cret-pwsecret-pass", accepted: true)])
        #expect(server.messages().first?.authenticatedAs == "shop")

        let (response, refused) = try await Self.send(try Self.provider(server, username: "shop", password: "wrong-pwsecret-pass"),
                                                      Self.message())
        #expect(response.status == 535)
        #expect(response.mail?.repliedTo == .auth)
        guard case .dead(let reason, let suppress) = refused else {
            Issue.record("expected dead, got \(refused)")
            return
        }
        #expect(!suppress)
        #expect(reason.hasPrefix("AUTH answered 535"))
        #expect(!reason.contains("wrong-pwsecret-pass") && !(response.error ?? "").contains("wrong-pwsecret-pass"))
        #expect(server.messages().count == 1)

        // Without credentials, the server's 530 to MAIL FROM is dead too: a configuration problem.
        let (_, anonymous) = try await Self.send(try Self.provider(server), Self.message())
        #expect(anonymous == .dead(reason: "MAIL FROM answered 530 5.7.0 Authentication required", suppress: false))
    }

    @Test func aRefusedRecipientIsDeadAndSuppressed() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        server.refuse(recipient: "gone@example.com")
        let (response, verdict) = try await Self.send(try Self.provider(server), Self.message(to: "gone@example.com"))
        #expect(response.status == 550)
        #expect(response.mail?.repliedTo == .recipient)
        #expect(verdict == .dead(reason: "RCPT TO answered 550 5.1.1 No such user here", suppress: true))
        #expect(server.messages().isEmpty)
        #expect(!server.commands().contains("DATA"))
    }

    @Test func a451IsRetriedWhereverItComes() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        server.answerEndOfData(with: "451 4.3.0 Try again later")
        let (response, verdict) = try await Self.send(try Self.provider(server), Self.message())
        #expect(response.status == 451)
        #expect(verdict == .retry(reason: "the message answered 451 4.3.0 Try again later"))
        #expect(server.messages().isEmpty)

        server.refuse(recipient: "greylisted@example.com", with: "451 4.7.1 Greylisted, come back later")
        let (_, greylisted) = try await Self.send(try Self.provider(server), Self.message(to: "greylisted@example.com"))
        #expect(greylisted == .retry(reason: "RCPT TO answered 451 4.7.1 Greylisted, come back later"))
    }

    @Test func requiredSTARTTLSAgainstAServerWithoutItSendsNothingAndIsDead() async throws {
        let server = try FakeSMTPServer(credentials: ("shop", "s3cret-pwsecret-pass"))
        defer { server.stop() }
        let provider = try Self.provider(server, username: "shop", password: "s3cret-pwsecret-pass", startTLS: .required)
        let (response, verdict) = try await Self.send(provider, Self.message())
        #expect(response.mail?.tlsUnavailable == true)
        guard case .dead(let reason, let suppress) = verdict else {
            Issue.record("expected dead, got \(verdict)")
            return
        }
        #expect(!suppress)
        #expect(reason.contains("STARTTLS"))
        // The conversation stopped after EHLO: no password, no envelope, no message.
        #expect(server.commands().allSatisfy { $0.hasPrefix("EHLO") || $0 == "QUIT" }, "\(server.commands())")
        #expect(server.logins().isEmpty)
        #expect(server.messages().isEmpty)
    }

    @Test func aConnectionRefusedIsRetried() async throws {
        // Port 1 on loopback: privileged, so no test's server can hold it, and nothing listens.
        let provider = try SMTPProvider(url: "smtp://127.0.0.1:1", from: "shop@shop.example", now: { Self.now })
        let (response, verdict) = try await Self.send(provider, Self.message())
        #expect(response.status == nil)
        #expect(response.mail?.repliedTo == nil)
        guard case .retry(let reason) = verdict else {
            Issue.record("expected retry, got \(verdict)")
            return
        }
        #expect(reason.hasPrefix("transport error: curl error 7"))
    }

    @Test func oneConnectionCarriesSeveralMessages() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        let provider = try Self.provider(server)
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }
        let requests = try (1...3).map { n in
            var request = try provider.request(for: Self.message(to: "c\(n)@example.com", key: "pw1:A\(n):unpaid_reminder:1:email"))
            request.id = Int64(n)
            return request
        }
        let responses = await transport.perform(requests)
        #expect(responses.map { provider.verdict(for: $0) } == [.delivered, .delivered, .delivered])
        #expect(server.messages().map(\.recipients) == [["c1@example.com"], ["c2@example.com"], ["c3@example.com"]])
        #expect(server.connectionsAccepted == 1)
        let ids = Set(try server.messages().map { try ParsedMail($0.data).header("Message-ID") ?? "" })
        #expect(ids.count == 3)
    }
}

/// The provider's settings and its reading of replies, without a server.
@Suite struct SMTPProviderSettingsTests {
    static func provider(_ url: String, startTLS: MailEnvelope.StartTLS? = nil, username: String? = nil,
                         password: String? = nil) throws(ProviderError) -> SMTPProvider {
        try SMTPProvider(url: url, from: "shop@shop.example", username: username, password: password, startTLS: startTLS,
                         now: { 0 })
    }

    @Test func starttlsDefaultsToRequiredExceptOnLoopback() throws {
        #expect(try Self.provider("smtp://mail.shop.example:587").startTLS == .required)
        #expect(try Self.provider("smtp://127.0.0.1:2525").startTLS == .opportunistic)
        #expect(try Self.provider("smtp://127.8.9.10").startTLS == .opportunistic)
        #expect(try Self.provider("smtp://LOCALHOST:25").startTLS == .opportunistic)
        #expect(try Self.provider("smtp://[::1]:25").startTLS == .opportunistic)
        // Not loopback: 127.0.0.01 is no IPv4 address to inet_pton, a name merely starting with 127 neither.
        #expect(try Self.provider("smtp://127.0.0.01:25").startTLS == .required)
        #expect(try Self.provider("smtp://127.example:25").startTLS == .required)
        // Given, it is kept.
        #expect(try Self.provider("smtp://127.0.0.1:25", startTLS: .required).startTLS == .required)
        #expect(try Self.provider("smtp://mail.shop.example", startTLS: .never).startTLS == .never)
    }

    @Test func badSettingsAreRefused() {
        for url in ["http://mail.shop.example", "smtp://user:pw@mail.shop.example", "smtp://", "smtp://host:0",
                    "smtp://host:99999", "smtp://host:25x", "smtp://mail.shop.example\r\n"] {
            #expect(throws: ProviderError.self, "\(url)") { try Self.provider(url) }
        }
        #expect(throws: ProviderError.self) {
            try SMTPProvider(url: "smtp://mail.shop.example", from: "not an address", now: { 0 })
        }
        #expect(throws: ProviderError("username and password go together")) {
            try Self.provider("smtps://mail.shop.example", username: "shop")
        }
        // A password goes over TLS, or to loopback, only.
        #expect(throws: ProviderError.self) {
            try Self.provider("smtp://mail.shop.example", startTLS: .opportunistic, username: "u", password: "p")
        }
        #expect((try? Self.provider("smtps://mail.shop.example", startTLS: .never, username: "u", password: "p")) != nil)
        #expect((try? Self.provider("smtp://mail.shop.example", username: "u", password: "p")) != nil)
        #expect((try? Self.provider("smtp://127.0.0.1:25", startTLS: .never, username: "u", password: "p")) != nil)
    }

    @Test func anImplausibleAddressIsRefusedWithoutShowingIt() throws {
        let provider = try Self.provider("smtp://mail.shop.example")
        for to in ["", "jane", "jane@localhost", "+8613800000000", "jane doe@example.com", "<jane@example.com>",
                   "jane@example.com>", "jäne@example.com"] {
            #expect(throws: ProviderError.self, "\(to)") {
                try provider.request(for: SMTPProviderTests.message(to: to))
            }
        }
        #expect(throws: ProviderError("not an e-mail address: j***@example.com, SIZE=1")) {
            try provider.request(for: SMTPProviderTests.message(to: "jane@example.com, SIZE=1"))
        }
    }

    @Test func theRequestCarriesTheEnvelopeAndNoHTTP() throws {
        let provider = try SMTPProvider(url: "smtps://mail.shop.example:465", from: "shop@shop.example", username: "shop",
                                        password: "pw", caFile: "/etc/paywatch/ca.pem", now: { 0 })
        let request = try provider.request(for: SMTPProviderTests.message())
        #expect(request.id == 11)
        #expect(request.url == "smtps://mail.shop.example:465")
        #expect(request.caFile == "/etc/paywatch/ca.pem")
        #expect(request.mail == MailEnvelope(from: "shop@shop.example", recipients: ["jane@example.com"], startTLS: .required,
                                             username: "shop", password: "pw"))
        #expect(request.headers.isEmpty)
        // The envelope never prints its password.
        let envelope = try #require(request.mail)
        #expect(!"\(envelope)".contains("pw)") && "\(envelope)".contains("password: set"))
        var dumped = ""
        dump(envelope, to: &dumped)
        #expect(!dumped.contains("\"pw\""))
    }

    @Test func aRecipientRefusalSuppressesOnlyWhenItIsAboutTheAddress() throws {
        let provider = try Self.provider("smtp://mail.shop.example")
        func refused(_ reply: String) -> ProviderVerdict {
            provider.verdict(for: HTTPResponse(id: 1, status: Int(reply.prefix(3)), body: reply, error: "curl error 55: RCPT failed",
                                               mail: MailReply(repliedTo: .recipient)))
        }
        #expect(refused("550 5.1.1 No such user") == .dead(reason: "RCPT TO answered 550 5.1.1 No such user", suppress: true))
        #expect(refused("550 No such user") == .dead(reason: "RCPT TO answered 550 No such user", suppress: true))
        #expect(refused("553-5.1.3 Bad address 553 5.1.3 syntax") == .dead(reason: "RCPT TO answered 553-5.1.3 Bad address 553 5.1.3 syntax", suppress: true))
        #expect(refused("550 5.2.1 Mailbox disabled") == .dead(reason: "RCPT TO answered 550 5.2.1 Mailbox disabled", suppress: true))
        // The relay refusing paywatch is not the customer's fault.
        #expect(refused("554 5.7.1 Relay access denied") == .dead(reason: "RCPT TO answered 554 5.7.1 Relay access denied", suppress: false))
        #expect(refused("452 4.2.2 Mailbox full") == .retry(reason: "RCPT TO answered 452 4.2.2 Mailbox full"))
        // A timeout after a 250 is not a 250.
        let late = HTTPResponse(id: 1, status: 250, error: "curl error 28: Operation timed out", mail: MailReply(repliedTo: .recipient))
        #expect(provider.verdict(for: late) == .retry(reason: "transport error: curl error 28: Operation timed out"))
    }
}
