import _CryptoExtras
import Crypto
import Foundation
import PaywatchCore

/// A Google service account, as its JSON key file holds it (only the fields FCM needs).
public struct ServiceAccount: Sendable, Decodable {
    public var projectID: String
    public var clientEmail: String
    public var privateKey: String
    public var tokenURI: String

    enum CodingKeys: String, CodingKey {
        case projectID = "project_id", clientEmail = "client_email", privateKey = "private_key", tokenURI = "token_uri"
    }

    /// Reads the key file's bytes; a problem is named by field, never by content (the file holds a private key).
    public static func parse(_ bytes: [UInt8]) -> Result<ServiceAccount, ProviderError> {
        // (Whether a plain http:// token_uri may be used is the configuration's rule, as for every
        // URL: loopback only, unless allow_insecure_http. The assertion is a credential.)
        guard let account = try? JSONDecoder().decode(ServiceAccount.self, from: Data(bytes)) else {
            return .failure(ProviderError("not a service account JSON key (project_id, client_email, private_key, token_uri)"))
        }
        guard (try? _RSA.Signing.PrivateKey(pemRepresentation: account.privateKey)) != nil else {
            return .failure(ProviderError("private_key is not an RSA private key in PEM form"))
        }
        guard ["https://", "http://"].contains(where: account.tokenURI.lowercased().hasPrefix) else {
            return .failure(ProviderError("token_uri must be an https:// URL"))
        }
        return .success(account)
    }
}

/// An OAuth2 access token for a service account (RFC 7523 JWT bearer grant): an RS256-signed JWT
/// exchanged at the account's `token_uri`, cached until a few minutes before it expires. The
/// exchange runs in the background on a transport of its own; a message that finds no valid token
/// is retried (``ProviderError/transient``) instead of waiting in the delivery loop. The exchange
/// trusts what the channel's messages trust: its `ca_file`, or the system's CAs (verification on).
public final class AccessTokenSource: @unchecked Sendable {
    public static let scope = "https://www.googleapis.com/auth/firebase.messaging"
    private let account: ServiceAccount
    private let key: _RSA.Signing.PrivateKey
    private let timeoutMs: Int64
    /// The channel's `ca_file`, set on the exchange's request.
    let caFile: String?
    /// Made at the first exchange: a provider built only to check the configuration starts no thread.
    private var transport: HTTPTransport?
    private var stopped = false
    private let now: @Sendable () -> Int64
    private let lock = NSLock()
    private var token: (value: String, expiresAtMs: Int64, obtainedAtMs: Int64)?
    private var refreshing = false
    private var lastError: String?
    /// After a failed exchange, none before this (1 s, doubling to a minute): a token endpoint that
    /// is down is not asked once per message.
    private var notBeforeMs: Int64 = 0
    private var failures = 0

    public init(account: ServiceAccount, timeoutMs: Int64, caFile: String? = nil,
                now: @escaping @Sendable () -> Int64) throws(ProviderError) {
        guard let key = try? _RSA.Signing.PrivateKey(pemRepresentation: account.privateKey) else {
            throw ProviderError("private_key is not an RSA private key in PEM form")
        }
        self.account = account
        self.key = key
        self.now = now
        self.timeoutMs = timeoutMs
        self.caFile = caFile
    }

    /// The token to send now, or nil (a refresh is then under way). A token with less than 5
    /// minutes left is still used while a new one is fetched.
    public func current() -> String? {
        let at = now()
        let (value, refresh) = lock.withLock { () -> (String?, Bool) in
            let valid = token.flatMap { $0.expiresAtMs > at + 60_000 ? $0.value : nil }
            let stale = token.map { $0.expiresAtMs <= at + 300_000 } ?? true
            let start = stale && !refreshing && at >= notBeforeMs
            if start { refreshing = true }
            return (valid, start)
        }
        if refresh { Task { await self.refresh() } }
        return value
    }

    /// The token was refused (HTTP 401) by a request sent at `sentAtMs`: fetch a new one, unless
    /// the token in hand was obtained after that request left (a late answer to an old token).
    public func invalidate(sentAt sentAtMs: Int64) {
        lock.withLock {
            if let current = token, current.obtainedAtMs <= sentAtMs { token = nil }
        }
    }

    func nowMs() -> Int64 { now() }

    /// The token in hand, if any, without starting a refresh: scrubbed from answers.
    var held: String? { lock.withLock { token?.value } }

    /// Why the last exchange failed, if it did: part of the retry reason, never the assertion or a token.
    public var failure: String? { lock.withLock { lastError } }

    public func shutdown() {
        let made = lock.withLock { () -> HTTPTransport? in
            stopped = true
            return transport
        }
        made?.shutdown()
    }

    /// The exchange's transport, made once; nil after shutdown.
    private func exchangeTransport() -> HTTPTransport? {
        lock.withLock {
            if stopped { return nil }
            if transport == nil { transport = HTTPTransport(concurrency: 1, timeoutMs: timeoutMs) }
            return transport
        }
    }

    /// The signed assertion: `{"alg":"RS256","typ":"JWT"}` and the claims `iss`, `scope`, `aud`,
    /// `iat`, `exp` (one hour), base64url without padding.
    func assertion(issuedAt seconds: Int64) throws -> String {
        var claims = JSONObjectWriter()
        claims.add("iss", account.clientEmail)
        claims.add("scope", Self.scope)
        claims.add("aud", account.tokenURI)
        claims.add("iat", seconds)
        claims.add("exp", seconds + 3_600)
        let input = base64URL(Array(#"{"alg":"RS256","typ":"JWT"}"#.utf8)) + "." + base64URL(Array(claims.finish().utf8))
        let signature = try key.signature(for: Array(input.utf8), padding: .insecurePKCS1v1_5)
        return input + "." + base64URL(Array(signature.rawRepresentation))
    }

    private func refresh() async {
        let issued = now() / 1_000
        var result: Result<(String, Int64), ProviderError>
        do {
            let form = formEncoded([("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                                    ("assertion", try assertion(issuedAt: issued))])
            let request = HTTPRequest(id: 0, url: account.tokenURI, method: "POST",
                                      headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8),
                                      caFile: caFile)
            if let transport = exchangeTransport() {
                result = Self.exchanged(await transport.perform([request])[0])
            } else {
                result = .failure(ProviderError("the provider is shut down"))
            }
        } catch {
            result = .failure(ProviderError("cannot sign the token request: \(error)"))
        }
        lock.withLock {
            refreshing = false
            switch result {
            case .success(let (value, expiresIn)):
                token = (value, issued * 1_000 + expiresIn * 1_000, now())
                lastError = nil
                failures = 0
                notBeforeMs = 0
            case .failure(let why):
                lastError = why.description
                failures += 1
                notBeforeMs = now() + min(60_000, 1_000 << min(failures - 1, 6))
            }
        }
    }

    /// The access token and its lifetime (seconds) from the token endpoint's answer.
    static func exchanged(_ response: HTTPResponse) -> Result<(String, Int64), ProviderError> {
        guard let status = response.status else { return .failure(ProviderError("token exchange: \(response.error ?? "no answer")")) }
        guard (200...299).contains(status),
              let object = jsonObject(response.body),
              let value = object["access_token"] as? String, !value.isEmpty
        else {
            // The error body of an OAuth server names the error (`invalid_grant`), not a secret.
            let error = jsonObject(response.body)?["error"] as? String
            return .failure(ProviderError("token exchange: HTTP \(status)" + (error.map { " \($0)" } ?? "")))
        }
        // Within 2 minutes and a day: a token is only ever used until a minute before it expires,
        // and a number from outside must not overflow the arithmetic.
        let expiresIn = (object["expires_in"] as? Int).map { Int64(clamping: $0) } ?? 3_600
        return .success((value, min(max(120, expiresIn), 86_400)))
    }
}

/// `provider = "fcm"`: Firebase Cloud Messaging HTTP v1. POST
/// `{base_url}/v1/projects/{project_id}/messages:send` with an OAuth2 bearer token, and the message
/// `{"message": {"token", "notification": {"title", "body"}, "data": {facts as strings}}}`.
public struct FCMProvider: DeliveryProvider {
    public let name = "fcm"
    public var baseURL: String
    public let account: ServiceAccount
    let tokens: AccessTokenSource

    public static let defaultBaseURL = "https://fcm.googleapis.com"

    /// - Parameter caFile: the channel's `ca_file`: trusted by the token exchange at `token_uri`
    ///   (the messages themselves get it from the channel, as every provider's requests do).
    public init(account: ServiceAccount, baseURL: String? = nil, timeoutMs: Int64, caFile: String? = nil,
                now: @escaping @Sendable () -> Int64) throws(ProviderError) {
        self.account = account
        self.baseURL = trimmingSlashes(baseURL ?? Self.defaultBaseURL)
        tokens = try AccessTokenSource(account: account, timeoutMs: timeoutMs, caFile: caFile, now: now)
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        guard !message.to.isEmpty, message.to.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw ProviderError("not a registration token")
        }
        guard let token = tokens.current() else {
            throw ProviderError.transient("waiting for an FCM access token" + (tokens.failure.map { " (\($0))" } ?? ""))
        }
        var notification = JSONObjectWriter()
        notification.add("title", message.payload.subject)
        notification.add("body", message.payload.text)
        var data = JSONObjectWriter()
        data.add("idempotency_key", message.key)
        data.add("kind", message.kind)
        data.add("order_id", message.orderID)
        for fact in message.payload.facts { data.add(fact.name, fact.value.text) }
        var inner = "{\"token\":"
        JSONObjectWriter.appendString(message.to, to: &inner)
        inner += ",\"notification\":" + notification.finish() + ",\"data\":" + data.finish() + "}"
        let body = "{\"message\":" + inner + "}"
        let url = "\(baseURL)/v1/projects/\(OutgoingMessage.percentEncoded(account.projectID))/messages:send"
        return HTTPRequest(id: message.id, url: url, method: "POST",
                           headers: [("Content-Type", "application/json; charset=utf-8"), ("Authorization", "Bearer \(token)")],
                           body: Array(body.utf8))
    }

    /// FCM's errors (`{"error": {"code", "status", "details": [{"errorCode"}, {"fieldViolations"}]}}`):
    /// - `UNREGISTERED` is the token's fault: dead, and the address suppressed, whatever the status;
    /// - `INVALID_ARGUMENT` too when it is about `message.token` (or names no field); about anything
    ///   else (a payload too large) it is dead without blaming the address;
    /// - `SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR` (the shop's APNs or web-push credentials):
    ///   dead, the address not blamed, the access token kept;
    /// - `QUOTA_EXCEEDED`, `UNAVAILABLE`, `INTERNAL`: retried;
    /// - a refused access token (401 without another code, `UNAUTHENTICATED`): fetched anew, retried.
    /// Reasons never hold the access token, even when an answer echoes it.
    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        let secrets = tokens.held.map { [$0] } ?? []
        guard let status = response.status, !(200...299).contains(status) else {
            return scrubbing(httpVerdict(response), secrets: secrets)
        }
        let error = jsonObject(response.body)?["error"] as? [String: Any]
        let details = (error?["details"] as? [[String: Any]]) ?? []
        let code = details.compactMap { $0["errorCode"] as? String }.first ?? (error?["status"] as? String) ?? ""
        let reason = "HTTP \(status)" + (code.isEmpty ? "" : " \(code)")
        switch code {
        case "UNREGISTERED":
            return .dead(reason: reason, suppress: true)
        case "INVALID_ARGUMENT":
            let fields = details.flatMap { ($0["fieldViolations"] as? [[String: Any]]) ?? [] }.compactMap { $0["field"] as? String }
            return .dead(reason: reason + (fields.isEmpty ? "" : " (\(fields.joined(separator: ", ")))"),
                         suppress: fields.isEmpty || fields.contains("message.token"))
        case "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR":
            return .dead(reason: reason, suppress: false)
        case "QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL":
            return .retry(reason: reason)
        default:
            if code == "UNAUTHENTICATED" || (code.isEmpty && status == 401) {
                tokens.invalidate(sentAt: tokens.nowMs() - response.durationMs)
                return .retry(reason: reason + " (access token refused; fetching a new one)")
            }
            return scrubbing(httpVerdict(response), secrets: secrets)
        }
    }

    public func shutdown() {
        tokens.shutdown()
    }
}

/// Base64url without padding (RFC 7515).
func base64URL(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}
