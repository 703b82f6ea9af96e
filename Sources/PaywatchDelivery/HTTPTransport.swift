import CCurl
import DequeModule
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Public value types

/// One outgoing transfer: an HTTP request or, with `mail`, an SMTP submission. Both go through
/// the same multi handle, so lanes, concurrency and timeouts apply to e-mail as they do to
/// webhooks. `id` is opaque to the transport and echoed back in the response.
public struct HTTPRequest: Sendable {
    /// Caller's id, echoed back in `HTTPResponse.id`.
    public var id: Int64
    /// Absolute `http://` or `https://` URL; with `mail`, an `smtp://` or `smtps://` one. Any
    /// other pairing is refused before anything is sent (a webhook URL can never make paywatch
    /// speak SMTP, nor an SMTP channel HTTP).
    public var url: String
    /// HTTP method; `"POST"` by default. `"GET"`, `"HEAD"` and other tokens (`PUT`, `PATCH`, ...) are supported.
    public var method: String
    /// Request headers in order. Names/values must not contain CR or LF (such requests fail without being sent).
    public var headers: [(String, String)]
    /// Raw request body (sent for every method except GET/HEAD); with `mail`, the whole message
    /// (RFC 5322 headers and body, CRLF lines), which curl dot-stuffs as SMTP requires.
    public var body: [UInt8]
    /// Set for an SMTP submission: the envelope, TLS policy and credentials. `method` and
    /// `headers` are then ignored.
    public var mail: MailEnvelope?
    /// A PEM file of trusted CAs instead of the system's (`ca_file`). Peer and host verification
    /// stay on whatever it says.
    public var caFile: String?

    public init(id: Int64, url: String, method: String = "POST", headers: [(String, String)] = [], body: [UInt8] = [],
                mail: MailEnvelope? = nil, caFile: String? = nil) {
        self.id = id
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.mail = mail
        self.caFile = caFile
    }
}

/// Result of one `HTTPRequest`.
public struct HTTPResponse: Sendable, Equatable {
    /// The request's `id`.
    public var id: Int64
    /// HTTP status; nil on transport error or when not attempted. For SMTP, the server's last
    /// reply code, kept even when curl gave up (a `550` refusing the recipient is an error to
    /// curl): see `mail` for the command it answered.
    public var status: Int?
    /// Raw `Retry-After` response header, if present.
    public var retryAfter: String?
    /// First 2 KiB of the response body, decoded as lossy UTF-8. For SMTP, the server's last
    /// reply, its lines joined by spaces.
    public var body: String
    /// curl error text for transport errors; for SMTP also when the server refused a command
    /// (`status` is then its reply code). Never contains request headers, bodies or credentials.
    public var error: String?
    /// False when the request was never started (cancelled / shut down).
    public var attempted: Bool
    /// Wall time from starting the transfer until it completed.
    public var durationMs: Int64
    /// For an SMTP transfer that was started: how far the conversation got.
    public var mail: MailReply?

    public init(id: Int64, status: Int?, retryAfter: String? = nil, body: String = "", error: String? = nil,
                attempted: Bool = true, durationMs: Int64 = 0, mail: MailReply? = nil) {
        self.id = id
        self.status = status
        self.retryAfter = retryAfter
        self.body = body
        self.error = error
        self.attempted = attempted
        self.durationMs = durationMs
        self.mail = mail
    }

    static func notAttempted(_ id: Int64, reason: String) -> HTTPResponse {
        HTTPResponse(id: id, status: nil, error: reason, attempted: false, durationMs: 0)
    }
}

// MARK: - Transport

/// Initialised exactly once (Swift globals are lazily initialised in a thread-safe way).
private let curlGlobalInitOK: Bool = ccurl_global_init_default() == CURLE_OK

/// Maximum number of response-body bytes kept per response.
let maxCapturedBodyBytes = 2048

/// Called once per request with its response, on the transport's worker thread: keep it short
/// (hand the response over, e.g. by yielding it into an `AsyncStream`).
public typealias HTTPCompletion = @Sendable (HTTPResponse) -> Void

/// HTTP client built on one long-lived curl multi handle driven by a dedicated thread. It also
/// submits e-mail over SMTP (a request with `mail`), with the same limits and timeouts.
///
/// Connections are kept alive and reused. At most `concurrency` transfers are in flight at any
/// moment; further requests wait in FIFO order. Every request gets exactly one completion, as soon
/// as its own transfer ends (`curl_multi_info_read`): a slow answer delays nothing but itself.
public final class HTTPTransport: Sendable {
    private let worker: CurlWorker

    /// - Parameters:
    ///   - concurrency: maximum transfers in flight (and connections kept open); clamped to >= 1.
    ///   - timeoutMs: total per-transfer timeout.
    ///   - connectTimeoutMs: TCP/TLS connect timeout.
    public init(concurrency: Int, timeoutMs: Int64, connectTimeoutMs: Int64 = 5000) {
        _ = curlGlobalInitOK
        worker = CurlWorker(concurrency: max(1, concurrency), timeoutMs: max(1, timeoutMs),
                            connectTimeoutMs: max(1, connectTimeoutMs))
    }

    deinit {
        worker.shutdown()
    }

    /// Starts one request (or queues it while `concurrency` transfers are in flight) and returns at
    /// once. `completion` runs exactly once, on the worker thread, when the transfer ends — or with
    /// `attempted == false` if the transport shuts down before it started.
    public func send(_ request: HTTPRequest, completion: @escaping HTTPCompletion) {
        worker.submit([Job(request: request, completion: completion, cancellation: nil)])
    }

    /// Starts several requests in one hand-over to the worker thread (one wake-up), in order.
    public func send(_ requests: [(HTTPRequest, HTTPCompletion)]) {
        guard !requests.isEmpty else { return }
        worker.submit(requests.map { Job(request: $0.0, completion: $0.1, cancellation: nil) })
    }

    /// Runs all requests with at most `concurrency` transfers in flight at once and returns one
    /// response per request, in the same order as the input.
    ///
    /// The calling task suspends without blocking the cooperative pool. On task cancellation,
    /// transfers already in flight are finished (bounded by the timeout) and requests not yet
    /// started come back with `attempted == false`, `error == "cancelled"`.
    public func perform(_ requests: [HTTPRequest]) async -> [HTTPResponse] {
        if requests.isEmpty { return [] }
        let collector = Collector(requests: requests)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[HTTPResponse], Never>) in
                collector.continuation = continuation
                worker.submit(requests.enumerated().map { index, request in
                    Job(request: request, completion: { collector.complete(index, $0) }, cancellation: collector.cancellation)
                })
            }
        } onCancel: {
            worker.cancel(collector.cancellation)
        }
    }

    /// curl easy handles made so far. Each transfer takes one from the pool (made when none is
    /// free) and gives it back reset (`curl_easy_reset`): no option of one transfer reaches the next.
    public var easyHandlesMade: Int { worker.handlesMade }

    /// Stops the worker thread: requests not yet started complete with `attempted == false`,
    /// transfers in flight are aborted with a transport error. Later requests complete with
    /// `attempted == false` at once. Idempotent; blocks until the worker thread has exited.
    public func shutdown() {
        worker.shutdown()
    }
}

// MARK: - Internals

/// One request waiting for, or holding, a transfer slot.
struct Job: @unchecked Sendable {
    let request: HTTPRequest
    let completion: HTTPCompletion
    /// Set for `perform` calls: cancelling the calling task drops the requests not yet started.
    let cancellation: Cancellation?
}

/// A cancellation flag shared by the jobs of one `perform` call; guarded by the worker's lock.
final class Cancellation: @unchecked Sendable {
    var requested = false
}

/// Gathers the responses of one `perform` call and resumes it when the last one arrives.
final class Collector: @unchecked Sendable {
    private let lock = NSLock()
    private var responses: [HTTPResponse]
    private var remaining: Int
    let cancellation = Cancellation()
    var continuation: CheckedContinuation<[HTTPResponse], Never>?

    init(requests: [HTTPRequest]) {
        responses = requests.map { HTTPResponse.notAttempted($0.id, reason: "cancelled") }
        remaining = requests.count
    }

    func complete(_ index: Int, _ response: HTTPResponse) {
        lock.lock()
        responses[index] = response
        remaining -= 1
        let done = remaining == 0 ? continuation : nil
        if done != nil { continuation = nil }
        let result = responses
        lock.unlock()
        done?.resume(returning: result)
    }
}

/// A pooled curl easy handle plus the state of the transfer currently running on it.
final class EasyHandle {
    let easy: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>
    var job: Job?
    var requestBody: UnsafeMutablePointer<UInt8>?
    var headerList: UnsafeMutablePointer<curl_slist>?
    /// An SMTP transfer's state (see MailTransfer.swift).
    var mail: MailProgress?
    var responseBody: [UInt8] = []
    var retryAfter: String?
    var startNs: UInt64 = 0

    init?() {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        responseBody.reserveCapacity(maxCapturedBodyBytes)
    }

    /// A copy of `body` that lives until `recycle()`: curl reads it after `configure` returned.
    func keep(_ body: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, body.count))
        body.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { buffer.update(from: base, count: body.count) }
        }
        requestBody = buffer
        return buffer
    }

    /// Frees per-transfer resources and resets the handle for reuse.
    func recycle() {
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        if let recipients = mail?.recipientList { curl_slist_free_all(recipients) }
        mail = nil
        requestBody?.deallocate()
        requestBody = nil
        job = nil
        retryAfter = nil
        responseBody.removeAll(keepingCapacity: true)
        curl_easy_reset(easy)
    }

    deinit {
        recycle()
        curl_easy_cleanup(easy)
        errorBuffer.deallocate()
    }
}

private func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CURLOPT_WRITEFUNCTION: keeps the first 2 KiB, accepts (and drops) the rest so the
/// connection stays reusable.
private func curlWriteCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ nmemb: Int,
                               _ userdata: UnsafeMutableRawPointer?) -> Int {
    let total = size * nmemb
    guard let ptr, let userdata else { return total }
    let handle = Unmanaged<EasyHandle>.fromOpaque(userdata).takeUnretainedValue()
    let room = maxCapturedBodyBytes - handle.responseBody.count
    if room > 0 {
        let take = min(room, total)
        ptr.withMemoryRebound(to: UInt8.self, capacity: take) {
            handle.responseBody.append(contentsOf: UnsafeBufferPointer(start: $0, count: take))
        }
    }
    return total
}

/// CURLOPT_HEADERFUNCTION: captures `Retry-After` of the final response.
private func curlHeaderCallback(_ ptr: UnsafeMutablePointer<CChar>?, _ size: Int, _ nmemb: Int,
                                _ userdata: UnsafeMutableRawPointer?) -> Int {
    let total = size * nmemb
    guard let ptr, let userdata else { return total }
    let handle = Unmanaged<EasyHandle>.fromOpaque(userdata).takeUnretainedValue()
    ptr.withMemoryRebound(to: UInt8.self, capacity: total) { base in
        let line = UnsafeBufferPointer(start: base, count: total)
        if line.starts(with: "HTTP/".utf8) {
            handle.retryAfter = nil  // new (e.g. after 1xx) response: forget earlier headers
            return
        }
        let name = "retry-after:".utf8
        guard line.count > name.count else { return }
        for (i, expected) in name.enumerated() {
            var c = line[i]
            if c >= 65 && c <= 90 { c += 32 }  // ASCII lowercase
            if c != expected { return }
        }
        let value = String(decoding: line[name.count...], as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        handle.retryAfter = value
    }
    return total
}

/// Owns the curl multi handle and the thread that drives it.
final class CurlWorker: @unchecked Sendable {
    private let concurrency: Int
    private let timeoutMs: Int64
    private let connectTimeoutMs: Int64

    // Guarded by `lock`.
    private let lock = NSLock()
    private var incoming: [Job] = []
    private var cancelRequested = false  // some perform call was cancelled since the worker last looked
    private var stopping = false
    private var multi: UnsafeMutableRawPointer?  // nil once the worker has cleaned up
    private var threadStarted = false
    private var easyHandlesMade = 0
    private let exited = DispatchSemaphore(value: 0)

    // Worker-thread only.
    private var waiting = Deque<Job>()
    private var pool: [EasyHandle] = []
    private var inFlight = 0
    private var handles: [EasyHandle] = []  // keeps every handle alive
    private var done: [(Job, HTTPResponse)] = []  // finished in the current pass, not yet handed over

    init(concurrency: Int, timeoutMs: Int64, connectTimeoutMs: Int64) {
        self.concurrency = concurrency
        self.timeoutMs = timeoutMs
        self.connectTimeoutMs = connectTimeoutMs
        if curlGlobalInitOK, let m = curl_multi_init() {
            _ = ccurl_multi_setopt_long(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, concurrency)
            _ = ccurl_multi_setopt_long(m, CURLMOPT_MAXCONNECTS, concurrency)
            multi = m
        }
    }

    /// Hands jobs to the worker thread (starting it lazily).
    func submit(_ jobs: [Job]) {
        lock.lock()
        guard let multi, !stopping else {
            lock.unlock()
            for job in jobs { job.completion(.notAttempted(job.request.id, reason: "transport shut down")) }
            return
        }
        incoming.append(contentsOf: jobs)
        if !threadStarted {
            threadStarted = true
            let thread = Thread { [self] in run() }
            thread.name = "paywatch-curl"
            thread.start()
        } else {
            curl_multi_wakeup(multi)
        }
        lock.unlock()
    }

    /// Marks a `perform` call cancelled; its unstarted requests complete as not attempted.
    func cancel(_ cancellation: Cancellation) {
        lock.lock()
        cancellation.requested = true
        cancelRequested = true
        if let multi, threadStarted { curl_multi_wakeup(multi) }
        lock.unlock()
    }

    func shutdown() {
        lock.lock()
        if stopping {
            lock.unlock()
            return
        }
        stopping = true
        let started = threadStarted
        if let multi, started { curl_multi_wakeup(multi) }
        if !started, let m = multi {
            multi = nil
            curl_multi_cleanup(m)
        }
        lock.unlock()
        if started && !Thread.current.isPaywatchCurlWorker {
            exited.wait()
        }
    }

    // MARK: Worker thread

    private func run() {
        Thread.current.threadDictionary[workerKey] = true
        lock.lock()
        let m = multi
        lock.unlock()
        guard let m else {
            exited.signal()
            return
        }

        while true {
            // 1. Pick up new jobs, cancellations and shutdown.
            lock.lock()
            let stop = stopping
            let arrived = incoming
            incoming.removeAll()
            var cancelled: [Job] = []
            if cancelRequested || arrived.contains(where: { $0.cancellation?.requested == true }) {
                cancelRequested = false
                waiting.append(contentsOf: arrived)
                var kept = Deque<Job>()
                for job in waiting {
                    if job.cancellation?.requested == true { cancelled.append(job) } else { kept.append(job) }
                }
                waiting = kept
            } else {
                waiting.append(contentsOf: arrived)
            }
            lock.unlock()
            for job in cancelled { job.completion(.notAttempted(job.request.id, reason: "cancelled")) }
            if stop { break }

            // 2. Start transfers up to the concurrency limit, in arrival order.
            while inFlight < concurrency, let job = waiting.popFirst() {
                start(job, multi: m)
            }

            // 3. Drive curl and hand over each finished transfer at once.
            var running: Int32 = 0
            _ = curl_multi_perform(m, &running)
            var finished = 0
            var queued: Int32 = 0
            while let msg = curl_multi_info_read(m, &queued) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
                finish(easy, result: msg.pointee.data.result, multi: m)
                finished += 1
            }
            // Hand over everything that ended in this pass back to back, so a consumer that was
            // woken by the first finds the others waiting.
            for (job, response) in done { job.completion(response) }
            done.removeAll(keepingCapacity: true)
            if finished > 0 && !waiting.isEmpty { continue }

            // 4. Sleep until socket activity, a curl timeout, or a wakeup from submit/cancel/shutdown.
            // curl shortens the wait for its own timers; idle, the thread wakes every 10 s at most.
            var numfds: Int32 = 0
            _ = curl_multi_poll(m, nil, 0, 10_000, &numfds)
        }

        // Shutdown: abort everything still outstanding.
        var completions: [(Job, HTTPResponse)] = []
        for handle in handles {
            guard let job = handle.job else { continue }
            curl_multi_remove_handle(m, handle.easy)
            completions.append((job, HTTPResponse(id: job.request.id, status: nil, error: "transport shut down",
                                                  attempted: true, durationMs: elapsedMs(handle))))
            handle.recycle()
        }
        lock.lock()
        waiting.append(contentsOf: incoming)
        incoming.removeAll()
        multi = nil
        curl_multi_cleanup(m)
        lock.unlock()
        for job in waiting { completions.append((job, .notAttempted(job.request.id, reason: "transport shut down"))) }
        waiting.removeAll()
        handles.removeAll()
        pool.removeAll()
        for (job, response) in completions { job.completion(response) }
        exited.signal()
    }

    private func elapsedMs(_ handle: EasyHandle) -> Int64 {
        Int64((monotonicNs() &- handle.startNs) / 1_000_000)
    }

    private func acquireHandle() -> EasyHandle? {
        if let handle = pool.popLast() { return handle }
        guard let handle = EasyHandle() else { return nil }
        handles.append(handle)
        lock.withLock { easyHandlesMade += 1 }
        return handle
    }

    /// Easy handles made so far: every other transfer ran on a pooled one, reset in between.
    var handlesMade: Int { lock.withLock { easyHandlesMade } }

    /// Configures a pooled easy handle for `job` and adds it to the multi handle.
    private func start(_ job: Job, multi m: UnsafeMutableRawPointer) {
        let request = job.request
        guard let handle = acquireHandle() else {
            job.completion(HTTPResponse(id: request.id, status: nil, error: "curl_easy_init failed"))
            return
        }
        if let problem = configure(handle, request) {
            handle.recycle()
            pool.append(handle)
            job.completion(HTTPResponse(id: request.id, status: nil, error: problem))
            return
        }
        handle.job = job
        handle.startNs = monotonicNs()
        if curl_multi_add_handle(m, handle.easy) != CURLM_OK {
            handle.recycle()
            pool.append(handle)
            job.completion(HTTPResponse(id: request.id, status: nil, error: "curl_multi_add_handle failed"))
            return
        }
        inFlight += 1
    }

    /// Sets all options; returns an error text (safe to log) if the request is invalid.
    private func configure(_ handle: EasyHandle, _ request: HTTPRequest) -> String? {
        let e = handle.easy
        let opaque = Unmanaged.passUnretained(handle).toOpaque()
        let method = request.method.uppercased()
        if request.mail == nil {
            guard !method.isEmpty, method.utf8.allSatisfy({ ($0 >= 65 && $0 <= 90) || $0 == 45 || $0 == 95 }) else {
                return "invalid request: bad HTTP method"
            }
        }
        guard !request.url.utf8.contains(0) else { return "invalid request: bad URL" }

        handle.errorBuffer[0] = 0
        _ = ccurl_easy_setopt_long(e, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_pointer(e, CURLOPT_ERRORBUFFER, handle.errorBuffer)
        _ = ccurl_easy_setopt_long(e, CURLOPT_TIMEOUT_MS, Int(timeoutMs))
        _ = ccurl_easy_setopt_long(e, CURLOPT_CONNECTTIMEOUT_MS, Int(connectTimeoutMs))
        _ = ccurl_easy_setopt_pointer(e, CURLOPT_PRIVATE, opaque)
        _ = ccurl_easy_setopt_callback(e, CURLOPT_WRITEFUNCTION, curlWriteCallback)
        _ = ccurl_easy_setopt_pointer(e, CURLOPT_WRITEDATA, opaque)
        if request.url.withCString({ ccurl_easy_setopt_string(e, CURLOPT_URL, $0) }) != CURLE_OK {
            return "invalid request: bad URL"
        }
        if let problem = setCAFile(e, request.caFile) { return problem }
        if let mail = request.mail { return configureMail(handle, request, mail) }

        _ = ccurl_easy_setopt_string(e, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = ccurl_easy_setopt_long(e, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_easy_setopt_long(e, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        _ = ccurl_easy_setopt_callback(e, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        _ = ccurl_easy_setopt_pointer(e, CURLOPT_HEADERDATA, opaque)

        switch method {
        case "GET":
            _ = ccurl_easy_setopt_long(e, CURLOPT_HTTPGET, 1)
        case "HEAD":
            _ = ccurl_easy_setopt_long(e, CURLOPT_NOBODY, 1)
        default:
            // POST-style upload from a stable copy of the body (never read from stdin).
            let count = request.body.count
            let buffer = handle.keep(request.body)
            _ = ccurl_easy_setopt_long(e, CURLOPT_POST, 1)
            _ = ccurl_easy_setopt_off_t(e, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(count))
            _ = ccurl_easy_setopt_pointer(e, CURLOPT_POSTFIELDS, buffer)
            if method != "POST" {
                _ = ccurl_easy_setopt_string(e, CURLOPT_CUSTOMREQUEST, method)
            }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        var hasExpect = false
        for (name, value) in request.headers {
            let bad = name.isEmpty || name.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 58 || $0 == 0 })
                || value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 })
            if bad {
                if let list { curl_slist_free_all(list) }
                return "invalid request: header name or value contains forbidden characters"
            }
            if name.caseInsensitiveCompare("Expect") == .orderedSame { hasExpect = true }
            // "Name;" is curl's syntax for sending a header with an empty value.
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            guard let appended = curl_slist_append(list, line) else {
                if let list { curl_slist_free_all(list) }
                return "curl_slist_append failed"
            }
            list = appended
        }
        if !hasExpect, let appended = curl_slist_append(list, "Expect:") {
            list = appended  // suppress "Expect: 100-continue" round trips for larger bodies
        }
        handle.headerList = list
        if let list { _ = ccurl_easy_setopt_pointer(e, CURLOPT_HTTPHEADER, list) }
        return nil
    }

    /// Builds the response for a finished transfer and returns its handle to the pool.
    private func finish(_ easy: UnsafeMutableRawPointer, result: CURLcode, multi m: UnsafeMutableRawPointer) {
        var raw: UnsafeMutableRawPointer?
        _ = ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &raw)
        curl_multi_remove_handle(m, easy)
        guard let raw else { return }
        let handle = Unmanaged<EasyHandle>.fromOpaque(raw).takeUnretainedValue()
        inFlight -= 1
        guard let job = handle.job else {
            handle.recycle()
            pool.append(handle)
            return
        }
        var status: Int?
        var errorText: String?
        if handle.mail != nil {
            // SMTP: the last reply code matters most when curl gave up because of it.
            var code = 0
            _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            status = code > 0 ? code : nil
            if result != CURLE_OK { errorText = curlErrorText(result, handle) }
        } else if result == CURLE_OK {
            var code = 0
            _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &code)
            status = code
        } else {
            errorText = curlErrorText(result, handle)
        }
        let response = HTTPResponse(
            id: job.request.id, status: status, retryAfter: handle.retryAfter,
            body: String(decoding: handle.responseBody, as: UTF8.self),
            error: errorText, attempted: true, durationMs: elapsedMs(handle),
            mail: handle.mail.map { $0.reply(result: result) })
        handle.recycle()
        pool.append(handle)
        done.append((job, response))
    }
}

/// curl's own error text: it names hosts, ports and SMTP reply codes, never request headers,
/// bodies or credentials (those are set as options, never put into the URL). A peer that failed
/// verification (an unknown CA, a name the certificate does not hold) or an unusable CA file is
/// said to be a TLS verification failure, with what to check.
private func curlErrorText(_ result: CURLcode, _ handle: EasyHandle) -> String {
    let detail = String(cString: handle.errorBuffer)
    let summary = String(cString: curl_easy_strerror(result))
    let text = "curl error \(result.rawValue): " + (detail.isEmpty ? summary : detail)
    switch result {
    case CURLE_PEER_FAILED_VERIFICATION:
        return "TLS verification failed, certificate refused (\(text)): a server with a private CA needs ca_file"
    case CURLE_SSL_CACERT_BADFILE:
        return "TLS verification impossible, the CA file cannot be used (\(text)): check ca_file"
    default:
        return text
    }
}

/// CURLOPT_CAINFO for `ca_file`. Verification itself is never turned off (curl's defaults,
/// restored by every `curl_easy_reset`, verify both the peer and the host name).
func setCAFile(_ easy: UnsafeMutableRawPointer, _ caFile: String?) -> String? {
    guard let caFile else { return nil }
    guard !caFile.isEmpty, !caFile.utf8.contains(0),
          caFile.withCString({ ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, $0) }) == CURLE_OK else {
        return "invalid request: bad CA file name"
    }
    return nil
}

private let workerKey = "paywatch.curl.worker"

extension Thread {
    /// True on the transport's own worker thread (shutdown from there must not wait for itself).
    fileprivate var isPaywatchCurlWorker: Bool {
        threadDictionary[workerKey] as? Bool ?? false
    }
}
