import _CryptoExtras
import Foundation
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing
@testable import PaywatchDaemon

/// `Runtime.endpoints` builds each channel's provider from its section: credentials read from
/// their files (systemd credentials included), `base_url` or the provider's own API.
@Suite struct ProviderEndpointsTests {
    typealias Credentials = SecretFileTests.Credentials

    static let toml = """
        [channels.sms]
        provider = "twilio"
        account_sid = "AC77"
        auth_token_file = "$CREDENTIALS_DIRECTORY/twilio.token"
        from = "+15005550006"

        [channels.email]
        provider = "sendgrid"
        api_key_file = "$CREDENTIALS_DIRECTORY/sendgrid.key"
        from = "orders@shop.example"
        base_url = "http://127.0.0.1:8025/"

        [channels.ops]
        provider = "slack"
        url_file = "$CREDENTIALS_DIRECTORY/slack.url"

        [channels.pager]
        provider = "pagerduty"
        routing_key_file = "$CREDENTIALS_DIRECTORY/pd.key"
        """

    static let message = ProviderMessage(id: 1, key: "k", kind: "paying_stalled", channel: "x", orderID: "A1", to: "+15550001111",
                                         payload: MessagePayload(subject: "s", text: "t"))

    func writeSecrets(_ creds: Credentials, slackURL: String = "https://hooks.slack.com/services/T1/B1/hook-pwsecret") throws {
        try creds.write("twilio.token", "twilio-pwsecret\n")
        try creds.write("sendgrid.key", "SG.sendgrid-pwsecret\n")
        try creds.write("slack.url", slackURL + "\n")
        try creds.write("pd.key", "pd-pwsecret\n")
    }

    @Test func everyHTTPProviderIsBuiltWithItsSecretsAndBaseURL() throws {
        let creds = try Credentials(Self.toml)
        try writeSecrets(creds)
        let endpoints = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
        #expect(endpoints.mapValues(\.provider.name) == ["sms": "twilio", "email": "sendgrid", "ops": "slack", "pager": "pagerduty"])

        let sms = try #require(endpoints["sms"]).provider.request(for: Self.message)
        // No base_url: Twilio's own API.
        #expect(sms.url == "https://api.twilio.com/2010-04-01/Accounts/AC77/Messages.json")
        #expect(sms.headers.contains { $0 == ("Authorization", "Basic " + Data("AC77:twilio-pwsecret".utf8).base64EncodedString()) })

        var mail = Self.message
        mail.to = "buyer@example.com"
        let email = try #require(endpoints["email"]).provider.request(for: mail)
        #expect(email.url == "http://127.0.0.1:8025/v3/mail/send")
        #expect(email.headers.contains { $0 == ("Authorization", "Bearer SG.sendgrid-pwsecret") })

        #expect(try #require(endpoints["ops"]).provider.request(for: Self.message).url == "https://hooks.slack.com/services/T1/B1/hook-pwsecret")

        let pager = try #require(endpoints["pager"]).provider.request(for: Self.message)
        #expect(pager.url == "https://events.pagerduty.com/v2/enqueue")
        #expect(String(decoding: pager.body, as: UTF8.self).contains("\"routing_key\":\"pd-pwsecret\""))
    }

    /// `allow_inline_secrets = true`: the credentials written in the sections are the ones sent,
    /// held to a file's rules (one line of printable ASCII; a Slack URL that is https).
    @Test func inlineSecretsAreUsedWhenAllowed() throws {
        let creds = try Credentials("""
            [channels.sms]
            provider = "twilio"
            account_sid = "AC77"
            from = "+15005550006"
            allow_inline_secrets = true
            auth_token = "pwsecret-inline-twilio"

            [channels.ops]
            provider = "slack"
            allow_inline_secrets = true
            url = "https://hooks.slack.com/services/T1/B1/pwsecret-inline"
            """)
        let endpoints = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: nil)
        let sms = try #require(endpoints["sms"]).provider.request(for: Self.message)
        #expect(sms.headers.contains { $0 == ("Authorization", "Basic " + Data("AC77:pwsecret-inline-twilio".utf8).base64EncodedString()) })
        #expect(try #require(endpoints["ops"]).provider.request(for: Self.message).url == "https://hooks.slack.com/services/T1/B1/pwsecret-inline")

        let spaced = try Credentials("""
            [channels.sms]
            provider = "twilio"
            account_sid = "AC77"
            from = "+15005550006"
            allow_inline_secrets = true
            auth_token = "pwsecret with spaces"
            """)
        do {
            _ = try Runtime.endpoints(try spaced.config(), configPath: spaced.configPath, credentialsDirectory: nil)
            Issue.record("an inline token with spaces was accepted")
        } catch {
            #expect("\(error)".hasSuffix("[channels.sms] auth_token: the inline auth_token must be one line of printable ASCII without spaces"))
            #expect(!"\(error)".contains("pwsecret"))
        }
    }

    /// What cannot be checked before the file is read: the Slack URL it holds. The error names the
    /// file and key, never the URL.
    @Test func aSlackURLFileMustHoldASecureURL() throws {
        let creds = try Credentials(Self.toml)
        func problem(_ slackURL: String) throws -> String {
            try writeSecrets(creds, slackURL: slackURL)
            do {
                _ = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let insecure = try problem("http://hooks.example/services/T1/B1/hook-pwsecret")
        #expect(insecure == "\(creds.configPath):15: [channels.ops] url_file: $CREDENTIALS_DIRECTORY/slack.url holds a plain http:// URL "
            + "to a host other than loopback, which would send the message unencrypted: use https://, or set allow_insecure_http = true")
        let notURL = try problem("hook-pwsecret")
        #expect(notURL == "\(creds.configPath):15: [channels.ops] url_file: $CREDENTIALS_DIRECTORY/slack.url does not hold an http:// or https:// URL (the incoming webhook's)")
        #expect(try problem("http://127.0.0.1:8025/services/T1/B1/hook-pwsecret") == "no error")
    }

    @Test func smtpAndFCMChannelsAreBuiltWithTheirSecretsAndPrintNone() throws {
        let creds = try Credentials("""
            [channels.mail]
            provider = "smtp"
            url = "smtp://127.0.0.1:2525"
            from = "o@shop.example"
            username = "shop"
            password_file = "$CREDENTIALS_DIRECTORY/smtp.password"

            [channels.push]
            provider = "fcm"
            service_account_file = "$CREDENTIALS_DIRECTORY/fcm.json"
            """)
        try creds.write("smtp.password", "smtp-pwsecret-pw\n")
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        TestLogs.registerSecret(key.pemRepresentation)
        var account = JSONObjectWriter()
        account.add("project_id", "proj")
        account.add("client_email", "pw@proj.iam.gserviceaccount.com")
        account.add("private_key", key.pemRepresentation)
        account.add("token_uri", "https://oauth2.googleapis.com/token")
        try creds.write("fcm.json", account.finish())
        let endpoints = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
        #expect(endpoints["mail"]?.provider is SMTPProvider)
        #expect((endpoints["push"]?.provider as? FCMProvider)?.account.projectID == "proj")
        // Printed or dumped, a provider shows none of its settings: they hold credentials.
        var dumped = ""
        dump(endpoints, to: &dumped)
        let printed = "\(endpoints)" + dumped
        #expect(!printed.contains("smtp-pwsecret-pw"))
        #expect(!printed.contains("PRIVATE KEY"))
        for endpoint in endpoints.values { endpoint.provider.shutdown() }
        // A token_uri in clear to another host: refused, as any plain http:// URL (the assertion is a credential).
        try creds.write("fcm.json", account.finish().replacingOccurrences(
            of: "https://oauth2.googleapis.com/token", with: "http://localhost@evil.example/token"))
        do {
            _ = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
            Issue.record("a token_uri in clear to another host was accepted")
        } catch {
            #expect("\(error)".contains("[channels.push] service_account_file: $CREDENTIALS_DIRECTORY/fcm.json: token_uri is a plain http:// URL"))
        }
        // A service account file that is none: the file and the key are named, not the content.
        try creds.write("fcm.json", "{\"private_key\": \"oops-pwsecret\"}")
        do {
            _ = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
            Issue.record("a broken service account file was accepted")
        } catch {
            #expect("\(error)".contains("[channels.push] service_account_file: $CREDENTIALS_DIRECTORY/fcm.json not a service account JSON key"))
            #expect(!"\(error)".contains("oops-pwsecret"))
        }
    }

    /// A secret file others may read gives a warning naming the file, line and key; none once it is
    /// the owner's alone.
    @Test func aSecretFileReadableByOthersIsWarnedAbout() throws {
        let creds = try Credentials(Self.toml)
        try writeSecrets(creds)
        let config = try creds.config()
        let names = ["twilio.token", "sendgrid.key", "slack.url", "pd.key"]
        for name in names {
            #expect(chmod(creds.directory.appendingPathComponent(name).path, 0o600) == 0)
        }
        #expect(Runtime.secretFileWarnings(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path) == [])
        let exposed = creds.directory.appendingPathComponent("twilio.token").path
        #expect(chmod(exposed, 0o640) == 0)
        #expect(Runtime.secretFileWarnings(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path) == [
            "\(creds.configPath):4: [channels.sms] auth_token_file: \(exposed) is readable by group or others (mode 0640): "
                + "`chmod 600 \(exposed)` (owned by the service user), or give it as a systemd credential (LoadCredential=)",
        ])
        // The warning is about the file, never its content.
        #expect(!Runtime.secretFileWarnings(config, configPath: creds.configPath, credentialsDirectory: creds.directory.path)
            .joined().contains("twilio-pwsecret"))
    }
}

extension ProviderEndpointsTests {
    /// An SMTP setting the provider refuses is reported against its own key.
    @Test func anSMTPRefusalNamesTheKeyItIsAbout() throws {
        func problem(_ section: String) throws -> String {
            let creds = try Credentials("[channels.mail]\nprovider = \"smtp\"\n" + section)
            try creds.write("pw", "pwsecret-pw\n")
            do {
                _ = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: creds.directory.path)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let clear = try problem("url = \"smtp://mail.example:587\"\nfrom = \"o@shop.example\"\nusername = \"u\"\n"
            + "password_file = \"$CREDENTIALS_DIRECTORY/pw\"\nstarttls = \"never\"\n")
        #expect(clear.contains("[channels.mail] starttls: credentials would be sent in the clear"), "\(clear)")
        #expect(!clear.contains("pwsecret-pw"))
        let from = try problem("url = \"smtp://127.0.0.1:25\"\nfrom = \"not-an-address\"\n")
        #expect(from.contains("[channels.mail] from: from is not an e-mail address"), "\(from)")
    }
}

extension ProviderEndpointsTests {
    /// `ca_file` is accepted by every provider, resolved beside the configuration, checked at
    /// start, and set on every request of the channel.
    @Test func aChannelsCAFileIsCheckedAndSetOnItsRequests() throws {
        let creds = try Credentials("[channels.sms]\nprovider = \"webhook\"\nurl = \"https://gw.example/sms\"\nca_file = \"private-ca.pem\"\n")
        let ca = (creds.configPath as NSString).deletingLastPathComponent + "/private-ca.pem"
        do {
            _ = try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: nil)
            Issue.record("a missing ca_file was accepted")
        } catch {
            #expect("\(error)".contains("[channels.sms] ca_file: cannot read \(ca)"), "\(error)")
        }
        try "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        let endpoint = try #require(try Runtime.endpoints(try creds.config(), configPath: creds.configPath, credentialsDirectory: nil)["sms"])
        #expect(endpoint.caFile == ca)
        let message = ProviderMessage(id: 1, key: "k", kind: "test", channel: "sms", orderID: nil, to: "+8613800000000",
                                      payload: MessagePayload(subject: "s", text: "t"))
        #expect(try endpoint.request(for: message).caFile == ca)
    }
}
