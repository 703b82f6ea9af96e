// fake-gateway [PORT] [--no-stdin] [--delay-ms N] [--slow-every N --slow-ms M] [--record FILE]
//              [--tls DIR] [--smtp [--starttls]]
//
// Starts a FakeGateway on 127.0.0.1:PORT (ephemeral if omitted), prints the port, and on
// SIGTERM/SIGINT (or when stdin reaches EOF, unless --no-stdin) prints the number of requests
// received (and the connections and TLS handshakes) and exits. A loopback sink in its own
// process: the quickstart's webhook gateway and the benchmarks' external sink.
//
//   --delay-ms N                 every answer waits N ms (a provider's usual latency)
//   --slow-every N --slow-ms M   every Nth request (the 1st, N+1th, …) is answered after M ms instead
//   --record FILE                at exit, writes one line per request: "RECEIVED_MS IDEMPOTENCY_KEY"
//   --tls DIR                    HTTPS (or, with --smtp, smtps://) with the certificate of a test CA
//                                kept in DIR (DIR/ca.pem is the CA file), made there if missing
//   --smtp                       an SMTP server (FakeSMTPServer) instead of HTTP; "requests" counts the
//                                messages taken
//   --starttls                   with --smtp --tls: plain smtp:// offering STARTTLS instead of smtps://
import Foundation
import PaywatchTestSupport

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var port = 0
    var readStdin = true
    var delayMs = 0
    var slowEvery = 0
    var slowMs = 0
    var record: String?
    var tlsDirectory: String?
    var smtp = false
    var startTLS = false
}

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data("fake-gateway: \(text)\nusage: fake-gateway [PORT] [--no-stdin] [--delay-ms N] [--slow-every N --slow-ms M] [--record FILE] [--tls DIR] [--smtp [--starttls]]\n".utf8))
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var args = Array(CommandLine.arguments.dropFirst())[...]
    func number(_ flag: String) -> Int {
        guard let text = args.popFirst(), let n = Int(text), n >= 0 else { fail("\(flag) takes a whole number") }
        return n
    }
    while let arg = args.popFirst() {
        switch arg {
        case "--no-stdin": options.readStdin = false
        case "--delay-ms": options.delayMs = number(arg)
        case "--slow-every": options.slowEvery = number(arg)
        case "--slow-ms": options.slowMs = number(arg)
        case "--record":
            guard let path = args.popFirst() else { fail("--record takes a file") }
            options.record = path
        case "--tls":
            guard let dir = args.popFirst() else { fail("--tls takes a folder") }
            options.tlsDirectory = dir
        case "--smtp": options.smtp = true
        case "--starttls": options.startTLS = true
        default:
            guard let p = Int(arg), (0...65535).contains(p) else { fail("unknown argument \(arg)") }
            options.port = p
        }
    }
    return options
}

/// `--smtp`: an SMTP server until stopped; prints the messages taken, connections and handshakes.
func runSMTP(_ options: Options, tls: TLSServerContext?) -> Never {
    let server: FakeSMTPServer
    do {
        server = try FakeSMTPServer(port: options.port, tls: tls, implicitTLS: !options.startTLS)
    } catch {
        FileHandle.standardError.write(Data("fake-gateway: \(error)\n".utf8))
        exit(1)
    }
    print(server.port)
    fflush(nil)
    waitForTheEnd(options) {
        print("requests: \(server.messages().count)")
        print("connections: \(server.connectionsAccepted)")
        if let tls { print("handshakes: \(tls.handshakes) resumed: \(tls.resumedHandshakes) failed: \(tls.failedHandshakes)") }
        fflush(nil)
        server.stop()
    }
}

/// Runs `finish` and exits on SIGTERM/SIGINT or, unless --no-stdin, at the end of stdin.
func waitForTheEnd(_ options: Options, _ body: @escaping @Sendable () -> Void) -> Never {
    let finish: @Sendable () -> Void = {
        body()
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
    if options.readStdin { stdinReader.start() }
    withExtendedLifetime(sources) {
        dispatchMain()
    }
}

func runGateway() -> Never {
    let options = parseOptions()
    let tls: TLSServerContext?
    do {
        tls = try options.tlsDirectory.map { try TestPKI(directory: $0).serverContext() }
    } catch {
        FileHandle.standardError.write(Data("fake-gateway: \(error)\n".utf8))
        exit(1)
    }
    if options.smtp { runSMTP(options, tls: tls) }
    let gateway: FakeGateway
    do {
        gateway = try FakeGateway(recordBodies: false, recordRequests: options.record != nil, port: options.port, tls: tls)
    } catch {
        FileHandle.standardError.write(Data("fake-gateway: \(error)\n".utf8))
        exit(1)
    }
    if options.delayMs > 0 || options.slowEvery > 0 {
        let counter = Counter()
        gateway.setResponder { _ in
            let n = counter.increment()
            let slow = options.slowEvery > 0 && (n - 1) % options.slowEvery == 0
            return FakeGateway.Response(status: 200, delayMs: slow ? options.slowMs : options.delayMs)
        }
    }
    print(gateway.port)
    fflush(nil)

    waitForTheEnd(options) {
        if let path = options.record {
            var text = ""
            for request in gateway.requests() {
                text += "\(request.receivedAtMs) \(request.headers["idempotency-key"] ?? "-")\n"
            }
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        }
        print("requests: \(gateway.requestCount)")
        print("connections: \(gateway.connectionsAccepted)")
        if let tls { print("handshakes: \(tls.handshakes) resumed: \(tls.resumedHandshakes) failed: \(tls.failedHandshakes)") }
        fflush(nil)
        gateway.stop()
    }
}

runGateway()
