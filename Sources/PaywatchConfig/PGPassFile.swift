/// libpq's password file (`~/.pgpass`, or the file `$PGPASSFILE` names), read from its contents:
/// the store reads the file (and refuses one that group or others may read, as libpq does); this
/// only finds the password in it.
///
/// Each line is `hostname:port:database:username:password`. A field that is exactly `*` matches
/// anything; `\:` and `\\` stand for `:` and `\` in any field. Lines starting with `#` and empty
/// lines are skipped, a trailing CR is dropped, and the first line that matches wins. A line with
/// fewer than five fields never matches.
///
/// The host of a Unix socket is its folder (``PostgresURL/Endpoint/passFileHost``): it matches a
/// line naming that folder, or `localhost`. (libpq takes `localhost` for its default socket folder
/// only; paywatch for every socket, so a test server in a temporary folder finds its line too.)
public struct PGPassFile: Sendable {
    /// The password for a connection to `host` (a name, an address, or a socket folder starting
    /// with `/`), `port`, `database` as `user`, in a password file's `contents`; nil when no line
    /// matches, or the matching line's password is empty (libpq then connects without one).
    public static func password(in contents: String, host: String, port: Int, database: String, user: String) -> String? {
        let localhost = Array("localhost".utf8)
        let hosts = host.isEmpty ? [localhost] : host.hasPrefix("/") ? [Array(host.utf8), localhost] : [Array(host.utf8)]
        let port = Array(String(port).utf8)
        let database = Array(database.utf8)
        let user = Array(user.utf8)
        for line in Array(contents.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = line
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            guard let afterHost = hosts.lazy.compactMap({ matches(line, $0) }).first,
                  let afterPort = matches(afterHost, port),
                  let afterDatabase = matches(afterPort, database),
                  let rest = matches(afterDatabase, user) else { continue }
            let password = unescapedField(rest)
            return password.isEmpty ? nil : String(decoding: password, as: UTF8.self)
        }
        return nil
    }

    /// Where the password file is: `$PGPASSFILE` when set and not empty, else `HOME/.pgpass`; nil
    /// when neither is known. (Pure: the caller passes the environment's values.)
    public static func location(pgpassfile: String?, home: String?) -> String? {
        if let pgpassfile, !pgpassfile.isEmpty { return pgpassfile }
        guard let home, !home.isEmpty else { return nil }
        return (home.hasSuffix("/") ? home : home + "/") + ".pgpass"
    }

    /// libpq's `pwdfMatchesString`: when the field at the start of `line` is `*` or equals `token`
    /// (escapes undone), what follows its `:`; else nil.
    private static func matches(_ line: ArraySlice<UInt8>, _ token: [UInt8]) -> ArraySlice<UInt8>? {
        let colon = UInt8(ascii: ":")
        let backslash = UInt8(ascii: "\\")
        if line.count >= 2, line[line.startIndex] == UInt8(ascii: "*"), line[line.startIndex + 1] == colon {
            return line.dropFirst(2)
        }
        var index = line.startIndex
        var tokenIndex = 0
        while index < line.endIndex {
            var escaped = false
            if line[index] == backslash {
                index += 1
                escaped = true
                guard index < line.endIndex else { return nil }
            }
            if line[index] == colon, !escaped, tokenIndex == token.count {
                return line[(index + 1)...]
            }
            guard tokenIndex < token.count, line[index] == token[tokenIndex] else { return nil }
            index += 1
            tokenIndex += 1
        }
        return nil
    }

    /// The password field: up to an unescaped `:` or the end, `\x` read as `x`.
    private static func unescapedField(_ field: ArraySlice<UInt8>) -> [UInt8] {
        var result: [UInt8] = []
        var index = field.startIndex
        while index < field.endIndex, field[index] != UInt8(ascii: ":") {
            if field[index] == UInt8(ascii: "\\"), index + 1 < field.endIndex { index += 1 }
            result.append(field[index])
            index += 1
        }
        return result
    }
}
