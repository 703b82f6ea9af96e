#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// Where paywatch's logs go: the one place that decides between the journal and stderr lines.
public enum PaywatchLogging {
    /// The handler for the process: ``JournalLogHandler`` when stderr is the journal (the service
    /// runs under systemd with the default `StandardError=journal`), else ``LineLogHandler`` on
    /// stderr (a terminal, a pipe, a file, or a service whose stderr systemd sends elsewhere).
    /// - Parameter journalStream: the value of `JOURNAL_STREAM`; by default the process's.
    public static func makeHandler(
        label: String, level: Logger.Level, journalStream: String? = getenv("JOURNAL_STREAM").map { String(cString: $0) }
    ) -> any LogHandler {
        if isJournalStream(journalStream, fd: 2) {
            return JournalLogHandler(label: label, level: level)
        }
        return LineLogHandler(label: label, level: level)
    }

    /// Whether `fd` is the stream systemd connected to the journal, as systemd.exec(5) says to check:
    /// `JOURNAL_STREAM` is `DEVICE:INODE` (decimal) of that stream, and must equal `st_dev:st_ino` of
    /// `fstat(fd)`. The variable alone is not enough: it is inherited by children whose stderr was
    /// redirected (`paywatch … 2>file` in a shell started from a unit), whose logs must stay lines.
    public static func isJournalStream(_ value: String?, fd: Int32) -> Bool {
        guard let value, let colon = value.firstIndex(of: ":"),
              let device = UInt64(value[..<colon]), let inode = UInt64(value[value.index(after: colon)...])
        else { return false }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}
