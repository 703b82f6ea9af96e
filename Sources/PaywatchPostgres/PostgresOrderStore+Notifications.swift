import Logging
import PaywatchStore
import PostgresNIO

extension PostgresOrderStore {
    /// `LISTEN paywatch` on a connection of its own (the pool has one more than `pool_size` for
    /// it), for as long as the stream is consumed: the triggers' `NOTIFY` (shop writes, new outbox
    /// rows, by any replica) arrive within milliseconds of their commit. A lost connection is
    /// opened again after a pause (1 s, doubling up to 30 s), and the stream then says
    /// `.reconnected`: what was notified in between is made up for by looking at once.
    public func changes() -> AsyncStream<StoreChange>? {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreChange.self, bufferingPolicy: .bufferingNewest(64))
        let task = Task { [client, logger] in
            var pauseMs: Int64 = 1000
            var first = true
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: PostgresSchema.channel) { notifications in
                            if !first { continuation.yield(.reconnected) }
                            first = false
                            pauseMs = 1000
                            for try await notification in notifications {
                                continuation.yield(notification.payload == PostgresSchema.outboxPayload ? .messagesAdded : .ordersChanged)
                            }
                        }
                    }
                } catch {
                    if Task.isCancelled || self.closing.isSet { break }
                    logger.warning("listening for changes failed; polling until it is back", metadata: [
                        "event": "listen_failed", "error": "\(Self.mapError(error, settings: self.settings))",
                    ])
                }
                first = false
                try? await Task.sleep(for: .milliseconds(pauseMs))
                pauseMs = min(pauseMs * 2, 30_000)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
