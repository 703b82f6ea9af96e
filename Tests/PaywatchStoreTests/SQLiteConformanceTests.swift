import Foundation
import GRDB
import PaywatchCore
import PaywatchStore
import PaywatchStoreConformance
import Testing

/// The conformance suite's backend for SQLite: a fresh file in a temp folder per check, a
/// `SQLiteOrderStore` per `makeStore` (all on that file), and the shop's rows written through a
/// GRDB connection of their own, as a shop's application would.
actor SQLiteHarness: ConformanceHarness {
    let directory: URL
    let path: String
    private var stores: [SQLiteOrderStore] = []
    private var queue: DatabaseQueue?

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-conformance-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("paywatch.db").path
    }

    func makeStore(leaseOwner: String) async throws -> any OrderStore {
        let store = try SQLiteOrderStore(path: path, leaseOwner: leaseOwner)
        stores.append(store)
        try await store.migrate()
        return store
    }

    /// The shop's own connection, opened at its first write (after the first store created the tables).
    private func shop() throws -> DatabaseQueue {
        if let queue { return queue }
        var config = Configuration()
        config.busyMode = .timeout(5)
        let opened = try DatabaseQueue(path: path, configuration: config)
        queue = opened
        return opened
    }

    private func write(_ sql: String, _ arguments: StatementArguments) async throws {
        try await shop().write { try $0.execute(sql: sql, arguments: arguments) }
    }

    func insertOrder(_ order: ShopOrder) async throws {
        try await write("""
            INSERT INTO orders(id, amount_due, currency, created_at, expires_at, email, phone, push_token, locale, time_zone, pay_url,
                               customer_name, payment_method)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [order.id, order.amountDue, order.currency, order.createdAt, order.expiresAt, order.email, order.phone, order.pushToken,
                  order.locale, order.timeZone, order.payURL, order.customerName, order.paymentMethod])
    }

    func updateOrder(id: String, _ columns: [ShopOrderColumn]) async throws {
        for column in columns {
            switch column {
            case .amountDue(let value): try await write("UPDATE orders SET amount_due = ? WHERE id = ?", [value, id])
            case .expiresAt(let value): try await write("UPDATE orders SET expires_at = ? WHERE id = ?", [value, id])
            case .email(let value): try await write("UPDATE orders SET email = ? WHERE id = ?", [value, id])
            case .phone(let value): try await write("UPDATE orders SET phone = ? WHERE id = ?", [value, id])
            case .paymentMethod(let value): try await write("UPDATE orders SET payment_method = ? WHERE id = ?", [value, id])
            }
        }
    }

    func deleteOrder(id: String) async throws {
        try await write("DELETE FROM orders WHERE id = ?", [id])
    }

    func insertPayment(_ payment: ShopPayment) async throws {
        try await write("""
            INSERT INTO payments(id, order_id, amount, status, provider_ref, method, failure_reason, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, [payment.id, payment.orderID, payment.amount, payment.status.rawValue, payment.providerRef, payment.method,
                  payment.failureReason, payment.createdAt])
    }

    func updatePayment(id: String, status: PaymentStatus, failureReason: String?) async throws {
        try await write("UPDATE payments SET status = ?, failure_reason = ? WHERE id = ?", [status.rawValue, failureReason, id])
    }

    func insertInstallment(_ installment: ShopInstallment) async throws {
        try await write("INSERT INTO installments(order_id, seq, amount, due_at) VALUES (?, ?, ?, ?)",
                        [installment.orderID, installment.seq, installment.amount, installment.dueAt])
    }

    func insertRefund(_ refund: ShopRefund) async throws {
        try await write("INSERT INTO refunds(id, order_id, amount, status, requested_at) VALUES (?, ?, ?, ?, ?)",
                        [refund.id, refund.orderID, refund.amount, refund.status.rawValue, refund.requestedAt])
    }

    func updateRefund(id: String, status: RefundStatus) async throws {
        try await write("UPDATE refunds SET status = ? WHERE id = ?", [status.rawValue, id])
    }

    func insertSuppression(channel: String, address: String, reason: String, createdAt: Millis) async throws {
        try await write("INSERT INTO suppressions(channel, address, reason, created_at) VALUES (?, ?, ?, ?)",
                        [channel, address, reason, createdAt])
    }

    func orderStatus(id: String) async throws -> String? {
        try await shop().read { try String.fetchOne($0, sql: "SELECT status FROM orders WHERE id = ?", arguments: [id]) }
    }

    func paymentState(id: String) async throws -> ShopPaymentState? {
        try await shop().read { db in
            try Row.fetchOne(db, sql: "SELECT status, failure_reason FROM payments WHERE id = ?", arguments: [id]).map {
                ShopPaymentState(status: $0["status"], failureReason: $0["failure_reason"])
            }
        }
    }

    func close() async throws {
        for store in stores { try? await store.close() }
        stores = []
        try queue?.close()
        queue = nil
        try FileManager.default.removeItem(at: directory)
    }
}

/// The store conformance suite (issue 10) on SQLite: one test per check.
@Suite struct SQLiteConformanceTests {
    @Test(arguments: StoreConformance.checks.map(\.name))
    func sqlite(_ name: String) async throws {
        try await StoreConformance.run(name, on: SQLiteHarness())
    }

    @Test func checkNamesAreUniqueAndFound() {
        let names = StoreConformance.checks.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(names.allSatisfy { StoreConformance.check(named: $0)?.name == $0 })
        #expect(StoreConformance.check(named: "no such check") == nil)
    }
}
