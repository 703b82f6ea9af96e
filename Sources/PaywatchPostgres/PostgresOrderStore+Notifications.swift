import Foundation
import Logging
import NIOSSL
import PaywatchStore
import PostgresNIO

extension PostgresOrderStore {
    /// `LISTEN paywatch` on a connection of its own (not the pool's: ``close()`` closes it, so a
    /// listener never holds the store open), for as long as the stream is consumed: the triggers'
    /// `NOTIFY` (shop writes, new outbox rows, by any replica) arrive within milliseconds of their
    /// commit. A lost connection is opened again after a pause (1 s, doubling up to 30 s), and the
    /// stream then says `.reconnected`: what was notified in between is made up for by looking at once.
    public func changes() -> AsyncStream<StoreChange>? {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreChange.self, bufferingPolicy: .bufferingNewest(64))
        let listener = listeners.add()
        let task = Task { [logger, settings] in
            var pauseMs: Int64 = 1000
            var first = true
            while !Task.isCancelled && !self.closing.isSet {
                var opened: PostgresConnection?
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: try Self.connectionConfiguration(settings), id: 1, logger: logger)
                    opened = connection
                    guard listener.hold(connection) else {
                        try? await connection.close()
                        break
                    }
                    try await connection.listen(on: PostgresSchema.channel) { notifications in
                        if !first { continuation.yield(.reconnected) }
                        first = false
                        pauseMs = 1000
                        for try await notification in notifications {
                            continuation.yield(notification.payload == PostgresSchema.outboxPayload ? .messagesAdded : .ordersChanged)
                        }
                    }
                    listener.release()
                    try? await connection.close()
                } catch {
                    listener.release()
                    // Closed in every case (postgres-nio requires it of every connection it opened).
                    if let opened { try? await opened.close() }
                    if Task.isCancelled || self.closing.isSet { break }
                    logger.warning("listening for changes failed; polling until it is back", metadata: [
                        "event": "listen_failed", "error": "\(Self.mapError(error, settings: settings))",
                    ])
                }
                first = false
                try? await Task.sleep(for: .milliseconds(pauseMs))
                pauseMs = min(pauseMs * 2, 30_000)
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in
            task.cancel()
            listener.close()
        }
        return stream
    }

    /// A single connection's configuration (the listener's), as the pool's.
    static func connectionConfiguration(_ settings: PostgresStoreSettings) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        switch settings.endpoint {
        case .tcp(let host, let port):
            let tls: PostgresConnection.Configuration.TLS
            switch settings.tls {
            case .disable: tls = .disable
            default:
                var base = TLSConfiguration.makeClientConfiguration()
                switch settings.tls {
                case .verifyCA: base.certificateVerification = .noHostnameVerification
                case .verifyFull: base.certificateVerification = .fullVerification
                default: base.certificateVerification = .none
                }
                if let caFile = settings.caFile { base.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
                let context = try NIOSSLContext(configuration: base)
                tls = settings.tls == .prefer ? .prefer(context) : .require(context)
            }
            configuration = PostgresConnection.Configuration(
                host: host, port: port, username: settings.username, password: settings.password, database: settings.database, tls: tls)
        case .unixSocket(let path):
            configuration = PostgresConnection.Configuration(
                unixSocketPath: path, username: settings.username, password: settings.password, database: settings.database)
        }
        configuration.options.connectTimeout = .milliseconds(settings.connectTimeoutMs)
        configuration.options.additionalStartupParameters = [("application_name", settings.applicationName)]
        return configuration
    }
}

/// The listeners' connections, so that ``PostgresOrderStore/close()`` can close them.
final class Listeners: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [Listener] = []

    func add() -> Listener {
        let listener = Listener()
        lock.withLock { all.append(listener) }
        return listener
    }

    func closeAll() {
        for listener in lock.withLock({ all }) { listener.close() }
    }
}

/// One listener's current connection; once closed, it holds none again.
final class Listener: @unchecked Sendable {
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private var closed = false

    /// Keeps `connection` as the current one; false when the listener was closed meanwhile.
    func hold(_ connection: PostgresConnection) -> Bool {
        lock.withLock {
            guard !closed else { return false }
            self.connection = connection
            return true
        }
    }

    func release() { lock.withLock { connection = nil } }

    /// Closes the current connection (its notification sequence ends) and any later one.
    func close() {
        let current: PostgresConnection? = lock.withLock {
            closed = true
            defer { connection = nil }
            return connection
        }
        let pending: EventLoopFuture<Void>? = current?.close()
        _ = pending
    }
}
