import Foundation
import PaywatchCore

/// `provider = "slack"`: an ops message through a Slack incoming webhook: `POST` of
/// `{"text": "*SUBJECT*\nTEXT"}` to the webhook's URL. The URL is the credential (whoever has it can
/// post to the channel), so it is read from `url_file` and never logged.
///
/// Slack answers `200` with `ok`, or a status with a plain-text code: `400 invalid_payload`,
/// `403 action_prohibited`, `404 no_service` (the webhook was removed), `404 channel_not_found`,
/// `410 channel_is_archived`: all dead; `429` and `5xx` are retried.
public struct SlackProvider: DeliveryProvider {
    public let name = "slack"
    /// Read from `url_file` at start; never logged.
    var url: String

    public init(url: String) {
        self.url = url
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        let text = "*\(Self.escaped(message.payload.subject))*\n\(Self.escaped(message.payload.text))"
        return HTTPRequest(id: message.id, url: url, method: "POST",
                           headers: [("Content-Type", "application/json"), userAgent],
                           body: Array(("{\"text\":" + jsonString(text) + "}").utf8))
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        guard let status = response.status, !(200...299).contains(status) else {
            return scrubbing(httpVerdict(response), secrets: secrets)
        }
        let reason = providerReason(status, response.body, secrets: secrets)
        if status == 429 || (500...599).contains(status) { return .retry(reason: reason) }
        return .dead(reason: reason, suppress: false)
    }

    /// The URL, its path (`/services/T…/B…/SECRET`) and that last segment, the secret proper,
    /// should an answer or an error echo any of them.
    private var secrets: [String] {
        guard let schemeEnd = url.range(of: "://"), let slash = url[schemeEnd.upperBound...].firstIndex(of: "/") else { return [url] }
        let path = url[slash...].prefix { $0 != "?" && $0 != "#" }
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        return [url, String(url[slash...]), last.count >= 8 ? last : ""]
    }

    /// Slack's mrkdwn reads `&`, `<` and `>` as markup: escaped as Slack documents, a customer's
    /// name cannot become a link or a mention.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}

/// `provider = "pagerduty"`: an ops alert through PagerDuty's Events API v2: `POST {base_url}/v2/enqueue`
/// with `routing_key`, `event_action: "trigger"`, a `dedup_key` per order and kind
/// (`paywatch:ORDER:KIND`, so repeated escalations of one situation are one alert), and `payload`
/// (`summary`, `source: "paywatch"`, `severity`, the facts as `custom_details`).
///
/// PagerDuty answers `202` `{"status": "success", "dedup_key": …}`, `400`
/// `{"status": "invalid event", "message": …, "errors": […]}` (dead), or `429` (retried).
///
/// Resolving the alert when the situation clears (`event_action: "resolve"`) needs the planner to
/// decide such a message; not done yet.
public struct PagerDutyProvider: DeliveryProvider {
    public let name = "pagerduty"
    public var baseURL: String
    /// Read from `routing_key_file` at start; never logged.
    var routingKey: String

    /// The kinds paged as `error`: money is wrong or stuck and someone must act. The others are
    /// `warning`.
    public static let errorKinds: Set<String> = [
        NotificationKind.duplicatePayment.rawValue, NotificationKind.latePayment.rawValue,
        NotificationKind.refundStalled.rawValue, NotificationKind.installmentEscalated.rawValue,
    ]

    public init(baseURL: String, routingKey: String) {
        self.baseURL = baseURL
        self.routingKey = routingKey
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        // PagerDuty cuts a summary at 1,024 characters and a dedup_key at 255.
        // `situation_resolved` resolves the incident its alert opened: the same dedup_key.
        var alerted = message.kind
        var action = "trigger"
        if message.kind == NotificationKind.situationResolved.rawValue, case .text(let kind)? = message.payload.fact("resolves") {
            alerted = kind
            action = "resolve"
        }
        // Per order and kind; an alert about a channel (`channel_paused`) is per channel.
        var subject = message.orderID ?? ""
        if subject.isEmpty, case .text(let channel)? = message.payload.fact("channel") { subject = "channel:" + channel }
        if subject.isEmpty { subject = message.key }
        let dedupKey = String("paywatch:\(subject):\(alerted)".prefix(255))
        if action == "resolve" {
            let body = "{\"routing_key\":" + jsonString(routingKey) + ",\"event_action\":\"resolve\",\"dedup_key\":" + jsonString(dedupKey) + "}"
            return HTTPRequest(id: message.id, url: trimmingSlashes(baseURL) + "/v2/enqueue", method: "POST",
                               headers: [("Content-Type", "application/json"), userAgent], body: Array(body.utf8))
        }
        let severity = Self.errorKinds.contains(message.kind) ? "error" : "warning"
        let body = "{\"routing_key\":" + jsonString(routingKey) + ",\"event_action\":\"\(action)\",\"dedup_key\":" + jsonString(dedupKey)
            + ",\"payload\":{\"summary\":" + jsonString(String(message.payload.subject.prefix(1024)))
            + ",\"source\":\"paywatch\",\"severity\":\"\(severity)\",\"custom_details\":" + jsonObject(message.payload.facts) + "}}"
        return HTTPRequest(id: message.id, url: trimmingSlashes(baseURL) + "/v2/enqueue", method: "POST",
                           headers: [("Content-Type", "application/json"), userAgent], body: Array(body.utf8))
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        guard let status = response.status, !(200...299).contains(status) else {
            return scrubbing(httpVerdict(response), secrets: [routingKey])
        }
        let answer = jsonObject(response.body)
        let parts = [answer?["message"] as? String] + ((answer?["errors"] as? [String]) ?? []).map { Optional($0) }
        let detail = parts.compactMap { $0 }.joined(separator: ": ")
        let reason = providerReason(status, detail.isEmpty ? response.body : "PagerDuty: " + detail, secrets: [routingKey])
        if status == 429 || (500...599).contains(status) { return .retry(reason: reason) }
        return .dead(reason: reason, suppress: false)
    }
}
