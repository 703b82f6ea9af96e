@testable import PaywatchConfig
import Testing

/// The url parsed, or the problem's message.
private func parsed(_ url: String) -> Result<PostgresURL, PostgresURL.Problem> {
    PostgresURL.parse(url)
}

/// The problem's message, or a note that the url was accepted.
private func problem(_ url: String) -> String {
    switch PostgresURL.parse(url) {
    case .success: return "accepted"
    case .failure(let problem): return problem.message
    }
}

@Suite struct PostgresURLTests {
    @Test func userHostPortDatabase() throws {
        let url = try parsed("postgres://paywatch@db.internal:5433/orders").get()
        #expect(url == PostgresURL(user: "paywatch", endpoint: .tcp(host: "db.internal", port: 5433), database: "orders"))
        #expect(try parsed("postgresql://paywatch@db.internal:5433/orders").get() == url)
        #expect(url.endpoint.port == 5433)
        #expect(url.endpoint.passFileHost == "db.internal")
    }

    @Test func defaults() throws {
        // Port 5432, database = the user.
        #expect(try parsed("postgres://paywatch@db").get()
            == PostgresURL(user: "paywatch", endpoint: .tcp(host: "db", port: 5432), database: "paywatch"))
        #expect(try parsed("postgres://paywatch@db/").get().database == "paywatch")
        // No user: nil (the store uses $PGUSER, else the account's name).
        #expect(try parsed("postgres://10.0.0.7/orders").get()
            == PostgresURL(endpoint: .tcp(host: "10.0.0.7", port: 5432), database: "orders"))
        // An empty query is no parameter.
        #expect(try parsed("postgres://db/orders?").get().database == "orders")
        // Neither a database nor a user: refused (libpq's fallbacks are not in the file).
        #expect(problem("postgres://db") == "the postgres url names no database and no user: add /DATABASE (postgres://user@host/DATABASE)")
        #expect(problem("postgres://db:5432/") == problem("postgres://db"))
        #expect(problem("postgres://") == "the postgres url has no host or database")
        #expect(problem("mysql://db/x") == "expected a url starting with postgres:// or postgresql://")
    }

    @Test func passwordsArePercentDecoded() throws {
        let url = try parsed("postgres://pay%20watch:pw%40secret%3A1%2F2%3F3%234@db/orders").get()
        #expect(url.user == "pay watch")
        #expect(url.password == "pw@secret:1/2?3#4")
        // A raw : in the password is the password's (only the first : splits).
        #expect(try parsed("postgres://u:pwsecret:x@db/orders").get().password == "pwsecret:x")
        // Unicode, percent-encoded or not.
        #expect(try parsed("postgres://%C3%BCser:pwsecret%E2%82%AC@db/d%C3%B6").get()
            == PostgresURL(user: "üser", password: "pwsecret€", endpoint: .tcp(host: "db", port: 5432), database: "dö"))
        #expect(try parsed("postgres://üser@db/orders").get().user == "üser")
        // Empty user or password: none.
        #expect(try parsed("postgres://:pwsecret@db/orders").get().user == nil)
        #expect(try parsed("postgres://u:@db/orders").get().password == nil)
    }

    @Test func ipv6() throws {
        #expect(try parsed("postgres://u@[::1]:6543/orders").get().endpoint == .tcp(host: "::1", port: 6543))
        #expect(try parsed("postgres://u@[2001:db8::7]/orders").get().endpoint == .tcp(host: "2001:db8::7", port: 5432))
        #expect(try parsed("postgres://u@[fe80::1%25eth0]/orders").get().endpoint == .tcp(host: "fe80::1%eth0", port: 5432))
        #expect(problem("postgres://u@[::1/orders") == "the IPv6 address has no closing ] (write it as [::1])")
        #expect(problem("postgres://u@[db.internal]/orders") == "the host in [ ] is not an IPv6 address")
        #expect(problem("postgres://u@[::1]5432/orders") == "unexpected characters after the IPv6 address's ]: expected :PORT")
        #expect(problem("postgres://u@::1/orders").hasPrefix("the port must be a number 1 … 65535"))
    }

    @Test func unixSockets() throws {
        // No host: the default folder; the port names the socket file.
        #expect(try parsed("postgres:///orders").get()
            == PostgresURL(endpoint: .unixSocket(path: "/var/run/postgresql/.s.PGSQL.5432"), database: "orders"))
        let other = try parsed("postgres://paywatch@:6000/orders").get()
        #expect(other.endpoint == .unixSocket(path: "/var/run/postgresql/.s.PGSQL.6000"))
        #expect(other.endpoint.port == 6000)
        #expect(other.endpoint.passFileHost == "/var/run/postgresql")
        // ?host=/folder, or a host that decodes to a path.
        #expect(try parsed("postgres://paywatch@/orders?host=/tmp/pg").get().endpoint == .unixSocket(path: "/tmp/pg/.s.PGSQL.5432"))
        #expect(try parsed("postgres:///orders?host=%2Ftmp%2Fpg%2F").get().endpoint == .unixSocket(path: "/tmp/pg/.s.PGSQL.5432"))
        #expect(try parsed("postgres://%2Frun%2Fpg:5433/orders").get().endpoint == .unixSocket(path: "/run/pg/.s.PGSQL.5433"))
        #expect(try parsed("postgres:///orders?host=/").get().endpoint == .unixSocket(path: "/.s.PGSQL.5432"))
        // ?host= may also name a host.
        #expect(try parsed("postgres:///orders?host=db.internal").get().endpoint == .tcp(host: "db.internal", port: 5432))
        #expect(problem("postgres://db/orders?host=/tmp") == "the host is given twice: in the url and as ?host= (keep one)")
        // sun_path: 107 bytes and the NUL.
        let folder = "/" + String(repeating: "f", count: 106 - "/.s.PGSQL.5432".count)
        #expect(try parsed("postgres:///orders?host=\(folder)").get().endpoint == .unixSocket(path: folder + "/.s.PGSQL.5432"))
        #expect(problem("postgres:///orders?host=\(folder)ff").hasPrefix("the Unix socket's path would be longer than 107 bytes"))
    }

    @Test func parameters() throws {
        let url = try parsed(
            "postgres://u@db/orders?sslmode=verify-full&sslrootcert=/etc/paywatch/ca%20bundle.pem&connect_timeout=5&application_name=paywatch-1"
        ).get()
        #expect(url.sslMode == .verifyFull)
        #expect(url.sslRootCert == "/etc/paywatch/ca bundle.pem")
        #expect(url.connectTimeoutMs == 5_000)
        #expect(url.applicationName == "paywatch-1")
        for mode in PostgresURL.SSLMode.allCases {
            #expect(try parsed("postgres://u@db/orders?sslmode=\(mode.rawValue)").get().sslMode == mode)
        }
        let none = try parsed("postgres://u@db/orders").get()
        #expect(none.sslMode == nil && none.sslRootCert == nil && none.connectTimeoutMs == nil && none.applicationName == nil)
    }

    @Test func parameterProblems() {
        #expect(problem("postgres://u@db/orders?target_session_attrs=any")
            == "unknown query parameter target_session_attrs: the supported ones are sslmode, sslrootcert, connect_timeout, application_name, host")
        // A value is never shown, nor a name that does not look like one.
        #expect(problem("postgres://u@db/orders?token=pwsecret-1").hasPrefix("unknown query parameter token:"))
        #expect(problem("postgres://u@db/orders?Pwsecret%20X=1")
            == "unknown query parameter (its name is not shown): the supported ones are sslmode, sslrootcert, connect_timeout, application_name, host")
        #expect(problem("postgres://u@db/orders?password=pwsecret-1")
            == "query parameter password is not supported: put the password in password_file (or ~/.pgpass)")
        #expect(problem("postgres://u@db/orders?dbname=x") == "query parameter dbname is not supported: write it in the url itself (postgres://user@host:port/dbname)")
        #expect(problem("postgres://u@db/orders?sslmode") == "query parameter sslmode has no value (expected NAME=VALUE)")
        #expect(problem("postgres://u@db/orders?pwsecret%3D") == "query parameter (its name is not shown) has no value (expected NAME=VALUE)")
        #expect(problem("postgres://u@db/orders?sslmode=") == "query parameter sslmode has an empty value")
        #expect(problem("postgres://u@db/orders?sslmode=require&sslmode=disable") == "query parameter sslmode is given twice")
        #expect(problem("postgres://u@db/orders?sslmode=allow")
            == "?sslmode=: sslmode \"allow\" is not supported (it connects in the clear first): use prefer for TLS when the server offers it, or require")
        #expect(problem("postgres://u@db/orders?sslmode=on")
            == "?sslmode=: unknown sslmode \"on\": expected one of disable, prefer, require, verify-ca, verify-full")
        #expect(problem("postgres://u@db/orders?sslrootcert=system").hasPrefix("sslrootcert=system: leave it out"))
        for timeout in ["0", "-1", "1.5", "abc", "99999999999"] {
            #expect(problem("postgres://u@db/orders?connect_timeout=\(timeout)")
                == "connect_timeout must be a whole number of seconds, at least 1 (0, waiting forever, is not accepted)", "\(timeout)")
        }
        #expect(problem("postgres://u@db/orders?application_name=" + String(repeating: "a", count: 64))
            == "application_name must be printable ASCII of at most 63 bytes")
        #expect(problem("postgres://u@db/orders?application_name=caf%C3%A9") == "application_name must be printable ASCII of at most 63 bytes")
    }

    @Test func ports() {
        #expect(problem("postgres://u@db:65535/orders") == "accepted")
        #expect(problem("postgres://u@db:1/orders") == "accepted")
        let bad = "the port must be a number 1 … 65535 (a / ? # or @ in a password must be percent-encoded)"
        for port in ["99999", "65536", "0", "abc", "-1", "5432x", "000005432", "+5432"] {
            #expect(problem("postgres://u@db:\(port)/orders") == bad, "\(port)")
        }
        #expect(problem("postgres://u@db:/orders") == "the port after : is empty")
    }

    /// A / ? # or @ left raw in a password: refused, and the message shows no piece of it.
    @Test func unencodedPasswordsAreRefusedWithoutEchoingThem() {
        for url in ["postgres://u:pwsecret/1@db/orders", "postgres://u:pwsecret?1@db/orders", "postgres://u:pw@secret@db/orders",
                    "postgres://u:pwsecret#1@db/orders", "postgres://u:pwsecret 1@db/orders", "postgres://u:pwsecret%zz@db/orders",
                    "postgres://u:pwsecret%0D%0A@db/orders", "postgres://u:pwsecret%00@db/orders", "postgres://u:pwsecret%FF@db/orders",
                    "postgres://u:pwsecret@db:pwsecret/orders", "postgres://u:pwsecret@pwsecret!/orders"] {
            let message = problem(url)
            #expect(message != "accepted", "\(url)")
            #expect(!message.lowercased().contains("pwsecret"), "\(message)")
            #expect(!message.contains("secret"), "\(message)")
        }
        #expect(problem("postgres://u:pw@secret@db/orders")
            == "the postgres url has more than one @ before its host: percent-encode an @ in the user or password as %40")
        #expect(problem("postgres://u:pwsecret#1@db/orders")
            == "the postgres url contains #: a postgres url has no fragment; percent-encode a # in the password as %23")
        #expect(problem("postgres://u:pwsecret%zz@db/orders")
            == "the password has an invalid percent escape (expected % and two hex digits, %40 for @)")
        #expect(problem("postgres://u:pwsecret%4@db/orders") == problem("postgres://u:pwsecret%zz@db/orders"))
        #expect(problem("postgres://u:pwsecret%0D%0A@db/orders") == "the password contains a control character (CR, LF, NUL, …) once percent-decoded")
        #expect(problem("postgres://u:pwsecret%FF@db/orders") == "the password is not valid UTF-8 once percent-decoded")
    }

    @Test func controlCharactersAndSpaces() {
        let raw = "the postgres url contains a space or a control character (CR, LF, tab, …): percent-encode it (a space is %20)"
        for url in ["postgres://u@db/orders\r\nX", "postgres://u@db/or ders", "postgres://u@db/orders\t", "postgres://u@db/\u{0}x",
                    "postgres://u@db/\u{7F}", "postgres://u@db/\u{85}"] {
            #expect(problem(url) == raw, "\(url.debugDescription)")
        }
        #expect(problem("postgres://u%0A@db/orders") == "the user contains a control character (CR, LF, NUL, …) once percent-decoded")
        #expect(problem("postgres://u@db/ord%0Ders") == "the database name contains a control character (CR, LF, NUL, …) once percent-decoded")
        #expect(problem("postgres://u@db%0A/orders") == "the host contains a control character (CR, LF, NUL, …) once percent-decoded")
        #expect(problem("postgres://u@db/orders?application_name=a%0Ab")
            == "the value of application_name contains a control character (CR, LF, NUL, …) once percent-decoded")
    }

    @Test func hosts() throws {
        #expect(problem("postgres://u@db1,db2/orders") == "several hosts are not supported: name one host")
        #expect(problem("postgres://u@db_1.internal-x/orders") == "accepted")
        #expect(problem("postgres://u@db%21/orders").hasPrefix("the host may hold only letters, digits, -, . and _"))
        #expect(problem("postgres://u@d%2Fb/orders").hasPrefix("the host may hold only letters, digits, -, . and _"))
        #expect(problem("postgres://u@db/a/b") == "the database name contains /: percent-encode it as %2F (or remove the trailing /)")
        #expect(try parsed("postgres://u@db/a%2Fb").get().database == "a/b")
    }

    @Test func extremeLengths() throws {
        let name63 = String(repeating: "n", count: 63)
        #expect(try parsed("postgres://\(name63)@db").get().database == name63)
        #expect(problem("postgres://\(name63)n@db/orders") == "the user name is longer than 63 bytes (PostgreSQL's limit)")
        #expect(problem("postgres://u@db/\(name63)n") == "the database name is longer than 63 bytes (PostgreSQL's limit)")
        // Counted in bytes, after decoding: 32 two-byte letters.
        #expect(problem("postgres://u@db/" + String(repeating: "%C3%BC", count: 32)) == "the database name is longer than 63 bytes (PostgreSQL's limit)")
        let host253 = Array(repeating: String(repeating: "h", count: 63), count: 4).joined(separator: ".").dropLast(2)
        #expect(host253.utf8.count == 253)
        #expect(try parsed("postgres://u@\(host253)/orders").get().endpoint == .tcp(host: String(host253), port: 5432))
        #expect(problem("postgres://u@\(host253)hh/orders") == "the host name is longer than 253 bytes")
        // A long password is fine up to the url's limit; beyond it, the whole url is refused.
        let password = String(repeating: "pwsecret", count: 500)
        #expect(try parsed("postgres://u:\(password)@db/orders").get().password == password)
        let tooLong = "postgres://u:\(password)\(password)@db/orders"
        #expect(problem(tooLong) == "the postgres url is longer than 4096 bytes")
        #expect(problem("postgres://u@db/orders?" + String(repeating: "&", count: 5_000)) == "the postgres url is longer than 4096 bytes")
    }

    @Test func endpointHelpers() {
        #expect(PostgresURL.Endpoint.unixSocket(path: "/tmp/x/.s.PGSQL.7000").port == 7000)
        #expect(PostgresURL.Endpoint.unixSocket(path: "/tmp/x/socket").port == 5432)
        #expect(PostgresURL.Endpoint.unixSocket(path: "/.s.PGSQL.5432").passFileHost == "/")
        #expect(PostgresURL.Endpoint.tcp(host: "::1", port: 1).passFileHost == "::1")
    }
}
