import Foundation
import PaywatchConfig
import PaywatchDelivery
import Testing
@testable import PaywatchDaemon

/// `*_file` keys naming systemd credentials (`$CREDENTIALS_DIRECTORY/NAME`), read from real files.
@Suite struct SecretFileTests {
    /// A temporary folder standing in for the one systemd makes for `LoadCredential=`, and a
    /// configuration file beside it that names credentials in it.
    final class Credentials {
        let directory: URL
        let configPath: String

        init(_ toml: String) throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-creds-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            configPath = directory.appendingPathComponent("paywatch.toml").path
            try toml.write(toFile: configPath, atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }

        func write(_ name: String, _ content: String) throws {
            try content.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }

        func config() throws -> PaywatchConfiguration { try PaywatchConfiguration.load(path: configPath) }
    }

    /// What `body` throws, as printed (`paywatch: …`); "no error" when it throws nothing.
    func configError(_ body: () throws -> Any?) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    static let toml = """
        [channels.push]
        provider = "webhook"
        url = "http://127.0.0.1:1/push"
        token_file = "$CREDENTIALS_DIRECTORY/push.token"

        [paying]
        reconcile_url = "http://127.0.0.1:1/psp/{provider_ref}"
        token_file = "${CREDENTIALS_DIRECTORY}/psp.token"
        headers_file = "${CREDENTIALS_DIRECTORY}/psp.headers"
        """

    @Test func bothSpellingsAreExpandedAndNothingElse() throws {
        func expand(_ file: String) -> String? { try? SecretFile.expand(file, credentialsDirectory: "/run/credentials/paywatch.service").get() }
        #expect(expand("$CREDENTIALS_DIRECTORY/push.token") == "/run/credentials/paywatch.service/push.token")
        #expect(expand("${CREDENTIALS_DIRECTORY}/psp.token") == "/run/credentials/paywatch.service/psp.token")
        #expect(expand("/etc/paywatch/$HOME/a$b") == "/etc/paywatch/$HOME/a$b")
        #expect(expand("$CREDENTIALS_DIRECTORY_OLD/x") == "$CREDENTIALS_DIRECTORY_OLD/x")
        #expect(expand("${CREDENTIALS_DIRECTORY/x") == "${CREDENTIALS_DIRECTORY/x")
        #expect(expand("/etc/paywatch/push.token") == "/etc/paywatch/push.token")
        #expect(try SecretFile.expand("/etc/paywatch/push.token", credentialsDirectory: nil).get() == "/etc/paywatch/push.token")
    }

    @Test func credentialsAreReadFromTheDirectorySystemdNames() throws {
        let creds = try Credentials(Self.toml)
        try creds.write("push.token", "push-pwsecret\n")
        try creds.write("psp.token", "psp-pwsecret\n")
        try creds.write("psp.headers", "X-Merchant: 42\n")
        let config = try creds.config()
        let endpoints = try Runtime.endpoints(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path)
        #expect((endpoints["push"]?.provider as? WebhookProvider)?.headers(idempotencyKey: "k")
            .contains { $0 == ("Authorization", "Bearer push-pwsecret") } == true)
        let reconcile = try #require(try Runtime.reconcileEndpoint(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path))
        let headers = reconcile.request(id: 1, providerRef: "r").headers
        #expect(headers.contains { $0 == ("Authorization", "Bearer psp-pwsecret") })
        #expect(headers.contains { $0 == ("X-Merchant", "42") })
    }

    /// Outside systemd, or in a unit without LoadCredential=: the error names the file, line and
    /// key, says that the variable is not set and what is missing — and never a secret.
    @Test func anUnsetCredentialsDirectoryIsAConfigurationErrorSayingSo() throws {
        let creds = try Credentials(Self.toml)
        let config = try creds.config()
        let channel = configError {
            try Runtime.endpoints(config, configPath: creds.configPath, credentialsDirectory: nil)
        }
        #expect(channel.hasPrefix("\(creds.configPath):4: [channels.push] token_file: "))
        #expect(channel.contains("$CREDENTIALS_DIRECTORY/push.token names $CREDENTIALS_DIRECTORY, which is not set"))
        #expect(channel.contains("LoadCredential= missing in the unit?"))
        let paying = configError {
            try Runtime.reconcileEndpoint(config, configPath: creds.configPath, credentialsDirectory: nil)
        }
        #expect(paying.hasPrefix("\(creds.configPath):8: [paying] token_file: "))
        #expect(paying.contains("which is not set"))
    }

    @Test func aMissingOrBadCredentialNamesThePathAndTheKey() throws {
        let creds = try Credentials(Self.toml)
        let config = try creds.config()
        try creds.write("push.token", "push-pwsecret\n")
        try creds.write("psp.token", "psp-pwsecret\n")
        // psp.headers was not loaded: the path systemd would have made, and the hint.
        let missing = configError {
            try Runtime.reconcileEndpoint(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path)
        }
        #expect(missing.hasPrefix("\(creds.configPath):9: [paying] headers_file: cannot read \(creds.directory.path)/psp.headers"))
        #expect(missing.contains("LoadCredential="))
        try creds.write("push.token", "two\nlines\n")
        let bad = configError {
            try Runtime.endpoints(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path)
        }
        #expect(bad.contains("[channels.push] token_file: $CREDENTIALS_DIRECTORY/push.token holds more than one line"))
        #expect(!bad.contains("two") && !bad.contains("lines\n"))
    }
}

