import Foundation
import PaywatchCore
import PaywatchStore

/// What the checks share: the clock's origin, the policies, and short ways to sweep, claim and
/// record through the protocol.
enum Fixture {
    static let t0: Millis = 1_790_000_000_000
    static let minute: Millis = 60_000
    static let day: Millis = 86_400_000
    static let phone = "+8613800000000"
    static let otherPhone = "+8613900000000"
    static let email = "a@shop.example"
    static let channels = ["email", "ops", "push", "sms"]

    /// Reminders at 10 and 25 minutes on sms and e-mail, cancelled after a 30-minute hold; ops
    /// messages to `oncall`. The policy of the SQLite store's own tests.
    static let planner = Planner(policy: Policy(unpaidHoldMs: 30 * minute, unpaidRemindersMs: [10 * minute, 25 * minute],
                                                unpaidChannels: ["sms", "email"], fixedRecipients: ["ops": "oncall"]))
    /// A payment attempt pending for 15 minutes is stalled and asked about (reconcile).
    static let reconciling = Planner(policy: Policy(unpaidChannels: ["sms"], payingStallAfterMs: 15 * minute, payingEscalations: 3,
                                                    reconcileEnabled: true, fixedRecipients: ["ops": "oncall"]))

    /// A store owned by `owner` (the first of a check is "first").
    static func store(_ harness: any ConformanceHarness, _ owner: String = "first") async throws -> any OrderStore {
        try await harness.makeStore(leaseOwner: owner)
    }

    /// An order created at `createdAt` with a phone (and an e-mail when asked).
    static func order(_ id: String, at createdAt: Millis = t0, email: Bool = false, phone: String = phone,
                      amount: Int64 = 100) -> ShopOrder {
        ShopOrder(id: id, amountDue: amount, createdAt: createdAt, email: email ? Self.email : nil, phone: phone)
    }

    /// Plans everything due at `now` with `planner` (the daemon's own planning function).
    @discardableResult
    static func sweep(_ store: any OrderStore, now: Millis, limit: Int = 500, planner: Planner = planner) async throws -> [Plan] {
        try await store.sweep(now: now, limit: limit) { planner.plan($0, now: now) }.plans
    }

    /// A claim of up to `limit` messages on each of `channels`.
    static func request(_ channels: [String] = channels, limit: Int = 100, leaseMs: Millis = minute,
                        cap: Int? = nil) -> DeliveryClaimRequest {
        DeliveryClaimRequest(perChannel: Dictionary(uniqueKeysWithValues: channels.map { ($0, limit) }), knownChannels: Self.channels,
                             leaseMs: leaseMs, maxPerOrderPerDay: cap)
    }

    /// Claims up to `limit` due messages per channel.
    static func claim(_ store: any OrderStore, now: Millis, _ channels: [String] = channels, limit: Int = 100,
                      leaseMs: Millis = minute, cap: Int? = nil) async throws -> DeliveryClaim {
        try await store.claimDeliveries(request(channels, limit: limit, leaseMs: leaseMs, cap: cap), now: now)
    }

    /// A delivery result for a claimed message.
    static func result(_ message: OutboxMessage, _ outcome: DeliveryOutcome, at now: Millis, status: Int? = 200,
                       followUp: OutgoingMessage? = nil, suppress: Bool = false) -> DeliveryResult {
        DeliveryResult(outboxID: message.id, startedAt: now, httpStatus: status, error: nil, durationMs: 5, outcome: outcome,
                       followUp: followUp, suppress: suppress)
    }

    /// Records `outcome` for each message, returning the stale ones.
    @discardableResult
    static func record(_ store: any OrderStore, _ messages: [OutboxMessage], _ outcome: DeliveryOutcome, now: Millis) async throws -> [Int64] {
        try await store.exchangeDeliveries(recording: messages.map { result($0, outcome, at: now) }, claiming: nil, now: now).staleResults
    }

    /// Claims every due message at `now` and records it delivered.
    static func deliverAll(_ store: any OrderStore, now: Millis) async throws {
        let claim = try await claim(store, now: now)
        try await record(store, claim.messages, .delivered, now: now)
    }

    /// "ORDER kind step channel" of each message, sorted: readable in a failure.
    static func names(_ messages: [OutboxMessage]) -> [String] {
        messages.map { "\($0.message.orderID) \($0.message.kind.rawValue) \($0.message.step) \($0.message.channel)" }.sorted()
    }

    /// The deliveries of an order (masked, with attempts), as `orders show` prints them.
    static func deliveries(_ store: any OrderStore, _ id: String) async throws -> [DeliveryRecord] {
        try require(try await store.order(id: id), "order \(id)").deliveries
    }
}

/// A value shared with a `@Sendable` callback (a hand-off's `take`, a sweep's `applied`).
final class Shared<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func mutate<R>(_ change: (inout Value) -> R) -> R { lock.withLock { change(&stored) } }
}
