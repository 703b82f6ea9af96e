import Foundation
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
    /// The webhook JSON as a release before payloads stored it (`{"idempotency_key":…`): the
    /// webhook provider sends it byte for byte, as it was decided; other providers read `payload`.
    public var storedWebhookBody: String?

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
                  orderID: message.orderID.isEmpty ? nil : message.orderID, to: message.recipient, payload: message.content)
        if message.payload.hasPrefix("{\"idempotency_key\":") { storedWebhookBody = message.payload }
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
public protocol DeliveryProvider: Sendable, CustomStringConvertible, CustomReflectable {
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

    /// Never the provider's settings (they hold tokens, keys, passwords, secret URLs): printed or
    /// dumped, a provider is its name.
    public var description: String { "\(name) provider" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
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
        let body = message.storedWebhookBody ?? message.payload.webhookJSON(
            key: message.key, kind: message.kind, channel: message.channel, orderID: message.orderID, to: message.to)
        return HTTPRequest(id: message.id, url: url, method: "POST", headers: headers(idempotencyKey: message.key),
                           body: Array(body.utf8))
    }

    /// ``httpVerdict(_:)``, its reason scrubbed of the bearer token (a gateway may echo headers).
    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        scrubbing(httpVerdict(response), secrets: token.map { [$0] } ?? [])
    }

    /// The webhook request headers for one message.
    public func headers(idempotencyKey: String) -> [(String, String)] {
        var headers: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", idempotencyKey),
            userAgent,
        ]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        return headers
    }
}

// MARK: - Shared by the HTTP providers

/// `text` with every occurrence of each secret replaced by `****`. Applied to an answer before it
/// becomes a reason (which is logged and stored): a gateway may echo what it was sent, and the
/// body is scrubbed whole, before it is cut, so no prefix of a secret survives the cut.
func scrubbing(_ text: String, secrets: [String]) -> String {
    var out = text
    for secret in secrets where !secret.isEmpty {
        out = out.replacingOccurrences(of: secret, with: "****")
    }
    return out
}

/// `verdict` with its reason scrubbed of `secrets`: for the answers a provider reads as
/// ``httpVerdict(_:)`` does (2xx, transport errors, whose curl text may name the URL).
func scrubbing(_ verdict: ProviderVerdict, secrets: [String]) -> ProviderVerdict {
    switch verdict {
    case .delivered: return .delivered
    case .retry(let reason): return .retry(reason: scrubbing(reason, secrets: secrets))
    case .dead(let reason, let suppress): return .dead(reason: scrubbing(reason, secrets: secrets), suppress: suppress)
    }
}

/// `HTTP STATUS: DETAIL` (or `HTTP STATUS` without one): the detail is the provider's own error
/// text, scrubbed of `secrets` and summarised as ``httpVerdict(_:)`` summarises a body.
func providerReason(_ status: Int, _ detail: String, secrets: [String]) -> String {
    let summary = bodySummary(scrubbing(detail, secrets: secrets))
    return summary.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(summary)"
}

/// The answer's JSON object, or nil when it is not one (an HTML error page from a proxy).
func jsonObject(_ body: String) -> [String: Any]? {
    try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
}

/// `base` without trailing slashes, so `base + "/v3/mail/send"` has one.
func trimmingSlashes(_ base: String) -> String {
    var base = Substring(base)
    while base.hasSuffix("/") { base = base.dropLast() }
    return String(base)
}

/// `application/x-www-form-urlencoded` (the WHATWG URL standard): every byte but `A–Z a–z 0–9 * - . _`
/// percent-encoded, spaces as `+`. A `+` of an E.164 number becomes `%2B`, so it is not read as a space.
func formEncoded(_ fields: [(String, String)]) -> String {
    func encode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "):
                out += "+"
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
    return fields.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
}

/// A JSON string literal.
func jsonString(_ text: String) -> String {
    var out = ""
    JSONObjectWriter.appendString(text, to: &out)
    return out
}

/// The facts as one JSON object, in their order (numbers as numbers).
func jsonObject(_ facts: [MessagePayload.Fact]) -> String {
    var json = JSONObjectWriter()
    for fact in facts {
        switch fact.value {
        case .text(let text): json.add(fact.name, text)
        case .number(let number): json.add(fact.name, number)
        }
    }
    return json.finish()
}

/// Sent with every request, so a provider's logs tell paywatch from other clients.
let userAgent = ("User-Agent", "paywatch/0.1")
