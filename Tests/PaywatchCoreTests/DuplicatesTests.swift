import Foundation
import Testing
@testable import PaywatchCore

@Suite struct DuplicatesTests {
    static let policy = Policy(unpaidChannels: ["sms"], fixedRecipients: ["ops": "oncall"])

    @Test func twoSucceededPaymentsWithOneProviderRefGoToOpsWithTheAmountToReturn() throws {
        var run = Run(order(due: 10_000), payments: [payment("P1", 10_000, "succeeded", at: t0 + minute, ref: "ch_1")],
                      policy: Self.policy)
        #expect(run.at(t0 + 2 * minute).needsRefund == 0)
        run.snapshot.payments.append(payment("P2", 10_000, "succeeded", at: t0 + 3 * minute, ref: "ch_1"))
        let twice = run.at(t0 + 4 * minute)
        #expect(twice.messages.map(\.kind) == [.duplicatePayment])
        #expect(twice.messages[0].channel == "ops")
        #expect(twice.needsRefund == 10_000)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(twice.messages[0].webhookBody.utf8)) as? [String: Any])
        #expect(body["amount_to_return"] as? Int == 10_000)
        #expect((body["body"] as? String)?.contains("provider_ref ch_1") == true)
        // Told once; still owed until a refund covers it.
        #expect(run.at(t0 + 5 * minute).messages.isEmpty)
        #expect(run.at(t0 + 5 * minute).needsRefund == 10_000)
        run.snapshot.refunds = [RefundRecord(id: "R1", amount: 10_000, status: "requested", requestedAt: t0 + 6 * minute)]
        #expect(run.at(t0 + 6 * minute).needsRefund == 0)
    }

    @Test func moreMoneyThanDueIsAnOverpayment() {
        var run = Run(order(due: 10_000), payments: [payment("P1", 6_000, "succeeded", at: t0 + minute),
                                                      payment("P2", 6_000, "succeeded", at: t0 + 2 * minute)], policy: Self.policy)
        let planned = run.at(t0 + 3 * minute)
        #expect(planned.status == .paid)
        #expect(Set(planned.messages.map(\.kind)) == [.paymentConfirmed, .duplicatePayment])
        #expect(planned.needsRefund == 2_000)
        // Partial payments adding up to at most the amount due are normal.
        var normal = Run(order(due: 10_000), payments: [payment("P1", 6_000, "succeeded", at: t0 + minute, ref: "a"),
                                                         payment("P2", 4_000, "succeeded", at: t0 + 2 * minute, ref: "b")],
                         policy: Self.policy)
        #expect(!normal.at(t0 + 3 * minute).messages.contains { $0.kind == .duplicatePayment })
    }

    @Test func aLatePaymentIsEscalatedAndOwedBackByDefault() {
        var run = Run(order(due: 10_000), policy: Self.policy)
        #expect(run.at(t0 + 31 * minute).status == .cancelled)
        run.snapshot.payments = [payment("P1", 10_000, "succeeded", at: t0 + 40 * minute)]
        let late = run.at(t0 + 41 * minute)
        #expect(late.status == .cancelled)
        #expect(late.messages.map(\.kind) == [.latePayment])
        #expect(late.needsRefund == 10_000)
    }

    @Test func reinstateMakesACoveredLatePaymentPaid() {
        var policy = Self.policy
        policy.reinstateLatePayments = true
        var run = Run(order(due: 10_000), policy: policy)
        run.at(t0 + 31 * minute)
        run.snapshot.payments = [payment("P1", 4_000, "succeeded", at: t0 + 40 * minute)]
        // Not enough to cover the order: escalated, still cancelled.
        let partial = run.at(t0 + 41 * minute)
        #expect(partial.status == .cancelled)
        #expect(partial.messages.map(\.kind) == [.latePayment])
        run.snapshot.payments.append(payment("P2", 6_000, "succeeded", at: t0 + 50 * minute))
        let covered = run.at(t0 + 51 * minute)
        #expect(covered.status == .paid)
        #expect(covered.messages.map(\.kind) == [.latePayment, .paymentConfirmed])
        #expect(covered.events.contains { $0.event == "reinstated" })
        #expect(covered.needsRefund == 0)
        #expect(run.at(t0 + 60 * minute).status == .paid)
    }
}
