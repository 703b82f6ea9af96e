import CTLS
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Certificates for TLS tests, made with the `openssl` command-line tool: a private CA, a server
/// certificate it signs for `127.0.0.1` and `localhost`, one it signs for another host name only
/// (`elsewhere.invalid`: a client connecting to 127.0.0.1 must refuse it), and an unrelated second
/// CA (trusting it instead of the first must fail). EC P-256 keys: made in milliseconds.
public struct TestPKI: Sendable {
    /// The folder holding every file.
    public let directory: String
    /// PEM of the CA that signed ``serverCertificate`` and ``wrongHostCertificate``: the `ca_file`.
    public let caFile: String
    /// PEM of a CA that signed nothing the servers present.
    public let otherCAFile: String
    /// For 127.0.0.1 and localhost, signed by ``caFile``.
    public let serverCertificate: String
    public let serverKey: String
    /// For `elsewhere.invalid` only, signed by ``caFile``.
    public let wrongHostCertificate: String
    public let wrongHostKey: String

    /// The files in `directory`, made there unless `ca.pem` is already there.
    public init(directory: String) throws {
        self.directory = directory
        caFile = directory + "/ca.pem"
        otherCAFile = directory + "/other-ca.pem"
        serverCertificate = directory + "/server.pem"
        serverKey = directory + "/server.key"
        wrongHostCertificate = directory + "/wrong-host.pem"
        wrongHostKey = directory + "/wrong-host.key"
        if FileManager.default.fileExists(atPath: caFile) && FileManager.default.fileExists(atPath: wrongHostKey) { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.makeCA(directory, "ca", "paywatch test CA")
        try Self.makeCA(directory, "other-ca", "paywatch other test CA")
        try Self.issue(directory, "server", commonName: "127.0.0.1", altNames: "IP:127.0.0.1,DNS:localhost")
        try Self.issue(directory, "wrong-host", commonName: "elsewhere.invalid", altNames: "DNS:elsewhere.invalid")
    }

    /// One set per `swift test` run, in `$TMPDIR/paywatch-test-pki/run-PID` (earlier runs' removed).
    public static func shared() throws -> TestPKI {
        try sharedPKI.get()
    }

    private static let sharedPKI: Result<TestPKI, FakeGatewayError> = {
        let dir = TestLogs.runFolder(in: FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-test-pki").path)
        do {
            return .success(try TestPKI(directory: dir))
        } catch let error as FakeGatewayError {
            return .failure(error)
        } catch {
            return .failure(FakeGatewayError(description: "\(error)"))
        }
    }()

    /// A server context presenting the certificate for 127.0.0.1 (or, with `wrongHost`, the one for
    /// another name).
    public func serverContext(wrongHost: Bool = false) throws -> TLSServerContext {
        wrongHost ? try TLSServerContext(certificateFile: wrongHostCertificate, keyFile: wrongHostKey)
            : try TLSServerContext(certificateFile: serverCertificate, keyFile: serverKey)
    }

    private static func makeCA(_ dir: String, _ name: String, _ commonName: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-days", "30", "-subj", "/CN=\(commonName)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    private static func issue(_ dir: String, _ name: String, commonName: String, altNames: String) throws {
        let ext = "\(dir)/\(name).ext"
        try Data("""
            subjectAltName = \(altNames)
            basicConstraints = critical,CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = serverAuth

            """.utf8).write(to: URL(fileURLWithPath: ext))
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(commonName)"])
        try openssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.pem", "-CAkey", "\(dir)/ca.key",
                     "-CAcreateserial", "-out", "\(dir)/\(name).pem", "-days", "30", "-extfile", ext])
    }

    private static func openssl(_ arguments: [String]) throws {
        guard let tool = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/bin/openssl"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw FakeGatewayError(description: "the openssl command is not installed")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FakeGatewayError(description: "openssl \(arguments.first ?? "") failed: \(String(decoding: text, as: UTF8.self))")
        }
    }
}

/// An OpenSSL server context (certificate and key, TLS 1.2 and up) shared by the connections of a
/// fake server, counting the handshakes it completes: keep-alive shows as one per connection.
public final class TLSServerContext: @unchecked Sendable {
    let context: OpaquePointer
    private let lock = NSLock()
    private var completed = 0
    private var resumed = 0
    private var failed = 0

    /// - Throws: ``FakeGatewayError`` when OpenSSL cannot load the files.
    public init(certificateFile: String, keyFile: String) throws {
        // OpenSSL writes on the socket with write(2): a client that went away would raise SIGPIPE
        // and end the whole process. Ignored here, it is an EPIPE error like any other.
        signal(SIGPIPE, SIG_IGN)
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw FakeGatewayError(description: "SSL_CTX_new failed") }
        guard ctls_ctx_set_min_tls12(ctx) == 1,
              SSL_CTX_use_certificate_chain_file(ctx, certificateFile) == 1,
              SSL_CTX_use_PrivateKey_file(ctx, keyFile, SSL_FILETYPE_PEM) == 1,
              SSL_CTX_check_private_key(ctx) == 1 else {
            let why = Self.lastError()
            SSL_CTX_free(ctx)
            throw FakeGatewayError(description: "cannot load \(certificateFile) / \(keyFile): \(why)")
        }
        context = ctx
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// Handshakes completed (full or resumed) since start or `resetCounts()`.
    public var handshakes: Int { lock.withLock { completed } }
    /// Of those, the ones that resumed an earlier session (abbreviated handshake).
    public var resumedHandshakes: Int { lock.withLock { resumed } }
    /// Handshakes the client (or the server) gave up on: an untrusted certificate, a wrong name.
    public var failedHandshakes: Int { lock.withLock { failed } }

    public func resetCounts() {
        lock.withLock {
            completed = 0
            resumed = 0
            failed = 0
        }
    }

    /// Runs the server side of a handshake on `fd` (blocking). Nil when it fails.
    func accept(_ fd: Int32) -> OpaquePointer? {
        guard let ssl = SSL_new(context) else { return nil }
        ctls_set_auto_retry(ssl)
        guard SSL_set_fd(ssl, fd) == 1, SSL_accept(ssl) == 1 else {
            ERR_clear_error()
            SSL_free(ssl)
            lock.withLock { failed += 1 }
            return nil
        }
        let wasResumed = SSL_session_reused(ssl) == 1
        lock.withLock {
            completed += 1
            if wasResumed { resumed += 1 }
        }
        return ssl
    }

    static func lastError() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        ctls_last_error(&buffer, buffer.count)
        return String(cString: buffer)
    }
}

/// One accepted connection of a fake server: plain bytes on the socket, or TLS once
/// `startTLS` succeeded (at once for implicit TLS, after `STARTTLS` for SMTP).
final class LoopbackConnection {
    let fd: Int32
    private var ssl: OpaquePointer?

    init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        if let ssl {
            SSL_shutdown(ssl)  // close_notify; the socket itself is closed by the listener
            SSL_free(ssl)
        }
    }

    var isEncrypted: Bool { ssl != nil }

    /// The handshake, server side. False when it failed (the connection is then useless).
    func startTLS(_ context: TLSServerContext) -> Bool {
        guard ssl == nil else { return false }
        ssl = context.accept(fd)
        return ssl != nil
    }

    /// Reads what is available into `buffer`; the count read, or <= 0 when the peer closed or on error.
    func receive(into buffer: inout [UInt8]) -> Int {
        while true {
            let n: Int
            if let ssl {
                n = buffer.withUnsafeMutableBytes { Int(SSL_read(ssl, $0.baseAddress, Int32($0.count))) }
                if n <= 0 { ERR_clear_error() }
                return n
            }
            n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    /// Writes all bytes; false if the peer went away.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        guard let ssl else { return sendAll(fd, bytes) }
        if bytes.isEmpty { return true }
        return bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Int(SSL_write(ssl, raw.baseAddress! + offset, Int32(raw.count - offset)))
                if n <= 0 {
                    ERR_clear_error()
                    return false
                }
                offset += n
            }
            return true
        }
    }
}
