import Foundation
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore
import Testing
@testable import PaywatchDaemon

@Suite struct ReconcilerTests {
    static func endpoint(status: String = "status") -> ReconcileEndpoint {
        var paying = PaywatchConfiguration.Paying()
        paying.reconcileStatusField = status
        return ReconcileEndpoint(paying, urlTemplate: "https://psp.example/v1/payments/{provider_ref}?expand=1",
                                 headers: [("Authorization", "Bearer t0k-pwsecret")])
    }

    func answer(_ status: Int?, _ body: String = "", error: String? = nil) -> HTTPResponse {
        HTTPResponse(id: 1, status: status, body: body, error: error, attempted: status != nil, durationMs: 5)
    }

    @Test func theRequestFillsInThePercentEncodedReference() {
        let request = Self.endpoint().request(id: 7, providerRef: "pi/1 2?&")
        #expect(request.method == "GET")
        #expect(request.url == "https://psp.example/v1/payments/pi%2F1%202%3F%26?expand=1")
        #expect(request.headers.contains { $0 == ("Authorization", "Bearer t0k-pwsecret") })
    }

    @Test func definiteAnswersFromEveryProviderDefault() {
        let endpoint = Self.endpoint()
        for value in ["succeeded", "TRADE_SUCCESS", "COMPLETED", "SUCCESS"] {
            let (result, detail) = endpoint.interpret(answer(200, "{\"status\":\"\(value)\"}"))
            #expect(result == .definite(.succeeded, failureReason: nil))
            #expect(detail.contains(value) && detail.contains("HTTP 200"))
        }
        let (failed, detail) = endpoint.interpret(answer(200, "{\"status\":\"TRADE_CLOSED\",\"failure_reason\":\"expired_card\"}"))
        #expect(failed == .definite(.failed, failureReason: "expired_card"))
        #expect(detail.contains("expired_card"))
    }

    @Test func aDottedPathReachesIntoObjects() {
        let endpoint = Self.endpoint(status: "data.status")
        #expect(endpoint.interpret(answer(200, "{\"data\":{\"status\":\"TRADE_SUCCESS\"}}")).0 == .definite(.succeeded, failureReason: nil))
        #expect(endpoint.interpret(answer(200, "{\"status\":\"TRADE_SUCCESS\"}")).0 == .unresolved)
    }

    @Test func anythingElseIsUnresolved() {
        let endpoint = Self.endpoint()
        // Still pending at the provider: asked again only at the next escalation.
        let (pending, detail) = endpoint.interpret(answer(200, "{\"status\":\"WAIT_BUYER_PAY\"}"))
        #expect(pending == .unresolved)
        #expect(detail.contains("WAIT_BUYER_PAY") && detail.contains("neither"))
        #expect(endpoint.interpret(answer(500, "{\"status\":\"paid\"}")) == (.unresolved, "HTTP 500"))
        #expect(endpoint.interpret(answer(404)).0 == .unresolved)
        #expect(endpoint.interpret(answer(200, "<html>")).0 == .unresolved)
        #expect(endpoint.interpret(answer(200, "{\"state\":\"paid\"}")).0 == .unresolved)
        // A timeout: no HTTP status.
        let (timeout, why) = endpoint.interpret(answer(nil, error: "Timeout was reached"))
        #expect(timeout == .unresolved)
        #expect(why.contains("Timeout"))
        // A provider's long or odd value is clipped and escaped on the timeline.
        let long = String(repeating: "x", count: 500) + "\n"
        #expect(endpoint.interpret(answer(200, "{\"status\":\"\(long)\"}")).1.count < 200)
    }

    @Test func headersFilesAreCheckedLikeTokenFiles() {
        let good = Runtime.headerLines(Array("# the PSP's key\nX-Api-Key: abc def\r\n\nX-Merchant:  42  \n".utf8))
        if case .success(let lines) = good {
            #expect(lines.map(\.0) == ["X-Api-Key", "X-Merchant"])
            #expect(lines.map(\.1) == ["abc def", "42"])
        } else {
            Issue.record("rejected a good headers file")
        }
        for bad in ["", "\n# only a comment\n", "NoColon\n", "Bad Name: x\n", "X-Key:\n", "X-Key: a\rInjected: b\n", "X-Key: caf\u{e9}\n",
                    "X-Key: a\u{1}b\n"] {
            guard case .failure(let problem) = Runtime.headerLines(Array(bad.utf8)) else {
                Issue.record("accepted \(bad.debugDescription)")
                continue
            }
            // The problem names the line, never the content.
            #expect(!problem.description.contains("Injected") && !problem.description.contains("caf"))
        }
    }

    @Test func anUnreadableOrBadHeadersFileIsAConfigurationError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-rec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("headers").path
        try "X-Key: a\rX-Evil: b\n".write(toFile: file, atomically: true, encoding: .utf8)
        var config = PaywatchConfiguration()
        config.paying.reconcileURL = "https://psp.example/{provider_ref}"
        config.paying.headersFile = file
        #expect(throws: RuntimeConfigError.self) { try Runtime.reconcileEndpoint(config, configPath: "p.toml") }
        config.paying.headersFile = directory.appendingPathComponent("missing").path
        #expect(throws: RuntimeConfigError.self) { try Runtime.reconcileEndpoint(config, configPath: "p.toml") }
        try "X-Key: a\n".write(toFile: file, atomically: true, encoding: .utf8)
        config.paying.headersFile = file
        let endpoint = try #require(try Runtime.reconcileEndpoint(config, configPath: "p.toml"))
        #expect(endpoint.request(id: 1, providerRef: "r").headers.contains { $0 == ("X-Key", "a") })
    }
}
