import PaywatchCore
import PaywatchStore

private typealias F = Fixture

/// Planning: `migrate`, `sweep`, `nextPlanningAt`, quarantine, `replanAll`, hand-off.
extension StoreConformance {
    static let planningChecks: [Check] = [
        Check(name: "migrateAgainChangesNothing", run: migrateAgainChangesNothing),
        Check(name: "aNewOrderIsPlannedAtTheFirstSweepAndItsStatusWritten", run: aNewOrderIsPlannedAtTheFirstSweepAndItsStatusWritten),
        Check(name: "aShopChangeMakesTheOrderDueAtOnce", run: aShopChangeMakesTheOrderDueAtOnce),
        Check(name: "changedOrdersComeFirstThenEarliestDue", run: changedOrdersComeFirstThenEarliestDue),
        Check(name: "sweepClaimsUpToItsLimit", run: sweepClaimsUpToItsLimit),
        Check(name: "aPlanMadeAgainDecidesNoMessageTwice", run: aPlanMadeAgainDecidesNoMessageTwice),
        Check(name: "aBadRowIsQuarantinedWhileTheOthersGoOn", run: aBadRowIsQuarantinedWhileTheOthersGoOn),
        Check(name: "aDeletedOrderIsQuarantined", run: aDeletedOrderIsQuarantined),
        Check(name: "installmentsAndRefundsReachThePlanner", run: installmentsAndRefundsReachThePlanner),
        Check(name: "replanAllMarksOpenOrdersOnly", run: replanAllMarksOpenOrdersOnly),
        Check(name: "aHandOffInsertsLeasedMessagesAndLeavesTheRestToClaim", run: aHandOffInsertsLeasedMessagesAndLeavesTheRestToClaim),
        Check(name: "aHandOffLeavesRemindersToTheClaimWhenAsked", run: aHandOffLeavesRemindersToTheClaimWhenAsked),
        Check(name: "aSweepThatFindsNothingSaysTheNextDueTimesRightOrNotAtAll", run: aSweepThatFindsNothingSaysTheNextDueTimesRightOrNotAtAll),
    ]

    /// A sweep may say when planning and reconciliation are next due as it left them (the daemon
    /// then asks neither): never later than what `nextPlanningAt` and `nextReconcileAt` answer
    /// then; exactly that when it found nothing to do.
    static func aSweepThatFindsNothingSaysTheNextDueTimesRightOrNotAtAll(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let first = try await store.sweep(now: F.t0 + 1, limit: 10) { F.planner.plan($0, now: F.t0 + 1) }
        try expectEqual(first.claimed, 1, "orders the first sweep claimed")
        if let said = first.nextDue, let planning = try await store.nextPlanningAt() {
            try expect((said.planning ?? .max) <= planning, "the next planning time a sweep that wrote said (\(String(describing: said.planning))) is not later than \(planning)")
        }
        let idle = try await store.sweep(now: F.t0 + 2, limit: 10) { F.planner.plan($0, now: F.t0 + 2) }
        try expectEqual(idle.claimed, 0, "orders claimed when nothing is due")
        if let said = idle.nextDue {
            try expectEqual(said, NextDueTimes(planning: try await store.nextPlanningAt(), reconcile: try await store.nextReconcileAt()),
                            "the next due times a sweep that found nothing said")
            try expectEqual(said.planning, F.t0 + 10 * F.minute, "next planning time said: the first reminder")
        }
    }

    /// `migrate` is safe to repeat, from the same store or another: it changes nothing the second time.
    static func migrateAgainChangesNothing(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        try await F.sweep(store, now: F.t0)
        try expectEqual(try await store.migrate(), [], "a second migrate's changes")
        try store.verifyStillOpen()
        let other = try await F.store(harness, "second")
        try expectEqual(try await other.migrate(), [], "a migrate from another store")
        try expectEqual(try await store.orders(nil, limit: 10).map(\.id), ["A1"], "tracked orders after migrating again")
        try expectEqual(try await store.nextPlanningAt(), F.t0 + 10 * F.minute, "next planning time after migrating again")
        try expectEqual(try await harness.orderStatus(id: "A1"), "unpaid", "orders.status after migrating again")
    }

    /// A new order is due at once (`nextPlanningAt` 0), planned by the next sweep, and its status
    /// written to `orders.status`; paywatch's own status write does not mark it changed again.
    static func aNewOrderIsPlannedAtTheFirstSweepAndItsStatusWritten(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try expectEqual(try await store.nextPlanningAt(), nil, "next planning time of an empty store")
        try await harness.insertOrder(F.order("A1"))
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after a new order")
        let first = try await F.sweep(store, now: F.t0 + 1)
        try expectEqual(first.map(\.orderID), ["A1"], "orders planned by the first sweep")
        try expectEqual(first.first?.status, .unpaid, "the new order's status")
        try expectEqual(try await store.nextPlanningAt(), F.t0 + 10 * F.minute, "next planning time: the first reminder")
        try expectEqual(try await F.sweep(store, now: F.t0 + 2).count, 0, "plans when nothing is due")
        try await harness.insertPayment(ShopPayment(id: "P1", orderID: "A1", createdAt: F.t0 + 3))
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after a payment")
        let paid = try await F.sweep(store, now: F.t0 + 4)
        try expectEqual(paid.map(\.status), [.paid], "the status after the payment")
        try expectEqual(try await harness.orderStatus(id: "A1"), "paid", "orders.status written by the sweep")
        try expectEqual(try await F.sweep(store, now: F.t0 + 5).count, 0, "plans after paywatch's own status write")
    }

    /// Every kind of shop write marks the order changed: an order column, a payment's update.
    static func aShopChangeMakesTheOrderDueAtOnce(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        try await harness.insertPayment(ShopPayment(id: "P1", orderID: "A1", status: .pending, createdAt: F.t0))
        try expectEqual(try await F.sweep(store, now: F.t0 + 1).map(\.status), [.paying], "status with a pending attempt")
        try expect(try await store.nextPlanningAt() != 0, "nothing changed after the sweep")
        try await harness.updateOrder(id: "A1", [.phone(F.otherPhone)])
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after the shop changed the order")
        try await F.sweep(store, now: F.t0 + 2)
        try await harness.updatePayment(id: "P1", status: .failed, failureReason: "card_declined")
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after the shop changed a payment")
        try expectEqual(try await F.sweep(store, now: F.t0 + 3).map(\.status), [.failed], "status after the failed attempt")
        try expectEqual(try await harness.orderStatus(id: "A1"), "failed", "orders.status after the failed attempt")
    }

    /// A changed order (due time 0) comes before every due one; due ones come earliest first.
    static func changedOrdersComeFirstThenEarliestDue(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("EARLY", at: F.t0))
        try await harness.insertOrder(F.order("LATE", at: F.t0 + F.minute))
        try await harness.insertOrder(F.order("CHANGED", at: F.t0 + 2 * F.minute))
        try await F.sweep(store, now: F.t0 + 2 * F.minute)
        try await harness.updateOrder(id: "CHANGED", [.email(F.email)])
        let now = F.t0 + 20 * F.minute
        var order: [String] = []
        for _ in 0..<3 {
            let result = try await store.sweep(now: now, limit: 1) { F.planner.plan($0, now: now) }
            try expectEqual(result.claimed, 1, "orders claimed by a sweep of limit 1")
            order += result.plans.map(\.orderID)
        }
        try expectEqual(order, ["CHANGED", "EARLY", "LATE"], "the order of planning")
    }

    /// A sweep claims at most `limit` orders, `claimed` says how many, and batches never overlap.
    static func sweepClaimsUpToItsLimit(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for i in 0..<25 { try await harness.insertOrder(F.order("O\(i)")) }
        let now = F.t0 + 10 * F.minute
        var claimed: [Int] = []
        var planned: [String] = []
        for _ in 0..<4 {
            let result = try await store.sweep(now: now, limit: 10) { F.planner.plan($0, now: now) }
            claimed.append(result.claimed)
            planned += result.plans.map(\.orderID)
        }
        try expectEqual(claimed, [10, 10, 5, 0], "orders claimed per sweep")
        try expectEqual(planned.count, 25, "plans")
        try expectEqual(Set(planned).count, 25, "distinct orders planned")
        try expectEqual(try await F.claim(store, now: now).messages.count, 25, "reminders decided (one sms each)")
    }

    /// Planning an order again at the same instant decides nothing twice (idempotency by key).
    static func aPlanMadeAgainDecidesNoMessageTwice(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1", email: true))
        let now = F.t0 + 10 * F.minute
        let first = try await F.sweep(store, now: now)
        try expectEqual(first.flatMap(\.messages).count, 2, "reminders decided (sms and e-mail)")
        try expectEqual(try await store.replanAll(), 1, "orders marked by replanAll")
        let again = try await F.sweep(store, now: now)
        try expectEqual(again.map(\.orderID), ["A1"], "orders planned again")
        try expectEqual(try await F.deliveries(store, "A1").count, 2, "outbox rows of the order")
        // The same plan applied twice (a planner that forgets its marks) still inserts each key once.
        let forgetful = first[0]
        _ = try await store.replanAll()
        _ = try await store.sweep(now: now, limit: 10) { snapshot in
            var plan = forgetful
            plan.previousStatus = snapshot.state.status
            return plan
        }
        try expectEqual(try await F.deliveries(store, "A1").count, 2, "outbox rows after the same messages decided again")
        try expectEqual(try await F.claim(store, now: now).messages.count, 2, "messages claimable")
    }

    /// A row the planner cannot use (a negative amount) quarantines its order alone; it is not
    /// planned again until it changes, and fixing it releases it.
    static func aBadRowIsQuarantinedWhileTheOthersGoOn(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("NEG", amount: -1))
        try await harness.insertOrder(F.order("GOOD"))
        try await harness.insertPayment(ShopPayment(id: "PG", orderID: "GHOST", createdAt: F.t0))
        let plans = try await F.sweep(store, now: F.t0 + 10 * F.minute)
        let ghost = try require(plans.first { $0.orderID == "GHOST" }, "the plan of GHOST")
        try expect(ghost.quarantine?.contains("points to no order") == true, "a payment of no order quarantined, got \(ghost.quarantine ?? "nil")")
        let bad = try require(plans.first { $0.orderID == "NEG" }, "the plan of NEG")
        try expect(bad.quarantine?.contains("must be positive") == true, "NEG quarantined for its amount, got \(bad.quarantine ?? "nil")")
        try expectEqual(plans.first { $0.orderID == "GOOD" }?.messages.count, 1, "GOOD's reminder")
        try expectEqual(try await store.orders(.quarantined, limit: 10).map(\.id), ["GHOST", "NEG"], "quarantined orders")
        let detail = try require(try await store.order(id: "NEG"), "NEG's detail")
        try expect(detail.quarantine?.contains("must be positive") == true, "NEG's detail shows its quarantine")
        try expect(detail.timeline.contains { $0.event == "quarantined" }, "NEG's timeline shows the quarantine")
        try expectEqual(try await F.sweep(store, now: F.t0 + 20 * F.minute).map(\.orderID), [], "plans: the quarantine is not planned again")
        try await harness.updateOrder(id: "NEG", [.amountDue(100)])
        let fixed = try await F.sweep(store, now: F.t0 + 40 * F.minute)
        try expectEqual(fixed.first { $0.orderID == "NEG" }?.status, .cancelled, "NEG planned once fixed")
        try expectEqual(try await store.order(id: "NEG")?.quarantine, nil, "NEG's quarantine after the fix")
        try expectEqual(try await store.orders(.quarantined, limit: 10).map(\.id), ["GHOST"], "quarantined orders after the fix")
    }

    /// An order the shop deletes is noticed and quarantined (it does not exist), not planned as before.
    static func aDeletedOrderIsQuarantined(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("GONE"))
        try await harness.insertOrder(F.order("KEPT"))
        try await F.sweep(store, now: F.t0)
        try await harness.deleteOrder(id: "GONE")
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after a delete")
        let plans = try await F.sweep(store, now: F.t0 + 1)
        try expectEqual(plans.map(\.orderID), ["GONE"], "orders planned after the delete")
        try expect(plans.first?.quarantine?.contains("does not exist") == true,
                   "the deleted order's quarantine, got \(plans.first?.quarantine ?? "nil")")
        try expectEqual(try await harness.orderStatus(id: "GONE"), nil, "orders.status of a deleted order")
        try expectEqual(try await F.sweep(store, now: F.t0 + 10 * F.minute).map(\.orderID), ["KEPT"], "the other order goes on")
    }

    /// Installments and refunds are read into the snapshot: a plan with a first installment paid is
    /// partially paid; a duplicate payment needs a refund until the shop's refund covers it.
    static func installmentsAndRefundsReachThePlanner(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("PLAN", amount: 300))
        try await harness.insertInstallment(ShopInstallment(orderID: "PLAN", seq: 1, amount: 100, dueAt: F.t0))
        try await harness.insertInstallment(ShopInstallment(orderID: "PLAN", seq: 2, amount: 200, dueAt: F.t0 + 10 * F.day))
        try await harness.insertPayment(ShopPayment(id: "PP1", orderID: "PLAN", amount: 100, createdAt: F.t0))
        try await harness.insertOrder(F.order("DUP"))
        try await harness.insertPayment(ShopPayment(id: "D1", orderID: "DUP", createdAt: F.t0))
        try await harness.insertPayment(ShopPayment(id: "D2", orderID: "DUP", createdAt: F.t0 + 1))
        let plans = try await F.sweep(store, now: F.t0 + F.minute)
        let plan = try require(plans.first { $0.orderID == "PLAN" }, "the plan of PLAN")
        try expectEqual(plan.status, .partiallyPaid, "an order with its first installment paid")
        let installment = try require(try await store.order(id: "PLAN"), "PLAN's detail").snapshot.installments
        try expectEqual(installment.count, 2, "installments in the snapshot")
        try expectEqual(try await harness.orderStatus(id: "PLAN"), "partially_paid", "orders.status of PLAN")
        try expectEqual(plans.first { $0.orderID == "DUP" }?.needsRefund, 100, "money to return on a duplicate payment")
        try expectEqual(try await store.orders(.needsRefund, limit: 10).map(\.id), ["DUP"], "orders needing a refund")
        try await harness.insertRefund(ShopRefund(id: "R1", orderID: "DUP", amount: 100, requestedAt: F.t0 + 2 * F.minute))
        try await F.sweep(store, now: F.t0 + 2 * F.minute)
        try expectEqual(try await store.orders(.needsRefund, limit: 10).map(\.id), [], "orders needing a refund once it is requested")
        try await harness.updateRefund(id: "R1", status: .succeeded)
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after the refund moved")
    }

    /// `replanAll` marks the orders that are not final, not the settled ones; the next sweep plans
    /// them afresh and decides nothing twice.
    static func replanAllMarksOpenOrdersOnly(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for id in ["A", "B", "C"] { try await harness.insertOrder(F.order(id)) }
        try await harness.insertPayment(ShopPayment(id: "P", orderID: "B", createdAt: F.t0))
        try await F.sweep(store, now: F.t0)
        try await F.deliverAll(store, now: F.t0)
        try expectEqual(try await store.replanAll(), 2, "orders marked")
        try expectEqual(try await store.nextPlanningAt(), 0, "next planning time after replanAll")
        let plans = try await F.sweep(store, now: F.t0 + 1)
        try expectEqual(Set(plans.map(\.orderID)), ["A", "C"], "orders planned afresh")
        try expect(plans.allSatisfy { $0.messages.isEmpty }, "nothing decided again")
    }

    /// With a hand-off, the messages `take` accepts are inserted leased and passed to `applied`
    /// with their ids; a claim takes only the others.
    static func aHandOffInsertsLeasedMessagesAndLeavesTheRestToClaim(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for i in 0..<5 { try await harness.insertOrder(F.order("H\(i)")) }
        try await F.sweep(store, now: F.t0)
        let now = F.t0 + 10 * F.minute
        let room = Shared(0)
        let handed = Shared<[OutboxMessage]>([])
        let appliedPlans = Shared(0)
        _ = try await store.sweep(now: now, limit: 10, plan: { F.planner.plan($0, now: now) },
                                  handOff: DeliveryHandOff(leaseMs: F.minute) { channel in
                                      channel == "sms" && room.mutate { $0 += 1; return $0 } <= 2
                                  }) { plans, messages in
            appliedPlans.mutate { $0 += plans.count }
            handed.mutate { $0 += messages }
        }
        try expectEqual(appliedPlans.value, 5, "plans passed to applied")
        try expectEqual(handed.value.count, 2, "messages handed off")
        try expect(handed.value.allSatisfy { $0.attempts == 0 && $0.message.kind == .unpaidReminder }, "handed-off messages are new reminders")
        let claim = try await F.claim(store, now: now)
        try expectEqual(claim.messages.count, 3, "messages left to claim")
        try expect(Set(claim.messages.map(\.id)).isDisjoint(with: handed.value.map(\.id)), "a claim takes no handed-off message")
        // Handed-off messages are this store's leases: recorded by it.
        let stale = try await F.record(store, handed.value, .delivered, now: now + 1)
        try expectEqual(stale, [], "stale results of the hand-off's owner")
        try expectEqual(try await F.claim(store, now: now + F.minute).messages.count, 3, "after the leases: only the unrecorded claims")
        // A sweep that decides nothing new asks nothing.
        _ = try await store.replanAll()
        let asked = Shared(0)
        _ = try await store.sweep(now: now, limit: 10, plan: { F.planner.plan($0, now: now) },
                                  handOff: DeliveryHandOff(leaseMs: F.minute) { _ in asked.mutate { $0 += 1; return true } },
                                  applied: { _, _ in })
        try expectEqual(asked.value, 0, "hand-off asked about messages decided before")
    }

    /// `claimsReminders`: reminders are never handed over, they wait for the claim (and its cap).
    static func aHandOffLeavesRemindersToTheClaimWhenAsked(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        try await F.sweep(store, now: F.t0)
        let now = F.t0 + 10 * F.minute
        let handed = Shared<[OutboxMessage]>([])
        _ = try await store.sweep(now: now, limit: 10, plan: { F.planner.plan($0, now: now) },
                                  handOff: DeliveryHandOff(leaseMs: F.minute, claimsReminders: true) { _ in true }) { _, messages in
            handed.mutate { $0 += messages }
        }
        try expectEqual(handed.value.count, 0, "reminders handed off")
        try expectEqual(F.names(try await F.claim(store, now: now).messages), ["A1 unpaid_reminder 1 sms"], "claimed")
    }
}
