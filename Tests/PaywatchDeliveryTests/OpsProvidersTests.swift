import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// Slack's incoming webhooks and PagerDuty's Events API v2, against loopback fakes that check the
/// request as each documents it and answer with their own error shapes.
@Suite struct OpsProvidersTests {
    static let stalled = ProviderMessage(
        id: 5, key: "pw1:A1:paying_stalled:1:ops", kind: "paying_stalled", channel: "ops", orderID: "A1", to: "ops-oncall",
        payload: MessagePayload(subject: "Payment <stalled> for A1 & B2", text: "Attempt P1 pending for 15 min",
                                facts: [.init("amount_due", .number(12900)), .init("provider_ref", .text("pi_1"))]))

    @Test func slackGetsTheSubjectInBoldAndTheTextEscaped() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = SlackProvider(url: gateway.baseURL + "/services/T000/B000/slack-pwsecret")
        let (request, verdict) = try await exchange(provider, Self.stalled, gateway: gateway, answer: .init(status: 200, body: "ok"))
        #expect(verdict == .delivered)
        #expect(request.method == "POST")
        #expect(request.path == "/services/T000/B000/slack-pwsecret")
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["authorization"] == nil)
        #expect(jsonBody(request) as? [String: String]
            == ["text": "*Payment &lt;stalled&gt; for A1 &amp; B2*\nAttempt P1 pending for 15 min"])
    }

    @Test func slacksErrorsAreDeadAndItsThrottlingRetried() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = SlackProvider(url: gateway.baseURL + "/services/T000/B000/x")
        let cases: [(Int, String, String)] = [
            (400, "invalid_payload", "dead"), (403, "action_prohibited", "dead"), (404, "no_service", "dead"),
            (410, "channel_is_archived", "dead"), (429, "rate_limited", "retry"), (500, "rollup_error", "retry"),
        ]
        for (status, body, expected) in cases {
            let (_, verdict) = try await exchange(provider, Self.stalled, gateway: gateway, answer: .init(status: status, body: body))
            #expect(outcome(verdict) == expected, "\(status) \(body)")
            #expect(reason(verdict) == "HTTP \(status): \(body)")
        }
    }

    @Test func pagerDutyGetsATriggerPerOrderAndKind() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = PagerDutyProvider(baseURL: gateway.baseURL, routingKey: "R0123pwsecret0123456789abcdef0123")
        let accepted = FakeGateway.Response(status: 202, body: #"{"status":"success","message":"Event processed","dedup_key":"paywatch:A1:paying_stalled"}"#)
        let (request, verdict) = try await exchange(provider, Self.stalled, gateway: gateway, answer: accepted)
        #expect(verdict == .delivered)
        #expect(request.method == "POST")
        #expect(request.path == "/v2/enqueue")
        #expect(request.headers["content-type"] == "application/json")
        let body = jsonBody(request)
        #expect(body["routing_key"] as? String == "R0123pwsecret0123456789abcdef0123")
        #expect(body["event_action"] as? String == "trigger")
        #expect(body["dedup_key"] as? String == "paywatch:A1:paying_stalled")
        let payload = try #require(body["payload"] as? [String: Any])
        #expect(payload["summary"] as? String == "Payment <stalled> for A1 & B2")
        #expect(payload["source"] as? String == "paywatch")
        #expect(payload["severity"] as? String == "warning")
        let details = try #require(payload["custom_details"] as? [String: Any])
        #expect(details["amount_due"] as? Int == 12900)
        #expect(details["provider_ref"] as? String == "pi_1")
        // Money paid twice is an error, not a warning.
        var duplicate = Self.stalled
        duplicate.kind = "duplicate_payment"
        let (second, _) = try await exchange(provider, duplicate, gateway: gateway, answer: accepted)
        #expect((jsonBody(second)["payload"] as? [String: Any])?["severity"] as? String == "error")
        #expect(jsonBody(second)["dedup_key"] as? String == "paywatch:A1:duplicate_payment")
    }

    /// `situation_resolved` resolves the incident of the kind it names: same dedup_key, no payload.
    @Test func pagerDutyResolvesTheIncidentItsAlertOpened() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = PagerDutyProvider(baseURL: gateway.baseURL, routingKey: "R0123pwsecret0123456789abcdef0123")
        var payload = MessagePayload(subject: "Order A1: paying_stalled resolved", text: "resolved")
        payload.add("resolves", "paying_stalled")
        let resolved = ProviderMessage(id: 9, key: "pw1:A1:situation_resolved:100001:ops", kind: "situation_resolved",
                                       channel: "ops", orderID: "A1", to: "oncall", payload: payload)
        let accepted = FakeGateway.Response(status: 202, body: #"{"status":"success","message":"Event processed","dedup_key":"paywatch:A1:paying_stalled"}"#)
        let (request, verdict) = try await exchange(provider, resolved, gateway: gateway, answer: accepted)
        #expect(verdict == .delivered)
        #expect(request.path == "/v2/enqueue")
        let body = jsonBody(request)
        #expect(body["event_action"] as? String == "resolve")
        #expect(body["dedup_key"] as? String == "paywatch:A1:paying_stalled")
        #expect(body["routing_key"] as? String == "R0123pwsecret0123456789abcdef0123")
        #expect(body["payload"] == nil)
        // About a channel, not an order: one incident per channel, resolved when it resumes.
        var channelPayload = MessagePayload(subject: "Channel sms resumed", text: "resumed")
        channelPayload.add("resolves", "channel_paused")
        channelPayload.add("channel", "sms")
        let resumed = ProviderMessage(id: 10, key: "pw1-ops:channel_resumed:sms:1", kind: "situation_resolved",
                                      channel: "ops", orderID: "", to: "oncall", payload: channelPayload)
        let (again, _) = try await exchange(provider, resumed, gateway: gateway, answer: accepted)
        #expect(jsonBody(again)["dedup_key"] as? String == "paywatch:channel:sms:channel_paused")
        #expect(jsonBody(again)["event_action"] as? String == "resolve")
    }

    @Test func pagerDutysInvalidEventIsDeadAndItsThrottlingRetried() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let provider = PagerDutyProvider(baseURL: gateway.baseURL, routingKey: "short")
        let invalid = FakeGateway.Response(status: 400, body: """
            {"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}
            """)
        let (_, dead) = try await exchange(provider, Self.stalled, gateway: gateway, answer: invalid)
        #expect(dead == .dead(reason: "HTTP 400: PagerDuty: Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)",
                              suppress: false))
        let (_, throttled) = try await exchange(provider, Self.stalled, gateway: gateway, answer: .init(status: 429, body: ""))
        #expect(throttled == .retry(reason: "HTTP 429"))
        let (_, down) = try await exchange(provider, Self.stalled, gateway: gateway, answer: .init(status: 502, body: "bad gateway"))
        #expect(outcome(down) == "retry")
    }
}
