import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport

/// One message sent through `provider` over the real transport (libcurl) to `gateway`, answered
/// with `answer`: the request as the gateway received it, and the provider's verdict.
func exchange(
    _ provider: any DeliveryProvider, _ message: ProviderMessage, gateway: FakeGateway, answer: FakeGateway.Response
) async throws -> (request: FakeGateway.Request, verdict: ProviderVerdict) {
    gateway.reset()
    gateway.setResponder { _ in answer }
    let transport = HTTPTransport(concurrency: 1, timeoutMs: 5_000)
    defer { transport.shutdown() }
    let response = await transport.perform([try provider.request(for: message)])[0]
    guard let received = gateway.requests().first else { throw FakeGatewayError(description: "no request arrived") }
    return (received, provider.verdict(for: response))
}

/// The fields of an `application/x-www-form-urlencoded` body, decoded, in order.
func formFields(_ body: String) -> [(String, String)] {
    body.split(separator: "&").map { pair in
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "?"
        }
        return (parts[0], parts.count > 1 ? parts[1] : "")
    }
}

/// The body as a JSON object.
func jsonBody(_ request: FakeGateway.Request) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]) ?? [:]
}

/// `delivered`, `retry`, `dead` or `dead+suppress`: the verdict without its reason.
func outcome(_ verdict: ProviderVerdict) -> String {
    switch verdict {
    case .delivered: return "delivered"
    case .retry: return "retry"
    case .dead(_, let suppress): return suppress ? "dead+suppress" : "dead"
    }
}

func reason(_ verdict: ProviderVerdict) -> String {
    switch verdict {
    case .delivered: return ""
    case .retry(let reason), .dead(let reason, _): return reason
    }
}
