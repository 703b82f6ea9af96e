import Foundation
import PaywatchCore

/// `provider = "twilio"`: an SMS through Twilio's Programmable Messaging API, as it documents
/// "Create a Message": `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, a form body
/// (`To`, `From`, `Body`), HTTP basic auth with the account SID and its auth token.
///
/// Twilio answers `201` with the message resource, or an error object
/// `{"code": 21211, "message": "…", "more_info": "…", "status": 400}`. Its codes say more than the
/// status: 21211 (the number is invalid), 21614 (not a mobile number) and 21610 (the recipient has
/// replied STOP) will fail for every message to that number, so the address is suppressed.
public struct TwilioProvider: DeliveryProvider {
    public let name = "twilio"
    public var baseURL: String
    public var accountSID: String
    /// The sending number (E.164) or a messaging service's alphanumeric sender.
    public var from: String
    /// Read from `auth_token_file` at start; never logged.
    var authToken: String

    /// The error codes that condemn the number, not just the message.
    public static let addressCodes: Set<Int> = [21211, 21614, 21610]

    /// What a path segment may hold unencoded (RFC 3986 unreserved).
    private static let segment = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    public init(baseURL: String, accountSID: String, authToken: String, from: String) {
        self.baseURL = baseURL
        self.accountSID = accountSID
        self.authToken = authToken
        self.from = from
    }

    public func request(for message: ProviderMessage) throws(ProviderError) -> HTTPRequest {
        // Twilio takes E.164 only; anything else would cost a request to learn 21211.
        guard message.to.hasPrefix("+"), message.to.count > 1, message.to.dropFirst().allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ProviderError("twilio sends SMS to E.164 numbers (+ and digits only)")
        }
        let path = accountSID.addingPercentEncoding(withAllowedCharacters: Self.segment) ?? accountSID
        let credentials = Data("\(accountSID):\(authToken)".utf8).base64EncodedString()
        let body = formEncoded([("To", message.to), ("From", from), ("Body", message.payload.text)])
        return HTTPRequest(
            id: message.id, url: trimmingSlashes(baseURL) + "/2010-04-01/Accounts/\(path)/Messages.json", method: "POST",
            headers: [
                ("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json"),
                ("Authorization", "Basic \(credentials)"), userAgent,
            ],
            body: Array(body.utf8))
    }

    public func verdict(for response: HTTPResponse) -> ProviderVerdict {
        guard let status = response.status, !(200...299).contains(status) else {
            return scrubbing(httpVerdict(response), secrets: secrets)
        }
        let error = jsonObject(response.body)
        let code = error?["code"] as? Int
        let detail = [code.map { "Twilio error \($0)" }, error?["message"] as? String].compactMap { $0 }.joined(separator: ": ")
        let reason = providerReason(status, detail.isEmpty ? response.body : detail, secrets: secrets)
        if let code, Self.addressCodes.contains(code) { return .dead(reason: reason, suppress: true) }
        if status == 429 || (500...599).contains(status) { return .retry(reason: reason) }
        return .dead(reason: reason, suppress: false)
    }

    /// What an answer must never carry into a reason: the token, and the basic credentials built from it.
    private var secrets: [String] {
        [authToken, Data("\(accountSID):\(authToken)".utf8).base64EncodedString()]
    }
}
