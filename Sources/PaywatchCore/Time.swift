#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 formatting of ``Millis`` in UTC, without Foundation's formatters (they are slow and
/// not needed for a fixed format).
public enum Timestamp {
    /// `2026-11-25T08:30:00Z`, or with milliseconds when they are not zero: `…:00.250Z`.
    public static func iso8601(_ ms: Millis) -> String {
        var seconds = time_t(ms.floorDiv(1000))
        let millis = Int(ms - ms.floorDiv(1000) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
        text += "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
        if millis != 0 { text += "." + pad(Int32(millis), 3) }
        return text + "Z"
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    func floorDiv(_ divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

extension Timestamp {
    /// `2026-11-25 16:30 (Asia/Shanghai)` in the order's time zone, else `2026-11-25 08:30 UTC`.
    /// The zone offset comes from the system's tz database through ``TimeZoneOffsets``.
    public static func local(_ ms: Millis, timeZone: String?) -> String {
        if let timeZone, let offset = TimeZoneOffsets.offsetSeconds(timeZone, at: ms) {
            return minutePrecision(ms + Millis(offset) * 1000) + " (\(timeZone))"
        }
        return minutePrecision(ms) + " UTC"
    }

    private static func minutePrecision(_ ms: Millis) -> String {
        let full = iso8601(ms.floorDiv(60_000) * 60_000)
        // "YYYY-MM-DDTHH:MM:00Z" → "YYYY-MM-DD HH:MM"
        let chars = Array(full)
        return String(chars[0..<10]) + " " + String(chars[11..<16])
    }
}
