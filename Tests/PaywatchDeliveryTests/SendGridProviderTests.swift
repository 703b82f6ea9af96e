import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// SendGrid's v3 Mail Send, against a loopback fake that checks the JSON as SendGrid documents it
/// and answers with SendGrid's own error objects.
@Suite struct SendGridProviderTests {
    static let message = ProviderMessage(
        id: 4, key: "pw1:A1:payment_confirmed:0:email", kind: "payment_confirmed", channel: "email", orderID: "A1",
        to: "buyer@example.com",
        payload: MessagePayload(subject: "Paid: order \"A1\"", text: "Thank you.\nOrder A1", html: "<p>Thank you.</p>"))

    static func errors(_ status: Int, _ pairs: [(message: String, field: String?)]) -> FakeGateway.Response {
        let items = pairs.map { pair in
            "{\"message\": \"\(pair.message)\", \"field\": \(pair.field.map { "\"\($0)\"" } ?? "null"), \"help\": null}"
        }
        return FakeGateway.Response(status: status, body: "{\"errors\": [" + items.joined(separator: ", ") + "]}")
    }

    @Test func theRequestIsTheV3JSONWithPlainTextFirst() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = SendGridProvider(baseURL: gateway.baseURL, apiKey: "SG.key-pwsecret", from: "orders@shop.example", fromName: "Shop")
        let (request, verdict) = try await exchange(provider, Self.message, gateway: gateway, answer: .init(status: 202, body: ""))
        #expect(verdict == .delivered)
        #expect(request.method == "POST")
        #expect(request.path == "/v3/mail/send")
        #expect(request.headers["authorization"] == "Bearer SG.key-pwsecret")
        #expect(request.headers["content-type"] == "application/json")
        let body = jsonBody(request)
        let personalizations = try #require(body["personalizations"] as? [[String: Any]])
        #expect(personalizations.count == 1)
        #expect((personalizations[0]["to"] as? [[String: String]]) == [["email": "buyer@example.com"]])
        #expect((body["from"] as? [String: String]) == ["email": "orders@shop.example", "name": "Shop"])
        #expect(body["subject"] as? String == "Paid: order \"A1\"")
        #expect((body["content"] as? [[String: String]]) == [
            ["type": "text/plain", "value": "Thank you.\nOrder A1"], ["type": "text/html", "value": "<p>Thank you.</p>"],
        ])

        // No HTML: one part; no from_name: no name.
        var plain = Self.message
        plain.payload.html = nil
        let bare = SendGridProvider(baseURL: gateway.baseURL, apiKey: "k", from: "orders@shop.example")
        let (second, _) = try await exchange(bare, plain, gateway: gateway, answer: .init(status: 202, body: ""))
        #expect((jsonBody(second)["content"] as? [[String: String]]) == [["type": "text/plain", "value": "Thank you.\nOrder A1"]])
        #expect((jsonBody(second)["from"] as? [String: String]) == ["email": "orders@shop.example"])
    }

    @Test func aBadRecipientIsSuppressedAndThrottlingRetried() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = SendGridProvider(baseURL: gateway.baseURL, apiKey: "k", from: "orders@shop.example")
        let cases: [(FakeGateway.Response, String)] = [
            (Self.errors(400, [("Does not contain a valid address.", "personalizations.0.to.0.email")]), "dead+suppress"),
            // Paywatch's own mistake, not the address's.
            (Self.errors(400, [("The from email does not contain a valid address.", "from.email")]), "dead"),
            (Self.errors(400, [("The to array is required for all personalization objects", "personalizations.0.to")]), "dead"),
            (Self.errors(401, [("The provided authorization grant is invalid, expired, or revoked", nil)]), "dead"),
            (Self.errors(429, [("too many requests", nil)]), "retry"),
            (FakeGateway.Response(status: 500, body: ""), "retry"),
        ]
        for (answer, expected) in cases {
            let (_, verdict) = try await exchange(provider, Self.message, gateway: gateway, answer: answer)
            #expect(outcome(verdict) == expected, "\(answer.status) \(answer.body)")
        }
        let (_, bad) = try await exchange(provider, Self.message, gateway: gateway, answer: cases[0].0)
        #expect(reason(bad) == "HTTP 400: SendGrid: Does not contain a valid address. (personalizations.0.to.0.email)")
    }
}
