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

    public var isOps: Bool {
        switch self {
        case .payingStalled, .refundStalled, .duplicatePayment, .latePayment, .installmentEscalated, .deliveryDead:
            return true
        default:
            return false
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
        case .payingStalled, .refundStalled, .duplicatePayment, .latePayment, .installmentEscalated, .deliveryDead:
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
    /// The webhook JSON body, fixed at decision time.
    public var body: String

    public init(
        idempotencyKey: String, orderID: String, kind: NotificationKind, step: Int, channel: String,
        recipient: String, body: String
    ) {
        self.idempotencyKey = idempotencyKey
        self.orderID = orderID
        self.kind = kind
        self.step = step
        self.channel = channel
        self.recipient = recipient
        self.body = body
    }

    /// The same decision always yields the same key: order, kind, step and channel.
    public static func key(orderID: String, kind: NotificationKind, step: Int, channel: String) -> String {
        "pw1:\(orderID):\(kind.rawValue):\(step):\(channel)"
    }
}
