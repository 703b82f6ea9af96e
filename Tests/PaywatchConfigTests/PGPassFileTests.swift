import PaywatchConfig
import Testing

private func password(_ contents: String, host: String = "db.internal", port: Int = 5432, database: String = "orders",
                      user: String = "paywatch") -> String? {
    PGPassFile.password(in: contents, host: host, port: port, database: database, user: user)
}

@Suite struct PGPassFileTests {
    @Test func exactMatch() {
        let file = "db.internal:5432:orders:paywatch:pwsecret-1\n"
        #expect(password(file) == "pwsecret-1")
        #expect(password(file, host: "db") == nil)
        #expect(password(file, port: 5433) == nil)
        #expect(password(file, database: "other") == nil)
        #expect(password(file, user: "other") == nil)
        // A field is matched whole, not as a prefix.
        #expect(password(file, host: "db.internal.example") == nil)
        #expect(password(file, database: "order") == nil)
    }

    @Test func wildcardsAndFirstMatchWins() {
        let file = """
            # staging first
            db.internal:5432:staging:*:pwsecret-staging
            *:*:orders:paywatch:pwsecret-orders
            *:*:*:*:pwsecret-any
            db.internal:5432:orders:paywatch:pwsecret-later
            """
        #expect(password(file) == "pwsecret-orders")
        #expect(password(file, database: "staging", user: "anyone") == "pwsecret-staging")
        #expect(password(file, host: "elsewhere", port: 1, database: "x", user: "y") == "pwsecret-any")
        // `*` is a wildcard only as a whole field.
        #expect(password("db*:5432:orders:paywatch:pwsecret-1\n") == nil)
        #expect(password("db*:5432:orders:paywatch:pwsecret-1\n", host: "db*") == "pwsecret-1")
        // A `*` password is a password.
        #expect(password("*:*:*:*:*") == "*")
    }

    @Test func escapes() {
        // \: and \\ in the password; an unescaped : ends it.
        #expect(password(#"*:*:*:*:pw\:secret\\x"#) == #"pw:secret\x"#)
        #expect(password(#"*:*:*:*:pwsecret:trailing"#) == "pwsecret")
        #expect(password(#"*:*:*:*:pwsecret\"#) == #"pwsecret\"#)
        // In the other fields too.
        #expect(password(#"db.internal:5432:ord\:ers:pay\\watch:pwsecret-1"#, database: "ord:ers", user: #"pay\watch"#) == "pwsecret-1")
        #expect(password(#"db.internal:5432:ord\:ers:paywatch:pwsecret-1"#) == nil)
        // \x is x.
        #expect(password(#"db.int\ernal:5432:orders:paywatch:pwsecret-1"#) == "pwsecret-1")
    }

    @Test func commentsBlankLinesAndLineEnds() {
        let file = "#db.internal:5432:orders:paywatch:pwsecret-comment\n\n\r\ndb.internal:5432:orders:paywatch:pwsecret-1\r\n"
        #expect(password(file) == "pwsecret-1")
        // Only a # at the start of a line is a comment.
        #expect(password(" #*:*:*:*:pwsecret-1", host: " #*") == "pwsecret-1")
    }

    @Test func shortLinesAndEmptyPasswordsGiveNone() {
        #expect(password("db.internal:5432:orders:paywatch") == nil)
        #expect(password("db.internal:5432:orders:paywatch:") == nil)
        #expect(password("*:*:*") == nil)
        #expect(password("") == nil)
        // The first match wins even when its password is empty (as in libpq): no password.
        #expect(password("*:*:*:*:\n*:*:*:*:pwsecret-1") == nil)
    }

    @Test func unixSocketsMatchLocalhostAndTheirFolder() {
        let file = """
            localhost:5432:orders:paywatch:pwsecret-local
            /tmp/pg:6000:orders:paywatch:pwsecret-folder
            """
        #expect(password(file, host: "/var/run/postgresql") == "pwsecret-local")
        #expect(password(file, host: "/tmp/pg", port: 6000) == "pwsecret-folder")
        #expect(password(file, host: "/tmp/pg", port: 5432) == "pwsecret-local")
        #expect(password(file, host: "localhost") == "pwsecret-local")
        #expect(password(file, host: "127.0.0.1") == nil)
        // Through the url: the socket's folder and port.
        if case .success(let url) = PostgresURL.parse("postgres://paywatch@%2Ftmp%2Fpg:6000/orders") {
            #expect(url.password(fromPassFile: file, user: "paywatch") == "pwsecret-folder")
        } else {
            Issue.record("the url was refused")
        }
    }

    @Test func portsCompareAsWritten() {
        #expect(password("db.internal:05432:orders:paywatch:pwsecret-1") == nil)
        #expect(password("db.internal:6543:orders:paywatch:pwsecret-1", port: 6543) == "pwsecret-1")
    }

    @Test func location() {
        #expect(PGPassFile.location(pgpassfile: "/etc/paywatch/pgpass", home: "/home/pw") == "/etc/paywatch/pgpass")
        #expect(PGPassFile.location(pgpassfile: "", home: "/home/pw") == "/home/pw/.pgpass")
        #expect(PGPassFile.location(pgpassfile: nil, home: "/home/pw/") == "/home/pw/.pgpass")
        #expect(PGPassFile.location(pgpassfile: nil, home: nil) == nil)
        #expect(PGPassFile.location(pgpassfile: nil, home: "") == nil)
    }
}
