#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSystemd
import Logging
import PaywatchCore

/// One field of a journal entry: a name journald accepts (`[A-Z0-9_]`, at most 64 characters, not
/// starting with `_` or a digit) and the value's bytes. A value may hold anything, newlines and NULs
/// included: `sd_journal_sendv` sends such a value length-prefixed, so it cannot end the entry or
/// start a forged field.
public struct JournalField: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }

    public var description: String { name + "=" + String(decoding: value, as: UTF8.self) }
}

/// Logs each event as one structured journal entry through journald's native protocol
/// (`sd_journal_sendv`), so that `journalctl -u paywatch ORDER_ID=A1001` tells one order's story.
///
/// Fields: `MESSAGE`, `PRIORITY` (syslog numbers), `SYSLOG_IDENTIFIER=paywatch`, one field per
/// metadata key (`order_id` → `ORDER_ID`, `event` → `EVENT`, `channel` → `CHANNEL`, `attempt` →
/// `ATTEMPT`, `http_status` → `HTTP_STATUS`, …; see ``fieldName(forKey:)``) and `CODE_FILE`,
/// `CODE_LINE`, `CODE_FUNC`. As with ``LineLogHandler``, callers mask addresses with ``Redact``
/// before logging; this handler never sees secrets.
///
/// When journald cannot take an entry (nothing listens on its socket, or there is no socket in this
/// mount namespace), the entry is written to stderr as a ``LineLogHandler`` line instead, so none is
/// lost without a trace.
/// ``PaywatchLogging/makeHandler(label:level:journalStream:)`` picks this handler only when stderr is
/// the journal.
public struct JournalLogHandler: LogHandler {
    /// Keeps the level and the metadata, and writes the line when journald cannot take an entry.
    private var fallback: LineLogHandler

    public static let identifier = "paywatch"

    /// - Parameter clock: dates the stderr lines of the fallback (the journal dates its own entries).
    public init(label: String, level: Logger.Level = .info, clock: any PaywatchClock = SystemClock()) {
        fallback = LineLogHandler(label: label, level: level, clock: clock)
    }

    public var metadata: Logger.Metadata {
        get { fallback.metadata }
        set { fallback.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { fallback.logLevel }
        set { fallback.logLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { fallback[metadataKey: key] }
        set { fallback[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        let fields = Self.fields(level: event.level, message: event.message.description,
                                 metadata: LineLogHandler.merged(metadata, event.metadata),
                                 file: event.file, function: event.function, line: event.line)
        if Self.send(fields) < 0 { fallback.log(event: event) }
    }

    /// The entry for one event: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, the metadata sorted by
    /// field name, then `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`.
    public static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, file: String, function: String, line: UInt
    ) -> [JournalField] {
        var fields = [
            JournalField("MESSAGE", message),
            JournalField("PRIORITY", String(priority(level))),
            JournalField("SYSLOG_IDENTIFIER", identifier),
        ]
        var named: [JournalField] = []
        named.reserveCapacity(metadata.count)
        for (key, value) in metadata {
            guard let name = fieldName(forKey: key) else { continue }
            named.append(JournalField(name, value.description))
        }
        fields += named.sorted { $0.name < $1.name }
        fields += [JournalField("CODE_FILE", file), JournalField("CODE_LINE", String(line)), JournalField("CODE_FUNC", function)]
        return fields
    }

    /// syslog(3) priorities, which journald filters on (`journalctl -p warning`): swift-log has no
    /// level below debug, so trace is debug (7) too.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Field names this handler writes itself, or that journald gives a meaning of its own
    /// (systemd.journal-fields(7)): a metadata key must not add a second `MESSAGE` or `PRIORITY`.
    static let reservedNames: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
        "MESSAGE_ID", "ERRNO", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW", "DOCUMENTATION", "TID",
    ]

    /// The longest field name journald accepts.
    static let maxNameLength = 64

    /// The journal field for a metadata key: upper-cased, every byte outside `[A-Z0-9_]` replaced by
    /// `_` (`http-status` → `HTTP_STATUS`). A name journald would reject or read otherwise — one
    /// starting with `_` (trusted fields only journald sets) or a digit, or one of ``reservedNames``
    /// — is prefixed with `META_`. Cut to 64 characters. Nil for an empty key.
    public static func fieldName(forKey key: String) -> String? {
        guard !key.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(key.utf8.count)
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): bytes.append(byte - 32)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"): bytes.append(byte)
            default: bytes.append(UInt8(ascii: "_"))
            }
        }
        var name = String(decoding: bytes, as: UTF8.self)
        if let first = bytes.first, first == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
            || reservedNames.contains(name) {
            name = "META_" + name
        }
        return String(name.prefix(maxNameLength))
    }

    /// Sends one entry over journald's native socket; 0, or a negative errno: `-ECONNREFUSED` when
    /// journald is gone but its socket file stays, `-ENOENT` when there is no socket at all. The
    /// fields are laid out in one buffer, one iovec each.
    static func send(_ fields: [JournalField]) -> Int32 {
        let result = sendv(fields)
        // libsystemd drops an entry without a word when the socket does not exist: sendmsg(2) fails
        // with ENOENT, yet it returns 0 and restores errno. Only the missing socket tells.
        if result == 0 && access(socketPath, F_OK) != 0 { return -ENOENT }
        return result
    }

    /// Where `sd_journal_sendv` sends (fixed in libsystemd).
    static let socketPath = "/run/systemd/journal/socket"

    private static func sendv(_ fields: [JournalField]) -> Int32 {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + 1 + $1.value.count })
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(fields.count)
        for field in fields {
            let start = buffer.count
            buffer += field.name.utf8
            buffer.append(UInt8(ascii: "="))
            buffer += field.value
            ranges.append(start..<buffer.count)
        }
        return buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            let vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
