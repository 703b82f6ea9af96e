/// Subjects and bodies of customer and ops messages, in English and Chinese (chosen by the
/// order's `locale`: `zh*` → Chinese, anything else → English), and the webhook JSON body.
public enum Messages {
    /// Fields a message is written from; all are already validated.
    public struct Context: Sendable {
        public var order: OrderRecord
        public var ledger: Ledger
        public var expiresAt: Millis
        public var failureReason: String?
        /// The installment (or, without a plan, the balance) an installment or balance message is about.
        public var installment: InstallmentNotice?
        /// The refund a refund message is about.
        public var refund: RefundRecord?
        /// Since when that refund has not moved (`refund_stalled`).
        public var refundSince: Millis?
        /// Money to return (`duplicate_payment`) and why.
        public var toReturn: (amount: Int64, why: String)?
        /// `[templates] support_contact`, added to failure and refund messages.
        public var supportContact: String?
        /// Chinese for a locale that is unset or neither `zh*` nor `en*`.
        public var chineseByDefault = false
        /// The attempt a `paying_stalled` message is about.
        public var stalled: StalledAttempt?
        /// The ops kind a `situation_resolved` message is about, and what cleared it.
        public var resolved: (kind: NotificationKind, how: String)?
        /// The order's status as planned (`situation_resolved`).
        public var status: OrderStatus?
        /// The compiled customer templates (`Policy.templates`).
        public var templates: Templates = .builtIn
        /// What the shop's policy adds to every message: its support contact, its default language
        /// and its templates.
        public mutating func apply(_ policy: Policy) {
            supportContact = policy.supportContact
            chineseByDefault = policy.chineseByDefault
            templates = policy.templates
        }

        public init(order: OrderRecord, ledger: Ledger, expiresAt: Millis, failureReason: String? = nil,
                    installment: InstallmentNotice? = nil, refund: RefundRecord? = nil, refundSince: Millis? = nil) {
            self.order = order
            self.ledger = ledger
            self.expiresAt = expiresAt
            self.failureReason = failureReason
            self.installment = installment
            self.refund = refund
            self.refundSince = refundSince
        }
    }

    /// A stalled pending attempt (`paying_stalled`): which escalation, and what paywatch did.
    public struct StalledAttempt: Sendable, Hashable {
        public enum Note: Sendable, Hashable {
            /// The provider is asked; this message goes out only if it gives no definite answer.
            case asked
            /// The provider cannot be asked, and why.
            case notAsked(String)
            /// Past `give_up_after`: the attempt no longer holds the order.
            case givenUp
        }
        public var payment: PaymentRecord
        public var escalation: Int
        public var of: Int
        public var note: Note
        public init(payment: PaymentRecord, escalation: Int, of: Int, note: Note) {
            self.payment = payment
            self.escalation = escalation
            self.of = of
            self.note = note
        }
    }

    /// What is due of one installment: its `seq` (nil for the balance of an order without a
    /// plan), the part still open and its due time.
    public struct InstallmentNotice: Sendable, Hashable {
        public var seq: Int64?
        public var open: Int64
        public var dueAt: Millis
        public init(seq: Int64?, open: Int64, dueAt: Millis) {
            self.seq = seq
            self.open = open
            self.dueAt = dueAt
        }
    }

    /// Chinese for `zh*`, English for `en*`, else the default language.
    public static func isChinese(_ locale: String?, byDefault: Bool = false) -> Bool {
        guard let locale = locale?.lowercased() else { return byDefault }
        if locale.hasPrefix("zh") { return true }
        if locale.hasPrefix("en") { return false }
        return byDefault
    }

    /// "129.00 CNY": minor units shown with the currency's exponent.
    public static func money(_ minor: Int64, _ currency: String) -> String {
        let exponent: Int
        switch currency {
        case "JPY", "KRW", "VND", "CLP", "ISK", "UGX", "PYG", "XAF", "XOF": exponent = 0
        case "BHD", "KWD", "JOD", "OMR", "TND", "IQD", "LYD": exponent = 3
        default: exponent = 2
        }
        guard exponent > 0 else { return "\(minor) \(currency)" }
        var scale: Int64 = 1
        for _ in 0..<exponent { scale *= 10 }
        let sign = minor < 0 ? "-" : ""
        // magnitude: abs(Int64.min) traps.
        let whole = minor.magnitude / UInt64(scale)
        let fraction = String(minor.magnitude % UInt64(scale))
        return "\(sign)\(whole).\(String(repeating: "0", count: exponent - fraction.count))\(fraction) \(currency)"
    }

    /// An amount as customer texts show it: zh-CN writes CNY as `¥129.00`, every other case is
    /// `CODE 129.00` (`CNY 129.00`, `USD 5.00`, `JPY 500`), with the currency's exponent.
    public static func localMoney(_ minor: Int64, _ currency: String, chinese: Bool) -> String {
        let plain = money(minor, currency)  // "129.00 CNY"
        let number = plain.hasSuffix(" \(currency)") ? String(plain.dropLast(currency.count + 1)) : plain
        if chinese, currency == "CNY" {
            return number.hasPrefix("-") ? "-¥" + number.dropFirst() : "¥" + number
        }
        return "\(currency) \(number)"
    }

    /// A payment provider's failure code in words a customer understands (Stripe, Alipay, WeChat
    /// Pay and PayPal spellings of the common ones); an unknown code gets a generic sentence with
    /// the code kept for support — never the raw code alone.
    public static func failureText(_ code: String?, chinese: Bool) -> String {
        guard let code, !code.isEmpty else { return chinese ? "支付未完成" : "the payment was not completed" }
        let words: (String, String)
        switch code.lowercased() {
        case "insufficient_funds", "balance_not_enough", "notenough", "instrument_declined_insufficient_funds":
            words = ("there were not enough funds", "余额不足")
        case "card_declined", "do_not_honor", "generic_decline", "lost_card", "stolen_card", "instrument_declined", "declined":
            words = ("the card was declined", "银行卡被拒绝")
        case "expired_card", "card_expired":
            words = ("the card has expired", "银行卡已过期")
        case "incorrect_cvc", "invalid_cvc", "incorrect_number", "invalid_card":
            words = ("the card details were not accepted", "银行卡信息有误")
        case "authentication_required", "authentication_failed", "3ds_failed", "payer_action_required", "user_auth_failed":
            words = ("the bank could not verify the payment", "银行验证未通过")
        case "timeout", "order_timeout", "trade_timeout":
            words = ("the payment timed out", "支付超时")
        case "network_error", "processing_error", "systemerror", "system_error", "service_unavailable":
            words = ("a network or bank problem interrupted the payment", "网络或银行系统异常，支付中断")
        case "cancelled_by_user", "user_cancelled", "userpaying_cancelled", "closed":
            words = ("the payment was cancelled", "支付已取消")
        case "limit_exceeded", "exceed_limit", "card_velocity_exceeded":
            words = ("a payment limit was exceeded", "超出支付限额")
        default:
            // The provider's text goes into a customer message: clipped, controls escaped.
            let shown = Validator.display(code, limit: 64)
            return chinese ? "支付未能完成（错误代码 \(shown)）" : "the payment could not be completed (code \(shown))"
        }
        return chinese ? words.1 : words.0
    }

    /// Subject and body of a message on `channel`: customer kinds from ``Context/templates``,
    /// ops kinds (English, for the shop's staff) built here.
    public static func subjectAndBody(kind: NotificationKind, channel: String = "sms", context c: Context) -> (String, String) {
        var memo = Templates.RenderMemo()
        return subjectAndBody(kind: kind, channel: channel, context: c, memo: &memo)
    }

    /// ``subjectAndBody(kind:channel:context:)`` reusing the texts of the same decision on other channels.
    public static func subjectAndBody(kind: NotificationKind, channel: String, context c: Context,
                                      memo: inout Templates.RenderMemo) -> (String, String) {
        if let rendered = c.templates.render(kind, channel: channel, context: c, memo: &memo) {
            return (rendered.subject, rendered.body)
        }
        return opsSubjectAndBody(kind: kind, context: c)
    }

    /// The ops kinds' texts (and a plain line for any kind without one).
    static func opsSubjectAndBody(kind: NotificationKind, context c: Context) -> (String, String) {
        let id = c.order.id
        let paid = money(c.ledger.amountPaid, c.order.currency)
        if let (amount, why) = c.toReturn, kind == .duplicatePayment {
            return ("Order \(id): return \(money(amount, c.order.currency))",
                    "Order \(id) received \(paid) for \(money(c.ledger.amountDue, c.order.currency)) due (\(why)): \(money(amount, c.order.currency)) must be returned to the customer.")
        }
        if let stalled = c.stalled, kind == .payingStalled {
            let payment = Validator.display(stalled.payment.id)
            let ref = stalled.payment.providerRef.map { ", provider_ref \(Validator.display($0))" } ?? ""
            let amount = money(stalled.payment.amount ?? 0, c.order.currency)
            let since = Timestamp.iso8601(stalled.payment.createdAt ?? 0)
            let what = "Payment \(payment) of order \(id) (\(amount)\(ref)) has been pending since \(since)"
            switch stalled.note {
            case .asked:
                return ("Order \(id): payment \(payment) is stuck in paying",
                        "\(what) (escalation \(stalled.escalation) of \(stalled.of)). The payment provider was asked and gave no definite answer (see `paywatch orders show \(id)`); the order stays paying.")
            case .notAsked(let why):
                return ("Order \(id): payment \(payment) is stuck in paying",
                        "\(what) (escalation \(stalled.escalation) of \(stalled.of)). The payment provider was not asked (\(why)); the order stays paying.")
            case .givenUp:
                return ("Order \(id): gave up waiting for payment \(payment)",
                        "\(what), longer than [paying] give_up_after: it no longer holds the order, which is treated as unpaid again (hold and reminders resume; if the hold has passed, it is cancelled).")
            }
        }
        if let refund = c.refund, kind == .refundStalled {
            let amount = money(refund.amount ?? 0, c.order.currency)
            let refundID = Validator.display(refund.id)
            let since = c.refundSince.map { Timestamp.iso8601($0) } ?? "?"
            return ("Order \(id): refund \(refundID) is stuck in \(refund.status)",
                    "Refund \(refundID) of order \(id) (\(amount)) has been \(refund.status) since \(since) without moving.")
        }
        if let plan = c.installment, kind == .installmentEscalated {
            let amount = money(plan.open, c.order.currency)
            let due = Timestamp.local(plan.dueAt, timeZone: c.order.timeZone)
            let which = plan.seq.map { "installment \($0)" } ?? "the balance"
            return ("Order \(id): \(which) overdue after the last notice",
                    "Order \(id): \(which) (\(amount)) was due \(due) and is still unpaid after the last overdue notice; paid so far \(paid) of \(money(c.ledger.amountDue, c.order.currency)).")
        }
        if let (resolved, how) = c.resolved, kind == .situationResolved {
            return ("Order \(id): \(resolved.rawValue) resolved", "Order \(id): the \(resolved.rawValue) alert is resolved: \(how).")
        }
        if kind == .latePayment {
            return ("Late payment on cancelled order \(id)",
                    "Order \(id) was cancelled, but \(paid) arrived afterwards: refund it or reinstate the order.")
        }
        return ("Order \(id): \(kind.rawValue)", "Order \(id): \(kind.rawValue)")
    }

    /// What a message of `kind` on `channel` says (rendered once per decision and channel; the
    /// providers build their requests from it). The facts are those of the webhook JSON
    /// (DESIGN.md "Notifications"), in its order.
    public static func payload(kind: NotificationKind, channel: String, context c: Context) -> MessagePayload {
        var memo = Templates.RenderMemo()
        return payload(kind: kind, channel: channel, context: c, memo: &memo)
    }

    /// ``payload(kind:channel:context:)`` for one of several channels of one decision.
    public static func payload(
        kind: NotificationKind, channel: String, context c: Context, memo: inout Templates.RenderMemo
    ) -> MessagePayload {
        let (subject, body) = subjectAndBody(kind: kind, channel: channel, context: c, memo: &memo)
        var json = MessagePayload(subject: subject, text: body)
        json.facts.reserveCapacity(12)
        json.add("locale", c.order.locale)
        json.add("amount_due", c.ledger.amountDue)
        json.add("amount_paid", c.ledger.amountPaid)
        json.add("amount_remaining", c.ledger.amountRemaining)
        json.add("currency", c.order.currency)
        json.add("expires_at", Timestamp.iso8601(c.expiresAt))
        json.add("pay_url", c.order.payURL)
        if kind == .paymentFailed { json.add("failure_reason", c.failureReason ?? "") }
        if let (amount, _) = c.toReturn {
            json.add("amount_to_return", amount)
        }
        if let stalled = c.stalled, kind == .payingStalled {
            json.add("payment_id", stalled.payment.id)
            json.add("provider_ref", stalled.payment.providerRef)
            json.add("pending_since", Timestamp.iso8601(stalled.payment.createdAt ?? 0))
            if stalled.note == .givenUp {
                json.add("given_up", "true")
            } else {
                json.add("escalation", stalled.escalation)
            }
        }
        if let (resolved, _) = c.resolved, kind == .situationResolved {
            json.add("resolves", resolved.rawValue)
            json.add("status", c.status?.rawValue)
        }
        if let refund = c.refund {
            json.add("refund_id", refund.id)
            json.add("refund_status", refund.status)
            json.add("refund_amount", refund.amount)
        }
        if let plan = c.installment {
            json.add("installment_seq", plan.seq)
            json.add("installment_amount", plan.open)
            json.add("due_at", Timestamp.iso8601(plan.dueAt))
        }
        return json
    }
}
