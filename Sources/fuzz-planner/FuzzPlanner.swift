// libFuzzer target for the planner over random rows.
//
// Built by scripts/fuzz.sh with `-sanitize=fuzzer -D PAYWATCH_FUZZ`; a plain `swift build` gives a
// command that replays the files named on its command line (`.build/debug/fuzz-planner FILE…`).
//
// The input bytes are read as a recipe for one `OrderSnapshot` (order, payments, refunds,
// installments, tracked state), a `Policy` and `now`, biased toward values that hurt: Int64.min/max,
// 0, -1 and their neighbours, times near `now`, control characters, CR/LF, U+FFFD, emoji, "+", "@".
// Checked: `Planner.plan` and the message, time and redaction helpers applied to its output never
// crash; and when the plan does not quarantine the order, every idempotency key (and the
// dead-letter key built from it) is printable ASCII: no control characters, no CR/LF, nothing
// above 0x7E.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FuzzDriver
import PaywatchCore

/// Reads the fuzzer's bytes as choices; past the end every choice is 0 (the simplest).
struct Recipe {
    var bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func byte() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(byte()) % n }
    mutating func chance(_ inEight: Int) -> Bool { Int(byte() & 7) < inEight }

    mutating func raw64() -> Int64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(byte()) }
        return Int64(bitPattern: value)
    }

    static let extremes: [Int64] = [
        .min, .min + 1, .min + 999, .max, .max - 1, .max - 999, 0, -1, 1, 999, 1000, -1000,
        Int64(Int32.max), Int64(Int32.min), Int64(Int32.max) * 1000, Int64(Int32.min) * 1000,
        Int64.max / 2, Int64.min / 2, Int64.max / 1000, Int64.min / 1000,
        946_684_800_000,  // 2000-01-01
        7_258_118_400_000,  // 2200-01-01
        253_402_300_799_999,  // 9999-12-31T23:59:59.999
        -62_135_596_800_000,  // 0001-01-01
    ]

    /// An amount in minor units: often small and sane, often extreme.
    mutating func amount() -> Int64 {
        switch below(8) {
        case 0, 1, 2: return Int64(below(256)) * 100
        case 3: return Int64(byte()) << 8 | Int64(byte())
        case 4, 5: return Recipe.extremes[below(Recipe.extremes.count)]
        case 6: return Int64.max - Int64(below(256))
        default: return raw64()
        }
    }

    /// A time: usually near `now` (minutes to days either way), sometimes extreme or arbitrary.
    mutating func time(near now: Int64) -> Int64 {
        switch below(8) {
        case 0, 1, 2, 3:
            let minutes = Int64(Int16(bitPattern: UInt16(byte()) << 8 | UInt16(byte())))
            let (sum, overflow) = now.addingReportingOverflow(minutes * 60_000)
            return overflow ? now : sum
        case 4: return now
        case 5, 6: return Recipe.extremes[below(Recipe.extremes.count)]
        default: return raw64()
        }
    }

    mutating func optional<T>(_ make: (inout Recipe) -> T) -> T? {
        chance(7) ? make(&self) : nil
    }

    static let pieces: [String] = [
        "", "A1", "ORD-1001", "P1", "R1", "+", "@", "+8613800000000", "+14155552671", "li@example.com",
        "a@b.c", "\r\n", "\n", "\r", "\t", "\u{0}", "\u{1B}[31m", "\u{7F}", "\u{85}", "\u{2028}", "\u{FFFD}",
        "😀", "👩‍👩‍👧", "订单", "zh-CN", "zh", "en", "Asia/Shanghai", "UTC", "America/New_York",
        "Pacific/Kiritimati", "Etc/GMT+12", "Europe/Nope", "CNY", "JPY", "KWD", "usd", ":", "%", "\"", "\\",
        "pw1:dead:", "dead:pw1:", " ", "X-Injected: yes", "https://pay.example/o/1", "e\u{301}",
    ]

    /// A short string glued from pieces and raw bytes (raw bytes that are not UTF-8 become U+FFFD,
    /// as they would when decoded leniently).
    mutating func text() -> String {
        var out = ""
        for _ in 0..<below(4) {
            if chance(6) {
                out += Recipe.pieces[below(Recipe.pieces.count)]
            } else {
                let count = below(6)
                var raw: [UInt8] = []
                for _ in 0..<count { raw.append(byte()) }
                out += String(decoding: raw, as: UTF8.self)
            }
        }
        return out
    }

    /// An id: a plain one most of the time, so that rows match their order.
    mutating func id(_ plain: [String]) -> String {
        chance(6) ? plain[below(plain.count)] : text()
    }

    mutating func status(_ valid: [String]) -> String {
        chance(7) ? valid[below(valid.count)] : text()
    }

    mutating func channels() -> [String] {
        let all = ["push", "sms", "email", "ops", "webhook"]
        let mask = byte()
        return all.indices.filter { mask & (1 << $0) != 0 }.map { all[$0] }
    }

    /// Ascending positive offsets, as the configuration allows (up to 100 years, the bound the
    /// configuration is meant to enforce).
    /// One duration as the configuration allows them: minutes most of the time, up to 100 years.
    mutating func span() -> Int64 {
        chance(6) ? Int64(1 + below(256)) * 60_000 : Int64(1 + below(100)) * 365 * 86_400_000
    }

    mutating func offsets() -> [Int64] {
        var out: [Int64] = []
        var at: Int64 = 0
        for _ in 0..<below(4) {
            at += chance(6) ? Int64(1 + below(256)) * 60_000 : Int64(1 + below(100)) * 365 * 86_400_000
            out.append(at)
        }
        return out
    }
}

func makeCase(_ bytes: UnsafeBufferPointer<UInt8>) -> (Policy, OrderSnapshot, Int64) {
    var r = Recipe(bytes)
    let now: Int64 = r.chance(6) ? 1_780_000_000_000 + Int64(r.byte()) * 3_600_000 : r.time(near: 1_780_000_000_000)

    var policy = Policy(
        unpaidHoldMs: r.chance(7) ? Int64(1 + r.below(256)) * 60_000 : Int64(1 + r.below(100)) * 365 * 86_400_000,
        unpaidRemindersMs: r.offsets(),
        unpaidChannels: r.channels(),
        failedRemindersMs: r.offsets(),
        failedChannels: r.chance(4) ? r.channels() : nil,
        paidChannels: r.chance(4) ? r.channels() : nil,
        balanceRemindersMs: r.offsets(),
        balanceDueMs: r.span(),
        installmentRemindersMs: Array(r.offsets().reversed()),
        overdueEveryMs: r.span(),
        overdueMax: 1 + r.below(5),
        cancelOnOverdue: r.chance(2),
        refundStallAfterMs: r.span(),
        payingStallAfterMs: r.span(),
        payingEscalations: 1 + r.below(4),
        payingGiveUpAfterMs: r.span(),
        reconcileEnabled: r.chance(2),
        reinstateLatePayments: r.chance(2),
        supportContact: r.chance(4) ? r.text() : nil,
        chineseByDefault: r.chance(2),
        fixedRecipients: r.chance(4) ? ["ops": r.text(), "webhook": r.text()] : [:],
        opsChannel: ["ops", "pager", "ops_2"][r.below(3)]  // a channel name: [a-z][a-z0-9_]*, checked by the configuration
    )
    policy.holdByMethodMs = r.chance(4) ? ["alipay": r.span(), "bank_transfer": r.span()] : [:]
    if r.chance(2) {
        let start = r.below(1440)
        policy.quietHours = QuietHours(start: start, end: (start + 1 + r.below(1439)) % 1440, channels: ["sms", "push", "webhook"])
        policy.defaultTimeZone = ["UTC", "Asia/Shanghai", "America/New_York", "Australia/Lord_Howe"][r.below(4)]
    }

    let orderIDs = ["A1", "ORD-1001", "😀", "a\r\nX-Injected: yes", "\u{FFFD}"]
    let orderID = r.id(orderIDs)
    var order: OrderRecord? = nil
    if r.chance(7) {
        order = OrderRecord(
            id: r.chance(7) ? orderID : r.id(orderIDs),
            amountDue: r.optional { $0.amount() },
            currency: r.chance(6) ? ["CNY", "JPY", "KWD", "USD"][r.below(4)] : r.text(),
            createdAt: r.optional { $0.time(near: now) },
            expiresAt: r.chance(4) ? r.time(near: now) : nil,
            email: r.optional { $0.chance(4) ? "li@example.com" : $0.text() },
            phone: r.optional { $0.chance(4) ? "+8613800000000" : $0.text() },
            pushToken: r.optional { $0.chance(4) ? "tok-\($0.byte())" : $0.text() },
            locale: r.optional { $0.chance(4) ? ["zh-CN", "en", "ZH"][$0.below(3)] : $0.text() },
            timeZone: r.optional { $0.chance(4) ? ["Asia/Shanghai", "UTC", "America/New_York", "Pacific/Kiritimati"][$0.below(4)] : $0.text() },
            payURL: r.optional { $0.text() },
            customerName: r.optional { $0.text() },
            paymentMethod: r.optional { $0.chance(6) ? ["alipay", "bank_transfer", "card"][$0.below(3)] : $0.text() }
        )
    }

    var payments: [PaymentRecord] = []
    for _ in 0..<r.below(5) {
        payments.append(PaymentRecord(
            id: r.id(["P1", "P2", "P3"]), orderID: r.chance(7) ? orderID : r.text(), amount: r.optional { $0.amount() },
            status: r.status(["pending", "succeeded", "failed"]), providerRef: r.optional { $0.text() },
            method: r.optional { $0.text() },
            failureReason: r.optional { $0.chance(4) ? "card_declined" : $0.text() },
            createdAt: r.optional { $0.time(near: now) }
        ))
    }
    var refunds: [RefundRecord] = []
    for _ in 0..<r.below(4) {
        refunds.append(RefundRecord(
            id: r.id(["R1", "R2"]), amount: r.optional { $0.amount() },
            status: r.status(["requested", "processing", "succeeded", "failed"]),
            requestedAt: r.optional { $0.time(near: now) }
        ))
    }
    var installments: [InstallmentRecord] = []
    for _ in 0..<r.below(3) {
        installments.append(InstallmentRecord(
            seq: r.chance(6) ? Int64(r.below(4)) : r.amount(), amount: r.optional { $0.amount() },  // 1…3 valid, 0 not
            dueAt: r.optional { $0.time(near: now) }
        ))
    }

    let series = ["unpaid_reminder", "failed_reminder", "payment_failed", "order_cancelled", "payment_confirmed", "late_payment"]
    var marks: [String: Int] = [:]
    for _ in 0..<r.below(4) {
        let value: Int = r.chance(6) ? r.below(4) : Int(truncatingIfNeeded: r.amount())
        marks[r.chance(7) ? series[r.below(series.count)] : r.text()] = value
    }
    let state = TrackedState(
        status: r.chance(5) ? OrderStatus.allCases[r.below(OrderStatus.allCases.count)] : nil,
        marks: marks,
        firstSeenAt: r.optional { $0.time(near: now) }
    )
    let snapshot = OrderSnapshot(
        orderID: orderID, order: order, payments: payments, installments: installments, refunds: refunds, state: state
    )
    return (policy, snapshot, now)
}

func isSafeKey(_ key: String) -> Bool {
    !key.isEmpty && key.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
}

func checkPlanner(_ input: UnsafeBufferPointer<UInt8>) {
    let (policy, snapshot, now) = makeCase(input)
    let planner = Planner(policy: policy)
    let plan = planner.plan(snapshot, now: now)
    guard plan.quarantine == nil else { return }

    for message in plan.messages {
        if !isSafeKey(message.idempotencyKey) {
            fatalError("idempotency key is not printable ASCII: \(String(reflecting: message.idempotencyKey)) (order \(String(reflecting: snapshot.orderID)))")
        }
        let dead = planner.deliveryDeadMessage(for: message, reason: "gave up after 8 attempts")
        if !isSafeKey(dead.idempotencyKey) {
            fatalError("dead-letter key is not printable ASCII: \(String(reflecting: dead.idempotencyKey))")
        }
        _ = Redact.address(message.recipient, channel: message.channel)
        _ = Redact.phone(message.recipient)
        _ = Redact.email(message.recipient)
        _ = Redact.token(message.recipient)
        // Held for the quiet hours: until a later instant, within a day and a DST hour; ops never.
        if let notBefore = message.notBefore {
            if message.kind.isOps || notBefore <= now || notBefore > now.saturatingAdd(25 * 3_600_000) {
                fatalError("\(message.kind.rawValue) held from \(now) until \(notBefore)")
            }
        }
    }
    if let due = plan.nextDueAt {
        _ = Timestamp.iso8601(due)
        _ = Timestamp.local(due, timeZone: snapshot.order?.timeZone)
    }
    _ = Messages.money(plan.amountPaid, snapshot.order?.currency ?? "CNY")
    for event in plan.events { _ = event.detail.utf8.count }
}

@main
enum FuzzPlannerMain {
    static func main() {
        FuzzDriver.run(
            usage: "usage: fuzz-planner [--print] FILE…  (replays inputs through the checks, --print shows the case first;\n"
                + "       scripts/fuzz.sh builds the fuzzer)",
            check: checkPlanner,
            show: { path, bytes in
                let (policy, snapshot, now) = makeCase(bytes)
                print("\(path): now = \(now)")
                dump(policy)
                dump(snapshot)
            })
    }
}
