import Foundation

/// UTC offsets of IANA zones, from the system tz database (Foundation's `TimeZone`). Reading the
/// database is not business logic: the answer is a pure function of the zone name and instant.
public enum TimeZoneOffsets {
    public static func offsetSeconds(_ identifier: String, at ms: Millis) -> Int? {
        guard let zone = zone(identifier) else { return nil }
        return zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// The zone named `identifier` (`Asia/Shanghai`), or nil when the system does not know it.
    /// Looked up once per name: planning asks for the same few zones for every message.
    public static func zone(_ identifier: String) -> TimeZone? {
        cache.lock.lock()
        defer { cache.lock.unlock() }
        if let known = cache.zones[identifier] { return known }
        let zone = TimeZone(identifier: identifier)
        // The names come from the shop's rows: the cache stops growing at a bound (a name not
        // kept is looked up again, which is only slower).
        if cache.zones.count < ZoneCache.limit { cache.zones[identifier] = .some(zone) }
        return zone
    }

    private static let cache = ZoneCache()

    private final class ZoneCache: @unchecked Sendable {
        static let limit = 1_024
        let lock = NSLock()
        /// nil for a name the system does not know (`.some(nil)`), so it is not looked up again.
        var zones: [String: TimeZone?] = [:]
    }
}
