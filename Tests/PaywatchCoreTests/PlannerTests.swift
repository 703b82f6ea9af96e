import Foundation
import Testing
@testable import PaywatchCore

let minute: Millis = 60_000
let t0: Millis = 1_790_000_000_000  // created_at of the test orders

func order(_ id: String = "A1", due: Int64 = 12_900, phone: String? = "+8613800000000", email: String? = "alice@example.com",
           push: String? = nil, expiresAt: Millis? = nil) -> OrderRecord {
    OrderRecord(id: id, amountDue: due, createdAt: t0, expiresAt: expiresAt, email: email, phone: phone, pushToken: push,
                locale: "zh-CN", payURL: "https://shop.example/pay/\(id)")
}

func payment(_ id: String, _ amount: Int64, _ status: String, at: Millis, reason: String? = nil, ref: String? = nil) -> PaymentRecord {
    PaymentRecord(id: id, orderID: "A1", amount: amount, status: status, providerRef: ref, failureReason: reason, createdAt: at)
}

/// Plans `snapshot` at `now`, then carries the plan's state forward like the store does.
struct Run {
    var planner = Planner(policy: Policy())  // hold 30m, reminders 10m and 25m, channels push, sms, email
    var snapshot: OrderSnapshot
    var sent: [OutgoingMessage] = []

    init(_ order: OrderRecord, payments: [PaymentRecord] = [], installments: [InstallmentRecord] = [], policy: Policy = Policy()) {
        planner = Planner(policy: policy)
        snapshot = OrderSnapshot(orderID: order.id, order: order, payments: payments, installments: installments)
    }

    @discardableResult
    mutating func at(_ now: Millis) -> Plan {
        let plan = planner.plan(snapshot, now: now)
        if plan.quarantine == nil {
            snapshot.state = TrackedState(status: plan.status, marks: plan.marks, firstSeenAt: snapshot.state.firstSeenAt ?? now)
        }
        sent += plan.messages
        return plan
    }
}

@Suite struct PlannerTests {
    @Test func aDecisionWithNoAddressIsRecordedAsAnEvent() {
        var run = Run(order(phone: nil, email: nil))
        run.at(t0)
        let plan = run.at(t0 + 10 * minute)
        #expect(plan.messages.isEmpty)
        #expect(plan.events.map(\.detail) == ["step 1 decided; no address for push,sms,email"])
        #expect(plan.events.map(\.event) == ["unpaid_reminder"])
    }

    @Test func remindersGoOutAtTheirTimeNeverBefore() {
        var run = Run(order())
        let first = run.at(t0)
        #expect(first.messages.isEmpty)
        #expect(first.status == .unpaid)
        #expect(first.nextDueAt == t0 + 10 * minute)

        #expect(run.at(t0 + 10 * minute - 1).messages.isEmpty)
        let reminder = run.at(t0 + 10 * minute)
        #expect(reminder.messages.map(\.kind) == [.unpaidReminder, .unpaidReminder])
        // Only the channels the order has an address for: no push token here.
        #expect(Set(reminder.messages.map(\.channel)) == ["sms", "email"])
        #expect(reminder.messages.allSatisfy { $0.step == 1 })
        #expect(reminder.nextDueAt == t0 + 25 * minute)
        // The messages are the decision's record: no event repeats them.
        #expect(reminder.events.isEmpty)

        // Planning again at the same instant decides nothing new.
        #expect(run.at(t0 + 10 * minute).messages.isEmpty)
        #expect(run.at(t0 + 25 * minute - 1).messages.isEmpty)
        let second = run.at(t0 + 25 * minute)
        #expect(second.messages.map(\.step) == [2, 2])
        #expect(second.nextDueAt == t0 + 30 * minute)  // the hold
    }

    @Test func missedStepsCollapseIntoTheLatest() {
        var run = Run(order())
        // First seen 26 minutes after creation (paywatch was down): only step 2, once.
        let plan = run.at(t0 + 26 * minute)
        #expect(plan.messages.map(\.step) == [2, 2])
        #expect(plan.events.contains { $0.event == "reminders_collapsed" })
        #expect(run.at(t0 + 27 * minute).messages.isEmpty)
    }

    @Test func cancelsAtTheHoldWithANotice() {
        var run = Run(order())
        run.at(t0)
        let before = run.at(t0 + 30 * minute - 1)
        #expect(before.status == .unpaid)
        let cancel = run.at(t0 + 30 * minute)
        #expect(cancel.status == .cancelled)
        #expect(cancel.statusChanged)
        #expect(cancel.messages.map(\.kind) == [.orderCancelled, .orderCancelled])
        #expect(cancel.nextDueAt == nil)
        #expect(cancel.events.map(\.event) == ["status"])  // the notice is recorded by its messages
        // No reminder is sent once cancelled, and the cancel notice goes once.
        #expect(run.at(t0 + 40 * minute).messages.isEmpty)
        #expect(run.sent.filter { $0.kind == .orderCancelled }.count == 2)
    }

    @Test func firstSeenAfterTheHoldIsCancelledWithoutReminders() {
        var run = Run(order())
        let plan = run.at(t0 + 2 * 60 * minute)
        #expect(plan.status == .cancelled)
        #expect(plan.messages.allSatisfy { $0.kind == .orderCancelled })
    }

    @Test func expiresAtOverridesTheHold() {
        var run = Run(order(expiresAt: t0 + 12 * minute))
        run.at(t0)
        // The 25m reminder lies after the expiry: it is never scheduled.
        #expect(run.at(t0 + 10 * minute).nextDueAt == t0 + 12 * minute)
        #expect(run.at(t0 + 12 * minute).status == .cancelled)
        #expect(!run.sent.contains { $0.step == 2 })
    }

    @Test func neverCancelsWhileAPaymentIsPending() {
        var run = Run(order(), payments: [payment("P1", 12_900, "pending", at: t0 + 29 * minute)])
        let plan = run.at(t0 + 30 * minute)
        #expect(plan.status == .paying)
        #expect(plan.messages.isEmpty)
        #expect(run.at(t0 + 90 * minute).status == .paying)
    }

    @Test func aPaymentInTheSameMillisecondAsTheExpiryWins() {
        var run = Run(order(), payments: [payment("P1", 12_900, "succeeded", at: t0 + 30 * minute)])
        let plan = run.at(t0 + 30 * minute)
        #expect(plan.status == .paid)
        #expect(plan.messages.allSatisfy { $0.kind == .paymentConfirmed })
        #expect(!plan.messages.isEmpty)
    }

    @Test func confirmsAPaymentOnce() {
        var run = Run(order())
        run.at(t0)
        run.snapshot.payments = [payment("P1", 12_900, "succeeded", at: t0 + minute)]
        let paid = run.at(t0 + minute)
        #expect(paid.status == .paid)
        #expect(paid.messages.count == 2)
        #expect(paid.nextDueAt == nil)
        #expect(run.at(t0 + 31 * minute).messages.isEmpty)
        #expect(run.at(t0 + 31 * minute).status == .paid)
    }

    @Test func failedAttemptIsExplainedAtOnceThenReminded() throws {
        var run = Run(order())
        run.at(t0)
        run.snapshot.payments = [payment("P1", 12_900, "failed", at: t0 + 2 * minute, reason: "insufficient_funds")]
        let failed = run.at(t0 + 2 * minute)
        #expect(failed.status == .failed)
        #expect(failed.messages.map(\.kind) == [.paymentFailed, .paymentFailed])
        let body = try #require(failed.messages.first?.webhookBody)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["failure_reason"] as? String == "insufficient_funds")
        #expect((json["body"] as? String)?.contains("余额不足") == true)
        // [failed].reminders: 10m after the failed attempt.
        #expect(failed.nextDueAt == t0 + 12 * minute)
        let reminder = run.at(t0 + 12 * minute)
        #expect(reminder.messages.map(\.kind) == [.unpaidReminder, .unpaidReminder])
        #expect(reminder.messages.first?.step == 101)
        #expect(run.at(t0 + 30 * minute).status == .cancelled)
    }

    @Test func partialPaymentIsNeitherCancelledNorReminded() {
        var run = Run(order(), payments: [payment("P1", 5_000, "succeeded", at: t0 + minute)])
        let plan = run.at(t0 + 31 * minute)
        #expect(plan.status == .partiallyPaid)
        #expect(plan.messages.isEmpty)
        #expect(plan.amountPaid == 5_000)
    }

    @Test func latePaymentAfterCancelGoesToOps() {
        var run = Run(order())
        run.at(t0 + 31 * minute)
        run.snapshot.payments = [payment("P1", 12_900, "succeeded", at: t0 + 40 * minute)]
        let plan = run.at(t0 + 40 * minute)
        #expect(plan.status == .cancelled)
        #expect(plan.messages.map(\.kind) == [.latePayment])
        #expect(plan.messages.first?.channel == "ops")
        #expect(run.at(t0 + 41 * minute).messages.isEmpty)
    }

    @Test func keysAreStablePerDecision() {
        var a = Run(order())
        var b = Run(order())
        let first = a.at(t0 + 10 * minute).messages.map(\.idempotencyKey)
        let again = b.at(t0 + 11 * minute).messages.map(\.idempotencyKey)
        #expect(first == again)
        #expect(first.contains("pw1:A1:unpaid_reminder:1:sms"))
        #expect(Set(first).count == first.count)
    }

    @Test func webhookBodyCarriesTheContractFields() throws {
        var run = Run(order(push: "tok-abcdef"))
        let message = try #require(run.at(t0 + 10 * minute).messages.first { $0.channel == "sms" })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(message.webhookBody.utf8)) as? [String: Any])
        #expect(json["idempotency_key"] as? String == message.idempotencyKey)
        #expect(json["kind"] as? String == "unpaid_reminder")
        #expect(json["channel"] as? String == "sms")
        #expect(json["order_id"] as? String == "A1")
        #expect(json["to"] as? String == "+8613800000000")
        #expect(json["amount_due"] as? Int == 12_900)
        #expect(json["amount_paid"] as? Int == 0)
        #expect(json["amount_remaining"] as? Int == 12_900)
        #expect(json["currency"] as? String == "CNY")
        #expect(json["locale"] as? String == "zh-CN")
        #expect(json["expires_at"] as? String == Timestamp.iso8601(t0 + 30 * minute))
        #expect((json["subject"] as? String)?.isEmpty == false)
        // zh-CN shows CNY as ¥ (templates format amounts per locale).
        #expect((json["body"] as? String)?.contains("¥129.00") == true)
    }

    @Test(arguments: [
        (OrderRecord(id: "A1", amountDue: -5, createdAt: t0), "amount_due must be positive"),
        (OrderRecord(id: "A1", amountDue: nil, createdAt: t0), "amount_due is missing"),
        (OrderRecord(id: "A1", amountDue: 10, createdAt: t0, phone: "13800000000"), "phone is not E.164"),
        (OrderRecord(id: "A1", amountDue: 10, createdAt: t0, email: "not-an-email"), "email is malformed"),
        (OrderRecord(id: "A1", amountDue: 10, currency: "yuan", createdAt: t0), "currency"),
    ])
    func badOrdersAreQuarantined(record: OrderRecord, reason: String) throws {
        let plan = Planner(policy: Policy()).plan(OrderSnapshot(orderID: "A1", order: record), now: t0 + 40 * minute)
        let quarantine = try #require(plan.quarantine)
        #expect(quarantine.contains(reason))
        #expect(plan.messages.isEmpty)
        #expect(plan.nextDueAt == nil)
        // No personal data in the reason.
        #expect(!quarantine.contains("13800000000"))
    }

    @Test func paymentForAMissingOrderIsQuarantined() {
        let snapshot = OrderSnapshot(orderID: "GHOST", order: nil, payments: [payment("P9", 100, "succeeded", at: t0)])
        let plan = Planner(policy: Policy()).plan(snapshot, now: t0)
        #expect(plan.quarantine == "payment P9 points to no order GHOST")
    }

    @Test func unknownPaymentStatusIsQuarantined() {
        let snapshot = OrderSnapshot(orderID: "A1", order: order(), payments: [payment("P1", 100, "settled", at: t0)])
        #expect(Planner(policy: Policy()).plan(snapshot, now: t0).quarantine?.contains("unknown status") == true)
    }

    @Test func supersededKinds() {
        #expect(NotificationKind.unpaidReminder.stillApplies(to: .unpaid))
        #expect(!NotificationKind.unpaidReminder.stillApplies(to: .paid))
        #expect(!NotificationKind.unpaidReminder.stillApplies(to: .cancelled))
        #expect(!NotificationKind.orderCancelled.stillApplies(to: .paid))
        #expect(NotificationKind.paymentConfirmed.stillApplies(to: .paid))
        #expect(NotificationKind.deliveryDead.stillApplies(to: .cancelled))
    }

    @Test func deliveryDeadMessageIsKeyedByTheDeadOne() {
        var run = Run(order())
        let dead = run.at(t0 + 10 * minute).messages[0]
        let ops = run.planner.deliveryDeadMessage(for: dead, reason: "HTTP 400")
        #expect(ops.kind == .deliveryDead)
        #expect(ops.channel == "ops")
        #expect(ops.idempotencyKey == "pw1-dead:" + dead.idempotencyKey)
        #expect(ops.webhookBody.contains("HTTP 400"))
    }
}

@Suite struct LedgerTests {
    func status(_ payments: [PaymentRecord], refunds: [RefundRecord] = [], previous: OrderStatus? = nil) -> OrderStatus {
        Ledger(amountDue: 1000, payments: payments, refunds: refunds).derivedStatus(previous: previous)
    }

    @Test func everyStatus() {
        #expect(status([]) == .unpaid)
        #expect(status([payment("a", 1000, "pending", at: 1)]) == .paying)
        #expect(status([payment("a", 400, "succeeded", at: 1)]) == .partiallyPaid)
        #expect(status([payment("a", 400, "succeeded", at: 1), payment("b", 600, "succeeded", at: 2)]) == .paid)
        #expect(status([payment("a", 1000, "failed", at: 1)]) == .failed)
        #expect(status([payment("a", 1000, "failed", at: 1), payment("b", 1000, "pending", at: 2)]) == .paying)
        let paid = [payment("a", 1000, "succeeded", at: 1)]
        #expect(status(paid, refunds: [RefundRecord(id: "r", amount: 1000, status: "processing", requestedAt: 2)]) == .refunding)
        #expect(status(paid, refunds: [RefundRecord(id: "r", amount: 1000, status: "succeeded", requestedAt: 2)]) == .refunded)
        #expect(status(paid, previous: .cancelled) == .cancelled)
        #expect(status([], previous: .refunded) == .refunded)
    }

    @Test func amountPaidIsTheSumOfSucceededPaymentsOnly() {
        let ledger = Ledger(amountDue: 1000, payments: [
            payment("a", 300, "succeeded", at: 1), payment("b", 500, "failed", at: 2), payment("c", 200, "pending", at: 3),
            payment("d", 100, "succeeded", at: 4),
        ], refunds: [])
        #expect(ledger.amountPaid == 400)
        #expect(ledger.amountRemaining == 600)
    }
}

@Suite struct RedactTests {
    @Test func masksAddresses() {
        #expect(Redact.phone("+8613800000000") == "+86*******0000")
        #expect(Redact.email("alice@example.com") == "a***@example.com")
        #expect(Redact.address("tok-123456789", channel: "push") == "…6789")
    }

    @Test func validatesAddresses() {
        #expect(Validator.isE164("+8613800000000"))
        #expect(!Validator.isE164("+0613800000000"))
        #expect(!Validator.isE164("8613800000000"))
        #expect(Validator.isEmail("a.b@shop.example"))
        #expect(!Validator.isEmail("a@b"))
        #expect(!Validator.isEmail("a b@shop.example"))
    }

    @Test func formatsTimesAndMoney() {
        #expect(Timestamp.iso8601(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.iso8601(1_795_595_400_250) == "2026-11-25T08:30:00.250Z")
        #expect(Messages.money(12_900, "CNY") == "129.00 CNY")
        #expect(Messages.money(5, "USD") == "0.05 USD")
        #expect(Messages.money(500, "JPY") == "500 JPY")
        #expect(Timestamp.local(1_795_595_400_000, timeZone: "Asia/Shanghai") == "2026-11-25 16:30 (Asia/Shanghai)")
        #expect(JSONObjectWriter.escapeTest("a\"b\n") == "\"a\\\"b\\n\"")
    }
}

extension JSONObjectWriter {
    static func escapeTest(_ value: String) -> String {
        var out = ""
        appendString(value, to: &out)
        return out
    }
}
