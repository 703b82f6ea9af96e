/// A configuration problem that stops paywatch from starting (exit code 78, `EX_CONFIG`).
///
/// `description` reads `FILE:LINE: KEY: MESSAGE`, e.g. `paywatch.toml:5: [unpaid] hodl: unknown key`.
/// The line is left out when unknown (e.g. a missing file) and the key when the problem is about the
/// whole file (e.g. a TOML syntax error). Messages never contain secrets: a store URL is never echoed.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path of the file, as given to ``PaywatchConfiguration/load(path:)`` or `parse(_:fileName:)`.
    public var file: String
    /// 1-based line of the offending key (or of its section header, for a missing key); `nil` if unknown.
    public var line: Int?
    /// `"[unpaid] hodl"`, `"[channels.sms] url"`, `"[foo]"` for a section, or `""` for file-level problems.
    public var key: String
    /// What is wrong, e.g. `unknown key` or `expected a duration string such as "30m", got integer 30`.
    public var message: String

    public init(file: String, line: Int?, key: String, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if !key.isEmpty { text += key + ": " }
        return text + message
    }
}
