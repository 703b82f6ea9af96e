import PaywatchConfig
import Testing

/// `[store] lease`: its default, its bounds, and the rule that it outlasts `[delivery] timeout` by 5 s.
@Suite struct StoreLeaseConfigTests {
    static let sms = "[channels.sms]\nprovider = \"webhook\"\nurl = \"https://gw.example/sms\"\n"

    @Test func theLeaseIsThirtySecondsByDefaultAndReadAsADuration() throws {
        #expect(try PaywatchConfiguration.parse(Self.sms, fileName: "x.toml").store.leaseMs == 30_000)
        #expect(PaywatchConfiguration().store.leaseMs == 30_000)
        let set = try PaywatchConfiguration.parse("[store]\nlease = \"2m\"\n" + Self.sms, fileName: "x.toml")
        #expect(set.store.leaseMs == 120_000)
        // The bounds are accepted as values (5 s itself is then always shorter than a transfer + 5 s).
        #expect(failure("[store]\nlease = \"5s\"\n[delivery]\ntimeout = \"1ms\"\n" + Self.sms).hasPrefix(
            "x.toml:2: [store] lease: [store] lease (5s) must be longer than [delivery] timeout (1ms) + 5s"))
        #expect(try PaywatchConfiguration.parse("[store]\nlease = \"6s\"\n[delivery]\ntimeout = \"500ms\"\n" + Self.sms,
                                                fileName: "x.toml").store.leaseMs == 6_000)
        #expect(try PaywatchConfiguration.parse("[store]\nlease = \"1h\"\n" + Self.sms, fileName: "x.toml").store.leaseMs == 3_600_000)
    }

    @Test func aLeaseOutsideFiveSecondsToAnHourIsRefused() {
        #expect(failure("[store]\nlease = \"4s\"\n" + Self.sms) == "x.toml:2: [store] lease: must be at least 5s, got \"4s\"")
        #expect(failure("[store]\nlease = \"1h1s\"\n" + Self.sms) == "x.toml:2: [store] lease: must be at most 1h, got \"1h1s\"")
        #expect(failure("[store]\nlease = 30\n" + Self.sms).hasPrefix("x.toml:2: [store] lease: expected a duration string"))
    }

    @Test func theLeaseMustOutlastATransferByFiveSecondsAndTheErrorNamesBothKeys() throws {
        // 10 s timeout (the default): a lease of 15 s is not enough, 15.001 s is.
        #expect(failure("[store]\nlease = \"15s\"\n" + Self.sms)
            == "x.toml:2: [store] lease: [store] lease (15s) must be longer than [delivery] timeout (10s) + 5s: a transfer must finish inside its lease between renewals")
        #expect(try PaywatchConfiguration.parse("[store]\nlease = \"15001ms\"\n" + Self.sms, fileName: "x.toml").store.leaseMs == 15_001)
        // A timeout written beyond the default lease: blamed on the timeout, the key written.
        #expect(failure("[delivery]\ntimeout = \"25s\"\n" + Self.sms)
            == "x.toml:2: [delivery] timeout: [store] lease (30s) must be longer than [delivery] timeout (25s) + 5s: a transfer must finish inside its lease between renewals")
        // Both written: blamed on the lease.
        #expect(failure("[store]\nlease = \"20s\"\n[delivery]\ntimeout = \"20s\"\n" + Self.sms)
            == "x.toml:2: [store] lease: [store] lease (20s) must be longer than [delivery] timeout (20s) + 5s: a transfer must finish inside its lease between renewals")
        #expect(try PaywatchConfiguration.parse("[store]\nlease = \"1m\"\n[delivery]\ntimeout = \"50s\"\n" + Self.sms, fileName: "x.toml")
            .store.leaseMs == 60_000)
    }
}
