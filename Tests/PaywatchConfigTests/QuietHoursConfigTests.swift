import PaywatchConfig
import Testing

/// `[quiet_hours]` and `[daemon] time_zone`.
@Suite struct QuietHoursConfigTests {
    static let channels = """

        [channels.sms]
        provider = "webhook"
        url = "http://127.0.0.1:8025/sms"

        [channels.push]
        provider = "webhook"
        url = "http://127.0.0.1:8025/push"

        [channels.email]
        provider = "webhook"
        url = "http://127.0.0.1:8025/email"

        [channels.ops]
        provider = "webhook"
        url = "http://127.0.0.1:8025/ops"
        """

    func parse(_ text: String) throws -> PaywatchConfiguration {
        try PaywatchConfiguration.parse(text + Self.channels, fileName: "x.toml")
    }

    @Test func aWindowAcrossMidnightInTheDaemonsZone() throws {
        let config = try parse("""
            [daemon]
            time_zone = "Asia/Shanghai"
            [quiet_hours]
            start = "21:00"
            end = "08:00"
            channels = ["sms", "push"]
            """)
        #expect(config.daemon.timeZone == "Asia/Shanghai")
        #expect(config.quietHours == .init(start: 21 * 60, end: 8 * 60, channels: ["sms", "push"]))
        #expect(config.quietHours.isOn)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        // check-config writes it back, and that reads as the same.
        let rendered = config.rendered()
        #expect(rendered.contains("[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\nchannels = [\"sms\", \"push\"]\n"))
        #expect(rendered.contains("time_zone = \"Asia/Shanghai\""))
        #expect(try PaywatchConfiguration.parse(rendered, fileName: "again.toml") == config)
    }

    @Test func offByDefaultAndTheDefaultChannelsAreThoseConfigured() throws {
        let none = try parse("")
        #expect(!none.quietHours.isOn)
        #expect(none.daemon.timeZone == "UTC")
        let rendered = none.rendered()
        #expect(rendered.contains("[quiet_hours]\n# start is not set: no quiet hours\n# end is not set: no quiet hours\nchannels = [\"sms\", \"push\"]\n"))
        #expect(try PaywatchConfiguration.parse(rendered, fileName: "again.toml") == none)
        // Without a push channel, the default is sms only.
        let smsOnly = try PaywatchConfiguration.parse("""
            [quiet_hours]
            start = "22:30"
            end = "7:00"
            [channels.sms]
            provider = "webhook"
            url = "http://127.0.0.1:8025/sms"
            """, fileName: "x.toml")
        #expect(smsOnly.quietHours == .init(start: 22 * 60 + 30, end: 7 * 60, channels: ["sms"]))
    }

    @Test func badTimesNameTheFileLineAndKey() {
        #expect(failure("[quiet_hours]\nstart = \"25:00\"\nend = \"08:00\"\n" + Self.channels)
            == #"x.toml:2: [quiet_hours] start: expected a time of day "HH:MM" (00:00 … 23:59), got "25:00""#)
        #expect(failure("[quiet_hours]\nstart = \"21:00\"\nend = \"08:60\"\n" + Self.channels)
            == #"x.toml:3: [quiet_hours] end: expected a time of day "HH:MM" (00:00 … 23:59), got "08:60""#)
        #expect(failure("[quiet_hours]\nstart = \"9pm\"\nend = \"08:00\"\n" + Self.channels).hasPrefix("x.toml:2: [quiet_hours] start: expected a time of day"))
        #expect(failure("[quiet_hours]\nstart = 21\nend = \"08:00\"\n" + Self.channels)
            == #"x.toml:2: [quiet_hours] start: expected a time of day string such as "21:00", got integer 21"#)
        #expect(failure("[quiet_hours]\nstart = \"21:00\"\nend = \"21:00\"\n" + Self.channels)
            == #"x.toml:3: [quiet_hours] end: end equals start ("21:00"): the quiet hours would be empty, or the whole day"#)
        #expect(failure("\n[quiet_hours]\nstart = \"21:00\"\n" + Self.channels)
            == "x.toml:2: [quiet_hours] end: start and end go together: set both for quiet hours, or neither")
    }

    @Test func channelsMustBeConfiguredAndNeverOps() {
        #expect(failure("[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\nchannels = [\"sms\", \"fax\"]\n" + Self.channels)
            == #"x.toml:4: [quiet_hours] channels: channel "fax" has no [channels.fax] section"#)
        #expect(failure("[quiet_hours]\nstart = \"21:00\"\nend = \"08:00\"\nchannels = [\"sms\", \"ops\"]\n" + Self.channels)
            == #"x.toml:4: [quiet_hours] channels: "ops" is the ops channel: ops messages are never held"#)
    }

    @Test func anUnknownTimeZoneIsAnError() {
        #expect(failure("[daemon]\ntime_zone = \"Asia/Shangai\"\n" + Self.channels)
            == #"x.toml:2: [daemon] time_zone: unknown time zone "Asia/Shangai": expected an IANA name such as "Asia/Shanghai" or "UTC""#)
        #expect(failure("[daemon]\n\ntime_zone = \"\"\n" + Self.channels).hasPrefix("x.toml:3: [daemon] time_zone: expected a time zone name"))
    }
}
