// libFuzzer target for the configuration parser.
//
// Built by scripts/fuzz.sh with `-sanitize=fuzzer -D PAYWATCH_FUZZ` (libFuzzer supplies `main`
// and calls `LLVMFuzzerTestOneInput`). A plain `swift build` gives a command that runs the same
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
        + configuration.channels.values.map(\.url)
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

#if PAYWATCH_FUZZ
import CLibFuzzer

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    checkConfig(UnsafeBufferPointer(start: data, count: size))
    return 0
}
#endif

@main
enum FuzzConfigMain {
    static func main() {
        #if PAYWATCH_FUZZ
        // SwiftPM renames this module's entry point and links it as `main`, so libFuzzer's own main
        // is never used: hand over to its driver (same flags: -max_total_time=…, a crash file, …).
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { return 0 }
            return fuzz(data, size)
        })
        #else
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            print("usage: fuzz-config FILE…  (replays inputs through the checks; scripts/fuzz.sh builds the fuzzer)")
            return
        }
        for path in files {
            guard let bytes = readWholeFile(path) else {
                print("\(path): cannot read")
                exit(2)
            }
            bytes.withUnsafeBufferPointer(checkConfig)
            print("\(path): ok")
        }
        #endif
    }
}

func readWholeFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count > 0 { bytes.append(contentsOf: buffer[..<count]) }
        if count < buffer.count { return ferror(file) == 0 ? bytes : nil }
    }
}
