#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket on 127.0.0.1, shared by the fake servers (HTTP, SMTP).
/// - Parameters:
///   - port: TCP port, 0 for an ephemeral one.
///   - error: makes the server's own error type from a description.
/// - Returns: the socket and the port it is bound to.
func listenOnLoopback<E: Error>(port requestedPort: Int, error: (String) -> E) throws(E) -> (fd: Int32, port: Int) {
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
