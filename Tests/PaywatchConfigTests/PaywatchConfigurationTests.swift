@testable import PaywatchConfig
import Testing

private let examplePath: String = {
    // <package>/Tests/PaywatchConfigTests/PaywatchConfigurationTests.swift → <package>/config/paywatch.toml
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return (parts + ["config", "paywatch.toml"]).joined(separator: "/")
}()

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
        #expect(c.daemon == .init(pollIntervalMs: 5_000, batchSize: 500, logLevel: "info"))
        #expect(c.delivery.concurrency == 32)
        #expect(c.delivery.timeoutMs == 10_000)
        #expect(c.delivery.maxAttempts == 8)
        #expect(c.delivery.retryBaseMs == 1_000)
        #expect(c.delivery.retryMaxMs == 3_600_000)
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

    @Test func emptyFileGivesDefaultsWithUndefinedDefaultChannelsLeftOut() throws {
        let c = try PaywatchConfiguration.parse("# nothing here\n", fileName: "x.toml")
        var expected = PaywatchConfiguration()
        for keyPath in [\PaywatchConfiguration.unpaid.channels, \.failed.channels, \.partiallyPaid.channels, \.paid.channels,
                        \.refunding.channels] {
            expected[keyPath: keyPath] = []
        }
        #expect(c == expected)
        #expect(c.warnings.contains("no [channels.ops]: ops escalations are only logged"))
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
            [delivery]
            concurrency = 4
            timeout = "3s"
            max_attempts = 5
            retry_base = "500ms"
            retry_max = "10m"
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
        #expect(c.daemon == .init(pollIntervalMs: 60_000, batchSize: 50, logLevel: "debug"))
        #expect(c.delivery == .init(concurrency: 4, timeoutMs: 3_000, maxAttempts: 5, retryBaseMs: 500, retryMaxMs: 600_000))
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
        custom.paying.reconcileURL = "https://psp.example/p/{provider_ref}?q=\"x\""
        custom.partiallyPaid.onOverdue = .cancel
        custom.partiallyPaid.remindersMs = [1, 90_061_001]
        custom.store.url = "postgresql://paywatch@db/pw"
        custom.channels["ops"]?.tokenFile = "/etc/paywatch/ops token"
        custom.channels["sms"]?.concurrency = 8
        let customAgain = try PaywatchConfiguration.parse(custom.rendered(), fileName: "rendered.toml")
        #expect(customAgain == custom)

        let empty = try PaywatchConfiguration.parse("", fileName: "x.toml")
        #expect(try PaywatchConfiguration.parse(empty.rendered(), fileName: "x.toml") == empty)
    }

    @Test func renderedShowsEveryKey() throws {
        let rendered = try PaywatchConfiguration.load(path: examplePath).rendered()
        for line in [
            "[store]", "url = \"sqlite:///var/lib/paywatch/paywatch.db\"", "busy_timeout = \"5s\"", "poll_interval = \"5s\"",
            "batch_size = 500", "log_level = \"info\"", "retry_max = \"1h\"", "hold = \"30m\"", "reminders = [\"10m\", \"25m\"]",
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
            url = "postgres://paywatch:s3cr%40t@db.internal:5432/paywatch?sslmode=require&password=other"
            """
        let c = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        #expect(c.store.url.contains("s3cr%40t"))
        let rendered = c.rendered()
        #expect(rendered.contains("url = \"postgres://paywatch:****@db.internal:5432/paywatch?sslmode=require&password=****\""))
        #expect(!rendered.contains("s3cr"))
        #expect(!rendered.contains("other"))
        #expect(maskURLPassword("postgres://user@host/db") == "postgres://user@host/db")
        #expect(maskURLPassword("postgresql://u:p@h") == "postgresql://u:****@h")
        #expect(maskURLPassword("sqlite:///var/lib/x.db") == "sqlite:///var/lib/x.db")
    }

    @Test func sqlitePaths() {
        #expect(PaywatchConfiguration.Store(url: "sqlite://paywatch.db").sqlitePath == "paywatch.db")
        #expect(PaywatchConfiguration.Store(url: "sqlite://data/pw.db").sqlitePath == "data/pw.db")
        #expect(PaywatchConfiguration.Store(url: "sqlite:///abs/pw.db").sqlitePath == "/abs/pw.db")
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
