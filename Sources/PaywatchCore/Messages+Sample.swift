extension Messages {
    /// What a message of `kind` says to a sample order, rendered with the shop's templates and
    /// policy (`paywatch send-test --kind`): order `TEST-0001` of 129.00 CNY created 11 minutes
    /// ago, with whatever the kind is about (a payment, an installment, a refund, a stalled attempt)
    /// made up to match. `locale` picks the language as an order's would.
    public static func sample(kind: NotificationKind, channel: String, policy: Policy, now: Millis,
                              locale: String? = nil) -> MessagePayload {
        let id = "TEST-0001"
        let order = OrderRecord(id: id, amountDue: 12_900, currency: "CNY", createdAt: now - 660_000, expiresAt: now + 1_140_000,
                                locale: locale, payURL: "https://shop.example/pay/\(id)")
        let paid = PaymentRecord(id: "P-TEST", orderID: id, amount: 12_900, status: "succeeded", providerRef: "ch_test",
                                 createdAt: now - 60_000)
        var payments: [PaymentRecord] = []
        var refunds: [RefundRecord] = []
        var failureReason: String?
        switch kind {
        case .paymentConfirmed, .duplicatePayment, .latePayment: payments = [paid]
        case .balanceReminder, .installmentDue, .installmentOverdue, .installmentEscalated:
            payments = [PaymentRecord(id: "P-TEST", orderID: id, amount: 4_000, status: "succeeded", createdAt: now - 86_400_000)]
        case .paymentFailed: failureReason = "card_declined"
        case .refundProgress, .refundStalled:
            payments = [paid]
            refunds = [RefundRecord(id: "R-TEST", amount: 12_900, status: "processing", requestedAt: now - 3_600_000)]
        default: break
        }
        var context = Context(order: order, ledger: Ledger(amountDue: 12_900, payments: payments, refunds: refunds),
                              expiresAt: now + 1_140_000, failureReason: failureReason)
        context.apply(policy)
        context.refund = refunds.first
        context.refundSince = refunds.first?.requestedAt
        if [.balanceReminder, .installmentDue, .installmentOverdue, .installmentEscalated].contains(kind) {
            context.installment = InstallmentNotice(seq: 2, open: 4_300, dueAt: now + 3 * 86_400_000)
        }
        if kind == .duplicatePayment { context.toReturn = (12_900, "paid twice (P-TEST and P-TEST2)") }
        if kind == .payingStalled {
            let pending = PaymentRecord(id: "P-TEST", orderID: id, amount: 12_900, status: "pending", providerRef: "ch_test",
                                        createdAt: now - 900_000)
            context.stalled = StalledAttempt(payment: pending, escalation: 1, of: 3, note: .notAsked("a test message"))
        }
        return payload(kind: kind, channel: channel, context: context)
    }
}
