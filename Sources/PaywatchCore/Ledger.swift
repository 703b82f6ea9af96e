/// The money side of an order, derived from its payments and refunds. `amountPaid` is the sum of
/// succeeded payments, always; nothing else counts as money received.
public struct Ledger: Sendable, Hashable {
    public var amountDue: Int64
    public var amountPaid: Int64
    public var amountRefunded: Int64
    public var pendingPayments: Int
    public var succeededPayments: Int
    public var failedPayments: Int
    public var activeRefunds: Int
    /// Status of the most recent attempt (by `created_at`, then id).
    public var latestAttempt: PaymentStatus?

    public var amountRemaining: Int64 { max(0, amountDue.saturatingSubtract(amountPaid)) }

    /// Builds the ledger from validated rows (see ``Validator``). Each payment and refund id
    /// counts once, however often its row appears (a shop table without a primary key); sums
    /// saturate instead of trapping (the validator quarantines rows whose sums overflow).
    public init(amountDue: Int64, payments: [PaymentRecord], refunds: [RefundRecord]) {
        self.amountDue = amountDue
        var paid: Int64 = 0
        var pending = 0
        var succeeded = 0
        var failed = 0
        var seen: Set<String> = []
        for payment in payments where seen.insert(payment.id).inserted {
            switch payment.paymentStatus {
            case .succeeded:
                paid = paid.saturatingAdd(payment.amount ?? 0)
                succeeded += 1
            case .pending: pending += 1
            case .failed: failed += 1
            case nil: break
            }
        }
        var refunded: Int64 = 0
        var active = 0
        seen = []
        for refund in refunds where seen.insert(refund.id).inserted {
            switch refund.refundStatus {
            case .succeeded: refunded = refunded.saturatingAdd(refund.amount ?? 0)
            case .requested, .processing: active += 1
            case .failed, nil: break
            }
        }
        self.amountPaid = paid
        self.amountRefunded = refunded
        self.pendingPayments = pending
        self.succeededPayments = succeeded
        self.failedPayments = failed
        self.activeRefunds = active
        self.latestAttempt = Ledger.sortedAttempts(payments).last?.paymentStatus
    }

    /// Payments in the order they were made: `created_at`, then id (stable for equal times).
    public static func sortedAttempts(_ payments: [PaymentRecord]) -> [PaymentRecord] {
        payments.sorted { ($0.createdAt ?? 0, $0.id) < ($1.createdAt ?? 0, $1.id) }
    }

    /// The status the ledger implies, before any time-based rule (the hold) is applied.
    /// `previous` terminal statuses are kept: a cancelled order is never revived by a late payment
    /// (that is escalated instead), a refunded order stays refunded.
    /// - Parameter heldPending: how many pending attempts still hold the order (those pending for
    ///   longer than `[paying].give_up_after` do not); nil: all of them.
    public func derivedStatus(previous: OrderStatus?, heldPending: Int? = nil) -> OrderStatus {
        if let previous, previous.isTerminal { return previous }
        if activeRefunds > 0 { return .refunding }
        if amountRefunded > 0, amountPaid > 0, amountRefunded >= amountPaid { return .refunded }
        if amountPaid >= amountDue, amountPaid > 0 || amountDue == 0 { return .paid }
        if (heldPending ?? pendingPayments) > 0 { return .paying }
        if amountPaid > 0 { return .partiallyPaid }
        if latestAttempt == .failed { return .failed }
        // A given-up pending attempt (latest) leaves the order unpaid, like no attempt at all.
        return .unpaid
    }
}
