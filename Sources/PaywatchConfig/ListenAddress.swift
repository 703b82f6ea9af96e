#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback `HOST:PORT` (`[metrics] listen`): where the metrics endpoint binds.
public struct ListenAddress: Sendable, Equatable {
    /// `127.0.0.1`-style IPv4, or `::1`.
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool { host.contains(":") }

    public struct Problem: Error, Sendable, Equatable {
        public let message: String
    }

    /// `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464` (read as `127.0.0.1`). Any other host is
    /// refused: metrics tell how the shop is doing and must not be served beyond this machine.
    public static func parse(_ text: String) -> Result<ListenAddress, Problem> {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(Problem(message: "expected \"[::1]:PORT\", got \(quoted(text))"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(Problem(message: "expected HOST:PORT such as \"127.0.0.1:9464\", got \(quoted(text))"))
            }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = Int(port), (1...65_535).contains(number)
        else { return .failure(Problem(message: "the port must be 1 … 65535, got \(quoted(String(port)))")) }
        let resolved: String
        switch host.lowercased() {
        case "localhost": resolved = "127.0.0.1"
        case "::1": resolved = "::1"
        default:
            // What the kernel will be given, read as it reads it: inet_pton takes dotted quads only
            // (no leading zeros, no shorthand), so what passes here binds exactly this address.
            var address = in_addr()
            guard !host.contains("\0"), inet_pton(AF_INET, String(host), &address) == 1,
                  UInt32(bigEndian: address.s_addr) >> 24 == 127
            else {
                return .failure(Problem(message: """
                    \(quoted(String(host))) is not a loopback address: metrics are served on this machine only \
                    (127.0.0.1, [::1] or localhost); put a proxy in front to publish them
                    """))
            }
            resolved = String(host)
        }
        return .success(ListenAddress(host: resolved, port: UInt16(number)))
    }

    private static func quoted(_ text: String) -> String {
        "\"" + String(text.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" }) + "\""
    }
}
