import Foundation
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchTestSupport
import Testing

/// A shop's own tables, as a careless or hostile shop has them: other types for ids, times and
/// money, values that do not fit, ids with line breaks, extreme integers. `migrate` adapts what it
/// can, refuses what it cannot (naming it), and no row can stop a sweep.
@Suite(.serialized) struct PostgresShopShapesTests {
    func value(_ server: PostgresServer, _ sql: String) throws -> String {
        try server.psql(sql).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func otherTypesAreReadAndValuesThatDoNotFitQuarantineTheirOrderOnly() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try server.psql("""
            CREATE TABLE orders (id bigint PRIMARY KEY, amount_due numeric(20, 2) NOT NULL, created_at timestamp NOT NULL,
                                 phone varchar(32), note text);
            CREATE TABLE payments (id uuid PRIMARY KEY, order_id bigint, amount integer NOT NULL, status text NOT NULL,
                                   created_at timestamptz NOT NULL);
            INSERT INTO orders VALUES (1, 129, '2026-09-21 12:00:00', '+8613800000000', 'kept');
            INSERT INTO orders VALUES (2, 12.5, '2026-09-21 12:00:00', '+8613800000001', 'a fraction of a fen');
            INSERT INTO orders VALUES (3, 100, 'infinity', '+8613800000002', 'no time');
            INSERT INTO orders VALUES (4, 99999999999999.99, '2026-09-21 12:00:00', '+8613800000003', 'extreme');
            INSERT INTO payments VALUES ('00000000-0000-0000-0000-000000000001', 1, 129, 'succeeded', '2026-09-21 12:01:00+00');
            """)
        let store = try makeStore(server)
        let changes = try await store.migrate()
        #expect(changes.contains("added column orders.status"))
        #expect(changes.contains("added column payments.provider_ref"))
        // The shop's own column is kept, its types too.
        #expect(try value(server, "SELECT note FROM orders WHERE id = 1") == "kept")
        #expect(try value(server, "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'id'") == "bigint")
        let now: Millis = 1_790_000_000_000
        let plans = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }.plans
        #expect(plans.count == 4)
        let byID = Dictionary(uniqueKeysWithValues: plans.map { ($0.orderID, $0) })
        // Paid in full: 129 (numeric 129.00) by a uuid-keyed payment.
        #expect(byID["1"]?.status == .paid && byID["1"]?.quarantine == nil)
        #expect(try value(server, "SELECT status FROM orders WHERE id = 1") == "paid")
        #expect(byID["2"]?.quarantine != nil)
        #expect(byID["3"]?.quarantine != nil)
        #expect(byID["4"]?.quarantine != nil)
        let quarantined = try await store.orders(.quarantined, limit: 10).map(\.id)
        #expect(quarantined == ["2", "3", "4"])
        try await store.close()
    }

    @Test func repeatedKeysAndMissingColumnsAreRefusedNamingThem() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try server.psql("""
            CREATE TABLE orders (id text, amount_due bigint, created_at timestamptz);
            INSERT INTO orders VALUES ('A1', 1, now()), ('A1', 2, now());
            CREATE TABLE payments (id text PRIMARY KEY, order_id text, amount bigint);
            CREATE VIEW refunds AS SELECT 'x'::text AS id, 'y'::text AS order_id, 1::bigint AS amount, 'requested'::text AS status;
            """)
        let store = try makeStore(server)
        let result: Result<[String], StoreError> = await {
            do { return .success(try await store.migrate()) } catch let error as StoreError { return .failure(error) } catch {
                return .failure(StoreError(description: "\(error)"))
            }
        }()
        guard case .failure(let error) = result else {
            Issue.record("migrate accepted tables that do not fit")
            return
        }
        #expect(error.isConfiguration)
        #expect(error.description.contains("orders repeats id (A1)"))
        #expect(error.description.contains("payments lacks the required columns status, created_at"))
        #expect(error.description.contains("refunds is a view"))
        // Nothing was changed.
        #expect(try value(server, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'pw_%'") == "0")
        try await store.close()
    }

    @Test func idsWithLineBreaksAndLongIdsAreStoredAndShownSafely() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let store = try makeStore(server)
        try await store.migrate()
        let long = String(repeating: "Z", count: 5000)
        try server.psql("""
            INSERT INTO orders(id, amount_due, created_at, phone) VALUES
                (E'evil\\r\\nX-Injected: 1', 100, \(ts(t0)), '+8613800000000'),
                ('\(long)', 100, \(ts(t0)), '+8613800000001'),
                ('neg', -5, \(ts(t0)), '+8613800000002');
            """)
        let now = t0 + 10 * minute
        let plans = try await store.sweep(now: now, limit: 10) { planner.plan($0, now: now) }.plans
        #expect(plans.count == 3)
        #expect(plans.first { $0.orderID == "neg" }?.quarantine != nil)
        let listed = try await store.orders(nil, limit: 10).map(\.id)
        #expect(listed.allSatisfy { !$0.contains("\r") && !$0.contains("\n") })
        // Found by its exact id, quarantined (an id with control characters), its reason shown escaped.
        let detail = try #require(try await store.order(id: "evil\r\nX-Injected: 1"))
        let reason = try #require(detail.quarantine)
        #expect(reason.contains("control characters") && !reason.contains("\r") && !reason.contains("\n"))
        let longDetail = try #require(try await store.order(id: long))
        #expect(longDetail.trackedStatus != nil || longDetail.quarantine != nil)
        try await store.close()
    }
}
