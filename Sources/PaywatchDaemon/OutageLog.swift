import Logging
import PaywatchCore

/// How a store outage reaches the log: an error when it starts (or its error changes), then at
/// most one a minute with the number of failed tries, and a notice when it ends. A disk that stays
/// full for an hour is a few dozen lines, not one per retry.
struct OutageLog {
    /// What failed, for the messages: "planning", "recording deliveries".
    let what: String
    private var since: Millis?
    private var lastError = ""
    private var lastLogged: Millis = 0
    private var failures = 0

    init(_ what: String) {
        self.what = what
    }

    mutating func failed(_ error: String, now: Millis, logger: Logger) {
        failures += 1
        if since == nil { since = now }
        guard error != lastError || now - lastLogged >= 60_000 else { return }
        logger.error("\(what) failed; retrying", metadata: ["error": "\(error)", "failures": "\(failures)"])
        lastError = error
        lastLogged = now
    }

    mutating func succeeded(now: Millis, logger: Logger) {
        guard let since else { return }
        logger.notice("\(what) works again", metadata: ["failures": "\(failures)", "outage_ms": "\(now - since)"])
        self.since = nil
        lastError = ""
        failures = 0
    }
}
