import Foundation

/// UTC offsets of IANA zones, from the system tz database (Foundation's `TimeZone`). Reading the
/// database is not business logic: the answer is a pure function of the zone name and instant.
public enum TimeZoneOffsets {
    public static func offsetSeconds(_ identifier: String, at ms: Millis) -> Int? {
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        return zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
