import Foundation
import Testing
@testable import PaywatchCore

/// The customer texts come from Mustache templates: the built-in ones in zh-CN and en for every
/// kind × channel, overrides by name, locale fallback, no HTML escaping, and templates refused
/// when they do not compile or name an unknown variable.
@Suite struct TemplatesTests {
    static let expiry = t0 + 30 * minute

    static func context(locale: String?, kind: NotificationKind, templates: Templates = .builtIn,
                        name: String? = "Alice", paid: Int64 = 0) -> Messages.Context {
        let order = OrderRecord(id: "A1", amountDue: 12_900, createdAt: t0, expiresAt: expiry, locale: locale,
                                timeZone: "Asia/Shanghai", payURL: "https://shop.example/pay/A1", customerName: name)
        let payments = paid > 0 ? [payment("P1", paid, "succeeded", at: t0)] : []
        var c = Messages.Context(order: order, ledger: Ledger(amountDue: 12_900, payments: payments, refunds: []), expiresAt: expiry)
        c.templates = templates
        c.supportContact = "400-800-1234"
        switch kind {
        case .paymentFailed: c.failureReason = "card_declined"
        case .balanceReminder: c.installment = .init(seq: nil, open: 12_900 - paid, dueAt: expiry)
        case .installmentDue, .installmentOverdue: c.installment = .init(seq: 2, open: 4_300, dueAt: expiry)
        case .refundProgress: c.refund = RefundRecord(id: "R1", amount: 5_000, status: "processing", requestedAt: t0)
        default: break
        }
        return c
    }

    static func render(_ kind: NotificationKind, locale: String?, channel: String = "sms", templates: Templates = .builtIn,
                       name: String? = "Alice", paid: Int64 = 0) -> (subject: String, body: String) {
        Messages.subjectAndBody(kind: kind, channel: channel, context: context(locale: locale, kind: kind, templates: templates, name: name, paid: paid))
    }

    @Test func everyKindAndChannelHasABuiltInTemplateInBothLanguages() {
        for kind in Templates.kinds {
            for channel in Templates.channels {
                for locale in ["zh-CN", "en"] {
                    let (subject, body) = Self.render(kind, locale: locale, channel: channel)
                    #expect(!subject.isEmpty && !body.isEmpty, "\(kind) \(channel) \(locale)")
                    #expect(body.contains("A1"), "\(kind) \(channel) \(locale): \(body)")
                    #expect(!body.contains("{{") && !subject.contains("{{"))
                }
            }
        }
        #expect(Templates.kinds.count == 8)
    }

    @Test(arguments: [
        (NotificationKind.unpaidReminder, "订单 A1 待支付", "Alice，您的订单 A1（¥129.00）将保留至 2026-09-21 22:43 (Asia/Shanghai)，请尽快完成支付：https://shop.example/pay/A1",
         "Order A1 is waiting for payment", "Hi Alice, your order A1 (CNY 129.00) is reserved until 2026-09-21 22:43 (Asia/Shanghai). Please complete the payment: https://shop.example/pay/A1"),
        (.orderCancelled, "订单 A1 已取消", "已自动取消", "Order A1 was cancelled", "so the order was cancelled."),
        (.paymentConfirmed, "订单 A1 支付成功", "感谢您的购买", "Payment received for order A1", "Thank you Alice! We received"),
        (.paymentFailed, "订单 A1 支付失败", "支付未成功（银行卡被拒绝）", "Payment for order A1 failed", "did not go through (the card was declined)"),
        (.balanceReminder, "订单 A1 尚欠 ¥79.00", "已支付 ¥50.00，尚欠 ¥79.00", "Order A1: CNY 79.00 left to pay", "you have paid CNY 50.00 of order A1; CNY 79.00 is left"),
        (.installmentDue, "订单 A1 第 2 期款项即将到期", "第 2 期款项 ¥43.00 将于", "Installment 2 of order A1 is due soon", "installment 2 of order A1 (CNY 43.00) is due on"),
        (.installmentOverdue, "订单 A1 第 2 期款项已逾期", "尚未支付，请尽快支付", "Installment 2 of order A1 is overdue", "is still unpaid. Please pay it as soon as possible"),
        (.refundProgress, "订单 A1 退款处理中", "退款 ¥50.00 正在处理中。如有疑问请联系：400-800-1234", "Refund for order A1 in progress",
         "the refund of CNY 50.00 for order A1 is being processed. Questions? Contact us: 400-800-1234"),
    ])
    func builtInTextsInChineseAndEnglish(kind: NotificationKind, zhSubject: String, zhBody: String, enSubject: String, enBody: String) {
        let paid: Int64 = kind == .balanceReminder ? 5_000 : 0
        let zh = Self.render(kind, locale: "zh-CN", paid: paid)
        #expect(zh.subject == zhSubject)
        #expect(zh.body.contains(zhBody), "\(zh.body)")
        let en = Self.render(kind, locale: "en-US", paid: paid)
        #expect(en.subject == enSubject)
        #expect(en.body.contains(enBody), "\(en.body)")
        // The e-mail body is the short text and a summary line.
        let email = Self.render(kind, locale: "en", channel: "email", paid: paid)
        #expect(email.body.hasPrefix(en.body))
        #expect(email.body.contains("\n\nOrder A1: amount due CNY 129.00"))
    }

    @Test func optionalPartsAreLeftOutWhenAbsent() {
        let en = Self.render(.unpaidReminder, locale: "en", name: nil)
        #expect(en.body.hasPrefix("Hi, your order A1"))
        let zh = Self.render(.unpaidReminder, locale: "zh", name: nil)
        #expect(zh.body.hasPrefix("您的订单 A1"))
        // The balance of an order without a plan is "the balance", not an installment number.
        var c = Self.context(locale: "en", kind: .installmentDue)
        c.installment = .init(seq: nil, open: 100, dueAt: Self.expiry)
        #expect(Messages.subjectAndBody(kind: .installmentDue, context: c).0 == "The balance of order A1 is due soon")
    }

    @Test func refundStatusesHaveTheirOwnWords() {
        var c = Self.context(locale: "en", kind: .refundProgress)
        for (status, words) in [("requested", "received"), ("processing", "in progress"), ("succeeded", "completed"),
                                ("failed", "did not go through"), ("weird", "did not go through")] {
            c.refund?.status = status
            #expect(Messages.subjectAndBody(kind: .refundProgress, context: c).0 == "Refund for order A1 \(words)")
        }
    }

    @Test func moneyPerCurrencyAndLanguage() {
        #expect(Messages.localMoney(12_900, "CNY", chinese: true) == "¥129.00")
        #expect(Messages.localMoney(12_900, "CNY", chinese: false) == "CNY 129.00")
        #expect(Messages.localMoney(-5, "CNY", chinese: true) == "-¥0.05")
        #expect(Messages.localMoney(500, "USD", chinese: true) == "USD 5.00")
        #expect(Messages.localMoney(500, "JPY", chinese: false) == "JPY 500")
    }

    @Test func noHTMLEscaping() {
        let body = Self.render(.paymentConfirmed, locale: "en", name: "A&B <\"shop\">").body
        #expect(body.contains("Thank you A&B <\"shop\">!"))
        let triple = try! Templates(overrides: ["payment_confirmed.sms.en": ("x", "{{customer_name}}|{{{customer_name}}}|{{&customer_name}}")],
                                    defaultLocale: "zh-CN")
        #expect(Self.render(.paymentConfirmed, locale: "en", templates: triple, name: "<b>").body == "<b>|<b>|<b>")
    }

    @Test func anOverrideReplacesTheBuiltInOfItsNameOnly() throws {
        let templates = try Templates(overrides: [
            "unpaid_reminder.sms.en": ("dir/unpaid_reminder.sms.en.mustache", "Pay {{amount_remaining}} for {{order_id}} by {{expires_at}}"),
            "unpaid_reminder.email.en.subject": ("dir/s", "Reminder: {{order_id}}"),
        ], defaultLocale: "zh-CN")
        #expect(Self.render(.unpaidReminder, locale: "en", templates: templates).body == "Pay CNY 129.00 for A1 by 2026-09-21 22:43 (Asia/Shanghai)")
        #expect(Self.render(.unpaidReminder, locale: "en", templates: templates).subject == "Reminder: A1")
        // Push and zh-CN keep the built-in.
        #expect(Self.render(.unpaidReminder, locale: "en", channel: "push", templates: templates).body.hasPrefix("Hi Alice, your order A1"))
        #expect(Self.render(.unpaidReminder, locale: "zh-CN", templates: templates).body.hasPrefix("Alice，您的订单"))
    }

    @Test func aLocaleMissingFallsBackToTheDefaultLocale() throws {
        // The dir adds ja-JP for sms only: ja-JP e-mail falls back to the default locale (en here).
        let templates = try Templates(overrides: ["unpaid_reminder.sms.ja-JP": ("f", "{{order_id}} のお支払いをお願いします")], defaultLocale: "en")
        #expect(Self.render(.unpaidReminder, locale: "ja-JP", templates: templates).body == "A1 のお支払いをお願いします")
        let email = Self.render(.unpaidReminder, locale: "ja-JP", channel: "email", templates: templates)
        #expect(email.body.hasPrefix("Hi Alice, your order A1 (CNY 129.00)"))
        #expect(email.subject == "Order A1 is waiting for payment")
        // A locale neither zh* nor en* without templates: the default locale, here zh-CN.
        #expect(Self.render(.unpaidReminder, locale: "fr-FR", templates: .builtIn).body.hasPrefix("Alice，您的订单"))
        #expect(Self.render(.unpaidReminder, locale: nil, templates: .builtIn.withDefaultLocale("en")).body.hasPrefix("Hi Alice"))
        #expect(templates.locales(for: "en-GB") == ["en-GB", "en", "en"])
    }

    @Test func thePlannerUsesThePolicysTemplates() throws {
        let templates = try Templates(overrides: ["unpaid_reminder.sms.zh-CN": ("f", "请支付 {{amount_remaining}}")], defaultLocale: "zh-CN")
        var run = Run(order(), policy: Policy(unpaidChannels: ["sms"], templates: templates))
        let message = try #require(run.at(t0 + 10 * minute).messages.first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(message.webhookBody.utf8)) as? [String: Any])
        #expect(json["body"] as? String == "请支付 ¥129.00")
        #expect(json["subject"] as? String == "订单 A1 待支付")
        #expect(json["amount_remaining"] as? Int == 12_900)
    }

    @Test func badTemplatesAreRefusedNamingFileAndLine() {
        func problem(_ name: String, _ source: String) -> Templates.Problem? {
            do {
                _ = try Templates(overrides: [name: ("/t/\(name).mustache", source)], defaultLocale: "zh-CN")
                return nil
            } catch {
                return error
            }
        }
        let syntax = problem("unpaid_reminder.sms.en", "Hello\n{{#order_id}} unclosed")
        #expect(syntax?.file == "/t/unpaid_reminder.sms.en.mustache")
        #expect(syntax?.description.contains("syntax error") == true)
        let unknown = problem("unpaid_reminder.sms.en", "Hello\n\n{{ amount }} {{order_id}}")
        #expect(unknown?.line == 3)
        #expect(unknown?.description.hasPrefix("/t/unpaid_reminder.sms.en.mustache:3: template: unknown variable \"amount\"") == true)
        #expect(problem("unpaid_reminder.sms.en", "{{#bogus}}x{{/bogus}}")?.message.contains("\"bogus\"") == true)
        #expect(problem("unpaid_reminder.sms.en", "{{refund_status.nope}}") != nil)
        #expect(problem("unpaid_reminder.sms.en", "{{> header}}") != nil)
        #expect(problem("unpaid_reminder.sms.en", "{{=<% %>=}}") != nil)
        #expect(problem("unpaid_reminder.sms.en", "{{! a comment }}{{{pay_url}}}{{&currency}}{{refund_status.failed}}") == nil)
        #expect(problem("unpaid_reminder.fax.en", "x")?.message.contains("not a template name") == true)
        #expect(problem("paying_stalled.sms.en", "x") != nil)  // ops kinds have no templates
        #expect(problem("unpaid_reminder.sms.en.subject", "x") != nil)  // subjects are e-mail's
        #expect(problem("unpaid_reminder.email.en.subject", "x") == nil)
    }
}

@Suite struct SharedTextsTests {
    /// One decision on push, sms and e-mail renders the subject once and the push/sms text once:
    /// every message is still exactly what rendering it alone gives.
    @Test func channelsOfOneDecisionShareTextsWithoutChangingThem() throws {
        let policy = Policy(unpaidChannels: ["push", "sms", "email"])
        let record = order(push: "tok-1234567")
        var draft = Planner.Draft(planner: Planner(policy: policy), snapshot: OrderSnapshot(orderID: record.id, order: record),
                                  order: record, now: t0 + 10 * minute)
        draft.send(.unpaidReminder, step: 1, channels: policy.channels(.unpaid), context: draft.context())
        #expect(draft.messages.map(\.channel) == ["push", "sms", "email"])
        for message in draft.messages {
            let alone = try #require(draft.message(.unpaidReminder, step: 1, channel: message.channel, context: draft.context()))
            #expect(alone.webhookBody == message.webhookBody)
        }
        // The e-mail body is its own text, the others share one.
        #expect(draft.messages[2].webhookBody != draft.messages[1].webhookBody.replacingOccurrences(of: "\"sms\"", with: "\"email\""))
    }
}
