#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Metrics
import PaywatchConfig
import PaywatchStore
import Prometheus

/// The daemon's metrics, recorded through swift-metrics into a Prometheus registry of their own
/// (no global bootstrap: tests run several daemons in one process). Served by ``MetricsEndpoint``
/// when `[metrics] listen` is set; otherwise the runtime holds none and nothing is recorded.
public final class PaywatchMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let sweepDuration: Metrics.Timer
    private let lagGauge: Metrics.Gauge
    private let backlogGauge: Metrics.Gauge

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["paywatch_sweep_duration_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(15), .seconds(60),
        ]
        self.factory = factory
        sweepDuration = Metrics.Timer(label: "paywatch_sweep_duration_seconds", factory: factory)
        lagGauge = Metrics.Gauge(label: "paywatch_lag_seconds", factory: factory)
        backlogGauge = Metrics.Gauge(label: "paywatch_backlog_messages", factory: factory)
    }

    /// A delivery outcome: `delivered`, `retry`, `dead`, `superseded`.
    func message(kind: String, channel: String, outcome: String) {
        Counter(label: "paywatch_messages_total", dimensions: [("kind", kind), ("channel", channel), ("outcome", outcome)],
                factory: factory).increment()
    }

    /// An order moved from one status to another (`new` for its first status).
    func transition(from: String, to: String) {
        Counter(label: "paywatch_transitions_total", dimensions: [("from", from), ("to", to)], factory: factory).increment()
    }

    func sweep(nanoseconds: Int64) {
        sweepDuration.recordNanoseconds(nanoseconds)
    }

    func lag(_ lag: Lag, ms: Int64) {
        lagGauge.record(Double(ms) / 1_000)
        backlogGauge.record(Double(lag.dueMessages))
    }

    /// Whether a channel is paused by its circuit breaker (1) or sending (0).
    func channelPaused(_ channel: String, _ paused: Bool) {
        Metrics.Gauge(label: "paywatch_channel_paused", dimensions: [("channel", channel)], factory: factory)
            .record(paused ? 1 : 0)
    }

    /// The outbox by state (`pending`, `in_flight`, `delivered`, `dead`, `superseded`, `suppressed`, `capped`).
    func outbox(_ byState: [OutboxState: Int]) {
        for state in OutboxState.allCases {
            Metrics.Gauge(label: "paywatch_outbox_messages", dimensions: [("state", state.rawValue)], factory: factory)
                .record(Double(byState[state] ?? 0))
        }
    }

    /// The Prometheus text exposition of every metric.
    public func text() -> [UInt8] {
        registry.emitToBuffer()
    }
}

/// `GET /metrics` over HTTP/1.0-style connections on a loopback address: one thread blocked in
/// accept(2) (no CPU while nobody scrapes), one short connection at a time, each given 2 s to send
/// its request head, so a client that connects and says nothing (or trickles) cannot hold it.
public final class MetricsEndpoint: @unchecked Sendable {
    private let address: ListenAddress
    private let metrics: PaywatchMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var stopped = false

    public init(address: ListenAddress, metrics: PaywatchMetrics, logger: Logger) {
        self.address = address
        self.metrics = metrics
        self.logger = logger
    }

    /// Binds and serves on a thread of its own. A bind failure (the port taken) is logged and
    /// retried every 30 s: metrics are never a reason to stop reminding customers.
    public func start() {
        let thread = Thread { [self] in
            var logged = false
            while !isStopped {
                switch bind() {
                case .success(let fd):
                    logger.notice("metrics endpoint listening", metadata: ["listen": "\(address.host):\(address.port)"])
                    serve(fd)
                    return
                case .failure(let error):
                    if !logged {
                        logger.error("metrics endpoint cannot listen; retrying every 30s",
                                     metadata: ["listen": "\(address.host):\(address.port)", "error": "\(error)"])
                        logged = true
                    }
                    for _ in 0..<300 where !isStopped { usleep(100_000) }
                }
            }
        }
        thread.name = "paywatch-metrics"
        thread.start()
    }

    public func stop() {
        lock.withLock {
            stopped = true
            if listener >= 0 {
                shutdown(listener, Int32(SHUT_RDWR))
                close(listener)
                listener = -1
            }
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private struct SocketError: Error, CustomStringConvertible {
        let description: String
        init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
    }

    private func bind() -> Result<Int32, SocketError> {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SocketError("socket")) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard var (storage, length) = socketAddress() else {
            close(fd)
            return .failure(SocketError("not an address: \(address.host)"))
        }
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = SocketError("bind \(address.host):\(address.port)")
            close(fd)
            return .failure(error)
        }
        let kept = lock.withLock { () -> Bool in
            guard !stopped else { return false }
            listener = fd
            return true
        }
        if !kept { close(fd) }
        return kept ? .success(fd) : .failure(SocketError("stopped"))
    }

    /// ``address`` as the kernel takes it: a `sockaddr_in` or `sockaddr_in6` in a `sockaddr_storage`.
    /// Nil when the host does not parse (never after ``ListenAddress/parse(_:)``; checked all the
    /// same, since an unparsed address would leave 0.0.0.0, every interface).
    private func socketAddress() -> (sockaddr_storage, socklen_t)? {
        var storage = sockaddr_storage()
        if address.isIPv6 {
            let parsed = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                    sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                    sin6.pointee.sin6_port = address.port.bigEndian
                    return inet_pton(AF_INET6, address.host, &sin6.pointee.sin6_addr)
                }
            }
            return parsed == 1 ? (storage, socklen_t(MemoryLayout<sockaddr_in6>.size)) : nil
        }
        let parsed = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = address.port.bigEndian
                return inet_pton(AF_INET, address.host, &sin.pointee.sin_addr)
            }
        }
        return parsed == 1 ? (storage, socklen_t(MemoryLayout<sockaddr_in>.size)) : nil
    }

    private func serve(_ fd: Int32) {
        var logged = false
        while !isStopped {
            let client = accept(fd, nil, nil)
            if client < 0 {
                // Only stop() ends the loop; any other failure (EMFILE, ENOBUFS, EPROTO, …) is
                // waited out, logged once.
                if isStopped { return }
                if errno != EINTR && errno != ECONNABORTED {
                    if !logged {
                        logger.error("metrics endpoint: accept failed; retrying", metadata: ["error": "\(String(cString: strerror(errno)))"])
                        logged = true
                    }
                    usleep(100_000)
                }
                continue
            }
            logged = false
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            answer(client)
            close(client)
        }
    }

    /// Reads the request head (at most 8 KiB, 2 s), answers it, and closes.
    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        // 2 s for the whole request head, not per read: a client trickling bytes cannot hold the
        // one connection the endpoint serves at a time.
        let deadline = monotonicMicros() + 2_000_000
        while head.count < 8192, monotonicMicros() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            head += buffer[0..<n]
            if containsBlankLine(head) { break }
        }
        let requestLine = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        let (status, type, body): (String, String, [UInt8])
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.text())
        } else if parts.count >= 2, parts[0] != "GET" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", Array("GET /metrics only\n".utf8))
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", Array("GET /metrics\n".utf8))
        }
        let response = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body
        var sent = 0
        while sent < response.count {
            let n = response.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    private func containsBlankLine(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return true
        }
        return false
    }
}
