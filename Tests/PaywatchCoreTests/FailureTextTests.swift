import Testing
@testable import PaywatchCore

@Suite struct FailureTextTests {
    @Test(arguments: [
        ("insufficient_funds", "there were not enough funds", "余额不足"),
        ("BALANCE_NOT_ENOUGH", "there were not enough funds", "余额不足"),
        ("do_not_honor", "the card was declined", "银行卡被拒绝"),
        ("expired_card", "the card has expired", "银行卡已过期"),
        ("authentication_required", "the bank could not verify the payment", "银行验证未通过"),
        ("network_error", "a network or bank problem interrupted the payment", "网络或银行系统异常，支付中断"),
        ("SYSTEMERROR", "a network or bank problem interrupted the payment", "网络或银行系统异常，支付中断"),
    ])
    func commonCodesInWords(code: String, english: String, chinese: String) {
        #expect(Messages.failureText(code, chinese: false) == english)
        #expect(Messages.failureText(code, chinese: true) == chinese)
    }

    @Test func anUnknownCodeIsAGenericSentenceNotTheRawCode() {
        #expect(Messages.failureText("E4711", chinese: false) == "the payment could not be completed (code E4711)")
        #expect(Messages.failureText("E4711", chinese: true) == "支付未能完成（错误代码 E4711）")
        #expect(Messages.failureText(nil, chinese: false) == "the payment was not completed")
    }

    @Test func failureAndRefundMessagesSayHowToReachTheShop() {
        let policy = Policy(unpaidChannels: ["sms"], supportContact: "400-800-1234")
        var run = Run(order(), payments: [payment("P1", 12_900, "failed", at: t0 + minute, reason: "card_declined")], policy: policy)
        let failed = run.at(t0 + 2 * minute)
        #expect(failed.messages[0].kind == .paymentFailed)
        #expect(failed.messages[0].webhookBody.contains("银行卡被拒绝"))
        #expect(failed.messages[0].webhookBody.contains("如有疑问请联系：400-800-1234"))
        #expect(failed.messages[0].webhookBody.contains("https://shop.example/pay/A1"))
    }

    @Test func theDefaultLocalePicksTheLanguageOfOrdersWithoutOne() {
        #expect(Messages.isChinese(nil, byDefault: true))
        #expect(!Messages.isChinese(nil, byDefault: false))
        #expect(!Messages.isChinese("en-US", byDefault: true))
        #expect(Messages.isChinese("zh-TW", byDefault: false))
        #expect(Messages.isChinese("fr-FR", byDefault: true))
        var english = order()
        english.locale = nil
        let policy = Policy(unpaidChannels: ["sms"], chineseByDefault: true)
        var run = Run(english, policy: policy)
        #expect(run.at(t0 + 10 * minute).messages[0].webhookBody.contains("待支付"))
    }
}

@Suite struct LateFailureTests {
    @Test func aFailureLearnedLateStartsItsRemindersWhenItWasLearned() {
        let policy = Policy(unpaidHoldMs: 60 * minute, unpaidRemindersMs: [50 * minute], unpaidChannels: ["sms"])
        var run = Run(order(), payments: [payment("P1", 12_900, "pending", at: t0 + minute)], policy: policy)
        #expect(run.at(t0 + 2 * minute).status == .paying)
        // The provider's "failed" arrives 15 minutes after the attempt.
        run.snapshot.payments = [payment("P1", 12_900, "failed", at: t0 + minute, reason: "card_declined")]
        let told = run.at(t0 + 16 * minute)
        #expect(told.messages.map(\.kind) == [.paymentFailed])
        // [failed].reminders (10m) count from 16m, not from the attempt at 1m.
        #expect(told.nextDueAt == t0 + 26 * minute)
        #expect(run.at(t0 + 25 * minute).messages.isEmpty)
        #expect(run.at(t0 + 26 * minute).messages.map(\.kind) == [.unpaidReminder])
    }
}
