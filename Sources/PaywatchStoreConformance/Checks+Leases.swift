import PaywatchCore
import PaywatchStore

private typealias F = Fixture

/// Leases between several stores (replicas) on one database: expiry, take-over, fencing,
/// releasing one's own, and concurrent claims.
extension StoreConformance {
    static let leaseChecks: [Check] = [
        Check(name: "aLeaseHidesAMessageUntilItExpiresThenAnyoneMayClaimIt", run: aLeaseHidesAMessageUntilItExpiresThenAnyoneMayClaimIt),
        Check(name: "aStaleResultIsReturnedAndChangesNothing", run: aStaleResultIsReturnedAndChangesNothing),
        Check(name: "releaseLeasesReleasesOnlyItsOwn", run: releaseLeasesReleasesOnlyItsOwn),
        Check(name: "concurrentClaimsOfTwoOwnersNeverShareAMessage", run: concurrentClaimsOfTwoOwnersNeverShareAMessage),
        Check(name: "concurrentSweepsOfTwoOwnersDecideEachMessageOnce", run: concurrentSweepsOfTwoOwnersDecideEachMessageOnce),
    ]

    /// A claimed message is hidden from every claim while its lease holds, and due again to any
    /// owner when it ends.
    static func aLeaseHidesAMessageUntilItExpiresThenAnyoneMayClaimIt(_ harness: any ConformanceHarness) async throws {
        let first = try await F.store(harness, "first")
        let second = try await F.store(harness, "second")
        try expectEqual(first.leaseOwner, "first", "the first store's lease owner")
        try expectEqual(second.leaseOwner, "second", "the second store's lease owner")
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(first, now: now)
        let taken = try await F.claim(first, now: now, leaseMs: 1_000).messages
        try expectEqual(taken.count, 1, "claimed by the first")
        try expectEqual(try await F.claim(first, now: now + 999).messages.count, 0, "claimed again by its owner while leased")
        try expectEqual(try await F.claim(second, now: now + 999).messages.count, 0, "claimed by another while leased")
        let takenOver = try await F.claim(second, now: now + 1_000).messages
        try expectEqual(takenOver.map(\.id), taken.map(\.id), "claimed by another once the lease expired")
        try expectEqual(takenOver.first?.attempts, 0, "attempts of a message taken over unsent")
    }

    /// Fencing: a result from an owner whose lease expired and was taken over is returned in
    /// `staleResults` and changes nothing; the new owner's result is recorded; a late stale result
    /// after that changes nothing either.
    static func aStaleResultIsReturnedAndChangesNothing(_ harness: any ConformanceHarness) async throws {
        let first = try await F.store(harness, "first")
        let second = try await F.store(harness, "second")
        try await harness.insertOrder(F.order("A1"))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(first, now: now)
        let taken = try require(try await F.claim(first, now: now, leaseMs: 1_000).messages.first, "the first's claim")
        _ = try require(try await F.claim(second, now: now + 1_000).messages.first, "the second's claim")
        let late = try await F.record(first, [taken], .retry(atMs: now + F.minute, reason: "HTTP 503"), now: now + 1_500)
        try expectEqual(late, [taken.id], "stale results of the first")
        var record = try require(try await F.deliveries(first, "A1").first, "the delivery")
        try expectEqual(record.state, .pending, "state after the stale result")
        try expectEqual(record.attempts.count, 0, "attempts after the stale result")
        // Still leased to the second: nobody claims it.
        try expectEqual(try await F.claim(first, now: now + 1_600).messages.count, 0, "claimable while the second holds it")
        try expectEqual(try await F.record(second, [taken], .delivered, now: now + 1_700), [], "stale results of the second")
        let later = try await F.record(first, [taken], .dead(reason: "timeout"), now: now + 2_000)
        try expectEqual(later, [taken.id], "stale results of the first after the second's")
        record = try require(try await F.deliveries(first, "A1").first, "the delivery")
        try expectEqual(record.state, .delivered, "state: the second's outcome")
        try expectEqual(record.attempts.map(\.outcome), [.delivered], "attempts: the second's only")
        try expectEqual(try await F.claim(first, now: now + F.day, ["ops"]).messages.count, 0, "no delivery_dead from a stale result")
    }

    /// `releaseLeases` gives back the store's own leases only (due at `now`), never another owner's.
    static func releaseLeasesReleasesOnlyItsOwn(_ harness: any ConformanceHarness) async throws {
        let first = try await F.store(harness, "first")
        let second = try await F.store(harness, "second")
        try await harness.insertOrder(F.order("A1", email: true))
        let now = F.t0 + 10 * F.minute
        try await F.sweep(first, now: now)
        let sms = try await F.claim(first, now: now, ["sms"]).messages
        let email = try await F.claim(second, now: now, ["email"]).messages
        try expectEqual(sms.count + email.count, 2, "messages claimed by the two")
        try expectEqual(try await first.releaseLeases(now: now + 1), 1, "leases released by the first")
        try expectEqual(try await first.releaseLeases(now: now + 1), 0, "leases released again")
        let again = try await F.claim(second, now: now + 1).messages
        try expectEqual(again.map(\.id), sms.map(\.id), "claimable after the first's release: its sms only")
        try expectEqual(try await second.releaseLeases(now: now + 2), 2, "leases released by the second")
        try expectEqual(Set(try await F.claim(first, now: now + 2).messages.map(\.id)), Set((sms + email).map(\.id)),
                        "claimable after the second's release")
    }

    /// Many claims at once from two owners: every message is returned exactly once.
    static func concurrentClaimsOfTwoOwnersNeverShareAMessage(_ harness: any ConformanceHarness) async throws {
        let stores = [try await F.store(harness, "first"), try await F.store(harness, "second")]
        for i in 0..<40 { try await harness.insertOrder(F.order("C\(i)", email: true)) }
        let now = F.t0 + 10 * F.minute
        try await F.sweep(stores[0], now: now)
        let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for i in 0..<24 {
                let store = stores[i % 2]
                group.addTask { try await F.claim(store, now: now, ["sms", "email"], limit: 3).messages.map(\.id) }
            }
            var all: [Int64] = []
            for try await ids in group { all += ids }
            return all
        }
        try expectEqual(claims.count, 80, "messages claimed in all")
        try expectEqual(Set(claims).count, claims.count, "distinct messages claimed (a duplicate was returned twice)")
    }

    /// Two owners sweeping the same due orders at once decide each message once.
    static func concurrentSweepsOfTwoOwnersDecideEachMessageOnce(_ harness: any ConformanceHarness) async throws {
        let stores = [try await F.store(harness, "first"), try await F.store(harness, "second")]
        for i in 0..<30 { try await harness.insertOrder(F.order("W\(i)")) }
        let now = F.t0 + 10 * F.minute
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<6 {
                let store = stores[i % 2]
                group.addTask { _ = try await store.sweep(now: now, limit: 7) { F.planner.plan($0, now: now) } }
            }
            try await group.waitForAll()
        }
        try await F.sweep(stores[0], now: now)
        let claim = try await F.claim(stores[1], now: now)
        try expectEqual(claim.messages.count, 30, "reminders decided")
        try expectEqual(Set(claim.messages.map(\.message.idempotencyKey)).count, 30, "distinct reminders")
    }
}
