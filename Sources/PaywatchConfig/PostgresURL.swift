#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A `postgres://` or `postgresql://` url (`[store] url`), read the way libpq reads one — the common
/// subset: `postgres://[user[:password]@][host][:port][/database][?param=value&…]`.
///
/// - The user, password, host, database and every query value are percent-decoded (`%40` is `@`,
///   `%3A` is `:`, `%2F` is `/`); a `/`, `?`, `#` or `@` in a user or password must be written so.
///   Once decoded, no part may hold a control character (CR, LF, NUL, …).
/// - The host is a name or an IPv4 address, an IPv6 address in brackets (`[::1]`), or empty: then
///   the server's Unix socket in ``defaultSocketFolder``. A host that decodes to an absolute path
///   (`%2Ftmp%2Fpg`), or `?host=/path`, names the socket's folder instead. Several hosts
///   (`h1,h2`) are not supported.
/// - The port defaults to 5432 (``defaultPort``); the database to the user. A url that names
///   neither (`postgres://host`) is refused: libpq would fall back to `$PGDATABASE`, `$PGUSER` or
///   the account's name, which a configuration file cannot show.
/// - The query parameters are those libpq knows and paywatch supports: `sslmode`, `sslrootcert`,
///   `connect_timeout` (whole seconds), `application_name` and `host`, each at most once. Any
///   other is refused by name (never by value: it may be a secret).
///
/// Problems (``Problem``) say which part is wrong and never echo the password, the host or the
/// port as written: in a url with an unencoded `/` or `@` in its password, those could be pieces
/// of the password.
public struct PostgresURL: Sendable, Equatable {
    /// Where the server listens.
    public enum Endpoint: Sendable, Equatable {
        /// A host name, an IPv4 address or an IPv6 address (without brackets, `::1`), and a port.
        case tcp(host: String, port: Int)
        /// The server's Unix socket file, `FOLDER/.s.PGSQL.PORT`
        /// (`/var/run/postgresql/.s.PGSQL.5432`), as libpq builds it from a socket folder and a port.
        case unixSocket(path: String)

        /// The port: the TCP port, or the one a socket file's name ends with (5432 when it does not
        /// end with `.s.PGSQL.PORT`).
        public var port: Int {
            switch self {
            case .tcp(_, let port):
                return port
            case .unixSocket(let path):
                let name = path.split(separator: "/", omittingEmptySubsequences: false).last ?? ""
                guard name.hasPrefix(".s.PGSQL."), let port = Int(name.dropFirst(".s.PGSQL.".count)) else {
                    return PostgresURL.defaultPort
                }
                return port
            }
        }

        /// The host a password file's lines are matched against (``PGPassFile``): the TCP host, or
        /// the socket's folder (which also matches the lines of `localhost`).
        public var passFileHost: String {
            switch self {
            case .tcp(let host, _):
                return host
            case .unixSocket(let path):
                guard let slash = path.lastIndex(of: "/") else { return path }
                return slash == path.startIndex ? "/" : String(path[..<slash])
            }
        }
    }

    /// libpq's `sslmode`: whether and how the connection is encrypted, and what is verified. `allow`
    /// (plain first, TLS only when the server insists) is not supported.
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        /// No TLS.
        case disable
        /// TLS when the server offers it, else in the clear (the default). Nothing is verified.
        case prefer
        /// TLS or no connection; the server's certificate is not verified (as in libpq, a CA file
        /// given with it makes the chain verified).
        case require
        /// TLS, the server's certificate chain verified against the CA file (else the system's
        /// certificate authorities); not its name.
        case verifyCA = "verify-ca"
        /// As ``verifyCA``, and the certificate must name the host connected to.
        case verifyFull = "verify-full"

        /// The mode named `text`, or why it is not accepted (`allow`: not supported).
        static func named(_ text: String) -> Result<SSLMode, Problem> {
            if let mode = SSLMode(rawValue: text) { return .success(mode) }
            if text == "allow" {
                return .failure(Problem("sslmode \"allow\" is not supported (it connects in the clear first): "
                    + "use prefer for TLS when the server offers it, or require"))
            }
            let shown = text.count > 40 ? String(text.prefix(37)) + "..." : text
            return .failure(Problem("unknown sslmode \(tomlQuoted(shown)): expected one of "
                + allCases.map(\.rawValue).joined(separator: ", ")))
        }
    }

    /// Why a url is not accepted, e.g. `the port must be a number 1 … 65535`. Never holds the password.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong, naming the part of the url (`the port …`, `the password …`), never its value.
        public let message: String

        init(_ message: String) {
            self.message = message
        }

        public var description: String { message }
    }

    /// The user; nil when the url names none (the store then uses `$PGUSER`, else the account's name).
    public var user: String?
    /// The password written in the url; nil when there is none. A password in the url is readable by
    /// anyone who can read the configuration: `[store] password_file` comes first, and `parse`/`load`
    /// warn about it.
    public var password: String?
    /// Where the server listens.
    public var endpoint: Endpoint
    /// The database; the user when the url names none.
    public var database: String
    /// `?sslmode=`; nil when not given (then `[store] sslmode` decides, `prefer` by default).
    public var sslMode: SSLMode?
    /// `?sslrootcert=`: a PEM file of the certificate authorities the server's certificate is
    /// verified against (`[store] ca_file` is the same setting); nil when not given.
    public var sslRootCert: String?
    /// `?connect_timeout=` (whole seconds in the url), in milliseconds; nil when not given (then
    /// `[store] connect_timeout` decides).
    public var connectTimeoutMs: Int64?
    /// `?application_name=`: the name the server shows in `pg_stat_activity`; nil when not given.
    public var applicationName: String?

    /// The port when the url names none.
    public static let defaultPort = 5432
    /// The socket folder when the url's host is empty (Debian's and Ubuntu's; libpq's own default
    /// varies by build).
    public static let defaultSocketFolder = "/var/run/postgresql"
    /// The longest url accepted, in bytes.
    public static let maxLength = 4_096
    /// The longest user, database or application name, in bytes: PostgreSQL cuts names at 63.
    public static let maxNameLength = 63
    /// The query parameters accepted, in the order the errors list them.
    public static let parameters = ["sslmode", "sslrootcert", "connect_timeout", "application_name", "host"]

    /// A url's settings as given, unchecked (``parse(_:)`` reads and checks a url's text).
    public init(
        user: String? = nil, password: String? = nil, endpoint: Endpoint, database: String, sslMode: SSLMode? = nil,
        sslRootCert: String? = nil, connectTimeoutMs: Int64? = nil, applicationName: String? = nil
    ) {
        self.user = user
        self.password = password
        self.endpoint = endpoint
        self.database = database
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
        self.connectTimeoutMs = connectTimeoutMs
        self.applicationName = applicationName
    }

    /// The password for this url's endpoint and database in a password file's `contents`
    /// (``PGPassFile``), for `user` (``user``, else `$PGUSER`, else the account's name).
    public func password(fromPassFile contents: String, user: String) -> String? {
        PGPassFile.password(in: contents, host: endpoint.passFileHost, port: endpoint.port, database: database, user: user)
    }

    /// Reads `url` (see the type's documentation), or says why it is not accepted.
    public static func parse(_ url: String) -> Result<PostgresURL, Problem> {
        Result(catching: { () throws(Problem) in try read(url) })
    }

    private static func read(_ url: String) throws(Problem) -> PostgresURL {
        guard let scheme = ["postgres://", "postgresql://"].first(where: url.hasPrefix) else {
            throw Problem("expected a url starting with postgres:// or postgresql://")
        }
        guard url.utf8.count <= maxLength else {
            throw Problem("the postgres url is longer than \(maxLength) bytes")
        }
        if url.unicodeScalars.contains(where: { $0.value <= 0x20 || (0x7F...0x9F).contains($0.value) }) {
            throw Problem("the postgres url contains a space or a control character (CR, LF, tab, …): percent-encode it (a space is %20)")
        }
        if url.contains("#") {
            throw Problem("the postgres url contains #: a postgres url has no fragment; percent-encode a # in the password as %23")
        }
        let rest = url.dropFirst(scheme.count)
        if rest.isEmpty { throw Problem("the postgres url has no host or database") }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        var hostPort = rest[..<authorityEnd]

        // user[:password]@
        var user: String?
        var password: String?
        let ats = hostPort.filter { $0 == "@" }.count
        if ats > 1 {
            throw Problem("the postgres url has more than one @ before its host: percent-encode an @ in the user or password as %40")
        }
        if let at = hostPort.firstIndex(of: "@") {
            let userInfo = hostPort[..<at]
            hostPort = hostPort[hostPort.index(after: at)...]
            let colon = userInfo.firstIndex(of: ":")
            user = try nonEmpty(decode(userInfo[..<(colon ?? userInfo.endIndex)], part: "user"))
            if let colon {
                password = try nonEmpty(decode(userInfo[userInfo.index(after: colon)...], part: "password"))
            }
        }
        if let user, user.utf8.count > maxNameLength {
            throw Problem("the user name is longer than \(maxNameLength) bytes (PostgreSQL's limit)")
        }

        // host[:port]
        var host: String?
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw Problem("the IPv6 address has no closing ] (write it as [::1])")
            }
            let address = try decode(hostPort[hostPort.index(after: hostPort.startIndex)..<close], part: "host")
            guard isIPv6(address) else { throw Problem("the host in [ ] is not an IPv6 address") }
            host = address
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Problem("unexpected characters after the IPv6 address's ]: expected :PORT") }
                portText = after.dropFirst()
            }
        } else {
            if hostPort.contains(",") {
                throw Problem("several hosts are not supported: name one host")
            }
            let colon = hostPort.firstIndex(of: ":")
            let name = try decode(hostPort[..<(colon ?? hostPort.endIndex)], part: "host")
            if !name.isEmpty {
                if !name.hasPrefix("/") { try checkHostName(name) }
                host = name
            }
            if let colon { portText = hostPort[hostPort.index(after: colon)...] }
        }
        let port: Int
        if let portText {
            guard !portText.isEmpty else { throw Problem("the port after : is empty") }
            guard portText.count <= 5, portText.utf8.allSatisfy({ (48...57).contains($0) }), let number = Int(portText),
                  (1...65_535).contains(number) else {
                throw Problem("the port must be a number 1 … 65535 (a / ? # or @ in a password must be percent-encoded)")
            }
            port = number
        } else {
            port = defaultPort
        }

        // /database
        var database: String?
        var query = rest[authorityEnd...]
        if query.hasPrefix("/") {
            let pathEnd = query.firstIndex(of: "?") ?? query.endIndex
            let path = query[query.index(after: query.startIndex)..<pathEnd]
            if path.contains("/") {
                throw Problem("the database name contains /: percent-encode it as %2F (or remove the trailing /)")
            }
            database = try nonEmpty(decode(path, part: "database name"))
            query = query[pathEnd...]
        }

        // ?param=value&…
        var result = PostgresURL(user: user, password: password, endpoint: .tcp(host: "", port: port), database: "")
        if query.hasPrefix("?") {
            host = try result.readParameters(query.dropFirst(), host: host)
        }

        guard let name = database ?? user else {
            throw Problem("the postgres url names no database and no user: add /DATABASE (postgres://user@host/DATABASE)")
        }
        guard name.utf8.count <= maxNameLength else {
            throw Problem("the database name is longer than \(maxNameLength) bytes (PostgreSQL's limit)")
        }
        result.database = name
        let socketFolder: String? = host == nil ? defaultSocketFolder : host.flatMap { $0.hasPrefix("/") ? $0 : nil }
        if let socketFolder {
            var folder = Substring(socketFolder)
            while folder.count > 1, folder.hasSuffix("/") { folder = folder.dropLast() }
            let path = (folder == "/" ? "" : String(folder)) + "/.s.PGSQL.\(port)"
            // sun_path holds 108 bytes, the terminating NUL included.
            guard path.utf8.count <= 107 else {
                throw Problem("the Unix socket's path would be longer than 107 bytes (the system's limit): choose a shorter socket folder")
            }
            result.endpoint = .unixSocket(path: path)
        } else if let host {
            result.endpoint = .tcp(host: host, port: port)
        }
        return result
    }

    /// Reads the query (after `?`) into self; returns the host, `?host=` applied.
    private mutating func readParameters(_ query: Substring, host: String?) throws(Problem) -> String? {
        var host = host
        var seen: Set<String> = []
        for parameter in query.split(separator: "&") {
            guard let equals = parameter.firstIndex(of: "=") else {
                throw Problem("query parameter \(Self.shownName(parameter)) has no value (expected NAME=VALUE)")
            }
            let name = try Self.decode(parameter[..<equals], part: "query parameter name")
            guard Self.parameters.contains(name) else {
                throw Problem(Self.unsupported(name))
            }
            guard seen.insert(name).inserted else { throw Problem("query parameter \(name) is given twice") }
            let value = try Self.decode(parameter[parameter.index(after: equals)...], part: "value of \(name)")
            guard !value.isEmpty else { throw Problem("query parameter \(name) has an empty value") }
            switch name {
            case "sslmode":
                switch SSLMode.named(value) {
                case .success(let mode): sslMode = mode
                case .failure(let problem): throw Problem("?sslmode=: " + problem.message)
                }
            case "sslrootcert":
                if value == "system" {
                    throw Problem("sslrootcert=system: leave it out, the system's certificate authorities are the default")
                }
                sslRootCert = value
            case "connect_timeout":
                guard value.count <= 10, value.utf8.allSatisfy({ (48...57).contains($0) }), let seconds = Int64(value),
                      seconds >= 1, seconds * 1_000 <= maxDurationMs else {
                    throw Problem("connect_timeout must be a whole number of seconds, at least 1 (0, waiting forever, is not accepted)")
                }
                connectTimeoutMs = seconds * 1_000
            case "application_name":
                guard value.utf8.count <= Self.maxNameLength, value.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else {
                    throw Problem("application_name must be printable ASCII of at most \(Self.maxNameLength) bytes")
                }
                applicationName = value
            default: // host
                guard host == nil else {
                    throw Problem("the host is given twice: in the url and as ?host= (keep one)")
                }
                if !value.hasPrefix("/") { try Self.checkHostName(value) }
                host = value
            }
        }
        return host
    }

    /// Why the query parameter `name` is refused; named only when it looks like a parameter name.
    private static func unsupported(_ name: String) -> String {
        let supported = "the supported ones are " + parameters.joined(separator: ", ")
        let looksLikeName = !name.isEmpty && name.utf8.count <= 40
            && name.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
        guard looksLikeName else { return "unknown query parameter (its name is not shown): \(supported)" }
        switch name {
        case "password":
            return "query parameter password is not supported: put the password in password_file (or ~/.pgpass)"
        case "user", "dbname", "port":
            return "query parameter \(name) is not supported: write it in the url itself (postgres://user@host:port/dbname)"
        default:
            return "unknown query parameter \(name): \(supported)"
        }
    }

    /// A parameter's name for an error, when it looks like one; never a value.
    private static func shownName(_ parameter: Substring) -> String {
        let looksLikeName = !parameter.isEmpty && parameter.utf8.count <= 40
            && parameter.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
        return looksLikeName ? String(parameter) : "(its name is not shown)"
    }

    /// `text` percent-decoded as UTF-8, without control characters; `part` names it in errors.
    private static func decode(_ text: Substring, part: String) throws(Problem) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw Problem("the \(part) has an invalid percent escape (expected % and two hex digits, %40 for @)")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw Problem("the \(part) is not valid UTF-8 once percent-decoded")
        }
        if decoded.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) {
            throw Problem("the \(part) contains a control character (CR, LF, NUL, …) once percent-decoded")
        }
        return decoded
    }

    private static func nonEmpty(_ text: String) -> String? {
        text.isEmpty ? nil : text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: return byte - 48
        case 65...70: return byte - 55
        case 97...102: return byte - 87
        default: return nil
        }
    }

    /// A host name or IPv4 address: ASCII letters, digits, `-`, `.` and `_`, at most 253 bytes.
    private static func checkHostName(_ name: String) throws(Problem) {
        guard name.utf8.count <= 253 else { throw Problem("the host name is longer than 253 bytes") }
        let allowed = name.utf8.allSatisfy {
            (97...122).contains($0) || (65...90).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 || $0 == 95
        }
        guard allowed else {
            throw Problem("the host may hold only letters, digits, -, . and _ (an IPv6 address goes in brackets: [::1]; "
                + "a / ? # or @ in a password must be percent-encoded)")
        }
    }

    /// An IPv6 address, optionally with a zone (`fe80::1%eth0`, written `%25eth0` in the url).
    private static func isIPv6(_ text: String) -> Bool {
        let address = text.prefix { $0 != "%" }
        if address.count < text.count {
            let zone = text.dropFirst(address.count + 1)
            guard !zone.isEmpty, zone.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else { return false }
        }
        var v6 = in6_addr()
        return inet_pton(AF_INET6, String(address), &v6) == 1
    }
}
