/// Decides whether an order's rows are usable. A problem quarantines the order: it is skipped,
/// logged once with the reason and shown by `paywatch orders show`, and everything else goes on.
public enum Validator {
    /// The first problem found, phrased for an operator (no personal data in it), or nil.
    public static func problem(in snapshot: OrderSnapshot) -> String? {
        guard let order = snapshot.order else {
            if let payment = snapshot.payments.first {
                return "payment \(payment.id) points to no order \(snapshot.orderID)"
            }
            if let refund = snapshot.refunds.first {
                return "refund \(refund.id) points to no order \(snapshot.orderID)"
            }
            if !snapshot.installments.isEmpty {
                return "installments point to no order \(snapshot.orderID)"
            }
            return "order \(snapshot.orderID) does not exist"
        }
        guard let due = order.amountDue else { return "amount_due is missing or not an integer" }
        if due < 0 { return "amount_due is negative (\(due))" }
        if !isCurrency(order.currency) { return "currency is not an ISO 4217 code" }
        if order.createdAt == nil { return "created_at is missing or not integer milliseconds" }
        if let phone = order.phone, !phone.isEmpty, !isE164(phone) { return "phone is not E.164 (+ and 7 to 15 digits)" }
        if let email = order.email, !email.isEmpty, !isEmail(email) { return "email is malformed" }
        for payment in snapshot.payments {
            guard let amount = payment.amount else { return "payment \(payment.id): amount is missing or not an integer" }
            if amount < 0 { return "payment \(payment.id): amount is negative (\(amount))" }
            if payment.paymentStatus == nil { return "payment \(payment.id): unknown status \"\(clip(payment.status))\"" }
            if payment.createdAt == nil { return "payment \(payment.id): created_at is missing" }
        }
        for refund in snapshot.refunds {
            guard let amount = refund.amount else { return "refund \(refund.id): amount is missing or not an integer" }
            if amount < 0 { return "refund \(refund.id): amount is negative (\(amount))" }
            if refund.refundStatus == nil { return "refund \(refund.id): unknown status \"\(clip(refund.status))\"" }
        }
        for installment in snapshot.installments {
            guard let amount = installment.amount, amount >= 0 else {
                return "installment \(installment.seq): amount is missing or negative"
            }
            if installment.dueAt == nil { return "installment \(installment.seq): due_at is missing" }
        }
        return nil
    }

    /// `+` then 7 to 15 digits, the first not 0.
    public static func isE164(_ phone: String) -> Bool {
        let bytes = Array(phone.utf8)
        guard bytes.count >= 8, bytes.count <= 16, bytes[0] == UInt8(ascii: "+") else { return false }
        guard bytes[1] != UInt8(ascii: "0") else { return false }
        return bytes.dropFirst().allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// A pragmatic check: one `@`, a non-empty local part, a dotted domain, no spaces or controls.
    public static func isEmail(_ email: String) -> Bool {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64 else { return false }
        let domain = parts[1]
        guard domain.contains("."), !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else {
            return false
        }
        return email.unicodeScalars.allSatisfy { $0.value > 32 && $0.value != 127 }
    }

    public static func isCurrency(_ code: String) -> Bool {
        code.utf8.count == 3 && code.utf8.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    private static func clip(_ text: String) -> String {
        text.count <= 32 ? text : String(text.prefix(32)) + "…"
    }
}
