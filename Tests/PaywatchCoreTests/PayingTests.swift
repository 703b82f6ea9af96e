import Foundation
import Testing
@testable import PaywatchCore

@Suite struct PayingTests {
    /// stall_after 15m, 3 escalations, give up after 2h, hold 30m; ops has a fixed recipient.
    static func policy(reconcile: Bool = true) -> Policy {
        Policy(unpaidChannels: ["sms"], payingStallAfterMs: 15 * minute, payingEscalations: 3,
               payingGiveUpAfterMs: 120 * minute, reconcileEnabled: reconcile, fixedRecipients: ["ops": "oncall"])
    }

    func pending(_ id: String = "P1", at: Millis = t0 + minute, ref: String? = "psp_1") -> PaymentRecord {
        payment(id, 12_900, "pending", at: at, ref: ref)
    }

    @Test func aStalledAttemptIsAskedAboutWithPayingStalledAsItsFallback() throws {
        var run = Run(order(), payments: [pending()], policy: Self.policy())
        let first = run.at(t0 + 2 * minute)
        #expect(first.status == .paying)
        #expect(first.messages.isEmpty && first.reconciles.isEmpty)
        // The first stall: 15m after the attempt's created_at.
        #expect(first.nextDueAt == t0 + 16 * minute)
        #expect(run.at(t0 + 16 * minute - 1).reconciles.isEmpty)
        let stalled = run.at(t0 + 16 * minute)
        #expect(stalled.messages.isEmpty)
        let ask = try #require(stalled.reconciles.first)
        #expect(stalled.reconciles.count == 1)
        #expect(ask.paymentID == "P1" && ask.providerRef == "psp_1" && ask.orderID == "A1")
        let fallback = try #require(ask.fallback)
        #expect(fallback.kind == .payingStalled && fallback.channel == "ops" && fallback.recipient == "oncall")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(fallback.webhookBody.utf8)) as? [String: Any])
        #expect(body["payment_id"] as? String == "P1")
        #expect(body["provider_ref"] as? String == "psp_1")
        #expect(body["escalation"] as? Int == 1)
        #expect(stalled.events.map(\.event) == ["reconcile_asked"])
        #expect(stalled.nextDueAt == t0 + 31 * minute)
        // Planned again before the next escalation (the provider answered "pending" again): no new ask.
        #expect(run.at(t0 + 20 * minute).reconciles.isEmpty)
        #expect(run.at(t0 + 30 * minute).reconciles.isEmpty)
    }

    @Test func escalationsComeEveryStallAfterAtMostEscalationsTimes() {
        var run = Run(order(), payments: [pending()], policy: Self.policy())
        var asks: [(Millis, Int)] = []
        var now = t0 + 2 * minute
        while now < t0 + 110 * minute {
            let plan = run.at(now)
            asks += plan.reconciles.map { (now, $0.step) }
            now = plan.nextDueAt ?? (now + minute)
        }
        #expect(asks.map(\.0) == [t0 + 16 * minute, t0 + 31 * minute, t0 + 46 * minute])
        #expect(Set(asks.map(\.1)).count == 3)
        // After the last escalation the next look is the give-up.
        #expect(run.at(t0 + 50 * minute).nextDueAt == t0 + 121 * minute)
    }

    @Test func missedEscalationsCollapseIntoTheLatest() {
        var run = Run(order(), payments: [pending()], policy: Self.policy())
        let late = run.at(t0 + 40 * minute)
        #expect(late.reconciles.count == 1)
        #expect(late.reconciles[0].step % Planner.payingStride == 2)
        #expect(late.nextDueAt == t0 + 46 * minute)
    }

    @Test func withoutAReconcileURLOrAProviderRefOpsIsToldAtOnce() throws {
        var noURL = Run(order(), payments: [pending()], policy: Self.policy(reconcile: false))
        let plan = noURL.at(t0 + 16 * minute)
        #expect(plan.reconciles.isEmpty)
        #expect(plan.messages.map(\.kind) == [.payingStalled])
        #expect(plan.messages[0].webhookBody.contains("no [paying] reconcile_url is set"))

        var noRef = Run(order(), payments: [pending(ref: nil)], policy: Self.policy())
        let other = noRef.at(t0 + 16 * minute)
        #expect(other.reconciles.isEmpty)
        #expect(other.messages.map(\.kind) == [.payingStalled])
        #expect(other.messages[0].webhookBody.contains("no provider_ref"))
        #expect(noRef.at(t0 + 17 * minute).messages.isEmpty)
        #expect(noRef.at(t0 + 31 * minute).messages.map(\.kind) == [.payingStalled])
    }

    @Test func aDefiniteAnswerMovesTheOrderOn() {
        var run = Run(order(), payments: [pending()], policy: Self.policy())
        #expect(run.at(t0 + 16 * minute).reconciles.count == 1)
        // The reconciler updated the payments row: paid, confirmed.
        run.snapshot.payments = [payment("P1", 12_900, "succeeded", at: t0 + minute, ref: "psp_1")]
        let paid = run.at(t0 + 17 * minute)
        #expect(paid.status == .paid)
        // Ops was to hear of the stall if the provider could not say: that alert is resolved
        // (the store writes the resolution only if the alert was written).
        #expect(paid.messages.map(\.kind) == [.paymentConfirmed, .situationResolved])
        #expect(paid.messages[1].resolves == .payingStalled)
        #expect(paid.messages[1].channel == "ops")
        #expect(paid.reconciles.isEmpty)
        #expect(run.at(t0 + 18 * minute).messages.isEmpty)
        // Or failed: the customer is told why.
        var failing = Run(order(), payments: [pending()], policy: Self.policy())
        failing.at(t0 + 16 * minute)
        failing.snapshot.payments = [payment("P1", 12_900, "failed", at: t0 + minute, reason: "card_declined", ref: "psp_1")]
        let failed = failing.at(t0 + 17 * minute)
        #expect(failed.status == .failed)
        #expect(failed.messages.first?.kind == .paymentFailed)
    }

    @Test func pastGiveUpAfterTheHoldResumesAndAnExpiredHoldCancels() throws {
        var run = Run(order(), payments: [pending()], policy: Self.policy())
        #expect(run.at(t0 + 60 * minute).status == .paying)  // the hold (30m) has passed, the attempt holds
        let given = run.at(t0 + 121 * minute)
        #expect(given.status == .cancelled)
        #expect(Set(given.messages.map(\.kind)) == [.payingStalled, .orderCancelled])
        let ops = try #require(given.messages.first { $0.kind == .payingStalled })
        #expect(ops.webhookBody.contains("give_up_after"))
        #expect(ops.step % Planner.payingStride == Planner.givenUpStep)
        #expect(given.events.contains { $0.event == "paying_given_up" })
        #expect(given.reconciles.isEmpty)
        // Told once.
        #expect(run.at(t0 + 200 * minute).messages.isEmpty)
    }

    @Test func pastGiveUpAfterWithinTheHoldRemindersResume() {
        // Hold 1d; give up after 2h: the order is unpaid again and the next reminder goes out.
        let policy = Policy(unpaidHoldMs: 24 * 60 * minute, unpaidRemindersMs: [10 * minute, 180 * minute], unpaidChannels: ["sms"],
                            payingStallAfterMs: 15 * minute, payingEscalations: 1, payingGiveUpAfterMs: 120 * minute,
                            fixedRecipients: ["ops": "oncall"])
        var run = Run(order(), payments: [pending()], policy: policy)
        let paying = run.at(t0 + 100 * minute)
        #expect(paying.status == .paying)
        #expect(paying.nextDueAt == t0 + 121 * minute)
        let unpaid = run.at(t0 + 121 * minute)
        #expect(unpaid.status == .unpaid)
        // Reminders resume: the one missed while the attempt held the order goes out now.
        #expect(unpaid.messages.map(\.kind) == [.payingStalled, .unpaidReminder])
        #expect(unpaid.nextDueAt == t0 + 180 * minute)
        #expect(run.at(t0 + 180 * minute).messages.map(\.kind) == [.unpaidReminder])
        // The given-up attempt is not asked about any more.
        #expect(run.sent.filter { $0.kind == .payingStalled }.count == 2)
        #expect(run.at(t0 + 300 * minute).messages.isEmpty)
    }

    @Test func aNewAttemptHoldsTheOrderAgainWithItsOwnEscalations() {
        var run = Run(order(expiresAt: t0 + 10 * 60 * minute), payments: [pending()], policy: Self.policy())
        run.at(t0 + 121 * minute)
        run.snapshot.payments.append(pending("P2", at: t0 + 130 * minute, ref: "psp_2"))
        let again = run.at(t0 + 131 * minute)
        #expect(again.status == .paying)
        let ask = run.at(t0 + 145 * minute)
        #expect(ask.reconciles.map(\.paymentID) == ["P2"])
    }
}
