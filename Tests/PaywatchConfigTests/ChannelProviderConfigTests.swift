import Foundation
@testable import PaywatchConfig
import Testing

/// One section per provider, each with its required keys (and a few optional ones).
private let everyProvider = """
    [channels.hook]
    provider = "webhook"
    url = "https://gw.example/hook"
    token_file = "/etc/paywatch/hook.token"

    [channels.sms]
    provider = "twilio"
    account_sid = "AC0123"
    auth_token_file = "$CREDENTIALS_DIRECTORY/twilio.token"
    from = "+15005550006"

    [channels.email]
    provider = "sendgrid"
    api_key_file = "/etc/paywatch/sendgrid.key"
    from = "orders@shop.example"
    from_name = "Shop"
    base_url = "http://127.0.0.1:8025"

    [channels.mail]
    provider = "smtp"
    url = "smtps://mail.example:465"
    from = "orders@shop.example"
    username = "orders"
    password_file = "/etc/paywatch/smtp.password"
    starttls = "never"

    [channels.push]
    provider = "fcm"
    service_account_file = "/etc/paywatch/fcm.json"

    [channels.ops]
    provider = "slack"
    url_file = "/etc/paywatch/slack.url"

    [channels.pager]
    provider = "pagerduty"
    routing_key_file = "/etc/paywatch/pd.key"
    base_url = "https://events.eu.pagerduty.com"
    """

/// `[channels.NAME] provider` and the keys each provider takes: required, refused, secrets in files
/// only, plain http:// to loopback only.
@Suite struct ChannelProviderConfigTests {
    @Test func everyProviderReadsItsOwnKeys() throws {
        let config = try PaywatchConfiguration.parse(everyProvider, fileName: "x.toml")
        let sms = try #require(config.channels["sms"])
        #expect(sms.provider == "twilio")
        #expect(sms.accountSID == "AC0123")
        #expect(sms.authTokenFile == "$CREDENTIALS_DIRECTORY/twilio.token")
        #expect(sms.from == "+15005550006")
        #expect(sms.url == nil)
        // Not written: the provider's own API.
        #expect(sms.effectiveBaseURL == "https://api.twilio.com")
        #expect(config.channels["email"]?.effectiveBaseURL == "http://127.0.0.1:8025")
        #expect(config.channels["email"]?.fromName == "Shop")
        #expect(config.channels["mail"]?.startTLS == .never)
        #expect(config.channels["mail"]?.passwordFile == "/etc/paywatch/smtp.password")
        #expect(config.channels["push"]?.serviceAccountFile == "/etc/paywatch/fcm.json")
        #expect(config.channels["push"]?.effectiveBaseURL == "https://fcm.googleapis.com")
        #expect(config.channels["ops"]?.urlFile == "/etc/paywatch/slack.url")
        #expect(config.channels["ops"]?.effectiveBaseURL == nil)
        #expect(config.channels["pager"]?.effectiveBaseURL == "https://events.eu.pagerduty.com")
        #expect(config.channels["mail"]?.startTLS == .never)
        // smtp's starttls is left to the provider when not written.
        let relay = try PaywatchConfiguration.parse(
            "[channels.mail]\nprovider = \"smtp\"\nurl = \"smtp://127.0.0.1:2525\"\nfrom = \"a@b.example\"\n", fileName: "x.toml")
        #expect(relay.channels["mail"]?.startTLS == nil)
    }

    @Test func aKeyOfAnotherProviderIsRefusedWithTheProvidersOwnKeys() {
        #expect(failure("[channels.sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"/t\"\nfrom = \"+1\"\napi_key_file = \"/k\"\n")
            == "x.toml:6: [channels.sms] api_key_file: does not apply to provider \"twilio\" (its keys: base_url, account_sid, auth_token_file, from, allow_insecure_http)")
        #expect(failure("[channels.ops]\nprovider = \"pagerduty\"\nrouting_key_file = \"/k\"\nto = \"x\"\nurl = \"https://h/\"\n")
            == "x.toml:5: [channels.ops] url: does not apply to provider \"pagerduty\" (its keys: base_url, routing_key_file, allow_insecure_http)")
        #expect(failure("[channels.hook]\nprovider = \"webhook\"\nurl = \"https://h/\"\nbase_url = \"https://h/\"\n")
            == "x.toml:4: [channels.hook] base_url: does not apply to provider \"webhook\" (its keys: url, token_file, allow_insecure_http)")
        // Slack's URL is its credential: the hint says where it goes.
        #expect(failure("[channels.ops]\nprovider = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n")
            .hasPrefix("x.toml:1: [channels.ops] url_file: missing required key"))
        #expect(failure("[channels.ops]\nprovider = \"slack\"\nurl_file = \"/u\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n")
            == "x.toml:4: [channels.ops] url: the Slack webhook URL is a secret: put it in a file: url_file = \"/etc/paywatch/slack.url\"")
    }

    @Test func aMissingRequiredKeyIsNamedWithWhatItHolds() {
        #expect(failure("[channels.sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"/t\"\n")
            == "x.toml:1: [channels.sms] from: missing required key (the sending number, E.164)")
        #expect(failure("[channels.email]\nprovider = \"sendgrid\"\nfrom = \"a@b.example\"\n")
            == "x.toml:1: [channels.email] api_key_file: missing required key (provider \"sendgrid\" reads its credential from this file)")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nfrom = \"a@b.example\"\n")
            == "x.toml:1: [channels.mail] url: missing required key (the smtp:// or smtps:// server)")
        #expect(failure("[channels.push]\nprovider = \"fcm\"\n")
            == "x.toml:1: [channels.push] service_account_file: missing required key (provider \"fcm\" reads its credential from this file)")
    }

    @Test func inlineSecretsAreRefusedWithTheFileKeyToUse() {
        let twilio = "[channels.sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"/t\"\nfrom = \"+1\"\n"
        #expect(failure(twilio + "auth_token = \"s3cret\"\n")
            == "x.toml:6: [channels.sms] auth_token: an inline secret is refused: put it in a file: auth_token_file = \"/etc/paywatch/auth-token\" (or set allow_inline_secrets = true)")
        #expect(failure("[channels.email]\nprovider = \"sendgrid\"\napi_key_file = \"/k\"\nfrom = \"a@b.example\"\napi_key = \"SG.x\"\n")
            == "x.toml:5: [channels.email] api_key: an inline secret is refused: put it in a file: api_key_file = \"/etc/paywatch/api-key\" (or set allow_inline_secrets = true)")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nurl = \"smtp://m.example\"\nfrom = \"a@b.example\"\npassword = \"p\"\n")
            == "x.toml:5: [channels.mail] password: an inline secret is refused: put it in a file: password_file = \"/etc/paywatch/password\" (or set allow_inline_secrets = true)")
        #expect(failure("[channels.ops]\nprovider = \"pagerduty\"\nrouting_key_file = \"/k\"\nrouting_key = \"R\"\n")
            == "x.toml:4: [channels.ops] routing_key: an inline secret is refused: put it in a file: routing_key_file = \"/etc/paywatch/routing-key\" (or set allow_inline_secrets = true)")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nurl = \"smtp://orders:pw-s3cret@m.example:587\"\nfrom = \"a@b.example\"\n")
            == "x.toml:3: [channels.mail] url: a password in the url is an inline secret: put the login in username and password_file")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nurl = \"smtp://orders@m.example:587\"\nfrom = \"a@b.example\"\n") == "parsed without error")
        // The refused value is never echoed.
        #expect(!failure(twilio + "auth_token = \"s3cret-value\"\n").contains("s3cret-value"))
    }

    /// `allow_inline_secrets = true`: the credential in the section itself, with a warning, masked
    /// when the configuration is shown; every other rule still holds.
    @Test func inlineSecretsAreAcceptedWhenAllowedWithAWarningAndMasked() throws {
        let text = """
            [channels.sms]
            provider = "twilio"
            account_sid = "AC1"
            from = "+15005550006"
            allow_inline_secrets = true
            auth_token = "pwsecret-twilio-inline"

            [channels.ops]
            provider = "slack"
            allow_inline_secrets = true
            url = "https://hooks.slack.example/services/pwsecret-slack-inline"
            """
        let config = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(config.channels["sms"]?.inlineSecrets == ["auth_token_file": "pwsecret-twilio-inline"])
        #expect(config.channels["ops"]?.inlineSecrets == ["url_file": "https://hooks.slack.example/services/pwsecret-slack-inline"])
        #expect(config.warnings.contains { $0.hasPrefix("[channels.sms] auth_token: an inline secret (allow_inline_secrets = true)") })
        #expect(config.warnings.contains { $0.hasPrefix("[channels.ops] url: an inline secret") })
        let shown = config.rendered()
        #expect(!shown.contains("pwsecret"))
        #expect(shown.contains("auth_token = \"****\""))
        #expect(shown.contains("allow_inline_secrets = true"))
        #expect(!config.warnings.joined().contains("pwsecret"))
        // Still refused: both forms at once, a key of another provider, a value that is not a string,
        // a service account (always a file), and without the switch.
        let twilio = "[channels.sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nfrom = \"+1\"\nallow_inline_secrets = true\n"
        #expect(failure(twilio + "auth_token = \"a\"\nauth_token_file = \"/t\"\n")
            == "x.toml:6: [channels.sms] auth_token: both auth_token and auth_token_file are set: keep one")
        #expect(failure(twilio + "auth_token = \"a\"\napi_key = \"b\"\n").hasPrefix("x.toml:7: [channels.sms] api_key: does not apply to provider \"twilio\""))
        #expect(failure(twilio + "auth_token = 12\n") == "x.toml:6: [channels.sms] auth_token: expected a string, got integer 12")
        #expect(failure(twilio).hasPrefix("x.toml:1: [channels.sms] auth_token_file: missing required key"))
        #expect(failure("[channels.push]\nprovider = \"fcm\"\nservice_account_file = \"/s\"\nallow_inline_secrets = true\nservice_account = \"{}\"\n")
            .hasPrefix("x.toml:5: [channels.push] service_account: an inline secret is refused: put it in a file: service_account_file"))
        #expect(failure(twilio.replacingOccurrences(of: "allow_inline_secrets = true", with: "allow_inline_secrets = false") + "auth_token_file = \"/t\"\nauth_token = \"a\"\n")
            == "x.toml:7: [channels.sms] auth_token: an inline secret is refused: put it in a file: auth_token_file = \"/etc/paywatch/auth-token\" (or set allow_inline_secrets = true)")
    }

    @Test func plainHTTPGoesToLoopbackOnlyUnlessAllowed() {
        let hook = "[channels.hook]\nprovider = \"webhook\"\n"
        let refused = "plain http:// to a host other than loopback would send the request (credentials included) unencrypted: "
            + "use https://, or set allow_insecure_http = true"
        #expect(failure(hook + "url = \"http://gw.example/hook\"\n") == "x.toml:3: [channels.hook] url: " + refused)
        for loopback in ["http://127.0.0.1:8025/hook", "http://127.8.9.10/", "http://[::1]:8025/hook", "http://localhost:1/", "HTTP://LOCALHOST/"] {
            #expect(failure(hook + "url = \"\(loopback)\"\n") == "parsed without error", "\(loopback)")
        }
        // inet_pton's reading, not a lenient one: 127.0.0.01 is not loopback; nor is a userinfo trick.
        #expect(failure(hook + "url = \"http://127.0.0.01/\"\n") == "x.toml:3: [channels.hook] url: " + refused)
        #expect(failure(hook + "url = \"http://127.0.0.1@gw.example/\"\n") == "x.toml:3: [channels.hook] url: " + refused)
        #expect(failure(hook + "url = \"http://gw.example/hook\"\nallow_insecure_http = true\n") == "parsed without error")
        #expect(failure(hook + "url = \"http://gw.example/hook\"\nallow_insecure_http = \"yes\"\n")
            == "x.toml:4: [channels.hook] allow_insecure_http: expected true or false, got string \"yes\"")
        let twilio = "[channels.sms]\nprovider = \"twilio\"\naccount_sid = \"AC1\"\nauth_token_file = \"/t\"\nfrom = \"+1\"\n"
        #expect(failure(twilio + "base_url = \"http://api.example\"\n") == "x.toml:6: [channels.sms] base_url: " + refused)
        #expect(failure(twilio + "base_url = \"http://127.0.0.1:9/\"\n") == "parsed without error")
        #expect(failure(twilio + "base_url = \"smtp://127.0.0.1:9/\"\n") == "x.toml:6: [channels.sms] base_url: expected an http:// or https:// url")
    }

    @Test func eachProviderTakesItsOwnURLSchemes() {
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nfrom = \"a@b.example\"\nurl = \"https://mail.example\"\n")
            == "x.toml:4: [channels.mail] url: expected an smtp:// or smtps:// url")
        #expect(failure("[channels.hook]\nprovider = \"webhook\"\nurl = \"smtp://mail.example\"\n")
            == "x.toml:3: [channels.hook] url: expected an http:// or https:// url")
        // smtp's plain connection is STARTTLS's business, not allow_insecure_http's.
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nfrom = \"a@b.example\"\nurl = \"smtp://mail.example:25\"\n") == "parsed without error")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nfrom = \"a@b.example\"\nurl = \"smtp://m.example\"\nstarttls = \"maybe\"\n")
            == "x.toml:5: [channels.mail] starttls: unknown starttls \"maybe\": expected one of required, opportunistic, never")
        #expect(failure("[channels.mail]\nprovider = \"smtp\"\nfrom = \"a@b.example\"\nurl = \"smtp://m.example\"\nusername = \"u\"\n")
            == "x.toml:5: [channels.mail] username: username and password_file go together: set both, or neither for a relay without login")
    }

    /// check-config shows each section with its provider's keys only, file paths but no secret, and
    /// what it prints parses back to the same configuration.
    @Test func renderedShowsEachProvidersKeysAndParsesBack() throws {
        let config = try PaywatchConfiguration.parse(everyProvider, fileName: "x.toml")
        let rendered = config.rendered()
        #expect(rendered.contains("auth_token_file = \"$CREDENTIALS_DIRECTORY/twilio.token\""))
        #expect(rendered.contains("routing_key_file = \"/etc/paywatch/pd.key\""))
        // Only the provider's keys, written or commented out as not set: another provider's key
        // would be refused if written back.
        func keys(_ section: String) -> [String] {
            let body = rendered.components(separatedBy: "[\(section)]\n")[1].components(separatedBy: "\n\n")[0]
            return body.split(separator: "\n").map { line in
                String(line.drop { $0 == "#" || $0 == " " }.prefix { $0 != " " })
            }
        }
        #expect(keys("channels.sms") == ["provider", "base_url", "account_sid", "auth_token_file", "from", "allow_insecure_http", "allow_inline_secrets", "ca_file", "to", "concurrency", "rate", "burst", "breaker_failures", "breaker_probe"])
        #expect(keys("channels.mail") == ["provider", "url", "from", "from_name", "username", "password_file", "starttls", "allow_inline_secrets", "ca_file", "to", "concurrency", "rate", "burst", "breaker_failures", "breaker_probe"])
        #expect(keys("channels.ops") == ["provider", "url_file", "allow_insecure_http", "allow_inline_secrets", "ca_file", "to", "concurrency", "rate", "burst", "breaker_failures", "breaker_probe"])
        let again = try PaywatchConfiguration.parse(rendered, fileName: "rendered.toml")
        #expect(again.channels == config.channels)
    }
}
