import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// No provider lets a credential out through what paywatch logs or stores: the verdicts' reasons
/// (from the answers) and the errors of `request(for:)`.
@Suite struct ProviderSecretsTests {
    @Test func noSecretAppearsInAnyReasonOrError() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let twilioToken = "tw-pwsecret-7f3a9c", sendgridKey = "SG.sg-pwsecret-41b2e8", slackPath = "/services/T9/B9/sl-pwsecret-5d1c0e"
        let routingKey = "pd-pwsecret-93ae6b"
        let providers: [(any DeliveryProvider, [String])] = [
            (TwilioProvider(baseURL: gateway.baseURL, accountSID: "AC1", authToken: twilioToken, from: "+15005550006"),
             [twilioToken, Data("AC1:\(twilioToken)".utf8).base64EncodedString()]),
            (SendGridProvider(baseURL: gateway.baseURL, apiKey: sendgridKey, from: "o@shop.example"), [sendgridKey]),
            (SlackProvider(url: gateway.baseURL + slackPath), [slackPath, "sl-pwsecret-5d1c0e"]),
            (PagerDutyProvider(baseURL: gateway.baseURL, routingKey: routingKey), [routingKey]),
        ]
        let message = ProviderMessage(id: 1, key: "k", kind: "paying_stalled", channel: "x", orderID: "A1", to: "+15550001111",
                                      payload: MessagePayload(subject: "s", text: "t"))
        var logged: [String] = []
        for status in [400, 401, 404, 429, 500] {
            // The worst gateway: it echoes everything it was sent, headers, path and body, as JSON
            // error text (where providers read their reasons from) and as plain text.
            for json in [true, false] {
                gateway.setResponder { request in
                    let echo = request.method + " " + request.path + " " + request.headers.sorted { $0.key < $1.key }
                        .map { "\($0.key): \($0.value)" }.joined(separator: " ") + " " + request.bodyString
                    let quoted = echo.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    let body = json
                        ? "{\"code\": 21211, \"message\": \"\(quoted)\", \"errors\": [{\"message\": \"\(quoted)\", \"field\": \"f\"}]}"
                        : echo
                    return FakeGateway.Response(status: status, body: body)
                }
                let transport = HTTPTransport(concurrency: 1, timeoutMs: 5_000)
                for (provider, _) in providers {
                    var sent = message
                    sent.to = provider.name == "sendgrid" ? "buyer@example.com" : message.to
                    let response = await transport.perform([try provider.request(for: sent)])[0]
                    #expect(response.status == status)
                    logged.append(reason(provider.verdict(for: response)))
                }
                transport.shutdown()
            }
        }
        // A transport error, whose text (curl's) could name the URL and so Slack's secret path.
        for (provider, secrets) in providers {
            let error = "Failed to connect to " + secrets.joined(separator: " and ")
            logged.append(reason(provider.verdict(for: HTTPResponse(id: 1, status: nil, error: error))))
        }
        // And an address a provider cannot take.
        var unfit = message
        unfit.to = "not an address"
        for (provider, _) in providers {
            do {
                _ = try provider.request(for: unfit)
            } catch {
                logged.append(error.description)
            }
        }
        #expect(logged.count >= 40)
        // The echo did carry the secrets: the reasons would hold them unless scrubbed.
        #expect(logged.contains { $0.contains("****") })
        for (provider, secrets) in providers {
            for secret in secrets {
                for line in logged where line.contains(secret) {
                    Issue.record("\(provider.name)'s secret appears in: \(line)")
                }
            }
        }
    }
}
