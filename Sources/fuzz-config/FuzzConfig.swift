// libFuzzer target for the configuration parser.
//
// Built by scripts/fuzz.sh with `-sanitize=fuzzer -D PAYWATCH_FUZZ` (FuzzDriver hands over to
// libFuzzer). A plain `swift build` gives a command that runs the same
// check on the files named on its command line (`.build/debug/fuzz-config FILE…`), so a crashing
// input can be replayed without the fuzzer.
//
// Checked for every input: `PaywatchConfiguration.parse` returns or throws, never crashes; when it
// returns and no URL (store, reconcile_url, channel urls) holds a password, query value or fragment,
// `rendered()` parses again to an equal configuration (the promise in Rendering.swift; those are
// masked, so there is no round trip then).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FuzzDriver
import PaywatchConfig

func checkConfig(_ input: UnsafeBufferPointer<UInt8>) {
    // `load` refuses a file that is not UTF-8; `parse` takes any String, so repair instead of
    // skipping (the repaired text is a fair input too).
    let text = String(decoding: input, as: UTF8.self)
    let configuration: PaywatchConfiguration
    do {
        configuration = try PaywatchConfiguration.parse(text, fileName: "fuzz.toml")
    } catch {
        _ = error.description
        return
    }
    let rendered = configuration.rendered()
    // rendered() masks the credentials of every URL (a userinfo password, query values, a fragment):
    // the round trip is promised only when masking changes none of them.
    let urls = [configuration.store.url] + [configuration.paying.reconcileURL].compactMap { $0 }
        + configuration.channels.values.flatMap { [$0.url, $0.baseURL].compactMap { $0 } }
    guard urls.allSatisfy({ maskURL($0) == $0 }) else { return }
    let again: PaywatchConfiguration
    do {
        again = try PaywatchConfiguration.parse(rendered, fileName: "rendered.toml")
    } catch {
        fatalError("rendered() does not parse again: \(error.description)\n--- rendered:\n\(rendered)")
    }
    if again != configuration {
        fatalError("rendered() parses to a different configuration:\n\(configuration)\n--- vs\n\(again)\n--- rendered:\n\(rendered)")
    }
}

@main
enum FuzzConfigMain {
    static func main() {
        FuzzDriver.run(usage: "usage: fuzz-config FILE…  (replays inputs through the checks; scripts/fuzz.sh builds the fuzzer)",
                       check: checkConfig)
    }
}
