import Foundation
import PaywatchCore

/// `pw_outbox.alternates`: a message's fallback channels (``OutgoingMessage/alternates``), as a
/// JSON array of `{"key", "channel", "to", "body"}` (and `"not_before"` for one held for the quiet
/// hours) in the order they are tried. The kind, step and order are the row's own.
package enum Alternates {
    package static func encode(_ alternates: [OutgoingMessage]) -> String? {
        guard !alternates.isEmpty else { return nil }
        // Written with the webhook body's writer: written for every fallback decision, read back
        // only when one is needed (JSONSerialization here halved the planning rate).
        var text = "["
        for (index, message) in alternates.enumerated() {
            var object = JSONObjectWriter()
            object.add("key", message.idempotencyKey)
            object.add("channel", message.channel)
            object.add("to", message.recipient)
            object.add("body", message.payload)
            object.add("not_before", message.notBefore)  // held for the quiet hours: until then
            if index > 0 { text += "," }
            text += object.finish()
        }
        return text + "]"
    }

    /// The alternates of a row of `kind` and `step` for `orderID`; each one carries the ones after
    /// it. Anything unreadable (a row edited by hand) reads as none.
    package static func decode(_ text: String?, orderID: String, kind: NotificationKind, step: Int) -> [OutgoingMessage] {
        guard let text, let data = text.data(using: .utf8),
              let list = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else { return [] }
        let messages = list.compactMap { entry -> OutgoingMessage? in
            guard let key = entry["key"] as? String, let channel = entry["channel"] as? String,
                  let to = entry["to"] as? String, let body = entry["body"] as? String else { return nil }
            return OutgoingMessage(idempotencyKey: key, orderID: orderID, kind: kind, step: step, channel: channel,
                                   recipient: to, payload: body, notBefore: (entry["not_before"] as? NSNumber)?.int64Value)
        }
        return messages.indices.map { index in
            var message = messages[index]
            message.alternates = Array(messages[(index + 1)...])
            return message
        }
    }
}
