import PaywatchCore
import PaywatchDelivery
import Testing

/// Lease renewal (issue 10, item 3): which held messages are renewed when, what a lost lease does,
/// and that nothing held means no renewal and no timer. Injected time only.
extension DeliveryStateMachineTests {
    /// A 30 s lease (renewed from 10 s of age on), one slot, one lane, and a poll far away so that
    /// the deadlines seen are the renewal's.
    static func renewing(maxQueueWaitMs: Millis = 60_000, finishWhenIdle: Bool = false) -> Machine {
        Machine(configuration: .init(
            concurrency: 1, knownLanes: ["sms"], recordGroup: 4, leaseMs: 30_000, maxQueueWaitMs: maxQueueWaitMs,
            pollIntervalMs: 60_000, storeRetryMs: 1_000, finishWhenIdle: finishWhenIdle))
    }

    func renewal(_ actions: [Machine.Action]) -> (ids: [Int64], until: Millis)? {
        actions.lazy.compactMap { if case .renew(let ids, let until) = $0 { return (ids, until) } else { return nil } }.first
    }

    func lost(_ actions: [Machine.Action]) -> (queued: [Int64], inFlight: [Int64])? {
        actions.lazy.compactMap {
            if case .leasesLost(let queued, let inFlight) = $0 { return (queued.map(\.id), inFlight) } else { return nil }
        }.first
    }

    @Test func heldLeasesAreRenewedEveryThirdOfALeaseInOneCallAndNeverWhenNothingIsHeld() throws {
        var m = Self.renewing()
        #expect(m.configuration.renewEveryMs == 10_000)
        let started = m.start(now: 0)
        #expect(renewal(started) == nil)
        #expect(sleep(started) == 60_000)  // nothing held: the poll only
        // Three claimed: one in flight, two queued. The first renewal is due when they are 10 s old.
        let claimed = m.stored(.init(works: Self.works("sms", 1...3)), now: 0)
        #expect(sends(claimed) == [1])
        #expect(renewal(claimed) == nil)
        #expect(sleep(claimed) == 10_000)
        #expect(renewal(m.timer(now: 9_999)) == nil)
        let first = m.timer(now: 10_000)
        let renew = try #require(renewal(first))
        #expect(renew.ids == [1, 2, 3] && renew.until == 40_000)
        #expect(sleep(first) == 60_000)  // no second renewal while one runs
        #expect(renewal(m.timer(now: 10_001)) == nil)
        // Renewed: the next one when the oldest lease is 10 s old again.
        #expect(sleep(m.renewed(lost: [], now: 10_005)) == 20_000)

        // A message handed over at 16 s is young at 20 s: left for the next renewal.
        _ = m.handedOver(Self.works("sms", 4...4), now: 16_000)
        let second = try #require(renewal(m.timer(now: 20_000)))
        #expect(second.ids == [1, 2, 3] && second.until == 50_000)
        #expect(sleep(m.renewed(lost: [], now: 20_001)) == 26_000)
        // At 26 s every lease at least 5 s old goes in the same call, the young one's included.
        #expect(try #require(renewal(m.timer(now: 26_000))).ids == [1, 2, 3, 4])
        _ = m.renewed(lost: [], now: 26_001)

        // Everything is sent and recorded: nothing held, no renewal and no timer for one.
        var inFlight: Int64? = 1
        var now: Millis = 27_000
        while let id = inFlight {
            let done = m.completed(id: id, record: id, now: now)
            #expect(renewal(done) == nil)
            inFlight = sends(done).first
            if store(done) != nil { _ = m.stored(.init(works: []), now: now + 1) }
            now += 10
        }
        if m.uncommittedCount > 0, let op = store(m.timer(now: now)) {
            #expect(!op.records.isEmpty)
            _ = m.stored(.init(works: []), now: now + 1)
        }
        #expect(m.queuedCount == 0 && m.inFlightCount == 0 && m.uncommittedCount == 0)
        let idle = m.timer(now: 36_000)
        #expect(renewal(idle) == nil)
        #expect(sleep(idle) == 60_000)
        #expect(renewal(m.timer(now: 60_000)) == nil)
    }

    @Test func aLostLeaseDropsAQueuedMessageAndReportsAnInFlightOneOnce() throws {
        var m = Self.renewing()
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...3)), now: 0)) == [1])
        #expect(try #require(renewal(m.timer(now: 10_000))).ids == [1, 2, 3])
        // 1 (in flight) and 2 (queued) were taken over by another owner.
        let report = m.renewed(lost: [1, 2], now: 10_010)
        let gone = try #require(lost(report))
        #expect(gone.queued == [2] && gone.inFlight == [1])
        #expect(m.queuedCount == 1)
        // Not renewed again, not reported again: the next renewal carries 3 only.
        let next = try #require(renewal(m.timer(now: 20_000)))
        #expect(next.ids == [3])
        #expect(lost(m.renewed(lost: [], now: 20_001)) == nil)
        // 1's transfer ends (its result will be stale, the store says so): its slot goes to 3, not 2.
        let done = m.completed(id: 1, record: 1, now: 21_000)
        #expect(sends(done) == [3])
        #expect(store(done)?.records == [1])
        _ = m.stored(.init(works: []), now: 21_001)
        // 2 is no longer held: a later claim that returns it (its new lease is this owner's) queues it.
        _ = m.completed(id: 3, record: 3, now: 22_000)
        #expect(sends(m.stored(.init(works: Self.works("sms", 2...2)), now: 22_001)) == [2])
    }

    @Test func aReportAboutAMessageRecordedOrClaimedAgainMeanwhileIsIgnored() throws {
        var m = Self.renewing(maxQueueWaitMs: 12_000)
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...2)), now: 0)) == [1])
        #expect(try #require(renewal(m.timer(now: 10_000))).ids == [1, 2])
        // While the renewal runs, 1 ends and 2, having waited too long, is released with its
        // record; the same operation's claim returns 2 again, leased afresh, and sends it.
        let done = m.completed(id: 1, record: 1, now: 13_000)
        let op = try #require(store(done))
        #expect(op.records == [1] && op.release.map(\.id) == [2])
        #expect(sends(m.stored(.init(works: Self.works("sms", 2...2)), now: 13_001)) == [2])
        // The renewal ran between the two in the database: both lost to it, but 1 is recorded and
        // 2's new lease is not the one it renewed. Nothing to report; 2 is renewed from its new claim.
        let report = m.renewed(lost: [1, 2], now: 13_002)
        #expect(lost(report) == nil)
        #expect(sleep(report) == 23_001)
        #expect(try #require(renewal(m.timer(now: 23_001))).ids == [2])
    }

    @Test func aFailedRenewalIsTriedAgainAfterTheStoreRetryAndAQueuedMessageWhoseLeaseRanOutIsNotSent() throws {
        var m = Self.renewing()
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...2)), now: 0)) == [1])
        #expect(try #require(renewal(m.timer(now: 10_000))).ids == [1, 2])
        let failed = m.renewFailed(now: 10_050)
        #expect(renewal(failed) == nil)
        #expect(sleep(failed) == 11_050)
        // The store stays down: tried again after every failure, the same messages each time.
        var at: Millis = 11_050
        while at < 29_000 {
            #expect(renewal(m.timer(now: at))?.ids == [1, 2])
            _ = m.renewFailed(now: at + 1)
            at += 1_001
        }
        // 1's transfer ends when 2's lease (taken at 0, never renewed) has run out: 2 is not sent
        // (another owner may hold it now) but released.
        let done = m.completed(id: 1, record: 1, now: 30_000)
        #expect(sends(done).isEmpty)
        #expect(try #require(store(done)).release.map(\.id) == [2])
    }

    @Test func runOnceDoesNotFinishWhileARenewalRuns() throws {
        var m = Self.renewing(finishWhenIdle: true)
        _ = m.start(now: 0)
        _ = m.stored(.init(works: Self.works("sms", 1...1)), now: 0)
        #expect(try #require(renewal(m.timer(now: 10_000))).ids == [1])
        _ = m.completed(id: 1, record: 1, now: 10_001)
        #expect(!finished(m.stored(.init(works: []), now: 10_002)))
        #expect(finished(m.renewed(lost: [], now: 10_003)))
    }
}
