import Testing
@testable import PaywatchCore

/// What a careless shop or an attacker can put into a row. Each of these trapped the process (and
/// again on every restart) or went out to a customer before the validator knew about it.
@Suite struct HostileRowsTests {
    let planner = Planner(policy: Policy(unpaidChannels: ["sms"], fixedRecipients: ["ops": "oncall"]))
    let now = t0 + 40 * minute

    func plan(_ record: OrderRecord, payments: [PaymentRecord] = [], refunds: [RefundRecord] = [],
              installments: [InstallmentRecord] = [], at: Millis? = nil) -> Plan {
        planner.plan(OrderSnapshot(orderID: record.id, order: record, payments: payments, installments: installments,
                                   refunds: refunds), now: at ?? now)
    }

    func quarantine(_ plan: Plan) -> String {
        #expect(plan.messages.isEmpty)
        return plan.quarantine ?? "(not quarantined)"
    }

    @Test func overflowingMoneyIsQuarantinedNotSummed() {
        let twice = plan(order(), payments: [payment("P1", .max, "succeeded", at: t0), payment("P2", .max, "succeeded", at: t0)])
        #expect(quarantine(twice).contains("more than a 64-bit integer"))
        let refunds = plan(order(), payments: [payment("P1", 12_900, "succeeded", at: t0)], refunds: [
            RefundRecord(id: "R1", amount: .max, status: "succeeded", requestedAt: t0),
            RefundRecord(id: "R2", amount: .max, status: "succeeded", requestedAt: t0),
        ])
        #expect(quarantine(refunds).contains("refunds add up"))
        #expect(quarantine(plan(order(due: 0))).contains("amount_due must be positive"))
        #expect(quarantine(plan(order(due: .min))).contains("amount_due must be positive"))
    }

    @Test(arguments: [Int64.max, Int64.min, 0, -1, 946_684_799_999, 7_258_118_400_000])
    func absurdTimesAreQuarantined(time: Int64) {
        var created = order()
        created.createdAt = time
        #expect(quarantine(plan(created)).contains("created_at is outside 2000-01-01…2200-01-01"))
        #expect(quarantine(plan(order(expiresAt: time))).contains("expires_at"))
        #expect(quarantine(plan(order(), payments: [payment("P1", 100, "failed", at: time)])).contains("payment P1: created_at"))
        let refund = RefundRecord(id: "R1", amount: 1, status: "requested", requestedAt: time)
        #expect(quarantine(plan(order(), refunds: [refund])).contains("refund R1: requested_at"))
        let installment = InstallmentRecord(seq: 1, amount: 100, dueAt: time)
        #expect(quarantine(plan(order(), installments: [installment])).contains("installment 1: due_at"))
    }

    @Test func theLastBelievableTimesPlanNormally() {
        var early = order()
        early.createdAt = Validator.earliestTime
        #expect(plan(early, at: Validator.earliestTime).quarantine == nil)
        var late = order(expiresAt: Validator.latestTime - 1)
        late.createdAt = Validator.latestTime - 2
        late.timeZone = "Asia/Shanghai"
        let planned = plan(late, at: Validator.latestTime - 2)
        #expect(planned.quarantine == nil)
        #expect(planned.nextDueAt != nil)
    }

    @Test func holdThatEndsBeforeItStartsIsQuarantined() {
        #expect(quarantine(plan(order(expiresAt: t0))).contains("expires_at is not after created_at"))
        #expect(quarantine(plan(order(expiresAt: t0 - 1))).contains("expires_at is not after created_at"))
    }

    @Test func paymentsFromTheFutureWaitUntilTheyAreBelievable() {
        let future = payment("P1", 12_900, "succeeded", at: now + 6 * minute)
        let planned = plan(order(), payments: [future])
        #expect(quarantine(planned).contains("in the future"))
        // Looked at again when it is no longer too far ahead, not before and not in a loop.
        #expect(planned.nextDueAt == now + minute)
        #expect(plan(order(), payments: [future], at: now + minute).status == .paid)
        // Within the allowed skew it counts at once.
        #expect(plan(order(), payments: [payment("P1", 12_900, "succeeded", at: now + 4 * minute)]).status == .paid)
    }

    @Test(arguments: ["A1\r\nX-Injected: yes", "A\u{0}1", "A\u{7F}", "A\u{85}", "A\u{2028}", "", String(repeating: "x", count: 201),
                      "bad\u{FFFD}"])
    func idsThatCannotTravelAreQuarantined(id: String) {
        let planned = plan(order(id))
        let reason = quarantine(planned)
        #expect(reason.hasPrefix("order id "))
        // The reason itself is one printable line.
        #expect(!reason.unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{2028}" })
        // And a payment id like that quarantines its order too.
        let byPayment = plan(order(), payments: [payment(id, 100, "pending", at: t0)])
        #expect(quarantine(byPayment).hasPrefix("a payment id "))
    }

    @Test func theLongestAllowedIDIsFine() {
        #expect(plan(order(String(repeating: "x", count: 200))).quarantine == nil)
    }

    @Test func aPaymentRowRepeatedCountsOnce() {
        // A payments table without a primary key holding the same payment twice: half the money
        // is half the money, not "paid".
        let half = payment("P1", 6_450, "succeeded", at: t0 + minute)
        let planned = plan(order(), payments: [half, half])
        #expect(planned.quarantine == nil)
        #expect(planned.status == .partiallyPaid)
        #expect(planned.amountPaid == 6_450)
        #expect(!planned.messages.contains { $0.kind == .paymentConfirmed })
        // The same id with different contents is not something to guess about.
        let other = payment("P1", 6_450, "failed", at: t0 + minute)
        #expect(quarantine(plan(order(), payments: [half, other])).contains("payment P1 appears twice"))
    }

    @Test func keysArePrintableASCIIWithTheirOwnNamespaces() {
        let emoji = plan(order("订单🙂1"), at: t0 + 10 * minute)
        let key = emoji.messages[0].idempotencyKey
        #expect(key == "pw1:%E8%AE%A2%E5%8D%95%F0%9F%99%821:unpaid_reminder:1:sms")
        #expect(key.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F })
        // An order whose id looks like a dead-letter key cannot collide with one.
        let lookalike = plan(order("dead:pw1:A1"), at: t0 + 10 * minute).messages[0]
        #expect(lookalike.idempotencyKey == "pw1:dead%3Apw1%3AA1:unpaid_reminder:1:sms")
        let original = plan(order("A1"), at: t0 + 10 * minute).messages[0]
        let dead = planner.deliveryDeadMessage(for: original, reason: "HTTP 400")
        #expect(dead.idempotencyKey == "pw1-dead:pw1:A1:unpaid_reminder:1:sms")
        // Ordinary ids keep the keys they always had.
        #expect(original.idempotencyKey == "pw1:A1:unpaid_reminder:1:sms")
        #expect(OutgoingMessage.percentEncoded("ORD-2026_0001.a~b") == "ORD-2026_0001.a~b")
    }

    @Test func formattingNeverTraps() {
        for value in [Int64.max, .min, 0, -1, 1] {
            _ = Timestamp.iso8601(value)
            _ = Timestamp.local(value, timeZone: "Asia/Shanghai")
            _ = Timestamp.local(value, timeZone: "Pacific/Kiritimati")
            _ = Messages.money(value, "CNY")
            _ = Messages.money(value, "JPY")
            _ = Messages.money(value, "KWD")
        }
        #expect(Messages.money(.min, "CNY") == "-92233720368547758.08 CNY")
        #expect(Timestamp.iso8601(-1) == "1969-12-31T23:59:59.999Z")
        #expect(Policy().expiry(of: OrderRecord(id: "X", amountDue: 1, createdAt: .max)) == .max)
    }

    @Test func failureCodesAreClippedAndEscapedInMessages() {
        let text = Messages.failureText("code\r\nwith newline " + String(repeating: "x", count: 200), chinese: false)
        #expect(!text.contains("\n"))
        #expect(text.count < 120)
    }
}

@Suite struct MaskingTests {
    @Test func phonesKeepCountryCodeAndLastFour() {
        #expect(Redact.phone("+14155552671") == "+1*******2671")
        #expect(Redact.phone("+8613800000000") == "+86*******0000")
        #expect(Redact.phone("+79161234567") == "+7*******4567")
        #expect(Redact.phone("+442071838750") == "+44*******8750")
        #expect(Redact.phone("+353861234567") == "+353*******4567")
        // Not E.164: almost nothing shown.
        #expect(Redact.phone("13800000000") == "****00")
        #expect(Redact.phone("+1\n23") == "****")
    }

    @Test func emailsKeepFirstLetterAndDomain() {
        #expect(Redact.email("alice@example.com") == "a***@example.com")
        #expect(Redact.email("@example.com") == "***")
    }

    @Test func gatewayBodiesLoseTheRecipient() {
        let body = #"{"error":"number +14155552671 is not reachable (14155552671)"}"#
        let scrubbed = Redact.scrub(body, addresses: ["+14155552671"])
        #expect(!scrubbed.contains("4155552671"))
        #expect(scrubbed.contains("+1*******2671"))
        let mail = Redact.scrub("mailbox Alice@Example.com is full", addresses: ["alice@example.com"])
        #expect(mail == "mailbox a***@example.com is full")
        #expect(Redact.scrub("nothing to see", addresses: ["+14155552671"]) == "nothing to see")
    }
}
