/// The built-in templates: today's texts, in zh-CN and en, for every customer kind. SMS and push
/// share a short text; the e-mail body is that text and a summary line; the subject is
/// `KIND.email.LOCALE.subject`. A file of the same name in `[templates] dir` replaces one.
enum BuiltInTemplates {
    // Pieces shared by many texts (expanded into the sources; templates have no partials).
    private static let nameZH = "{{#customer_name}}{{customer_name}}，{{/customer_name}}"
    private static let nameEN = "{{#customer_name}} {{customer_name}}{{/customer_name}}"
    private static let payZH = "{{#pay_url}}：{{pay_url}}{{/pay_url}}"
    private static let payEN = "{{#pay_url}}: {{pay_url}}{{/pay_url}}"
    private static let supportZH = "{{#support_contact}}如有疑问请联系：{{support_contact}}{{/support_contact}}"
    private static let supportEN = "{{#support_contact}} Questions? Contact us: {{support_contact}}{{/support_contact}}"
    private static let whichZH = "{{#installment_seq}}第 {{installment_seq}} 期款项{{/installment_seq}}{{^installment_seq}}余款{{/installment_seq}}"
    private static let whichEN = "{{#installment_seq}}installment {{installment_seq}}{{/installment_seq}}{{^installment_seq}}the balance{{/installment_seq}}"
    private static let WhichEN = "{{#installment_seq}}Installment {{installment_seq}}{{/installment_seq}}{{^installment_seq}}The balance{{/installment_seq}}"
    private static let summaryZH = "\n\n订单 {{order_id}}：应付 {{amount_due}}，已付 {{amount_paid}}，待付 {{amount_remaining}}。"
    private static let summaryEN = "\n\nOrder {{order_id}}: amount due {{amount_due}}, paid {{amount_paid}}, remaining {{amount_remaining}}."

    /// Kind → (zh-CN subject, zh-CN text, en subject, en text).
    static let texts: [(NotificationKind, String, String, String, String)] = [
        (.unpaidReminder,
         "订单 {{order_id}} 待支付",
         "\(nameZH)您的订单 {{order_id}}（{{amount_remaining}}）将保留至 {{expires_at}}，请尽快完成支付\(payZH)",
         "Order {{order_id}} is waiting for payment",
         "Hi\(nameEN), your order {{order_id}} ({{amount_remaining}}) is reserved until {{expires_at}}. Please complete the payment\(payEN)"),
        (.orderCancelled,
         "订单 {{order_id}} 已取消",
         "{{#installment_amount}}\(nameZH)订单 {{order_id}} \(whichZH) {{installment_amount}} 已于 {{installment_due_at}} 到期且多次提醒后仍未支付，订单已取消。已支付的 {{amount_paid}} 将退还给您。{{/installment_amount}}"
            + "{{^installment_amount}}\(nameZH)订单 {{order_id}}（{{amount_due}}）未在 {{expires_at}} 前完成支付，已自动取消。{{/installment_amount}}",
         "Order {{order_id}} was cancelled",
         "{{#installment_amount}}Hi\(nameEN), \(whichEN) of order {{order_id}} ({{installment_amount}}) was due on {{installment_due_at}} and stayed unpaid after our reminders, so the order was cancelled. The {{amount_paid}} you paid will be refunded.{{/installment_amount}}"
            + "{{^installment_amount}}Hi\(nameEN), we did not receive the payment for order {{order_id}} ({{amount_due}}) by {{expires_at}}, so the order was cancelled.{{/installment_amount}}"),
        (.paymentConfirmed,
         "订单 {{order_id}} 支付成功",
         "\(nameZH)我们已收到订单 {{order_id}} 的付款 {{amount_paid}}，感谢您的购买！",
         "Payment received for order {{order_id}}",
         "Thank you\(nameEN)! We received {{amount_paid}} for order {{order_id}}."),
        (.paymentFailed,
         "订单 {{order_id}} 支付失败",
         "\(nameZH)订单 {{order_id}} 支付未成功（{{failure_reason_text}}）。您可在 {{expires_at}} 前重新支付\(payZH){{#support_contact}}。如有疑问请联系：{{support_contact}}{{/support_contact}}",
         "Payment for order {{order_id}} failed",
         "Hi\(nameEN), your payment for order {{order_id}} did not go through ({{failure_reason_text}}). You can try again until {{expires_at}}\(payEN){{#support_contact}}. Questions? Contact us: {{support_contact}}{{/support_contact}}"),
        (.balanceReminder,
         "订单 {{order_id}} 尚欠 {{amount_remaining}}",
         "\(nameZH)您的订单 {{order_id}} 已支付 {{amount_paid}}，尚欠 {{amount_remaining}}，请于 {{installment_due_at}} 前付清\(payZH)",
         "Order {{order_id}}: {{amount_remaining}} left to pay",
         "Hi\(nameEN), you have paid {{amount_paid}} of order {{order_id}}; {{amount_remaining}} is left to pay by {{installment_due_at}}. Please complete the payment\(payEN)"),
        (.installmentDue,
         "订单 {{order_id}} \(whichZH)即将到期",
         "\(nameZH)订单 {{order_id}} \(whichZH) {{installment_amount}} 将于 {{installment_due_at}} 到期，请按时支付\(payZH)",
         "\(WhichEN) of order {{order_id}} is due soon",
         "Hi\(nameEN), \(whichEN) of order {{order_id}} ({{installment_amount}}) is due on {{installment_due_at}}. Please pay it in time\(payEN)"),
        (.installmentOverdue,
         "订单 {{order_id}} \(whichZH)已逾期",
         "\(nameZH)订单 {{order_id}} \(whichZH) {{installment_amount}} 已于 {{installment_due_at}} 到期，尚未支付，请尽快支付\(payZH)",
         "\(WhichEN) of order {{order_id}} is overdue",
         "Hi\(nameEN), \(whichEN) of order {{order_id}} ({{installment_amount}}) was due on {{installment_due_at}} and is still unpaid. Please pay it as soon as possible\(payEN)"),
        (.refundProgress,
         "订单 {{order_id}} {{#refund_status.requested}}退款已受理{{/refund_status.requested}}{{#refund_status.processing}}退款处理中{{/refund_status.processing}}"
            + "{{#refund_status.succeeded}}退款已完成{{/refund_status.succeeded}}{{#refund_status.failed}}退款未成功{{/refund_status.failed}}",
         "\(nameZH)订单 {{order_id}} 的退款 {{refund_amount}} "
            + "{{#refund_status.requested}}已受理，我们会尽快处理。{{/refund_status.requested}}{{#refund_status.processing}}正在处理中。{{/refund_status.processing}}"
            + "{{#refund_status.succeeded}}已退回您的支付账户。{{/refund_status.succeeded}}{{#refund_status.failed}}未能完成，我们会与您联系。{{/refund_status.failed}}\(supportZH)",
         "Refund for order {{order_id}} {{#refund_status.requested}}received{{/refund_status.requested}}{{#refund_status.processing}}in progress{{/refund_status.processing}}"
            + "{{#refund_status.succeeded}}completed{{/refund_status.succeeded}}{{#refund_status.failed}}did not go through{{/refund_status.failed}}",
         "Hi\(nameEN), "
            + "{{#refund_status.requested}}we received the refund of {{refund_amount}} for order {{order_id}} and will process it soon.{{/refund_status.requested}}"
            + "{{#refund_status.processing}}the refund of {{refund_amount}} for order {{order_id}} is being processed.{{/refund_status.processing}}"
            + "{{#refund_status.succeeded}}the refund of {{refund_amount}} for order {{order_id}} was returned to your payment account.{{/refund_status.succeeded}}"
            + "{{#refund_status.failed}}the refund of {{refund_amount}} for order {{order_id}} could not be completed; we will contact you.{{/refund_status.failed}}\(supportEN)"),
    ]

    /// Every built-in template by name (`KIND.CHANNEL.LOCALE`, `KIND.email.LOCALE.subject`).
    static let all: [String: String] = {
        var result: [String: String] = [:]
        for (kind, subjectZH, textZH, subjectEN, textEN) in texts {
            for (locale, subject, text, summary) in [("zh-CN", subjectZH, textZH, summaryZH), ("en", subjectEN, textEN, summaryEN)] {
                result["\(kind.rawValue).sms.\(locale)"] = text
                result["\(kind.rawValue).push.\(locale)"] = text
                result["\(kind.rawValue).email.\(locale)"] = text + summary
                result["\(kind.rawValue).email.\(locale).subject"] = subject
            }
        }
        return result
    }()
}
