import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport

// tls-http N [CONC] [plain] [close] | tls-smtp N [CONC] [plain] [starttls]
//
// The transport alone (HTTPTransport, libcurl), as the delivery engine drives it: N messages with
// CONC transfers in flight, to the `fake-gateway` binary in its own process speaking HTTPS (or
// smtps://, or with `starttls` smtp:// + STARTTLS) with a certificate of a private test CA, trusted
// through `caFile` as `ca_file` does. `plain`: the same over plain-text loopback. Prints the
// throughput and what the server counted: connections and TLS handshakes (keep-alive: one per
// connection, not one per message). `close` (HTTP): every request says `Connection: close`, so each
// one opens a connection and shakes hands anew: what keep-alive saves.

/// The `fake-gateway` process for one run.
final class TLSServerProcess {
    let process = Process()
    let port: Int
    private let stdout: Pipe

    init(arguments: [String]) throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        process.executableURL = me.deletingLastPathComponent().appendingPathComponent("fake-gateway")
        process.arguments = ["0", "--no-stdin"] + arguments
        stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        var line = Data()
        while let byte = try stdout.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            throw FakeGatewayError(description: "fake-gateway did not print its port")
        }
        self.port = port
    }

    /// Stops it and returns what it printed at exit, by name (`requests`, `connections`, `handshakes`, `resumed`).
    func finish() -> [String: Int] {
        process.terminate()
        let text = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            var i = 0
            while i + 1 < words.count {
                if words[i].hasSuffix(":"), let n = Int(words[i + 1]) { counts[String(words[i].dropLast())] = n }
                i += 2
            }
        }
        return counts
    }
}

func benchTLS(_ count: Int, concurrency: Int, smtp: Bool, plain: Bool, startTLS: Bool, close: Bool) async throws {
    let dir = tempDirectory("tls")
    defer { removeUnlessKept(dir) }
    let pkiDir = dir.appendingPathComponent("pki").path
    let pki = try TestPKI(directory: pkiDir)
    var arguments: [String] = []
    if !plain { arguments += ["--tls", pkiDir] }
    if smtp { arguments += ["--smtp"] + (startTLS ? ["--starttls"] : []) }
    let server = try TLSServerProcess(arguments: arguments)
    let caFile = plain ? nil : pki.caFile

    var requests: [HTTPRequest] = []
    requests.reserveCapacity(count)
    if smtp {
        let scheme = plain || startTLS ? "smtp" : "smtps"
        let provider = try SMTPProvider(url: "\(scheme)://127.0.0.1:\(server.port)", from: "shop@shop.example", fromName: "Shop",
                                        startTLS: plain ? .never : .required, caFile: caFile, now: { nowMs() })
        for i in 0..<count {
            requests.append(try provider.request(for: ProviderMessage(
                id: Int64(i), key: "pw1:B\(i):unpaid_reminder:1:email", kind: "unpaid_reminder", channel: "email",
                orderID: "B\(i)", to: "customer\(i)@example.com",
                payload: MessagePayload(subject: "您的订单 B\(i) 还未付款", text: "Please pay 129.00 CNY before 21:00.",
                                        html: "<p>Please pay <b>129.00 CNY</b> before 21:00.</p>"))))
        }
    } else {
        let scheme = plain ? "http" : "https"
        for i in 0..<count {
            let body = #"{"idempotency_key":"pw1:B\#(i):unpaid_reminder:1:sms","kind":"unpaid_reminder","order_id":"B\#(i)","to":"+8613800138000","text":"Please pay 129.00 CNY before 21:00."}"#
            requests.append(HTTPRequest(id: Int64(i), url: "\(scheme)://127.0.0.1:\(server.port)/sms",
                                        headers: [("Content-Type", "application/json"), ("Idempotency-Key", "pw1:B\(i):unpaid_reminder:1:sms")]
                                            + (close ? [("Connection", "close")] : []),
                                        body: Array(body.utf8), caFile: caFile))
        }
    }

    let transport = HTTPTransport(concurrency: concurrency, timeoutMs: 60_000)
    let start = monotonicSeconds()
    let responses = await transport.perform(requests)
    let seconds = monotonicSeconds() - start
    transport.shutdown()
    let counts = server.finish()
    let ok = responses.filter { $0.error == nil && ($0.status.map { (200...299).contains($0) } ?? false) }.count
    let firstError = responses.first { $0.error != nil }?.error ?? "-"
    let name = smtp ? (plain ? "smtp" : (startTLS ? "smtp+starttls" : "smtps")) : (plain ? "http" : "https") + (close ? "+close" : "")
    print(String(format: "tls-%@ mode=%@ n=%d conc=%d ok=%d msg_per_s=%.0f seconds=%.3f server_took=%d connections=%d handshakes=%d resumed=%d first_error=%@",
                 smtp ? "smtp" : "http", name, count, concurrency, ok, Double(count) / seconds, seconds,
                 counts["requests"] ?? -1, counts["connections"] ?? -1, counts["handshakes"] ?? 0, counts["resumed"] ?? 0,
                 firstError))
}
