import Foundation
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchTestSupport
import Logging
import PostgresNIO
import Testing

/// What sharing one database needs (issue 10, items 3–5), on a real server: replicas sweeping and
/// claiming at once never plan an order or claim a message twice, a dead replica's lease on an
/// order is taken over when it expires, due times follow the database's clock, and `LISTEN`
/// wakes a replica within milliseconds of another writer's commit.
@Suite(.serialized) struct PostgresReplicaTests {
    func insertOrders(_ server: PostgresServer, count: Int, createdAt: Millis = t0) throws {
        try server.psql("""
            INSERT INTO orders(id, amount_due, created_at, phone, email)
            SELECT 'R' || lpad(n::text, 6, '0'), 100, \(ts(createdAt)), '+86138' || lpad(n::text, 8, '0'), 'c' || n || '@shop.example'
            FROM generate_series(1, \(count)) AS n
            """)
    }

    func value(_ server: PostgresServer, _ sql: String) throws -> String {
        try server.psql(sql).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func threeReplicasSweepingAtOncePlanEachOrderOnce() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let stores = try (1...3).map { try makeStore(server, owner: "replica-\($0)") }
        try await stores[0].migrate()
        try insertOrders(server, count: 3000)
        let now = t0 + 10 * minute
        let planned = try await withThrowingTaskGroup(of: [String].self) { group in
            for store in stores {
                group.addTask {
                    var mine: [String] = []
                    while true {
                        let result = try await store.sweep(now: now, limit: 250) { planner.plan($0, now: now) }
                        mine += result.plans.map(\.orderID)
                        if result.claimed == 0 { return mine }
                    }
                }
            }
            var all: [[String]] = []
            for try await ids in group { all.append(ids) }
            return all
        }
        let flat = planned.flatMap { $0 }
        #expect(flat.count == 3000)
        #expect(Set(flat).count == 3000)
        // Every replica took a share (they ran at the same time, not one after the other).
        #expect(planned.allSatisfy { !$0.isEmpty })
        // One `status` event per order, and the two reminders of step 1 each once.
        #expect(try value(server, "SELECT COUNT(*) FROM pw_events WHERE event = 'status'") == "3000")
        #expect(try value(server, "SELECT COUNT(*) FROM pw_outbox") == "6000")
        #expect(try value(server, "SELECT COUNT(*) FROM pw_order_state WHERE lease_owner IS NOT NULL") == "0")

        // Claims at once: every message to exactly one replica.
        let request = DeliveryClaimRequest(perChannel: ["sms": 100, "email": 100], knownChannels: ["sms", "email"], leaseMs: 60_000)
        let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for store in stores {
                group.addTask {
                    var ids: [Int64] = []
                    while true {
                        let claim = try await store.claimDeliveries(request, now: now)
                        if claim.messages.isEmpty { return ids }
                        ids += claim.messages.map(\.id)
                        let results = claim.messages.map {
                            DeliveryResult(outboxID: $0.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 1, outcome: .delivered)
                        }
                        let recorded = try await store.exchangeDeliveries(recording: results, claiming: nil, now: now)
                        #expect(recorded.staleResults.isEmpty)
                    }
                }
            }
            var all: [Int64] = []
            for try await ids in group { all += ids }
            return all
        }
        #expect(claimed.count == 6000)
        #expect(Set(claimed).count == 6000)
        #expect(try value(server, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'") == "6000")
        #expect(try value(server, "SELECT COUNT(*) FROM pw_attempts") == "6000")
        for store in stores { try await store.close() }
    }

    @Test func aDeadReplicasLeaseOnAnOrderIsTakenOverWhenItExpires() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server, owner: "alive")
        try await store.migrate()
        try insertOrders(server, count: 2)
        let now = t0 + 10 * minute
        // A replica leased R000001 for a sweep and died (kill -9) before writing its plan.
        try server.psql("UPDATE pw_order_state SET lease_owner = 'dead', lease_until = \(now + 30_000) WHERE order_id = 'R000001'")
        let first = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }
        #expect(first.plans.map(\.orderID) == ["R000002"])
        #expect(try await store.sweep(now: now + 29_999, limit: 10) { planner.plan($0, now: now) }.plans.isEmpty)
        let later = try await store.sweep(now: now + 30_000, limit: 10) { planner.plan($0, now: now + 30_000) }
        #expect(later.plans.map(\.orderID) == ["R000001"])
        try await store.close()
    }

    @Test func aResultFromALeaseThatExpiredAndWasTakenOverIsStale() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let first = try makeStore(server, owner: "first")
        let second = try makeStore(server, owner: "second")
        try await first.migrate()
        try insertOrders(server, count: 1)
        let now = t0 + 10 * minute
        _ = try await first.sweep(now: now, limit: 10) { planner.plan($0, now: now) }
        let request = DeliveryClaimRequest(perChannel: ["sms": 10], knownChannels: ["sms"], leaseMs: 1_000)
        let taken = try #require(try await first.claimDeliveries(request, now: now).messages.first)
        #expect(try await second.claimDeliveries(request, now: now + 999).messages.isEmpty)
        let again = try #require(try await second.claimDeliveries(request, now: now + 1_000).messages.first)
        #expect(again.id == taken.id)
        let late = DeliveryResult(outboxID: taken.id, startedAt: now, httpStatus: 500, error: "HTTP 500", durationMs: 1,
                                  outcome: .retry(atMs: now + 5_000, reason: "HTTP 500"))
        #expect(try await first.exchangeDeliveries(recording: [late], claiming: nil, now: now + 1_001).staleResults == [taken.id])
        let done = DeliveryResult(outboxID: again.id, startedAt: now + 1_000, httpStatus: 200, error: nil, durationMs: 1, outcome: .delivered)
        #expect(try await second.exchangeDeliveries(recording: [done], claiming: nil, now: now + 1_002).staleResults.isEmpty)
        #expect(try value(server, "SELECT state || ' ' || attempts FROM pw_outbox WHERE id = \(taken.id)") == "delivered 1")
        // A clean stop of the first releases nothing of the second's.
        #expect(try await first.releaseLeases(now: now + 2_000) == 0)
        try await first.close()
        try await second.close()
    }

    /// A replica that lost the race for a due order (or has nothing due) learns when to look again
    /// from the lease statement itself: the sweep's result says both next due times.
    @Test func aSweepThatLeasesNothingSaysWhenPlanningAndReconciliationAreNextDue() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        try insertOrders(server, count: 2)
        let first = try await store.sweep(now: t0, limit: 10) { planner.plan($0, now: t0) }
        #expect(first.claimed == 2)
        // A sweep that wrote says it too, from the same statement as its writes.
        #expect(first.nextDue == NextDueTimes(planning: t0 + 10 * minute, reconcile: nil))
        let idle = try await store.sweep(now: t0 + 1, limit: 10) { planner.plan($0, now: t0 + 1) }
        #expect(idle.claimed == 0)
        let expected = NextDueTimes(planning: try await store.nextPlanningAt(), reconcile: try await store.nextReconcileAt())
        #expect(idle.nextDue == expected)
        #expect(expected.planning == t0 + 10 * minute && expected.reconcile == nil)
        try await store.close()
    }

    /// The shop changes an order between a sweep's read and its write: the plan (made from the old
    /// rows) is not written, nor its messages or events; the lease ends and the order is due at
    /// once, and the next sweep plans it from the new rows.
    @Test func aPlanIsNotWrittenWhenTheShopChangedTheOrderMeanwhile() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        try insertOrders(server, count: 1)
        let now = t0 + 10 * minute
        let first = try await store.sweep(now: now, limit: 10) { snapshot in
            _ = try? server.psql("UPDATE orders SET amount_due = 200 WHERE id = '\(snapshot.orderID)'")
            return planner.plan(snapshot, now: now)
        }
        #expect(first.claimed == 1 && first.plans.isEmpty)
        #expect(try value(server, "SELECT (lease_owner IS NULL AND next_due_at = 0)::text FROM pw_order_state") == "true")
        #expect(try value(server, "SELECT count(*) FROM pw_outbox") == "0")
        #expect(try value(server, "SELECT count(*) FROM pw_events") == "0")
        let again = try await store.sweep(now: now + 1, limit: 10) { planner.plan($0, now: now + 1) }
        #expect(again.plans.count == 1 && !again.plans[0].messages.isEmpty)
        #expect(try value(server, "SELECT count(*) FROM pw_outbox") == "\(again.plans[0].messages.count)")
        #expect(try value(server, "SELECT body LIKE '%200%' FROM pw_outbox LIMIT 1") == "t")
        try await store.close()
    }

    @Test func dueTimesFollowTheDatabasesClock() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server, clock: .database)
        try await store.migrate()
        // An order created an hour ago by the database's clock: its first reminder (10 min) is due.
        try server.psql("""
            INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('C1', 100, now() - interval '1 hour', '+8613800000000')
            """)
        // A host whose clock is a day behind still plans it (the database says it is due)...
        let skewed = Millis(Date().timeIntervalSince1970 * 1000) - 86_400_000
        let plans = try await store.sweep(now: skewed, limit: 10) { planner.plan($0, now: skewed + 86_400_000) }.plans
        #expect(plans.map(\.orderID) == ["C1"])
        // ...and what is due is reported on the host's own clock, so it sleeps the right time.
        let claim = try await store.exchangeDeliveries(
            recording: [], claiming: DeliveryClaimRequest(perChannel: ["sms": 0], knownChannels: ["sms"], leaseMs: 1_000), now: skewed)
        let due = try #require(claim.nextDueAt["sms"])
        #expect(abs(due - skewed) < 5_000)
        try await store.close()
    }

    @Test func listenWakesAReplicaWhenTheShopOrAnotherReplicaWrites() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server, owner: "listener")
        let other = try makeStore(server, owner: "writer")
        try await store.migrate()
        let changes = try #require(store.changes())
        var iterator = changes.makeAsyncIterator()
        // Give LISTEN its moment to register (it runs on a connection of its own).
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        try insertOrders(server, count: 1)
        #expect(await iterator.next() == .ordersChanged)
        #expect(ContinuousClock.now - started < .seconds(2))
        _ = try await other.sweep(now: t0 + 10 * minute, limit: 10) { planner.plan($0, now: t0 + 10 * minute) }
        #expect(await iterator.next() == .messagesAdded)
        try await store.close()
        try await other.close()
    }

    /// A message a sweep inserts leased to its own replica's delivery (handed over in the process)
    /// wakes no replica's delivery: nobody else could claim it. One left for a claim wakes them.
    @Test func aMessageHandedOverInTheProcessWakesNoOtherDelivery() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server, owner: "listener")
        let other = try makeStore(server, owner: "writer")
        try await store.migrate()
        let changes = try #require(store.changes())
        var iterator = changes.makeAsyncIterator()
        try await Task.sleep(for: .milliseconds(300))
        try insertOrders(server, count: 1)
        #expect(await iterator.next() == .ordersChanged)
        let taken = DeliveryHandOff(leaseMs: 30_000) { _ in true }
        let handed = try await other.sweep(now: t0 + 10 * minute, limit: 10, plan: { planner.plan($0, now: t0 + 10 * minute) },
                                           handOff: taken, applied: { _, _ in })
        #expect(!handed.plans.flatMap(\.messages).isEmpty)
        // The next wake-up is the shop's next write, not the leased message.
        try server.psql("""
            INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('W2', 100, to_timestamp(\(Double(t0) / 1000)), '+8613800000002')
            """)
        #expect(await iterator.next() == .ordersChanged)
        let refused = DeliveryHandOff(leaseMs: 30_000) { _ in false }
        _ = try await other.sweep(now: t0 + 10 * minute, limit: 10, plan: { planner.plan($0, now: t0 + 10 * minute) },
                                  handOff: refused, applied: { _, _ in })
        #expect(await iterator.next() == .messagesAdded)
        try await store.close()
        try await other.close()
    }

    @Test func anUnreachableServerIsATransientErrorNotACrash() async throws {
        let probe = try listenOnLoopback(port: 0) { StoreError(description: "\($0)") }
        close(probe.fd)
        let store = try PostgresOrderStore(settings: PostgresStoreSettings(
            endpoint: .tcp(host: "127.0.0.1", port: probe.port), username: "paywatch", database: "postgres", tls: .disable,
            connectTimeoutMs: 1_000, clock: .injected))
        let result: Result<Int, StoreError> = await {
            do { return .success(try await store.replanAll()) } catch let error as StoreError { return .failure(error) } catch {
                return .failure(StoreError(description: "not a StoreError: \(error)"))
            }
        }()
        guard case .failure(let error) = result else {
            Issue.record("no error")
            return
        }
        #expect(!error.isConfiguration && !error.isFatal)
        #expect(error.description.contains("cannot reach PostgreSQL at postgres://paywatch@127.0.0.1:\(probe.port)/postgres"))
        try await store.close()
    }
}

extension PostgresReplicaTests {
    /// A server restart under an open store: the operations in between fail (transient), the ones
    /// after work again on new connections; nothing hangs.
    @Test func aServerRestartIsRiddenOut() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        _ = try await store.replanAll()
        try server.restart()
        var succeeded = false
        for _ in 0..<20 where !succeeded {
            do {
                _ = try await store.replanAll()
                succeeded = true
            } catch let error as StoreError {
                #expect(!error.isConfiguration)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        #expect(succeeded)
        #expect(try server.psql("SELECT 41 + 1").trimmingCharacters(in: .whitespacesAndNewlines) == "42")
        try await store.close()
    }
}

extension PostgresReplicaTests {
    /// An operation that cannot finish (here: a lock the shop holds for longer than the operation
    /// may take) fails after `operationTimeoutMs` with a transient error, its connection closed;
    /// nothing waits for ever, and the next operation works once the lock is gone.
    @Test func anOperationThatCannotFinishFailsInsteadOfWaitingForEver() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        var settings = PostgresStoreSettings(endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch",
                                             database: "postgres", tls: .disable, clock: .injected)
        settings.operationTimeoutMs = 1_000
        let store = try PostgresOrderStore(settings: settings)
        try await store.migrate()
        try server.psql("INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('L1', 100, \(ts(t0)), '+8613800000000')")
        // The shop holds the order's tracking row locked (a long transaction of its own).
        let shop = PostgresClient(configuration: PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: "paywatch", password: nil, database: "postgres", tls: .disable))
        let running = Task { await shop.run() }
        let locked = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await shop.withConnection { connection in
                try await connection.query("BEGIN", logger: Logger(label: "test"))
                try await connection.query("SELECT 1 FROM pw_order_state WHERE order_id = 'L1' FOR UPDATE", logger: Logger(label: "test"))
                locked.continuation.yield()
                try await Task.sleep(for: .seconds(4))
                try await connection.query("ROLLBACK", logger: Logger(label: "test"))
            }
        }
        var iterator = locked.stream.makeAsyncIterator()
        _ = await iterator.next()
        let started = ContinuousClock.now
        let result: Result<Int, StoreError> = await {
            do { return .success(try await store.replanAll()) } catch let error as StoreError { return .failure(error) } catch {
                return .failure(StoreError(description: "not a StoreError: \(error)"))
            }
        }()
        let waited = ContinuousClock.now - started
        guard case .failure(let error) = result else {
            Issue.record("the operation did not wait for the lock")
            return
        }
        #expect(error.description.contains("did not answer within 1 s"))
        #expect(!error.isConfiguration && !error.isFatal)
        #expect(waited < .seconds(3))
        try await holder.value
        #expect(try await store.replanAll() == 1)
        running.cancel()
        try await store.close()
    }
}
