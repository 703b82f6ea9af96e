import Foundation

/// What a message says, rendered from the templates when it is decided and stored with it in the
/// outbox: a subject (e-mail subject, push title), the text, an optional HTML part, and the facts
/// it is about (amounts, ids, times) in a fixed order. Each provider builds its own request from
/// it — the webhook JSON, a Twilio form, a MIME e-mail, an FCM message — so no provider has to
/// read another's wire format back.
public struct MessagePayload: Sendable, Hashable {
    public enum Value: Sendable, Hashable {
        case text(String)
        case number(Int64)

        /// The value as text (a number in decimal): for providers whose fields are all strings (FCM data).
        public var text: String {
            switch self {
            case .text(let text): return text
            case .number(let number): return String(number)
            }
        }
    }

    public struct Fact: Sendable, Hashable {
        public var name: String
        public var value: Value

        public init(_ name: String, _ value: Value) {
            self.name = name
            self.value = value
        }
    }

    public var subject: String
    public var text: String
    public var html: String?
    public var facts: [Fact]

    public init(subject: String, text: String, html: String? = nil, facts: [Fact] = []) {
        self.subject = subject
        self.text = text
        self.html = html
        self.facts = facts
    }

    /// The first fact named `name`.
    public func fact(_ name: String) -> Value? {
        facts.first { $0.name == name }?.value
    }

    /// Adds a fact; a nil value adds nothing (as the webhook JSON leaves out what is not known).
    public mutating func add(_ name: String, _ value: String?) {
        if let value { facts.append(Fact(name, .text(value))) }
    }

    public mutating func add(_ name: String, _ value: Int64?) {
        if let value { facts.append(Fact(name, .number(value))) }
    }

    public mutating func add(_ name: String, _ value: Int?) {
        add(name, value.map(Int64.init))
    }

    // MARK: Stored form

    /// The outbox's form: `{"v":1,"subject":…,"text":…,"html":…,"facts":[["name",value],…]}` (facts
    /// as pairs, so their order survives).
    public func encoded() -> String {
        var out = "{\"v\":1,\"subject\":"
        out.reserveCapacity(64 + subject.utf8.count + text.utf8.count + facts.count * 24)
        JSONObjectWriter.appendString(subject, to: &out)
        out += ",\"text\":"
        JSONObjectWriter.appendString(text, to: &out)
        if let html {
            out += ",\"html\":"
            JSONObjectWriter.appendString(html, to: &out)
        }
        out += ",\"facts\":["
        for (index, fact) in facts.enumerated() {
            out += index == 0 ? "[" : ",["
            JSONObjectWriter.appendString(fact.name, to: &out)
            out += ","
            switch fact.value {
            case .text(let text): JSONObjectWriter.appendString(text, to: &out)
            case .number(let number): out += String(number)
            }
            out += "]"
        }
        out += "]}"
        return out
    }

    /// Reads the outbox's form back. A row written before payloads were stored holds the webhook
    /// JSON itself (`idempotency_key`, `subject`, `body`, then the facts): it reads as the same
    /// payload, its facts in name order. Nil when `stored` is neither.
    public static func decode(_ stored: String) -> MessagePayload? {
        // Our own form has one reader; the general one reads only the webhook JSON of earlier rows.
        if let payload = PayloadReader.read(stored) { return payload }
        guard let object = try? JSONSerialization.jsonObject(with: Data(stored.utf8)) as? [String: Any],
              object["idempotency_key"] != nil else { return nil }
        let envelope: Set<String> = ["idempotency_key", "kind", "channel", "order_id", "to", "subject", "body"]
        let facts = object.keys.filter { !envelope.contains($0) }.sorted().compactMap { name in
            value(object[name] as Any).map { Fact(name, $0) }
        }
        return MessagePayload(subject: object["subject"] as? String ?? "", text: object["body"] as? String ?? "", facts: facts)
    }

    private static func value(_ any: Any) -> Value? {
        if let text = any as? String { return .text(text) }
        // JSONSerialization gives NSNumber for numbers; a whole one within Int reads as one.
        if let number = any as? Int { return .number(Int64(number)) }
        return nil
    }

    // MARK: The webhook provider's body

    /// The `webhook` provider's JSON body (DESIGN.md "Notifications"): the envelope (key, kind,
    /// channel, order, address), `subject`, `body` (the text), `html` when there is one, then the
    /// facts in their order.
    public func webhookJSON(key: String, kind: String, channel: String, orderID: String?, to: String) -> String {
        var json = JSONObjectWriter()
        json.add("idempotency_key", key)
        json.add("kind", kind)
        json.add("channel", channel)
        json.add("order_id", orderID)
        json.add("to", to)
        json.add("subject", subject)
        json.add("body", text)
        json.add("html", html)
        for fact in facts {
            switch fact.value {
            case .text(let text): json.add(fact.name, text)
            case .number(let number): json.add(fact.name, number)
            }
        }
        return json.finish()
    }
}
