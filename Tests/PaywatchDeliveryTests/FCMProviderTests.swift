import _CryptoExtras
import Foundation
import PaywatchCore
import PaywatchTestSupport
import Testing
@testable import PaywatchDelivery

/// FCM HTTP v1 against loopback fakes of Google's token endpoint and of FCM, through libcurl.
@Suite(.serialized) struct FCMProviderTests {
    static let message = ProviderMessage(
        id: 3, key: "pw1:A1:payment_confirmed:1:push", kind: "payment_confirmed", channel: "push", orderID: "A1",
        to: "fcm-token-123", payload: MessagePayload(subject: "已收到付款", text: "订单 A1 已支付",
                                                   facts: [.init("amount_due", .number(12900)), .init("currency", .text("CNY"))]))

    final class Setup {
        let key: _RSA.Signing.PrivateKey
        let gateway: FakeGateway
        let provider: FCMProvider
        init(tokenStatus: Int = 200) throws {
            key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            TestLogs.registerSecret(key.pemRepresentation)
            gateway = try FakeGateway()
            gateway.setResponder { request in
                if request.path == "/token" {
                    return tokenStatus == 200
                        ? .init(status: 200, body: #"{"access_token":"ya29.pwsecret","expires_in":3599,"token_type":"Bearer"}"#)
                        : .init(status: tokenStatus, body: #"{"error":"invalid_grant","error_description":"Invalid JWT"}"#)
                }
                guard request.headers["authorization"] == "Bearer ya29.pwsecret" else { return .init(status: 401, body: "{}") }
                return .init(status: 200, body: #"{"name":"projects/proj/messages/0:1"}"#)
            }
            var json = JSONObjectWriter()
            json.add("type", "service_account")
            json.add("project_id", "proj")
            json.add("client_email", "paywatch@proj.iam.gserviceaccount.com")
            json.add("private_key", key.pemRepresentation)
            json.add("token_uri", gateway.baseURL + "/token")
            let account = try ServiceAccount.parse(Array(json.finish().utf8)).get()
            provider = try FCMProvider(account: account, baseURL: gateway.baseURL, timeoutMs: 5_000,
                                       now: { Int64(Date().timeIntervalSince1970 * 1_000) })
        }
        deinit {
            provider.shutdown()
            gateway.stop()
        }

        /// The request, once the access token is there.
        func request() async throws -> HTTPRequest {
            for _ in 0..<250 {
                if case .success(let request) = attempt(FCMProviderTests.message) { return request }
                try await Task.sleep(for: .milliseconds(20))
            }
            return try attempt(FCMProviderTests.message).get()
        }

        func attempt(_ message: ProviderMessage) -> Result<HTTPRequest, ProviderError> {
            do {
                return .success(try provider.request(for: message))
            } catch {
                return .failure(error)
            }
        }
    }

    @Test func theAccessTokenComesFromASignedAssertionAndTheMessageIsFCMsV1Shape() async throws {
        let setup = try Setup()
        // No token yet: the message waits (retried), it is not dead.
        guard case .failure(let waiting) = setup.attempt(Self.message) else {
            Issue.record("a request before any token")
            return
        }
        #expect(waiting.transient)
        let request = try await setup.request()

        // The token exchange: the JWT bearer grant with an RS256 assertion the key verifies.
        let exchange = try #require(setup.gateway.requests().first { $0.path == "/token" })
        #expect(exchange.method == "POST")
        #expect(exchange.headers["content-type"] == "application/x-www-form-urlencoded")
        let form = Dictionary(uniqueKeysWithValues: exchange.bodyString.split(separator: "&").map {
            let pair = $0.split(separator: "=", maxSplits: 1)
            return (String(pair[0]), String(pair[1]).removingPercentEncoding ?? "")
        })
        #expect(form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        let parts = try #require(form["assertion"]).split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        func decoded(_ part: String) throws -> [String: Any] {
            var base64 = part.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while base64.count % 4 != 0 { base64 += "=" }
            let data = try #require(Data(base64Encoded: base64))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        #expect(try decoded(parts[0])["alg"] as? String == "RS256")
        let claims = try decoded(parts[1])
        #expect(claims["iss"] as? String == "paywatch@proj.iam.gserviceaccount.com")
        #expect(claims["scope"] as? String == "https://www.googleapis.com/auth/firebase.messaging")
        #expect(claims["aud"] as? String == setup.gateway.baseURL + "/token")
        #expect((claims["exp"] as? Int ?? 0) - (claims["iat"] as? Int ?? 0) == 3_600)
        var signature = parts[2].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while signature.count % 4 != 0 { signature += "=" }
        let valid = setup.key.publicKey.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: try #require(Data(base64Encoded: signature))),
            for: Array((parts[0] + "." + parts[1]).utf8), padding: .insecurePKCS1v1_5)
        #expect(valid)

        // The send: the v1 path, the bearer token, the message's token, notification and data.
        #expect(request.url == setup.gateway.baseURL + "/v1/projects/proj/messages:send")
        #expect(request.headers.contains { $0 == ("Authorization", "Bearer ya29.pwsecret") })
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        let message = try #require(body["message"] as? [String: Any])
        #expect(message["token"] as? String == "fcm-token-123")
        #expect((message["notification"] as? [String: String]) == ["title": "已收到付款", "body": "订单 A1 已支付"])
        let data = try #require(message["data"] as? [String: String])
        #expect(data["amount_due"] == "12900" && data["currency"] == "CNY" && data["order_id"] == "A1")
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5_000)
        defer { transport.shutdown() }
        let response = await transport.perform([request])[0]
        #expect(setup.provider.verdict(for: response) == .delivered)
        // An answer that echoes the access token does not carry it into a reason.
        #expect(setup.provider.verdict(for: HTTPResponse(id: 1, status: 418, body: "echo Bearer ya29.pwsecret"))
            == .dead(reason: "HTTP 418: echo Bearer ****", suppress: false))
    }

    @Test func fcmErrorsAreReadFromTheirCodesNotTheStatus() throws {
        let setup = try Setup()
        func answer(_ status: Int, _ body: String) -> ProviderVerdict {
            setup.provider.verdict(for: HTTPResponse(id: 1, status: status, body: body))
        }
        let unregistered = #"{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#
        #expect(answer(404, unregistered) == .dead(reason: "HTTP 404 UNREGISTERED", suppress: true))
        let invalid = #"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[]}}"#
        #expect(answer(400, invalid) == .dead(reason: "HTTP 400 INVALID_ARGUMENT", suppress: true))
        let quota = #"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#
        #expect(answer(429, quota) == .retry(reason: "HTTP 429 QUOTA_EXCEEDED"))
        // A payload FCM refuses is not the token's fault; the shop's APNs credentials neither.
        let tooLarge = #"{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.data"}]}]}}"#
        #expect(answer(400, tooLarge) == .dead(reason: "HTTP 400 INVALID_ARGUMENT (message.data)", suppress: false))
        let apns = #"{"error":{"code":401,"status":"UNAUTHENTICATED","details":[{"errorCode":"THIRD_PARTY_AUTH_ERROR"}]}}"#
        #expect(answer(401, apns) == .dead(reason: "HTTP 401 THIRD_PARTY_AUTH_ERROR", suppress: false))
        #expect(answer(503, #"{"error":{"status":"UNAVAILABLE"}}"#) == .retry(reason: "HTTP 503 UNAVAILABLE"))
        if case .retry(let why) = answer(401, #"{"error":{"status":"UNAUTHENTICATED"}}"#) {
            #expect(why.contains("access token refused"))
        } else {
            Issue.record("401 should be retried")
        }
        // A message that is no token at all is dead without a transfer.
        var bad = Self.message
        bad.to = "two words"
        guard case .failure(let refused) = setup.attempt(bad) else {
            Issue.record("a token with a space was accepted")
            return
        }
        #expect(!refused.transient)
    }

    @Test func aRefusedTokenExchangeIsRetriedAndNamesTheErrorNeverTheKey() async throws {
        let setup = try Setup(tokenStatus: 400)
        _ = setup.attempt(Self.message)
        try await Task.sleep(for: .milliseconds(300))
        guard case .failure(let error) = setup.attempt(Self.message) else {
            Issue.record("no token: the request should wait")
            return
        }
        #expect(error.transient)
        #expect(error.description.contains("token exchange: HTTP 400 invalid_grant"))
        #expect(!error.description.contains("PRIVATE KEY"))
        #expect(!error.description.contains("eyJ"))  // no assertion
    }

    @Test func theTokenLifetimeIsBounded() throws {
        let huge = HTTPResponse(id: 0, status: 200, body: #"{"access_token":"t","expires_in":9999999999999999}"#)
        #expect(try AccessTokenSource.exchanged(huge).get().1 == 86_400)
        let short = HTTPResponse(id: 0, status: 200, body: #"{"access_token":"t","expires_in":5}"#)
        #expect(try AccessTokenSource.exchanged(short).get().1 == 120)
    }

    @Test func aKeyFileThatIsNoServiceAccountIsRefusedWithoutItsContent() {
        for (bytes, why) in [("{}", "not a service account JSON key"),
                             (#"{"project_id":"p","client_email":"e","private_key":"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----","token_uri":"https://x"}"#, "not an RSA private key"),
                             ("not json", "not a service account JSON key")] {
            guard case .failure(let error) = ServiceAccount.parse(Array(bytes.utf8)) else {
                Issue.record("accepted: \(bytes)")
                continue
            }
            #expect(error.description.contains(why))
            #expect(!error.description.contains("nope"))
        }
    }
}
