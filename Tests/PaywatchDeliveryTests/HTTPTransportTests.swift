import Foundation
import PaywatchCore
import PaywatchDelivery
import PaywatchTestSupport
import Testing

/// Real HTTP against a FakeGateway on 127.0.0.1; no mocks.
@Suite struct HTTPTransportTests {
    @Test func bodyAndHeadersArriveExactly() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let transport = HTTPTransport(concurrency: 4, timeoutMs: 5000)
        defer { transport.shutdown() }

        // Includes a NUL byte, non-ASCII UTF-8 and > 1 KiB so Expect: 100-continue would kick in.
        var body = Array("{\"to\":\"+15550001111\",\"text\":\"héllo ✓\"}".utf8)
        body.append(0)
        body.append(contentsOf: [UInt8](repeating: 0x61, count: 3000))
        let request = HTTPRequest(
            id: 42, url: gateway.baseURL + "/v1/messages?x=1",
            headers: [("Idempotency-Key", "msg-42-attempt"), ("Content-Type", "application/json"),
                      ("Authorization", "Bearer sk_test_abc123")],
            body: body)
        let responses = await transport.perform([request])

        #expect(responses.count == 1)
        #expect(responses[0].id == 42)
        #expect(responses[0].status == 200)
        #expect(responses[0].body == "{}")
        #expect(responses[0].error == nil)
        #expect(responses[0].attempted)

        let received = gateway.requests()
        try #require(received.count == 1)
        #expect(received[0].method == "POST")
        #expect(received[0].path == "/v1/messages?x=1")
        #expect(received[0].body == body)
        #expect(received[0].headers["idempotency-key"] == "msg-42-attempt")
        #expect(received[0].headers["content-type"] == "application/json")
        #expect(received[0].headers["authorization"] == "Bearer sk_test_abc123")
        #expect(received[0].headers["expect"] == nil)
    }

    @Test func getRequestAndResponseBodyCap() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let big = String(repeating: "x", count: 10_000)
        gateway.setResponder { _ in .init(status: 200, body: big) }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 5000)
        defer { transport.shutdown() }

        let responses = await transport.perform([
            HTTPRequest(id: 1, url: gateway.baseURL + "/status", method: "GET"),
            HTTPRequest(id: 2, url: gateway.baseURL + "/status", method: "GET"),
        ])
        #expect(responses.map(\.id) == [1, 2])
        #expect(responses.allSatisfy { $0.status == 200 && $0.body.utf8.count == 2048 })
        #expect(gateway.requests().allSatisfy { $0.method == "GET" && $0.body.isEmpty })
        #expect(gateway.connectionsAccepted <= 2)
    }

    @Test func serverErrorThenSuccessIsRetriedAndDelivered() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let calls = Counter()
        gateway.setResponder { _ in
            calls.increment() == 1 ? .init(status: 500, body: "{\"error\":\"boom\"}") : .init(status: 200)
        }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 5000)
        defer { transport.shutdown() }
        let policy = RetryPolicy()
        let request = HTTPRequest(id: 7, url: gateway.baseURL + "/send", body: Array("payload-7".utf8))

        let first = try #require(await transport.perform([request]).first)
        #expect(first.status == 500)
        let outcome = classifyDelivery(first, attempt: 1, policy: policy, nowMs: 1_000_000, jitter: 0.5)
        guard case .retry(let atMs, let reason) = outcome else {
            Issue.record("expected retry, got \(outcome)")
            return
        }
        #expect(atMs > 1_000_000)
        #expect(reason.hasPrefix("HTTP 500"))

        let second = try #require(await transport.perform([request]).first)
        #expect(second.id == 7)
        #expect(classifyDelivery(second, attempt: 2, policy: policy, nowMs: atMs, jitter: 0.5) == .delivered)
        let received = gateway.requests()
        #expect(received.count == 2)
        #expect(received.allSatisfy { $0.bodyString == "payload-7" })
        #expect(gateway.connectionsAccepted == 1)
    }

    @Test func tooManyRequestsHonoursRetryAfter() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 429, headers: ["Retry-After": "7"], body: "slow down") }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5000)
        defer { transport.shutdown() }

        let response = try #require(await transport.perform([HTTPRequest(id: 1, url: gateway.baseURL)]).first)
        #expect(response.status == 429)
        #expect(response.retryAfter == "7")
        let now: Int64 = 1_700_000_000_000
        #expect(classifyDelivery(response, attempt: 1, policy: RetryPolicy(), nowMs: now, jitter: 0.9)
            == .retry(atMs: now + 7000, reason: "HTTP 429: slow down"))
    }

    @Test func badRequestIsDeadAtOnce() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 400, body: "{\"error\":\"invalid number\"}") }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5000)
        defer { transport.shutdown() }

        let response = try #require(await transport.perform([HTTPRequest(id: 1, url: gateway.baseURL)]).first)
        #expect(response.status == 400)
        #expect(classifyDelivery(response, attempt: 1, policy: RetryPolicy(), nowMs: 0, jitter: 0)
            == .dead(reason: "HTTP 400: {\"error\":\"invalid number\"}"))
    }

    @Test func serverErrorOnLastAttemptIsDead() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 503, body: "") }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 5000)
        defer { transport.shutdown() }

        let response = try #require(await transport.perform([HTTPRequest(id: 1, url: gateway.baseURL)]).first)
        let policy = RetryPolicy(maxAttempts: 3)
        #expect(classifyDelivery(response, attempt: 3, policy: policy, nowMs: 0, jitter: 0)
            == .dead(reason: "gave up after 3 attempts: HTTP 503"))
        if case .retry = classifyDelivery(response, attempt: 2, policy: policy, nowMs: 0, jitter: 0) {} else {
            Issue.record("attempt 2 of 3 should retry")
        }
    }

    @Test func connectionRefusedIsTransportErrorAndRetried() async throws {
        let closed = try FakeGateway()
        let url = closed.baseURL + "/send"
        closed.stop()  // nothing listens on this port any more
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 2000, connectTimeoutMs: 1000)
        defer { transport.shutdown() }

        let response = try #require(await transport.perform([HTTPRequest(id: 9, url: url, body: [1, 2, 3])]).first)
        #expect(response.id == 9)
        #expect(response.status == nil)
        #expect(response.attempted)
        let error = try #require(response.error)
        #expect(error.lowercased().contains("connect"))
        let outcome = classifyDelivery(response, attempt: 1, policy: RetryPolicy(), nowMs: 100, jitter: 0)
        guard case .retry(let atMs, let reason) = outcome else {
            Issue.record("expected retry, got \(outcome)")
            return
        }
        #expect(atMs == 100 + 500)
        #expect(reason.hasPrefix("transport error: "))
    }

    @Test func slowGatewayTimesOut() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 200, delayMs: 1500) }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 300)
        defer { transport.shutdown() }

        let response = try #require(await transport.perform([HTTPRequest(id: 3, url: gateway.baseURL)]).first)
        #expect(response.status == nil)
        #expect(response.attempted)
        let error = try #require(response.error)
        #expect(error.lowercased().contains("timed out"))
        if case .retry = classifyDelivery(response, attempt: 1, policy: RetryPolicy(), nowMs: 0, jitter: 0) {} else {
            Issue.record("timeout should be retried")
        }
    }

    @Test func concurrencyIsBoundedAndConnectionsReused() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 202, delayMs: 50) }
        let transport = HTTPTransport(concurrency: 8, timeoutMs: 10_000)
        defer { transport.shutdown() }

        let requests = (0..<100).map { HTTPRequest(id: Int64($0), url: gateway.baseURL, body: Array("m\($0)".utf8)) }
        let responses = await transport.perform(requests)

        #expect(responses.map(\.id) == requests.map(\.id))
        #expect(responses.allSatisfy { $0.status == 202 && $0.attempted && $0.error == nil })
        #expect(gateway.requestCount == 100)
        #expect(gateway.maxConcurrentRequests <= 8)
        #expect(gateway.maxConcurrentRequests >= 2)
        #expect(gateway.connectionsAccepted <= 8)

        // A second batch on the same transport reuses the kept-alive connections.
        let before = gateway.connectionsAccepted
        let again = await transport.perform(Array(requests.prefix(8)))
        #expect(again.allSatisfy { $0.status == 202 })
        #expect(gateway.connectionsAccepted == before)
    }

    @Test func completionsArriveOneByOneAsEachTransferEnds() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        // The slow answer waits until the three fast requests have arrived (at most 20 s), so that
        // the test does not depend on how fast a loaded machine sends them.
        gateway.setResponder { [unowned gateway] request in
            guard request.path == "/slow" else { return .init(status: 200) }
            let deadline = Date().addingTimeInterval(20)
            while gateway.requestCount < 4, Date() < deadline { usleep(5_000) }
            return .init(status: 200, delayMs: 200)
        }
        let transport = HTTPTransport(concurrency: 4, timeoutMs: 30_000)
        defer { transport.shutdown() }
        let (stream, continuation) = AsyncStream.makeStream(of: (Int64, Date).self)
        transport.send(HTTPRequest(id: 0, url: gateway.baseURL + "/slow")) { continuation.yield(($0.id, Date())) }
        #expect(await gateway.waitForRequests(1, timeoutSeconds: 10))
        transport.send((1...3).map { id in
            (HTTPRequest(id: id, url: gateway.baseURL + "/fast"), { (response: HTTPResponse) in continuation.yield((response.id, Date())) })
        })
        var order: [Int64] = []
        for await (id, _) in stream {
            order.append(id)
            if order.count == 4 { break }
        }
        // The three fast answers were handed over while the slow one, sent first, was pending.
        #expect(order.last == 0)
        #expect(Set(order.prefix(3)) == [1, 2, 3])
    }

    @Test func concurrentPerformCallsShareTheLimit() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 200, delayMs: 20) }
        let transport = HTTPTransport(concurrency: 4, timeoutMs: 10_000)
        defer { transport.shutdown() }

        let results = await withTaskGroup(of: [HTTPResponse].self) { group in
            for batch in 0..<3 {
                group.addTask {
                    await transport.perform((0..<10).map { HTTPRequest(id: Int64(batch * 100 + $0), url: gateway.baseURL) })
                }
            }
            var all: [[HTTPResponse]] = []
            for await r in group { all.append(r) }
            return all
        }
        #expect(results.count == 3)
        #expect(results.allSatisfy { $0.count == 10 && $0.allSatisfy { $0.status == 200 } })
        #expect(gateway.maxConcurrentRequests <= 4)
    }

    @Test func cancellationLeavesUnstartedRequestsUnattempted() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 200, delayMs: 100) }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 10_000)
        defer { transport.shutdown() }

        let requests = (0..<40).map { HTTPRequest(id: Int64($0), url: gateway.baseURL) }
        let task = Task { await transport.perform(requests) }
        #expect(await gateway.waitForRequests(2, timeoutSeconds: 10))
        task.cancel()
        let responses = await task.value

        #expect(responses.map(\.id) == requests.map(\.id))
        let notAttempted = responses.filter { !$0.attempted }
        #expect(!notAttempted.isEmpty)
        #expect(notAttempted.allSatisfy { $0.error == "cancelled" && $0.status == nil })
        // Everything that was started was finished normally.
        #expect(responses.filter(\.attempted).allSatisfy { $0.status == 200 })
        #expect(responses.filter(\.attempted).count >= 2)
        // Unattempted responses are retried immediately and must not count as an attempt.
        let first = try #require(notAttempted.first)
        #expect(classifyDelivery(first, attempt: 8, policy: RetryPolicy(), nowMs: 55, jitter: 0.3) == .notAttempted)
    }

    @Test func alreadyCancelledTaskSendsNothing() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 5000)
        defer { transport.shutdown() }
        _ = await transport.perform([HTTPRequest(id: 0, url: gateway.baseURL)])  // worker thread running

        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await transport.perform((1...5).map { HTTPRequest(id: Int64($0), url: gateway.baseURL) })
        }
        let responses = await task.value
        #expect(responses.map(\.id) == [1, 2, 3, 4, 5])
        #expect(responses.allSatisfy { !$0.attempted && $0.error == "cancelled" })
        #expect(gateway.requestCount == 1)
    }

    @Test func performAfterShutdownIsNotAttempted() async throws {
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 1000)
        transport.shutdown()
        let responses = await transport.perform([HTTPRequest(id: 1, url: "http://127.0.0.1:9/")])
        #expect(responses.count == 1)
        #expect(responses[0].attempted == false)
    }

    @Test func shutdownWhileInFlightCompletesEveryRequest() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        gateway.setResponder { _ in .init(status: 200, delayMs: 2000) }
        let transport = HTTPTransport(concurrency: 2, timeoutMs: 10_000)

        let requests = (0..<10).map { HTTPRequest(id: Int64($0), url: gateway.baseURL) }
        let task = Task { await transport.perform(requests) }
        #expect(await gateway.waitForRequests(2, timeoutSeconds: 10))
        transport.shutdown()
        let responses = await task.value
        #expect(responses.map(\.id) == requests.map(\.id))
        #expect(responses.allSatisfy { $0.status == nil && $0.error == "transport shut down" })
        #expect(responses.filter(\.attempted).count == 2)
    }

    @Test func invalidHeaderIsRejectedWithoutSending() async throws {
        let gateway = try FakeGateway()
        defer { gateway.stop() }
        let transport = HTTPTransport(concurrency: 1, timeoutMs: 1000)
        defer { transport.shutdown() }
        let responses = await transport.perform([
            HTTPRequest(id: 1, url: gateway.baseURL, headers: [("X-Evil", "a\r\nInjected: 1")]),
            HTTPRequest(id: 2, url: gateway.baseURL),
        ])
        #expect(responses[0].status == nil)
        #expect(responses[0].error?.contains("a\r\n") == false)
        #expect(responses[1].status == 200)
        #expect(gateway.requestCount == 1)
    }
}
