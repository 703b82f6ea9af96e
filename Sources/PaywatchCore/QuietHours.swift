import Foundation

/// `[quiet_hours]`: a daily window of local time (in the customer's zone) during which customer
/// messages on some channels are not delivered; one decided inside it waits for its end.
///
/// The window is `start ..< end` in minutes after local midnight; it crosses midnight when `end`
/// is not after `start` (21:00–08:00). Local time is the wall clock of the zone, daylight saving
/// time included: on the night the clocks go forward the window is an hour shorter.
public struct QuietHours: Sendable, Hashable {
    /// Minutes after local midnight, `0 ..< 1440`.
    public var start: Int
    /// Minutes after local midnight, `0 ..< 1440`, not equal to ``start``.
    public var end: Int
    /// The channels whose messages wait (never the ops channel).
    public var channels: Set<String>

    public init(start: Int, end: Int, channels: Set<String>) {
        self.start = start
        self.end = end
        self.channels = channels
    }

    static let dayMs: Millis = 86_400_000

    /// Whether `minute` (after local midnight) is inside the window.
    public func contains(minute: Int) -> Bool {
        start < end ? (start <= minute && minute < end) : (minute >= start || minute < end)
    }

    /// When the quiet hours that `now` falls in end, in `zone` (UTC milliseconds); nil when `now`
    /// is outside them.
    public func end(containing now: Millis, in zone: TimeZone) -> Millis? {
        let offset = Self.offsetMs(zone, now)
        let local = now.saturatingAdd(offset)
        let midnight = local.floorDiv(Self.dayMs) * Self.dayMs
        guard contains(minute: Int((local - midnight) / 60_000)) else { return nil }
        var endLocal = midnight.saturatingAdd(Millis(end) * 60_000)
        if endLocal <= local { endLocal = endLocal.saturatingAdd(Self.dayMs) }  // after midnight: tomorrow's end
        return Self.instant(ofWallTime: endLocal, in: zone, after: now, guess: offset)
    }

    /// The first instant after `now` at which the wall clock of `zone` shows `wall` (local time
    /// written as if it were UTC). Of a time shown twice (the clocks went back) the first one
    /// after `now`; of a time never shown (the clocks jumped over it) the jump itself, when the
    /// clock first shows a later time.
    static func instant(ofWallTime wall: Millis, in zone: TimeZone, after now: Millis, guess: Millis) -> Millis {
        let first = wall.saturatingSubtract(guess)
        let other = offsetMs(zone, first)
        var candidates = [first]
        if other != guess { candidates.append(wall.saturatingSubtract(other)) }
        let valid = candidates.filter { $0 > now && offsetMs(zone, $0) == wall.saturatingSubtract($0) }.sorted()
        if let earliest = valid.first { return earliest }
        // In the gap of a jump forward: the jump happens between the two candidates.
        let low = candidates.min() ?? first
        if let jump = zone.nextDaylightSavingTimeTransition(after: date(low.saturatingSubtract(1))) {
            let seconds = jump.timeIntervalSince1970
            if seconds.isFinite, abs(seconds) < 9e15 / 1000 {
                let at = Millis((seconds * 1000).rounded())
                if at > now { return at }
            }
        }
        return max(candidates.max() ?? first, now.saturatingAdd(1))
    }

    static func offsetMs(_ zone: TimeZone, _ ms: Millis) -> Millis {
        Millis(zone.secondsFromGMT(for: date(ms))) * 1000
    }

    private static func date(_ ms: Millis) -> Date {
        Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    /// `"21:00"` for a number of minutes after midnight.
    public static func clock(_ minute: Int) -> String {
        let h = minute / 60, m = minute % 60
        return (h < 10 ? "0" : "") + String(h) + ":" + (m < 10 ? "0" : "") + String(m)
    }
}

extension Planner {
    /// The zone `order`'s local times are in: its `time_zone` when the system knows that name,
    /// else `[daemon] time_zone` (UTC by default).
    public func timeZone(of order: OrderRecord) -> (name: String, zone: TimeZone) {
        if let name = order.timeZone, !name.isEmpty, let zone = TimeZoneOffsets.zone(name) { return (name, zone) }
        if let zone = TimeZoneOffsets.zone(policy.defaultTimeZone) { return (policy.defaultTimeZone, zone) }
        return ("UTC", TimeZone(secondsFromGMT: 0) ?? .current)
    }

    /// When a `kind` message to `order` on `channel`, decided at `now`, may be delivered: the end
    /// of the quiet hours `now` falls in (in the order's zone), or nil when it may go at once (no
    /// quiet hours, another channel, outside them). Ops messages never wait.
    public func quietUntil(_ kind: NotificationKind, channel: String, order: OrderRecord, at now: Millis) -> Millis? {
        guard let quiet = policy.quietHours, !kind.isOps, channel != policy.opsChannel, quiet.channels.contains(channel) else {
            return nil
        }
        return quiet.end(containing: now, in: timeZone(of: order).zone)
    }
}
