import Foundation
import PaywatchTestSupport
import Testing

/// The PostgreSQL server the store tests of issue 10 run against: started by the test itself
/// (initdb + pg_ctl on a free port, as `postgres` when root), answering, and gone when stopped.
@Suite struct PostgresServerTests {
    @Test func aServerOfTheTestsOwnStartsAnswersAndStops() throws {
        let server = try PostgresServer()
        #expect(try server.psql("SELECT 40 + 2").trimmingCharacters(in: .whitespacesAndNewlines) == "42")
        #expect(try server.psql("SHOW server_version_num").trimmingCharacters(in: .whitespacesAndNewlines).count == 6)
        #expect(try server.psql("SELECT current_user").trimmingCharacters(in: .whitespacesAndNewlines) == "paywatch")
        // Listening on loopback only, at the port it says.
        #expect(try server.psql("SHOW listen_addresses").trimmingCharacters(in: .whitespacesAndNewlines) == "127.0.0.1")
        #expect(try server.psql("SHOW port").trimmingCharacters(in: .whitespacesAndNewlines) == "\(server.port)")
        let folder = server.directory.path
        server.stop()
        #expect(!FileManager.default.fileExists(atPath: folder))
        // Stopped: nothing answers on that port any more.
        let again = Result { try server.psql("SELECT 1") }
        #expect((try? again.get()) == nil)
    }

    /// A port that is taken: the start fails, and the error carries the server's own words (a
    /// server on a port of its choosing takes another one instead).
    @Test func aTakenPortIsSaidWithTheServersLog() throws {
        let held = try listenOnLoopback(port: 0) { TakenPort(description: "\($0)") }
        defer { close(held.fd) }
        let result = Result { try PostgresServer(port: held.port) }
        guard case .failure(let error) = result else {
            Issue.record("a server started on a taken port")
            return
        }
        #expect("\(error)".contains("could not bind"))
    }
}

private struct TakenPort: Error {
    let description: String
}
