import PaywatchCore

/// How far behind the daemon is, cheaply (two index lookups and a count of the due messages): what
/// the running daemon checks after each pass and puts into its systemd `STATUS=`.
public struct Lag: Sendable, Hashable, Codable {
    /// The earliest `next_due_at` that has come (an order due for planning), nil when none.
    /// Orders changed by the shop (`next_due_at = 0`) are counted by ``changedOrders`` instead:
    /// they have no due time of their own.
    public var oldestDueOrderAt: Millis?
    /// Orders the shop changed since they were last planned.
    public var changedOrders: Int
    /// When the oldest message not delivered yet was decided (due now, in flight, or waiting for a
    /// retry: a gateway that fails for an hour is an hour of lag), nil when none. A message held
    /// for the quiet hours counts from their end (`not_before`), when it became due.
    public var oldestPendingMessageAt: Millis?
    /// Pending messages whose due time has come.
    public var dueMessages: Int

    public init(oldestDueOrderAt: Millis? = nil, changedOrders: Int = 0, oldestPendingMessageAt: Millis? = nil, dueMessages: Int = 0) {
        self.oldestDueOrderAt = oldestDueOrderAt
        self.changedOrders = changedOrders
        self.oldestPendingMessageAt = oldestPendingMessageAt
        self.dueMessages = dueMessages
    }

    /// The age at `now` of the oldest action due and not done. A changed order is as old as the
    /// last sweep at most (`lastSweepAt`: every sweep takes every changed order), so it counts as
    /// `now - lastSweepAt`; without a sweep it is not counted (the stale sweep shows instead).
    public func ms(now: Millis, lastSweepAt: Millis?) -> Int64 {
        var oldest = now
        if let at = oldestDueOrderAt { oldest = min(oldest, at) }
        if let at = oldestPendingMessageAt { oldest = min(oldest, at) }
        if changedOrders > 0, let at = lastSweepAt { oldest = min(oldest, at) }
        return max(0, now - oldest)
    }
}

/// The daemon's own record in the store, written by `run`: when it started, when it last swept.
/// `paywatch status` reads it from another process.
public struct DaemonHeartbeat: Sendable, Hashable, Codable {
    /// Who wrote it: the host name (one daemon per SQLite file; several replicas on PostgreSQL).
    public var instance: String
    public var pid: Int64
    public var startedAt: Millis
    /// When the configuration in force was loaded (at start or by the last successful reload).
    public var configLoadedAt: Millis
    /// The end of the last planning pass, and how long its sweep took.
    public var lastSweepAt: Millis?
    public var lastSweepMs: Int64?
    /// Set when the daemon stopped cleanly; nil while it runs (or after a crash).
    public var stoppedAt: Millis?

    public init(instance: String, pid: Int64, startedAt: Millis, configLoadedAt: Millis, lastSweepAt: Millis? = nil,
                lastSweepMs: Int64? = nil, stoppedAt: Millis? = nil) {
        self.instance = instance
        self.pid = pid
        self.startedAt = startedAt
        self.configLoadedAt = configLoadedAt
        self.lastSweepAt = lastSweepAt
        self.lastSweepMs = lastSweepMs
        self.stoppedAt = stoppedAt
    }
}

/// Everything `paywatch status` shows: the daemon's heartbeat, its lag, and what waits.
public struct Health: Sendable, Hashable, Codable {
    public var now: Millis
    /// The most recent heartbeat (by its last sweep), nil when no daemon ever ran on this store.
    public var daemon: DaemonHeartbeat?
    public var lag: Lag
    /// Orders not in a final state (unpaid, paying, partially paid, failed, refunding, new), quarantined ones apart.
    public var openOrders: Int
    public var quarantined: Int
    /// Messages due now and not delivered, by kind.
    public var backlog: [String: Int]
    /// Every outbox message by state: pending (due later or now, not leased), in_flight (pending
    /// and leased), delivered, dead, superseded, suppressed, capped; a state this release does
    /// not know under its own word.
    public var outbox: [OutboxState: Int]
    /// Situations ops was told about that are still open, by kind: orders still paying after a
    /// `paying_stalled`, still refunding after `refund_stalled`, still partially paid after
    /// `installment_escalated`; orders with money to return (`needs_refund`); asks to the payment
    /// provider not answered yet (`reconcile_pending`).
    public var escalations: [String: Int]

    public init(now: Millis, daemon: DaemonHeartbeat?, lag: Lag, openOrders: Int, quarantined: Int,
                backlog: [String: Int], outbox: [OutboxState: Int], escalations: [String: Int]) {
        self.now = now
        self.daemon = daemon
        self.lag = lag
        self.openOrders = openOrders
        self.quarantined = quarantined
        self.backlog = backlog
        self.outbox = outbox
        self.escalations = escalations
    }

    public var lagMs: Int64 { lag.ms(now: now, lastSweepAt: daemon?.lastSweepAt) }
}
