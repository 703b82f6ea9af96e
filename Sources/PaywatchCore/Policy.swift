/// The business rules' parameters, taken from the configuration. All durations in milliseconds.
public struct Policy: Sendable, Hashable {
    public var unpaidHoldMs: Millis
    /// `[unpaid.hold_by_method]`: the hold per payment method.
    public var holdByMethodMs: [String: Millis]
    /// Offsets after `created_at`, ascending.
    public var unpaidRemindersMs: [Millis]
    public var unpaidChannels: [String]
    /// Offsets after a failed attempt, ascending.
    public var failedRemindersMs: [Millis]
    public var failedChannels: [String]
    public var paidChannels: [String]
    /// `[partially_paid]`: balance reminders after the last payment (no installment plan).
    public var balanceRemindersMs: [Millis]
    /// Without a plan and without `expires_at`, the balance is due this long after `created_at`.
    public var balanceDueMs: Millis
    /// Before each installment's due date, descending (3 days before, then 1 day before).
    public var installmentRemindersMs: [Millis]
    public var overdueEveryMs: Millis
    public var overdueMax: Int
    /// `on_overdue = "cancel"`: after the last overdue notice the order is cancelled (else ops only).
    public var cancelOnOverdue: Bool
    public var partiallyPaidChannels: [String]
    /// `[refunding]`: a refund `requested` or `processing` for this long without moving goes to ops.
    public var refundStallAfterMs: Millis
    public var refundingChannels: [String]
    /// `[paying]`: an attempt `pending` this long (since its `created_at`) is stalled; it is asked
    /// about (or escalated) again every `stall_after`, at most ``payingEscalations`` times.
    public var payingStallAfterMs: Millis
    public var payingEscalations: Int
    /// A pending attempt older than this no longer holds the order (hold and reminders resume).
    public var payingGiveUpAfterMs: Millis
    /// `[paying].reconcile_url` is set: a stalled attempt with a `provider_ref` is asked about
    /// (a ``ReconcileRequest``) before ops hears of it.
    public var reconcileEnabled: Bool
    /// `[cancelled].on_late_payment = "reinstate"`: money arriving after the cancel that covers the
    /// amount due makes the order paid again (else ops only).
    public var reinstateLatePayments: Bool
    /// `[templates]`: added to failure and refund messages.
    public var supportContact: String?
    /// Chinese texts for orders whose locale is unset or neither `zh*` nor `en*` (`default_locale = "zh-CN"`).
    public var chineseByDefault: Bool
    /// The compiled customer message templates (built-in, and `[templates] dir`).
    public var templates: Templates
    /// Channels with a fixed recipient (`to = "…"` in `[channels.NAME]`), used when the order has no
    /// address field for that channel (always for `ops`).
    public var fixedRecipients: [String: String]
    public var opsChannel: String
    /// Payments and refunds dated further in the future than this (`[daemon] max_clock_skew`) are
    /// not believed: the order is quarantined until they are no longer in the future.
    public var maxClockSkewMs: Millis
    /// The rule sections written with `fallback = true`: their customer messages go to the first
    /// listed channel that has an address not suppressed (the others are kept as alternates).
    public var fallback: Set<RuleSection> = []

    /// A rule section with a `channels` list.
    public enum RuleSection: String, Sendable, Hashable, CaseIterable {
        case unpaid, failed, partiallyPaid = "partially_paid", paid, refunding
    }

    /// Where a rule section's messages go: its `channels`, and whether to one of them (`fallback`).
    public struct Channels: Sendable, Hashable, ExpressibleByArrayLiteral {
        public var names: [String]
        public var fallback: Bool

        public init(_ names: [String], fallback: Bool = false) {
            self.names = names
            self.fallback = fallback
        }

        /// Every one of `names` (ops messages, and sections without `fallback`).
        public init(arrayLiteral names: String...) {
            self.init(names)
        }
    }

    /// The channels of a rule section.
    public func channels(_ section: RuleSection) -> Channels {
        let names: [String]
        switch section {
        case .unpaid: names = unpaidChannels
        case .failed: names = failedChannels
        case .partiallyPaid: names = partiallyPaidChannels
        case .paid: names = paidChannels
        case .refunding: names = refundingChannels
        }
        return Channels(names, fallback: fallback.contains(section))
    }
    /// `[quiet_hours]`: customer messages on its channels decided inside it wait for its end; nil: none.
    public var quietHours: QuietHours?
    /// `[daemon] time_zone`: the zone of orders whose `time_zone` is NULL or not a zone the system knows.
    public var defaultTimeZone: String

    public init(
        unpaidHoldMs: Millis = 30 * 60_000,
        holdByMethodMs: [String: Millis] = [:],
        unpaidRemindersMs: [Millis] = [10 * 60_000, 25 * 60_000],
        unpaidChannels: [String] = ["push", "sms", "email"],
        failedRemindersMs: [Millis] = [10 * 60_000, 2 * 3_600_000],
        failedChannels: [String]? = nil,
        paidChannels: [String]? = nil,
        balanceRemindersMs: [Millis] = [86_400_000, 3 * 86_400_000],
        balanceDueMs: Millis = 7 * 86_400_000,
        installmentRemindersMs: [Millis] = [3 * 86_400_000, 86_400_000],
        overdueEveryMs: Millis = 86_400_000,
        overdueMax: Int = 3,
        cancelOnOverdue: Bool = false,
        partiallyPaidChannels: [String]? = nil,
        refundStallAfterMs: Millis = 3 * 86_400_000,
        refundingChannels: [String]? = nil,
        payingStallAfterMs: Millis = 15 * 60_000,
        payingEscalations: Int = 3,
        payingGiveUpAfterMs: Millis = 86_400_000,
        reconcileEnabled: Bool = false,
        reinstateLatePayments: Bool = false,
        supportContact: String? = nil,
        chineseByDefault: Bool = false,
        templates: Templates? = nil,
        fixedRecipients: [String: String] = [:],
        opsChannel: String = "ops",
        maxClockSkewMs: Millis = 5 * 60_000,
        quietHours: QuietHours? = nil,
        defaultTimeZone: String = "UTC"
    ) {
        self.unpaidHoldMs = unpaidHoldMs
        self.holdByMethodMs = holdByMethodMs
        self.unpaidRemindersMs = unpaidRemindersMs
        self.unpaidChannels = unpaidChannels
        self.failedRemindersMs = failedRemindersMs
        self.failedChannels = failedChannels ?? unpaidChannels
        self.paidChannels = paidChannels ?? unpaidChannels
        self.balanceRemindersMs = balanceRemindersMs
        self.balanceDueMs = balanceDueMs
        self.installmentRemindersMs = installmentRemindersMs
        self.overdueEveryMs = overdueEveryMs
        self.overdueMax = overdueMax
        self.cancelOnOverdue = cancelOnOverdue
        self.partiallyPaidChannels = partiallyPaidChannels ?? unpaidChannels
        self.refundStallAfterMs = refundStallAfterMs
        self.refundingChannels = refundingChannels ?? unpaidChannels
        self.payingStallAfterMs = max(1, payingStallAfterMs)
        self.payingEscalations = max(0, payingEscalations)
        self.payingGiveUpAfterMs = payingGiveUpAfterMs
        self.reconcileEnabled = reconcileEnabled
        self.reinstateLatePayments = reinstateLatePayments
        self.supportContact = supportContact
        self.chineseByDefault = chineseByDefault
        self.templates = templates ?? (chineseByDefault ? .builtIn : .builtIn.withDefaultLocale("en"))
        self.fixedRecipients = fixedRecipients
        self.opsChannel = opsChannel
        self.maxClockSkewMs = maxClockSkewMs
        self.quietHours = quietHours
        self.defaultTimeZone = defaultTimeZone
    }

    /// When the balance of a partially paid order without an installment plan is due:
    /// `expires_at`, else `created_at + [partially_paid].balance_due`.
    public func balanceDue(of order: OrderRecord) -> Millis {
        order.expiresAt ?? (order.createdAt ?? 0).saturatingAdd(balanceDueMs)
    }

    /// When the hold of `order` ends: `expires_at`, else `created_at` + the hold of its payment
    /// method (`payment_method`, else `attemptMethod`, the latest attempt's) in
    /// `[unpaid.hold_by_method]`, else `created_at + [unpaid].hold`.
    public func expiry(of order: OrderRecord, attemptMethod: String? = nil) -> Millis {
        if let expiresAt = order.expiresAt { return expiresAt }
        let method = order.paymentMethod.flatMap { $0.isEmpty ? nil : $0 } ?? attemptMethod
        let hold = method.flatMap { holdByMethodMs[$0] } ?? unpaidHoldMs
        // Saturating: `orders show` asks this of quarantined rows too, whatever their times.
        return (order.createdAt ?? 0).saturatingAdd(hold)
    }
}
