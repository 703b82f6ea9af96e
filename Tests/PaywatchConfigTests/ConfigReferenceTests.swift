import Foundation
@testable import PaywatchConfig
import Testing

/// The documentation follows the key tables of ConfigKeys.swift: README.md's configuration table is
/// generated from them, and config/paywatch.toml shows every key.
@Suite struct ConfigReferenceTests {
    static let begin = "<!-- config-table:begin -->\n"
    static let end = "<!-- config-table:end -->"

    /// Fails when README.md's table (between the markers) is not the generated one, and prints the
    /// generated one to paste there.
    @Test func readmeTableIsGenerated() throws {
        let readme = try #require(readText(repositoryRoot() + "/README.md"))
        let start = try #require(readme.range(of: Self.begin), "README.md has no \(Self.begin)")
        let stop = try #require(readme.range(of: Self.end, range: start.upperBound..<readme.endIndex),
                                "README.md has no \(Self.end) after \(Self.begin)")
        let written = String(readme[start.upperBound..<stop.lowerBound])
        let expected = PaywatchConfiguration.referenceTable()
        if written != expected {
            Issue.record("""
                README.md's configuration table is not the one the key tables (ConfigKeys.swift) give. \
                Paste this between \(Self.begin.dropLast()) and \(Self.end):
                \(expected)
                """)
        }
    }

    /// Every declared key appears in config/paywatch.toml, under its section, written or commented out
    /// (`# reconcile_url = …`); `[channels.NAME]` keys under any `[channels.…]` section.
    @Test func exampleShowsEveryKey() throws {
        let example = try #require(readText(repositoryRoot() + "/config/paywatch.toml"))
        var shown: Set<[String]> = []
        var section = ""
        for rawLine in example.split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                let header = line.dropFirst().prefix { $0 != "]" }
                section = header.hasPrefix("channels.") ? "channels.NAME" : String(header)
                continue
            }
            let uncommented = line.drop { $0 == "#" || $0 == " " }
            let name = uncommented.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            if !name.isEmpty, uncommented.dropFirst(name.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") {
                shown.insert([section, String(name)])
            }
        }
        var declared: [[String]] = []
        for section in PaywatchConfiguration.sections {
            declared += section.keys.map { [section.name, $0.name] }
        }
        declared += PaywatchConfiguration.Channel.keys.map { ["channels.NAME", $0.name] }
        for key in declared {
            #expect(shown.contains(key), "config/paywatch.toml does not show [\(key[0])] \(key[1])")
        }
        // And nothing else: a key shown there that is not declared would be an error at start.
        for key in shown.sorted(by: { $0.joined() < $1.joined() }) where !declared.contains(key) {
            Issue.record("config/paywatch.toml shows [\(key[0])] \(key[1]), which is not declared")
        }
    }

    /// Names are unique within a section, and every section's keys are the ones the reader accepts.
    @Test func keyNamesAreUnique() {
        for section in PaywatchConfiguration.sections {
            let names = section.keys.map(\.name)
            #expect(Set(names).count == names.count, "[\(section.name)]")
        }
        let names = PaywatchConfiguration.sections.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(!names.contains("channels"))
    }
}

private func repositoryRoot() -> String {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}

private func readText(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}
