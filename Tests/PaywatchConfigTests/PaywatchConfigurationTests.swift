#if canImport(Glibc)
import Glibc
#endif
@testable import PaywatchConfig
import Testing

private let examplePath: String = {
    // <package>/Tests/PaywatchConfigTests/PaywatchConfigurationTests.swift → <package>/config/paywatch.toml
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return (parts + ["config", "paywatch.toml"]).joined(separator: "/")
}()

/// The smallest valid file: one channel.
private let opsOnly = """
    [channels.ops]
    provider = "webhook"
    url = "http://127.0.0.1:8025/ops"
    to = "oncall"

    """

private func webhook(_ name: String, token: Bool = true, to: String? = nil) -> PaywatchConfiguration.Channel {
    .init(name: name, provider: "webhook", url: "http://127.0.0.1:8025/\(name)",
          tokenFile: token ? "/etc/paywatch/\(name).token" : nil, to: to)
}

@Suite struct PaywatchConfigurationTests {
    @Test func defaults() {
        let c = PaywatchConfiguration()
        #expect(c.store.url == "sqlite:///var/lib/paywatch/paywatch.db")
        #expect(c.store.busyTimeoutMs == 5_000)
        #expect(c.store.sqlitePath == "/var/lib/paywatch/paywatch.db")
        #expect(c.daemon == .init(pollIntervalMs: 5_000, batchSize: 2_000, logLevel: "info", maxClockSkewMs: 300_000))
        #expect(c.delivery.concurrency == 32)
        #expect(c.delivery.timeoutMs == 10_000)
        #expect(c.delivery.maxAttempts == 8)
        #expect(c.delivery.retryBaseMs == 1_000)
        #expect(c.delivery.retryMaxMs == 3_600_000)
        #expect(c.delivery.retryAfterMaxMs == 3_600_000)
        #expect(c.store.sqliteMode == .rwc)
        #expect(!c.store.readOnly)
        #expect(c.unpaid.holdMs == 30 * 60_000)
        #expect(c.unpaid.remindersMs == [10 * 60_000, 25 * 60_000])
        #expect(c.unpaid.channels == ["push", "sms", "email"])
        #expect(c.paying.stallAfterMs == 15 * 60_000)
        #expect(c.paying.reconcileURL == nil)
        #expect(c.failed.remindersMs == [10 * 60_000, 2 * 3_600_000])
        #expect(c.failed.channels == ["push", "sms", "email"])
        #expect(c.partiallyPaid.remindersMs == [86_400_000, 3 * 86_400_000])
        #expect(c.partiallyPaid.balanceDueMs == 7 * 86_400_000)
        #expect(c.partiallyPaid.installmentRemindersMs == [3 * 86_400_000, 86_400_000])
        #expect(c.partiallyPaid.overdueEveryMs == 86_400_000)
        #expect(c.partiallyPaid.overdueMax == 3)
        #expect(c.partiallyPaid.onOverdue == .escalate)
        #expect(c.paid.channels == ["push", "sms", "email"])
        #expect(c.refunding.stallAfterMs == 3 * 86_400_000)
        #expect(c.refunding.channels == ["push", "sms", "email"])
        #expect(c.channels.isEmpty)
        #expect(c.warnings.isEmpty)
        #expect(PaywatchConfiguration.defaultPath == "/etc/paywatch/paywatch.toml")
    }

    @Test func onlyAnOpsChannelGivesDefaultsWithUndefinedDefaultChannelsLeftOut() throws {
        let c = try PaywatchConfiguration.parse("# nothing else here\n" + opsOnly, fileName: "x.toml")
        var expected = PaywatchConfiguration()
        for keyPath in [\PaywatchConfiguration.unpaid.channels, \.failed.channels, \.partiallyPaid.channels, \.paid.channels,
                        \.refunding.channels] {
            expected[keyPath: keyPath] = []
        }
        expected.quietHours.channels = []  // likewise: sms and push have no section
        expected.channels = ["ops": .init(name: "ops", url: "http://127.0.0.1:8025/ops", to: "oncall")]
        #expect(c == expected)
        #expect(!c.warnings.contains("no [channels.ops]: ops escalations are only logged"))
        #expect(c.warnings.contains {
            $0.hasPrefix("[unpaid] channels is not set and there is no section for [channels.push], [channels.sms], [channels.email]")
        })
    }

    @Test func exampleFileParsesToExpectedValues() throws {
        let c = try PaywatchConfiguration.load(path: examplePath)
        var expected = PaywatchConfiguration()
        expected.paid.channels = ["email", "push"]
        expected.channels = [
            // token_file lines are commented out in the example: the files would not exist on a new machine.
            "push": webhook("push", token: false), "sms": webhook("sms", token: false), "email": webhook("email", token: false),
            "ops": webhook("ops", token: false, to: "ops-oncall"),
        ]
        #expect(c == expected)
        #expect(c.warnings.isEmpty, "\(c.warnings)")
    }

    @Test func everyValueCanBeSet() throws {
        let text = """
            [store]
            url = "postgres://paywatch@db.internal:5432/paywatch"
            busy_timeout = "2s"
            [daemon]
            poll_interval = "1m"
            batch_size = 50
            log_level = "debug"
            max_clock_skew = "30s"
            max_lag = "5m"
            [delivery]
            concurrency = 4
            timeout = "3s"
            max_attempts = 5
            retry_base = "500ms"
            retry_max = "10m"
            retry_after_max = "2h"
            [unpaid]
            hold = "1h"
            reminders = ["15m", "45m"]
            channels = ["sms"]
            [paying]
            stall_after = "20m"
            reconcile_url = "https://psp.example/v1/payments/{provider_ref}"
            [failed]
            reminders = ["5m"]
            [partially_paid]
            reminders = []
            balance_due = "14d"
            installment_reminders = ["7d", "2d", "12h"]
            overdue_every = "12h"
            overdue_max = 5
            on_overdue = "cancel"
            channels = ["email"]
            [refunding]
            stall_after = "1d"
            [channels.sms]
            provider = "webhook"
            url = "https://gw.example/sms"
            [channels.email]
            provider = "webhook"
            url = "https://gw.example/email"
            token_file = "/run/credentials/paywatch/email"
            [channels.ops]
            provider = "webhook"
            url = "https://gw.example/ops"
            to = "#payments-oncall"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.store == .init(url: "postgres://paywatch@db.internal:5432/paywatch", busyTimeoutMs: 2_000))
        #expect(c.store.sqlitePath == nil)
        #expect(c.daemon == .init(pollIntervalMs: 60_000, batchSize: 50, logLevel: "debug", maxClockSkewMs: 30_000, maxLagMs: 300_000))
        #expect(c.delivery == .init(concurrency: 4, timeoutMs: 3_000, maxAttempts: 5, retryBaseMs: 500, retryMaxMs: 600_000,
                                    retryAfterMaxMs: 7_200_000))
        #expect(c.unpaid == .init(holdMs: 3_600_000, remindersMs: [900_000, 2_700_000], channels: ["sms"]))
        #expect(c.paying == .init(stallAfterMs: 1_200_000, reconcileURL: "https://psp.example/v1/payments/{provider_ref}"))
        #expect(c.failed == .init(remindersMs: [300_000], channels: ["sms"]))
        let day: Int64 = 86_400_000
        let partiallyPaid = PaywatchConfiguration.PartiallyPaid(
            remindersMs: [], balanceDueMs: 14 * day, installmentRemindersMs: [7 * day, 2 * day, day / 2],
            overdueEveryMs: day / 2, overdueMax: 5, onOverdue: .cancel, channels: ["email"])
        #expect(c.partiallyPaid == partiallyPaid)
        #expect(c.paid.channels == ["sms"])
        #expect(c.refunding == .init(stallAfterMs: 86_400_000, channels: ["sms"]))
        #expect(c.channels["email"] == .init(name: "email", url: "https://gw.example/email", tokenFile: "/run/credentials/paywatch/email"))
        #expect(c.channels["ops"]?.to == "#payments-oncall")
        #expect(c.channels.count == 3)
        #expect(c.warnings.isEmpty, "\(c.warnings)")
    }

    @Test func channelListsDefaultToUnpaidChannels() throws {
        let text = """
            [unpaid]
            channels = ["sms", "email"]
            [paid]
            channels = ["email"]
            [channels.sms]
            provider = "webhook"
            url = "http://127.0.0.1:8025/sms"
            [channels.email]
            provider = "webhook"
            url = "http://127.0.0.1:8025/email"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.unpaid.channels == ["sms", "email"])
        #expect(c.failed.channels == ["sms", "email"])
        #expect(c.partiallyPaid.channels == ["sms", "email"])
        #expect(c.refunding.channels == ["sms", "email"])
        #expect(c.paid.channels == ["email"])
    }

    @Test func defaultUnpaidChannelsKeepOnlyConfiguredOnes() throws {
        let text = """
            [channels.email]
            provider = "webhook"
            url = "http://127.0.0.1:8025/email"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.unpaid.channels == ["email"])
        #expect(c.failed.channels == ["email"])
        #expect(c.warnings.contains(
            "[unpaid] channels is not set and there is no section for [channels.push], [channels.sms]: the default channels are [\"email\"]"))
    }

    @Test func renderedOutputReparsesToEqualConfiguration() throws {
        let example = try PaywatchConfiguration.load(path: examplePath)
        let again = try PaywatchConfiguration.parse(example.rendered(), fileName: "rendered.toml")
        #expect(again == example)
        #expect(again.rendered() == example.rendered())

        var custom = example
        // Quotes survive; a query value would be masked (so it could not come back equal).
        custom.paying.reconcileURL = "https://psp.example/p/\"x\"/{provider_ref}?ref={provider_ref}"
        custom.partiallyPaid.onOverdue = .cancel
        custom.partiallyPaid.remindersMs = [1, 90_061_001]
        custom.store.url = "postgresql://paywatch@db/pw"
        custom.channels["ops"]?.tokenFile = "/etc/paywatch/ops token"
        custom.channels["sms"]?.concurrency = 8
        let customAgain = try PaywatchConfiguration.parse(custom.rendered(), fileName: "rendered.toml")
        #expect(customAgain == custom)

        let small = try PaywatchConfiguration.parse(opsOnly, fileName: "x.toml")
        #expect(try PaywatchConfiguration.parse(small.rendered(), fileName: "x.toml") == small)

        var limits = example
        limits.daemon.pollIntervalMs = maxDurationMs
        limits.daemon.maxClockSkewMs = 1
        limits.daemon.maxLagMs = maxDurationMs / 2 * 2
        limits.daemon.batchSize = PaywatchConfiguration.maxBatchSize
        limits.delivery.concurrency = PaywatchConfiguration.maxConcurrency
        limits.delivery.retryAfterMaxMs = 90_061_001
        limits.store.url = "sqlite:///var/lib/pw/x.db?mode=ro"
        #expect(try PaywatchConfiguration.parse(limits.rendered(), fileName: "rendered.toml") == limits)
    }

    @Test func maxLagIsAtLeastTwoPollIntervals() throws {
        let channel = "[channels.sms]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:1/sms\"\n"
        // Not written: the default grows with poll_interval.
        #expect(try PaywatchConfiguration.parse("[daemon]\npoll_interval = \"5s\"\n" + channel, fileName: "x.toml").daemon.maxLagMs == 60_000)
        #expect(try PaywatchConfiguration.parse("[daemon]\npoll_interval = \"2m\"\n" + channel, fileName: "x.toml").daemon.maxLagMs == 240_000)
        // Written too short: an error on its line.
        do {
            _ = try PaywatchConfiguration.parse("[daemon]\npoll_interval = \"1m\"\nmax_lag = \"90s\"\n" + channel, fileName: "x.toml")
            Issue.record("a max_lag under two poll intervals was accepted")
        } catch {
            #expect("\(error)".contains("x.toml:3: [daemon] max_lag: max_lag (1m30s) must be at least twice poll_interval (1m)"))
        }
    }

    @Test func metricsListenIsLoopbackOnly() throws {
        let channel = "[channels.sms]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:1/sms\"\n"
        for good in ["127.0.0.1:9464", "[::1]:9464", "localhost:1", "127.1.2.3:65535"] {
            let c = try PaywatchConfiguration.parse("[metrics]\nlisten = \"\(good)\"\n" + channel, fileName: "x.toml")
            #expect(c.metrics.listen == good)
        }
        for (bad, why) in [("0.0.0.0:9464", "is not a loopback address"), ("10.0.0.1:9464", "is not a loopback address"),
                           ("127.0.0.1", "expected HOST:PORT"), ("127.0.0.1:0", "the port must be 1 … 65535"),
                           ("127.0.0.1:99999", "the port must be 1 … 65535"), ("[::1]9464", "expected \"[::1]:PORT\""),
                           ("9464", "expected HOST:PORT"),
                           // Leading zeros: a lenient reading would hand the kernel 0.0.0.0 (every interface).
                           ("127.0.0.01:9464", "is not a loopback address"), ("127.000.0.1:9464", "is not a loopback address"),
                           ("127.1:9464", "is not a loopback address")] {
            do {
                _ = try PaywatchConfiguration.parse("[metrics]\nlisten = \"\(bad)\"\n" + channel, fileName: "x.toml")
                Issue.record("\(bad) accepted")
            } catch {
                #expect("\(error)".contains("x.toml:2: [metrics] listen: "), "\(error)")
                #expect("\(error)".contains(why), "\(bad): \(error)")
            }
        }
    }

    @Test func renderedShowsEveryKey() throws {
        let rendered = try PaywatchConfiguration.load(path: examplePath).rendered()
        for line in [
            "[store]", "url = \"sqlite:///var/lib/paywatch/paywatch.db\"", "busy_timeout = \"5s\"", "poll_interval = \"5s\"",
            "batch_size = 2000", "log_level = \"info\"", "max_clock_skew = \"5m\"", "retry_max = \"1h\"",
            "retry_after_max = \"1h\"", "hold = \"30m\"", "reminders = [\"10m\", \"25m\"]",
            "# reconcile_url is not set", "installment_reminders = [\"3d\", \"1d\"]", "on_overdue = \"escalate\"",
            "[paid]\nchannels = [\"email\", \"push\"]", "[channels.sms]",
            "to = \"ops-oncall\"",
        ] {
            #expect(rendered.contains(line), "\(line)")
        }
    }

    @Test func storePasswordIsMaskedInRenderedOutput() throws {
        let text = """
            [store]
            url = "postgres://paywatch:s3cr%40t@db.internal:5432/paywatch?sslmode=require&application_name=other"
            """ + "\n" + opsOnly
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.store.url.contains("s3cr%40t"))
        let rendered = c.rendered()
        #expect(rendered.contains("url = \"postgres://paywatch:****@db.internal:5432/paywatch?sslmode=****&application_name=****\""))
        #expect(!rendered.contains("s3cr"))
        #expect(!rendered.contains("other"))
        #expect(!rendered.contains("sslmode=require"))
        // The url's sslmode is the store's: shown as the key.
        #expect(rendered.contains("\nsslmode = \"require\"\n"))
    }

    @Test func channelAndReconcileURLsAreMaskedInRenderedOutput() throws {
        let text = """
            [paying]
            reconcile_url = "https://psp:psp-pass@psp.example/v1/payments/{provider_ref}?merchant=m-42&ref={provider_ref}"
            [channels.sms]
            provider = "webhook"
            url = "https://gw:hunter2@gw.example/sms?api_key=s3cret-value&sig=abc123#frag-token"
            [channels.ops]
            provider = "webhook"
            url = "http://127.0.0.1:8025/ops?token"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.channels["sms"]?.url == "https://gw:hunter2@gw.example/sms?api_key=s3cret-value&sig=abc123#frag-token")
        let rendered = c.rendered()
        #expect(rendered.contains("url = \"https://gw:****@gw.example/sms?api_key=****&sig=****#****\""), "\(rendered)")
        #expect(rendered.contains("url = \"http://127.0.0.1:8025/ops?****\""))
        #expect(rendered.contains(
            "reconcile_url = \"https://psp:****@psp.example/v1/payments/{provider_ref}?merchant=****&ref={provider_ref}\""))
        for secret in ["hunter2", "s3cret-value", "abc123", "frag-token", "psp-pass", "m-42", "token\""] {
            #expect(!rendered.contains(secret), "\(secret)")
        }
        // The masked form is still a valid configuration, with the same shape.
        let again = try PaywatchConfiguration.parse(rendered, fileName: "rendered.toml")
        #expect(again.channels["sms"]?.url == "https://gw:****@gw.example/sms?api_key=****&sig=****#****")
        #expect(again.rendered() == rendered)
    }

    @Test func maskURLForms() {
        #expect(maskURL("postgres://user@host/db") == "postgres://user@host/db")
        #expect(maskURL("postgresql://u:p@h") == "postgresql://u:****@h")
        #expect(maskURL("sqlite:///var/lib/x.db") == "sqlite:///var/lib/x.db")
        #expect(maskURL("sqlite:///var/lib/x.db?mode=ro") == "sqlite:///var/lib/x.db?mode=ro")
        #expect(maskURL("https://h/p?a=1&&b=&c") == "https://h/p?a=****&&b=&****")
        #expect(maskURL("https://h/p?") == "https://h/p?")
        #expect(maskURL("https://u:p:q@h:8443/p?x=y=z#") == "https://u:****@h:8443/p?x=****#")
        #expect(maskURL("https://h/p#s") == "https://h/p#****")
        #expect(maskURL("not a url") == "not a url")
    }

    @Test func sqlitePaths() {
        #expect(PaywatchConfiguration.Store(url: "sqlite://paywatch.db").sqlitePath == "paywatch.db")
        #expect(PaywatchConfiguration.Store(url: "sqlite://data/pw.db").sqlitePath == "data/pw.db")
        #expect(PaywatchConfiguration.Store(url: "sqlite:///abs/pw.db").sqlitePath == "/abs/pw.db")
        #expect(PaywatchConfiguration.Store(url: "sqlite:///abs/pw.db?mode=ro").sqlitePath == "/abs/pw.db")
        #expect(PaywatchConfiguration.Store(url: "postgres://h/db").sqliteMode == nil)
        #expect(PaywatchConfiguration.Store(url: "sqlite://x.db?mode=ro").sqliteMode == .ro)
        #expect(PaywatchConfiguration.Store(url: "sqlite://x.db?mode=ro").readOnly)
        #expect(PaywatchConfiguration.Store(url: "sqlite://x.db?mode=rw").sqliteMode == .rw)
        #expect(PaywatchConfiguration.Store(url: "sqlite://x.db?mode=rwc").sqliteMode == .rwc)
        #expect(PaywatchConfiguration.Store(url: "sqlite://x.db").sqliteMode == .rwc)
    }

    @Test func sqliteModeOption() throws {
        let ro = try PaywatchConfiguration.parse("[store]\nurl = \"sqlite:///v/x.db?mode=ro\"\n" + opsOnly, fileName: "x.toml")
        #expect(ro.store.readOnly)
        #expect(ro.store.sqlitePath == "/v/x.db")
        #expect(ro.rendered().contains("url = \"sqlite:///v/x.db?mode=ro\""))
    }

    @Test func loadResolvesARelativeSQLitePathBesideTheConfigFile() throws {
        let directory = "/tmp/paywatch-config-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        #expect(mkdir(directory, 0o755) == 0)
        defer {
            for name in ["rel.toml", "abs.toml"] { unlink(directory + "/" + name) }
            rmdir(directory)
        }
        func put(_ name: String, _ text: String) {
            let fd = open(directory + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
            close(fd)
        }
        put("rel.toml", "[store]\nurl = \"sqlite://data/pw.db?mode=rw\"\n" + opsOnly)
        put("abs.toml", "[store]\nurl = \"sqlite:///srv/pw.db\"\n" + opsOnly)
        let relative = try PaywatchConfiguration.load(path: directory + "/rel.toml")
        #expect(relative.store.url == "sqlite://\(directory)/data/pw.db?mode=rw")
        #expect(relative.store.sqlitePath == directory + "/data/pw.db")
        #expect(relative.store.sqliteMode == .rw)
        #expect(try PaywatchConfiguration.load(path: directory + "/abs.toml").store.sqlitePath == "/srv/pw.db")
        // parse has no folder: the path stays as written (relative to the working directory).
        #expect(try PaywatchConfiguration.parse("[store]\nurl = \"sqlite://data/pw.db\"\n" + opsOnly, fileName: "x.toml")
            .store.sqlitePath == "data/pw.db")
        // (A config path without a folder, resolved against the working directory, is tested end to end:
        // changing this process's directory would disturb the tests running beside this one.)
    }

    @Test func linesOfKeysAndErrorsFoundAfterParsing() throws {
        let c = try PaywatchConfiguration.parse("[daemon]\nbatch_size = 5\n[delivery]\n\nconcurrency = 8\n" + opsOnly, fileName: "x.toml")
        #expect(c.line(of: ["delivery", "concurrency"]) == 5)
        #expect(c.error(file: "x.toml", section: ["delivery"], key: "concurrency", message: "too many").description
            == "x.toml:5: [delivery] concurrency: too many")
        #expect(c.error(file: "x.toml", section: ["delivery"], key: "timeout", message: "m").description
            == "x.toml:3: [delivery] timeout: m")
        #expect(c.error(file: "x.toml", section: ["store"], key: "url", message: "m").description == "x.toml: [store] url: m")
        #expect(PaywatchConfiguration().error(file: "f", section: ["channels", "sms"], key: "token_file", message: "m").description
            == "f: [channels.sms] token_file: m")
    }

    @Test func warnings() throws {
        let text = """
            [unpaid]
            hold = "20m"
            channels = []
            [paying]
            reconcile_url = "https://psp.example/v1/payments"
            [channels.sms]
            provider = "webhook"
            url = "http://127.0.0.1:8025/sms"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.warnings.contains("no [channels.ops]: ops escalations are only logged"))
        #expect(c.warnings.contains("[unpaid] channels is empty: no customer messages are sent for [unpaid]"))
        #expect(c.warnings.contains("[channels.sms] is not in any channels list: it is only used by send-test"))
        #expect(c.warnings.contains("[unpaid] reminders: \"25m\" is not before hold \"20m\": that reminder is never sent"))
        #expect(c.warnings.contains { $0.hasPrefix("[paying] reconcile_url has no {provider_ref} placeholder") })
    }
}

@Suite struct HoldByMethodConfigTests {
    static let channel = "\n[channels.ops]\nprovider = \"webhook\"\nurl = \"http://127.0.0.1:9/ops\"\n"

    @Test func aSectionOfDurationsPerMethodIsReadAndRenderedBack() throws {
        let text = "[unpaid]\nhold = \"30m\"\n[unpaid.hold_by_method]\nbank_transfer = \"3d\"\n\"wechat pay\" = \"15m\"\n" + Self.channel
        let config = try PaywatchConfiguration.parse(text, fileName: "t.toml")
        #expect(config.unpaid.holdByMethodMs == ["bank_transfer": 259_200_000, "wechat pay": 900_000])
        let rendered = config.rendered()
        #expect(rendered.contains(#"hold_by_method = { bank_transfer = "3d", "wechat pay" = "15m" }"#))
        #expect(try PaywatchConfiguration.parse(rendered, fileName: "r.toml") == config)
        #expect(PaywatchConfiguration().unpaid.holdByMethodMs.isEmpty)
    }

    @Test func aBadHoldNamesItsLineAndMethod() {
        let text = "[unpaid]\n[unpaid.hold_by_method]\nbank_transfer = \"3 days\"\n" + Self.channel
        #expect(throws: ConfigError.self) { try PaywatchConfiguration.parse(text, fileName: "t.toml") }
        do {
            _ = try PaywatchConfiguration.parse(text, fileName: "t.toml")
        } catch {
            #expect("\(error)".contains("t.toml:"))
            #expect("\(error)".contains("hold_by_method"))
            #expect("\(error)".contains("bank_transfer"))
        }
    }
}
