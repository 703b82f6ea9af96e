import PaywatchCore
import PaywatchStore

/// What the conformance suite needs from a backend: one fresh database, stores opened on it, and
/// the shop's side of the contract tables (`orders`, `payments`, `installments`, `refunds`,
/// `suppressions`) written and read as a shop would, without paywatch.
///
/// The contract with the suite:
/// - A harness value holds **one fresh, empty database** and is used by **one check**: the
///   caller makes a new harness per check and calls ``close()`` after it, whether it passed or not.
/// - ``makeStore(leaseOwner:)`` may be called several times: every store is on the **same**
///   database, with its own lease owner (the multi-replica checks), and is returned migrated
///   (`migrate()` already called, as the daemon does at start). A check makes its first store
///   before any shop write, so a backend whose `migrate()` creates the contract tables has them.
/// - Every time is a ``Millis`` (integer milliseconds since the epoch); a backend that stores
///   `timestamptz` converts both ways, to the millisecond.
/// - The shop's writes go through the backend's own connection, outside paywatch, exactly as a
///   shop's application would write them (so whatever the store relies on to notice a change —
///   triggers, a version — must see them).
/// - The suite never reads or writes paywatch's own tables: only what this protocol offers and
///   what ``OrderStore`` returns.
public protocol ConformanceHarness: Sendable {
    /// A store on this harness's database, migrated, whose leases belong to `leaseOwner`.
    func makeStore(leaseOwner: String) async throws -> any OrderStore
    /// The shop inserts an order (`orders.status` left to its default, `unpaid`).
    func insertOrder(_ order: ShopOrder) async throws
    /// The shop updates some columns of an order.
    func updateOrder(id: String, _ columns: [ShopOrderColumn]) async throws
    /// The shop deletes an order (its payments and other rows stay as they are).
    func deleteOrder(id: String) async throws
    /// The shop inserts a payment attempt.
    func insertPayment(_ payment: ShopPayment) async throws
    /// The shop updates a payment attempt's status (and `failure_reason`, written as given).
    func updatePayment(id: String, status: PaymentStatus, failureReason: String?) async throws
    /// The shop inserts an installment of an order's plan.
    func insertInstallment(_ installment: ShopInstallment) async throws
    /// The shop inserts a refund.
    func insertRefund(_ refund: ShopRefund) async throws
    /// The shop updates a refund's status.
    func updateRefund(id: String, status: RefundStatus) async throws
    /// The shop (an unsubscribe) puts an address into `suppressions` on a channel.
    func insertSuppression(channel: String, address: String, reason: String, createdAt: Millis) async throws
    /// `orders.status` of an order as the shop reads it; nil when there is no such order.
    func orderStatus(id: String) async throws -> String?
    /// A `payments` row's status and failure reason as the shop reads them; nil when there is no such row.
    func paymentState(id: String) async throws -> ShopPaymentState?
    /// Releases the database (drops it, or removes its folder). The stores the harness made are
    /// closed here if the check did not close them.
    func close() async throws
}

/// An `orders` row as the shop writes it: the contract's columns, defaults for all but the id and
/// the creation time.
public struct ShopOrder: Sendable, Hashable {
    public var id: String
    /// Minor units of `currency`.
    public var amountDue: Int64
    public var currency: String
    public var createdAt: Millis
    public var expiresAt: Millis?
    public var email: String?
    public var phone: String?
    public var pushToken: String?
    public var locale: String?
    public var timeZone: String?
    public var payURL: String?
    public var customerName: String?
    public var paymentMethod: String?

    public init(id: String, amountDue: Int64 = 100, currency: String = "CNY", createdAt: Millis, expiresAt: Millis? = nil,
                email: String? = nil, phone: String? = nil, pushToken: String? = nil, locale: String? = nil,
                timeZone: String? = nil, payURL: String? = nil, customerName: String? = nil, paymentMethod: String? = nil) {
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

/// One column of an `orders` row set by ``ConformanceHarness/updateOrder(id:_:)``.
public enum ShopOrderColumn: Sendable, Hashable {
    case amountDue(Int64)
    case expiresAt(Millis?)
    case email(String?)
    case phone(String?)
    case paymentMethod(String?)
}

/// A `payments` row (one payment attempt) as the shop writes it.
public struct ShopPayment: Sendable, Hashable {
    public var id: String
    public var orderID: String
    /// Minor units of the order's currency.
    public var amount: Int64
    public var status: PaymentStatus
    public var providerRef: String?
    public var method: String?
    public var failureReason: String?
    public var createdAt: Millis

    public init(id: String, orderID: String, amount: Int64 = 100, status: PaymentStatus = .succeeded, providerRef: String? = nil,
                method: String? = nil, failureReason: String? = nil, createdAt: Millis) {
        self.id = id
        self.orderID = orderID
        self.amount = amount
        self.status = status
        self.providerRef = providerRef
        self.method = method
        self.failureReason = failureReason
        self.createdAt = createdAt
    }
}

/// What the shop reads back of a `payments` row.
public struct ShopPaymentState: Sendable, Hashable {
    /// The stored word (`pending`, `succeeded`, `failed`).
    public var status: String
    public var failureReason: String?

    public init(status: String, failureReason: String?) {
        self.status = status
        self.failureReason = failureReason
    }
}

/// An `installments` row: one part of an order's payment plan.
public struct ShopInstallment: Sendable, Hashable {
    public var orderID: String
    /// 1, 2, …: the order of the installments.
    public var seq: Int
    public var amount: Int64
    public var dueAt: Millis

    public init(orderID: String, seq: Int, amount: Int64, dueAt: Millis) {
        self.orderID = orderID
        self.seq = seq
        self.amount = amount
        self.dueAt = dueAt
    }
}

/// A `refunds` row as the shop writes it.
public struct ShopRefund: Sendable, Hashable {
    public var id: String
    public var orderID: String
    public var amount: Int64
    public var status: RefundStatus
    public var requestedAt: Millis

    public init(id: String, orderID: String, amount: Int64, status: RefundStatus = .requested, requestedAt: Millis) {
        self.id = id
        self.orderID = orderID
        self.amount = amount
        self.status = status
        self.requestedAt = requestedAt
    }
}
