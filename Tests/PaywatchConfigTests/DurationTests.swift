import PaywatchConfig
import Testing

@Suite struct DurationTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("10s", 10_000), ("30m", 1_800_000), ("1h30m", 5_400_000), ("2d", 172_800_000),
        ("1d12h", 129_600_000), ("1m30s500ms", 90_500), ("90m", 5_400_000), ("0h5m", 300_000),
    ])
    func parsesValidDurations(text: String, ms: Int64) {
        #expect(parseDuration(text) == ms)
    }

    @Test(arguments: [
        "", "10", "-5s", "5x", "0s", "0ms", "1.5h", "5 s", " 5s", "5s ", "s", "m5", "30m1h", "1h1h", "5S",
        "1s2ms3s", "+5s", "99999999999999999999d", "9999999999999999d",
    ])
    func rejectsInvalidDurations(text: String) {
        #expect(parseDuration(text) == nil)
    }

    @Test(arguments: ["500ms", "10s", "30m", "1h30m", "2d", "1d2h3m4s5ms"])
    func canonicalStringsRoundTrip(text: String) throws {
        let ms = try #require(parseDuration(text))
        #expect(formatDuration(ms) == text)
    }

    @Test func formatsMillisecondsCanonically() {
        #expect(formatDuration(5_400_000) == "1h30m")
        #expect(formatDuration(500) == "500ms")
        #expect(formatDuration(1_500) == "1s500ms")
        #expect(formatDuration(86_400_000) == "1d")
        #expect(formatDuration(0) == "0s")
        #expect(formatDuration(-10_000) == "-10s")
        #expect(formatDuration(.min).hasPrefix("-"))
    }

    @Test func formatThenParseIsIdentityForPositiveValues() {
        for ms: Int64 in [1, 999, 1_000, 59_999, 60_000, 3_599_999, 86_400_001, 7 * 86_400_000 + 1, .max] {
            #expect(parseDuration(formatDuration(ms)) == ms, "\(ms)")
        }
    }
}

@Suite struct BoundedDurationTests {
    @Test func acceptsUpToAHundredYears() throws {
        #expect(maxDurationMs == 36_500 * 86_400_000)
        #expect(try parseBoundedDuration("36500d").get() == maxDurationMs)
        #expect(try parseBoundedDuration("24h").get() == 86_400_000)
        #expect(try parseBoundedDuration("1ms").get() == 1)
    }

    @Test func rejectsLongerZeroAndMalformed() {
        let tooLong = "is longer than 100 years (36500d)"
        for text in ["36500d1ms", "36501d", "106751991167d", "99999999999999999999d", "9999999999999999d", "876001h"] {
            guard case .failure(let problem) = parseBoundedDuration(text) else {
                Issue.record("\(text) accepted")
                continue
            }
            #expect(problem.description == "duration \"\(text)\" \(tooLong)")
        }
        #expect(parseBoundedDuration("0s") == .failure(DurationProblem(description: "duration \"0s\" must be greater than zero")))
        guard case .failure(let problem) = parseBoundedDuration("1h1h") else {
            Issue.record("1h1h accepted")
            return
        }
        #expect(problem.description.hasPrefix("invalid duration \"1h1h\": expected a positive whole number and a unit"))
    }
}
