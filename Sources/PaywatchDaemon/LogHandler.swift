#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import PaywatchCore

/// One line per event on stderr: `time LEVEL message key=value …`. Callers put order ids,
/// events and channels into metadata (`order_id`, `event`, `channel`) and mask addresses with
/// ``Redact`` before logging; this handler never sees secrets.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let clock: any PaywatchClock

    public init(label: String, level: Logger.Level = .info, clock: any PaywatchClock = SystemClock()) {
        self.label = label
        self.logLevel = level
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let line = Self.line(at: clock.now(), level: event.level, message: event.message.description,
                             metadata: Self.merged(metadata, event.metadata))
        // One write(2) per line, so lines from concurrent loops never interleave. A failed
        // write (stderr closed: EPIPE, SIGPIPE being ignored) is dropped.
        var text = line
        text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }

    /// The handler's metadata with the event's on top (the event's value wins for a key in both).
    static func merged(_ handler: Logger.Metadata, _ event: Logger.Metadata?) -> Logger.Metadata {
        guard let event else { return handler }
        if handler.isEmpty { return event }
        return handler.merging(event) { $1 }
    }

    /// One log line, newline included: `time LEVEL message key=value …`, keys sorted.
    static func line(at time: Millis, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var line = Timestamp.iso8601(time)
        line.reserveCapacity(256)
        line += " "
        line += level.rawValue.uppercased()
        line += " "
        append(message, to: &line, quoting: false)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " "
            line += key
            line += "="
            append(value.description, to: &line, quoting: true)
        }
        line += "\n"
        return line
    }

    /// Appends `text` so that one event stays one line whatever it holds: control characters
    /// are escaped (`\n`, `\r`, `\t`, `\u{…}`), and a value (`quoting`) that is empty or holds
    /// a space, `"`, `=` or `\` is quoted, with `"` and `\` escaped. Ids, gateway bodies and
    /// error texts come from outside: none of them can forge a line or a key.
    static func append(_ text: String, to line: inout String, quoting: Bool) {
        var plain = true
        var needsQuotes = text.isEmpty
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F || byte == UInt8(ascii: "\\") || byte == 0xE2 || byte == 0xC2 {
                plain = false
            }
            if byte == 32 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\\") {
                needsQuotes = true
            }
        }
        guard quoting else {
            if plain { line += text } else { line += Self.escaped(text, quotes: false) }
            return
        }
        if plain && !needsQuotes {
            line += text
        } else if needsQuotes {
            line += "\""
            line += Self.escaped(text, quotes: true)
            line += "\""
        } else {
            line += Self.escaped(text, quotes: false)
        }
    }

    private static func escaped(_ text: String, quotes: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += quotes ? "\\\\" : "\\"
            case "\"": out += quotes ? "\\\"" : "\""
            default:
                let value = scalar.value
                if value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029 {
                    out += "\\u{" + String(value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
