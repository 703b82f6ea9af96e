import PaywatchCore

/// One outbox message as a provider sees it: who, what kind, and what it says.
public struct ProviderMessage: Sendable {
    /// The outbox id, echoed back as the transfer's id.
    public var id: Int64
    /// The idempotency key: the same every time the same decision is made.
    public var key: String
    /// A ``NotificationKind`` raw value, or `test` (`paywatch send-test`).
    public var kind: String
    public var channel: String
    /// Nil for a message about no order (`paywatch send-test`).
    public var orderID: String?
    /// The address: E.164 phone, e-mail, push token, or the channel's fixed `to`.
    public var to: String
    public var payload: MessagePayload

    public init(id: Int64, key: String, kind: String, channel: String, orderID: String?, to: String,
                payload: MessagePayload) {
        self.id = id
        self.key = key
        self.kind = kind
        self.channel = channel
        self.orderID = orderID
        self.to = to
        self.payload = payload
    }

    public init(id: Int64, _ message: OutgoingMessage) {
        self.init(id: id, key: message.idempotencyKey, kind: message.kind.rawValue, channel: message.channel,
                  orderID: message.orderID, to: message.recipient, payload: message.content)
    }
}

/// What a provider made of an answer. When a retry happens is the retry policy's business
/// (backoff, `Retry-After`, the attempt cap): see ``classifyDelivery(_:verdict:attempt:policy:nowMs:jitter:)``.
public enum ProviderVerdict: Sendable, Equatable {
    case delivered
    /// Worth trying again: throttled, unavailable, a transport error.
    case retry(reason: String)
    /// Never worth trying again. `suppress`: the address itself is bad (an invalid number, an
    /// unregistered push token), not just this message.
    case dead(reason: String, suppress: Bool)
}

/// Why a message cannot be sent through a provider at all (an address it cannot take): the
/// message is dead without a transfer.
public struct ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    /// Not the message's fault and soon over (the provider's access token is being fetched): the
    /// message is retried with the usual backoff instead of dead.
    public let transient: Bool

    public init(_ description: String) {
        self.description = description
        transient = false
    }

    private init(transient description: String) {
        self.description = description
        transient = true
    }

    public static func transient(_ description: String) -> ProviderError {
        ProviderError(transient: description)
    }
}

/// A delivery provider: builds exactly the request its service documents for one message, and
/// reads the answer. One per `[channels.NAME] provider = "…"`. Requests carry credentials; a
/// provider never puts them anywhere else (reasons, logs).
public protocol DeliveryProvider: Sendable {
    /// The provider's name as the configuration writes it (`webhook`, …).
    var name: String { get }
    func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest
    func verdict(for response: HTTPResponse) -> ProviderVerdict
    /// Stops what the provider runs of its own (a token refresher's transport). Called when its
    /// runtime ends (a stop, or a reload that replaces it).
    func shutdown()
}

extension DeliveryProvider {
    public func shutdown() {}
}

/// The reading of an HTTP answer that most providers start from: 2xx delivered; 408, 429, 5xx and
/// transport errors retried; any other status (1xx, 3xx, other 4xx, ≥ 600) dead. Reasons hold the
/// status and at most 200 characters of the answer, never the request.
public func httpVerdict(_ response: HTTPResponse) -> ProviderVerdict {
    guard let status = response.status else {
        return .retry(reason: "transport error: \(response.error ?? "unknown")")
    }
    if (200...299).contains(status) { return .delivered }
    let summary = bodySummary(response.body)
    let reason = summary.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(summary)"
    if status == 408 || status == 429 || (500...599).contains(status) { return .retry(reason: reason) }
    return .dead(reason: reason, suppress: false)
}

/// `provider = "webhook"`: the message as JSON (DESIGN.md "Notifications"), POSTed to the channel's
/// `url` with `Idempotency-Key` and, with a `token_file`, `Authorization: Bearer`.
public struct WebhookProvider: DeliveryProvider {
    public let name = "webhook"
    public var url: String
    /// Read from `token_file` at start; never logged.
    var token: String?

    public init(url: String, token: String? = nil) {
        self.url = url
        self.token = token
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        let body = message.payload.webhookJSON(key: message.key, kind: message.kind, channel: message.channel,
                                               orderID: message.orderID, to: message.to)
        return HTTPRequest(id: message.id, url: url, method: "POST", headers: headers(idempotencyKey: message.key),
                           body: Array(body.utf8))
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        httpVerdict(response)
    }

    /// The webhook request headers for one message.
    public func headers(idempotencyKey: String) -> [(String, String)] {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", idempotencyKey),
            ("User-Agent", "paywatch/0.1"),
        ]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return headers
    }
}
