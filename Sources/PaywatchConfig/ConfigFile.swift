#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The configuration file: reading it (size, UTF-8, NUL), then TOMLTree.swift turns the text into a
// tree with line numbers and ConfigReader.swift reads the keys declared in ConfigKeys.swift.

extension PaywatchConfiguration {
    /// Reads and validates the file at `path`. A missing or unreadable file is a ``ConfigError`` too
    /// (with `line == nil`); see ``parse(_:fileName:)`` for everything else.
    ///
    /// A relative `sqlite://` path in `[store] url` is resolved against the file's folder (made
    /// absolute), so the database does not depend on the working directory (systemd starts services in `/`).
    public static func load(path: String) throws(ConfigError) -> PaywatchConfiguration {
        let text = try readConfigFile(path)
        var configuration = try parse(text, fileName: path)
        configuration.store = configuration.store.resolvingRelativePath(against: absoluteDirectory(of: path))
        return configuration
    }

    /// Parses and validates TOML text. `fileName` is only used in errors.
    ///
    /// Every problem — TOML syntax, unknown section or key, wrong type, bad value, unordered reminder
    /// list, a `channels` entry with no `[channels.NAME]` section, … — is an error; when there are
    /// several, the one on the earliest line is thrown.
    public static func parse(_ text: String, fileName: String) throws(ConfigError) -> PaywatchConfiguration {
        if let nul = text.utf8.firstIndex(of: 0) {
            let line = text.utf8[..<nul].reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            throw ConfigError(file: fileName, line: line, key: "", message: "the file contains a NUL character")
        }
        let document = try TOMLDocument(parsing: text, fileName: fileName)
        var reader = ConfigReader(file: fileName, locator: document.locator)
        var configuration = reader.read(document.root)
        configuration.locator = document.locator
        if let first = reader.errors.enumerated().min(by: { a, b in
            (a.element.line ?? Int.max, a.offset) < (b.element.line ?? Int.max, b.offset)
        }) {
            throw first.element
        }
        return configuration
    }
}

/// The absolute folder of `path` (`/etc/paywatch/x.toml` → `/etc/paywatch`, `x.toml` → the working directory).
private func absoluteDirectory(of path: String) -> String {
    var directory: Substring
    if let slash = path.lastIndex(of: "/") {
        directory = path[..<slash]
        if directory.isEmpty { return "/" }
    } else {
        directory = "."
    }
    if directory.hasPrefix("/") { return String(directory) }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buffer, buffer.count) != nil else { return String(directory) }
    let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    while directory.hasPrefix("./") { directory = directory.dropFirst(2) }
    if directory == "." || directory.isEmpty { return cwd }
    return (cwd.hasSuffix("/") ? cwd : cwd + "/") + directory
}

private func readConfigFile(_ path: String) throws(ConfigError) -> String {
    func failure(_ what: String) -> ConfigError {
        ConfigError(file: path, line: nil, key: "", message: what)
    }
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        throw failure("cannot open the configuration file: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw failure("cannot read the configuration file: \(String(cString: strerror(errno)))")
        }
        if count == 0 { break }
        bytes.append(contentsOf: buffer[..<count])
        if bytes.count > 16 * 1024 * 1024 {
            throw failure("the configuration file is larger than 16 MiB")
        }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw failure("the configuration file is not valid UTF-8")
    }
    return text
}
