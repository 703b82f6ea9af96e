import Foundation
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// An SMTP submission as one transfer of the HTTP transport, against a real SMTP server on
/// 127.0.0.1; no mocks.
@Suite struct MailTransferTests {
    @Test func aMessageIsSubmittedWithItsEnvelopeAndTheLastReplyComesBack() async throws {
        let server = try FakeSMTPServer(credentials: ("relay-user", "relay-pwsecret-pass"))
        defer { server.stop() }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 5_000)
        defer { transport.shutdown() }
        let message = Array("Subject: hi\r\n\r\nbody\r\n".utf8)
        let envelope = MailEnvelope(from: "shop@shop.example", recipients: ["a@example.com", "b@example.com"],
                                    startTLS: .opportunistic, username: "relay-user", password: "relay-pwsecret-pass")
        let responses = await transport.perform([HTTPRequest(id: 5, url: server.url, body: message, mail: envelope)])

        #expect(responses.map(\.id) == [5])
        #expect(responses[0].status == 250)
        #expect(responses[0].error == nil)
        #expect(responses[0].body == "250 2.0.0 Ok: queued")
        #expect(responses[0].mail == MailReply(repliedTo: .content))
        let received = try #require(server.messages().first)
        #expect(received.mailFrom == "shop@shop.example")
        #expect(received.recipients == ["a@example.com", "b@example.com"])
        #expect(received.data == message)
        #expect(received.authenticatedAs == "relay-user")
        // The conversation, in order (the SASL line is base64 of "\0relay-user\0relay-pwsecret-pass").
        let verbs = server.commands().map { $0.prefix { $0 != " " && $0 != ":" } }
        #expect(verbs.prefix(6) == ["EHLO", "AUTH", Substring(Data("\0relay-user\0relay-pwsecret-pass".utf8).base64EncodedString()), "MAIL", "RCPT", "RCPT"], "\(verbs)")
    }

    @Test func aMultiLineReplyReadsAsOneLine() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        server.answerEndOfData(with: "554-5.7.1 Message refused\r\n554-5.7.1 it looks like spam\r\n554 5.7.1 see the policy")
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5_000)
        defer { transport.shutdown() }
        let envelope = MailEnvelope(from: "shop@shop.example", recipients: ["a@example.com"], startTLS: .never)
        let response = try #require(await transport.perform([HTTPRequest(id: 1, url: server.url, body: Array("x\r\n".utf8),
                                                                           mail: envelope)]).first)
        #expect(response.status == 554)
        #expect(response.error != nil)
        #expect(response.body == "554-5.7.1 Message refused 554-5.7.1 it looks like spam 554 5.7.1 see the policy")
        #expect(response.mail == MailReply(repliedTo: .content))
        #expect(server.messages().isEmpty)
    }

    @Test func anHTTPRequestCannotSpeakSMTPNorAMailOneHTTP() async throws {
        let server = try FakeSMTPServer()
        defer { server.stop() }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5_000)
        defer { transport.shutdown() }
        let envelope = MailEnvelope(from: "shop@shop.example", recipients: ["jane@example.com"], startTLS: .never)
        let responses = await transport.perform([
            HTTPRequest(id: 1, url: server.url, body: Array("hello".utf8)),
            HTTPRequest(id: 2, url: "http://127.0.0.1:\(server.port)/", body: Array("hello".utf8), mail: envelope),
            HTTPRequest(id: 3, url: server.url, body: Array("x".utf8),
                        mail: MailEnvelope(from: "shop@shop.example", recipients: ["a@b.example> SIZE=1"], startTLS: .never)),
        ])
        #expect(responses[0].status == nil)
        #expect(responses[0].error?.hasPrefix("curl error 1:") == true)  // CURLE_UNSUPPORTED_PROTOCOL
        #expect(responses[1].error == "invalid request: a mail transfer needs an smtp:// or smtps:// URL")
        #expect(responses[2].error == "invalid request: bad envelope address")
        #expect(server.commands().allSatisfy { !$0.hasPrefix("MAIL") })
    }
}
