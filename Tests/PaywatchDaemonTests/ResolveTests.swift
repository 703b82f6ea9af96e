import Foundation
import GRDB
@testable import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// Alerts that clear are resolved: PagerDuty gets `resolve` with the dedup_key of its trigger.
@Suite(.serialized) struct ResolveTests {
    static let routingKey = "R0123pwsecret0123456789abcdef0123"

    @Test func aStalledPaymentThatSucceedsResolvesItsPagerDutyIncident() async throws {
        let pagerDuty = try FakeGateway()
        defer { pagerDuty.stop() }
        pagerDuty.setResponder { _ in .init(status: 202, body: #"{"status":"success","message":"Event processed"}"#) }
        let daemon = try await InProcessDaemon(providers: ["ops": PagerDutyProvider(baseURL: pagerDuty.baseURL, routingKey: Self.routingKey)]) {
            PaywatchServiceTests.config($0, extra: "[paying]\nstall_after = \"15m\"\nescalations = 1\n")
        }
        let now = daemon.clock.now()
        try await daemon.shop().write { db in
            for id in ["S1", "S2"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (?, 100, ?)", arguments: [id, now - 20 * 60_000])
                try db.execute(sql: "INSERT INTO payments(id, order_id, amount, status, created_at) VALUES (?, ?, 100, 'pending', ?)",
                               arguments: ["P-" + id, id, now - 16 * 60_000])
            }
        }
        daemon.run()
        func events() -> [(String, String)] {
            pagerDuty.requests().map { request in
                let body = (try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any]) ?? [:]
                return (body["event_action"] as? String ?? "?", body["dedup_key"] as? String ?? "?")
            }
        }
        #expect(await InProcessDaemon.eventually(10) { events().count == 2 })
        #expect(Set(events().map { "\($0.0) \($0.1)" }) == ["trigger paywatch:S1:paying_stalled", "trigger paywatch:S2:paying_stalled"])
        // S1's payment arrives; S2's is still pending.
        try await daemon.shop().write { db in
            try db.execute(sql: "UPDATE payments SET status = 'succeeded' WHERE id = 'P-S1'")
        }
        daemon.clock.advance(by: 5_000)
        #expect(await InProcessDaemon.eventually(10) { events().count == 3 })
        daemon.clock.advance(by: 60_000)
        try await Task.sleep(for: .milliseconds(300))
        try await daemon.stop()
        #expect(events().count == 3)
        #expect(events().last.map { "\($0.0) \($0.1)" } == "resolve paywatch:S1:paying_stalled")
        let timeline = try await daemon.shop().read {
            try String.fetchAll($0, sql: "SELECT detail FROM pw_events WHERE order_id = 'S1' AND event = 'situation_resolved'")
        }
        #expect(timeline == ["paying_stalled: no stalled payment attempt is pending any more (order paid)"])
    }

    /// A plan that resolves an alert ops never got writes nothing (the stalled payment the provider
    /// answered for); one whose alert was written is kept.
    @Test func aResolutionIsWrittenOnlyWhenItsAlertWas() async throws {
        let daemon = try await InProcessDaemon { PaywatchServiceTests.config($0) }
        let now = daemon.clock.now()
        try await daemon.shop().write { db in
            for id in ["ALERTED", "QUIET"] {
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at) VALUES (?, 100, ?)", arguments: [id, now])
            }
        }
        @Sendable func resolution(_ orderID: String) -> OutgoingMessage {
            var message = OutgoingMessage(idempotencyKey: "pw1:\(orderID):situation_resolved:100001:ops", orderID: orderID,
                                          kind: .situationResolved, step: 100_001, channel: "ops", recipient: "oncall", payload: "{}")
            message.resolves = .payingStalled
            return message
        }
        let alert = OutgoingMessage(idempotencyKey: "pw1:ALERTED:paying_stalled:1:ops", orderID: "ALERTED", kind: .payingStalled,
                                    step: 1, channel: "ops", recipient: "oncall", payload: "{}")
        _ = try await daemon.store.sweep(now: now, limit: 10) { snapshot in
            Plan(orderID: snapshot.orderID, previousStatus: nil, status: .unpaid, amountPaid: 0,
                 messages: snapshot.orderID == "ALERTED" ? [alert] : [], events: [], marks: [:], nextDueAt: now + 1)
        }
        _ = try await daemon.store.sweep(now: now + 1, limit: 10) { snapshot in
            Plan(orderID: snapshot.orderID, previousStatus: .unpaid, status: .unpaid, amountPaid: 0,
                 messages: [resolution(snapshot.orderID)], events: [], marks: [:], nextDueAt: nil)
        }
        let kinds = try await daemon.shop().read {
            try String.fetchAll($0, sql: "SELECT order_id || ' ' || kind FROM pw_outbox ORDER BY id")
        }
        #expect(kinds == ["ALERTED paying_stalled", "ALERTED situation_resolved"])
    }
}
