import Testing
@testable import PaywatchCore

@Suite struct HoldByMethodTests {
    static let policy = Policy(unpaidHoldMs: 30 * minute, holdByMethodMs: ["bank_transfer": 3 * day, "alipay": 15 * minute],
                               unpaidChannels: ["sms"])

    @Test func theOrdersPaymentMethodPicksTheHold() {
        var bank = order()
        bank.paymentMethod = "bank_transfer"
        #expect(Self.policy.expiry(of: bank) == t0 + 3 * day)
        var run = Run(bank, policy: Self.policy)
        #expect(run.at(t0 + 31 * minute).status == .unpaid)
        #expect(run.at(t0 + 3 * day).status == .cancelled)
    }

    @Test func elseTheLatestAttemptsMethodThenTheDefault() {
        let alipay = PaymentRecord(id: "P1", orderID: "A1", amount: 12_900, status: "failed", method: "alipay", createdAt: t0 + minute)
        #expect(Self.policy.expiry(of: order(), attemptMethod: alipay.method) == t0 + 15 * minute)
        var run = Run(order(), payments: [alipay], policy: Self.policy)
        #expect(run.at(t0 + 15 * minute).status == .cancelled)
        // A method without an entry: [unpaid].hold.
        #expect(Self.policy.expiry(of: order(), attemptMethod: "card") == t0 + 30 * minute)
        #expect(Self.policy.expiry(of: order()) == t0 + 30 * minute)
    }

    @Test func expiresAtStillWins() {
        var bank = order(expiresAt: t0 + 2 * minute)
        bank.paymentMethod = "bank_transfer"
        #expect(Self.policy.expiry(of: bank) == t0 + 2 * minute)
    }
}
