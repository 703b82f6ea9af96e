import Foundation
import PaywatchCore
import Testing
@testable import PaywatchDelivery

/// The provider protocol's first implementation, and how verdicts become outcomes.
@Suite struct ProviderTests {
    static let message = ProviderMessage(
        id: 7, key: "pw1:A1:unpaid_reminder:1:sms", kind: "unpaid_reminder", channel: "sms", orderID: "A1",
        to: "+8613800000000", payload: MessagePayload(subject: "S", text: "T", facts: [.init("amount_due", .number(12900))]))

    @Test func theWebhookRequestIsThePayloadAsJSONWithItsKeyAndToken() throws {
        let request = try WebhookProvider(url: "https://gw.example/sms", token: "s3cret-pwsecret").request(for: Self.message)
        #expect(request.id == 7)
        #expect(request.url == "https://gw.example/sms")
        #expect(request.method == "POST")
        #expect(request.headers.contains { $0 == ("Idempotency-Key", "pw1:A1:unpaid_reminder:1:sms") })
        #expect(request.headers.contains { $0 == ("Authorization", "Bearer s3cret-pwsecret") })
        #expect(request.headers.contains { $0 == ("Content-Type", "application/json") })
        let body = String(decoding: request.body, as: UTF8.self)
        #expect(body == Self.message.payload.webhookJSON(key: Self.message.key, kind: "unpaid_reminder", channel: "sms",
                                                         orderID: "A1", to: "+8613800000000"))
        // Without a token, no Authorization header.
        #expect(try !WebhookProvider(url: "http://127.0.0.1:1/sms").request(for: Self.message).headers.contains { $0.0 == "Authorization" })
    }

    @Test func aWebhookAnswerEchoingTheTokenLeavesItOutOfTheReason() {
        let provider = WebhookProvider(url: "http://127.0.0.1:1/sms", token: "s3cret-pwsecret-token")
        let verdict = provider.verdict(for: HTTPResponse(id: 1, status: 401, body: "bad Authorization: Bearer s3cret-pwsecret-token"))
        #expect(verdict == .dead(reason: "HTTP 401: bad Authorization: Bearer ****", suppress: false))
    }

    @Test func anSMTPRefusalWithoutAnEnhancedCodeBlamesTheAddressOnlyWhenItSpeaksOfIt() {
        #expect(SMTPProvider.isAboutTheAddress("550 No such user here"))
        #expect(SMTPProvider.isAboutTheAddress("553 mailbox name not allowed"))
        #expect(!SMTPProvider.isAboutTheAddress("550 relay not permitted"))
        #expect(!SMTPProvider.isAboutTheAddress("554 transaction failed"))
        #expect(!SMTPProvider.isAboutTheAddress("550 Access denied"))
        #expect(SMTPProvider.isAboutTheAddress("550 5.1.1 unknown user"))
        #expect(!SMTPProvider.isAboutTheAddress("550 5.7.1 relaying denied"))
    }

    @Test func theHTTPVerdictDeliversRetriesAndGivesUp() {
        #expect(httpVerdict(HTTPResponse(id: 1, status: 204)) == .delivered)
        #expect(httpVerdict(HTTPResponse(id: 1, status: 429, body: "slow down")) == .retry(reason: "HTTP 429: slow down"))
        #expect(httpVerdict(HTTPResponse(id: 1, status: 503)) == .retry(reason: "HTTP 503"))
        #expect(httpVerdict(HTTPResponse(id: 1, status: nil, error: "timeout")) == .retry(reason: "transport error: timeout"))
        #expect(httpVerdict(HTTPResponse(id: 1, status: 400, body: "bad\nrequest")) == .dead(reason: "HTTP 400: bad request", suppress: false))
    }

    @Test func aProvidersVerdictDecidesTheOutcomeAndThePolicyTheTime() {
        let policy = RetryPolicy(maxAttempts: 3, baseDelayMs: 1_000, maxDelayMs: 60_000, retryAfterMaxMs: 3_600_000)
        let ok = HTTPResponse(id: 1, status: 404)
        // A provider may call a 404 delivered or a 200 dead: its verdict wins over the status.
        #expect(classifyDelivery(ok, verdict: .delivered, attempt: 1, policy: policy, nowMs: 0, jitter: 0) == .delivered)
        #expect(classifyDelivery(HTTPResponse(id: 1, status: 200), verdict: .dead(reason: "UNREGISTERED", suppress: true),
                                 attempt: 1, policy: policy, nowMs: 0, jitter: 0) == .dead(reason: "UNREGISTERED"))
        // A retry honours Retry-After, and the last attempt gives up.
        let throttled = HTTPResponse(id: 1, status: 429, retryAfter: "30")
        #expect(classifyDelivery(throttled, verdict: .retry(reason: "quota"), attempt: 1, policy: policy, nowMs: 0, jitter: 0)
            == .retry(atMs: 30_000, reason: "quota"))
        #expect(classifyDelivery(throttled, verdict: .retry(reason: "quota"), attempt: 3, policy: policy, nowMs: 0, jitter: 0)
            == .dead(reason: "gave up after 3 attempts: quota"))
        // Never started: not attempted, whatever the verdict.
        #expect(classifyDelivery(HTTPResponse(id: 1, status: nil, attempted: false), verdict: .dead(reason: "x", suppress: false),
                                 attempt: 1, policy: policy, nowMs: 0, jitter: 0) == .notAttempted)
    }
}
