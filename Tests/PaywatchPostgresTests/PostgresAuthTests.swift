import Foundation
import PaywatchCore
import PaywatchPostgres
import PaywatchStore
import PaywatchTestSupport
import Testing

/// Logging in with a password (scram-sha-256): the right one works; a wrong or missing one is a
/// configuration error (the daemon exits 78 instead of retrying forever), and no message shows it.
@Suite(.serialized) struct PostgresAuthTests {
    static let password = "pwsecret-Zq7!x:y@z"

    func store(_ server: PostgresServer, password: String?) throws -> PostgresOrderStore {
        try PostgresOrderStore(settings: PostgresStoreSettings(
            endpoint: .tcp(host: "127.0.0.1", port: server.port), username: "paywatch", password: password, database: "postgres",
            tls: .disable, clock: .injected))
    }

    func migrateError(_ store: PostgresOrderStore) async -> StoreError? {
        do {
            try await store.migrate()
            return nil
        } catch let error as StoreError {
            return error
        } catch {
            return StoreError(description: "not a StoreError: \(error)")
        }
    }

    @Test func theRightPasswordWorksAWrongOneIsAConfigurationError() async throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try server.requirePassword(Self.password)
        let good = try store(server, password: Self.password)
        #expect(await migrateError(good) == nil)
        try await good.close()

        let wrong = try store(server, password: "pwsecret-wrong")
        let refused = try #require(await migrateError(wrong))
        #expect(refused.isConfiguration)
        #expect(refused.description.contains("refused the login"))
        #expect(!refused.description.contains("pwsecret"))
        try await wrong.close()

        let none = try store(server, password: nil)
        let missing = try #require(await migrateError(none))
        #expect(missing.isConfiguration)
        #expect(missing.description.contains("asks for a password"))
        try await none.close()
    }
}
