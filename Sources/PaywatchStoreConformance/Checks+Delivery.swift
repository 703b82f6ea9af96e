import PaywatchCore
import PaywatchStore

private typealias F = Fixture

/// Delivery: claims per channel, results, what a claim settles instead of sending, decisions.
extension StoreConformance {
    static let deliveryChecks: [Check] = [
        Check(name: "messagesAreClaimedPerChannelInDueOrderEachOnce", run: messagesAreClaimedPerChannelInDueOrderEachOnce),
        Check(name: "aFullClaimSaysSaturatedAndNextDueAtSaysWhenToLookAgain", run: aFullClaimSaysSaturatedAndNextDueAtSaysWhenToLookAgain),
        Check(name: "aDeliveredMessageIsFinalWithOneAttempt", run: aDeliveredMessageIsFinalWithOneAttempt),
        Check(name: "aRetryIsDueAtItsTimeWithTheAttemptCounted", run: aRetryIsDueAtItsTimeWithTheAttemptCounted),
        Check(name: "aDeferredResultIsDueLaterWithoutAnAttempt", run: aDeferredResultIsDueLaterWithoutAnAttempt),
        Check(name: "aMessageReleasedUnsentIsDueAtOnceWithoutAnAttempt", run: aMessageReleasedUnsentIsDueAtOnceWithoutAnAttempt),
        Check(name: "aDeadMessageEscalatesOnceAndSuppressesItsAddress", run: aDeadMessageEscalatesOnceAndSuppressesItsAddress),
        Check(name: "aReminderForAnOrderNowPaidIsSupersededAtClaim", run: aReminderForAnOrderNowPaidIsSupersededAtClaim),
        Check(name: "aSuppressedAddressIsSuppressedAtClaim", run: aSuppressedAddressIsSuppressedAtClaim),
        Check(name: "aDailyCapCapsReminders", run: aDailyCapCapsReminders),
        Check(name: "decisionsAreInsertedOnceByKey", run: decisionsAreInsertedOnceByKey),
        Check(name: "messagesOfChannelsNotKnownAreClaimedAmongTheOthers", run: messagesOfChannelsNotKnownAreClaimedAmongTheOthers),
        Check(name: "aDeadMessageFallsBackToItsNextChannel", run: aDeadMessageFallsBackToItsNextChannel),
        Check(name: "aMessageHeldForTheQuietHoursIsDueAtTheirEnd", run: aMessageHeldForTheQuietHoursIsDueAtTheirEnd),
        Check(name: "opsMessagesAreNeverSuppressed", run: opsMessagesAreNeverSuppressed),
    ]

    /// Per channel, due messages come earliest due first, each claim returns a message at most
    /// once while its lease holds, and a channel not asked for is not claimed from.
    static func messagesAreClaimedPerChannelInDueOrderEachOnce(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for (i, id) in ["FIRST", "SECOND", "THIRD"].enumerated() {
            try await harness.insertOrder(F.order(id, at: F.t0 + Millis(i) * F.minute, email: true))
        }
        for i in 0..<3 { try await F.sweep(store, now: F.t0 + (10 + Millis(i)) * F.minute) }
        let now = F.t0 + 20 * F.minute
        var order: [String] = []
        for _ in 0..<3 {
            let claim = try await F.claim(store, now: now, ["sms"], limit: 1)
            try expectEqual(claim.messages.count, 1, "messages per claim of limit 1")
            order += claim.messages.map(\.message.orderID)
        }
        try expectEqual(order, ["FIRST", "SECOND", "THIRD"], "sms messages in due order")
        try expectEqual(try await F.claim(store, now: now, ["sms"]).messages.count, 0, "sms messages claimable again while leased")
        let email = try await F.claim(store, now: now, ["email"])
        try expectEqual(email.messages.map(\.message.orderID), ["FIRST", "SECOND", "THIRD"], "e-mail messages, untouched by the sms claims")
        try expect(email.messages.allSatisfy { $0.attempts == 0 && $0.message.recipient == F.email }, "e-mail messages as decided")
    }

    /// `saturatedChannels` names the channels whose claim came back full; `nextDueAt` gives, for
    /// the others, the earliest due time (a leased message's lease expiry), absent when none.
    static func aFullClaimSaysSaturatedAndNextDueAtSaysWhenToLookAgain(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        for i in 0..<3 { try await harness.insertOrder(F.order("S\(i)")) }
        try await harness.insertOrder(ShopOrder(id: "E", createdAt: F.t0, email: F.email))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 2, "email": 10], knownChannels: F.channels, leaseMs: F.minute), now: now)
        try expectEqual(claim.messages.filter { $0.message.channel == "sms" }.count, 2, "sms messages claimed")
        try expectEqual(claim.saturatedChannels, ["sms"], "saturated channels")
        try expectEqual(claim.othersSaturated, false, "others saturated")
        try expectEqual(claim.nextDueAt["sms"], nil, "next due time of a saturated channel")
        try expectEqual(claim.nextDueAt["email"], now + F.minute, "next due time of e-mail: its lease expiry")
        try expectEqual(claim.nextDueAt["push"], nil, "next due time of a channel with nothing pending")
        // With no claim, where each channel stands is still reported.
        let standing = try await store.exchangeDeliveries(recording: [], claiming: DeliveryClaimRequest(
            perChannel: [:], knownChannels: F.channels, leaseMs: F.minute), now: now + 1)
        try expectEqual(standing.nextDueAt["sms"], now, "next due time of sms: its unclaimed message")
        try expectEqual(standing.messages.count, 0, "messages claimed by an empty request")
    }

    /// A delivered result is final: one attempt row, the message never claimed again.
    static func aDeliveredMessageIsFinalWithOneAttempt(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claim = try await F.claim(store, now: now, leaseMs: 1_000)
        try expectEqual(claim.messages.count, 1, "messages claimed")
        try expectEqual(try await F.record(store, claim.messages, .delivered, now: now + 10), [], "stale results")
        try expectEqual(try await F.claim(store, now: now + F.day).messages.count, 0, "claimable after delivery, even after the lease")
        let record = try require(try await F.deliveries(store, "A1").first, "the delivery")
        try expectEqual(record.state, .delivered, "state")
        try expectEqual(record.attempts.map(\.attempt), [1], "attempt numbers")
        try expectEqual(record.attempts.first?.outcome, .delivered, "attempt outcome")
        try expectEqual(record.attempts.first?.httpStatus, 200, "attempt HTTP status")
        try expectEqual(record.attempts.first?.at, now + 10, "attempt time: the result's start")
    }

    /// `.retry(atMs:)` leaves the message pending, due at `atMs`, with the attempt counted.
    static func aRetryIsDueAtItsTimeWithTheAttemptCounted(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now).messages
        try await F.record(store, claimed, .retry(atMs: now + 5_000, reason: "HTTP 503"), now: now + 1)
        let standing = try await F.claim(store, now: now + 4_999)
        try expectEqual(standing.messages.count, 0, "claimable before the retry time")
        try expectEqual(standing.nextDueAt["sms"], now + 5_000, "next due time: the retry")
        let again = try await F.claim(store, now: now + 5_000).messages
        try expectEqual(again.map(\.id), claimed.map(\.id), "claimed at the retry time")
        try expectEqual(again.first?.attempts, 1, "attempts before this one")
        let record = try require(try await F.deliveries(store, "A1").first, "the delivery")
        try expectEqual(record.state, .pending, "state of a message being retried")
        try expectEqual(record.attempts.map(\.outcome), [.retry], "attempt outcomes")
        try expect(record.lastError?.contains("HTTP 503") == true, "last error names the retry's reason, got \(record.lastError ?? "nil")")
    }

    /// `.deferred(untilMs:)` leaves the message pending until then, with no attempt row.
    static func aDeferredResultIsDueLaterWithoutAnAttempt(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now).messages
        try await F.record(store, claimed, .deferred(untilMs: now + 30_000, reason: "token being fetched"), now: now + 1)
        try expectEqual(try await F.claim(store, now: now + 29_999).messages.count, 0, "claimable before the deferral ends")
        let again = try await F.claim(store, now: now + 30_000).messages
        try expectEqual(again.map(\.id), claimed.map(\.id), "claimed when the deferral ends")
        try expectEqual(again.first?.attempts, 0, "attempts counted")
        try expectEqual(try await F.deliveries(store, "A1").first?.attempts.count, 0, "attempt rows")
    }

    /// `.notAttempted` (a claimed message released unsent) is due again at once, with no attempt.
    static func aMessageReleasedUnsentIsDueAtOnceWithoutAnAttempt(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1", email: true))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claimed = try await F.claim(store, now: now).messages
        try expectEqual(claimed.count, 2, "messages claimed")
        let again = try await store.exchangeDeliveries(
            recording: claimed.map { .released($0.id, at: now + 1) }, claiming: F.request(), now: now + 1)
        try expectEqual(again.staleResults, [], "stale results")
        try expectEqual(Set(again.messages.map(\.id)), Set(claimed.map(\.id)), "claimed again in the same exchange")
        try expect(again.messages.allSatisfy { $0.attempts == 0 }, "no attempt counted")
        try expect(try await F.deliveries(store, "A1").allSatisfy { $0.attempts.isEmpty }, "no attempt row")
    }

    /// A dead result is final, writes a `delivery_dead` event, inserts its follow-up once (recorded
    /// twice, the second is stale), and with `suppress` puts the address into `suppressions`: the
    /// next message to it is suppressed.
    static func aDeadMessageEscalatesOnceAndSuppressesItsAddress(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let item = try require(try await F.claim(store, now: now).messages.first, "the claimed reminder")
        let ops = F.planner.deliveryDeadMessage(for: item.message, reason: "HTTP 400")
        let dead = F.result(item, .dead(reason: "HTTP 400 invalid number"), at: now, status: 400, followUp: ops, suppress: true)
        let first = try await store.exchangeDeliveries(recording: [dead], claiming: nil, now: now + 1)
        try expectEqual(first.staleResults, [], "stale results of the first record")
        let second = try await store.exchangeDeliveries(recording: [dead], claiming: nil, now: now + 2)
        try expectEqual(second.staleResults, [item.id], "stale results of the same result recorded again")
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        let record = try require(detail.deliveries.first { $0.idempotencyKey == item.message.idempotencyKey }, "the reminder's record")
        try expectEqual(record.state, .dead, "state")
        try expectEqual(record.attempts.map(\.outcome), [.dead], "attempts")
        try expect(detail.timeline.contains { $0.event == "delivery_dead" }, "a delivery_dead event on the timeline")
        let escalation = try await F.claim(store, now: now + 3, ["ops"]).messages
        try expectEqual(F.names(escalation), ["A1 delivery_dead 0 ops"], "the ops follow-up, once")
        try expectEqual(escalation.first?.message.recipient, "oncall", "the follow-up's recipient")
        // The address refused for good: another order's reminder to it is not sent.
        try await harness.insertOrder(F.order("B1", at: now))
        try await F.sweep(store, now: now + 10 * F.minute)
        let later = try await F.claim(store, now: now + 10 * F.minute, ["sms"])
        try expectEqual(F.names(later.suppressed), ["B1 unpaid_reminder 1 sms"], "suppressed at claim")
        try expectEqual(later.messages.count, 0, "messages claimed to a suppressed address")
    }

    /// A reminder decided before the order was paid is superseded at claim, never returned.
    static func aReminderForAnOrderNowPaidIsSupersededAtClaim(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        try await harness.insertPayment(ShopPayment(id: "P1", orderID: "A1", createdAt: now + 1))
        try await F.sweep(store, now: now + 2)
        let claim = try await F.claim(store, now: now + 3)
        try expectEqual(F.names(claim.superseded), ["A1 unpaid_reminder 1 sms"], "superseded")
        try expectEqual(F.names(claim.messages), ["A1 payment_confirmed 1 sms"], "claimed")
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        try expectEqual(detail.deliveries.first { $0.kind == "unpaid_reminder" }?.state, .superseded, "the reminder's state")
        try expect(detail.timeline.contains { $0.event == "superseded" }, "a superseded event on the timeline")
        try expectEqual(try await F.claim(store, now: now + F.day).superseded.count, 0, "superseded again")
    }

    /// An address the shop put into `suppressions` is not written to: suppressed at claim.
    static func aSuppressedAddressIsSuppressedAtClaim(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1", email: true))
        try await harness.insertSuppression(channel: "email", address: F.email, reason: "unsubscribed", createdAt: F.t0)
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now)
        let claim = try await F.claim(store, now: now)
        try expectEqual(F.names(claim.suppressed), ["A1 unpaid_reminder 1 email"], "suppressed")
        try expectEqual(F.names(claim.messages), ["A1 unpaid_reminder 1 sms"], "claimed")
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        try expectEqual(detail.deliveries.first { $0.channel == "email" }?.state, .suppressed, "the e-mail's state")
        try expect(detail.timeline.contains { $0.event == "suppressed" }, "a suppressed event on the timeline")
    }

    /// With `maxPerOrderPerDay`, a reminder beyond the customer's cap over 24 hours is capped.
    static func aDailyCapCapsReminders(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        try await harness.insertOrder(F.order("A1"))
        try await harness.insertOrder(F.order("B1"))
        let first = F.t0 + 10 * F.minute
        try await F.sweep(store, now: first)
        let claimed = try await F.claim(store, now: first, cap: 1)
        try expectEqual(F.names(claimed.messages), ["A1 unpaid_reminder 1 sms", "B1 unpaid_reminder 1 sms"], "first reminders")
        // A1's first reminder went out; B1's failed for now (a retry does not count as sent).
        try await F.record(store, claimed.messages.filter { $0.message.orderID == "A1" }, .delivered, now: first)
        try await F.record(store, claimed.messages.filter { $0.message.orderID == "B1" }, .retry(atMs: first + F.day, reason: "HTTP 503"),
                           now: first)
        let second = F.t0 + 25 * F.minute
        try await F.sweep(store, now: second)
        let capped = try await F.claim(store, now: second, cap: 1)
        try expectEqual(F.names(capped.capped), ["A1 unpaid_reminder 2 sms"], "capped")
        try expectEqual(F.names(capped.messages), ["B1 unpaid_reminder 2 sms"], "claimed under the cap")
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        try expectEqual(detail.deliveries.first { $0.step == 2 }?.state, .capped, "the capped reminder's state")
        try expect(detail.timeline.contains { $0.event == "capped" }, "a capped event on the timeline")
    }

    /// Messages delivery decides itself (`deciding:`, about no order) are inserted once by key,
    /// due at `now`.
    static func decisionsAreInsertedOnceByKey(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        let now = F.t0
        let paused = F.planner.channelPausedMessage(channel: "sms", failures: 5, lastError: "HTTP 503", openedAt: now, probeEveryMs: 30_000)
        _ = try await store.exchangeDeliveries(recording: [], deciding: [paused, paused], claiming: nil, now: now)
        _ = try await store.exchangeDeliveries(recording: [], deciding: [paused], claiming: nil, now: now + 1)
        try expectEqual(try await F.claim(store, now: now - 1, ["ops"]).messages.count, 0, "claimable before its due time")
        let claim = try await store.exchangeDeliveries(recording: [], deciding: [paused], claiming: F.request(["ops"]), now: now + 2)
        try expectEqual(claim.messages.map(\.message.idempotencyKey), [paused.idempotencyKey], "the decision, once")
        try expectEqual(claim.messages.first?.message.kind, .channelPaused, "its kind")
        try expectEqual(claim.messages.first?.message.recipient, "oncall", "its recipient")
    }

    /// A message on a channel delivery has no lane for (left by an older configuration) is claimed
    /// only through `others`, which says when it came back full.
    static func messagesOfChannelsNotKnownAreClaimedAmongTheOthers(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        let fax = Planner(policy: Policy(unpaidChannels: ["fax"], fixedRecipients: ["fax": "+8610000000", "ops": "oncall"]))
        for id in ["A", "B"] { try await harness.insertOrder(F.order(id)) }
        let now = F.t0 + 10 * F.minute
        try await F.sweep(store, now: now, planner: fax)
        try expectEqual(try await F.claim(store, now: now).messages.count, 0, "claimed without others")
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10], others: 1, knownChannels: F.channels, leaseMs: F.minute), now: now)
        try expectEqual(F.names(claim.messages), ["A unpaid_reminder 1 fax"], "claimed among the others")
        try expectEqual(claim.othersSaturated, true, "others saturated")
        let rest = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: [:], others: 5, knownChannels: F.channels, leaseMs: F.minute), now: now)
        try expectEqual(F.names(rest.messages), ["B unpaid_reminder 1 fax"], "the rest among the others")
        try expectEqual(rest.othersSaturated, false, "others saturated")
    }

    /// `fallback = true`: a message kept with its alternates is decided again on the next channel
    /// when it is dead.
    static func aDeadMessageFallsBackToItsNextChannel(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        var policy = Policy(unpaidHoldMs: 30 * F.minute, unpaidRemindersMs: [10 * F.minute], unpaidChannels: ["sms", "email"],
                            fixedRecipients: ["ops": "oncall"])
        policy.fallback = [.unpaid]
        try await harness.insertOrder(F.order("A1", email: true))
        let now = F.t0 + 10 * F.minute
        let plans = try await F.sweep(store, now: now, planner: Planner(policy: policy))
        try expectEqual(plans.flatMap(\.messages).map(\.channel), ["sms"], "channels decided with fallback")
        let sms = try await F.claim(store, now: now).messages
        try expectEqual(F.names(sms), ["A1 unpaid_reminder 1 sms"], "claimed")
        try await F.record(store, sms, .dead(reason: "HTTP 400"), now: now + 1)
        let email = try await F.claim(store, now: now + 2).messages
        try expectEqual(F.names(email), ["A1 unpaid_reminder 1 email"], "claimed after the sms died")
        try expectEqual(email.first?.message.recipient, F.email, "the fallback's address")
        let detail = try require(try await store.order(id: "A1"), "A1's detail")
        try expect(detail.timeline.contains { $0.event == "fallback" }, "a fallback event on the timeline")
    }

    /// A message decided inside the quiet hours is due at their end (`notBefore`), shown held, and
    /// not claimed before.
    static func aMessageHeldForTheQuietHoursIsDueAtTheirEnd(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        let hour: Millis = 3_600_000
        let noon: Millis = 1_795_694_400_000  // 2026-11-26T12:00:00Z
        let quiet = Planner(policy: Policy(
            unpaidHoldMs: 12 * hour, unpaidRemindersMs: [10 * F.minute], unpaidChannels: ["sms", "email"],
            fixedRecipients: ["ops": "oncall"], quietHours: QuietHours(start: 21 * 60, end: 8 * 60, channels: ["sms"])))
        let created = noon + 10 * hour + 50 * F.minute  // 22:50Z
        let morning = noon + 20 * hour                  // 08:00Z
        try await harness.insertOrder(F.order("Q1", at: created, email: true))
        try await F.sweep(store, now: created, planner: quiet)
        let now = created + 10 * F.minute
        try await F.sweep(store, now: now, planner: quiet)
        let claim = try await F.claim(store, now: now)
        try expectEqual(F.names(claim.messages), ["Q1 unpaid_reminder 1 email"], "claimed inside the quiet hours")
        try expectEqual(claim.nextDueAt["sms"], morning, "the sms is due at the quiet hours' end")
        let held = try require(try await F.deliveries(store, "Q1").first { $0.channel == "sms" }, "the held sms")
        try expectEqual(held.heldUntil, morning, "held until")
        try expectEqual(held.dueAt, morning, "due at")
        try expectEqual(try await F.claim(store, now: morning - 1, ["sms"]).messages.count, 0, "claimed before the end")
        try expectEqual(F.names(try await F.claim(store, now: morning, ["sms"]).messages), ["Q1 unpaid_reminder 1 sms"], "claimed at the end")
    }

    /// Suppression is for customers: an ops message goes to a suppressed address, and a dead ops
    /// message with `suppress` does not put its address into `suppressions`.
    static func opsMessagesAreNeverSuppressed(_ harness: any ConformanceHarness) async throws {
        let store = try await F.store(harness)
        let now = F.t0
        let paused = F.planner.channelPausedMessage(channel: "sms", failures: 5, lastError: "HTTP 503", openedAt: now, probeEveryMs: 30_000)
        let first = try await store.exchangeDeliveries(recording: [], deciding: [paused], claiming: F.request(["ops"]), now: now)
        try expectEqual(first.messages.count, 1, "the ops message claimed")
        try await store.recordDeliveries([F.result(first.messages[0], .dead(reason: "HTTP 400"), at: now, status: 400, suppress: true)],
                                         now: now + 1)
        let resumed = F.planner.channelResumedMessage(channel: "sms", resumedAt: now + 2)
        let second = try await store.exchangeDeliveries(recording: [], deciding: [resumed], claiming: F.request(["ops"]), now: now + 2)
        try expectEqual(second.messages.map(\.message.kind), [.situationResolved], "an ops message after a dead one with suppress")
        try expectEqual(second.suppressed.count, 0, "suppressed")
        try await harness.insertSuppression(channel: "ops", address: "oncall", reason: "unsubscribed", createdAt: now)
        let again = F.planner.channelPausedMessage(channel: "sms", failures: 5, lastError: "HTTP 503", openedAt: now + 3, probeEveryMs: 30_000)
        let third = try await store.exchangeDeliveries(recording: [], deciding: [again], claiming: F.request(["ops"]), now: now + 3)
        try expectEqual(third.messages.map(\.message.idempotencyKey), [again.idempotencyKey], "an ops message to a suppressed address")
        try expectEqual(third.suppressed.count, 0, "suppressed")
    }
}
