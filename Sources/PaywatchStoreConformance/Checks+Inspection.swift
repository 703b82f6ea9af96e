import PaywatchCore
import PaywatchStore

private typealias F = Fixture

/// What the CLI and the daemon read: `order(id:)`, `orders`, `report`, `lag`, heartbeat and
/// `health`; and retention (`prune`).
extension StoreConformance {
    static let inspectionChecks: [Check] = [
        Check(name: "orderDetailShowsTimelineDeliveriesAttemptsAndMaskedAddresses", run: orderDetailShowsTimelineDeliveriesAttemptsAndMaskedAddresses),
        Check(name: "orderDetailOfAnOrderNotPlannedYetAndOfAnUnknownID", run: orderDetailOfAnOrderNotPlannedYetAndOfAnUnknownID),
        Check(name: "ordersListsByIDWithFiltersAndALimit", run: ordersListsByIDWithFiltersAndALimit),
        Check(name: "reportCountsOrdersMessagesAttemptsAndBacklog", run: reportCountsOrdersMessagesAttemptsAndBacklog),
        Check(name: "lagCountsDueOrdersChangedOrdersAndUndeliveredMessages", run: lagCountsDueOrdersChangedOrdersAndUndeliveredMessages),
        Check(name: "aHeartbeatIsWrittenByInstanceAndShownByHealth", run: aHeartbeatIsWrittenByInstanceAndShownByHealth),
        Check(name: "pruneDryRunCountsWhatPruneDeletes", run: pruneDryRunCountsWhatPruneDeletes),
        Check(name: "aPrunedDecisionIsNotSentAgain", run: aPrunedDecisionIsNotSentAgain),
        Check(name: "pruneWorksInBatchesOfItsLimit", run: pruneWorksInBatchesOfItsLimit),
        Check(name: "pruneKeepsSettledOrdersWithWorkOpen", run: pruneKeepsSettledOrdersWithWorkOpen),
        Check(name: "healthCountsOpenEscalationsAndQuarantine", run: healthCountsOpenEscalationsAndQuarantine),
    ]

    /// `order(id:)`: the snapshot, tracked status, a time-ordered timeline with transitions and
    /// decisions, deliveries with their attempts and masked addresses.
    static func orderDetailShowsTimelineDeliveriesAttemptsAndMaskedAddresses(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1", email: true))
        try await F.sweep(store, now: F.t0 + 1)
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now).messages
        try await store.recordDeliveries(claimed.map {
            $0.message.channel == "sms" ? F.result($0, .delivered, at: now)
                : F.result($0, .retry(atMs: now + F.minute, reason: "HTTP 503"), at: now, status: 503)
        }, now: now + 1)
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        try expectEqual(detail.orderID, "A1", "the id")
        try expectEqual(detail.trackedStatus, .unpaid, "the tracked status")
        try expectEqual(detail.snapshot.order?.phone, F.phone, "the snapshot's order")
        try expectEqual(detail.nextDueAt, F.t0 + 25 * F.minute, "the next due time")
        try expectEqual(detail.quarantine, nil, "the quarantine")
        try expectEqual(detail.timeline.map(\.at), detail.timeline.map(\.at).sorted(), "the timeline's times (in order)")
        try expect(detail.timeline.contains { $0.event == "tracked" }, "a tracked event, got \(detail.timeline.map(\.event))")
        try expectEqual(detail.timeline.filter { $0.event == "unpaid_reminder" }.count, 1, "one entry per decision")
        let sms = try require(detail.deliveries.first { $0.channel == "sms" }, "the sms delivery")
        let email = try require(detail.deliveries.first { $0.channel == "email" }, "the e-mail delivery")
        try expectEqual(sms.to, "+86*******0000", "the masked phone")
        try expect(email.to != F.email && !email.to.isEmpty, "the e-mail masked, got \(email.to)")
        try expectEqual(sms.idempotencyKey, OutgoingMessage.key(orderID: "A1", kind: .unpaidReminder, step: 1, channel: "sms"), "the key")
        try expectEqual(sms.kind, "unpaid_reminder", "the kind")
        try expectEqual(sms.step, 1, "the step")
        try expectEqual(sms.createdAt, now, "decided at")
        try expectEqual(sms.state, .delivered, "the sms state")
        try expectEqual(sms.attempts.map(\.httpStatus), [200], "the sms attempts")
        try expectEqual(email.state, .pending, "the e-mail state (leased or not, stored as pending)")
        try expectEqual(email.dueAt, now + F.minute, "the e-mail's retry time")
        try expectEqual(email.attempts.map(\.outcome), [.retry], "the e-mail attempts")
        try expectEqual(email.attempts.first?.httpStatus, 503, "the e-mail attempt's status")
    }

    /// An order in `orders` not planned yet has a detail without a tracked status; an id nobody
    /// knows has none.
    static func orderDetailOfAnOrderNotPlannedYetAndOfAnUnknownID(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try expect(try await store.order(id: "NOPE") == nil, "an unknown id has no detail")
        try await harness.insertOrder(F.order("NEW"))
        let detail = try require(try await store.order(id: "NEW"), "the new order's detail")
        try expectEqual(detail.trackedStatus, nil, "the tracked status of an order not planned yet")
        try expectEqual(detail.snapshot.order?.amountDue, 100, "the snapshot's amount")
        try expectEqual(detail.deliveries.count, 0, "deliveries")
    }

    /// `orders`: tracked orders by id, all or those of a filter (a status, quarantined, needs_refund), at most `limit`.
    static func ordersListsByIDWithFiltersAndALimit(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A"))
        try await harness.insertOrder(F.order("B", amount: 250))
        try await harness.insertPayment(ShopPayment(id: "PB", orderID: "B", amount: 250, createdAt: F.t0))
        try await harness.insertOrder(F.order("D"))
        try await harness.insertPayment(ShopPayment(id: "D1", orderID: "D", createdAt: F.t0))
        try await harness.insertPayment(ShopPayment(id: "D2", orderID: "D", createdAt: F.t0))
        try await harness.insertOrder(F.order("Q", amount: -5))
        try await F.sweep(store, now: F.t0 + 1)
        try expectEqual(try await store.orders(nil, limit: 10).map(\.id), ["A", "B", "D", "Q"], "all tracked orders")
        try expectEqual(try await store.orders(nil, limit: 2).map(\.id), ["A", "B"], "the first two")
        try expectEqual(try await store.orders(.status(.unpaid), limit: 10).map(\.id), ["A"], "unpaid orders")
        try expectEqual(try await store.orders(.status(.paid), limit: 10).map(\.id), ["B", "D"], "paid orders")
        try expectEqual(try await store.orders(.quarantined, limit: 10).map(\.id), ["Q"], "quarantined orders")
        try expectEqual(try await store.orders(.needsRefund, limit: 10).map(\.id), ["D"], "orders needing a refund")
        let b = try require(try await store.orders(.status(.paid), limit: 1).first, "B's summary")
        try expectEqual(b, OrderSummary(id: "B", status: "paid", amountDue: 250, amountPaid: 250, currency: "CNY", nextDueAt: b.nextDueAt),
                        "B's summary")
        let d = try require(try await store.orders(.needsRefund, limit: 10).first, "D's summary")
        try expectEqual(d.needsRefund, 100, "D's money to return")
        try expectEqual(d.amountPaid, 200, "D's amount paid")
    }

    /// `report`: tracked orders by status, quarantined, needs refund, messages by kind, channel and
    /// state, attempts by outcome, backlog.
    static func reportCountsOrdersMessagesAttemptsAndBacklog(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A", email: true))
        try await harness.insertOrder(F.order("B"))
        try await harness.insertOrder(F.order("P"))
        try await harness.insertPayment(ShopPayment(id: "PP", orderID: "P", createdAt: F.t0))
        try await harness.insertOrder(F.order("Q", amount: -5))
        try await F.sweep(store, now: F.t0 + 1)
        try await F.deliverAll(store, now: F.t0 + 1)  // P's confirmation
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now, ["sms"]).messages  // A's and B's sms reminders
        try await store.recordDeliveries(claimed.map {
            $0.message.orderID == "A" ? F.result($0, .delivered, at: now) : F.result($0, .dead(reason: "HTTP 400"), at: now, status: 400)
        }, now: now)
        let report = try await store.report(since: F.t0, now: now + 1)
        try expectEqual(report.since, F.t0, "since")
        try expectEqual(report.now, now + 1, "now")
        try expectEqual(report.ordersByStatus, ["unpaid": 2, "paid": 1], "orders by status")
        try expectEqual(report.quarantined, 1, "quarantined")
        try expectEqual(report.needsRefund, 0, "orders needing a refund")
        let messages = Set(report.messages)
        try expectEqual(messages, [
            Report.MessageCount(kind: "payment_confirmed", channel: "sms", state: .delivered, count: 1),
            Report.MessageCount(kind: "unpaid_reminder", channel: "sms", state: .delivered, count: 1),
            Report.MessageCount(kind: "unpaid_reminder", channel: "sms", state: .dead, count: 1),
            Report.MessageCount(kind: "unpaid_reminder", channel: "email", state: .pending, count: 1),
        ], "messages by kind, channel and state")
        try expectEqual(report.attempts, [.delivered: 2, .dead: 1], "attempts by outcome")
        try expectEqual(report.backlog, 1, "backlog: A's e-mail")
        try expectEqual(report.oldestBacklogDueAt, now, "the backlog's oldest due time")
        try expectEqual(report.reminderConversion, Report.ReminderConversion(remindedOrders: 1, paidOrders: 0, rate: 0),
                        "reminder conversion (A reminded, B's reminder dead)")
        try expectEqual(report.outstanding, [Report.Money(currency: "CNY", orders: 2, amount: 200)], "money outstanding")
        // A later window sees none of it.
        let later = try await store.report(since: now + 1, now: now + 2)
        try expectEqual(later.messages, [], "messages decided in a later window")
        try expectEqual(later.attempts, [:], "attempts in a later window")
        try expectEqual(later.ordersByStatus, ["unpaid": 2, "paid": 1], "orders by status (now, whatever the window)")
    }

    /// `lag`: the oldest due order, changed orders, the oldest undelivered message and the count due.
    static func lagCountsDueOrdersChangedOrdersAndUndeliveredMessages(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try expectEqual(try await store.lag(now: F.t0), Lag(), "the lag of an empty store")
        try await harness.insertOrder(F.order("A", email: true))
        try await harness.insertOrder(F.order("C"))
        try expectEqual(try await store.lag(now: F.t0).changedOrders, 2, "changed orders before the first sweep")
        try await F.sweep(store, now: F.t0)
        try expectEqual(try await store.lag(now: F.t0 + 1), Lag(), "the lag with nothing due")
        var lag = try await store.lag(now: F.t0 + 15 * F.minute)
        try expectEqual(lag.oldestDueOrderAt, F.t0 + 10 * F.minute, "the oldest due order")
        try expectEqual(lag.ms(now: F.t0 + 15 * F.minute, lastSweepAt: F.t0), 5 * F.minute, "the lag in ms")
        try await F.sweep(store, now: F.t0 + 15 * F.minute)
        lag = try await store.lag(now: F.t0 + 20 * F.minute)
        try expectEqual(lag.dueMessages, 3, "messages due (A's sms and e-mail, C's sms)")
        try expectEqual(lag.oldestPendingMessageAt, F.t0 + 15 * F.minute, "the oldest undelivered message")
        try expectEqual(lag.oldestDueOrderAt, nil, "no order due")
        try await harness.updateOrder(id: "C", [.phone(F.otherPhone)])
        try expectEqual(try await store.lag(now: F.t0 + 20 * F.minute).changedOrders, 1, "changed orders")
        try await F.sweep(store, now: F.t0 + 20 * F.minute)
        try await F.deliverAll(store, now: F.t0 + 20 * F.minute)
        try expectEqual(try await store.lag(now: F.t0 + 21 * F.minute), Lag(), "the lag once everything went out")
    }

    /// A heartbeat is written (created, then replaced) by instance and read back by `health`,
    /// with the open orders and the outbox by state (in flight counted apart).
    static func aHeartbeatIsWrittenByInstanceAndShownByHealth(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        var health = try await store.health(now: F.t0)
        try expectEqual(health.daemon, nil, "the daemon before any heartbeat")
        try expectEqual(health.openOrders, 0, "open orders of an empty store")
        for id in ["A", "B", "C"] { try await harness.insertOrder(F.order(id)) }
        try await harness.insertPayment(ShopPayment(id: "P", orderID: "B", createdAt: F.t0))
        let beat = DaemonHeartbeat(instance: "host-1", pid: 42, startedAt: F.t0, configLoadedAt: F.t0, lastSweepAt: F.t0 + 1, lastSweepMs: 3)
        try await store.writeHeartbeat(beat)
        try await F.sweep(store, now: F.t0 + 1)
        try await F.deliverAll(store, now: F.t0 + 1)
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        _ = try await F.claim(store, now: now, limit: 1)  // one of the two reminders leased
        health = try await store.health(now: now + 1)
        try expectEqual(health.now, now + 1, "now")
        try expectEqual(health.daemon, beat, "the heartbeat")
        try expectEqual(health.openOrders, 2, "open orders")
        try expectEqual(health.quarantined, 0, "quarantined")
        try expectEqual(health.outbox, [.delivered: 1, .inFlight: 1, .pending: 1], "the outbox by state")
        try expectEqual(health.backlog, ["unpaid_reminder": 1], "the backlog (the unleased reminder)")
        var stopped = beat
        stopped.stoppedAt = now + 2
        stopped.lastSweepAt = now
        try await store.writeHeartbeat(stopped)
        try expectEqual(try await store.health(now: now + 3).daemon, stopped, "the heartbeat replaced")
        try await store.close()
    }

    /// `prune` with `dryRun` counts what pruning would delete and deletes nothing; the real prune
    /// deletes as much, records it on the order, keeps its status, and finds nothing the second time.
    static func pruneDryRunCountsWhatPruneDeletes(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("PAID", email: true))
        try await harness.insertPayment(ShopPayment(id: "P", orderID: "PAID", createdAt: F.t0))
        try await harness.insertOrder(F.order("OPEN", at: F.t0 + F.day))
        try await F.sweep(store, now: F.t0 + F.minute)
        try await F.deliverAll(store, now: F.t0 + F.minute)
        try await F.sweep(store, now: F.t0 + F.day + F.minute)
        let now = F.t0 + 2 * F.day
        let before = try require(try await store.order(id: "PAID"), "PAID's detail")
        try expectEqual(before.deliveries.count, 2, "PAID's deliveries (confirmation on sms and e-mail)")
        let openBefore = try require(try await store.order(id: "OPEN"), "OPEN's detail")
        let dry = try await store.prune(now: now, keepMs: F.day, limit: 100, dryRun: true)
        try expectEqual(dry.orders, 1, "orders a dry run would prune")
        try expectEqual(dry.outbox, 2, "outbox rows a dry run would prune")
        try expectEqual(dry.attempts, 2, "attempts a dry run would prune")
        try expect(dry.events > 0, "events a dry run would prune")
        try expectEqual(try await store.prune(now: now, keepMs: F.day, limit: 100, dryRun: true), dry, "a second dry run")
        try expectEqual(try await store.order(id: "PAID")?.deliveries.count, 2, "PAID's deliveries after a dry run")
        try expectEqual(try await store.prune(now: now, keepMs: 3 * F.day, limit: 100, dryRun: false), PruneCounts(), "pruned under a longer keep")
        try expectEqual(try await store.prune(now: now, keepMs: F.day, limit: 100, dryRun: false), dry, "pruned")
        let after = try require(try await store.order(id: "PAID"), "PAID's detail after pruning")
        try expectEqual(after.trackedStatus, .paid, "PAID's status after pruning")
        try expect(after.timeline.isEmpty && after.deliveries.isEmpty, "PAID's history after pruning")
        try expectEqual(after.prunedAt, now, "when PAID was pruned")
        try expectEqual(after.prunedKeepMs, F.day, "the keep PAID was pruned under")
        try expectEqual(try await store.order(id: "OPEN")?.deliveries, openBefore.deliveries, "OPEN's deliveries")
        try expectEqual(try await store.order(id: "OPEN")?.timeline, openBefore.timeline, "OPEN's timeline")
        try expectEqual(try await store.prune(now: now + 1, keepMs: F.day, limit: 100, dryRun: false), PruneCounts(), "a second prune")
    }

    /// A message pruned by retention is not decided again when the order is planned afresh.
    static func aPrunedDecisionIsNotSentAgain(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("PAID"))
        try await harness.insertPayment(ShopPayment(id: "P", orderID: "PAID", createdAt: F.t0))
        try await F.sweep(store, now: F.t0 + F.minute)
        try await F.deliverAll(store, now: F.t0 + F.minute)
        try expectEqual(try await store.prune(now: F.t0 + 2 * F.day, keepMs: F.day, limit: 100, dryRun: false).outbox, 1, "pruned messages")
        // A planner that decides the confirmation again (as if its mark were lost).
        let confirmation = OutgoingMessage(
            idempotencyKey: OutgoingMessage.key(orderID: "PAID", kind: .paymentConfirmed, step: 1, channel: "sms"), orderID: "PAID",
            kind: .paymentConfirmed, step: 1, channel: "sms", recipient: F.phone, payload: "{}")
        try await harness.updateOrder(id: "PAID", [.email(F.email)])
        let now = F.t0 + 2 * F.day + 1
        _ = try await store.sweep(now: now, limit: 10) { snapshot in
            var plan = F.planner.plan(snapshot, now: now)
            plan.messages.append(confirmation)
            return plan
        }
        try expectEqual(try await F.claim(store, now: now).messages.count, 0, "messages sent again")
    }

    /// `prune` deletes at most `limit` orders' history per call; `pruneAll` goes batch after batch.
    static func pruneWorksInBatchesOfItsLimit(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for i in 0..<5 {
            try await harness.insertOrder(F.order("P\(i)"))
            try await harness.insertPayment(ShopPayment(id: "PAY\(i)", orderID: "P\(i)", createdAt: F.t0))
        }
        try await F.sweep(store, now: F.t0 + F.minute)
        try await F.deliverAll(store, now: F.t0 + F.minute)
        let now = F.t0 + 2 * F.day
        try expectEqual(try await store.prune(now: now, keepMs: F.day, limit: 2, dryRun: true).orders, 5, "a dry run ignores the limit")
        try expectEqual(try await store.prune(now: now, keepMs: F.day, limit: 2, dryRun: false).orders, 2, "orders of one batch")
        var batches: [Int] = []
        let rest = try await store.pruneAll(now: now, keepMs: F.day, batchSize: 2) { batches.append($0.orders) }
        try expectEqual(batches, [2, 1], "orders per batch")
        try expectEqual(rest.orders, 3, "orders pruned by pruneAll")
        try expectEqual(rest.outbox, 3, "messages pruned by pruneAll")
        try expectEqual(try await store.orders(.status(.paid), limit: 10).count, 5, "paid orders still tracked")
    }

    /// `health`: open orders, quarantined ones apart, and the open situations (money to return,
    /// asks not answered yet).
    static func healthCountsOpenEscalationsAndQuarantine(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("DUP"))
        try await harness.insertPayment(ShopPayment(id: "D1", orderID: "DUP", createdAt: F.t0))
        try await harness.insertPayment(ShopPayment(id: "D2", orderID: "DUP", createdAt: F.t0))
        try await harness.insertOrder(F.order("BAD", amount: 0))
        try await harness.insertOrder(F.order("OPEN"))
        try await F.sweep(store, now: F.t0 + 1)
        let health = try await store.health(now: F.t0 + 2)
        try expectEqual(health.openOrders, 1, "open orders")
        try expectEqual(health.quarantined, 1, "quarantined")
        try expectEqual(health.escalations, ["needs_refund": 1], "open situations")
    }

    /// A final order with something open is never pruned: a message being retried, money to return.
    static func pruneKeepsSettledOrdersWithWorkOpen(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("RETRYING"))
        try await harness.insertPayment(ShopPayment(id: "R", orderID: "RETRYING", createdAt: F.t0))
        try await harness.insertOrder(F.order("DUP"))
        try await harness.insertPayment(ShopPayment(id: "D1", orderID: "DUP", createdAt: F.t0))
        try await harness.insertPayment(ShopPayment(id: "D2", orderID: "DUP", createdAt: F.t0))
        let now = F.t0 + F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now).messages
        try await store.recordDeliveries(claimed.map {
            $0.message.orderID == "RETRYING" ? F.result($0, .retry(atMs: now + 5 * F.day, reason: "HTTP 503"), at: now, status: 503)
                : F.result($0, .delivered, at: now)
        }, now: now)
        try expectEqual(try await store.prune(now: now + 3 * F.day, keepMs: F.day, limit: 100, dryRun: true), PruneCounts(), "a dry run")
        try expectEqual(try await store.prune(now: now + 3 * F.day, keepMs: F.day, limit: 100, dryRun: false), PruneCounts(), "pruned")
        try expectEqual(try await store.order(id: "RETRYING")?.deliveries.count, claimed.filter { $0.message.orderID == "RETRYING" }.count,
                        "RETRYING's deliveries")
    }
}
