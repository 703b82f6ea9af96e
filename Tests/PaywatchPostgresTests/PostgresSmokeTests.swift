import Foundation
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchTestSupport
import Testing

let minute: Millis = 60_000
let t0: Millis = 1_790_000_000_000
let planner = Planner(policy: Policy(unpaidHoldMs: 30 * minute, unpaidRemindersMs: [10 * minute, 25 * minute],
                                     unpaidChannels: ["sms", "email"], fixedRecipients: ["ops": "oncall"]))

/// A store on `server`'s database, on the injected clock.
func makeStore(_ server: PostgresServer, owner: String = "first", clock: PostgresStoreSettings.Clock = .injected) throws -> PostgresOrderStore {
    try PostgresOrderStore(settings: PostgresStoreSettings(
        endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch", database: "postgres", tls: .disable,
        clock: clock), leaseOwner: owner)
}

/// SQL for a `timestamptz` at `ms`.
func ts(_ ms: Millis) -> String { "to_timestamp(\(Double(ms) / 1000))" }

@Suite(.serialized) struct PostgresSmokeTests {
    /// A database migrated by an older paywatch (schema version 1: the outbox trigger without its
    /// transition table, no planning functions): `migrate` applies 2 and 3, says so, and sweeps work.
    @Test func migratingAnOlderDatabaseAppliesTheNewerVersionsAndSaysWhich() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        try server.psql("""
            DELETE FROM pw_schema WHERE version > 1;
            DROP FUNCTION pw_lease_due_orders; DROP FUNCTION pw_next_planning_at;
            DROP TRIGGER pw_outbox_notify ON pw_outbox;
            CREATE TRIGGER pw_outbox_notify AFTER INSERT ON pw_outbox FOR EACH STATEMENT EXECUTE FUNCTION pw_notify_outbox()
            """)
        #expect(try await store.migrate() == ["paywatch's schema upgraded: applied 2, 3"])
        #expect(try server.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM pw_schema")
            .trimmingCharacters(in: .whitespacesAndNewlines) == "1,2,3")
        try server.psql("INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('U1', 100, \(ts(t0)), '+8613800000000')")
        let plans = try await store.sweep(now: t0 + 10 * minute, limit: 10) { planner.plan($0, now: t0 + 10 * minute) }.plans
        #expect(plans.map(\.orderID) == ["U1"])
        #expect(try await store.migrate().isEmpty)
        try await store.close()
    }

    @Test func anOrderIsPlannedClaimedAndDelivered() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        #expect(try await store.migrate().isEmpty)
        try server.psql("INSERT INTO orders(id, amount_due, created_at, phone, email) VALUES ('A1', 100, \(ts(t0)), '+8613800000000', 'a@shop.example')")
        let now = t0 + 10 * minute
        let plans = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }.plans
        #expect(plans.map(\.orderID) == ["A1"])
        #expect(try server.psql("SELECT status FROM orders WHERE id = 'A1'").trimmingCharacters(in: .whitespacesAndNewlines) == "unpaid")
        let claim = try await store.claimDeliveries(
            DeliveryClaimRequest(perChannel: ["sms": 10, "email": 10], knownChannels: ["sms", "email"], leaseMs: 60_000), now: now)
        #expect(claim.messages.count == 2)
        #expect(Set(claim.messages.map(\.message.channel)) == ["sms", "email"])
        let results = claim.messages.map {
            DeliveryResult(outboxID: $0.id, startedAt: now, httpStatus: 200, error: nil, durationMs: 5, outcome: .delivered)
        }
        let after = try await store.exchangeDeliveries(recording: results, claiming: nil, now: now + 1)
        #expect(after.staleResults.isEmpty)
        let detail = try #require(try await store.order(id: "A1"))
        #expect(detail.trackedStatus == .unpaid)
        #expect(detail.deliveries.map(\.state) == [.delivered, .delivered])
        #expect(detail.deliveries.allSatisfy { $0.attempts.count == 1 })
        let report = try await store.report(since: t0, now: now + 2)
        #expect(report.attempts[.delivered] == 2)
        let health = try await store.health(now: now + 2)
        #expect(health.openOrders == 1)
        #expect(try await store.orders(nil, limit: 10).map(\.id) == ["A1"])
        #expect(try await store.prune(now: now, keepMs: 1000, limit: 10, dryRun: true).orders == 0)
        try await store.close()
    }
}
