import Foundation
import Testing
@testable import PaywatchCore

@Suite struct RefundingTests {
    static let policy = Policy(unpaidChannels: ["sms"], refundStallAfterMs: 3 * day, fixedRecipients: ["ops": "oncall"])

    func refund(_ id: String, _ amount: Int64, _ status: String, at: Millis = t0 + day) -> RefundRecord {
        RefundRecord(id: id, amount: amount, status: status, requestedAt: at)
    }

    @Test func theCustomerHearsOfEachRefundStepAndOpsOfARefundThatStalls() throws {
        var run = Run(order(due: 10_000), payments: [payment("P1", 10_000, "succeeded", at: t0 + minute)], policy: Self.policy)
        #expect(run.at(t0 + 2 * minute).messages.map(\.kind) == [.paymentConfirmed])
        run.snapshot.refunds = [refund("R1", 4_000, "requested")]
        let requested = run.at(t0 + day)
        #expect(requested.status == .refunding)
        #expect(requested.messages.map(\.kind) == [.refundProgress])
        let body = try #require(try JSONSerialization.jsonObject(with: Data(requested.messages[0].webhookBody.utf8)) as? [String: Any])
        #expect(body["refund_id"] as? String == "R1")
        #expect(body["refund_status"] as? String == "requested")
        #expect(body["refund_amount"] as? Int == 4_000)
        #expect(requested.nextDueAt == t0 + 4 * day)
        // Planned again without a change: nothing new.
        #expect(run.at(t0 + 2 * day).messages.isEmpty)
        run.snapshot.refunds = [refund("R1", 4_000, "processing")]
        let processing = run.at(t0 + 2 * day)
        #expect(processing.messages.map(\.kind) == [.refundProgress])
        // Stuck in processing for stall_after: ops, once.
        #expect(processing.nextDueAt == t0 + 5 * day)
        let stalled = run.at(t0 + 5 * day)
        #expect(stalled.messages.map(\.kind) == [.refundStalled])
        #expect(stalled.messages[0].channel == "ops")
        #expect(stalled.messages[0].webhookBody.contains("processing since"))
        #expect(run.at(t0 + 9 * day).messages.isEmpty)
        // Done: a partial refund takes the order back to paid; the customer is told.
        run.snapshot.refunds = [refund("R1", 4_000, "succeeded")]
        let done = run.at(t0 + 10 * day)
        #expect(done.status == .paid)
        // …and ops that the stalled refund moved on: resolved, once.
        #expect(done.messages.map(\.kind) == [.refundProgress, .situationResolved])
        #expect(done.messages[0].webhookBody.contains("已退回"))
        #expect(done.messages[1].resolves == .refundStalled)
        #expect(done.messages[1].content.fact("resolves") == .text("refund_stalled"))
        #expect(done.messages[1].content.subject == "Order \(run.snapshot.orderID): refund_stalled resolved")
        #expect(run.at(t0 + 11 * day).messages.isEmpty)
        // All keys distinct: one message per refund step.
        #expect(Set(run.sent.map(\.idempotencyKey)).count == run.sent.count)
    }

    @Test func refundsCoveringWhatWasPaidEndInRefunded() {
        var run = Run(order(due: 10_000), payments: [payment("P1", 10_000, "succeeded", at: t0 + minute)], policy: Self.policy)
        run.at(t0 + 2 * minute)
        run.snapshot.refunds = [refund("R1", 6_000, "succeeded"), refund("R2", 4_000, "succeeded", at: t0 + day + 1)]
        let planned = run.at(t0 + 2 * day)
        #expect(planned.status == .refunded)
        #expect(planned.messages.map(\.kind) == [.refundProgress, .refundProgress])
    }

    @Test func aPaymentAndARefundInOneSweep() {
        var run = Run(order(due: 10_000), policy: Self.policy)
        run.at(t0)
        run.snapshot.payments = [payment("P1", 10_000, "succeeded", at: t0 + minute)]
        run.snapshot.refunds = [refund("R1", 10_000, "requested", at: t0 + 2 * minute)]
        let planned = run.at(t0 + 3 * minute)
        #expect(planned.status == .refunding)
        #expect(Set(planned.messages.map(\.kind)) == [.refundProgress])
        // The confirmation is not sent for money already being returned in full.
        #expect(!planned.messages.contains { $0.kind == .paymentConfirmed })
    }

    @Test func aRefundFirstSeenLongAfterItsRequestIsStalledAtOnce() {
        var run = Run(order(due: 10_000), payments: [payment("P1", 10_000, "succeeded", at: t0 + minute)], policy: Self.policy)
        run.snapshot.refunds = [refund("R1", 10_000, "processing", at: t0 + day)]
        let planned = run.at(t0 + 5 * day)
        #expect(planned.messages.map(\.kind) == [.refundProgress, .refundStalled])
    }
}
