import PaywatchCore
import PaywatchDelivery
import Testing

/// A lane's rate (token bucket) and circuit breaker, through the delivery state machine with
/// injected time: no clock, no sleeping.
@Suite struct LaneLimitsTests {
    struct Work: DeliveryWork, Equatable {
        let id: Int64
        let lane: String
    }

    typealias Machine = DeliveryStateMachine<Work, Int64>

    static func machine(concurrency: Int = 32, lanes: [String] = ["sms"], limits: [String: LaneLimits],
                        maxQueueWaitMs: Millis = 60_000) -> Machine {
        Machine(configuration: .init(
            concurrency: concurrency, knownLanes: lanes, recordGroup: 32, leaseMs: 120_000, maxQueueWaitMs: maxQueueWaitMs,
            pollIntervalMs: 5_000, storeRetryMs: 1_000, laneLimits: limits))
    }

    static func works(_ lane: String, _ ids: ClosedRange<Int64>) -> [Work] { ids.map { Work(id: $0, lane: lane) } }

    static func rate(_ count: Int, per periodMs: Millis = 1_000, burst: Int) -> LaneLimits {
        LaneLimits(rate: TokenBucket(count: count, periodMs: periodMs, burst: burst))
    }

    static func breaker(_ failures: Int, probeMs: Millis = 30_000) -> LaneLimits {
        LaneLimits(breakerFailures: failures, breakerProbeMs: probeMs)
    }

    /// What the edge did at one instant.
    struct Round {
        var sent: [Int64] = []
        var sleep: Millis?
        var ops: [Machine.StoreOperation] = []
        var paused: [Machine.LanePause] = []
        var resumed: [String] = []
        var probeFailed: [String] = []
        var claims: [DeliveryClaimRequest] { ops.compactMap(\.claim) }
    }

    /// Plays the edge at one instant: each transfer ends at once with `health(id)` (except those
    /// in `hold`, which stay in flight), each store operation and renewal commits; the first claim finds
    /// `feed`, later ones nothing.
    static func settle(_ m: inout Machine, _ first: [Machine.Action], now: Millis, feed: [Work] = [], hold: Set<Int64> = [],
                       health: (Int64) -> TransferHealth = { _ in .answered }) -> Round {
        var round = Round()
        var feed = feed
        var pending = first
        while !pending.isEmpty {
            var next: [Machine.Action] = []
            for action in pending {
                switch action {
                case .send(let work):
                    round.sent.append(work.id)
                    if !hold.contains(work.id) { next += m.completed(id: work.id, record: work.id, health: health(work.id), now: now) }
                case .store(let op):
                    round.ops.append(op)
                    // The first claim finds `feed`; every other finds nothing.
                    next += m.stored(.init(works: op.claim == nil ? [] : feed), now: now)
                    if op.claim != nil { feed = [] }
                case .sleep(let at): round.sleep = at
                case .finished: break
                case .paused(let pause): round.paused.append(pause)
                case .resumed(let lane): round.resumed.append(lane)
                case .probeFailed(let lane, _, _): round.probeFailed.append(lane)
                case .renew: next += m.renewed(lost: [], now: now)  // every lease renewed at once
                case .leasesLost: break
                }
            }
            pending = next
        }
        return round
    }

    // MARK: Rate

    @Test func aRateOfTenPerSecondSendsItsBurstThenOneEvery100msAndNeverMore() throws {
        var m = Self.machine(limits: ["sms": Self.rate(10, burst: 10)])
        _ = m.start(now: 0)
        var round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...100)), now: 0), now: 0)
        #expect(round.sent.count == 10)  // the burst, at once
        var sentAt: [Millis] = Array(repeating: 0, count: 10)
        var timers = 0
        while let at = round.sleep, sentAt.count < 100, at <= 20_000 {
            timers += 1
            round = Self.settle(&m, m.timer(now: at), now: at)
            sentAt += round.sent.map { _ in at }
            // Never more than burst + rate × t.
            #expect(Millis(sentAt.count) <= 10 + at * 10 / 1_000)
        }
        #expect(sentAt.count == 100)
        // Then exactly one every 100 ms, each at the instant its token is due (the 5 s polls aside).
        #expect(Array(sentAt[10...]) == (1...90).map { Millis($0) * 100 })
        #expect(timers == 90)
    }

    @Test func aFastRateSendsAFewPerWakeUpStillWithinTheBucket() {
        // 400/s: a token every 2.5 ms, but the lane is looked at every 25 ms: ten at a time.
        var m = Self.machine(limits: ["sms": Self.rate(400, burst: 10)])
        _ = m.start(now: 0)
        var round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...100)), now: 0), now: 0)
        #expect(round.sent.count == 10)
        var sent = 10
        var wakeUps = 0
        while let at = round.sleep, sent < 100, at <= 1_000 {
            #expect(at == Millis(wakeUps + 1) * 25)
            wakeUps += 1
            round = Self.settle(&m, m.timer(now: at), now: at)
            #expect(round.sent.count == 10)
            sent += round.sent.count
            #expect(Millis(sent) <= 10 + at * 400 / 1_000)
        }
        #expect(sent == 100)
        #expect(wakeUps == 9)
    }

    @Test func burstSetsHowManyLeaveAtOnce() {
        var m = Self.machine(limits: ["sms": Self.rate(10, burst: 3)])
        _ = m.start(now: 0)
        let round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...20)), now: 0), now: 0)
        #expect(round.sent == [1, 2, 3])
        #expect(round.sleep == 100)
        // After a quiet spell the bucket holds `burst` again, never more.
        var later = Self.settle(&m, m.timer(now: 100), now: 100)
        #expect(later.sent == [4])
        later = Self.settle(&m, m.wakeup(now: 10_000), now: 10_000)
        #expect(later.sent == [5, 6, 7])
    }

    @Test func aSlowRateSpacesTokensExactlyWithoutDrift() {
        // 3/s: a token every 333⅓ ms; one second after the burst exactly 3 more, not 2 (no
        // rounding lost: the bucket counts thirds of a token).
        var m = Self.machine(limits: ["sms": Self.rate(3, burst: 3)])
        _ = m.start(now: 0)
        var round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...10)), now: 0), now: 0)
        var times: [Millis] = round.sent.map { _ in 0 }
        while let at = round.sleep, at <= 1_000 {
            round = Self.settle(&m, m.timer(now: at), now: at)
            times += round.sent.map { _ in at }
        }
        #expect(times == [0, 0, 0, 334, 667, 1_000])
    }

    @Test func anIdleLaneWithARateAsksForNoTimerBeyondThePoll() {
        var m = Self.machine(limits: ["sms": Self.rate(10, burst: 10)])
        _ = m.start(now: 0)
        // Nothing due: the only timer is the poll.
        let idle = Self.settle(&m, m.stored(.init(works: []), now: 1), now: 1)
        #expect(idle.sent.isEmpty)
        #expect(idle.sleep == 5_000)
        // It sent its whole burst and has nothing left: an empty bucket asks for nothing either.
        let drained = Self.settle(&m, m.wakeup(now: 2), now: 2)
        #expect(drained.sleep == 5_000)
        let burst = Self.settle(&m, m.handedOver(Self.works("sms", 1...10), now: 3), now: 3)
        #expect(burst.sent.count == 10)
        #expect(burst.sleep == 5_000)
    }

    @Test func aRateLimitedLaneClaimsOnlyWhatItCanSendWithinTheLease() throws {
        // 6/m with a 20 s wait allowed in the queue: its 1 token now plus 2 more within 20 s.
        var m = Self.machine(limits: ["sms": Self.rate(6, per: 60_000, burst: 1)], maxQueueWaitMs: 20_000)
        let first = try #require(Self.settle(&m, m.start(now: 0), now: 0).claims.first)
        #expect(first.perChannel["sms"] == 3)
        #expect(m.room(in: "sms") == 3)
    }

    @Test func aRateLimitedLaneLeavesTheOtherLanesAlone() {
        var m = Self.machine(concurrency: 4, lanes: ["sms", "email"], limits: ["sms": Self.rate(1, burst: 1)])
        _ = m.start(now: 0)
        let round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...5) + Self.works("email", 101...110)), now: 0),
                                now: 0)
        // One sms (its token); every email at once, its slots refilled as each ends.
        #expect(round.sent.filter { $0 < 100 } == [1])
        #expect(round.sent.filter { $0 > 100 }.count == 10)
        #expect(round.sleep == 1_000)
    }

    @Test func theBucketNeverOverflowsAndTakesNoTokenItDoesNotHave() {
        var bucket = TokenBucket(count: 1_000_000, periodMs: 1_000, burst: 1_000_000)
        let full = bucket.available(now: 0)
        let muchLater = bucket.available(now: Millis.max / 2)
        #expect(full == 1_000_000)
        #expect(muchLater == 1_000_000)
        var slow = TokenBucket(count: 1, periodMs: 3_600_000, burst: 1)
        let first = slow.take(now: 0)
        let second = slow.take(now: 1)
        let due = slow.nextTokenAt(now: 1)
        let third = slow.take(now: 3_600_000)
        #expect(first && !second && third)
        #expect(due == 3_600_000)
    }

    // MARK: Circuit breaker

    @Test func theBreakerOpensAtTheNthConsecutiveFailureNotBefore() throws {
        var m = Self.machine(concurrency: 1, limits: ["sms": Self.breaker(3)])
        _ = m.start(now: 0)
        let round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...10)), now: 0), now: 0,
                                health: { _ in .failed(reason: "HTTP 503") })
        // Three transfers failed: the third opens it (not the second); nothing more is sent.
        #expect(round.sent == [1, 2, 3])
        let pause = try #require(round.paused.first)
        #expect(round.paused.count == 1)
        #expect(pause == Machine.LanePause(lane: "sms", failures: 3, lastError: "HTTP 503", openedAt: 0, probeAt: 30_000))
        // The failing ones are recorded (they spent their attempts); the queued ones go back
        // unsent, due at the probe time, without an attempt.
        #expect(round.ops.flatMap(\.records).sorted() == [1, 2, 3])
        let paused = round.ops.flatMap(\.pause)
        #expect(paused.map(\.work.id) == Array(4...10))
        #expect(paused.allSatisfy { $0.until == 30_000 && $0.reason == "HTTP 503" })
        #expect(round.ops.flatMap(\.release).isEmpty)
        // Nothing is claimed for it until then; the next timer is the probe time.
        #expect(round.claims.allSatisfy { $0.perChannel["sms"] == nil })
        #expect(m.room(in: "sms") == 0)
        #expect(m.pausedLanes == ["sms"])
        let poll = Self.settle(&m, m.timer(now: 5_000), now: 5_000)
        #expect(poll.claims.allSatisfy { $0.perChannel["sms"] == nil })
        #expect(poll.sleep == 10_000)
    }

    @Test func aSuccessBetweenFailuresResetsTheCount() {
        var m = Self.machine(concurrency: 1, limits: ["sms": Self.breaker(3)])
        _ = m.start(now: 0)
        // Two failures, an answer, two failures, an answer… never three in a row.
        let round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...12)), now: 0), now: 0,
                                health: { $0 % 3 == 0 ? .answered : .failed(reason: "transport error: timeout") })
        #expect(round.sent == Array(1...12))
        #expect(round.paused.isEmpty)
        // Messages that were never sent say nothing about the channel.
        var n = Self.machine(concurrency: 1, limits: ["sms": Self.breaker(2)])
        _ = n.start(now: 0)
        let unknown = Self.settle(&n, n.stored(.init(works: Self.works("sms", 1...4)), now: 0), now: 0,
                                  health: { $0 == 2 ? .unknown : .failed(reason: "HTTP 500") })
        #expect(unknown.sent == [1, 2, 3])  // 1 failed, 2 unknown, 3 failed: two in a row
        #expect(unknown.paused.count == 1)
    }

    @Test func exactlyOneProbeAtTheProbeTimeThenSuccessClosesTheBreaker() throws {
        var m = Self.machine(concurrency: 4, limits: ["sms": Self.breaker(2)])
        _ = m.start(now: 0)
        _ = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...2)), now: 0), now: 0,
                        health: { _ in .failed(reason: "HTTP 502") })
        #expect(m.pausedLanes == ["sms"])
        // Before the probe time, a message handed over for sms is given back unsent, due then.
        let early = Self.settle(&m, m.handedOver(Self.works("sms", 3...3), now: 10_000), now: 10_000)
        #expect(early.sent.isEmpty)
        #expect(early.ops.flatMap(\.pause).map(\.work.id) == [3])
        #expect(early.ops.flatMap(\.pause).allSatisfy { $0.until == 30_000 })
        // At the probe time: a claim of one message for sms, and exactly one probe, however many come.
        let probe = Self.settle(&m, m.timer(now: 30_000), now: 30_000, feed: Self.works("sms", 4...6), hold: [4])
        #expect(probe.claims.first?.perChannel["sms"] == 1)
        #expect(probe.sent == [4])
        // While it is in flight nothing else goes, and the rest wait for its answer.
        #expect(Self.settle(&m, m.wakeup(now: 30_002), now: 30_002).sent.isEmpty)
        // It goes through: the lane resumes and sends again, at once.
        let back = Self.settle(&m, m.completed(id: 4, record: 4, health: .answered, now: 30_100), now: 30_100)
        #expect(back.resumed == ["sms"])
        #expect(back.paused.isEmpty)
        #expect(back.claims.contains { ($0.perChannel["sms"] ?? 0) > 1 })
        #expect(m.pausedLanes.isEmpty)
    }

    @Test func aFailedProbeReopensForAnotherProbeIntervalWithoutTellingOpsAgain() {
        var m = Self.machine(concurrency: 4, limits: ["sms": Self.breaker(1, probeMs: 10_000)])
        _ = m.start(now: 0)
        let opened = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...1)), now: 0), now: 0,
                                 health: { _ in .failed(reason: "HTTP 500") })
        #expect(opened.paused.count == 1)
        let probe = Self.settle(&m, m.timer(now: 10_000), now: 10_000, feed: Self.works("sms", 2...3),
                                health: { _ in .failed(reason: "HTTP 500") })
        #expect(probe.sent == [2])
        #expect(probe.paused.isEmpty)  // ops was told once, at the opening
        #expect(probe.probeFailed == ["sms"])
        #expect(probe.ops.flatMap(\.pause).map(\.work.id) == [3])
        #expect(probe.ops.flatMap(\.pause).allSatisfy { $0.until == 20_000 })
        #expect(probe.sleep == 15_000)  // the poll comes first; the next probe at 20 s
        #expect(Self.settle(&m, m.timer(now: 15_000), now: 15_000).sent.isEmpty)
        let second = Self.settle(&m, m.timer(now: 20_000), now: 20_000, feed: Self.works("sms", 3...3))
        #expect(second.sent == [3])
        #expect(second.resumed == ["sms"])
    }

    @Test func otherLanesKeepSendingWhileOneIsPaused() {
        var m = Self.machine(concurrency: 4, lanes: ["sms", "email"], limits: ["sms": Self.breaker(2), "email": Self.breaker(2)])
        _ = m.start(now: 0)
        let round = Self.settle(&m, m.stored(.init(works: Self.works("sms", 1...10) + Self.works("email", 101...120)), now: 0),
                                now: 0, health: { $0 < 100 ? .failed(reason: "HTTP 503") : .answered })
        #expect(round.paused.map(\.lane) == ["sms"])
        #expect(round.sent.filter { $0 > 100 }.count == 20)  // every email, and email borrows sms's slots
        #expect(m.pausedLanes == ["sms"])
        #expect(m.share(of: "email") == 4)  // a paused lane claims no share
        // Email's claims go on while sms is paused.
        let later = Self.settle(&m, m.wakeup(now: 1_000), now: 1_000)
        #expect(later.claims.contains { $0.perChannel["email"] != nil && $0.perChannel["sms"] == nil })
    }
}
