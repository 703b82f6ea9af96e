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
        var line = Timestamp.iso8601(clock.now())
        line.reserveCapacity(256)
        line += " "
        line += event.level.rawValue.uppercased()
        line += " "
        line += event.message.description
        var merged = metadata
        if let extra = event.metadata {
            if merged.isEmpty { merged = extra } else { merged.merge(extra) { $1 } }
        }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            let text = value.description
            line += " "
            line += key
            line += "="
            if text.isEmpty || text.utf8.contains(32) {
                line += "\""
                line += text
                line += "\""
            } else {
                line += text
            }
        }
        line += "\n"
        // One write(2) per line, so lines from concurrent loops never interleave.
        line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }
}
