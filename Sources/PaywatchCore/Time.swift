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
        // `ms % 1000` cannot overflow (floorDiv(1000) * 1000 does for Int64.min).
        let rest = ms % 1000
        let millis = Int(rest < 0 ? rest + 1000 : rest)
        return format(ms, date: "-", separator: "T", seconds: true, millis: millis, suffix: "Z")
    }

    /// Formats the UTC calendar fields of `ms` into bytes: this runs for every message and log
    /// line, so no intermediate strings. Years outside 0…9999 are written as they are.
    static func format(_ ms: Millis, date: String, separator: String, seconds: Bool, millis: Int, suffix: String) -> String {
        var time = time_t(ms.floorDiv(1000))
        var parts = tm()
        gmtime_r(&time, &parts)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        func put(_ value: Int32, _ width: Int) {
            if value < 0 || width == 4 && value > 9999 {
                out.append(contentsOf: String(value).utf8)
                return
            }
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                out.append(UInt8(48 + (rest / divisor) % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        put(parts.tm_year + 1900, 4)
        out.append(contentsOf: date.utf8)
        put(parts.tm_mon + 1, 2)
        out.append(contentsOf: date.utf8)
        put(parts.tm_mday, 2)
        out.append(contentsOf: separator.utf8)
        put(parts.tm_hour, 2)
        out.append(58)  // ":"
        put(parts.tm_min, 2)
        if seconds {
            out.append(58)
            put(parts.tm_sec, 2)
            if millis != 0 {
                out.append(46)  // "."
                put(Int32(millis), 3)
            }
        }
        out.append(contentsOf: suffix.utf8)
        return String(decoding: out, as: UTF8.self)
    }
}

extension Int64 {
    /// `self + other`, clamped to `Int64.min…Int64.max` instead of trapping: times and amounts
    /// come from the shop's rows, and no row may crash the process.
    public func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if !overflow { return sum }
        return other > 0 ? .max : .min
    }

    /// `self - other`, clamped like ``saturatingAdd(_:)``.
    public func saturatingSubtract(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        if !overflow { return difference }
        return other < 0 ? .max : .min
    }

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
            return minutePrecision(ms.saturatingAdd(Millis(offset) * 1000)) + " (\(timeZone))"
        }
        return minutePrecision(ms) + " UTC"
    }

    /// `YYYY-MM-DD HH:MM`.
    private static func minutePrecision(_ ms: Millis) -> String {
        format(ms, date: "-", separator: " ", seconds: false, millis: 0, suffix: "")
    }
}
