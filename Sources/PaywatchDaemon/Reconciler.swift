import Foundation
import Logging
import PaywatchConfig
import PaywatchCore
import PaywatchDelivery
import PaywatchStore

/// `[paying]` as the reconciler needs it: where to ask about a stalled attempt, with which
/// headers, and how to read the answer.
public struct ReconcileEndpoint: Sendable {
    /// `reconcile_url` with its `{provider_ref}` placeholder.
    public var urlTemplate: String
    /// From `token_file` (`Authorization: Bearer …`) and `headers_file`; never logged.
    var headers: [(String, String)]
    public var statusField: [String]
    public var reasonField: [String]
    public var succeeded: Set<String>
    public var failed: Set<String>

    public init(_ paying: PaywatchConfiguration.Paying, urlTemplate: String, headers: [(String, String)] = []) {
        self.urlTemplate = urlTemplate
        self.headers = headers
        statusField = paying.reconcileStatusField.split(separator: ".").map(String.init)
        reasonField = paying.reconcileReasonField.split(separator: ".").map(String.init)
        succeeded = Set(paying.reconcileSucceeded)
        failed = Set(paying.reconcileFailed)
    }

    /// The GET for one attempt: `{provider_ref}` percent-encoded (outside `A-Z a-z 0-9 - . _ ~`).
    public func request(id: Int64, providerRef: String) -> HTTPRequest {
        let url = urlTemplate.replacingOccurrences(of: "{provider_ref}", with: OutgoingMessage.percentEncoded(providerRef))
        return HTTPRequest(id: id, url: url, method: "GET",
                           headers: [("Accept", "application/json"), ("User-Agent", "paywatch/0.1")] + headers)
    }

    /// Reads the provider's answer. Definite only for a 2xx answer whose JSON holds, at the
    /// status field, a value listed in `reconcile_succeeded` or `reconcile_failed`; the detail
    /// (for the timeline) names the value and the HTTP status, or the error, clipped.
    public func interpret(_ response: HTTPResponse) -> (ReconcileOutcome.Answer, String) {
        guard let status = response.status else {
            return (.unresolved, "no answer: " + Validator.display(response.error ?? "transport error", limit: 120))
        }
        guard (200..<300).contains(status) else { return (.unresolved, "HTTP \(status)") }
        guard let json = try? JSONSerialization.jsonObject(with: Data(response.body.utf8), options: [.fragmentsAllowed]) else {
            return (.unresolved, "HTTP \(status), the answer is not JSON")
        }
        let fieldName = statusField.joined(separator: ".")
        guard let value = Self.value(at: statusField, in: json) else {
            return (.unresolved, "HTTP \(status), no \(fieldName) in the answer")
        }
        let shown = "\(fieldName) \"\(Validator.display(value, limit: 64))\" (HTTP \(status))"
        if succeeded.contains(value) { return (.definite(.succeeded, failureReason: nil), shown) }
        if failed.contains(value) {
            let reason = Self.value(at: reasonField, in: json).map { String($0.prefix(200)) }
            let why = reason.map { ", \(reasonField.joined(separator: ".")) \"\(Validator.display($0, limit: 64))\"" } ?? ""
            return (.definite(.failed, failureReason: reason), shown + why)
        }
        return (.unresolved, shown + ": neither succeeded nor failed")
    }

    /// The string (or number, or boolean, as text) at `path` in nested JSON objects.
    static func value(at path: [String], in json: Any) -> String? {
        var node: Any = json
        for key in path {
            guard let object = node as? [String: Any], let next = object[key] else { return nil }
            node = next
        }
        if let text = node as? String { return text }
        if let number = node as? NSNumber { return number.stringValue }
        return nil
    }
}

/// Asks the payment provider about stalled attempts (``Plan/reconciles``, kept by the store) and
/// records each answer in one store transaction: a definite answer updates the payments row —
/// the shop's triggers mark the order, which moves on at its next plan — anything else sends the
/// request's fallback `paying_stalled`. Runs between planning sweeps; each GET takes at most
/// `[delivery] timeout`. A crash between asking and recording asks again (a GET changes nothing).
/// Requests are claimed with a `[store] lease`, never renewed (see ``runDue()``: an ask is short,
/// and asking twice is harmless).
struct Reconciler: Sendable {
    let runtime: Runtime
    /// The planning loop's, for the watchdog: idle while the provider is asked (each ask has the
    /// transfer timeout), progressed after each batch recorded.
    var heartbeat: LoopHeartbeat? = nil
    static let batch = 32

    /// Asks about every request due now. Returns how many answers were definite, how many were
    /// not (each of those queued its fallback message), and when the next ask is due (nil: none).
    @discardableResult
    func runDue() async throws -> (definite: Int, unresolved: Int, nextDue: Millis?) {
        var definite = 0
        var unresolved = 0
        var nextDue: Millis?
        while !Task.isCancelled {
            let now = runtime.clock.now()
            // A read first: most passes have nothing to ask, and a claim takes the write lock.
            nextDue = try await runtime.store.nextReconcileAt()
            guard let due = nextDue, due <= now else { break }
            // Leased for `[store] lease`, not renewed: the batch's asks are submitted at once, each
            // over within `[delivery] timeout` of its start, which the lease exceeds by 5 s at least;
            // and a lease that runs out anyway (asks waiting behind delivery's transfers for a slot)
            // costs at most one more GET by another replica, which changes nothing: a request is
            // recorded once, whoever asked.
            let tasks = try await runtime.store.claimReconciles(now: now, limit: Self.batch, leaseMs: runtime.config.store.leaseMs)
            guard !tasks.isEmpty else { break }  // due, but leased to an ask still under way
            var outcomes: [ReconcileOutcome] = []
            if let endpoint = runtime.reconcile {
                heartbeat?.idle()
                let responses = await runtime.transport.perform(tasks.map { endpoint.request(id: $0.id, providerRef: $0.request.providerRef) })
                heartbeat?.busy()
                for (task, response) in zip(tasks, responses) {
                    if !response.attempted, response.error == "cancelled" { continue }  // asked again next start
                    let (answer, detail) = endpoint.interpret(response)
                    outcomes.append(ReconcileOutcome(task: task, answer: answer, detail: detail))
                }
            } else {
                // Requested under a configuration that had a reconcile_url.
                outcomes = tasks.map { ReconcileOutcome(task: $0, answer: .unresolved, detail: "[paying] reconcile_url is not set") }
            }
            try await runtime.store.recordReconciles(outcomes, now: runtime.clock.now())
            heartbeat?.progressed()
            for outcome in outcomes {
                let request = outcome.task.request
                var metadata: Logger.Metadata = ["order_id": "\(request.orderID)", "detail": "\(outcome.detail)"]
                switch outcome.answer {
                case .definite(let status, _):
                    definite += 1
                    metadata["event"] = "reconciled"
                    metadata["status"] = "\(status.rawValue)"
                    runtime.logger.notice("payment reconciled with the provider", metadata: metadata)
                case .unresolved:
                    unresolved += 1
                    metadata["event"] = "reconcile_unresolved"
                    runtime.logger.warning("the provider gave no definite answer about a stalled payment", metadata: metadata)
                }
            }
        }
        return (definite, unresolved, nextDue)
    }
}

extension Runtime {
    /// `[paying]`'s reconcile endpoint with its headers read, or nil without `reconcile_url`.
    /// An unreadable `token_file` or `headers_file`, or one whose content is not what it must be,
    /// is a configuration error naming the file and the key — never the content. Either file may
    /// name a systemd credential, `$CREDENTIALS_DIRECTORY/NAME` (``SecretFile``).
    /// - Parameter credentialsDirectory: `$CREDENTIALS_DIRECTORY`; by default the process's.
    public static func reconcileEndpoint(
        _ config: PaywatchConfiguration, configPath: String, credentialsDirectory: String? = SecretFile.credentialsDirectory()
    ) throws -> ReconcileEndpoint? {
        let paying = config.paying
        func failure(_ key: String, _ message: String) -> RuntimeConfigError {
            RuntimeConfigError(description: config.error(file: configPath, section: ["paying"], key: key, message: message).description)
        }
        var headers: [(String, String)] = []
        if let file = paying.tokenFile {
            switch SecretFile.read(file, credentialsDirectory: credentialsDirectory, as: bearerToken) {
            case .success(let token): headers.append(("Authorization", "Bearer \(token)"))
            case .failure(let problem): throw failure("token_file", problem.description)
            }
        }
        if let file = paying.headersFile {
            switch SecretFile.read(file, credentialsDirectory: credentialsDirectory, as: headerLines) {
            case .success(let lines): headers += lines
            case .failure(let problem): throw failure("headers_file", problem.description)
            }
        }
        guard let url = paying.reconcileURL else { return nil }
        return ReconcileEndpoint(paying, urlTemplate: url, headers: headers)
    }

    /// The headers in a headers file: one `Name: value` per line (`\n` or `\r\n`); blank lines and
    /// lines starting with `#` are skipped. A name is an HTTP token; a value, trimmed of spaces and
    /// tabs, is non-empty printable ASCII (0x20–0x7E): no CR or LF inside (a header could be
    /// forged), no other control character. The problem names the line, never its content.
    public static func headerLines(_ bytes: [UInt8]) -> Result<[(String, String)], TokenProblem> {
        func isTokenByte(_ b: UInt8) -> Bool {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
            default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
            }
        }
        func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        var result: [(String, String)] = []
        for (index, rawLine) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            var line = rawLine
            if line.last == 0x0D { line = line.dropLast() }
            while let first = line.first, isBlank(first) { line = line.dropFirst() }
            while let last = line.last, isBlank(last) { line = line.dropLast() }
            if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
            let number = index + 1
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(TokenProblem(description: "line \(number) is not `Name: value`"))
            }
            let name = line[..<colon]
            var value = line[line.index(after: colon)...]
            while let first = value.first, isBlank(first) { value = value.dropFirst() }
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                return .failure(TokenProblem(description: "line \(number): the header name must be letters, digits and !#$%&'*+-.^_`|~"))
            }
            guard !value.isEmpty else { return .failure(TokenProblem(description: "line \(number): the header value is empty")) }
            if value.contains(0x0D) {
                return .failure(TokenProblem(description: "line \(number) holds a CR inside: a header value must be one line"))
            }
            guard value.allSatisfy({ (0x20...0x7E).contains($0) }) else {
                return .failure(TokenProblem(description: "line \(number) holds a control character or a byte outside printable ASCII"))
            }
            result.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        if result.isEmpty { return .failure(TokenProblem(description: "has no `Name: value` line")) }
        return .success(result)
    }
}
