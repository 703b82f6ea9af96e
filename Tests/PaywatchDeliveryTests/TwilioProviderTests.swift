import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// Twilio's Messages API, against a loopback fake that checks the request as Twilio documents it
/// and answers with Twilio's own error objects.
@Suite struct TwilioProviderTests {
    static let message = ProviderMessage(
        id: 3, key: "pw1:A1:unpaid_reminder:1:sms", kind: "unpaid_reminder", channel: "sms", orderID: "A1",
        to: "+8613800000000", payload: MessagePayload(subject: "待付款", text: "订单 A1 待付款 ¥129.00 & more: pay now"))

    static func error(_ status: Int, _ code: Int, _ message: String) -> FakeGateway.Response {
        FakeGateway.Response(status: status, headers: ["Content-Type": "application/json"], body: """
            {"code": \(code), "message": "\(message)", "more_info": "https://www.twilio.com/docs/errors/\(code)", "status": \(status)}
            """)
    }

    @Test func theRequestIsTheFormTwilioDocuments() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = TwilioProvider(baseURL: gateway.baseURL + "/", accountSID: "AC0123abc", authToken: "tw-pwsecret", from: "+15005550006")
        let created = FakeGateway.Response(status: 201, body: #"{"sid": "SM1", "status": "queued"}"#)
        let (request, verdict) = try await exchange(provider, Self.message, gateway: gateway, answer: created)
        #expect(verdict == .delivered)
        #expect(request.method == "POST")
        #expect(request.path == "/2010-04-01/Accounts/AC0123abc/Messages.json")
        #expect(request.headers["authorization"] == "Basic " + Data("AC0123abc:tw-pwsecret".utf8).base64EncodedString())
        #expect(request.headers["content-type"] == "application/x-www-form-urlencoded")
        let fields = formFields(request.bodyString)
        #expect(fields.map(\.0) == ["To", "From", "Body"])
        #expect(fields.map(\.1) == ["+8613800000000", "+15005550006", "订单 A1 待付款 ¥129.00 & more: pay now"])
        // The + of a number is encoded, never left to be read as a space.
        #expect(request.bodyString.hasPrefix("To=%2B8613800000000&From=%2B15005550006&Body="))
    }

    @Test func twilioErrorCodesDecideTheVerdict() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = TwilioProvider(baseURL: gateway.baseURL, accountSID: "AC1", authToken: "t", from: "+15005550006")
        let cases: [(FakeGateway.Response, String)] = [
            (Self.error(400, 21211, "Invalid 'To' Phone Number"), "dead+suppress"),
            (Self.error(400, 21614, "'To' number is not a valid mobile number"), "dead+suppress"),
            (Self.error(400, 21610, "Attempt to send to unsubscribed recipient"), "dead+suppress"),
            (Self.error(400, 21408, "Permission to send an SMS has not been enabled for the region"), "dead"),
            (Self.error(401, 20003, "Authenticate"), "dead"),
            (Self.error(429, 20429, "Too Many Requests"), "retry"),
            (FakeGateway.Response(status: 503, body: "<html>Service Unavailable</html>"), "retry"),
        ]
        for (answer, expected) in cases {
            let (_, verdict) = try await exchange(provider, Self.message, gateway: gateway, answer: answer)
            #expect(outcome(verdict) == expected, "\(answer.status) \(answer.body)")
        }
        let (_, invalid) = try await exchange(provider, Self.message, gateway: gateway, answer: Self.error(400, 21211, "Invalid 'To' Phone Number"))
        #expect(invalid == .dead(reason: "HTTP 400: Twilio error 21211: Invalid 'To' Phone Number", suppress: true))
    }

    @Test func onlyE164NumbersAreSent() {
        let provider = TwilioProvider(baseURL: "https://api.twilio.com", accountSID: "AC1", authToken: "t", from: "+1")
        var message = Self.message
        message.to = "13800000000"
        #expect(throws: ProviderError("twilio sends SMS to E.164 numbers (+ and digits only)")) { try provider.request(for: message) }
    }
}
