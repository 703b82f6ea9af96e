#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The files the configuration's `*_file` keys name (`[channels.NAME] token_file`, `[paying]
/// token_file`, `[paying] headers_file`), read once at start.
///
/// Under systemd the secrets are best given as credentials: `LoadCredential=push.token:/etc/paywatch/push.token`
/// in the unit makes systemd copy the file, at each start, into a directory only the service can
/// read, named by `$CREDENTIALS_DIRECTORY` in its environment. A key then says
/// `token_file = "$CREDENTIALS_DIRECTORY/push.token"` (or `${CREDENTIALS_DIRECTORY}/push.token`), and
/// the service user needs no read access to the original.
public enum SecretFile {
    /// The variable systemd sets for a service with `LoadCredential=` (systemd.exec(5)).
    public static let variable = "CREDENTIALS_DIRECTORY"

    /// The process's `$CREDENTIALS_DIRECTORY`; nil when it is unset or empty.
    public static func credentialsDirectory() -> String? {
        guard let value = getenv(variable), value.pointee != 0 else { return nil }
        return String(cString: value)
    }

    /// The file's content parsed by `parse`, or the problem as a configuration error says it after
    /// `file:line: [section] key: `: `cannot read PATH`, or `FILE` followed by `parse`'s problem.
    /// Never the content.
    /// - Parameters:
    ///   - file: the key's value, as written.
    ///   - credentialsDirectory: what `$CREDENTIALS_DIRECTORY` stands for; nil when it is not set.
    static func read<Value>(
        _ file: String, credentialsDirectory: String?, as parse: ([UInt8]) -> Result<Value, Runtime.TokenProblem>
    ) -> Result<Value, Runtime.TokenProblem> {
        expand(file, credentialsDirectory: credentialsDirectory).flatMap { path in
            guard let data = FileManager.default.contents(atPath: path) else {
                let hint = path == file ? "" : " (\(file): is the credential in a LoadCredential= line of the unit?)"
                return .failure(Runtime.TokenProblem(description: "cannot read \(path)\(hint)"))
            }
            return parse(Array(data)).mapError { Runtime.TokenProblem(description: "\(file) \($0.description)") }
        }
    }

    /// Why the secret file `file` is exposed — readable (or writable) by group or others, so any
    /// account on the machine could take or swap the credential — or nil (also when it cannot be
    /// found: reading it says so).
    public static func exposure(_ file: String, credentialsDirectory: String?) -> String? {
        guard case .success(let path) = expand(file, credentialsDirectory: credentialsDirectory) else { return nil }
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & 0o077 != 0 else { return nil }
        let mode = String(info.st_mode & 0o777, radix: 8)
        return "\(path) is readable by group or others (mode 0\(mode)): `chmod 600 \(path)` (owned by the service user), "
            + "or give it as a systemd credential (LoadCredential=)"
    }

    /// `file` with `$CREDENTIALS_DIRECTORY` and `${CREDENTIALS_DIRECTORY}` replaced by
    /// `credentialsDirectory`; any other `$` stays as it is. A file that names the variable while it
    /// is not set is a problem that says so.
    public static func expand(_ file: String, credentialsDirectory: String?) -> Result<String, Runtime.TokenProblem> {
        let braced = "${\(variable)}", bare = "$\(variable)"
        var rest = Substring(file)
        var result = ""
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[dollar...]
            let length: Int
            if rest.hasPrefix(braced) {
                length = braced.count
            } else if rest.hasPrefix(bare), !(rest.dropFirst(bare.count).first.map(isNameCharacter) ?? false) {
                length = bare.count
            } else {
                result += "$"
                rest = rest.dropFirst()
                continue
            }
            guard let credentialsDirectory else {
                return .failure(Runtime.TokenProblem(description: "\(file) names $\(variable), which is not set: systemd sets it "
                    + "only for a service whose unit loads credentials (LoadCredential= missing in the unit?)"))
            }
            result += credentialsDirectory
            rest = rest.dropFirst(length)
        }
        return .success(result + rest)
    }

    private static func isNameCharacter(_ character: Character) -> Bool {
        character == "_" || (character.isASCII && (character.isLetter || character.isNumber))
    }
}
