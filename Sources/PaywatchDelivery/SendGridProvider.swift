import PaywatchCore

/// `provider = "sendgrid"`: an e-mail through SendGrid's v3 Mail Send API: `POST {base_url}/v3/mail/send`
/// with `Authorization: Bearer API_KEY` and the v3 JSON — one personalization to the recipient,
/// `from`, `subject`, and `content` with `text/plain` first (SendGrid refuses any other order) and
/// `text/html` when the message has HTML.
///
/// SendGrid answers `202` with no body, or `{"errors": [{"message": …, "field": …, "help": …}]}`.
/// A 400 whose field is the recipient's address (`personalizations.0.to.0.email`) will fail for
/// every message to it: the address is suppressed.
public struct SendGridProvider: DeliveryProvider {
    public let name = "sendgrid"
    public var baseURL: String
    public var from: String
    public var fromName: String?
    /// Read from `api_key_file` at start; never logged.
    var apiKey: String

    public init(baseURL: String, apiKey: String, from: String, fromName: String? = nil) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.from = from
        self.fromName = fromName
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        guard message.to.contains("@") else { throw ProviderError("sendgrid sends e-mail to addresses with an @") }
        let payload = message.payload
        var sender = "{\"email\":" + jsonString(from)
        if let fromName { sender += ",\"name\":" + jsonString(fromName) }
        sender += "}"
        var content = "[{\"type\":\"text/plain\",\"value\":" + jsonString(payload.text) + "}"
        if let html = payload.html { content += ",{\"type\":\"text/html\",\"value\":" + jsonString(html) + "}" }
        content += "]"
        let body = "{\"personalizations\":[{\"to\":[{\"email\":" + jsonString(message.to) + "}]}],\"from\":" + sender
            + ",\"subject\":" + jsonString(payload.subject) + ",\"content\":" + content + "}"
        return HTTPRequest(
            id: message.id, url: trimmingSlashes(baseURL) + "/v3/mail/send", method: "POST",
            headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(apiKey)"), userAgent],
            body: Array(body.utf8))
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        guard let status = response.status, !(200...299).contains(status) else {
            return scrubbing(httpVerdict(response), secrets: [apiKey])
        }
        let errors = (jsonObject(response.body)?["errors"] as? [[String: Any]]) ?? []
        let detail = errors.map { error in
            let message = error["message"] as? String ?? "error"
            return (error["field"] as? String).map { "\(message) (\($0))" } ?? message
        }.joined(separator: "; ")
        let reason = providerReason(status, detail.isEmpty ? response.body : "SendGrid: " + detail, secrets: [apiKey])
        if status == 400, errors.contains(where: { Self.isRecipientField($0["field"] as? String) }) {
            return .dead(reason: reason, suppress: true)
        }
        if status == 429 || (500...599).contains(status) { return .retry(reason: reason) }
        return .dead(reason: reason, suppress: false)
    }

    /// `personalizations.N.to.M.email`: the recipient's address itself (not a missing `to` list,
    /// which would be paywatch's own mistake).
    static func isRecipientField(_ field: String?) -> Bool {
        guard let parts = field?.split(separator: ".", omittingEmptySubsequences: false), parts.count == 5 else { return false }
        return parts[0] == "personalizations" && parts[2] == "to" && parts[4] == "email"
            && parts[1].allSatisfy(\.isNumber) && parts[3].allSatisfy(\.isNumber)
    }
}
