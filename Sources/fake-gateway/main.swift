// fake-gateway [PORT] [--no-stdin]
//
// Starts a FakeGateway (bodies and requests not recorded) on 127.0.0.1:PORT (ephemeral if
// omitted), prints the port, and prints the number of requests received on SIGTERM/SIGINT or
// when stdin reaches EOF.
import Foundation
import PaywatchTestSupport

#if canImport(Glibc)
import Glibc
#endif

func runGateway() -> Never {
    let args = CommandLine.arguments.dropFirst().filter { $0 != "--no-stdin" }
    var port = 0
    if let arg = args.first {
        guard let p = Int(arg), (0...65535).contains(p) else {
            FileHandle.standardError.write(Data("usage: fake-gateway [PORT]\n".utf8))
            exit(2)
        }
        port = p
    }
    let gateway: FakeGateway
    do {
        gateway = try FakeGateway(recordBodies: false, recordRequests: false, port: port)
    } catch {
        FileHandle.standardError.write(Data("fake-gateway: \(error)\n".utf8))
        exit(1)
    }
    print(gateway.port)
    fflush(nil)

    let finish: @Sendable () -> Void = {
        print("requests: \(gateway.requestCount)")
        fflush(nil)
        gateway.stop()
        exit(0)
    }
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGTERM, SIGINT] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler(handler: finish)
        source.resume()
        sources.append(source)
    }
    let stdinReader = Thread {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(0, &buffer, buffer.count)
            if n == 0 { break }
            if n < 0 && errno != EINTR { break }
        }
        finish()
    }
    // With --no-stdin (a background sink) only SIGTERM/SIGINT stop it.
    if !CommandLine.arguments.contains("--no-stdin") { stdinReader.start() }
    withExtendedLifetime(sources) {
        dispatchMain()
    }
}

runGateway()
