/// Every message paywatch sends has a kind. Customer kinds go to the channels of the rule's
/// section; ops kinds go to the `ops` channel.
public enum NotificationKind: String, Sendable, Hashable, CaseIterable, Codable {
    // customer
    case unpaidReminder = "unpaid_reminder"
    case orderCancelled = "order_cancelled"
    case balanceReminder = "balance_reminder"
    case installmentDue = "installment_due"
    case installmentOverdue = "installment_overdue"
    case paymentConfirmed = "payment_confirmed"
    case paymentFailed = "payment_failed"
    case refundProgress = "refund_progress"
    // ops
    case payingStalled = "paying_stalled"
    case refundStalled = "refund_stalled"
    case duplicatePayment = "duplicate_payment"
    case latePayment = "late_payment"
    case installmentEscalated = "installment_escalated"
    case deliveryDead = "delivery_dead"
    /// A situation ops was alerted to cleared (PagerDuty resolves the incident).
    case situationResolved = "situation_resolved"
    /// A channel's circuit breaker opened: about no order (its `orderID` is empty).
    case channelPaused = "channel_paused"

    public var isOps: Bool {
        switch self {
        case .payingStalled, .refundStalled, .duplicatePayment, .latePayment, .installmentEscalated, .deliveryDead,
             .situationResolved, .channelPaused:
            return true
        default:
            return false
        }
    }

    /// A reminder to pay (the unpaid and failed-payment series, balance and installment ones):
    /// what `[delivery] max_per_order_per_day` holds back. Transactional notices (a confirmation,
    /// a cancellation, a failed payment, a refund's progress) always go. Each step of a series
    /// says the same thing again, so a later step makes an earlier one still held for the quiet
    /// hours pointless: it is collapsed into the later one (notices never are).
    public var isReminder: Bool {
        switch self {
        case .unpaidReminder, .balanceReminder, .installmentDue, .installmentOverdue: return true
        default: return false
        }
    }

    /// Whether a message decided earlier is still right to deliver now that the order has
    /// `status`. A reminder to pay an order that has since been paid or cancelled is superseded.
    public func stillApplies(to status: OrderStatus?) -> Bool {
        guard let status else { return true }
        switch self {
        case .unpaidReminder: return status == .unpaid || status == .failed
        case .paymentFailed: return status == .failed
        case .orderCancelled: return status == .cancelled
        case .balanceReminder, .installmentDue, .installmentOverdue: return status == .partiallyPaid
        case .paymentConfirmed: return status == .paid || status == .refunding || status == .refunded
        case .refundProgress: return true
        case .payingStalled, .refundStalled, .duplicatePayment, .latePayment, .installmentEscalated, .deliveryDead,
             .situationResolved, .channelPaused:
            return true
        }
    }
}

/// A message that was decided and must be delivered (through the outbox).
public struct OutgoingMessage: Sendable, Hashable {
    public var idempotencyKey: String
    public var orderID: String
    public var kind: NotificationKind
    public var step: Int
    public var channel: String
    /// The address: E.164 phone, e-mail, push token, or a channel's fixed `to`.
    public var recipient: String
    /// What it says: a ``MessagePayload`` in its stored form (``MessagePayload/encoded()``), fixed
    /// at decision time. (A row written by an earlier paywatch holds the webhook JSON instead;
    /// ``content`` reads both.)
    public var payload: String
    /// `fallback = true`: the same decision on the next listed channels, in order, each with its
    /// own key, address and text. Stored with the row; when this message is refused for good (dead,
    /// or its address suppressed before it went out) the first of them not suppressed takes its place.
    public var alternates: [OutgoingMessage] = []
    /// `situation_resolved`: the ops kind whose situation cleared. Not stored: the store writes
    /// the message only if ops was alerted of that kind for the order (an alert never sent, such
    /// as a stalled payment the provider answered for, needs no resolution).
    public var resolves: NotificationKind?
    /// Not delivered before this instant (the end of the quiet hours it was decided in); nil: at once.
    /// Stored as the outbox row's `due_at`.
    public var notBefore: Millis?
    /// A step of a reminder series on a channel with quiet hours: writing it supersedes the earlier
    /// steps of the same kind on the same channel that are still held, never attempted (they are
    /// collapsed into this one).
    public var collapsesHeld: Bool

    public init(
        idempotencyKey: String, orderID: String, kind: NotificationKind, step: Int, channel: String,
        recipient: String, payload: String, notBefore: Millis? = nil, collapsesHeld: Bool = false,
        alternates: [OutgoingMessage] = [], resolves: NotificationKind? = nil
    ) {
        self.alternates = alternates
        self.resolves = resolves
        self.idempotencyKey = idempotencyKey
        self.orderID = orderID
        self.kind = kind
        self.step = step
        self.channel = channel
        self.recipient = recipient
        self.payload = payload
        self.notBefore = notBefore
        self.collapsesHeld = collapsesHeld
    }

    /// The payload read back; a stored text that is no payload at all reads as its text.
    public var content: MessagePayload {
        MessagePayload.decode(payload) ?? MessagePayload(subject: "", text: payload)
    }

    /// The `webhook` provider's JSON body for this message.
    public var webhookBody: String {
        content.webhookJSON(key: idempotencyKey, kind: kind.rawValue, channel: channel, orderID: orderID, to: recipient)
    }

    /// The same decision always yields the same key: order, kind, step and channel.
    /// `pw1:ORDER:KIND:STEP:CHANNEL`, with the order id percent-encoded outside `A-Z a-z 0-9 - . _ ~`
    /// (so a key is printable ASCII, safe in a header, and `:` only separates its parts).
    public static func key(orderID: String, kind: NotificationKind, step: Int, channel: String) -> String {
        "pw1:\(percentEncoded(orderID)):\(kind.rawValue):\(step):\(channel)"
    }

    /// The key of the `delivery_dead` escalation for the message keyed `key`: its own namespace,
    /// so it can never equal an order message's key.
    public static func deadLetterKey(for key: String) -> String {
        "pw1-dead:" + key
    }

    /// `text` with every byte outside the URI unreserved set written `%XX`.
    public static func percentEncoded(_ text: String) -> String {
        let utf8 = text.utf8
        if utf8.allSatisfy(isUnreserved) { return text }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * 3)
        for byte in utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
