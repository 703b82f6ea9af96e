import Foundation
import Logging
import PaywatchCore
import PaywatchTestSupport
@testable import PaywatchDaemon

/// The in-process service's log, every level, as `paywatch run` would write it
/// (``LineLogHandler``'s lines), into a file of the run's log folder (``TestLogs``): kept for
/// `scripts/secret-grep.sh`, which looks there for every secret the tests used.
struct TestLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    let file: FileHandle?
    let clock: any PaywatchClock

    /// A logger writing to a new file named after `name`.
    static func logger(_ name: String, clock: any PaywatchClock) -> Logger {
        let handle = FileHandle(forWritingAtPath: TestLogs.file("daemon-" + name))
        return Logger(label: "test") { _ in TestLogHandler(file: handle, clock: clock) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = LineLogHandler.line(at: clock.now(), level: event.level, message: event.message.description,
                                       metadata: LineLogHandler.merged(metadata, event.metadata))
        file?.write(Data(line.utf8))  // one write(2) per line: lines never interleave
    }
}
