import _CryptoExtras
import Foundation
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchDelivery

/// Real TLS on loopback: libcurl (OpenSSL) against the fakes' OpenSSL servers, whose certificates a
/// private CA made at test setup signs (``TestPKI``). Verification is always on: a server is
/// trusted through `ca_file`, or not at all.
@Suite struct TLSTests {
    static let password = "smtp-pwsecret-7d1f"

    static func smtp(_ server: FakeSMTPServer, caFile: String?, startTLS: MailEnvelope.StartTLS? = .required,
                     credentials: Bool = true) throws -> SMTPProvider {
        try SMTPProvider(url: server.url, from: "shop@shop.example", username: credentials ? "shop" : nil,
                         password: credentials ? password : nil, startTLS: startTLS, caFile: caFile, now: { SMTPProviderTests.now })
    }

    static func send(_ provider: any DeliveryProvider, _ message: ProviderMessage) async throws -> (HTTPResponse, ProviderVerdict) {
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }
        let response = try #require(await transport.perform([try provider.request(for: message)]).first)
        return (response, provider.verdict(for: response))
    }

    static func webhook(_ gateway: FakeGateway, caFile: String?) -> (WebhookProvider, ProviderMessage) {
        (WebhookProvider(url: gateway.baseURL + "/hook", token: "hook-pwsecret-3c9a"),
         ProviderMessage(id: 5, key: "pw1:A1:unpaid_reminder:1:sms", kind: "unpaid_reminder", channel: "sms", orderID: "A1",
                         to: "+8613800138000", payload: MessagePayload(subject: "s", text: "t")))
    }

    // MARK: SMTP

    @Test func smtpsDeliversOverImplicitTLSWithNothingInTheClear() async throws {
        let pki = try TestPKI.shared()
        let tls = try pki.serverContext()
        let server = try FakeSMTPServer(credentials: ("shop", Self.password), tls: tls, implicitTLS: true)
        defer { server.stop() }
        #expect(server.url.hasPrefix("smtps://"))
        let (response, verdict) = try await Self.send(try Self.smtp(server, caFile: pki.caFile), SMTPProviderTests.message())
        #expect(verdict == .delivered, "\(response.error ?? "")")
        let received = try #require(server.messages().first)
        #expect(received.overTLS)
        #expect(received.authenticatedAs == "shop")
        #expect(server.logins().map(\.overTLS) == [true])
        #expect(server.clearTextReceived().isEmpty)
        #expect(tls.handshakes == 1)
    }

    @Test func startTLSRequiredAuthenticatesOnlyAfterTheHandshake() async throws {
        let pki = try TestPKI.shared()
        let tls = try pki.serverContext()
        let server = try FakeSMTPServer(credentials: ("shop", Self.password), tls: tls)
        defer { server.stop() }
        let (response, verdict) = try await Self.send(try Self.smtp(server, caFile: pki.caFile), SMTPProviderTests.message())
        #expect(verdict == .delivered, "\(response.error ?? "")")
        #expect(tls.handshakes == 1)
        let received = try #require(server.messages().first)
        #expect(received.overTLS)
        #expect(received.authenticatedAs == "shop")
        let logins = server.logins()
        #expect(!logins.isEmpty && logins.allSatisfy { $0.overTLS && $0.accepted })

        // What crossed the wire in the clear: the greeting's EHLO and STARTTLS, nothing more.
        let clear = server.clearTextReceived()
        #expect(clear.hasPrefix("EHLO "))
        #expect(clear.hasSuffix("STARTTLS\r\n"))
        #expect(!clear.uppercased().contains("AUTH"))
        #expect(!clear.contains("MAIL FROM"))
        #expect(!clear.contains(Self.password))
        let plain = Data("\0shop\0\(Self.password)".utf8).base64EncodedString()
        #expect(!clear.contains(plain) && !clear.contains(Data(Self.password.utf8).base64EncodedString()))
    }

    @Test func withoutTheCAFileTheRelayIsRefusedAndTheMessageRetried() async throws {
        let pki = try TestPKI.shared()
        let cases: [(caFile: String?, implicit: Bool)] = [(nil, false), (nil, true), (pki.otherCAFile, false), (pki.otherCAFile, true)]
        for (caFile, implicit) in cases {
            let tls = try pki.serverContext()
            let server = try FakeSMTPServer(credentials: ("shop", Self.password), tls: tls, implicitTLS: implicit)
            defer { server.stop() }
            let (response, verdict) = try await Self.send(try Self.smtp(server, caFile: caFile), SMTPProviderTests.message())
            #expect(outcome(verdict) == "retry", "\(server.url) ca_file \(caFile ?? "none")")
            #expect(reason(verdict).hasPrefix("transport error: TLS verification failed, certificate refused"))
            #expect(reason(verdict).contains("ca_file"))
            #expect(response.mail?.tlsUnavailable == false)
            #expect(server.messages().isEmpty)
            #expect(server.logins().isEmpty)
            #expect(tls.handshakes == 0)
            #expect(!server.clearTextReceived().uppercased().contains("AUTH"))
        }
    }

    @Test func aRelayWhoseCertificateNamesAnotherHostIsRefused() async throws {
        let pki = try TestPKI.shared()
        let server = try FakeSMTPServer(credentials: ("shop", Self.password), tls: try pki.serverContext(wrongHost: true),
                                        implicitTLS: true)
        defer { server.stop() }
        let (_, verdict) = try await Self.send(try Self.smtp(server, caFile: pki.caFile), SMTPProviderTests.message())
        #expect(outcome(verdict) == "retry")
        #expect(reason(verdict).contains("TLS verification failed"))
        #expect(reason(verdict).contains("127.0.0.1"))
        #expect(server.messages().isEmpty && server.logins().isEmpty)
    }

    // MARK: HTTPS

    @Test func httpsWithTheCAFileIsDeliveredOverOneKeptAliveConnection() async throws {
        let pki = try TestPKI.shared()
        let tls = try pki.serverContext()
        let gateway = try FakeGateway(tls: tls)
        defer { gateway.stop() }
        #expect(gateway.baseURL.hasPrefix("https://127.0.0.1:"))
        let (provider, message) = Self.webhook(gateway, caFile: pki.caFile)
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }
        var request = try provider.request(for: message)
        request.caFile = pki.caFile
        let responses = await transport.perform([request, request, request])
        #expect(responses.map { provider.verdict(for: $0) } == [.delivered, .delivered, .delivered])
        #expect(gateway.requestCount == 3)
        #expect(gateway.connectionsAccepted == 1)
        #expect(tls.handshakes == 1)
        #expect(gateway.requests().first?.headers["authorization"] == "Bearer hook-pwsecret-3c9a")
    }

    @Test func httpsWithoutTheCAFileOrWithAnotherCAIsRefusedAndRetried() async throws {
        let pki = try TestPKI.shared()
        let tls = try pki.serverContext()
        let gateway = try FakeGateway(tls: tls)
        defer { gateway.stop() }
        let caFiles: [String?] = [nil, pki.otherCAFile]
        for caFile in caFiles {
            let (provider, message) = Self.webhook(gateway, caFile: caFile)
            var request = try provider.request(for: message)
            request.caFile = caFile
            let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
            let response = await transport.perform([request])[0]
            transport.shutdown()
            let verdict = provider.verdict(for: response)
            #expect(outcome(verdict) == "retry", "ca_file \(caFile ?? "none")")
            #expect(reason(verdict).hasPrefix("transport error: TLS verification failed, certificate refused"))
            #expect(reason(verdict).contains("SSL certificate problem"))
        }
        #expect(gateway.requestCount == 0)
        #expect(tls.handshakes == 0)
    }

    @Test func httpsToACertificateForAnotherNameIsRefused() async throws {
        let pki = try TestPKI.shared()
        let gateway = try FakeGateway(tls: try pki.serverContext(wrongHost: true))
        defer { gateway.stop() }
        let (provider, message) = Self.webhook(gateway, caFile: pki.caFile)
        var request = try provider.request(for: message)
        request.caFile = pki.caFile
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }
        let verdict = provider.verdict(for: await transport.perform([request])[0])
        #expect(outcome(verdict) == "retry")
        #expect(reason(verdict).contains("TLS verification failed"))
        #expect(reason(verdict).contains("127.0.0.1"))
        #expect(gateway.requestCount == 0)
    }

    // MARK: FCM's token exchange

    /// An FCM provider whose token endpoint and API are an HTTPS gateway signed by the test CA.
    static func fcm(_ gateway: FakeGateway, caFile: String?) throws -> FCMProvider {
        gateway.setResponder { request in
            if request.path == "/token" {
                return .init(status: 200, body: #"{"access_token":"ya29.pwsecret-tls","expires_in":3599,"token_type":"Bearer"}"#)
            }
            return .init(status: 200, body: #"{"name":"projects/proj/messages/0:1"}"#)
        }
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        TestLogs.registerSecret(key.pemRepresentation)
        var json = JSONObjectWriter()
        json.add("project_id", "proj")
        json.add("client_email", "paywatch@proj.iam.gserviceaccount.com")
        json.add("private_key", key.pemRepresentation)
        json.add("token_uri", gateway.baseURL + "/token")
        return try FCMProvider(account: try ServiceAccount.parse(Array(json.finish().utf8)).get(), baseURL: gateway.baseURL,
                               timeoutMs: 5_000, caFile: caFile, now: { Int64(Date().timeIntervalSince1970 * 1_000) })
    }

    /// Asks for the token until the exchange succeeded or failed (at most 5 s).
    static func tokenOrFailure(_ provider: FCMProvider) async throws -> Result<String, ProviderError> {
        for _ in 0..<250 {
            if let token = provider.tokens.current() { return .success(token) }
            if let failure = provider.tokens.failure { return .failure(ProviderError(failure)) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return .failure(ProviderError("no token exchange finished"))
    }

    static func attempt(_ provider: FCMProvider) -> Result<HTTPRequest, ProviderError> {
        do {
            return .success(try provider.request(for: FCMProviderTests.message))
        } catch {
            return .failure(error)
        }
    }

    @Test func theFCMTokenExchangeTrustsTheChannelsCAFile() async throws {
        let pki = try TestPKI.shared()
        let gateway = try FakeGateway(tls: try pki.serverContext())
        defer { gateway.stop() }
        let provider = try Self.fcm(gateway, caFile: pki.caFile)
        defer { provider.shutdown() }
        #expect(try await Self.tokenOrFailure(provider).get() == "ya29.pwsecret-tls")
        #expect(gateway.requests().contains { $0.path == "/token" })
        // The message itself, with the channel's ca_file set as ChannelEndpoint sets it.
        var request = try provider.request(for: FCMProviderTests.message)
        request.caFile = pki.caFile
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }
        #expect(provider.verdict(for: await transport.perform([request])[0]) == .delivered)
    }

    @Test func withoutTheCAFileTheFCMTokenExchangeFailsOnTheCertificate() async throws {
        let pki = try TestPKI.shared()
        let gateway = try FakeGateway(tls: try pki.serverContext())
        defer { gateway.stop() }
        let provider = try Self.fcm(gateway, caFile: nil)
        defer { provider.shutdown() }
        guard case .failure(let why) = try await Self.tokenOrFailure(provider) else {
            Issue.record("a token without trusting the test CA")
            return
        }
        #expect(why.description.contains("TLS verification failed"))
        #expect(gateway.requestCount == 0)
        // Messages wait for a token: retried, not dead.
        guard case .failure(let waiting) = Self.attempt(provider) else {
            Issue.record("a request without a token")
            return
        }
        #expect(waiting.transient)
        #expect(waiting.description.contains("TLS verification failed"))
    }

    // MARK: One pooled curl handle, SMTP then HTTP then SMTP

    @Test func mailAndHTTPTakeTurnsOnOnePooledHandleWithoutLeakingOptions() async throws {
        let pki = try TestPKI.shared()
        let smtpTLS = try pki.serverContext()
        let server = try FakeSMTPServer(credentials: ("shop", Self.password), tls: smtpTLS, implicitTLS: true)
        defer { server.stop() }
        let gateway = try FakeGateway(tls: try pki.serverContext())
        defer { gateway.stop() }
        let mail = try Self.smtp(server, caFile: pki.caFile)
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 10_000)
        defer { transport.shutdown() }

        let body = Array(#"{"order":"A1","note":"http only"}"#.utf8)
        let post = HTTPRequest(id: 2, url: gateway.baseURL + "/after-mail", method: "POST",
                               headers: [("Content-Type", "application/json"), ("X-Check", "http-only")], body: body,
                               caFile: pki.caFile)
        let get = HTTPRequest(id: 4, url: gateway.baseURL + "/get-after-mail", method: "GET", caFile: pki.caFile)
        var results: [HTTPResponse] = []
        results += await transport.perform([try mail.request(for: SMTPProviderTests.message(to: "first@example.com"))])
        results += await transport.perform([post])
        results += await transport.perform([try mail.request(for: SMTPProviderTests.message(to: "second@example.com"))])
        results += await transport.perform([get])
        #expect(transport.easyHandlesMade == 1)
        #expect(results.map(\.error) == [nil, nil, nil, nil])
        #expect(results.map(\.status) == [250, 200, 250, 200])

        // The HTTP requests are exactly what was asked: no upload, no envelope, no mail callback.
        let requests = gateway.requests()
        try #require(requests.count == 2)
        #expect(requests[0].method == "POST" && requests[0].path == "/after-mail")
        #expect(requests[0].body == body)
        #expect(requests[0].headers["content-length"] == String(body.count))
        #expect(requests[0].headers["transfer-encoding"] == nil)
        #expect(requests[1].method == "GET" && requests[1].path == "/get-after-mail")
        #expect(requests[1].body.isEmpty && requests[1].headers["content-type"] == nil && requests[1].headers["x-check"] == nil)
        #expect(requests.allSatisfy { $0.headers["authorization"] == nil })

        // The mails are exactly theirs: one recipient each, no HTTP header or body reached the relay.
        let messages = server.messages()
        #expect(messages.map(\.recipients) == [["first@example.com"], ["second@example.com"]])
        #expect(messages.allSatisfy { !$0.text.contains("X-Check") && !$0.text.contains("\"order\"") })
        #expect(!server.commands().contains { $0.contains("X-Check") || $0.contains("Content-Type") || $0.hasPrefix("POST") || $0.hasPrefix("GET") })

        // And the CA file does not outlive its request: the same handle without it refuses the peer.
        let bare = HTTPRequest(id: 5, url: gateway.baseURL + "/no-ca", method: "GET")
        let refused = await transport.perform([bare])[0]
        #expect(transport.easyHandlesMade == 1)
        #expect(refused.status == nil)
        #expect(refused.error?.contains("TLS verification failed") == true)
        #expect(gateway.requestCount == 2)
    }
}
