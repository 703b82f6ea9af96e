import PaywatchConfig
import Testing

/// `[channels.NAME] rate`, `burst`, `breaker_failures`, `breaker_probe` and
/// `[delivery] max_per_order_per_day`: read, defaulted, and refused with file, line and key.
@Suite struct LimitsConfigTests {
    static func sms(_ lines: String) -> String {
        "[channels.sms]\nprovider = \"webhook\"\nurl = \"https://gw.example/sms\"\n" + lines
    }

    @Test func ratesInEachUnitWithTheirDefaultBurst() throws {
        for (text, count, period, burst) in [("50/s", 50, Int64(1_000), 50), ("600/m", 600, 60_000, 10), ("1000/h", 1_000, 3_600_000, 1)] {
            let config = try PaywatchConfiguration.parse(Self.sms("rate = \"\(text)\"\n"), fileName: "x.toml")
            let channel = try #require(config.channels["sms"])
            #expect(channel.rate == PaywatchConfiguration.Rate(count: count, periodMs: period))
            #expect(channel.effectiveBurst == burst)  // one second's worth, at least 1
        }
        let burst = try PaywatchConfiguration.parse(Self.sms("rate = \"10/s\"\nburst = 3\n"), fileName: "x.toml")
        #expect(burst.channels["sms"]?.effectiveBurst == 3)
    }

    @Test func withoutTheKeysThereIsNoRateAndTheBreakerHasItsDefaults() throws {
        let config = try PaywatchConfiguration.parse(Self.sms(""), fileName: "x.toml")
        let channel = try #require(config.channels["sms"])
        #expect(channel.rate == nil)
        #expect(channel.effectiveBurst == nil)
        #expect(channel.breakerFailures == 20)
        #expect(channel.breakerProbeMs == 30_000)
        #expect(config.delivery.maxPerOrderPerDay == nil)
        let set = try PaywatchConfiguration.parse(
            Self.sms("breaker_failures = 5\nbreaker_probe = \"10s\"\n") + "[delivery]\nmax_per_order_per_day = 3\n", fileName: "x.toml")
        #expect(set.channels["sms"]?.breakerFailures == 5)
        #expect(set.channels["sms"]?.breakerProbeMs == 10_000)
        #expect(set.delivery.maxPerOrderPerDay == 3)
    }

    @Test func aBadRateIsRefusedWithFileLineAndKey() {
        #expect(failure(Self.sms("rate = \"0/s\"\n"))
            == "x.toml:4: [channels.sms] rate: rate \"0/s\" sends nothing: at least 1 per unit (remove the key for no limit)")
        #expect(failure(Self.sms("rate = \"-5/s\"\n"))
            == "x.toml:4: [channels.sms] rate: invalid rate \"-5/s\": expected a rate such as \"50/s\", \"600/m\" or \"1000/h\"")
        #expect(failure(Self.sms("rate = \"50 per second\"\n"))
            == "x.toml:4: [channels.sms] rate: invalid rate \"50 per second\": expected a rate such as \"50/s\", \"600/m\" or \"1000/h\"")
        #expect(failure(Self.sms("rate = \"50/d\"\n"))
            == "x.toml:4: [channels.sms] rate: invalid rate \"50/d\": the unit must be s, m or h (expected a rate such as \"50/s\", \"600/m\" or \"1000/h\")")
        #expect(failure(Self.sms("rate = \"99999999999999999999999/s\"\n"))
            == "x.toml:4: [channels.sms] rate: rate \"99999999999999999999999/s\" is too large: at most 1,000,000 per unit")
        #expect(failure(Self.sms("rate = 50\n"))
            == "x.toml:4: [channels.sms] rate: expected a string, got integer 50")
    }

    @Test func badBurstBreakerAndCapValuesAreRefused() {
        #expect(failure(Self.sms("burst = 10\n"))
            == "x.toml:4: [channels.sms] burst: burst needs a rate: set rate (e.g. rate = \"50/s\") or remove burst")
        #expect(failure(Self.sms("rate = \"5/s\"\nburst = 0\n")) == "x.toml:5: [channels.sms] burst: must be at least 1, got 0")
        #expect(failure(Self.sms("breaker_failures = 0\n")) == "x.toml:4: [channels.sms] breaker_failures: must be at least 1, got 0")
        #expect(failure(Self.sms("breaker_probe = \"0s\"\n")).hasPrefix("x.toml:4: [channels.sms] breaker_probe: "))
        #expect(failure(Self.sms("") + "[delivery]\nmax_per_order_per_day = -1\n")
            == "x.toml:5: [delivery] max_per_order_per_day: must be at least 1, got -1")
    }
}
