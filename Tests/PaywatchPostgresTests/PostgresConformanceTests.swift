import Foundation
import Logging
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchStoreConformance
import PaywatchTestSupport
import PostgresNIO
import Testing

/// One PostgreSQL server for a whole suite (started before its first test, stopped after its
/// last): each check then gets a database of its own on it, which takes a tenth of a new server.
struct SharedPostgresServer: SuiteTrait, TestScoping {
    @TaskLocal static var current: PostgresServer?

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try await Self.$current.withValue(server) { try await function() }
    }
}

extension Trait where Self == SharedPostgresServer {
    static var sharedPostgresServer: SharedPostgresServer { SharedPostgresServer() }
}

/// The conformance suite's backend for PostgreSQL: a new database per check on the suite's server,
/// a `PostgresOrderStore` per `makeStore` (on the injected clock: the checks' times are theirs),
/// and the shop's rows written through a postgres-nio client of their own, with `timestamptz` times.
actor PostgresHarness: ConformanceHarness {
    let server: PostgresServer
    let database: String
    private var stores: [PostgresOrderStore] = []
    private let shop: PostgresClient
    private let running: Task<Void, Never>

    init(server: PostgresServer) throws {
        self.server = server
        database = "conformance_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try server.psql("CREATE DATABASE \(database)")
        let client = PostgresClient(configuration: PostgresClient.Configuration(
            host: "127.0.0.1", port: server.port, username: "paywatch", password: nil, database: database, tls: .disable))
        shop = client
        running = Task { await client.run() }
    }

    func makeStore(leaseOwner: String) async throws -> any OrderStore {
        let store = try PostgresOrderStore(settings: PostgresStoreSettings(
            endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch", database: database, tls: .disable,
            clock: .injected), leaseOwner: leaseOwner)
        stores.append(store)
        try await store.migrate()
        return store
    }

    private func write(_ query: PostgresQuery) async throws {
        try await shop.query(query)
    }

    /// `timestamptz` for `ms`, exactly (integer milliseconds, no floating point).
    private static func at(_ ms: Millis?) -> String {
        "timestamptz 'epoch' + \(ms.map(String.init) ?? "NULL")::bigint * interval '1 millisecond'"
    }

    func insertOrder(_ order: ShopOrder) async throws {
        try await write("""
            INSERT INTO orders(id, amount_due, currency, created_at, expires_at, email, phone, push_token, locale, time_zone, pay_url,
                               customer_name, payment_method)
            VALUES (\(order.id), \(order.amountDue), \(order.currency),
                    timestamptz 'epoch' + \(order.createdAt) * interval '1 millisecond',
                    timestamptz 'epoch' + \(order.expiresAt)::bigint * interval '1 millisecond',
                    \(order.email), \(order.phone), \(order.pushToken), \(order.locale), \(order.timeZone), \(order.payURL),
                    \(order.customerName), \(order.paymentMethod))
            """)
    }

    func updateOrder(id: String, _ columns: [ShopOrderColumn]) async throws {
        for column in columns {
            switch column {
            case .amountDue(let value): try await write("UPDATE orders SET amount_due = \(value) WHERE id = \(id)")
            case .expiresAt(let value):
                try await write("UPDATE orders SET expires_at = timestamptz 'epoch' + \(value)::bigint * interval '1 millisecond' WHERE id = \(id)")
            case .email(let value): try await write("UPDATE orders SET email = \(value) WHERE id = \(id)")
            case .phone(let value): try await write("UPDATE orders SET phone = \(value) WHERE id = \(id)")
            case .paymentMethod(let value): try await write("UPDATE orders SET payment_method = \(value) WHERE id = \(id)")
            }
        }
    }

    func deleteOrder(id: String) async throws {
        try await write("DELETE FROM orders WHERE id = \(id)")
    }

    func insertPayment(_ payment: ShopPayment) async throws {
        try await write("""
            INSERT INTO payments(id, order_id, amount, status, provider_ref, method, failure_reason, created_at)
            VALUES (\(payment.id), \(payment.orderID), \(payment.amount), \(payment.status.rawValue), \(payment.providerRef),
                    \(payment.method), \(payment.failureReason), timestamptz 'epoch' + \(payment.createdAt) * interval '1 millisecond')
            """)
    }

    func updatePayment(id: String, status: PaymentStatus, failureReason: String?) async throws {
        try await write("UPDATE payments SET status = \(status.rawValue), failure_reason = \(failureReason) WHERE id = \(id)")
    }

    func insertInstallment(_ installment: ShopInstallment) async throws {
        try await write("""
            INSERT INTO installments(order_id, seq, amount, due_at)
            VALUES (\(installment.orderID), \(installment.seq), \(installment.amount),
                    timestamptz 'epoch' + \(installment.dueAt) * interval '1 millisecond')
            """)
    }

    func insertRefund(_ refund: ShopRefund) async throws {
        try await write("""
            INSERT INTO refunds(id, order_id, amount, status, requested_at)
            VALUES (\(refund.id), \(refund.orderID), \(refund.amount), \(refund.status.rawValue),
                    timestamptz 'epoch' + \(refund.requestedAt) * interval '1 millisecond')
            """)
    }

    func updateRefund(id: String, status: RefundStatus) async throws {
        try await write("UPDATE refunds SET status = \(status.rawValue) WHERE id = \(id)")
    }

    func insertSuppression(channel: String, address: String, reason: String, createdAt: Millis) async throws {
        try await write("""
            INSERT INTO suppressions(channel, address, reason, created_at)
            VALUES (\(channel), \(address), \(reason), timestamptz 'epoch' + \(createdAt) * interval '1 millisecond')
            """)
    }

    func orderStatus(id: String) async throws -> String? {
        for try await (status) in try await shop.query("SELECT status FROM orders WHERE id = \(id)").decode(String?.self) {
            return status
        }
        return nil
    }

    func paymentState(id: String) async throws -> ShopPaymentState? {
        for try await (status, reason) in try await shop.query("SELECT status, failure_reason FROM payments WHERE id = \(id)")
            .decode((String, String?).self) {
            return ShopPaymentState(status: status, failureReason: reason)
        }
        return nil
    }

    func close() async throws {
        for store in stores { try? await store.close() }
        stores = []
        running.cancel()
        _ = await running.value
        _ = try? server.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
    }
}

/// The store conformance suite (issue 10) on PostgreSQL: the same checks as on SQLite, one test each.
@Suite(.sharedPostgresServer) struct PostgresConformanceTests {
    @Test(arguments: StoreConformance.checks.map(\.name))
    func postgres(_ name: String) async throws {
        let server = try #require(SharedPostgresServer.current)
        try await StoreConformance.run(name, on: try PostgresHarness(server: server))
    }
}
