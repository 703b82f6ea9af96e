import PaywatchConfig
import Testing

/// Parses `text` as "x.toml" and returns the error's description, or a note that it parsed.
func failure(_ text: String) -> String {
    do {
        _ = try PaywatchConfiguration.parse(text, fileName: "x.toml")
        return "parsed without error"
    } catch {
        return error.description
    }
}

private let channelSections = """
    [channels.push]
    provider = "webhook"
    url = "http://127.0.0.1:8025/push"

    [channels.sms]
    provider = "webhook"
    url = "http://127.0.0.1:8025/sms"

    [channels.email]
    provider = "webhook"
    url = "http://127.0.0.1:8025/email"
    """

@Suite struct ConfigErrorTests {
    @Test func descriptionFormat() {
        #expect(ConfigError(file: "a/b.toml", line: 5, key: "[unpaid] hodl", message: "unknown key").description
            == "a/b.toml:5: [unpaid] hodl: unknown key")
        #expect(ConfigError(file: "b.toml", line: 3, key: "", message: "invalid TOML").description == "b.toml:3: invalid TOML")
        #expect(ConfigError(file: "b.toml", line: nil, key: "", message: "gone").description == "b.toml: gone")
    }

    @Test func unknownKeyNamesFileLineAndKey() {
        let text = """
            # paywatch
            [daemon]
            batch_size = 10
            [unpaid]
            hodl = "30m"
            hold = "30m"
            """
        #expect(failure(text) == "x.toml:5: [unpaid] hodl: unknown key")
    }

    @Test func unknownTopLevelKeyAndSection() {
        #expect(failure("\n\nfoo = 1\n") == "x.toml:3: foo: unknown key")
        #expect(failure("[daemon]\nbatch_size = 1\n\n[deamon]\nbatch_size = 2\n") == "x.toml:4: [deamon]: unknown section")
        #expect(failure("[unpaid]\nhold = \"1m\"\n[unpaid.extra]\na = 1\n") == "x.toml:3: [unpaid.extra]: unknown section")
        #expect(failure("[channels.sms]\nprovider = \"webhook\"\nurl = \"https://h/\"\ntokn = \"abc\"\n")
            == "x.toml:4: [channels.sms] tokn: unknown key")
    }

    @Test func tomlSyntaxErrorUsesTOMLKitPosition() {
        let description = failure("[daemon]\nbatch_size = 10\nlog_level = \"info\n")
        #expect(description.hasPrefix("x.toml:3: invalid TOML at column "), "\(description)")
        let duplicate = failure("[daemon]\nbatch_size = 10\n\nbatch_size = 20\n")
        #expect(duplicate.hasPrefix("x.toml:4: invalid TOML"), "\(duplicate)")
    }

    @Test func wrongTypes() {
        #expect(failure("[unpaid]\nhold = 30\n")
            == "x.toml:2: [unpaid] hold: expected a duration string such as \"30m\", got integer 30")
        #expect(failure("[daemon]\n\nbatch_size = \"500\"\n")
            == "x.toml:3: [daemon] batch_size: expected an integer, got string \"500\"")
        #expect(failure("[delivery]\nconcurrency = 1.5\n")
            == "x.toml:2: [delivery] concurrency: expected an integer, got floating-point number 1.5")
        #expect(failure("[daemon]\nlog_level = true\n") == "x.toml:2: [daemon] log_level: expected a string, got boolean true")
        #expect(failure("store = \"sqlite://x.db\"\n")
            == "x.toml:1: store: expected a [store] section (a table), got string \"sqlite://x.db\"")
        #expect(failure("[unpaid]\nreminders = \"10m\"\n")
            == "x.toml:2: [unpaid] reminders: expected a list of duration strings such as [\"10m\", \"25m\"], got string \"10m\"")
        #expect(failure("[failed]\nreminders = [\"10m\", 20]\n")
            == "x.toml:2: [failed] reminders: entry 2: expected a duration string such as \"30m\", got integer 20")
        #expect(failure("\(channelSections)\n[paid]\nchannels = \"sms\"\n").hasSuffix(
            "[paid] channels: expected a list of channel names such as [\"sms\", \"email\"], got string \"sms\""))
    }

    @Test func badDurations() {
        #expect(failure("[delivery]\ntimeout = \"10x\"\n")
            == "x.toml:2: [delivery] timeout: invalid duration \"10x\": expected a positive whole number and a unit (ms, s, m, h, d), e.g. \"30m\" or \"1h30m\"")
        #expect(failure("[paying]\nstall_after = \"0s\"\n") == "x.toml:2: [paying] stall_after: duration \"0s\" must be greater than zero")
        #expect(failure("[refunding]\nstall_after = \"-5s\"\n").hasPrefix("x.toml:2: [refunding] stall_after: invalid duration \"-5s\""))
        #expect(failure("[unpaid]\nreminders = [\"10m\", \"\"]\n").hasPrefix("x.toml:2: [unpaid] reminders: entry 2: invalid duration \"\""))
    }

    @Test func nonPositiveIntegers() {
        #expect(failure("[delivery]\nconcurrency = 0\n") == "x.toml:2: [delivery] concurrency: must be at least 1, got 0")
        #expect(failure("[daemon]\nbatch_size = -1\n") == "x.toml:2: [daemon] batch_size: must be at least 1, got -1")
        #expect(failure("[delivery]\nmax_attempts = 0\n") == "x.toml:2: [delivery] max_attempts: must be at least 1, got 0")
        #expect(failure("[partially_paid]\noverdue_max = 0\n") == "x.toml:2: [partially_paid] overdue_max: must be at least 1, got 0")
    }

    @Test func unknownEnumValues() {
        #expect(failure("[daemon]\nlog_level = \"verbose\"\n")
            == "x.toml:2: [daemon] log_level: unknown log level \"verbose\": expected one of trace, debug, info, notice, warning, error, critical")
        #expect(failure("[partially_paid]\non_overdue = \"refund\"\n")
            == "x.toml:2: [partially_paid] on_overdue: unknown value \"refund\": expected \"escalate\" or \"cancel\"")
        #expect(failure("[channels.sms]\nprovider = \"pigeon\"\nurl = \"https://h/sms\"\n")
            == "x.toml:2: [channels.sms] provider: unknown provider \"pigeon\": expected one of webhook, twilio, sendgrid, smtp, fcm, slack, pagerduty")
    }

    @Test func storeURL() {
        #expect(failure("[store]\nurl = \"mysql://root:hunter2@db/x\"\n")
            == "x.toml:2: [store] url: expected a url starting with sqlite://, postgres:// or postgresql://")
        #expect(failure("[store]\nurl = \"sqlite://\"\n").hasPrefix("x.toml:2: [store] url: the sqlite url has no database path"))
        #expect(failure("[store]\nurl = \"\"\n") == "x.toml:2: [store] url: must not be empty")
        #expect(failure("[store]\nurl = \"postgresql://u@h/db\"\n" + channelSections) == "parsed without error")
    }

    @Test func sqliteURLOptions() {
        for mode in ["ro", "rw", "rwc"] {
            #expect(failure("[store]\nurl = \"sqlite:///v/x.db?mode=\(mode)\"\n" + channelSections) == "parsed without error")
        }
        #expect(failure("[store]\nurl = \"sqlite:///v/x.db?mode=memory\"\n")
            == "x.toml:2: [store] url: unknown sqlite option \"mode=memory\": the mode is one of mode=ro, mode=rw, mode=rwc")
        #expect(failure("[store]\nurl = \"sqlite:///v/x.db?cache=shared\"\n")
            == "x.toml:2: [store] url: unknown sqlite option \"cache=shared\": the only option is mode=ro, mode=rw, mode=rwc")
        #expect(failure("[store]\nurl = \"sqlite:///v/x.db?\"\n")
            == "x.toml:2: [store] url: unknown sqlite option \"\": the only option is mode=ro, mode=rw, mode=rwc")
        #expect(failure("[store]\nurl = \"sqlite:///v/x.db?mode=ro&mode=rw\"\n")
            == "x.toml:2: [store] url: the sqlite option mode is given twice")
        #expect(failure("[store]\nurl = \"sqlite://?mode=ro\"\n").hasPrefix("x.toml:2: [store] url: the sqlite url has no database path"))
        #expect(failure("[store]\nurl = \"sqlite:///var/lib/\"\n")
            == "x.toml:2: [store] url: the sqlite url names a folder, not a database file")
    }

    @Test func noChannelAtAll() {
        #expect(failure("") == "x.toml: no channel is configured: add a [channels.NAME] section")
        #expect(failure("# just a comment\n[daemon]\nbatch_size = 10\n")
            == "x.toml: no channel is configured: add a [channels.NAME] section")
        #expect(failure("[daemon]\n\n[channels]\n") == "x.toml:3: [channels]: no channel is configured: add a [channels.NAME] section")
        // A more precise problem comes first.
        #expect(failure("[daemon]\nbatch_size = 0\n") == "x.toml:2: [daemon] batch_size: must be at least 1, got 0")
        // A broken channel section is reported as itself.
        #expect(failure("[channels.sms]\nprovider = \"webhook\"\n")
            == "x.toml:1: [channels.sms] url: missing required key (the http:// or https:// endpoint)")
    }

    @Test func durationsLongerThanAHundredYears() {
        #expect(failure("[daemon]\npoll_interval = \"106751991167d\"\n")
            == "x.toml:2: [daemon] poll_interval: duration \"106751991167d\" is longer than 100 years (36500d)")
        // Beyond Int64 milliseconds: still "longer than 100 years", not "invalid".
        #expect(failure("[unpaid]\nhold = \"99999999999999999999d\"\n")
            == "x.toml:2: [unpaid] hold: duration \"99999999999999999999d\" is longer than 100 years (36500d)")
        #expect(failure("[unpaid]\nhold = \"36500d1ms\"\n")
            == "x.toml:2: [unpaid] hold: duration \"36500d1ms\" is longer than 100 years (36500d)")
        #expect(failure("[unpaid]\nhold = \"36500d\"\n" + channelSections) == "parsed without error")
        #expect(failure("[unpaid]\nreminders = [\"1d\", \"36501d\"]\n")
            == "x.toml:2: [unpaid] reminders: entry 2: duration \"36501d\" is longer than 100 years (36500d)")
        #expect(failure("[store]\nbusy_timeout = \"876001h\"\n")
            == "x.toml:2: [store] busy_timeout: duration \"876001h\" is longer than 100 years (36500d)")
        #expect(failure("[daemon]\nmax_clock_skew = \"40000d\"\n")
            == "x.toml:2: [daemon] max_clock_skew: duration \"40000d\" is longer than 100 years (36500d)")
        #expect(failure("[delivery]\nretry_after_max = \"40000d\"\n")
            == "x.toml:2: [delivery] retry_after_max: duration \"40000d\" is longer than 100 years (36500d)")
    }

    @Test func resourceLimits() {
        #expect(failure("[delivery]\nconcurrency = 100000\n")
            == "x.toml:2: [delivery] concurrency: must be at most 4096, got 100000 (each transfer in flight holds an open file)")
        #expect(failure("[delivery]\nconcurrency = 9223372036854775807\n").hasPrefix("x.toml:2: [delivery] concurrency: must be at most 4096"))
        #expect(failure("[delivery]\nconcurrency = 4096\n" + channelSections) == "parsed without error")
        #expect(failure("[daemon]\nbatch_size = 10001\n")
            == "x.toml:2: [daemon] batch_size: must be at most 10000, got 10001 (a sweep holds the batch's rows and plans in memory)")
        #expect(failure("[daemon]\nbatch_size = 10000\n" + channelSections) == "parsed without error")
    }

    @Test func newKeys() {
        #expect(failure("[daemon]\nmax_clock_skew = 300\n")
            == "x.toml:2: [daemon] max_clock_skew: expected a duration string such as \"30m\", got integer 300")
        #expect(failure("[daemon]\nmax_clock_skew = \"0s\"\n") == "x.toml:2: [daemon] max_clock_skew: duration \"0s\" must be greater than zero")
        #expect(failure("[delivery]\nretry_base = \"10s\"\nretry_after_max = \"5s\"\n")
            == "x.toml:3: [delivery] retry_after_max: retry_after_max (5s) must not be shorter than retry_base (10s)")
        // retry_after_max may be shorter than retry_max (and longer).
        #expect(failure("[delivery]\nretry_max = \"1h\"\nretry_after_max = \"1m\"\n" + channelSections) == "parsed without error")
        #expect(failure("[delivery]\nretry_max = \"1h\"\nretry_after_max = \"1d\"\n" + channelSections) == "parsed without error")
    }

    @Test func channelSectionProblems() {
        #expect(failure("[daemon]\n\n[channels.sms]\nprovider = \"webhook\"\n")
            == "x.toml:3: [channels.sms] url: missing required key (the http:// or https:// endpoint)")
        #expect(failure("[channels.sms]\nurl = \"http://h/sms\"\n")
            == "x.toml:1: [channels.sms] provider: missing required key (one of webhook, twilio, sendgrid, smtp, fcm, slack, pagerduty)")
        #expect(failure("[channels.sms]\nprovider = \"webhook\"\nurl = \"ftp://h/sms\"\n")
            == "x.toml:3: [channels.sms] url: expected an http:// or https:// url")
        #expect(failure("[channels.Sms]\nprovider = \"webhook\"\nurl = \"http://h/sms\"\n").hasPrefix("x.toml:1: [channels.Sms]: invalid channel name"))
        #expect(failure("[channels]\nsms = 1\n") == "x.toml:2: [channels] sms: expected a [channels.sms] section (a table), got integer 1")
    }

    @Test func channelConcurrencyIsASlotCountWithinTheTotal() throws {
        let sms = "[channels.sms]\nprovider = \"webhook\"\nurl = \"https://h/sms\"\n"
        #expect(failure(sms + "concurrency = 0\n") == "x.toml:4: [channels.sms] concurrency: must be at least 1, got 0")
        #expect(failure(sms + "concurrency = \"8\"\n") == "x.toml:4: [channels.sms] concurrency: expected an integer, got string \"8\"")
        #expect(failure("[delivery]\nconcurrency = 4\n" + sms + "concurrency = 5\n")
            == "x.toml:6: [channels.sms] concurrency: 5 is more than [delivery] concurrency (4): a channel's share cannot exceed every slot")
        let config = try PaywatchConfiguration.parse("[delivery]\nconcurrency = 4\n" + sms + "concurrency = 4\n", fileName: "x.toml")
        #expect(config.channels["sms"]?.concurrency == 4)
        #expect(try PaywatchConfiguration.parse(sms, fileName: "x.toml").channels["sms"]?.concurrency == nil)
    }

    @Test func channelListNamesUndefinedChannel() {
        let text = """
            [unpaid]
            hold = "30m"
            channels = ["push", "sms"]

            [channels.push]
            provider = "webhook"
            url = "http://127.0.0.1:8025/push"
            """
        #expect(failure(text) == "x.toml:3: [unpaid] channels: channel \"sms\" has no [channels.sms] section")
        #expect(failure("\(channelSections)\n[refunding]\nchannels = [\"email\", \"email\"]\n")
            .hasSuffix("[refunding] channels: channel \"email\" is listed twice"))
        #expect(failure("[paid]\nchannels = [\"ops\"]\n") == "x.toml:2: [paid] channels: channel \"ops\" has no [channels.ops] section")
    }

    @Test func reminderListOrder() {
        #expect(failure("[unpaid]\nreminders = [\"25m\", \"10m\"]\n")
            == "x.toml:2: [unpaid] reminders: must be in ascending (shortest first) order: \"10m\" comes after \"25m\"")
        #expect(failure("[failed]\nreminders = [\"10m\", \"10m\"]\n") == "x.toml:2: [failed] reminders: duplicate entry \"10m\"")
        #expect(failure("[partially_paid]\nreminders = [\"1d\", \"24h\"]\n")
            == "x.toml:2: [partially_paid] reminders: duplicate entry \"24h\" (the same as \"1d\")")
        #expect(failure("[partially_paid]\ninstallment_reminders = [\"1d\", \"3d\"]\n")
            == "x.toml:2: [partially_paid] installment_reminders: must be in descending (longest before the due date first) order: \"3d\" comes after \"1d\"")
    }

    @Test func retryBaseLongerThanRetryMax() {
        #expect(failure("[delivery]\nretry_base = \"2h\"\n")
            == "x.toml:2: [delivery] retry_base: retry_base (2h) must not be longer than retry_max (1h)")
        // retry_after_max (default 1h) is then too short as well; reported on the same key.
        #expect(failure("[delivery]\nretry_base = \"2h\"\nretry_max = \"3h\"\n")
            == "x.toml:2: [delivery] retry_base: retry_after_max (1h) must not be shorter than retry_base (2h)")
    }

    @Test func earliestLineWins() {
        let text = """
            [refunding]
            stall_after = 5
            [daemon]
            batch_size = 0
            """
        #expect(failure(text) == "x.toml:2: [refunding] stall_after: expected a duration string such as \"30m\", got integer 5")
    }

    @Test func linesForDottedKeysInlineTablesAndQuotedKeys() {
        #expect(failure("# c\nunpaid.hodl = \"30m\"\n") == "x.toml:2: [unpaid] hodl: unknown key")
        #expect(failure("[channels]\n\nsms = { provider = \"webhook\", url = 5 }\n")
            == "x.toml:3: [channels.sms] url: expected a string, got integer 5")
        #expect(failure("[channels]\nsms = { provider = \"webhook\" }\n")
            == "x.toml:2: [channels.sms] url: missing required key (the http:// or https:// endpoint)")
        #expect(failure("[unpaid]\n\"ho ld\" = \"30m\"\n") == "x.toml:2: [unpaid] \"ho ld\": unknown key")
        let multiline = """
            [unpaid]
            reminders = [
              "10m", # first
              "25m",
            ]
            note = \"\"\"
            hodl = "x"
            \"\"\"
            """
        #expect(failure(multiline) == "x.toml:6: [unpaid] note: unknown key")
    }

    @Test func missingAndUnreadableFiles() {
        #expect(throws: ConfigError(file: "/nonexistent/paywatch.toml", line: nil, key: "",
                                    message: "cannot open the configuration file: No such file or directory")) {
            try PaywatchConfiguration.load(path: "/nonexistent/paywatch.toml")
        }
        do {
            _ = try PaywatchConfiguration.load(path: "/")
            Issue.record("a directory loaded")
        } catch {
            #expect(error.line == nil)
            #expect(error.description.hasPrefix("/: cannot read the configuration file: "))
        }
    }
}

@Suite struct PayingConfigTests {
    @Test func theReconcileKeysAreReadWithTheirDefaults() throws {
        let defaults = try PaywatchConfiguration.parse(channelSections, fileName: "x.toml").paying
        #expect(defaults.reconcileStatusField == "status" && defaults.reconcileReasonField == "failure_reason")
        #expect(defaults.reconcileSucceeded.contains("TRADE_SUCCESS") && defaults.reconcileFailed.contains("PAYERROR"))
        #expect(defaults.escalations == 3 && defaults.giveUpAfterMs == 86_400_000)
        let set = try PaywatchConfiguration.parse("""
            [paying]
            reconcile_url = "https://psp.example/v1/{provider_ref}"
            reconcile_status_field = "data.trade.status"
            reconcile_succeeded = ["OK"]
            reconcile_failed = ["KO", "GONE"]
            escalations = 5
            give_up_after = "6h"
            token_file = "/run/credentials/paywatch/psp"
            headers_file = "/etc/paywatch/psp.headers"
            """ + "\n" + channelSections, fileName: "x.toml").paying
        #expect(set.reconcileStatusField == "data.trade.status")
        #expect(set.reconcileSucceeded == ["OK"] && set.reconcileFailed == ["KO", "GONE"])
        #expect(set.escalations == 5 && set.giveUpAfterMs == 6 * 3_600_000)
        #expect(set.tokenFile == "/run/credentials/paywatch/psp" && set.headersFile == "/etc/paywatch/psp.headers")
    }

    @Test func badReconcileKeysNameTheKey() {
        #expect(failure("[paying]\nreconcile_status_field = \"data..status\"\n" + channelSections)
            .hasPrefix("x.toml:2: [paying] reconcile_status_field: expected a field name or a dotted path"))
        #expect(failure("[paying]\nreconcile_succeeded = [\"paid\", 1]\n" + channelSections)
            .hasPrefix("x.toml:2: [paying] reconcile_succeeded: entry 2: expected a non-empty string"))
        #expect(failure("[paying]\nreconcile_failed = [\"paid\"]\n" + channelSections)
            == "x.toml:2: [paying] reconcile_failed: \"paid\" is in both reconcile_succeeded and reconcile_failed")
        #expect(failure("[paying]\nescalations = 0\n" + channelSections).hasPrefix("x.toml:2: [paying] escalations: must be at least 1"))
        #expect(failure("[paying]\nescalations = 101\n" + channelSections).hasPrefix("x.toml:2: [paying] escalations: must be at most 100"))
    }
}
