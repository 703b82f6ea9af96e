#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The host of `url` (`SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/…]`), lowercased, an IPv6 address
/// without its brackets; nil when there is none. Used to tell loopback from the rest of the world:
/// plain `http://` is allowed to loopback only (`allow_insecure_http`).
public func urlHost(_ url: String) -> String? {
    guard let schemeEnd = url.firstRange(of: "://") else { return nil }
    var authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
    let host: Substring
    if authority.hasPrefix("[") {
        guard let close = authority.firstIndex(of: "]") else { return nil }
        host = authority[authority.index(after: authority.startIndex)..<close]
    } else {
        host = authority.prefix { $0 != ":" }
    }
    guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" || $0 == "\0" }) else { return nil }
    return host.lowercased()
}

/// Whether `host` (as ``urlHost(_:)`` gives it) is this machine: `localhost`, `::1`, or an IPv4
/// address in 127.0.0.0/8 as `inet_pton` reads it (so `127.0.0.01` or `127.1` are not: curl could
/// resolve them elsewhere).
public func isLoopbackHost(_ host: String) -> Bool {
    if host == "localhost" { return true }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, host, &v6) == 1 {
        return withUnsafeBytes(of: &v6) { Array($0) } == Array(repeating: 0, count: 15) + [1]
    }
    var v4 = in_addr()
    return inet_pton(AF_INET, host, &v4) == 1 && UInt32(bigEndian: v4.s_addr) >> 24 == 127
}

/// Whether `url` is plain `http://` to a host that is not loopback: its requests, credentials
/// included, would cross the network unencrypted.
public func isInsecureHTTP(_ url: String) -> Bool {
    guard url.lowercased().hasPrefix("http://") else { return false }
    return !(urlHost(url).map(isLoopbackHost) ?? false)
}

/// Whether `url`'s authority holds a password (`SCHEME://USER:PASSWORD@HOST`).
func urlHasPassword(_ url: String) -> Bool {
    guard let schemeEnd = url.firstRange(of: "://") else { return false }
    let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    guard let at = authority.lastIndex(of: "@") else { return false }
    return authority[..<at].contains(":")
}
