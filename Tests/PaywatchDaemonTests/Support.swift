import Foundation
import GRDB
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchDaemon
import PaywatchStore
import PaywatchTestSupport

/// A clock that moves only when the test says so. `sleep(until:)` suspends until `advance`
/// reaches the deadline (or the sleeping task is cancelled).
final class ManualClock: PaywatchClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Millis
    private var nextID: UInt64 = 0
    private var sleepers: [UInt64: (deadline: Millis, continuation: CheckedContinuation<Void, any Error>)] = [:]
    private var cancelled: Set<UInt64> = []

    init(_ start: Millis) { current = start }

    func now() -> Millis { lock.withLock { current } }

    func sleep(until deadline: Millis) async throws {
        let id: UInt64 = lock.withLock {
            nextID += 1
            return nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                lock.lock()
                if cancelled.remove(id) != nil {
                    lock.unlock()
                    continuation.resume(throwing: CancellationError())
                } else if deadline <= current {
                    lock.unlock()
                    continuation.resume()
                } else {
                    sleepers[id] = (deadline, continuation)
                    lock.unlock()
                }
            }
        } onCancel: {
            lock.lock()
            let sleeper = sleepers.removeValue(forKey: id)
            if sleeper == nil { cancelled.insert(id) }
            lock.unlock()
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock to `instant` and wakes every sleeper whose deadline has come.
    func advance(to instant: Millis) {
        lock.lock()
        current = max(current, instant)
        let due = sleepers.filter { $0.value.deadline <= current }
        for id in due.keys { sleepers.removeValue(forKey: id) }
        lock.unlock()
        for sleeper in due.values { sleeper.continuation.resume() }
    }

    func advance(by ms: Millis) { advance(to: now() + ms) }
}

/// The whole daemon in-process: a real SQLite file, a real HTTP gateway on 127.0.0.1, a manual clock.
final class InProcessDaemon: @unchecked Sendable {
    let directory: URL
    let dbPath: String
    let gateway: FakeGateway
    let clock: ManualClock
    let store: SQLiteOrderStore
    let service: PaywatchService
    /// The loops' heartbeats and pass reports.
    let monitor = DaemonMonitor()
    private var task: Task<Void, any Error>?

    static let start: Millis = 1_790_000_000_000

    /// - Parameter directory: where the database goes (a fresh temporary folder by default).
    /// - Parameter providers: replace the providers the configuration names, by channel.
    /// - Parameter logger: where the daemon logs; by default a file kept for the secret grep.
    init(busyTimeoutMs: Int64 = 5000, directory: URL? = nil, providers: [String: any DeliveryProvider] = [:],
         logger: Logger? = nil, config: (String) -> String) async throws {
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        dbPath = self.directory.appendingPathComponent("paywatch.db").path
        gateway = try FakeGateway()
        clock = ManualClock(Self.start)
        let text = "[store]\nurl = \"sqlite://\(dbPath)\"\n" + config(gateway.baseURL)
        let configuration = try PaywatchConfiguration.parse(text, fileName: "test.toml")
        store = try SQLiteOrderStore(path: dbPath, busyTimeoutMs: busyTimeoutMs)
        try await store.migrate()
        var runtime = try Runtime(config: configuration, store: store, clock: clock,
                                  logger: logger ?? TestLogHandler.logger(self.directory.lastPathComponent, clock: clock))
        for (channel, provider) in providers { runtime.channels[channel] = ChannelEndpoint(name: channel, provider: provider) }
        service = PaywatchService(runtime: runtime, monitor: monitor)
    }

    func run() {
        let service = self.service
        task = Task { try await service.run() }
    }

    /// Cancels the service (it drains like a graceful shutdown) and waits for it.
    func stop() async throws {
        task?.cancel()
        try await task?.value
        task = nil
    }

    deinit {
        task?.cancel()
        gateway.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func shop() throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(10)
        return try DatabaseQueue(path: dbPath, configuration: config)
    }

    func count(_ sql: String) throws -> Int {
        try shop().read { try Int.fetchOne($0, sql: sql) ?? 0 }
    }

    /// Polls `condition` every 10 ms (real time) for at most `seconds`.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return try condition()
    }
}
