import Foundation
import GRDB
import PaywatchCore
import Testing
@testable import PaywatchStore

/// Leases with an owner (issue 10, items 1 and 3): a store releases only its own leases, an expired
/// lease is claimed anew by another owner, a result is recorded only by the lease's current owner
/// and attempt, and a live owner renews its leases.
@Suite struct LeaseOwnerTests {
    /// Two stores (two "replicas") on one file, and an order with a reminder on sms and email
    /// decided at `t0 + 10 min`.
    func twoOwners() async throws -> (TempDatabase, SQLiteOrderStore, SQLiteOrderStore) {
        let temp = try TempDatabase()
        let first = try SQLiteOrderStore(path: temp.path, leaseOwner: "first")
        let second = try SQLiteOrderStore(path: temp.path, leaseOwner: "second")
        try await first.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('A1', 100, ?, '+8613800000000', 'a@shop.example')",
                           arguments: [t0])
        }
        _ = try await sweepAll(first, now: t0 + 10 * minute)
        return (temp, first, second)
    }

    func claim(_ store: SQLiteOrderStore, _ channels: [String], now: Millis, leaseMs: Millis = 60_000) async throws -> [OutboxMessage] {
        try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, 10) }), knownChannels: channels,
                                 leaseMs: leaseMs),
            now: now).messages
    }

    func owners(_ temp: TempDatabase) async throws -> [String: String?] {
        let rows = try await temp.shop().read { try Row.fetchAll($0, sql: "SELECT channel, lease_owner FROM pw_outbox") }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["channel"] as String, $0["lease_owner"] as String?) })
    }

    @Test func releaseLeasesReleasesOnlyTheOwnersOwn() async throws {
        let (temp, first, second) = try await twoOwners()
        let now = t0 + 10 * minute
        #expect(first.leaseOwner == "first")
        let sms = try await claim(first, ["sms"], now: now)
        let email = try await claim(second, ["email"], now: now)
        #expect(sms.count == 1 && email.count == 1)
        #expect(try await owners(temp) == ["sms": "first", "email": "second"])
        // A clean stop of the first: its sms lease is given back, the second's email lease is not.
        #expect(try await first.releaseLeases(now: now + 1) == 1)
        #expect(try await owners(temp) == ["sms": nil, "email": "second"])
        let again = try await claim(first, ["sms", "email"], now: now + 2)
        #expect(again.map(\.id) == sms.map(\.id))
        // Nor does a store without the run lock take back other owners' leases at start.
        #expect(try await first.recoverLeasesOfDeadOwners(now: now + 3) == 0)
        #expect(try await owners(temp) == ["sms": "first", "email": "second"])
    }

    @Test func anExpiredLeaseIsClaimedByAnotherOwnerAndTheStaleResultIsDropped() async throws {
        let (temp, first, second) = try await twoOwners()
        let now = t0 + 10 * minute
        let taken = try #require(try await claim(first, ["sms"], now: now, leaseMs: 1_000).first)
        // Leased: nobody else claims it before the lease ends...
        #expect(try await claim(second, ["sms"], now: now + 999).isEmpty)
        // ...and anyone does after: a new lease, to the new owner.
        let takenOver = try await claim(second, ["sms"], now: now + 1_000, leaseMs: 60_000)
        #expect(takenOver.map(\.id) == [taken.id])
        #expect(try await owners(temp)["sms"] == "second")

        // The first owner's result comes late, while the second still holds the lease: dropped.
        let late = try await first.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: taken.id, startedAt: now, httpStatus: 503, error: nil, durationMs: 1_500,
                           outcome: .retry(atMs: now + 60_000, reason: "HTTP 503")),
        ], claiming: nil, now: now + 1_500)
        #expect(late.staleResults == [taken.id])
        var row = try #require(try await temp.shop().read { try Row.fetchOne($0, sql: "SELECT * FROM pw_outbox WHERE id = ?", arguments: [taken.id]) })
        #expect(row["state"] as String == "pending")
        #expect(row["in_flight"] as Int == 1)
        #expect(row["attempts"] as Int == 0)
        #expect(row["lease_owner"] as String? == "second")

        // The second delivers it: recorded.
        let delivered = try await second.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: taken.id, startedAt: now + 1_000, httpStatus: 200, error: nil, durationMs: 20, outcome: .delivered),
        ], claiming: nil, now: now + 1_600)
        #expect(delivered.staleResults.isEmpty)
        // A stale result after that changes nothing either: the message keeps the second's outcome.
        let later = try await first.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: taken.id, startedAt: now, httpStatus: nil, error: "timeout", durationMs: 2_000,
                           outcome: .dead(reason: "timeout")),
        ], claiming: nil, now: now + 2_000)
        #expect(later.staleResults == [taken.id])
        row = try #require(try await temp.shop().read { try Row.fetchOne($0, sql: "SELECT * FROM pw_outbox WHERE id = ?", arguments: [taken.id]) })
        #expect(row["state"] as String == "delivered")
        #expect(row["attempts"] as Int == 1)
        #expect(row["in_flight"] as Int == 0)
        #expect(row["lease_owner"] as String? == nil)
        let attempts = try await temp.shop().read { try Int?.fetchAll($0, sql: "SELECT http_status FROM pw_attempts WHERE outbox_id = ?", arguments: [taken.id]) }
        #expect(attempts == [200])
        let dead = try await temp.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_outbox WHERE kind = 'delivery_dead'") }
        #expect(dead == 0)
    }

    func outboxRow(_ temp: TempDatabase, _ id: Int64) async throws -> Row {
        try #require(try await temp.shop().read { try Row.fetchOne($0, sql: "SELECT * FROM pw_outbox WHERE id = ?", arguments: [id]) })
    }

    @Test func aLateResultOfTheSameOwnersEarlierLeaseIsStaleByItsAttemptNumber() async throws {
        let (temp, first, _) = try await twoOwners()
        let now = t0 + 10 * minute
        // Claimed; the transfer hangs past the lease.
        let earlier = try #require(try await claim(first, ["sms"], now: now, leaseMs: 1_000).first)
        #expect(earlier.attempts == 0)
        // The same owner claims it again after the lease expired, and records a retry for that claim.
        let second = try #require(try await claim(first, ["sms"], now: now + 1_000, leaseMs: 60_000).first)
        #expect(second.id == earlier.id && second.attempts == 0)
        let retried = try await first.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: second.id, startedAt: now + 1_000, httpStatus: 503, error: nil, durationMs: 10,
                           outcome: .retry(atMs: now + 2_000, reason: "HTTP 503"), attempts: second.attempts),
        ], claiming: nil, now: now + 1_010)
        #expect(retried.staleResults.isEmpty)
        // Due again, and claimed again by the same owner for the second attempt.
        let third = try #require(try await claim(first, ["sms"], now: now + 2_000, leaseMs: 60_000).first)
        #expect(third.id == earlier.id && third.attempts == 1)

        // The first claim's transfer ends at last: leased to this owner still, but to a later
        // attempt. Without the attempt number it would be recorded over the third claim's lease.
        let late = try await first.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: earlier.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 2_500,
                           outcome: .delivered, attempts: earlier.attempts),
        ], claiming: nil, now: now + 2_500)
        #expect(late.staleResults == [earlier.id])
        var row = try await outboxRow(temp, earlier.id)
        #expect(row["state"] as String == "pending")
        #expect(row["attempts"] as Int == 1)
        #expect(row["in_flight"] as Int == 1)
        #expect(row["lease_owner"] as String? == "first")
        // A release of the earlier lease is stale too: the third claim keeps its lease.
        let release = try await first.exchangeDeliveries(recording: [.released(earlier.id, at: now + 2_600, attempts: 0)],
                                                         claiming: nil, now: now + 2_600)
        #expect(release.staleResults == [earlier.id])
        #expect(try await outboxRow(temp, earlier.id)["lease_owner"] as String? == "first")

        // The third claim's own result is recorded.
        let delivered = try await first.exchangeDeliveries(recording: [
            DeliveryResult(outboxID: third.id, startedAt: now + 2_000, httpStatus: 200, error: nil, durationMs: 20,
                           outcome: .delivered, attempts: third.attempts),
        ], claiming: nil, now: now + 2_700)
        #expect(delivered.staleResults.isEmpty)
        row = try await outboxRow(temp, earlier.id)
        #expect(row["state"] as String == "delivered")
        #expect(row["attempts"] as Int == 2)
        let attempts = try await temp.shop().read {
            try Row.fetchAll($0, sql: "SELECT attempt, http_status FROM pw_attempts WHERE outbox_id = ? ORDER BY attempt", arguments: [earlier.id])
        }
        #expect(attempts.map { [$0["attempt"] as Int, $0["http_status"] as Int] } == [[1, 503], [2, 200]])
    }

    @Test func aRenewedLeaseIsNotClaimableAtItsOldExpiryAndALostOneIsReturned() async throws {
        let (temp, first, second) = try await twoOwners()
        let now = t0 + 10 * minute
        let sms = try #require(try await claim(first, ["sms"], now: now, leaseMs: 30_000).first)
        let email = try #require(try await claim(first, ["email"], now: now, leaseMs: 30_000).first)
        #expect(try await first.renewLeases([], until: now + 60_000, now: now) == [])

        // Renewed a third of the way in: at the old expiry, nobody else can claim them.
        #expect(try await first.renewLeases([sms.id, email.id], until: now + 40_000, now: now + 10_000) == [])
        #expect(try await outboxRow(temp, sms.id)["due_at"] as Millis == now + 40_000)
        #expect(try await claim(second, ["sms", "email"], now: now + 30_000).isEmpty)
        // A renewal never shortens a lease.
        #expect(try await first.renewLeases([sms.id], until: now + 35_000, now: now + 31_000) == [])
        #expect(try await outboxRow(temp, sms.id)["due_at"] as Millis == now + 40_000)

        // The first stops renewing email (a replica that hung): its lease runs out, another owner
        // takes it over, and the first's next renewal reports it lost, leaving the new lease alone.
        #expect(try await first.renewLeases([sms.id], until: now + 70_000, now: now + 39_000) == [])
        let takenOver = try await claim(second, ["sms", "email"], now: now + 40_000, leaseMs: 30_000)
        #expect(takenOver.map(\.id) == [email.id])
        #expect(try await first.renewLeases([sms.id, email.id], until: now + 80_000, now: now + 50_000) == [email.id])
        #expect(try await owners(temp) == ["sms": "first", "email": "second"])
        #expect(try await outboxRow(temp, email.id)["due_at"] as Millis == now + 70_000)

        // An expired lease nobody took is still the owner's: renewed.
        #expect(try await first.renewLeases([sms.id], until: now + 200_000, now: now + 100_000) == [])
        // A recorded message is no longer leased: lost.
        try await first.recordDeliveries([
            DeliveryResult(outboxID: sms.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 5, outcome: .delivered,
                           attempts: sms.attempts),
        ], now: now + 100_001)
        #expect(try await first.renewLeases([sms.id], until: now + 200_000, now: now + 100_002) == [sms.id])
        #expect(try await outboxRow(temp, sms.id)["state"] as String == "delivered")
    }

    @Test func aHandOffIsLeasedToTheSweepingOwner() async throws {
        let temp = try TempDatabase()
        let store = try SQLiteOrderStore(path: temp.path, leaseOwner: "planner")
        try await store.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
        }
        let handed = Locked<[OutboxMessage]>([])
        _ = try await store.sweep(now: t0 + 10 * minute, limit: 100, plan: { planner.plan($0, now: t0 + 10 * minute) },
                                  handOff: DeliveryHandOff(leaseMs: 60_000) { _ in true },
                                  applied: { _, messages in handed.mutate { $0 += messages } })
        #expect(handed.value.count == 1)
        #expect(try await owners(temp) == ["sms": "planner"])
        // Recorded by its owner: the lease is cleared.
        try await store.recordDeliveries([
            DeliveryResult(outboxID: handed.value[0].id, startedAt: t0 + 10 * minute, httpStatus: 200, error: nil, durationMs: 5,
                           outcome: .delivered),
        ], now: t0 + 10 * minute + 5)
        #expect(try await owners(temp) == ["sms": nil])
    }

    @Test func reconcileLeasesHaveAnOwnerToo() async throws {
        let temp = try TempDatabase()
        let first = try SQLiteOrderStore(path: temp.path, leaseOwner: "first")
        let second = try SQLiteOrderStore(path: temp.path, leaseOwner: "second")
        try await first.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('A1', 100, ?, '+8613800000000')", arguments: [t0])
            try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, provider_ref, created_at) VALUES ('P-A1', 'A1', 100, 'pending', 'ref', ?)",
                           arguments: [t0])
        }
        let reconciling = ReconcileStoreTests()
        _ = try await reconciling.sweep(first, now: t0 + minute)
        _ = try await reconciling.sweep(first, now: t0 + 15 * minute)
        #expect(try await first.claimReconciles(now: t0 + 15 * minute, limit: 10, leaseMs: minute).count == 1)
        // Another owner's stop leaves the ask leased; the first's gives it back.
        _ = try await second.releaseLeases(now: t0 + 15 * minute + 5)
        #expect(try await first.nextReconcileAt() == t0 + 16 * minute)
        _ = try await first.releaseLeases(now: t0 + 15 * minute + 5)
        #expect(try await first.nextReconcileAt() == t0 + 15 * minute + 5)
        // An expired lease is claimed by anyone.
        #expect(try await first.claimReconciles(now: t0 + 15 * minute + 5, limit: 10, leaseMs: minute).count == 1)
        #expect(try await second.claimReconciles(now: t0 + 16 * minute + 5, limit: 10, leaseMs: minute).count == 1)
    }

    @Test func theRunLockRefusesASecondDaemonAndRecoversDeadOwnersLeases() async throws {
        let temp = try TempDatabase()
        let crashed = try SQLiteOrderStore(path: temp.path, leaseOwner: "crashed")
        try await crashed.migrate()
        try await temp.shop().write { db in
            try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('A1', 100, ?, '+8613800000000', 'a@shop.example')",
                           arguments: [t0])
        }
        let now = t0 + 10 * minute
        _ = try await sweepAll(crashed, now: now)
        #expect(try await claim(crashed, ["sms", "email"], now: now).count == 2)
        // One leased before owners were recorded (migration v13): an owner that is gone too.
        try await temp.shop().write { try $0.execute(sql: "UPDATE pw_outbox SET lease_owner = NULL WHERE channel = 'email'") }

        let daemon = try SQLiteOrderStore(path: temp.path, runLock: true)
        #expect(daemon.holdsRunLock)
        #expect(!crashed.holdsRunLock)
        #expect(daemon.leaseOwner != crashed.leaseOwner)
        // A second daemon on the same file is refused, with the message `paywatch run` prints.
        let again = Result { try SQLiteOrderStore(path: temp.path, runLock: true) }
        switch again {
        case .success: Issue.record("a second store took the run lock")
        case .failure(let error):
            #expect("\(error)".contains("another paywatch is already running on this database (it holds \(temp.path).lock)"))
        }
        // Under the lock, every other owner is a run that ended: its leases are due again at once.
        #expect(try await daemon.recoverLeasesOfDeadOwners(now: now + 1) == 2)
        #expect(try await claim(daemon, ["sms", "email"], now: now + 1).count == 2)
        #expect(try await daemon.recoverLeasesOfDeadOwners(now: now + 2) == 0)
        // The lock goes with the store.
        try await daemon.close()
    }

    @Test func theRunLockIsReleasedWithTheStore() async throws {
        let temp = try TempDatabase()
        do {
            let daemon = try SQLiteOrderStore(path: temp.path, runLock: true)
            try await daemon.close()
        }
        let next = try SQLiteOrderStore(path: temp.path, runLock: true)
        #expect(next.holdsRunLock)
    }
}
