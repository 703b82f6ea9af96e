// Durations in the configuration file are strings such as "500ms", "10s", "30m", "1h30m" or "2d".

private let durationUnits: [(suffix: String, milliseconds: Int64)] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
]

/// Parses a duration string into milliseconds.
///
/// Accepted: one or more `<digits><unit>` parts with units `ms`, `s`, `m`, `h`, `d`, each unit at most
/// once and in descending order (`"1h30m"`, `"1d12h"`, `"1m30s500ms"`). The total must be greater than
/// zero. No signs, fractions, spaces or bare numbers.
/// - Returns: the duration in milliseconds, or `nil` if `text` is not a valid positive duration.
public func parseDuration(_ text: String) -> Int64? {
    guard let ms = parseDurationAllowingZero(text), ms > 0 else { return nil }
    return ms
}

/// Formats milliseconds as the canonical duration string, e.g. `5_400_000` → `"1h30m"`, `500` → `"500ms"`.
///
/// `parseDuration(formatDuration(x)) == x` for every `x > 0`. Zero is `"0s"`; negative values get a
/// leading `-` (neither is accepted back by ``parseDuration(_:)``).
public func formatDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    var rest = ms.magnitude
    var out = ms < 0 ? "-" : ""
    for unit in durationUnits {
        let size = UInt64(unit.milliseconds)
        let count = rest / size
        if count > 0 {
            out += "\(count)\(unit.suffix)"
            rest -= count * size
        }
    }
    return out
}

/// The longest duration any key accepts: 100 years (36,500 days). Longer values are configuration
/// errors, so that adding a duration to a time (milliseconds since 1970) can never overflow.
public let maxDurationMs: Int64 = 36_500 * 86_400_000

/// Why a duration string is not accepted, e.g. `invalid duration "10x": expected …`.
public struct DurationProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// Parses a duration as every configuration key and command-line option takes it: well-formed,
/// greater than zero and at most ``maxDurationMs`` (100 years).
public func parseBoundedDuration(_ text: String) -> Result<Int64, DurationProblem> {
    switch scanDuration(text) {
    case .malformed:
        return .failure(DurationProblem(description: "invalid duration \(tomlQuoted(text)): expected \(durationSyntax)"))
    case .overflow:
        return .failure(DurationProblem(description: "duration \(tomlQuoted(text)) is longer than 100 years (36500d)"))
    case .milliseconds(let ms):
        if ms <= 0 {
            return .failure(DurationProblem(description: "duration \(tomlQuoted(text)) must be greater than zero"))
        }
        if ms > maxDurationMs {
            return .failure(DurationProblem(description: "duration \(tomlQuoted(text)) is longer than 100 years (36500d)"))
        }
        return .success(ms)
    }
}

let durationSyntax = "a positive whole number and a unit (ms, s, m, h, d), e.g. \"30m\" or \"1h30m\""

/// Like ``parseDuration(_:)`` but returns 0 for a well-formed zero duration such as `"0s"`,
/// so that callers can tell "zero" apart from "malformed". No upper bound (see ``maxDurationMs``).
func parseDurationAllowingZero(_ text: String) -> Int64? {
    if case .milliseconds(let ms) = scanDuration(text) { return ms }
    return nil
}

enum DurationScan: Equatable {
    case milliseconds(Int64)
    /// Well-formed, but the total does not fit in `Int64` milliseconds.
    case overflow
    case malformed
}

/// Scans a duration string; tells a well-formed but enormous value (`"999999999999999d"`) apart
/// from a malformed one, so the error can say "longer than 100 years".
func scanDuration(_ text: String) -> DurationScan {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty else { return .malformed }
    var index = 0
    var total: Int64 = 0
    var overflowed = false
    var lastRank = -1
    while index < bytes.count {
        var value: Int64 = 0
        let digitsStart = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
            if o1 || o2 { overflowed = true }
            value = sum
            index += 1
        }
        guard index > digitsStart, index < bytes.count else { return .malformed }
        let rank: Int
        switch bytes[index] {
        case UInt8(ascii: "d"): rank = 0; index += 1
        case UInt8(ascii: "h"): rank = 1; index += 1
        case UInt8(ascii: "m"):
            if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "s") {
                rank = 4; index += 2
            } else {
                rank = 2; index += 1
            }
        case UInt8(ascii: "s"): rank = 3; index += 1
        default: return .malformed
        }
        guard rank > lastRank else { return .malformed }
        lastRank = rank
        let (part, o1) = value.multipliedReportingOverflow(by: durationUnits[rank].milliseconds)
        let (sum, o2) = total.addingReportingOverflow(part)
        if o1 || o2 { overflowed = true }
        total = sum
    }
    return overflowed ? .overflow : .milliseconds(total)
}
