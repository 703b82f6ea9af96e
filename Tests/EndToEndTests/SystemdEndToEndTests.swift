import Foundation
import GRDB
import PaywatchTestSupport
import Testing

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`: every message the daemon sends,
/// with the time it arrived.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [(at: Date, text: String)] = []

    init() throws {
        path = "/tmp/pw-notify-\(UUID().uuidString.prefix(8)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard fd >= 0, bound == 0 else { throw FakeGatewayError(description: "cannot bind \(path)") }
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                lock.withLock { received.append((Date(), text)) }
            }
        }
        thread.start()
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    var messages: [(at: Date, text: String)] { lock.withLock { received } }

    /// The index of the first message holding the assignment `line` (e.g. `READY=1`) after `index`.
    func first(_ line: String, after index: Int = -1) -> Int? {
        messages.indices.first { $0 > index && messages[$0].text.split(separator: "\n").contains(Substring(line)) }
    }
}

/// `GET path` on 127.0.0.1:`port`; the status line's code and the body.
func httpGet(port: UInt16, path: String) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let head = text.range(of: "\r\n\r\n") else { return nil }
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    return (status, String(text[head.upperBound...]))
}

/// A TCP port nobody listens on right now.
func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

extension EndToEnd {
    /// The daemon as systemd runs it: the notify protocol, reload on SIGHUP, `paywatch status`, metrics.
    @Suite(.serialized) struct SystemdEndToEndTests {
        static func config(_ base: String, reminders: String = "[\"50s\"]", extra: String = "") -> String {
            """
            [daemon]
            poll_interval = "200ms"
            \(extra)

            [delivery]
            retry_base = "100ms"

            [unpaid]
            hold = "2h"
            reminders = \(reminders)
            channels = ["sms"]

            \(Harness.smsAndOps(base))
            """
        }

        func insertOrder(_ h: Harness, id: String, createdAt: Int64 = Harness.nowMs()) throws {
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone) VALUES (?, 10000, ?, '+8613800000000')",
                               arguments: [id, createdAt])
            }
        }

        /// Migrates, inserts `order` (created now), starts the daemon with `notify` as its
        /// `NOTIFY_SOCKET`, and waits for `READY=1`.
        func startReady(_ h: Harness, notify: NotifySocket, order: String) throws {
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try insertOrder(h, id: order)
            try h.start(environment: ["NOTIFY_SOCKET": notify.path])
            #expect(Harness.eventually(10) { notify.first("READY=1") != nil })
        }

        func reminders(_ h: Harness, order: String) -> Int {
            h.gateway.requests().filter { $0.path == "/sms" && $0.bodyString.contains("\"order_id\":\"\(order)\"") }.count
        }

        @Test func readyStatusWatchdogAndStoppingReachTheNotifySocketInOrder() throws {
            // max_lag 2s: STATUS= (and the heartbeat) every second.
            let h = try Harness { Self.config($0, extra: "max_lag = \"2s\"") }
            let notify = try NotifySocket()
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try insertOrder(h, id: "N1")
            // A 400 ms watchdog: pings every 200 ms.
            try h.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
            #expect(Harness.eventually(10) { notify.first("READY=1") != nil })
            Thread.sleep(forTimeInterval: 2)
            #expect(h.stop() == 0)
            let messages = notify.messages
            guard let ready = notify.first("READY=1"), let stopping = notify.first("STOPPING=1") else {
                Issue.record("READY=1 or STOPPING=1 missing: \(messages.map(\.text))")
                return
            }
            #expect(ready < stopping)
            // Ready after the first sweep, with live counters.
            #expect(messages[ready].text.contains("STATUS=open orders 1, backlog 0, lag 0s"))
            // Pings at half the interval while the loops are healthy: about 10 in 2 s.
            let pings = messages.filter { $0.text == "WATCHDOG=1" }.map(\.at)
            #expect(pings.count >= 7 && pings.count <= 16, "pings: \(pings.count)")
            let gaps = zip(pings.dropFirst(), pings).map { $0.timeIntervalSince($1) }.sorted()
            if !gaps.isEmpty {
                let median = gaps[gaps.count / 2]
                #expect(median > 0.15 && median < 0.3, "median gap \(median)")
            }
            // STATUS= updates follow the passes.
            #expect(messages.filter { $0.text.hasPrefix("STATUS=open orders") }.count >= 1)
            // Nothing after STOPPING=1 but (at most) watchdog pings while draining.
            #expect(messages[(stopping + 1)...].allSatisfy { $0.text == "WATCHDOG=1" })
        }

        /// Without NOTIFY_SOCKET (what the notifier sends then cannot be observed; it is a no-op by
        /// construction) the daemon starts, runs and stops as before.
        @Test func withoutNotifySocketTheDaemonRunsAndStopsAsBefore() throws {
            let h = try Harness { Self.config($0) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try h.start()
            #expect(h.waitUntilStarted())
            Thread.sleep(forTimeInterval: 0.5)
            #expect(h.stop() == 0)
            #expect(h.log.contains("paywatch stopped"))
        }

        @Test func sighupWithAGoodConfigurationReplansOpenOrdersAtOnce() throws {
            let h = try Harness { Self.config($0, reminders: "[\"1h\"]") }
            let notify = try NotifySocket()
            try startReady(h, notify: notify, order: "R1")
            Thread.sleep(forTimeInterval: 0.5)
            #expect(reminders(h, order: "R1") == 0)
            // The schedule shortened from 1 h to 1 s: the reminder is due now.
            try String(contentsOfFile: h.configPath, encoding: .utf8)
                .replacingOccurrences(of: "reminders = [\"1h\"]", with: "reminders = [\"1s\"]")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            kill(h.process!.processIdentifier, SIGHUP)
            #expect(Harness.eventually(10) { reminders(h, order: "R1") == 1 })
            #expect(h.process?.isRunning == true)
            #expect(h.stop() == 0)
            #expect(h.log.contains("configuration reloaded"))
            guard let reloading = notify.first("RELOADING=1") else {
                Issue.record("no RELOADING=1: \(notify.messages.map(\.text))")
                return
            }
            #expect(notify.messages[reloading].text.contains("MONOTONIC_USEC="))
            #expect(notify.first("READY=1", after: reloading) != nil)
            #expect(reminders(h, order: "R1") == 1)
        }

        @Test func sighupWithABadConfigurationKeepsTheRunningOne() throws {
            let h = try Harness { Self.config($0, reminders: "[\"3s\"]") }
            let notify = try NotifySocket()
            try startReady(h, notify: notify, order: "B1")
            let good = try String(contentsOfFile: h.configPath, encoding: .utf8)
            try good.replacingOccurrences(of: "poll_interval = \"200ms\"", with: "poll_interval = \"fast\"")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            kill(h.process!.processIdentifier, SIGHUP)
            #expect(Harness.eventually(5) { h.log.contains("configuration reload failed") })
            // The file, the line and the key; the service goes on under the old configuration.
            #expect(h.log.contains("paywatch.toml:4: [daemon] poll_interval"))
            #expect(h.process?.isRunning == true)
            #expect(Harness.eventually(10) { reminders(h, order: "B1") == 1 })
            if let reloading = notify.first("RELOADING=1"), let ready = notify.first("READY=1", after: reloading) {
                #expect(notify.messages[ready].text.contains("STATUS=reload failed"))
            } else {
                Issue.record("RELOADING=1 then READY=1 expected: \(notify.messages.map(\.text))")
            }
            #expect(h.stop() == 0)
        }

        @Test func aSecondSighupDuringAReloadIsReadOnceTheFirstIsDone() throws {
            let h = try Harness { Self.config($0, reminders: "[\"1h\"]") }
            // Each send takes 1.5 s: the first reload waits for the transfer in flight to finish.
            h.gateway.setResponder { _ in .init(status: 200, delayMs: 1_500) }
            let notify = try NotifySocket()
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try insertOrder(h, id: "BUSY", createdAt: Harness.nowMs() - 3_700_000)
            try insertOrder(h, id: "LATE")
            try h.start(environment: ["NOTIFY_SOCKET": notify.path])
            #expect(Harness.eventually(10) { h.log.contains("message decided") })
            let original = try String(contentsOfFile: h.configPath, encoding: .utf8)
            // First edit: nothing relevant to LATE; SIGHUP while BUSY's reminder is in flight.
            try original.replacingOccurrences(of: "hold = \"2h\"", with: "hold = \"3h\"")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            let pid = h.process!.processIdentifier
            kill(pid, SIGHUP)
            Thread.sleep(forTimeInterval: 0.2)
            // Second edit, during the drain: LATE's reminder becomes due at once.
            try original.replacingOccurrences(of: "hold = \"2h\"", with: "hold = \"3h\"")
                .replacingOccurrences(of: "reminders = [\"1h\"]", with: "reminders = [\"1s\"]")
                .write(toFile: h.configPath, atomically: true, encoding: .utf8)
            kill(pid, SIGHUP)
            #expect(Harness.eventually(15) { reminders(h, order: "LATE") == 1 })
            #expect(h.log.contains("SIGHUP during a reload"))
            #expect(h.stop() == 0)
        }

        @Test func statusExitsZeroForAHealthyDaemonAndOneForAStalledOrStoppedOne() throws {
            let h = try Harness { Self.config($0, extra: "max_lag = \"1s\"") }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            // No database yet: not OK (1), not a configuration error (78).
            let missing = try Harness { Self.config($0) }
            #expect(try missing.run(["status", "--config", missing.configPath]).code == 1)
            let never = try h.run(["status", "--config", h.configPath])
            #expect(never.code == 1)
            #expect(never.out.contains("no daemon has run"))
            try insertOrder(h, id: "S1")
            try h.start()
            #expect(h.waitUntilStarted())
            #expect(Harness.eventually(5) { (try? h.run(["status", "--config", h.configPath]).code) == 0 })
            let healthy = try h.run(["status", "--config", h.configPath])
            #expect(healthy.out.hasPrefix("OK: paywatch keeps up"))
            #expect(healthy.out.contains("Open orders: 1"))
            let json = try h.run(["status", "--json", "--config", h.configPath])
            #expect(json.code == 0)
            #expect(json.out.contains("\"healthy\" : true"))

            // Stalled: the process is stopped (SIGSTOP), so no sweep happens for longer than max_lag.
            let pid = h.process!.processIdentifier
            kill(pid, SIGSTOP)
            Thread.sleep(forTimeInterval: 1.6)
            let stalled = try h.run(["status", "--config", h.configPath])
            kill(pid, SIGCONT)
            #expect(stalled.code == 1)
            #expect(stalled.out.contains("NOT OK: the last sweep was"))
            #expect(Harness.eventually(5) { (try? h.run(["status", "--config", h.configPath]).code) == 0 })

            #expect(h.stop() == 0)
            let stopped = try h.run(["status", "--config", h.configPath])
            #expect(stopped.code == 1)
            #expect(stopped.out.contains("the daemon stopped at"))
        }

        @Test func statusExitsOneWhenAMessageWaitsLongerThanMaxLag() throws {
            let h = try Harness { Self.config($0, extra: "max_lag = \"1s\"") }
            // The gateway fails every send: the reminder stays due, retried, never delivered.
            h.gateway.setResponder { _ in .init(status: 503) }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try insertOrder(h, id: "L1", createdAt: Harness.nowMs() - 55_000)
            try h.start()
            #expect(Harness.eventually(5) { h.gateway.requests().contains { $0.path == "/sms" } })
            #expect(Harness.eventually(10) {
                guard let result = try? h.run(["status", "--config", h.configPath]) else { return false }
                return result.code == 1 && result.out.contains("an action has been due for")
            })
            #expect(Harness.eventually(10) { h.log.contains("paywatch is behind") })
            #expect(h.stop() == 0)
        }

        @Test func metricsAreServedOnLoopback() throws {
            let port = freePort()
            let h = try Harness {
                Self.config($0) + "\n\n[metrics]\nlisten = \"127.0.0.1:\(port)\"\n"
            }
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            try insertOrder(h, id: "M1", createdAt: Harness.nowMs() - 55_000)
            try h.start()
            #expect(try h.waitUntilAllDelivered(1))
            var text = ""
            #expect(Harness.eventually(5) {
                text = httpGet(port: port, path: "/metrics")?.body ?? ""
                return text.contains("paywatch_messages_total")
            })
            #expect(text.contains("paywatch_messages_total{kind=\"unpaid_reminder\",channel=\"sms\",outcome=\"delivered\"} 1"))
            #expect(text.contains("paywatch_transitions_total{from=\"new\",to=\"unpaid\"} 1"))
            #expect(text.contains("paywatch_sweep_duration_seconds_count"))
            #expect(text.contains("paywatch_lag_seconds"))
            #expect(text.contains("paywatch_outbox_messages{state=\"pending\"}"))
            #expect(httpGet(port: port, path: "/other")?.status == 404)
            #expect(h.stop() == 0)
            #expect(httpGet(port: port, path: "/metrics") == nil)
        }
    }
}
