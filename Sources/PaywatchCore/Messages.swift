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

    public static func subjectAndBody(kind: NotificationKind, context c: Context) -> (String, String) {
        let zh = isChinese(c.order.locale, byDefault: c.chineseByDefault)
        let support = c.supportContact.map { zh ? "如有疑问请联系：\(Validator.display($0, limit: 200))" : " Questions? Contact us: \(Validator.display($0, limit: 200))" } ?? ""
        let id = c.order.id
        let due = money(c.ledger.amountDue, c.order.currency)
        let remaining = money(c.ledger.amountRemaining, c.order.currency)
        let paid = money(c.ledger.amountPaid, c.order.currency)
        let until = Timestamp.local(c.expiresAt, timeZone: c.order.timeZone)
        let payLink = c.order.payURL.map { zh ? "：\($0)" : ": \($0)" } ?? ""
        let name = c.order.customerName.map { zh ? "\($0)，" : " \($0)" } ?? ""
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
        if let refund = c.refund {
            let amount = money(refund.amount ?? 0, c.order.currency)
            let refundID = Validator.display(refund.id)
            switch (kind, zh, refund.refundStatus) {
            case (.refundStalled, _, _):
                let since = c.refundSince.map { Timestamp.iso8601($0) } ?? "?"
                return ("Order \(id): refund \(refundID) is stuck in \(refund.status)",
                        "Refund \(refundID) of order \(id) (\(amount)) has been \(refund.status) since \(since) without moving.")
            case (_, true, .requested?): return ("订单 \(id) 退款已受理", "\(name)订单 \(id) 的退款 \(amount) 已受理，我们会尽快处理。\(support)")
            case (_, true, .processing?): return ("订单 \(id) 退款处理中", "\(name)订单 \(id) 的退款 \(amount) 正在处理中。\(support)")
            case (_, true, .succeeded?): return ("订单 \(id) 退款已完成", "\(name)订单 \(id) 的退款 \(amount) 已退回您的支付账户。\(support)")
            case (_, true, _): return ("订单 \(id) 退款未成功", "\(name)订单 \(id) 的退款 \(amount) 未能完成，我们会与您联系。\(support)")
            case (_, false, .requested?):
                return ("Refund for order \(id) received", "Hi\(name), we received the refund of \(amount) for order \(id) and will process it soon.\(support)")
            case (_, false, .processing?):
                return ("Refund for order \(id) in progress", "Hi\(name), the refund of \(amount) for order \(id) is being processed.\(support)")
            case (_, false, .succeeded?):
                return ("Refund for order \(id) completed", "Hi\(name), the refund of \(amount) for order \(id) was returned to your payment account.\(support)")
            case (_, false, _):
                return ("Refund for order \(id) did not go through",
                        "Hi\(name), the refund of \(amount) for order \(id) could not be completed; we will contact you.\(support)")
            }
        }
        if let plan = c.installment {
            let amount = money(plan.open, c.order.currency)
            let due = Timestamp.local(plan.dueAt, timeZone: c.order.timeZone)
            let which = plan.seq.map { zh ? "第 \($0) 期款项" : "installment \($0)" } ?? (zh ? "余款" : "the balance")
            let Which = plan.seq.map { "Installment \($0)" } ?? "The balance"
            switch (kind, zh) {
            case (.balanceReminder, true):
                return ("订单 \(id) 尚欠 \(remaining)", "\(name)您的订单 \(id) 已支付 \(paid)，尚欠 \(remaining)，请于 \(due) 前付清\(payLink)")
            case (.balanceReminder, false):
                return ("Order \(id): \(remaining) left to pay",
                        "Hi\(name), you have paid \(paid) of order \(id); \(remaining) is left to pay by \(due). Please complete the payment\(payLink)")
            case (.installmentDue, true):
                return ("订单 \(id) \(which)即将到期", "\(name)订单 \(id) \(which) \(amount) 将于 \(due) 到期，请按时支付\(payLink)")
            case (.installmentDue, false):
                return ("\(Which) of order \(id) is due soon",
                        "Hi\(name), \(which) of order \(id) (\(amount)) is due on \(due). Please pay it in time\(payLink)")
            case (.installmentOverdue, true):
                return ("订单 \(id) \(which)已逾期", "\(name)订单 \(id) \(which) \(amount) 已于 \(due) 到期，尚未支付，请尽快支付\(payLink)")
            case (.installmentOverdue, false):
                return ("\(Which) of order \(id) is overdue",
                        "Hi\(name), \(which) of order \(id) (\(amount)) was due on \(due) and is still unpaid. Please pay it as soon as possible\(payLink)")
            case (.installmentEscalated, _):
                return ("Order \(id): \(which) overdue after the last notice",
                        "Order \(id): \(which) (\(amount)) was due \(due) and is still unpaid after the last overdue notice; paid so far \(paid) of \(money(c.ledger.amountDue, c.order.currency)).")
            case (.orderCancelled, true):
                return ("订单 \(id) 已取消", "\(name)订单 \(id) \(which) \(amount) 已于 \(due) 到期且多次提醒后仍未支付，订单已取消。已支付的 \(paid) 将退还给您。")
            case (.orderCancelled, false):
                return ("Order \(id) was cancelled",
                        "Hi\(name), \(which) of order \(id) (\(amount)) was due on \(due) and stayed unpaid after our reminders, so the order was cancelled. The \(paid) you paid will be refunded.")
            default:
                break
            }
        }
        switch (kind, zh) {
        case (.unpaidReminder, true):
            return ("订单 \(id) 待支付", "\(name)您的订单 \(id)（\(remaining)）将保留至 \(until)，请尽快完成支付\(payLink)")
        case (.unpaidReminder, false):
            return ("Order \(id) is waiting for payment",
                    "Hi\(name), your order \(id) (\(remaining)) is reserved until \(until). Please complete the payment\(payLink)")
        case (.orderCancelled, true):
            return ("订单 \(id) 已取消", "\(name)订单 \(id)（\(due)）未在 \(until) 前完成支付，已自动取消。")
        case (.orderCancelled, false):
            return ("Order \(id) was cancelled",
                    "Hi\(name), we did not receive the payment for order \(id) (\(due)) by \(until), so the order was cancelled.")
        case (.paymentConfirmed, true):
            return ("订单 \(id) 支付成功", "\(name)我们已收到订单 \(id) 的付款 \(paid)，感谢您的购买！")
        case (.paymentConfirmed, false):
            return ("Payment received for order \(id)", "Thank you\(name)! We received \(paid) for order \(id).")
        case (.paymentFailed, true):
            let why = failureText(c.failureReason, chinese: true)
            return ("订单 \(id) 支付失败", "\(name)订单 \(id) 支付未成功（\(why)）。您可在 \(until) 前重新支付\(payLink)\(support.isEmpty ? "" : "。" + support)")
        case (.paymentFailed, false):
            let why = failureText(c.failureReason, chinese: false)
            return ("Payment for order \(id) failed",
                    "Hi\(name), your payment for order \(id) did not go through (\(why)). You can try again until \(until)\(payLink)\(support.isEmpty ? "" : "." + support)")
        case (.latePayment, _):
            return ("Late payment on cancelled order \(id)",
                    "Order \(id) was cancelled, but \(paid) arrived afterwards: refund it or reinstate the order.")
        default:
            return ("Order \(id): \(kind.rawValue)", "Order \(id): \(kind.rawValue)")
        }
    }

    /// The `webhook` provider's JSON body (DESIGN.md "Notifications").
    public static func webhookBody(
        key: String, kind: NotificationKind, channel: String, to: String, context c: Context
    ) -> String {
        let (subject, body) = subjectAndBody(kind: kind, context: c)
        var json = JSONObjectWriter()
        json.add("idempotency_key", key)
        json.add("kind", kind.rawValue)
        json.add("channel", channel)
        json.add("order_id", c.order.id)
        json.add("to", to)
        json.add("subject", subject)
        json.add("body", body)
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
        return json.finish()
    }
}
