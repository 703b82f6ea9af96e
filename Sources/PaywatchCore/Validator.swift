/// Why an order is quarantined: it is skipped, logged once with the reason and shown by
/// `paywatch orders show`, and everything else goes on. It is looked at again when its rows
/// change, or at `recheckAt` when only the passing of time can make it valid (a payment dated
/// slightly in the future).
public struct Quarantine: Sendable, Hashable {
    public var reason: String
    public var recheckAt: Millis?

    public init(_ reason: String, recheckAt: Millis? = nil) {
        self.reason = reason
        self.recheckAt = recheckAt
    }
}

/// Decides whether an order's rows are usable. Every rule here protects what comes after it: once
/// a snapshot passes, the planner's arithmetic on its money and times cannot overflow, its ids are
/// safe in a header, a key and a log line, and each payment id counts once.
public enum Validator {
    /// Times before this (2000-01-01T00:00:00Z) are not believed.
    public static let earliestTime: Millis = 946_684_800_000
    /// Times from this on (2200-01-01T00:00:00Z) are not believed.
    public static let latestTime: Millis = 7_258_118_400_000
    /// Longest id (order, payment, refund) in UTF-8 bytes.
    public static let maxIDBytes = 200

    /// The first problem found, phrased for an operator (no personal data in it), or nil.
    /// `now` and `maxClockSkewMs` decide which payment and refund times lie in the future.
    public static func check(_ snapshot: OrderSnapshot, now: Millis, maxClockSkewMs: Millis) -> Quarantine? {
        if let problem = snapshot.readProblem { return Quarantine(problem) }
        if let problem = idProblem(snapshot.orderID) { return Quarantine("order id \(problem)") }
        guard let order = snapshot.order else {
            if let payment = snapshot.payments.first {
                return Quarantine("payment \(display(payment.id)) points to no order \(display(snapshot.orderID))")
            }
            if let refund = snapshot.refunds.first {
                return Quarantine("refund \(display(refund.id)) points to no order \(display(snapshot.orderID))")
            }
            if !snapshot.installments.isEmpty {
                return Quarantine("installments point to no order \(display(snapshot.orderID))")
            }
            return Quarantine("order \(display(snapshot.orderID)) does not exist")
        }
        guard let due = order.amountDue else { return Quarantine("amount_due is missing or not an integer") }
        if due <= 0 { return Quarantine("amount_due must be positive (got \(due))") }
        if !isCurrency(order.currency) { return Quarantine("currency is not an ISO 4217 code") }
        guard let createdAt = order.createdAt else { return Quarantine("created_at is missing or not integer milliseconds") }
        if let problem = timeProblem(createdAt) { return Quarantine("created_at \(problem)") }
        if let expiresAt = order.expiresAt {
            if let problem = timeProblem(expiresAt) { return Quarantine("expires_at \(problem)") }
            if expiresAt <= createdAt { return Quarantine("expires_at is not after created_at") }
        }
        if let phone = order.phone, !phone.isEmpty, !isE164(phone) { return Quarantine("phone is not E.164 (+ and 7 to 15 digits)") }
        if let email = order.email, !email.isEmpty, !isEmail(email) { return Quarantine("email is malformed") }
        if let token = order.pushToken, !token.isEmpty, !isPrintableASCII(token, maxBytes: 4096) {
            return Quarantine("push_token is not printable ASCII (at most 4096 bytes)")
        }

        if let url = order.payURL, url.utf8.count > 2048 || url.unicodeScalars.contains(where: { isControl($0) || $0 == " " }) {
            return Quarantine("pay_url is longer than 2048 bytes or contains spaces or control characters")
        }
        if let name = order.customerName, name.utf8.count > 256 || name.unicodeScalars.contains(where: isControl) {
            return Quarantine("customer_name is longer than 256 bytes or contains control characters")
        }
        if let locale = order.locale, !isPrintableASCII(locale, maxBytes: 35) {
            return Quarantine("locale is not a language tag such as zh-CN")
        }
        if let zone = order.timeZone, !isPrintableASCII(zone, maxBytes: 64) {
            return Quarantine("time_zone is not an IANA zone name such as Asia/Shanghai")
        }

        let future = now.saturatingAdd(max(0, maxClockSkewMs))
        var paid: Int64 = 0
        var seenPayments: [String: PaymentRecord] = [:]
        for payment in snapshot.payments {
            let name = "payment \(display(payment.id))"
            if let problem = idProblem(payment.id) { return Quarantine("a payment id \(problem)") }
            if let earlier = seenPayments[payment.id] {
                if earlier != payment { return Quarantine("\(name) appears twice with different contents") }
                continue
            }
            seenPayments[payment.id] = payment
            guard let amount = payment.amount else { return Quarantine("\(name): amount is missing or not an integer") }
            if amount < 0 { return Quarantine("\(name): amount is negative (\(amount))") }
            guard let status = payment.paymentStatus else {
                return Quarantine("\(name): unknown status \"\(display(payment.status, limit: 32))\"")
            }
            guard let at = payment.createdAt else { return Quarantine("\(name): created_at is missing") }
            if let problem = timeProblem(at) { return Quarantine("\(name): created_at \(problem)") }
            if at > future {
                return Quarantine("\(name): created_at is in the future (more than [daemon] max_clock_skew ahead)",
                                  recheckAt: at.saturatingSubtract(max(0, maxClockSkewMs)))
            }
            if status == .succeeded {
                let (sum, overflow) = paid.addingReportingOverflow(amount)
                if overflow { return Quarantine("succeeded payments add up to more than a 64-bit integer holds") }
                paid = sum
            }
        }
        var refunded: Int64 = 0
        var seenRefunds: [String: RefundRecord] = [:]
        for refund in snapshot.refunds {
            let name = "refund \(display(refund.id))"
            if let problem = idProblem(refund.id) { return Quarantine("a refund id \(problem)") }
            if let earlier = seenRefunds[refund.id] {
                if earlier != refund { return Quarantine("\(name) appears twice with different contents") }
                continue
            }
            seenRefunds[refund.id] = refund
            guard let amount = refund.amount else { return Quarantine("\(name): amount is missing or not an integer") }
            if amount < 0 { return Quarantine("\(name): amount is negative (\(amount))") }
            guard let status = refund.refundStatus else {
                return Quarantine("\(name): unknown status \"\(display(refund.status, limit: 32))\"")
            }
            if let at = refund.requestedAt {
                if let problem = timeProblem(at) { return Quarantine("\(name): requested_at \(problem)") }
                if at > future {
                    return Quarantine("\(name): requested_at is in the future (more than [daemon] max_clock_skew ahead)",
                                      recheckAt: at.saturatingSubtract(max(0, maxClockSkewMs)))
                }
            }
            if status == .succeeded {
                let (sum, overflow) = refunded.addingReportingOverflow(amount)
                if overflow { return Quarantine("succeeded refunds add up to more than a 64-bit integer holds") }
                refunded = sum
            }
        }
        var seenSeqs: Set<Int64> = []
        for installment in snapshot.installments {
            // The seq is part of each installment message's key (seq × 1000 + notice).
            guard (1...1_000_000).contains(installment.seq) else {
                return Quarantine("installment seq must be 1…1000000 (got \(installment.seq))")
            }
            guard seenSeqs.insert(installment.seq).inserted else {
                return Quarantine("installment \(installment.seq) appears twice")
            }
            guard let amount = installment.amount, amount >= 0 else {
                return Quarantine("installment \(installment.seq): amount is missing or negative")
            }
            guard let dueAt = installment.dueAt else { return Quarantine("installment \(installment.seq): due_at is missing") }
            if let problem = timeProblem(dueAt) { return Quarantine("installment \(installment.seq): due_at \(problem)") }
        }
        return nil
    }

    /// Why `id` cannot be used as an id (in an idempotency key, a header, a log line), or nil.
    public static func idProblem(_ id: String) -> String? {
        if id.isEmpty { return "is empty" }
        if id.utf8.count > maxIDBytes { return "is longer than \(maxIDBytes) bytes" }
        for scalar in id.unicodeScalars {
            if isControl(scalar) { return "contains control characters (\(display(id)))" }
            // What a reader makes of bytes that are not UTF-8: the stored id is not the one read.
            if scalar == "\u{FFFD}" { return "is not valid UTF-8 (\(display(id)))" }
        }
        return nil
    }

    /// Why `ms` is not a believable time, or nil.
    static func timeProblem(_ ms: Millis) -> String? {
        guard ms < earliestTime || ms >= latestTime else { return nil }
        // The commonest mistake: Unix seconds where milliseconds belong.
        let hint = ms >= earliestTime / 1000 && ms < latestTime / 1000 ? "; it looks like seconds, paywatch expects milliseconds" : ""
        return "is outside 2000-01-01…2200-01-01 (\(ms)\(hint))"
    }

    /// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029
    }

    /// `text` as it is safe to show in a reason, a log line or a terminal: controls as `\n`,
    /// `\r`, `\t` or `\u{…}`, clipped to `limit` characters.
    public static func display(_ text: String, limit: Int = 64) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                out += "…"
                break
            }
            count += 1
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if isControl(scalar) {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `+` then 7 to 15 digits, the first not 0.
    public static func isE164(_ phone: String) -> Bool {
        let bytes = Array(phone.utf8)
        guard bytes.count >= 8, bytes.count <= 16, bytes[0] == UInt8(ascii: "+") else { return false }
        guard bytes[1] != UInt8(ascii: "0") else { return false }
        return bytes.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A pragmatic check: one `@`, a non-empty local part, a dotted domain, no spaces or controls,
    /// at most 254 bytes.
    public static func isEmail(_ email: String) -> Bool {
        guard email.utf8.count <= 254 else { return false }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64 else { return false }
        let domain = parts[1]
        guard domain.contains("."), !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else {
            return false
        }
        return email.unicodeScalars.allSatisfy { !isControl($0) && $0.value != 32 && $0 != "\u{FFFD}" }
    }

    public static func isCurrency(_ code: String) -> Bool {
        code.utf8.count == 3 && code.utf8.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    static func isPrintableASCII(_ text: String, maxBytes: Int) -> Bool {
        text.utf8.count <= maxBytes && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
