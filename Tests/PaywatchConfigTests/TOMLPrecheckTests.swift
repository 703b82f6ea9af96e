import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
@testable import PaywatchConfig
import Testing

/// The shapes that make toml++ abort (see TOMLPrecheck.swift) must come back as a ConfigError on
/// the right line, without TOMLKit ever seeing them; valid TOML must pass the pre-check untouched.
@Suite struct TOMLPrecheckTests {
    /// (input, line, a piece of the message)
    static let crashing: [(String, Int, String)] = [
        // 1. table header not starting with a key (toml++ parse_key assert)
        ("[.", 1, "table header must start with a key"),
        ("[\u{1}", 1, "table header must start with a key"),
        ("[\n", 1, "table header must start with a key"),
        ("[[[", 1, "table header must start with a key"),
        ("[é]", 1, "table header must start with a key"),
        ("[ .a]", 1, "table header must start with a key"),
        ("[[ =]]", 1, "table header must start with a key"),
        ("[\t#]", 1, "table header must start with a key"),
        ("[\u{2028}]", 1, "table header must start with a key"),
        ("\u{FEFF}[ = ]", 1, "table header must start with a key"),
        ("a = 1\n# [ok]\n\n[{", 4, "table header must start with a key"),
        ("a = \"\"\"\n[x]\n\"\"\"\n[[,]]", 4, "table header must start with a key"),
        // 2. array element position holding '}' or a Unicode line break (parse_value assert)
        ("7=[}", 1, "array element is missing before '}'"),
        ("a = [1, }", 1, "array element is missing before '}'"),
        ("a = [\n  # comment\n  }", 3, "array element is missing before '}'"),
        ("a = [[1], [}]]", 1, "array element is missing before '}'"),
        ("a = { b = [} }", 1, "array element is missing before '}'"),
        ("a = [\u{2028}]", 1, "array element is missing before U+2028"),
        ("a = [1,\u{2029}]", 1, "array element is missing before U+2029"),
        ("a = [\u{85}]", 1, "array element is missing before U+0085"),
        // 3. "YYYY-MM-DD", a space, one digit and a value terminator (parse_value's date-time scan)
        ("a = 1979-05-27 0\n", 1, "needs a time (HH:MM:SS) after the space"),
        ("x = 1\na = 1979-05-27 0]", 2, "needs a time (HH:MM:SS) after the space"),
        ("a = [1979-05-27 1,]", 1, "needs a time (HH:MM:SS) after the space"),
        ("a = { b = 1979-05-27 1}", 1, "needs a time (HH:MM:SS) after the space"),
        ("a = 1979-05-27 1 #", 1, "needs a time (HH:MM:SS) after the space"),
        // 4. the same scan stepping back past its 127-character history (underscores)
        ("a = 1" + String(repeating: "_", count: 115) + "979-05-27 12:00:00\n", 1, "a date may not contain '_'"),
        ("a = 1" + String(repeating: "_", count: 117) + "979-05-27 12:00:00\n", 1, "a date may not contain '_'"),
        // 5. "YYYY-MM-DDT" not followed by a digit (parse_time assert)
        ("a = 1979-05-27T:00", 1, "needs a time (HH:MM:SS) right after its 'T'"),
        ("a = 1979-05-27t-1:", 1, "needs a time (HH:MM:SS) right after its 'T'"),
        ("a = [1979-05-27T]", 1, "needs a time (HH:MM:SS) right after its 'T'"),
        // nesting deeper than the limit
        ("a = " + String(repeating: "[", count: 65), 1, "nested more than 64 deep"),
        ("a = " + String(repeating: "{b=", count: 65), 1, "nested more than 64 deep"),
        ("a = " + String(repeating: "[{b=", count: 40), 1, "nested more than 64 deep"),
    ]

    @Test(arguments: 0..<crashing.count)
    func crashingShapeIsAConfigError(_ index: Int) {
        let (text, line, message) = Self.crashing[index]
        do {
            _ = try PaywatchConfiguration.parse(text, fileName: "x.toml")
            Issue.record("parsed without error: \(text.debugDescription)")
        } catch {
            #expect(error.file == "x.toml")
            #expect(error.line == line, "\(text.debugDescription): \(error.description)")
            #expect(error.key == "")
            #expect(error.message.hasPrefix("invalid TOML at column "), "\(error.description)")
            #expect(error.message.contains(message), "\(text.debugDescription): \(error.description)")
        }
    }

    @Test func columnIsReported() {
        #expect(tomlPrecheck("a = 1\n  [ .]") == TOMLPrecheckFailure(
            line: 2, column: 5, message: "a table header must start with a key name or a quoted key, not '.'"))
        #expect(tomlPrecheck("7=[}")?.column == 4)
        #expect(tomlPrecheck("\u{FEFF}[.")?.column == 2)  // a byte order mark is not a column
    }

    /// Valid TOML (all of it accepted by toml++) that the pre-check must let through.
    static let valid: [String] = [
        "",
        "# only a comment",
        "a = 1",
        "a = 1 # comment",
        "a.b.c = 1",
        "a . b = 1",
        "\"quoted key\" = 1",
        "'literal key'.b = 2",
        "\"a.b\".'c' = \"x\"",
        "[table]\nkey = \"value\"",
        "[ table ]",
        "[ a . \"b\" . 'c' ]",
        "[\"quoted\"]",
        "['literal']",
        "[[array]]\nx = 1\n[[array]]\nx = 2",
        "[[ a.b ]] # comment",
        "[a]\n[a.b]\n[a.b.c]",
        "a = [1, 2, 3]",
        "a = [1, 2, 3,]",
        "a = [\n  1, # one\n  2, # two\n]",
        "a = [\n\n  # only comments\n\n]",
        "a = []",
        "a = [[1, 2], [\"a\", 'b'], [[], []]]",
        "a = [ { b = 1 }, { c = [1, 2] } ]",
        "a = {}",
        "a = { b = 1, c = \"x\", d.e = true }",
        "a = { b = { c = { d = 1 } } }",
        "a = { b = [\n 1,\n 2,\n] }",
        "a = \"string with ] and } and , and # and [x]\"",
        "a = 'literal with \\ and \"'",
        "a = \"escapes \\\" \\\\ \\n \\t \\u00e9 \\U0001F600\"",
        "a = \"\"\"\nmulti\n[not a header]\n= line \"quoted\" \"\" \\\"\"\" \n\"\"\"",
        "a = \"\"\"two quotes at the end\"\"\"\"\"",
        "a = \"\"\"line ending \\\n    backslash\"\"\"",
        "a = '''\nliteral\n[x]\n'''",
        "a = '''one quote at the end''''",
        "a = [\"\"\"\n]\n\"\"\", '''\n}\n''']",
        "a = 1979-05-27",
        "a = 1979-05-27T07:32:00Z",
        "a = 1979-05-27t07:32:00-07:00",
        "a = 1979-05-27 07:32:00",
        "a = 1979-05-27 07:32:00.999999",
        "a = [1979-05-27 07:32:00, 1979-05-27, 07:32:00]",
        "a = { d = 1979-05-27 07:32:00 }",
        "a = 07:32:00",
        "a = 1_000_000",
        "a = -17",
        "a = +1.5e-3",
        "a = 0xDEADBEEF",
        "a = 0o755",
        "a = 0b1101",
        "a = inf\nb = -nan\nc = +inf",
        "a = true\nb = false",
        "a = 1\r\nb = 2\r\n",
        "a = [\r\n  1,\r\n]\r\n",
        "\tkey\t=\t\"tabs\"\t",
        "\u{FEFF}[table]\nkey = 1",
        "\u{FEFF}a = [1]",
        "k = \"\u{2028} in a string\" # and \u{2028} in a comment",
        "a = " + String(repeating: "[", count: 64) + String(repeating: "]", count: 64),
        "a = " + String(repeating: "{b=", count: 63) + "1" + String(repeating: "}", count: 63),
    ]

    @Test(arguments: valid)
    func validTOMLPassesThePrecheck(_ text: String) {
        #expect(tomlPrecheck(text) == nil, "\(text.debugDescription)")
        // and TOMLKit agrees that it is valid (any error is about keys, not syntax)
        do {
            _ = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        } catch {
            #expect(!error.message.hasPrefix("invalid TOML"), "\(text.debugDescription): \(error.description)")
        }
    }

    /// The example configuration and the fuzz seeds that are valid TOML pass the pre-check.
    @Test func exampleConfigurationAndSeedsPass() throws {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        let root = parts.joined(separator: "/")
        let example = try #require(readText(root + "/config/paywatch.toml"))
        #expect(tomlPrecheck(example) == nil)
        #expect((try? PaywatchConfiguration.parse(example, fileName: "paywatch.toml")) != nil)
        for name in ["paywatch.toml", "minimal.toml", "password-and-escapes.toml", "broken-keys.toml",
                     "broken-values.toml", "broken-partially-paid.toml", "broken-unordered-no-section.toml"]
        {
            let text = try #require(readText(root + "/fuzz/corpus/config/" + name), "\(name)")
            #expect(tomlPrecheck(text) == nil, "\(name)")
        }
    }
}

private func readText(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}
