import Foundation

// The values of `[quiet_hours]` and `[daemon] time_zone`: a time of day and a zone name. The zone
// is checked against the system's tz database (Foundation's `TimeZone`), the same one the planner
// reads, so a name accepted here is one the planner knows.

extension ValueKind where Value == Int {
    /// `"HH:MM"` (24 h, `00:00` … `23:59`; `H:MM` too), held as minutes after midnight.
    static var timeOfDay: ValueKind {
        ValueKind(
            type: "`HH:MM`",
            read: { node in
                guard case .string(let text) = node else {
                    return .failure(ValueProblem("expected a time of day string such as \"21:00\", got \(node.summary)"))
                }
                return parseTimeOfDay(text).map { .success($0) }
                    ?? .failure(ValueProblem("expected a time of day \"HH:MM\" (00:00 … 23:59), got \(tomlQuoted(text))"))
            },
            render: { tomlQuoted(formatTimeOfDay($0)) })
    }
}

extension ValueKind where Value == String {
    /// An IANA time zone name the system knows (`Asia/Shanghai`, `UTC`).
    static var timeZoneName: ValueKind {
        ValueKind(
            type: "IANA time zone",
            read: { node in
                guard case .string(let text) = node, !text.isEmpty else {
                    return .failure(ValueProblem("expected a time zone name such as \"Asia/Shanghai\", got \(node.summary)"))
                }
                guard TimeZone(identifier: text) != nil else {
                    return .failure(ValueProblem("unknown time zone \(tomlQuoted(text)): expected an IANA name such as \"Asia/Shanghai\" or \"UTC\""))
                }
                return .success(text)
            },
            render: tomlQuoted)
    }
}

/// Minutes after midnight of `"HH:MM"` or `"H:MM"`, or nil.
func parseTimeOfDay(_ text: String) -> Int? {
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2, (1...2).contains(parts[0].count), parts[1].count == 2,
          parts.allSatisfy({ $0.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }),
          let hours = Int(parts[0]), let minutes = Int(parts[1]), hours < 24, minutes < 60 else { return nil }
    return hours * 60 + minutes
}

/// `"08:00"` for 480.
func formatTimeOfDay(_ minutes: Int) -> String {
    let h = minutes / 60, m = minutes % 60
    return (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
}
