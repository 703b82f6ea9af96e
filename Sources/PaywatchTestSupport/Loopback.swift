import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The socket and threads of a fake server on 127.0.0.1: one thread accepts, one thread serves
/// each connection, and `stop()` ends them all. Shared by ``FakeGateway`` and ``FakeSMTPServer``,
/// which only say how a connection is served.
final class LoopbackListener: @unchecked Sendable {
    /// Bound TCP port.
    let port: Int
    private let listenFD: Int32

    // Guarded by `cond`.
    private let cond = NSCondition()
    private var nextConnectionID = 0
    private var accepted = 0
    private var openFDs: Set<Int32> = []
    private var liveThreads = 0
    private var stopped = false
    private var listenClosed = false

    init<E: Error>(port: Int, error: (String) -> E) throws(E) {
        (listenFD, self.port) = try listenOnLoopback(port: port, error: error)
    }

    /// Starts accepting. `serve(fd, connectionID)` runs on a thread of its own per connection
    /// (ids count from 1); the socket is closed when it returns.
    func start(name: String, serve: @escaping @Sendable (Int32, Int) -> Void) {
        cond.lock()
        liveThreads += 1
        cond.unlock()
        let thread = Thread { [self] in acceptLoop(name: name, serve: serve) }
        thread.name = "\(name)-accept"
        thread.start()
    }

    /// Connections accepted since start or the last `resetConnectionCount()`.
    var connectionsAccepted: Int {
        cond.lock()
        defer { cond.unlock() }
        return accepted
    }

    func resetConnectionCount() {
        cond.lock()
        accepted = 0
        cond.unlock()
    }

    var isStopped: Bool {
        cond.lock()
        defer { cond.unlock() }
        return stopped
    }

    /// Closes the listening socket and all connections and waits for every thread to exit.
    /// Idempotent.
    func stop() {
        cond.lock()
        if !stopped {
            stopped = true
            shutdown(listenFD, Int32(SHUT_RDWR))
            for fd in openFDs { shutdown(fd, Int32(SHUT_RDWR)) }
        }
        while liveThreads > 0 { cond.wait() }
        if !listenClosed {
            listenClosed = true
            close(listenFD)
        }
        cond.unlock()
    }

    private func acceptLoop(name: String, serve: @escaping @Sendable (Int32, Int) -> Void) {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                let err = errno
                if isStopped { break }
                if err == EINTR || err == ECONNABORTED { continue }
                usleep(1000)  // EMFILE and friends: back off briefly
                continue
            }
            cond.lock()
            if stopped {
                cond.unlock()
                close(fd)
                break
            }
            nextConnectionID += 1
            accepted += 1
            let connectionID = nextConnectionID
            openFDs.insert(fd)
            liveThreads += 1
            cond.unlock()

            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let thread = Thread { [self] in
                serve(fd, connectionID)
                cond.lock()
                openFDs.remove(fd)
                close(fd)
                liveThreads -= 1
                cond.broadcast()
                cond.unlock()
            }
            thread.name = "\(name)-conn"
            thread.start()
        }
        cond.lock()
        liveThreads -= 1
        cond.broadcast()
        cond.unlock()
    }
}

/// A listening TCP socket on 127.0.0.1, shared by the fake servers (HTTP, SMTP).
/// - Parameters:
///   - port: TCP port, 0 for an ephemeral one.
///   - error: makes the server's own error type from a description.
/// - Returns: the socket and the port it is bound to.
public func listenOnLoopback<E: Error>(port requestedPort: Int, error: (String) -> E) throws(E) -> (fd: Int32, port: Int) {
    guard (0...65535).contains(requestedPort) else { throw error("invalid port \(requestedPort)") }
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw error("socket() failed: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))

    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(requestedPort).bigEndian)
    addr.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0, listen(fd, 1024) == 0 else {
        let err = errno
        close(fd)
        throw error("bind/listen on 127.0.0.1:\(requestedPort) failed: errno \(err)")
    }
    var actual = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &actual) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard named == 0 else {
        let err = errno
        close(fd)
        throw error("getsockname failed: errno \(err)")
    }
    return (fd, Int(UInt16(bigEndian: actual.sin_port)))
}

/// Writes all bytes; false if the peer went away.
@discardableResult
func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw -> Bool in
        guard let base = raw.baseAddress else { return true }
        var offset = 0
        while offset < raw.count {
            let n = send(fd, base + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
