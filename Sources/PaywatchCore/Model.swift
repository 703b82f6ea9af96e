/// Milliseconds since the Unix epoch (UTC). Every time in paywatch is one of these; the clock is
/// always passed in, never read inside the domain.
public typealias Millis = Int64

/// `orders.status`, owned by paywatch and derived from the ledger.
public enum OrderStatus: String, Sendable, Hashable, CaseIterable, Codable {
    case unpaid
    case paying
    case partiallyPaid = "partially_paid"
    case paid
    case failed
    case refunding
    case refunded
    case cancelled

    /// No rule ever moves an order out of a terminal status.
    public var isTerminal: Bool { self == .refunded || self == .cancelled }
}

public enum PaymentStatus: String, Sendable, Hashable, Codable {
    case pending, succeeded, failed
}

public enum RefundStatus: String, Sendable, Hashable, Codable {
    case requested, processing, succeeded, failed
}

/// One `orders` row as the shop wrote it. Columns that SQL types loosely arrive as optionals and
/// raw strings: the validator decides whether the row is usable, the store never throws on content.
public struct OrderRecord: Sendable, Hashable {
    public var id: String
    public var amountDue: Int64?
    public var currency: String
    public var createdAt: Millis?
    public var expiresAt: Millis?
    public var email: String?
    public var phone: String?
    public var pushToken: String?
    public var locale: String?
    public var timeZone: String?
    public var payURL: String?
    public var customerName: String?
    /// Picks the hold from `[unpaid.hold_by_method]`.
    public var paymentMethod: String?

    public init(
        id: String, amountDue: Int64?, currency: String = "CNY", createdAt: Millis?, expiresAt: Millis? = nil,
        email: String? = nil, phone: String? = nil, pushToken: String? = nil, locale: String? = nil,
        timeZone: String? = nil, payURL: String? = nil, customerName: String? = nil, paymentMethod: String? = nil
    ) {
        self.id = id
        self.amountDue = amountDue
        self.currency = currency
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.email = email
        self.phone = phone
        self.pushToken = pushToken
        self.locale = locale
        self.timeZone = timeZone
        self.payURL = payURL
        self.customerName = customerName
        self.paymentMethod = paymentMethod
    }
}

/// One `payments` row (one payment attempt). `status` stays a raw string until validated.
public struct PaymentRecord: Sendable, Hashable {
    public var id: String
    public var orderID: String
    public var amount: Int64?
    public var status: String
    public var providerRef: String?
    public var method: String?
    public var failureReason: String?
    public var createdAt: Millis?

    public init(
        id: String, orderID: String, amount: Int64?, status: String, providerRef: String? = nil,
        method: String? = nil, failureReason: String? = nil, createdAt: Millis?
    ) {
        self.id = id
        self.orderID = orderID
        self.amount = amount
        self.status = status
        self.providerRef = providerRef
        self.method = method
        self.failureReason = failureReason
        self.createdAt = createdAt
    }

    public var paymentStatus: PaymentStatus? { PaymentStatus(rawValue: status) }
}

public struct InstallmentRecord: Sendable, Hashable {
    public var seq: Int64
    public var amount: Int64?
    public var dueAt: Millis?
    public init(seq: Int64, amount: Int64?, dueAt: Millis?) {
        self.seq = seq
        self.amount = amount
        self.dueAt = dueAt
    }
}

public struct RefundRecord: Sendable, Hashable {
    public var id: String
    public var amount: Int64?
    public var status: String
    public var requestedAt: Millis?
    public init(id: String, amount: Int64?, status: String, requestedAt: Millis?) {
        self.id = id
        self.amount = amount
        self.status = status
        self.requestedAt = requestedAt
    }
    public var refundStatus: RefundStatus? { RefundStatus(rawValue: status) }
}

/// What paywatch remembers about an order between two plans.
public struct TrackedState: Sendable, Hashable {
    /// The status paywatch last wrote; nil the first time the order is seen.
    public var status: OrderStatus?
    /// Highest step decided per series ("unpaid_reminder" → 2). A decision is never made twice.
    public var marks: [String: Int]
    public var firstSeenAt: Millis?

    public init(status: OrderStatus? = nil, marks: [String: Int] = [:], firstSeenAt: Millis? = nil) {
        self.status = status
        self.marks = marks
        self.firstSeenAt = firstSeenAt
    }
}

/// Everything the planner needs to decide about one order.
public struct OrderSnapshot: Sendable, Hashable {
    public var orderID: String
    /// nil when payments (or other rows) point to an order that does not exist.
    public var order: OrderRecord?
    public var payments: [PaymentRecord]
    public var installments: [InstallmentRecord]
    public var refunds: [RefundRecord]
    public var state: TrackedState
    /// Set by the store when the rows could not be read as they are (an id that is not UTF-8
    /// text, a value of the wrong kind): the order is quarantined with this reason.
    public var readProblem: String?
    /// The order's addresses found in `suppressions` (loaded only when that table has rows).
    public var suppressions: [Suppression] = []

    public init(
        orderID: String, order: OrderRecord?, payments: [PaymentRecord] = [], installments: [InstallmentRecord] = [],
        refunds: [RefundRecord] = [], state: TrackedState = TrackedState(), readProblem: String? = nil,
        suppressions: [Suppression] = []
    ) {
        self.suppressions = suppressions
        self.orderID = orderID
        self.order = order
        self.payments = payments
        self.installments = installments
        self.refunds = refunds
        self.state = state
        self.readProblem = readProblem
    }
}

/// A row of the contract's `suppressions` table: an address not to write to on a channel.
public struct Suppression: Sendable, Hashable {
    public var channel: String
    public var address: String
    public var reason: String

    public init(channel: String, address: String, reason: String) {
        self.channel = channel
        self.address = address
        self.reason = reason
    }
}

extension OrderSnapshot {
    /// Why `address` is suppressed on `channel`, or nil when it is not.
    public func suppression(channel: String, address: String) -> String? {
        suppressions.first { $0.channel == channel && $0.address == address }?.reason
    }
}
