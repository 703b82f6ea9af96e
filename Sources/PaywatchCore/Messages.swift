/// Subjects and bodies of customer and ops messages, in English and Chinese (chosen by the
/// order's `locale`: `zh*` → Chinese, anything else → English), and the webhook JSON body.
public enum Messages {
    /// Fields a message is written from; all are already validated.
    public struct Context: Sendable {
        public var order: OrderRecord
        public var ledger: Ledger
        public var expiresAt: Millis
        public var failureReason: String?
        public init(order: OrderRecord, ledger: Ledger, expiresAt: Millis, failureReason: String? = nil) {
            self.order = order
            self.ledger = ledger
            self.expiresAt = expiresAt
            self.failureReason = failureReason
        }
    }

    public static func isChinese(_ locale: String?) -> Bool {
        locale?.lowercased().hasPrefix("zh") ?? false
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

    /// A payment provider's failure code in words, with the code kept for support.
    public static func failureText(_ code: String?, chinese: Bool) -> String {
        guard let code, !code.isEmpty else { return chinese ? "支付未完成" : "the payment was not completed" }
        let known: [String: (String, String)] = [
            "insufficient_funds": ("insufficient funds", "余额不足"),
            "card_declined": ("the card was declined", "银行卡被拒绝"),
            "expired_card": ("the card has expired", "银行卡已过期"),
            "incorrect_cvc": ("the security code was wrong", "安全码错误"),
            "timeout": ("the payment timed out", "支付超时"),
            "cancelled_by_user": ("the payment was cancelled", "支付已取消"),
            "limit_exceeded": ("a payment limit was exceeded", "超出支付限额"),
        ]
        if let text = known[code] { return chinese ? text.1 : text.0 }
        // The provider's text goes into a customer message: clipped, controls escaped.
        let shown = Validator.display(code, limit: 64)
        return chinese ? "错误代码 \(shown)" : "error code \(shown)"
    }

    public static func subjectAndBody(kind: NotificationKind, context c: Context) -> (String, String) {
        let zh = isChinese(c.order.locale)
        let id = c.order.id
        let due = money(c.ledger.amountDue, c.order.currency)
        let remaining = money(c.ledger.amountRemaining, c.order.currency)
        let paid = money(c.ledger.amountPaid, c.order.currency)
        let until = Timestamp.local(c.expiresAt, timeZone: c.order.timeZone)
        let payLink = c.order.payURL.map { zh ? "：\($0)" : ": \($0)" } ?? ""
        let name = c.order.customerName.map { zh ? "\($0)，" : " \($0)" } ?? ""
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
            return ("订单 \(id) 支付失败", "\(name)订单 \(id) 支付未成功（\(why)）。您可在 \(until) 前重新支付\(payLink)")
        case (.paymentFailed, false):
            let why = failureText(c.failureReason, chinese: false)
            return ("Payment for order \(id) failed",
                    "Hi\(name), your payment for order \(id) did not go through (\(why)). You can try again until \(until)\(payLink)")
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
        return json.finish()
    }
}
