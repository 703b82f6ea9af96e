import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Error raised when a fake server (``FakeGateway``, ``FakeSMTPServer``) cannot bind its
/// listening socket.
public struct FakeGatewayError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A real HTTP/1.1 server on 127.0.0.1 used as a fake SMS/webhook gateway in tests and as a
/// loopback sink in benchmarks.
///
/// Supports persistent (keep-alive) connections and `Content-Length` request bodies; one thread
/// per connection. With `tls`, it speaks HTTPS only (``TLSServerContext`` counts the handshakes). Call `stop()` when done: connection threads keep the gateway alive until then.
public final class FakeGateway: @unchecked Sendable {
    /// A request as received by the gateway.
    public struct Request: Sendable {
        public var method: String
        public var path: String
        /// Header names are lowercased.
        public var headers: [String: String]
        public var body: [UInt8]
        public var bodyString: String
        /// Wall-clock ms since the Unix epoch when the request was fully received.
        public var receivedAtMs: Int64
        /// 1-based id of the TCP connection the request arrived on.
        public var connectionID: Int
    }

    /// What the gateway answers. `delayMs` is slept (on the connection thread) before answering.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String
        public var delayMs: Int

        public init(status: Int = 200, headers: [String: String] = [:], body: String = "{}", delayMs: Int = 0) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delayMs = delayMs
        }
    }

    private let recordBodies: Bool
    private let recordRequests: Bool
    private let listener: LoopbackListener
    /// Set when the gateway speaks HTTPS.
    public let tls: TLSServerContext?
    /// Bound TCP port.
    public let port: Int

    // Guarded by `cond`.
    private let cond = NSCondition()
    private var responder: @Sendable (Request) -> Response = { _ in Response() }
    private var recorded: [Request] = []
    private var requestTotal = 0
    private var inFlight = 0
    private var maxInFlight = 0

    /// Binds 127.0.0.1 and starts serving immediately.
    /// - Parameters:
    ///   - recordBodies: when false, recorded requests have empty `body`/`bodyString`
    ///     (the responder still sees the full request).
    ///   - recordRequests: when false, `requests()` stays empty (only counters are kept); useful
    ///     for long-running benchmarks.
    ///   - port: TCP port, 0 for an ephemeral one.
    ///   - tls: when set, every connection starts with a TLS handshake (HTTPS).
    public init(recordBodies: Bool = true, recordRequests: Bool = true, port requestedPort: Int = 0,
                tls: TLSServerContext? = nil) throws {
        self.recordBodies = recordBodies
        self.recordRequests = recordRequests
        self.tls = tls
        listener = try LoopbackListener(port: requestedPort) { FakeGatewayError(description: $0) }
        port = listener.port
        listener.start(name: "fake-gateway") { [self] fd, connectionID in
            let connection = LoopbackConnection(fd: fd)
            if let tls, !connection.startTLS(tls) { return }
            serve(connection, connectionID)
        }
    }

    deinit {
        stop()
    }

    /// `"http://127.0.0.1:PORT"`, or `https://` with TLS.
    public var baseURL: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// Replaces the responder (default: 200 `"{}"`). Called concurrently from connection threads.
    public func setResponder(_ responder: @escaping @Sendable (Request) -> Response) {
        cond.lock()
        self.responder = responder
        cond.unlock()
    }

    /// Recorded requests in arrival order.
    public func requests() -> [Request] {
        cond.lock()
        defer { cond.unlock() }
        return recorded
    }

    /// Requests received since start / last `reset()`.
    public var requestCount: Int {
        cond.lock()
        defer { cond.unlock() }
        return requestTotal
    }

    /// TCP connections accepted since start / last `reset()`.
    public var connectionsAccepted: Int { listener.connectionsAccepted }

    /// Highest number of requests being handled at the same moment (including responder delay).
    public var maxConcurrentRequests: Int {
        cond.lock()
        defer { cond.unlock() }
        return maxInFlight
    }

    /// Blocks until at least `n` requests were received or the timeout expires.
    /// From async code the non-blocking async overload below is used instead.
    public func waitForRequests(_ n: Int, timeoutSeconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        cond.lock()
        defer { cond.unlock() }
        while requestTotal < n {
            if !cond.wait(until: deadline) { return requestTotal >= n }
        }
        return true
    }

    /// Async variant of `waitForRequests` (chosen automatically in async code): polls without
    /// blocking a thread of the Swift cooperative pool, which on a 2-core machine has only 2 threads.
    public func waitForRequests(_ n: Int, timeoutSeconds: Double) async -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while requestCount < n {
            if Date() >= deadline || Task.isCancelled { return requestCount >= n }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        return true
    }

    /// Clears recorded requests and counters (requests currently in progress still finish).
    public func reset() {
        listener.resetConnectionCount()
        cond.lock()
        recorded.removeAll()
        requestTotal = 0
        maxInFlight = inFlight
        cond.unlock()
    }

    /// Closes the listening socket and all connections and waits for every server thread to exit.
    /// Idempotent.
    public func stop() {
        listener.stop()
        cond.lock()
        cond.broadcast()  // waiters see the end sooner
        cond.unlock()
    }

    // MARK: - Server threads

    private var isStopped: Bool { listener.isStopped }

    /// Serves one keep-alive connection until the peer closes it, an error occurs, or `stop()`.
    private func serve(_ connection: LoopbackConnection, _ connectionID: Int) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        var start = 0  // first unconsumed byte in `buffer`
        var scanFrom = 0  // where to resume searching for the end of the head
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let maxHead = 64 * 1024

        while true {
            // Handle every complete request already buffered.
            while true {
                guard let headEnd = findHeadEnd(buffer, from: max(start, scanFrom)) else {
                    scanFrom = max(start, buffer.count - 3)
                    if buffer.count - start > maxHead {
                        connection.send(Array("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
                        return
                    }
                    break
                }
                guard let head = parseHead(buffer[start..<headEnd - 4]) else {
                    connection.send(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
                    return
                }
                if head.chunked {
                    connection.send(Array("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
                    return
                }
                guard buffer.count - headEnd >= head.contentLength else {
                    scanFrom = headEnd - 4
                    break
                }
                let body = Array(buffer[headEnd..<headEnd + head.contentLength])
                start = headEnd + head.contentLength
                scanFrom = start
                let keepAlive = handle(head, body: body, connection: connection, connectionID: connectionID)
                if !keepAlive { return }
            }
            if start > 0 && start == buffer.count {
                buffer.removeAll(keepingCapacity: true)
                start = 0
                scanFrom = 0
            } else if start > 32 * 1024 {
                buffer.removeSubrange(0..<start)
                scanFrom -= start
                start = 0
            }

            let n = connection.receive(into: &chunk)
            if n <= 0 { return }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Records the request, runs the responder, sleeps its delay, writes the response.
    /// Returns whether the connection stays open.
    private func handle(_ head: Head, body: [UInt8], connection: LoopbackConnection, connectionID: Int) -> Bool {
        let request = Request(
            method: head.method, path: head.path, headers: head.headers, body: body,
            bodyString: String(decoding: body, as: UTF8.self),
            receivedAtMs: wallClockMs(), connectionID: connectionID)

        cond.lock()
        requestTotal += 1
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        if recordRequests {
            if recordBodies {
                recorded.append(request)
            } else {
                var stripped = request
                stripped.body = []
                stripped.bodyString = ""
                recorded.append(stripped)
            }
        }
        let responder = self.responder
        cond.broadcast()
        cond.unlock()

        let response = responder(request)
        var remaining = response.delayMs
        while remaining > 0 && !isStopped {
            let slice = min(remaining, 10)
            usleep(UInt32(slice) * 1000)
            remaining -= slice
        }

        let keepAlive = head.keepAlive
        let ok = connection.send(serialize(response, isHead: head.method == "HEAD", keepAlive: keepAlive))

        cond.lock()
        inFlight -= 1
        cond.unlock()
        return ok && keepAlive && !isStopped
    }

    private func serialize(_ response: Response, isHead: Bool, keepAlive: Bool) -> [UInt8] {
        let status = response.status
        let bodyAllowed = !(100...199).contains(status) && status != 204 && status != 304
        let bodyBytes = Array(response.body.utf8)
        var head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
        for (name, value) in response.headers {
            let lower = name.lowercased()
            if lower == "content-length" || lower == "connection" || lower == "transfer-encoding" { continue }
            head += "\(clean(name)): \(clean(value))\r\n"
        }
        if bodyAllowed { head += "Content-Length: \(bodyBytes.count)\r\n" }
        if !keepAlive { head += "Connection: close\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        if bodyAllowed && !isHead { out.append(contentsOf: bodyBytes) }
        return out
    }
}

// MARK: - HTTP parsing helpers

struct Head {
    var method: String
    var path: String
    var headers: [String: String]
    var contentLength: Int
    var keepAlive: Bool
    var chunked: Bool
}

/// Index just past the first `\r\n\r\n` at or after `from`, if any.
private func findHeadEnd(_ buffer: [UInt8], from: Int) -> Int? {
    buffer.withUnsafeBufferPointer { p -> Int? in
        var i = max(0, from)
        let end = p.count - 3
        while i < end {
            if p[i] == 13 && p[i + 1] == 10 && p[i + 2] == 13 && p[i + 3] == 10 { return i + 4 }
            i += 1
        }
        return nil
    }
}

/// Parses a request line plus header lines (without the final blank line).
private func parseHead(_ bytes: ArraySlice<UInt8>) -> Head? {
    var lines = bytes.split(separator: 10, omittingEmptySubsequences: false).map { line -> ArraySlice<UInt8> in
        line.last == 13 ? line.dropLast() : line
    }
    guard !lines.isEmpty else { return nil }
    let requestLine = lines.removeFirst().split(separator: 32)
    guard requestLine.count == 3 else { return nil }
    let method = String(decoding: requestLine[0], as: UTF8.self)
    let path = String(decoding: requestLine[1], as: UTF8.self)
    let version = String(decoding: requestLine[2], as: UTF8.self)
    guard version.hasPrefix("HTTP/1.") else { return nil }

    var headers: [String: String] = [:]
    for line in lines where !line.isEmpty {
        guard let colon = line.firstIndex(of: 58) else { return nil }
        let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self).lowercased()
        let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)
        if let existing = headers[name] {
            headers[name] = existing + ", " + value
        } else {
            headers[name] = value
        }
    }
    var contentLength = 0
    if let raw = headers["content-length"] {
        guard let n = Int(raw), n >= 0, n <= 64 * 1024 * 1024 else { return nil }
        contentLength = n
    }
    let connection = headers["connection"]?.lowercased() ?? ""
    let keepAlive = version == "HTTP/1.1" ? !connection.contains("close") : connection.contains("keep-alive")
    let chunked = headers["transfer-encoding"]?.lowercased().contains("chunked") ?? false
    return Head(method: method, path: path, headers: headers, contentLength: contentLength,
                keepAlive: keepAlive, chunked: chunked)
}

private func clean(_ s: String) -> String {
    s.contains(where: { $0 == "\r" || $0 == "\n" }) ? s.filter { $0 != "\r" && $0 != "\n" } : s
}

private func wallClockMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

private func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 204: return "No Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 422: return "Unprocessable Content"
    case 429: return "Too Many Requests"
    case 500: return "Internal Server Error"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    default: return "Status"
    }
}
