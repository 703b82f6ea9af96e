import PaywatchConfig
import Testing

/// One channel, so that a file is complete; it follows `[store]`, so a store key's line is its own.
private let channel = """

    [channels.ops]
    provider = "webhook"
    url = "http://127.0.0.1:8025/ops"

    """

private func parse(_ store: String) -> Result<PaywatchConfiguration, ConfigError> {
    Result { () throws(ConfigError) in try PaywatchConfiguration.parse("[store]\n" + store + channel, fileName: "x.toml") }
}

/// The error's description, or a note that the text parsed.
private func failure(ofStore store: String) -> String {
    switch parse(store) {
    case .success: return "parsed without error"
    case .failure(let error): return error.description
    }
}

/// The warnings about `[store]` (the one-channel file has others, about the default channels).
private func storeWarnings(_ config: PaywatchConfiguration) -> [String] {
    config.warnings.filter { $0.hasPrefix("[store]") }
}

/// `[store]`'s PostgreSQL keys: password_file, sslmode, ca_file, pool_size, connect_timeout.
@Suite struct PostgresStoreConfigTests {
    @Test func defaults() {
        let store = PaywatchConfiguration.Store()
        #expect(store.passwordFile == nil)
        #expect(store.sslMode == .prefer)
        #expect(store.caFile == nil)
        #expect(store.poolSize == 4)
        #expect(store.connectTimeoutMs == 10_000)
        #expect(store.postgres == nil)
    }

    @Test func everyKeyCanBeSet() throws {
        let config = try parse("""
            url = "postgres://paywatch@db.internal:6432/orders"
            password_file = "$CREDENTIALS_DIRECTORY/pg"
            sslmode = "verify-full"
            ca_file = "/etc/paywatch/db-ca.pem"
            pool_size = 12
            connect_timeout = "3s"
            """).get()
        #expect(config.store == PaywatchConfiguration.Store(
            url: "postgres://paywatch@db.internal:6432/orders", passwordFile: "$CREDENTIALS_DIRECTORY/pg", sslMode: .verifyFull,
            caFile: "/etc/paywatch/db-ca.pem", poolSize: 12, connectTimeoutMs: 3_000))
        #expect(config.store.postgres == PostgresURL(user: "paywatch", endpoint: .tcp(host: "db.internal", port: 6432), database: "orders"))
        #expect(config.store.sqlitePath == nil)
        #expect(storeWarnings(config).isEmpty, "\(config.warnings)")
    }

    @Test func valueProblemsNameFileLineAndKey() {
        let url = "url = \"postgres://paywatch@db/orders\"\n"
        #expect(failure(ofStore: url + "pool_size = 0") == "x.toml:3: [store] pool_size: must be at least 1, got 0")
        #expect(failure(ofStore: url + "pool_size = 101")
            == "x.toml:3: [store] pool_size: must be at most 100, got 101 (each connection is a server process)")
        #expect(failure(ofStore: url + "sslmode = \"allow\"") == """
            x.toml:3: [store] sslmode: sslmode "allow" is not supported (it connects in the clear first): \
            use prefer for TLS when the server offers it, or require
            """)
        #expect(failure(ofStore: url + "sslmode = \"VERIFY-FULL\"")
            == "x.toml:3: [store] sslmode: unknown sslmode \"VERIFY-FULL\": expected one of disable, prefer, require, verify-ca, verify-full")
        #expect(failure(ofStore: url + "sslmode = true") == "x.toml:3: [store] sslmode: expected a string, got boolean true")
        #expect(failure(ofStore: url + "connect_timeout = 10")
            == "x.toml:3: [store] connect_timeout: expected a duration string such as \"30m\", got integer 10")
        #expect(failure(ofStore: url + "password_file = \"\"") == "x.toml:3: [store] password_file: must not be empty")
        #expect(failure(ofStore: url + "ca_file = 1") == "x.toml:3: [store] ca_file: expected a string, got integer 1")
    }

    @Test func badPostgresURLsFailAtTheirLineWithoutTheSecret() {
        for (url, message) in [
            ("postgres://paywatch:pwsecret-1@db:99999/orders",
             "the port must be a number 1 … 65535 (a / ? # or @ in a password must be percent-encoded)"),
            ("postgres://paywatch:pwsecret-1@db/orders?sslmode=require&token=1", "unknown query parameter token: "
                + "the supported ones are sslmode, sslrootcert, connect_timeout, application_name, host"),
            ("postgres://paywatch:pwsecret/1@db/orders",
             "the port must be a number 1 … 65535 (a / ? # or @ in a password must be percent-encoded)"),
            ("postgres://db", "the postgres url names no database and no user: add /DATABASE (postgres://user@host/DATABASE)"),
        ] {
            let description = failure(ofStore: "\nurl = \"\(url)\"")
            #expect(description == "x.toml:3: [store] url: " + message)
            #expect(!description.contains("pwsecret"), "\(description)")
        }
    }

    /// The PostgreSQL keys mean nothing to SQLite: written with a `sqlite://` url (or none), each is an error.
    @Test func postgresKeysAreRefusedForSQLite() {
        let keys = ["password_file = \"/etc/paywatch/pg\"", "sslmode = \"require\"", "ca_file = \"/etc/ca.pem\"", "pool_size = 8",
                    "connect_timeout = \"5s\""]
        for line in keys {
            let key = String(line.prefix { $0 != " " })
            #expect(failure(ofStore: "url = \"sqlite:///var/lib/pw.db\"\n" + line) == """
                x.toml:3: [store] \(key): only a PostgreSQL store (a postgres:// url) reads it, and [store] url is a sqlite:// url
                """)
            #expect(failure(ofStore: line) == """
                x.toml:2: [store] \(key): only a PostgreSQL store (a postgres:// url) reads it, and [store] url is not set (SQLite by default)
                """)
        }
        // A url that is itself refused: only its own error.
        #expect(failure(ofStore: "url = \"mysql://db/x\"\npool_size = 8")
            == "x.toml:2: [store] url: expected a url starting with sqlite://, postgres:// or postgresql://")
    }

    /// `?sslmode=`, `?sslrootcert=` and `?connect_timeout=` are the keys' settings: taken when the
    /// key is not written, the same value accepted, a different one an error on the key.
    @Test func urlParametersFoldIntoTheKeys() throws {
        let url = "url = \"postgres://paywatch@db/orders?sslmode=verify-ca&sslrootcert=/etc/ca.pem&connect_timeout=5\"\n"
        let folded = try parse(url).get().store
        #expect(folded.sslMode == .verifyCA)
        #expect(folded.caFile == "/etc/ca.pem")
        #expect(folded.connectTimeoutMs == 5_000)
        let same = try parse(url + "sslmode = \"verify-ca\"\nca_file = \"/etc/ca.pem\"\nconnect_timeout = \"5s\"").get().store
        #expect(same == folded)
        #expect(failure(ofStore: url + "sslmode = \"require\"")
            == "x.toml:3: [store] sslmode: sslmode \"require\" differs from the url's ?sslmode= (\"verify-ca\"): set it in one place")
        #expect(failure(ofStore: url + "ca_file = \"/etc/other.pem\"")
            == "x.toml:3: [store] ca_file: ca_file \"/etc/other.pem\" differs from the url's ?sslrootcert= (\"/etc/ca.pem\"): set it in one place")
        #expect(failure(ofStore: url + "connect_timeout = \"5001ms\"")
            == "x.toml:3: [store] connect_timeout: connect_timeout \"5s1ms\" differs from the url's ?connect_timeout= (\"5s\"): set it in one place")
        // A key that is itself wrong: only its own error.
        #expect(failure(ofStore: url + "sslmode = \"allow\"").hasPrefix("x.toml:3: [store] sslmode: sslmode \"allow\" is not supported"))
    }

    @Test func aCAFileNeedsTLS() {
        let url = "url = \"postgres://paywatch@db/orders\"\n"
        let message = "a CA file (ca_file or ?sslrootcert=) with sslmode disable: nothing is verified without TLS; "
            + "remove the CA file, or choose verify-full"
        #expect(failure(ofStore: url + "sslmode = \"disable\"\nca_file = \"/etc/ca.pem\"") == "x.toml:4: [store] ca_file: " + message)
        #expect(failure(ofStore: "url = \"postgres://paywatch@db/orders?sslrootcert=/etc/ca.pem\"\nsslmode = \"disable\"")
            == "x.toml:3: [store] sslmode: " + message)
        #expect(failure(ofStore: "url = \"postgres://paywatch@db/orders?sslmode=disable&sslrootcert=/etc/ca.pem\"")
            == "x.toml:2: [store] url: " + message)
        for mode in ["require", "verify-ca", "verify-full"] {
            #expect(failure(ofStore: url + "sslmode = \"\(mode)\"\nca_file = \"/etc/ca.pem\"") == "parsed without error")
        }
    }

    @Test func warnings() throws {
        let inURL = try parse("url = \"postgres://paywatch:pwsecret-1@db/orders\"").get()
        #expect(storeWarnings(inURL) == ["[store] url holds a password: anyone who can read this file, its backups or its copies can take it; "
            + "prefer password_file (or ~/.pgpass)"])
        #expect(inURL.store.postgres?.password == "pwsecret-1")
        let both = try parse("url = \"postgres://paywatch:pwsecret-1@db/orders\"\npassword_file = \"/etc/paywatch/pg\"").get()
        #expect(storeWarnings(both) == ["[store] url holds a password, which is not used (password_file comes first): remove it from the url"])
        #expect(!(inURL.warnings + both.warnings).joined().contains("pwsecret"))

        let prefer = try parse("url = \"postgres://paywatch@db/orders\"\nca_file = \"/etc/ca.pem\"").get()
        #expect(prefer.warnings.contains { $0.hasPrefix("[store] ca_file with sslmode prefer: a server that offers no TLS is still used in the clear") })

        let socket = try parse("url = \"postgres:///orders\"\nsslmode = \"verify-full\"").get()
        #expect(socket.warnings.contains { $0.hasPrefix("[store] sslmode verify-full: the url names a Unix socket, where (as in libpq) no TLS is used") })
        #expect(storeWarnings(try parse("url = \"postgres:///orders\"").get()).isEmpty)
    }

    @Test func renderedShowsTheSettingsWithThePasswordMasked() throws {
        let config = try parse("""
            url = "postgresql://paywatch:pwsecret%40x@[::1]:6432/orders"
            password_file = "/etc/paywatch/pg"
            sslmode = "require"
            pool_size = 8
            """).get()
        let rendered = config.rendered()
        for line in ["url = \"postgresql://paywatch:****@[::1]:6432/orders\"", "password_file = \"/etc/paywatch/pg\"", "sslmode = \"require\"",
                     "# ca_file is not set: the system's certificate authorities", "pool_size = 8", "connect_timeout = \"10s\""] {
            #expect(rendered.contains(line + "\n"), "\(line)")
        }
        #expect(!rendered.contains("pwsecret"))
        // Without a password, the output reads back to the same configuration.
        var plain = config
        plain.store.url = "postgresql://paywatch@[::1]:6432/orders"
        #expect(try PaywatchConfiguration.parse(plain.rendered(), fileName: "rendered.toml") == plain)

        // Parameters are query values: masked like any other.
        let withParameters = try parse("url = \"postgres://paywatch@db/orders?sslmode=verify-full&application_name=pw\"").get()
        #expect(withParameters.rendered().contains("url = \"postgres://paywatch@db/orders?sslmode=****&application_name=****\"\nbusy_timeout"))
        #expect(withParameters.rendered().contains("sslmode = \"verify-full\"\n"))
    }

    @Test func renderedSQLiteStoreLeavesThePostgresKeysOut() throws {
        let config = try parse("url = \"sqlite:///var/lib/pw.db\"").get()
        let rendered = config.rendered()
        #expect(rendered.contains("""
            [store]
            url = "sqlite:///var/lib/pw.db"
            busy_timeout = "5s"
            # password_file is not used: the store is SQLite
            # sslmode is not used: the store is SQLite
            # ca_file is not used: the store is SQLite
            # pool_size is not used: the store is SQLite
            # connect_timeout is not used: the store is SQLite

            """), "\(rendered)")
        #expect(try PaywatchConfiguration.parse(rendered, fileName: "rendered.toml") == config)
    }
}
