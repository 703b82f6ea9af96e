import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchStore

/// Applies `[retention]` in the running service: once at start, then every hour, it prunes the
/// history of orders settled for longer than `keep`, batch after batch of `batch_size` orders
/// (each batch one short write transaction; the task yields in between, so the shop's writes,
/// planning and delivery get the write lock between two batches).
///
/// Why hourly and not every poll: `keep` is counted in days (90 by default), so an hour late is
/// nothing, and an idle run is one index read that finds nothing; a run at start covers daemons
/// that are restarted more often than that. A busy or failing store is retried a minute later,
/// logged as an outage (an error when it starts, a notice when it ends), never one line per try.
struct Pruner {
    let runtime: Runtime
    /// From one run to the next.
    static let intervalMs: Millis = 3_600_000
    /// After a failed run.
    static let retryMs: Millis = 60_000

    /// Runs until cancelled: at once (`atOnce`) or after an interval, then every interval.
    func run(atOnce: Bool = true) async {
        var outage = OutageLog("pruning")
        if !atOnce {
            do { try await runtime.clock.sleep(until: runtime.clock.now() + Self.intervalMs) } catch { return }
        }
        while !Task.isCancelled {
            var next = runtime.clock.now() + Self.intervalMs
            do {
                try await pruneNow()
                outage.succeeded(now: runtime.clock.now(), logger: runtime.logger)
            } catch is CancellationError {
                return
            } catch {
                outage.failed("\(error)", now: runtime.clock.now(), logger: runtime.logger)
                next = runtime.clock.now() + Self.retryMs
            }
            do {
                try await runtime.clock.sleep(until: next)
            } catch {
                return
            }
        }
    }

    /// One run: every batch due now; one summary line when it pruned anything.
    func pruneNow() async throws {
        let retention = runtime.config.retention
        let counts = try await runtime.store.pruneAll(now: runtime.clock.now(), keepMs: retention.keepMs,
                                                      batchSize: retention.batchSize)
        guard counts.orders > 0 else { return }
        runtime.logger.notice("history pruned", metadata: Self.metadata(counts, keepMs: retention.keepMs))
    }

    /// The summary's fields (the journal's and the stderr line's).
    static func metadata(_ counts: PruneCounts, keepMs: Millis) -> Logger.Metadata {
        ["event": "pruned", "orders": "\(counts.orders)", "events": "\(counts.events)", "outbox": "\(counts.outbox)",
         "attempts": "\(counts.attempts)", "keep": "\(formatDuration(keepMs))"]
    }
}
