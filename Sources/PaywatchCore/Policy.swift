/// The business rules' parameters, taken from the configuration. All durations in milliseconds.
public struct Policy: Sendable, Hashable {
    public var unpaidHoldMs: Millis
    /// Offsets after `created_at`, ascending.
    public var unpaidRemindersMs: [Millis]
    public var unpaidChannels: [String]
    /// Offsets after a failed attempt, ascending.
    public var failedRemindersMs: [Millis]
    public var failedChannels: [String]
    public var paidChannels: [String]
    /// Channels with a fixed recipient (`to = "…"` in `[channels.NAME]`), used when the order has no
    /// address field for that channel (always for `ops`).
    public var fixedRecipients: [String: String]
    public var opsChannel: String

    public init(
        unpaidHoldMs: Millis = 30 * 60_000,
        unpaidRemindersMs: [Millis] = [10 * 60_000, 25 * 60_000],
        unpaidChannels: [String] = ["push", "sms", "email"],
        failedRemindersMs: [Millis] = [10 * 60_000, 2 * 3_600_000],
        failedChannels: [String]? = nil,
        paidChannels: [String]? = nil,
        fixedRecipients: [String: String] = [:],
        opsChannel: String = "ops"
    ) {
        self.unpaidHoldMs = unpaidHoldMs
        self.unpaidRemindersMs = unpaidRemindersMs
        self.unpaidChannels = unpaidChannels
        self.failedRemindersMs = failedRemindersMs
        self.failedChannels = failedChannels ?? unpaidChannels
        self.paidChannels = paidChannels ?? unpaidChannels
        self.fixedRecipients = fixedRecipients
        self.opsChannel = opsChannel
    }

    /// When the hold of `order` ends: `expires_at`, else `created_at + hold`.
    public func expiry(of order: OrderRecord) -> Millis {
        order.expiresAt ?? ((order.createdAt ?? 0) + unpaidHoldMs)
    }
}
