import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// The real binary against what a hostile or careless shop does: rows that overflowed or looped
    /// the daemon, a gateway that echoes the number, signals, a database deleted under it, a schema of
    /// its own.
    @Suite(.serialized) struct HardeningEndToEndTests {
        func log(_ h: Harness) -> String {
            (try? String(contentsOfFile: h.stderrPath, encoding: .utf8)) ?? ""
        }

        @Test func hostileRowsAreQuarantinedOnceWhileAGoodOrderIsServed() throws {
            let h = try Harness { EndToEndTests.config($0, maxAttempts: 2) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            h.gateway.setResponder { request in
                // A gateway that echoes the number it refuses.
                request.bodyString.contains("\"order_id\":\"ECHO\"") && request.path == "/sms"
                    ? FakeGateway.Response(status: 400, body: #"{"error":"+14155552671 is not a mobile number (14155552671)"}"#)
                    : FakeGateway.Response(status: 200)
            }
            let created = Harness.nowMs() - 1_500
            let hostile = [
                "CAST(X'41FF42' AS TEXT)", "X'FF00'", "'CR\r\nX-Injected: yes'", "'MAXPAY'", "'MAXTIME'", "'MINTIME'", "'MAXEXP'",
                "'ZERO'", "'" + String(repeating: "L", count: 300) + "'",
            ]
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('GOOD', 100, ?, '+8613800000000')",
                               arguments: [created])
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('ECHO', 100, ?, '+14155552671')",
                               arguments: [created])
                for id in hostile {
                    let (due, createdAt, expires, zone): (String, String, String, String) = switch id {
                    case "'MAXTIME'": ("100", "9223372036854775807", "NULL", "NULL")
                    case "'MINTIME'": ("100", "-9223372036854775808", "NULL", "NULL")
                    case "'MAXEXP'": ("100", "\(created)", "9223372036854775807", "'Asia/Shanghai'")
                    case "'ZERO'": ("0", "\(created)", "NULL", "NULL")
                    default: ("100", "\(created)", "NULL", "NULL")
                    }
                    try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, expires_at, time_zone) VALUES (\(id), \(due), \(createdAt), \(expires), \(zone))")
                }
                for payment in ["P1", "P2"] {
                    try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES (?, 'MAXPAY', 9223372036854775807, 'succeeded', ?)",
                                   arguments: [payment, created])
                }
            }
            try h.start()
            #expect(h.waitUntilStarted())
            // The good order's first reminder goes out on time; ECHO's is dead, escalated to ops.
            #expect(Harness.eventually(10) {
                h.gateway.requests().contains { $0.bodyString.contains("\"order_id\":\"GOOD\"") }
                    && h.gateway.requests().contains { $0.path == "/ops" }
            })
            let pid = try #require(h.process?.processIdentifier)
            let cpuBefore = try EndToEndTests().cpuSeconds(pid)
            Thread.sleep(forTimeInterval: 2)
            let cpuAfter = try EndToEndTests().cpuSeconds(pid)
            #expect(h.process?.isRunning == true)
            // No hot loop: idle between polls, not 1.2 cores.
            #expect(cpuAfter - cpuBefore < 0.5)

            let text = log(h)
            let lines = text.split(separator: "\n")
            // Each hostile order quarantined and logged exactly once.
            #expect(lines.filter { $0.contains("order quarantined") }.count == hostile.count)
            let events = try h.shop().read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM pw_events WHERE event = 'quarantined'") }
            #expect(events == hostile.count)
            // Nothing forged a line or leaked the number.
            #expect(!lines.contains { $0.hasPrefix("X-Injected") })
            #expect(!text.contains("4155552671"))
            let ops = h.gateway.requests().filter { $0.path == "/ops" }.map(\.bodyString).joined()
            #expect(ops.contains("+1*******2671"))
            #expect(!ops.contains("4155552671"))

            // Inspection works on every one of them.
            let listed = try h.run(["orders", "list", "--status", "quarantined", "--config", h.configPath])
            #expect(listed.code == 0)
            #expect(listed.out.split(separator: "\n").count == hostile.count + 1)
            for id in ["MAXPAY", "MAXTIME", "MINTIME", "MAXEXP", "CR\r\nX-Injected: yes"] {
                let show = try h.run(["orders", "show", id, "--config", h.configPath])
                #expect(show.code == 0)
                #expect(show.out.contains("QUARANTINED"))
            }
            let echo = try h.run(["orders", "show", "ECHO", "--config", h.configPath])
            #expect(!echo.out.contains("4155552671"))
            #expect(h.stop() == 0)
        }

        @Test func aClosedStderrPipeAndSIGHUPDoNotEndTheDaemon() throws {
            let h = try Harness { EndToEndTests.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Harness.binary)
            process.arguments = ["run", "--config", h.configPath]
            let pipe = Pipe()
            process.standardError = pipe
            process.standardOutput = pipe
            try process.run()
            // Whoever read its output went away (`paywatch run 2>&1 | head -1`, a dead collector).
            try pipe.fileHandleForReading.close()
            h.process = process
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('PIPE', 100, ?, '+8613800000000')",
                               arguments: [Harness.nowMs() - 1_500])
            }
            // It goes on working (and logging into the void).
            #expect(Harness.eventually(10) { h.gateway.requestCount >= 1 })
            #expect(process.isRunning)
            kill(process.processIdentifier, SIGHUP)
            Thread.sleep(forTimeInterval: 0.5)
            #expect(process.isRunning)
            #expect(h.stop() == 0)
            #expect(process.terminationReason == .exit)
        }

        @Test func aDeletedDatabaseEndsTheRunSoTheSupervisorRestartsIt() throws {
            let h = try Harness { EndToEndTests.config($0) }
            try h.start()
            #expect(h.waitUntilStarted())
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: h.dbPath + suffix)
            }
            let process = try #require(h.process)
            #expect(Harness.eventually(10) { !process.isRunning })
            process.waitUntilExit()
            #expect(process.terminationStatus == 75)
            #expect(log(h).contains("was deleted while paywatch was running"))
            h.process = nil
            // Started again, it serves the new (empty) database.
            try h.start()
            #expect(h.waitUntilStarted())
            #expect(h.stop() == 0)
        }

        @Test func migrateAdaptsAShopSchemaAndRefusesOneItCannotUse() throws {
            let h = try Harness { EndToEndTests.config($0) }
            try h.shop().write { db in
                try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, amount_due INTEGER NOT NULL, created_at INTEGER NOT NULL, phone TEXT)")
                try db.execute(sql: "CREATE TABLE payments(id TEXT, order_id TEXT, amount INTEGER, status TEXT, created_at INTEGER)")
            }
            let adapted = try h.run(["migrate", "--config", h.configPath])
            #expect(adapted.code == 0)
            #expect(adapted.out.contains("added column orders.push_token"))
            #expect(adapted.out.contains("added a unique index on payments(id)"))
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES ('SHAPE', 100, ?, '+8613800000000')",
                               arguments: [Harness.nowMs() - 1_500])
            }
            #expect(try h.run(["run", "--once", "--config", h.configPath]).code == 0)
            #expect(h.gateway.requestCount == 1)

            let other = try Harness { EndToEndTests.config($0) }
            try other.shop().write { db in
                try db.execute(sql: "CREATE TABLE orders(id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
            }
            for command in ["migrate", "run"] {
                let refused = try other.run([command, "--config", other.configPath])
                #expect(refused.code == 78)
                #expect(refused.err.contains("orders lacks the required columns amount_due, created_at"))
            }
        }
    }
}
