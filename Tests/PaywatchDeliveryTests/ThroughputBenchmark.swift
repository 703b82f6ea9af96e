import Foundation
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// Manual throughput check, not a regular test: only runs with PAYWATCH_BENCH=1, e.g.
/// `PAYWATCH_BENCH=1 swift test -c release --filter throughputBenchmark`.
@Test(.enabled(if: ProcessInfo.processInfo.environment["PAYWATCH_BENCH"] == "1"))
func throughputBenchmark() async throws {
    let total = Int(ProcessInfo.processInfo.environment["PAYWATCH_BENCH_N"] ?? "") ?? 20_000
    let gateway = try FakeGateway(recordBodies: false, recordRequests: false)
    defer { gateway.stop() }
    let transport = HTTPTransport(concurrency: 32, timeoutMs: 10_000)
    defer { transport.shutdown() }
    let body = Array("{\"to\":\"+15550001111\",\"text\":\"Your payment of $12.00 failed\"}".utf8)
    let requests = (0..<total).map {
        HTTPRequest(id: Int64($0), url: gateway.baseURL + "/send",
                    headers: [("Content-Type", "application/json"), ("Idempotency-Key", "k-\($0)")], body: body)
    }
    _ = await transport.perform(Array(requests.prefix(64)))  // warm up connections
    let start = Date()
    let responses = await transport.perform(requests)
    let seconds = Date().timeIntervalSince(start)
    let ok = responses.filter { $0.status == 200 }.count
    print("THROUGHPUT: \(total) POSTs, concurrency 32: \(String(format: "%.2f", seconds)) s, "
        + "\(Int(Double(total) / seconds)) req/s, ok=\(ok), connections=\(gateway.connectionsAccepted)")
    #expect(ok == total)
}
