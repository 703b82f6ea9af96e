// The entry point the fuzz targets share.
//
// Under `-D PAYWATCH_FUZZ` (scripts/fuzz.sh, with `-sanitize=fuzzer`) it hands over to libFuzzer's
// driver: SwiftPM renames each executable's entry point and links it as `main`, so libFuzzer's own
// `main` is never used, and `LLVMFuzzerRunDriver` takes the same flags (-max_total_time=…, a crash
// file, …). Without it, the same target is a command that replays the files named on its command
// line through the same check, so a crashing input can be reproduced without the fuzzer.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
#if PAYWATCH_FUZZ
import CLibFuzzer
#endif

public enum FuzzDriver {
    /// The check of the running target; set once by ``run(usage:check:show:)`` before any input.
    nonisolated(unsafe) static var check: ((UnsafeBufferPointer<UInt8>) -> Void)?

    /// Fuzzes `check` (under `PAYWATCH_FUZZ`) or replays the named files through it, then exits.
    /// - Parameters:
    ///   - usage: printed when no file is named.
    ///   - show: replay only, with `--print` as the first argument: shows what an input decodes to
    ///     before it is checked.
    public static func run(usage: String, check: @escaping (UnsafeBufferPointer<UInt8>) -> Void,
                           show: ((String, UnsafeBufferPointer<UInt8>) -> Void)? = nil) -> Never {
        FuzzDriver.check = check
        #if PAYWATCH_FUZZ
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { return 0 }
            return LLVMFuzzerTestOneInput(data, size)
        })
        #else
        var files = CommandLine.arguments.dropFirst()
        let printing = show != nil && files.first == "--print"
        if printing { files = files.dropFirst() }
        if files.isEmpty {
            print(usage)
            exit(0)
        }
        for path in files {
            guard let bytes = readWholeFile(path) else {
                print("\(path): cannot read")
                exit(2)
            }
            if printing, let show {
                bytes.withUnsafeBufferPointer { show(path, $0) }
                fflush(nil)  // before a crash in the check
            }
            bytes.withUnsafeBufferPointer(check)
            print("\(path): ok")
        }
        exit(0)
        #endif
    }

    static func readWholeFile(_ path: String) -> [UInt8]? {
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
}

#if PAYWATCH_FUZZ
/// libFuzzer's entry for one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzDriver.check?(UnsafeBufferPointer(start: data, count: size))
    return 0
}
#endif
