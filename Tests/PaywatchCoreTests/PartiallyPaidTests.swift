import Foundation
import Testing
@testable import PaywatchCore

let day: Millis = 86_400_000

/// `[partially_paid]`: balance reminders without a plan, installments with one, overdue notices,
/// the escalation and `on_overdue`.
@Suite struct PartiallyPaidTests {
    /// SMS only, so each decision is one message.
    static func policy(cancelOnOverdue: Bool = false, overdueMax: Int = 3) -> Policy {
        Policy(unpaidChannels: ["sms"], overdueMax: overdueMax, cancelOnOverdue: cancelOnOverdue, fixedRecipients: ["ops": "oncall"])
    }

    func json(_ message: OutgoingMessage) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(message.webhookBody.utf8)) as? [String: Any])
    }

    @Test func withoutAPlanTheBalanceIsRemindedAfterTheLastPaymentThenOverdueThenEscalated() throws {
        var run = Run(order(due: 10_000), payments: [payment("P1", 4_000, "succeeded", at: t0 + minute)], policy: Self.policy())
        let first = run.at(t0 + 2 * minute)
        #expect(first.status == .partiallyPaid)
        #expect(first.messages.isEmpty)
        #expect(first.nextDueAt == t0 + minute + day)
        // Never cancelled by the hold (30 minutes).
        #expect(run.at(t0 + 31 * minute).status == .partiallyPaid)

        let reminder = run.at(t0 + minute + day)
        #expect(reminder.messages.map(\.kind) == [.balanceReminder])
        #expect(reminder.messages[0].idempotencyKey == "pw1:A1:balance_reminder:1001:sms")
        let body = try json(reminder.messages[0])
        #expect(body["amount_remaining"] as? Int == 6_000)
        #expect(body["installment_amount"] as? Int == 6_000)
        #expect(body["installment_seq"] == nil)
        #expect(body["due_at"] as? String == Timestamp.iso8601(t0 + 7 * day))  // created_at + balance_due
        #expect(reminder.nextDueAt == t0 + minute + 3 * day)
        #expect(run.at(t0 + minute + 3 * day).messages.map(\.step) == [1002])
        // The third reminder step would be after the due time: the overdue notices take over.
        let due = run.at(t0 + 7 * day)
        #expect(due.messages.map(\.kind) == [.installmentOverdue])
        #expect(due.messages[0].step == 1)
        #expect(due.nextDueAt == t0 + 8 * day)
        #expect(run.at(t0 + 8 * day).messages.map(\.step) == [2])
        // Missed notices collapse: one at 9d + a bit, the third and last.
        let last = run.at(t0 + 9 * day + 5 * minute)
        #expect(last.messages.map(\.step) == [3])
        #expect(last.nextDueAt == t0 + 10 * day)
        // One period after the last notice: ops, and (escalate) nothing else.
        let escalated = run.at(t0 + 10 * day)
        #expect(escalated.messages.map(\.kind) == [.installmentEscalated])
        #expect(escalated.messages[0].channel == "ops")
        #expect(escalated.status == .partiallyPaid)
        #expect(escalated.nextDueAt == nil)
        #expect(run.at(t0 + 30 * day).messages.isEmpty)
        #expect(run.sent.count == 6)
    }

    @Test func eachPaymentStartsTheBalanceRemindersAgain() {
        var run = Run(order(due: 10_000), payments: [payment("P1", 4_000, "succeeded", at: t0 + minute)], policy: Self.policy())
        run.at(t0 + minute + day)
        run.snapshot.payments.append(payment("P2", 1_000, "succeeded", at: t0 + 2 * day))
        let after = run.at(t0 + 2 * day)
        #expect(after.messages.isEmpty)
        #expect(after.nextDueAt == t0 + 3 * day)
        #expect(run.at(t0 + 3 * day).messages.map(\.idempotencyKey) == ["pw1:A1:balance_reminder:2001:sms"])
    }

    @Test func paymentsAreAppliedToInstallmentsInOrderAndTheFirstOpenOneIsReminded() throws {
        let plan = [
            InstallmentRecord(seq: 2, amount: 3_000, dueAt: t0 + 20 * day),
            InstallmentRecord(seq: 1, amount: 3_000, dueAt: t0 + 10 * day),
            InstallmentRecord(seq: 3, amount: 4_000, dueAt: t0 + 30 * day),
        ]
        var run = Run(order(due: 10_000), payments: [payment("P1", 4_000, "succeeded", at: t0 + minute)], installments: plan,
                      policy: Self.policy())
        let first = run.at(t0 + 2 * minute)
        // Installment 1 is paid, 1,000 of installment 2 too: 2,000 of it is open, due at 20 days.
        #expect(first.nextDueAt == t0 + 17 * day)
        let soon = run.at(t0 + 17 * day)
        #expect(soon.messages.map(\.kind) == [.installmentDue])
        #expect(soon.messages[0].idempotencyKey == "pw1:A1:installment_due:2001:sms")
        let body = try json(soon.messages[0])
        #expect(body["installment_seq"] as? Int == 2)
        #expect(body["installment_amount"] as? Int == 2_000)
        #expect(body["due_at"] as? String == Timestamp.iso8601(t0 + 20 * day))
        #expect((body["body"] as? String)?.contains("第 2 期") == true)
        #expect(run.at(t0 + 19 * day).messages.map(\.step) == [2002])
        #expect(run.at(t0 + 20 * day).messages.map(\.kind) == [.installmentOverdue])
    }

    @Test func anInstallmentPaidExactlyAtItsDueTimeIsNotOverdue() {
        let plan = [InstallmentRecord(seq: 1, amount: 5_000, dueAt: t0 + minute),
                    InstallmentRecord(seq: 2, amount: 5_000, dueAt: t0 + 10 * day)]
        var run = Run(order(due: 10_000), payments: [payment("P1", 5_000, "succeeded", at: t0 + minute)], installments: plan,
                      policy: Self.policy())
        #expect(run.at(t0 + 2 * minute).nextDueAt == t0 + 7 * day)
        run.snapshot.payments.append(payment("P2", 5_000, "succeeded", at: t0 + 10 * day))
        let paid = run.at(t0 + 10 * day)
        #expect(paid.status == .paid)
        #expect(paid.messages.map(\.kind) == [.paymentConfirmed])
        #expect(!run.sent.contains { $0.kind == .installmentOverdue })
    }

    @Test func onOverdueCancelCancelsAndTellsTheCustomerOnce() {
        let plan = [InstallmentRecord(seq: 1, amount: 5_000, dueAt: t0 + minute),
                    InstallmentRecord(seq: 2, amount: 5_000, dueAt: t0 + 10 * day)]
        var run = Run(order(due: 10_000), payments: [payment("P1", 5_000, "succeeded", at: t0 + minute)], installments: plan,
                      policy: Self.policy(cancelOnOverdue: true, overdueMax: 1))
        run.at(t0 + 2 * minute)
        #expect(run.at(t0 + 10 * day).messages.map(\.kind) == [.installmentOverdue])
        let cancelled = run.at(t0 + 11 * day)
        #expect(cancelled.status == .cancelled)
        #expect(cancelled.messages.map(\.kind) == [.installmentEscalated, .orderCancelled])
        #expect(cancelled.messages[1].webhookBody.contains("第 2 期"))
        #expect(run.at(t0 + 12 * day).messages.isEmpty)
        #expect(run.at(t0 + 12 * day).status == .cancelled)
    }

    @Test func installmentSeqsOutsideTheKeyRangeAreQuarantined() {
        let plan = [InstallmentRecord(seq: 0, amount: 5_000, dueAt: t0 + day)]
        let planned = Planner(policy: Self.policy()).plan(
            OrderSnapshot(orderID: "A1", order: order(due: 10_000), installments: plan), now: t0)
        #expect(planned.quarantine == "installment seq must be 1…1000000 (got 0)")
    }
}
