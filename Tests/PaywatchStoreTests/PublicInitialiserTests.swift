import Foundation
import PaywatchCore
import PaywatchStore  // not @testable: only what a second store module could use
import Testing

/// A store in another module must build every value the ``OrderStore`` protocol passes. This file
/// imports the store without `@testable`, so an initialiser that is internal (a memberwise one)
/// does not compile here.
@Suite struct PublicInitialiserTests {
    @Test func everyTypeAStoreReturnsCanBeBuiltFromAnotherModule() throws {
        let message = OutgoingMessage(
            idempotencyKey: "k1", orderID: "A", kind: .unpaidReminder, step: 1, channel: "sms", recipient: "+8613800000000",
            payload: "pay", notBefore: 5, collapsesHeld: true,
            alternates: [OutgoingMessage(idempotencyKey: "k2", orderID: "A", kind: .unpaidReminder, step: 1, channel: "email",
                                         recipient: "a@example.com", payload: "pay")],
            resolves: nil)
        #expect(message.alternates.count == 1 && message.collapsesHeld)
        let outbox = OutboxMessage(id: 1, message: message, attempts: 0)

        let snapshot = OrderSnapshot(
            orderID: "A", order: OrderRecord(id: "A", amountDue: 100, createdAt: 1),
            payments: [PaymentRecord(id: "P", orderID: "A", amount: 100, status: "pending", createdAt: 1)],
            installments: [InstallmentRecord(seq: 1, amount: 50, dueAt: 2)],
            refunds: [RefundRecord(id: "R", amount: 10, status: "requested", requestedAt: 3)],
            state: TrackedState(status: .unpaid, marks: ["unpaid_reminder": 1], firstSeenAt: 1), readProblem: nil,
            suppressions: [Suppression(channel: "sms", address: "+8613800000000", reason: "STOP")])
        #expect(snapshot.suppression(channel: "sms", address: "+8613800000000") == "STOP")

        let request = ReconcileRequest(orderID: "A", paymentID: "P", providerRef: "ref", step: 1, fallback: nil)
        let plan = Plan(orderID: "A", quarantine: nil, previousStatus: nil, status: .unpaid, amountPaid: 0, messages: [message],
                        events: [PlanEvent("status", "new → unpaid")], marks: ["unpaid_reminder": 1], nextDueAt: 10,
                        needsRefund: 5, reconciles: [request])
        #expect(plan.statusChanged && plan.needsRefund == 5 && plan.reconciles == [request])
        let sweep = SweepResult(plans: [plan], claimed: 1)
        #expect(sweep.claimed == 1)

        let claimRequest = DeliveryClaimRequest(perChannel: ["sms": 10], others: 1, knownChannels: ["sms"], leaseMs: 30_000,
                                                maxPerOrderPerDay: 3)
        #expect(claimRequest.maxPerOrderPerDay == 3)
        let claim = DeliveryClaim(messages: [outbox], superseded: [outbox], suppressed: [outbox], capped: [outbox],
                                  saturatedChannels: ["sms"], othersSaturated: true, nextDueAt: ["sms": 9])
        #expect(claim.suppressed.count == 1 && claim.capped.count == 1)
        _ = DeliveryResult(outboxID: 1, startedAt: 1, httpStatus: 200, error: nil, durationMs: 3, outcome: .delivered,
                           followUp: nil, suppress: false)
        _ = DeliveryHandOff(leaseMs: 1, claimsReminders: true) { _ in true }
        let task = ReconcileTask(id: 1, request: request)
        _ = ReconcileOutcome(task: task, answer: .definite(.succeeded, failureReason: nil), detail: "succeeded")

        _ = OrderSummary(id: "A", status: "unpaid", amountDue: 100, amountPaid: 0, currency: "CNY", nextDueAt: 10,
                         quarantine: nil, needsRefund: 0)
        let attempt = AttemptRecord(attempt: 1, at: 2, httpStatus: 503, error: "busy", durationMs: 4, outcome: .retry)
        let delivery = DeliveryRecord(idempotencyKey: "k1", kind: "unpaid_reminder", step: 1, channel: "sms", to: "+86****0000",
                                      state: .pending, createdAt: 1, dueAt: 2, lastError: "busy", attempts: [attempt],
                                      heldUntil: 2)
        let detail = OrderDetail(orderID: "A", snapshot: snapshot, trackedStatus: .unpaid, amountPaid: 0, nextDueAt: 10,
                                 quarantine: nil, needsRefund: 0, timeline: [TimelineEntry(at: 1, event: "status", detail: "x")],
                                 deliveries: [delivery], prunedAt: nil, prunedKeepMs: nil)
        #expect(detail.deliveries.first?.attempts.first?.outcome == .retry)

        let report = Report(
            since: 0, now: 10, ordersByStatus: ["unpaid": 1], quarantined: 0, needsRefund: 0,
            messages: [Report.MessageCount(kind: "unpaid_reminder", channel: "sms", state: .delivered, count: 1)],
            attempts: [.delivered: 1], backlog: 0, oldestBacklogDueAt: nil,
            reminderConversion: Report.ReminderConversion(remindedOrders: 1, paidOrders: 1, rate: 1),
            cancellations: Report.Cancellations(orders: 0, reminded: 0), escalations: ["late_payment": 1],
            needsRefundByCurrency: [Report.Money(currency: "CNY", orders: 1, amount: 5)], outstanding: [],
            timeToPayment: Report.TimeToPayment(orders: 1, medianMs: 7))
        #expect(report.timeToPayment.medianMs == 7)

        let health = Health(now: 10, daemon: DaemonHeartbeat(instance: "h", pid: 1, startedAt: 0, configLoadedAt: 0),
                            lag: Lag(), openOrders: 1, quarantined: 0, backlog: [:], outbox: [.pending: 1, .inFlight: 2],
                            escalations: [:])
        #expect(health.outbox[.inFlight] == 2)
        _ = PruneCounts(orders: 1, events: 2, outbox: 3, attempts: 4)
        _ = StoreError(description: "x", isConfiguration: true)
    }
}
