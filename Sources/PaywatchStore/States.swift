import PaywatchCore

/// A stored word with a fallback for words this release does not know (`init(rawValue:)` never
/// fails): shown, encoded and used as a JSON key as the word itself.
public protocol OpenVocabulary: RawRepresentable, Sendable, Hashable, Codable, CodingKeyRepresentable,
    CustomStringConvertible where RawValue == String {
    init(rawValue: String)
}

extension OpenVocabulary {
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// The state of an outbox message, as the store's public API passes it: what `pw_outbox.state`
/// holds (`pending`, `delivered`, `dead`, `superseded`, `suppressed`, `capped`), plus `in_flight`,
/// which is derived (a pending message leased to a deliverer) and only ever counted, never stored.
///
/// A word this release does not know (a row written by hand, or by a newer paywatch on the same
/// database) reads as ``unknown(_:)`` with the word as written: shown and counted as it is, never
/// a crash and never mistaken for a known state. The raw value is the stored word, so the database,
/// `paywatch status --json`, `orders show` and `report` keep their words.
public enum OutboxState: OpenVocabulary, CaseIterable {
    /// Waiting to be delivered: due now, due later (a retry, quiet hours), or leased.
    case pending
    /// Pending and leased to a deliverer right now (derived: counted by ``Health/outbox``).
    case inFlight
    /// The gateway accepted it.
    case delivered
    /// Refused for good, or out of attempts.
    case dead
    /// Dropped before it went out: its order moved on, or a later step of its series replaced it.
    case superseded
    /// Dropped before it went out: its address is in `suppressions`.
    case suppressed
    /// A reminder dropped because its customer had their daily cap of messages.
    case capped
    /// A word this release does not know, kept as read.
    case unknown(String)

    /// The known states (not ``unknown(_:)``).
    public static let allCases: [OutboxState] = [.pending, .inFlight, .delivered, .dead, .superseded, .suppressed, .capped]

    /// The states a message can end in: nothing more happens to it.
    public var isFinal: Bool {
        switch self {
        case .delivered, .dead, .superseded, .suppressed, .capped: return true
        case .pending, .inFlight, .unknown: return false
        }
    }

    public init(rawValue: String) {
        switch rawValue {
        case "pending": self = .pending
        case "in_flight": self = .inFlight
        case "delivered": self = .delivered
        case "dead": self = .dead
        case "superseded": self = .superseded
        case "suppressed": self = .suppressed
        case "capped": self = .capped
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .pending: return "pending"
        case .inFlight: return "in_flight"
        case .delivered: return "delivered"
        case .dead: return "dead"
        case .superseded: return "superseded"
        case .suppressed: return "suppressed"
        case .capped: return "capped"
        case .unknown(let word): return word
        }
    }

}

/// How a recorded delivery attempt ended, as `pw_attempts.outcome` stores it (the stored subset of
/// ``DeliveryOutcome/name``: results that are not attempts — not attempted, deferred — write no
/// attempt row). A word this release does not know reads as ``unknown(_:)``, kept as read.
public enum AttemptOutcome: OpenVocabulary, CaseIterable {
    case delivered
    /// A passing failure: tried again later.
    case retry
    /// A failure for good.
    case dead
    case unknown(String)

    public static let allCases: [AttemptOutcome] = [.delivered, .retry, .dead]

    public init(rawValue: String) {
        switch rawValue {
        case "delivered": self = .delivered
        case "retry": self = .retry
        case "dead": self = .dead
        default: self = .unknown(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .delivered: return "delivered"
        case .retry: return "retry"
        case .dead: return "dead"
        case .unknown(let word): return word
        }
    }

}

/// The state of a stored reconcile request (`pw_reconcile.state`): due to be asked, or recorded
/// with a definite or an unresolved answer.
public enum ReconcileState: String, Sendable, Hashable, CaseIterable, Codable {
    case pending
    /// The provider answered `succeeded` or `failed`: the payments row was updated.
    case reconciled
    /// No definite answer: the fallback went to ops.
    case unresolved
}

/// Which orders `paywatch orders list --status` asks for: a tracked status (quarantined orders
/// apart), the quarantined ones, or the ones with money to return. The raw value is the word the
/// CLI takes.
public enum OrderFilter: Sendable, Hashable {
    case status(OrderStatus)
    case quarantined
    case needsRefund

    /// nil for a word that names no filter.
    public init?(rawValue: String) {
        switch rawValue {
        case "quarantined": self = .quarantined
        case "needs_refund": self = .needsRefund
        default:
            guard let status = OrderStatus(rawValue: rawValue) else { return nil }
            self = .status(status)
        }
    }

    public var rawValue: String {
        switch self {
        case .status(let status): return status.rawValue
        case .quarantined: return "quarantined"
        case .needsRefund: return "needs_refund"
        }
    }
}
