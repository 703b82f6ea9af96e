/// How one delivery attempt of an outbox message ended: what delivery decides and the store
/// records. One type from the transport's classification to the database row.
public enum DeliveryOutcome: Sendable, Hashable {
    /// The gateway accepted the message (2xx).
    case delivered
    /// Try again at `atMs` (same clock as the attempt's `now`).
    case retry(atMs: Millis, reason: String)
    /// Permanent failure: never retried; `delivery_dead` goes to ops for customer messages.
    case dead(reason: String)
    /// The request never left the process (shutdown, or released before it started): due again
    /// at once, and not counted as an attempt.
    case notAttempted
    /// Not sent because the provider is not ready (its access token is being fetched): due again
    /// at `untilMs`, and not counted as an attempt, so a token endpoint that is down for a while
    /// kills no message (the lag shows it).
    case deferred(untilMs: Millis, reason: String)

    /// The word stored in `pw_attempts.outcome` and logged as `outcome=`.
    public var name: String {
        switch self {
        case .delivered: return "delivered"
        case .retry: return "retry"
        case .dead: return "dead"
        case .notAttempted: return "not_attempted"
        case .deferred: return "deferred"
        }
    }

    /// The reason of a retry or dead outcome.
    public var reason: String? {
        switch self {
        case .retry(_, let reason), .dead(let reason), .deferred(_, let reason): return reason
        case .delivered, .notAttempted: return nil
        }
    }
}

/// What one delivery claim asks the store for: a bounded number of due messages per channel, so
/// that a channel with a large backlog cannot crowd the others out of the claim.
public struct DeliveryClaimRequest: Sendable, Hashable {
    /// Most messages to claim per channel; channels not listed are not claimed from.
    public var perChannel: [String: Int]
    /// Most messages to claim among channels that are not in `knownChannels` (rows left by an
    /// older configuration; delivery marks them dead, naming the missing section). 0: none.
    public var others: Int
    /// The channels delivery has lanes for (every configured channel, every channel a rule names, `ops`).
    public var knownChannels: [String]
    /// How long a claimed message stays leased to the claimer.
    public var leaseMs: Millis
    /// `[delivery] max_per_order_per_day`: a claimed reminder whose order's customer was already
    /// sent this many other decisions over the last 24 hours is not sent (`capped`). Nil: no cap.
    public var maxPerOrderPerDay: Int? = nil

    public init(perChannel: [String: Int], others: Int = 0, knownChannels: [String], leaseMs: Millis,
                maxPerOrderPerDay: Int? = nil) {
        self.maxPerOrderPerDay = maxPerOrderPerDay
        self.perChannel = perChannel
        self.others = others
        self.knownChannels = knownChannels
        self.leaseMs = leaseMs
    }
}
