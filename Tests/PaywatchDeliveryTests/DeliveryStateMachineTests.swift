import PaywatchCore
import PaywatchDelivery
import Testing

/// The delivery rules without HTTP, database or clock: events in, actions out.
@Suite struct DeliveryStateMachineTests {
    struct Work: DeliveryWork, Equatable {
        let id: Int64
        let lane: String
    }

    typealias Machine = DeliveryStateMachine<Work, Int64>

    static func machine(concurrency: Int = 2, lanes: [String] = ["sms", "email"], shares: [String: Int] = [:], recordGroup: Int = 2,
                        maxQueueWaitMs: Millis = 20_000, finishWhenIdle: Bool = false) -> Machine {
        Machine(configuration: .init(
            concurrency: concurrency, laneConcurrency: shares, knownLanes: lanes, recordGroup: recordGroup, leaseMs: 60_000,
            maxQueueWaitMs: maxQueueWaitMs, pollIntervalMs: 5_000, storeRetryMs: 1_000, finishWhenIdle: finishWhenIdle))
    }

    static func works(_ lane: String, _ ids: ClosedRange<Int64>) -> [Work] { ids.map { Work(id: $0, lane: lane) } }

    func sends(_ actions: [Machine.Action]) -> [Int64] {
        actions.compactMap { if case .send(let work) = $0 { return work.id } else { return nil } }
    }

    func store(_ actions: [Machine.Action]) -> Machine.StoreOperation? {
        actions.lazy.compactMap { if case .store(let op) = $0 { return op } else { return nil } }.first
    }

    func sleep(_ actions: [Machine.Action]) -> Millis? {
        actions.lazy.compactMap { if case .sleep(let at) = $0 { return at } else { return nil } }.first
    }

    func finished(_ actions: [Machine.Action]) -> Bool {
        actions.contains { if case .finished = $0 { return true } else { return false } }
    }

    @Test func startClaimsEveryLaneThenStreamsAndRefillsEachSlotAsItsTransferEnds() throws {
        var m = Self.machine()
        let first = m.start(now: 0)
        let claim = try #require(store(first)?.claim)
        // Each lane may have messages due: each asks for two shares' worth (one in flight, one queued).
        #expect(claim.perChannel == ["sms": 2, "email": 2])
        #expect(claim.others == 2)
        // Only sms had some (email is idle now): sms may use both slots.
        let started = m.stored(.init(works: Self.works("sms", 1...4)), now: 1)
        #expect(sends(started) == [1, 2])
        // One transfer ends: its slot is refilled at once and its outcome goes to the store.
        let next = m.completed(id: 1, record: 1, now: 2)
        #expect(sends(next) == [3])
        #expect(store(next)?.records == [1])
        // Nothing more for this slot until the store answers; a second completion waits for it.
        let more = m.completed(id: 2, record: 2, now: 3)
        #expect(sends(more) == [4])
        #expect(store(more) == nil)
        #expect(m.uncommittedCount == 2)
        // The commit returns: everything completed meanwhile goes in the next one (group commit).
        #expect(store(m.stored(.init(works: []), now: 4))?.records == [2])
    }

    @Test func sendingPausesWhenCommitsLagSoACrashRepeatsAtMostConcurrencyPlusGroup() {
        var m = Self.machine(concurrency: 2, lanes: ["sms"], recordGroup: 2)
        _ = m.start(now: 0)
        _ = m.stored(.init(works: Self.works("sms", 1...20), saturatedLanes: ["sms"]), now: 0)
        // The store hangs on the first commit; transfers keep ending.
        var sent: [Int64] = [1, 2]
        for id in Int64(1)...10 {
            guard sent.contains(id) else { break }
            sent += sends(m.completed(id: id, record: id, now: id))
            #expect(m.inFlightCount + m.uncommittedCount <= 2 + 2)
        }
        #expect(m.inFlightCount == 0)
        #expect(m.uncommittedCount == 4)
        #expect(sent == [1, 2, 3, 4])  // nothing else leaves the process until a commit
        // The store fails: nothing is dropped, the whole group is retried after storeRetryMs.
        let failed = m.storeFailed(now: 20)
        #expect(store(failed) == nil)
        #expect(sleep(failed) == 1_020)
        let retried = m.timer(now: 1_020)
        #expect(store(retried)?.records == [1, 2, 3, 4])
        // Committed: sending resumes.
        #expect(sends(m.stored(.init(works: []), now: 1_021)) == [5, 6])
    }

    @Test func aSlowLaneCannotStarveAFastOne() {
        var m = Self.machine(concurrency: 4, recordGroup: 8)
        _ = m.start(now: 0)
        // Both lanes have work: each gets its share of the 4 slots.
        var inFlight = sends(m.stored(.init(works: Self.works("sms", 1...8) + Self.works("email", 101...108)), now: 0))
        #expect(inFlight.filter { $0 < 100 }.count == 2)
        #expect(inFlight.filter { $0 > 100 }.count == 2)
        // The sms gateway hangs (its transfers never end); every email slot is refilled with email.
        var emailsSent = inFlight.filter { $0 > 100 }.count
        var smsWhileEmailWaited = 0
        while let email = inFlight.first(where: { $0 > 100 }) {
            inFlight.removeAll { $0 == email }
            let actions = m.completed(id: email, record: email, now: 1)
            var started = sends(actions)
            if store(actions) != nil { started += sends(m.stored(.init(works: []), now: 1)) }
            emailsSent += started.filter { $0 > 100 }.count
            inFlight += started
            if emailsSent < 8 { smsWhileEmailWaited = max(smsWhileEmailWaited, inFlight.filter { $0 < 100 }.count) }
        }
        #expect(emailsSent == 8)
        #expect(smsWhileEmailWaited == 2)  // sms never took more than its share while email waited...
        // ...and once email has nothing left, sms uses every slot (work-conserving).
        #expect(inFlight.filter { $0 < 100 }.count == 4)
    }

    @Test func aLaneAtItsShareDoesNotBorrowASlotAnotherLaneIsWaitingToClaimFor() throws {
        var m = Self.machine(concurrency: 4, recordGroup: 8)
        _ = m.start(now: 0)
        // Email came back full: more email is due, beyond the two it holds.
        let first = m.stored(.init(works: Self.works("sms", 1...8) + Self.works("email", 101...102), saturatedLanes: ["email"]), now: 0)
        #expect(sends(first).sorted() == [1, 2, 101, 102])
        #expect(try #require(store(first)?.claim).perChannel["email"] != nil)
        // An email transfer ends while email's claim is still running: the slot waits for it
        // instead of going to sms, whose transfers may take seconds.
        #expect(sends(m.completed(id: 101, record: 101, now: 1)).isEmpty)
        #expect(sends(m.stored(.init(works: Self.works("email", 103...104), saturatedLanes: ["email"]), now: 2)) == [103])
    }

    @Test func lanesAlternateFairlyAndExplicitSharesCount() {
        var m = Self.machine(concurrency: 6, shares: ["sms": 1], recordGroup: 16)
        _ = m.start(now: 0)
        let actions = m.stored(.init(works: Self.works("sms", 1...10) + Self.works("email", 101...110)), now: 0)
        #expect(m.share(of: "sms") == 1)
        #expect(m.share(of: "email") == 5)
        let started = sends(actions)
        #expect(started.count == 6)
        // Email gets its 5 slots, sms its 1: neither was left out.
        #expect(started.filter { $0 > 100 }.count == 5)
        #expect(started.filter { $0 < 100 }.count == 1)
    }

    @Test func claimsAskEachLaneForItsShareAndFollowWhereEachLaneStands() throws {
        var m = Self.machine(concurrency: 4, recordGroup: 4)
        _ = m.start(now: 0)
        // sms came back full (more due), email had less than asked: next email at 500.
        let a = m.stored(.init(works: Self.works("sms", 1...4), saturatedLanes: ["sms"], nextDueAt: ["sms": 0, "email": 500]), now: 10)
        #expect(sends(a).count == 4)
        let claim = try #require(store(a)?.claim)
        #expect(claim.perChannel == ["sms": 8])  // email is not due yet; sms may have more
        #expect(claim.others == 0)
        // The next sms claim found nothing more: nothing is claimed until 500.
        let b = m.stored(.init(works: [], nextDueAt: ["sms": 60_000, "email": 500]), now: 11)
        #expect(store(b) == nil)
        #expect(sleep(b) == 500)
        // Email's share is half the slots now that sms has work too.
        #expect(store(m.timer(now: 500))?.claim?.perChannel == ["email": 4])
    }

    @Test func anIdleMachineDoesNothingUntilThePollOrAWakeup() throws {
        var m = Self.machine()
        _ = m.start(now: 0)
        let idle = m.stored(.init(works: []), now: 1)
        #expect(store(idle) == nil)
        #expect(sends(idle).isEmpty)
        #expect(sleep(idle) == 5_000)
        // A timer before its time (or a spurious one) decides nothing.
        let early = m.timer(now: 2_000)
        #expect(store(early) == nil)
        #expect(sleep(early) == 5_000)
        // The planner decided messages: every lane is claimed from at once.
        #expect(store(m.wakeup(now: 2_001))?.claim?.perChannel == ["sms": 2, "email": 2])
        _ = m.stored(.init(works: []), now: 2_002)
        // The poll looks at every lane again, and at channels no longer configured.
        let polled = try #require(store(m.timer(now: 5_000))?.claim)
        #expect(polled.perChannel.keys.sorted() == ["email", "sms"])
        #expect(polled.others == 2)
    }

    @Test func aClaimThatFindsLessThanAskedNeverSpinsEvenIfRowsLookDue() {
        var m = Self.machine()
        _ = m.start(now: 0)
        // Less than asked, yet the store says sms is due now (rows it cannot take): wait for the poll.
        let a = m.stored(.init(works: [], nextDueAt: ["sms": 0]), now: 10)
        #expect(store(a) == nil)
        #expect(sleep(a) == 5_000)
    }

    @Test func aMessageHeldAlreadyIsNotTakenTwiceFromALaterClaim() {
        var m = Self.machine(concurrency: 1, lanes: ["sms"])
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...1)), now: 0)) == [1])
        // Its lease ran out while in flight; a claim returns it again: ignored.
        _ = m.wakeup(now: 1)
        let again = m.stored(.init(works: Self.works("sms", 1...2)), now: 2)
        #expect(sends(again).isEmpty)
        #expect(m.queuedCount == 1)  // only message 2
    }

    @Test func aMessageQueuedPastItsLeaseIsReleasedNotSent() throws {
        var m = Self.machine(concurrency: 1, lanes: ["sms"], maxQueueWaitMs: 100)
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...2)), now: 0)) == [1])
        // Message 1 takes 150 ms: message 2 waited longer than its lease allows.
        let actions = m.completed(id: 1, record: 1, now: 150)
        #expect(sends(actions).isEmpty)
        let op = try #require(store(actions))
        #expect(op.records == [1])
        #expect(op.release.map(\.id) == [2])
    }

    @Test func handedOverMessagesGoOutWithoutAClaimAndAreNotTakenTwice() throws {
        var m = Self.machine(concurrency: 2, lanes: ["sms"])
        #expect(m.room(in: "sms") == 0)  // not running yet: planning hands nothing over
        _ = m.start(now: 0)
        _ = m.stored(.init(works: []), now: 0)
        #expect(m.room(in: "sms") == 4)  // two shares of 2 slots
        let sent = m.handedOver(Self.works("sms", 1...3), now: 1)
        #expect(sends(sent) == [1, 2])
        #expect(store(sent) == nil)  // no claim needed for them
        #expect(m.room(in: "sms") == 3)
        // A claim that returns one of them (its lease ran out) does not take it again.
        _ = m.wakeup(now: 2)
        #expect(sends(m.stored(.init(works: Self.works("sms", 3...3)), now: 3)).isEmpty)
        #expect(m.queuedCount == 1)
        // Handed over while shutting down: released at once.
        let stop = m.shutdown(now: 4)
        #expect(store(stop)?.release.map(\.id) == [3])
        _ = m.stored(nil, now: 5)
        #expect(store(m.handedOver(Self.works("sms", 9...9), now: 6))?.release.map(\.id) == [9])
    }

    @Test func shutdownReleasesWhatWaitsFinishesWhatFliesAndCommitsEverything() throws {
        var m = Self.machine(concurrency: 2, lanes: ["sms"])
        _ = m.start(now: 0)
        #expect(sends(m.stored(.init(works: Self.works("sms", 1...5)), now: 0)) == [1, 2])
        let stop = m.shutdown(now: 1)
        #expect(sends(stop).isEmpty)
        #expect(store(stop)?.release.map(\.id) == [3, 4, 5])
        #expect(store(m.stored(nil, now: 2)) == nil)
        #expect(!m.isFinished)
        // The transfers in flight finish; no new one starts; their outcomes are committed.
        let one = m.completed(id: 1, record: 1, now: 3)
        #expect(sends(one).isEmpty)
        #expect(store(one)?.claim == nil)
        _ = m.completed(id: 2, record: 2, now: 4)
        #expect(store(m.stored(nil, now: 5))?.records == [2])
        #expect(finished(m.stored(nil, now: 6)))
    }

    @Test func aClaimThatReturnsAfterShutdownIsReleasedNotKept() throws {
        var m = Self.machine(concurrency: 2, lanes: ["sms"])
        let first = m.start(now: 0)
        #expect(store(first)?.claim != nil)
        // Shutdown comes while that claim is still running in the store.
        let stop = m.shutdown(now: 1)
        #expect(store(stop) == nil)
        // What it claimed (leased to this process) goes back at once, unsent, before the end.
        let back = m.stored(.init(works: Self.works("sms", 1...3)), now: 2)
        #expect(sends(back).isEmpty)
        #expect(store(back)?.release.map(\.id) == [1, 2, 3])
        #expect(!finished(back))
        #expect(finished(m.stored(nil, now: 3)))
    }

    @Test func runOnceFinishesWhenNothingIsDueInFlightOrUncommitted() {
        var m = Self.machine(concurrency: 2, lanes: ["sms"], finishWhenIdle: true)
        _ = m.start(now: 0)
        _ = m.stored(.init(works: Self.works("sms", 1...1)), now: 0)
        let done = m.completed(id: 1, record: 1, now: 1)
        #expect(!finished(done))
        // Committed; the outcome left nothing due now (a retry in an hour does not count).
        let after = m.stored(.init(works: [], nextDueAt: ["sms": 3_600_000]), now: 2)
        #expect(finished(after))
    }
}
