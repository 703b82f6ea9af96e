import Foundation
import Testing
@testable import PaywatchCore

/// `2026-11-26T21:00:00Z` as Millis.
func utc(_ text: String) -> Millis {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    let date = formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)!
    return Millis((date.timeIntervalSince1970 * 1000).rounded())
}

/// 21:00–08:00 on sms and push; orders without a zone are in `zone`.
func quietPolicy(zone: String = "UTC", start: Int = 21 * 60, end: Int = 8 * 60, channels: Set<String> = ["sms", "push"]) -> Policy {
    Policy(unpaidChannels: ["push", "sms", "email"], fixedRecipients: ["ops": "oncall"],
           quietHours: QuietHours(start: start, end: end, channels: channels), defaultTimeZone: zone)
}

/// An order created 10 minutes before `reminderAt`, so its first reminder is due then.
func nightOrder(_ id: String = "N1", zone: String? = nil, reminderAt: Millis) -> OrderRecord {
    OrderRecord(id: id, amountDue: 12_900, createdAt: reminderAt - 10 * minute, email: "alice@example.com",
                phone: "+8613800000000", pushToken: "tok-1", locale: "en", timeZone: zone)
}

@Suite struct QuietHoursTests {
    let planner = Planner(policy: quietPolicy())

    func held(_ at: String, zone: String? = nil, planner: Planner? = nil) -> Millis? {
        let order = nightOrder(zone: zone, reminderAt: utc(at))
        return (planner ?? self.planner).quietUntil(.unpaidReminder, channel: "sms", order: order, at: utc(at))
    }

    @Test func aWindowAcrossMidnightHoldsFromItsStartUntilItsEnd() {
        #expect(held("2026-11-26T20:59:00Z") == nil)
        #expect(held("2026-11-26T20:59:59.999Z") == nil)
        #expect(held("2026-11-26T21:00:00Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-26T23:59:59.999Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-27T00:00:00Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-27T03:00:00Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-27T07:59:00Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-27T07:59:59.999Z") == utc("2026-11-27T08:00:00Z"))
        #expect(held("2026-11-27T08:00:00Z") == nil)
        #expect(held("2026-11-27T12:00:00Z") == nil)
    }

    @Test func aWindowWithinOneDay() {
        let lunch = Planner(policy: quietPolicy(start: 12 * 60, end: 14 * 60 + 30))
        #expect(held("2026-11-26T11:59:00Z", planner: lunch) == nil)
        #expect(held("2026-11-26T12:00:00Z", planner: lunch) == utc("2026-11-26T14:30:00Z"))
        #expect(held("2026-11-26T14:29:00Z", planner: lunch) == utc("2026-11-26T14:30:00Z"))
        #expect(held("2026-11-26T14:30:00Z", planner: lunch) == nil)
        #expect(held("2026-11-26T23:00:00Z", planner: lunch) == nil)
    }

    @Test func theSameInstantIsNightInShanghaiAndMorningInNewYork() {
        // 14:00Z: 22:00 in Shanghai (UTC+8), 09:00 in New York (UTC−5 in November).
        var shanghai = Run(nightOrder("CN", zone: "Asia/Shanghai", reminderAt: utc("2026-11-26T14:00:00Z")), policy: quietPolicy())
        var newYork = Run(nightOrder("US", zone: "America/New_York", reminderAt: utc("2026-11-26T14:00:00Z")), policy: quietPolicy())
        shanghai.at(utc("2026-11-26T13:50:00Z"))
        newYork.at(utc("2026-11-26T13:50:00Z"))
        let cn = shanghai.at(utc("2026-11-26T14:00:00Z"))
        let us = newYork.at(utc("2026-11-26T14:00:00Z"))
        #expect(cn.messages.count == 3 && us.messages.count == 3)
        // Shanghai: sms and push wait for 08:00 local (00:00Z); e-mail is not a quiet channel.
        let cnHeld = Dictionary(uniqueKeysWithValues: cn.messages.map { ($0.channel, $0.notBefore) })
        #expect(cnHeld == ["sms": utc("2026-11-27T00:00:00Z"), "push": utc("2026-11-27T00:00:00Z"), "email": nil])
        #expect(cn.events.map(\.event) == ["quiet_hours"])
        #expect(cn.events.first?.detail == """
            unpaid_reminder step 1 on push,sms waits for the quiet hours to end: held until 2026-11-27 08:00 (Asia/Shanghai), 2026-11-27T00:00:00Z
            """)
        // New York: all at once, nothing on the timeline.
        #expect(us.messages.allSatisfy { $0.notBefore == nil })
        #expect(us.events.isEmpty)
    }

    @Test func ordersWithoutAKnownZoneAreInTheDaemonsZone() {
        let daemonInShanghai = Planner(policy: quietPolicy(zone: "Asia/Shanghai"))
        let at = "2026-11-26T14:00:00Z"  // 22:00 in Shanghai, 14:00 UTC
        let morning = utc("2026-11-27T00:00:00Z")
        #expect(held(at, zone: nil, planner: daemonInShanghai) == morning)
        #expect(held(at, zone: "", planner: daemonInShanghai) == morning)
        #expect(held(at, zone: "Mars/Olympus_Mons", planner: daemonInShanghai) == morning)
        // The order's own zone wins.
        #expect(held(at, zone: "America/New_York", planner: daemonInShanghai) == nil)
        // Without [daemon] time_zone: UTC, where 14:00 is not quiet.
        #expect(held(at, zone: nil) == nil)
        #expect(held(at, zone: "Mars/Olympus_Mons") == nil)
    }

    @Test func localTimeFollowsDaylightSavingTime() {
        let ny = "America/New_York"
        // 2026-03-08: at 02:00 EST the clocks go to 03:00 EDT. 01:00 EST is 06:00Z; 08:00 that
        // morning is EDT, 12:00Z (a fixed −5 h would say 13:00Z).
        #expect(held("2026-03-08T06:00:00Z", zone: ny) == utc("2026-03-08T12:00:00Z"))
        #expect(held("2026-03-08T11:59:00Z", zone: ny) == utc("2026-03-08T12:00:00Z"))
        #expect(held("2026-03-08T12:00:00Z", zone: ny) == nil)
        // That evening 21:00 EDT is 01:00Z.
        #expect(held("2026-03-09T00:59:00Z", zone: ny) == nil)
        #expect(held("2026-03-09T01:00:00Z", zone: ny) == utc("2026-03-09T12:00:00Z"))
        // 2026-11-01: at 02:00 EDT the clocks go back to 01:00 EST. 01:00 EDT is 05:00Z; 08:00
        // that morning is EST, 13:00Z.
        #expect(held("2026-11-01T05:00:00Z", zone: ny) == utc("2026-11-01T13:00:00Z"))
        #expect(held("2026-11-01T12:59:00Z", zone: ny) == utc("2026-11-01T13:00:00Z"))
        #expect(held("2026-11-01T13:00:00Z", zone: ny) == nil)
        // An end the clocks jump over (02:30 on 2026-03-08): the quiet hours end with the jump.
        let early = Planner(policy: quietPolicy(start: 22 * 60, end: 2 * 60 + 30))
        #expect(held("2026-03-08T06:30:00Z", zone: ny, planner: early) == utc("2026-03-08T07:00:00Z"))
        // An end the clocks show twice (01:30 on 2026-11-01): the first one after now.
        let late = Planner(policy: quietPolicy(start: 22 * 60, end: 60 + 30))
        #expect(held("2026-11-01T05:00:00Z", zone: ny, planner: late) == utc("2026-11-01T05:30:00Z"))
        #expect(held("2026-11-01T06:10:00Z", zone: ny, planner: late) == utc("2026-11-01T06:30:00Z"))
    }

    @Test func opsMessagesAreNeverHeld() {
        // Even on a channel the window names (the configuration refuses ops there, the planner too).
        let everything = Planner(policy: quietPolicy(channels: ["sms", "push", "email", "ops"]))
        let order = nightOrder(reminderAt: utc("2026-11-26T23:00:00Z"))
        for kind in NotificationKind.allCases where kind.isOps {
            for channel in ["ops", "sms"] {
                #expect(everything.quietUntil(kind, channel: channel, order: order, at: utc("2026-11-26T23:00:00Z")) == nil)
            }
        }
        #expect(everything.quietUntil(.unpaidReminder, channel: "ops", order: order, at: utc("2026-11-26T23:00:00Z")) == nil)
        // A duplicate payment at night: ops hears at once, the customer's confirmation waits.
        var run = Run(order, payments: [
            PaymentRecord(id: "P1", orderID: "N1", amount: 12_900, status: "succeeded", providerRef: "ch_1", createdAt: utc("2026-11-26T22:55:00Z")),
            PaymentRecord(id: "P2", orderID: "N1", amount: 12_900, status: "succeeded", providerRef: "ch_1", createdAt: utc("2026-11-26T22:56:00Z")),
        ], policy: quietPolicy())
        let plan = run.at(utc("2026-11-26T23:00:00Z"))
        let ops = plan.messages.filter { $0.kind == .duplicatePayment }
        #expect(ops.count == 1 && ops.allSatisfy { $0.notBefore == nil })
        let confirmations = plan.messages.filter { $0.kind == .paymentConfirmed }
        #expect(Set(confirmations.filter { $0.notBefore == utc("2026-11-27T08:00:00Z") }.map(\.channel)) == ["sms", "push"])
        #expect(confirmations.first { $0.channel == "email" }?.notBefore == nil)
    }

    @Test func remindersOnQuietChannelsCollapseHeldSteps() {
        var run = Run(nightOrder(reminderAt: utc("2026-11-26T23:00:00Z")), policy: quietPolicy())
        run.at(utc("2026-11-26T22:50:00Z"))
        let first = run.at(utc("2026-11-26T23:00:00Z"))
        #expect(first.messages.map(\.step) == [1, 1, 1])
        #expect(Set(first.messages.filter(\.collapsesHeld).map(\.channel)) == ["sms", "push"])
        // Step 2 (25 minutes after creation) is decided while step 1 is still held: it is held
        // too, and it collapses step 1 (the store supersedes it).
        let second = run.at(utc("2026-11-26T23:15:00Z"))
        #expect(second.messages.map(\.step) == [2, 2, 2])
        #expect(second.messages.filter { $0.channel != "email" }.allSatisfy { $0.notBefore == utc("2026-11-27T08:00:00Z") && $0.collapsesHeld })
        // A one-off notice never collapses anything.
        let paid = Run(nightOrder(reminderAt: utc("2026-11-26T23:00:00Z")),
                       payments: [PaymentRecord(id: "P1", orderID: "N1", amount: 12_900, status: "succeeded", createdAt: utc("2026-11-26T22:51:00Z"))],
                       policy: quietPolicy())
        var paidRun = paid
        let confirmed = paidRun.at(utc("2026-11-26T23:00:00Z")).messages
        #expect(!confirmed.isEmpty && confirmed.allSatisfy { !$0.collapsesHeld })
    }

    @Test func withoutQuietHoursNothingWaits() {
        var run = Run(nightOrder(zone: "Asia/Shanghai", reminderAt: utc("2026-11-26T14:00:00Z")),
                      policy: Policy(unpaidChannels: ["push", "sms", "email"]))
        run.at(utc("2026-11-26T13:50:00Z"))
        let plan = run.at(utc("2026-11-26T14:00:00Z"))
        #expect(plan.messages.count == 3)
        #expect(plan.messages.allSatisfy { $0.notBefore == nil && !$0.collapsesHeld })
        #expect(plan.events.isEmpty)
    }
}
