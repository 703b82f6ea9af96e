import Mustache

/// The customer message templates (Mustache, rendered by swift-mustache), compiled once: the
/// built-in ones in zh-CN and en, and those of `[templates] dir` that override them by name.
///
/// A template is named `KIND.CHANNEL.LOCALE` (the body) or `KIND.email.LOCALE.subject` (the
/// subject); in the dir the file is that name plus `.mustache`. Rendering never fails: every
/// template was compiled and its variables checked against ``variables`` when the value was made.
///
/// Escaping: messages are plain text (SMS, push, e-mail text), so nothing is HTML-escaped —
/// `{{x}}` and `{{{x}}}` render the same (every template is compiled as `CONTENT_TYPE: TEXT`).
public struct Templates: Sendable, Hashable {
    /// The kinds that are written from templates (ops kinds keep their code-built English texts).
    public static let kinds: [NotificationKind] = NotificationKind.allCases.filter { !$0.isOps }
    /// The channels that have templates of their own; a customer message on another channel
    /// uses the `sms` one.
    public static let channels = ["sms", "email", "push"]
    /// The locales of the built-in templates.
    public static let builtInLocales = ["zh-CN", "en"]
    /// The names a template may use. `refund_status` also has the boolean children
    /// `refund_status.requested`, `.processing`, `.succeeded` and `.failed` (any other status).
    public static let variables: Set<String> = [
        "order_id", "customer_name", "amount_due", "amount_paid", "amount_remaining", "currency", "expires_at",
        "pay_url", "failure_reason_text", "installment_seq", "installment_amount", "installment_due_at",
        "refund_amount", "refund_status", "support_contact",
    ]
    static let refundStatusChildren: Set<String> = ["requested", "processing", "succeeded", "failed"]

    /// A template that does not compile or names an unknown variable: a configuration error.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// The template file (or `built-in NAME`).
        public var file: String
        public var line: Int?
        public var message: String
        public var description: String {
            "\(file)\(line.map { ":\($0)" } ?? ""): template: \(message)"
        }
    }

    private let compiled: [String: MustacheTemplate]
    /// Name → a number shared by the templates whose sources are equal (the built-in sms and
    /// push ones): what ``RenderMemo`` keys texts by.
    private let textIDs: [String: Int]
    /// Name → source, for equality (compiled templates are not comparable).
    private let sources: [String: String]
    /// `[templates] default_locale`.
    public private(set) var defaultLocale: String

    /// The same templates with another default locale.
    public func withDefaultLocale(_ locale: String) -> Templates {
        var copy = self
        copy.defaultLocale = locale
        return copy
    }

    /// The built-in templates only, default locale zh-CN.
    public static let builtIn: Templates = {
        do {
            return try Templates(overrides: [:], defaultLocale: "zh-CN")
        } catch {
            preconditionFailure("a built-in template does not compile: \(error)")
        }
    }()

    /// The built-in templates with those of `overrides` (name → file and source) in their place
    /// or added (other locales). Throws the first problem: a file name that is no template name,
    /// a syntax error, an unknown variable.
    public init(overrides: [String: (file: String, source: String)], defaultLocale: String) throws(Problem) {
        var sources: [String: (file: String, source: String)] = [:]
        for (name, source) in BuiltInTemplates.all {
            sources[name] = ("built-in \(name)", source)
        }
        for name in overrides.keys.sorted() {
            guard let value = overrides[name] else { continue }
            guard Templates.isTemplateName(name) else {
                throw Problem(file: value.file, line: nil, message: """
                    not a template name: expected KIND.CHANNEL.LOCALE.mustache or KIND.email.LOCALE.subject.mustache \
                    (KIND one of \(Templates.kinds.map(\.rawValue).joined(separator: ", ")); CHANNEL one of \
                    \(Templates.channels.joined(separator: ", ")))
                    """)
            }
            sources[name] = value
        }
        var compiled: [String: MustacheTemplate] = [:]
        for name in sources.keys.sorted() {
            guard let (file, source) = sources[name] else { continue }
            compiled[name] = try Templates.compile(source, file: file)
        }
        self.compiled = compiled
        self.sources = sources.mapValues(\.source)
        var ids: [String: Int] = [:]
        var textIDs: [String: Int] = [:]
        for name in sources.keys.sorted() {
            guard let source = sources[name]?.source else { continue }
            textIDs[name] = ids[source] ?? { ids[source] = ids.count; return ids.count - 1 }()
        }
        self.textIDs = textIDs
        self.defaultLocale = defaultLocale
    }

    public static func == (lhs: Templates, rhs: Templates) -> Bool {
        lhs.sources == rhs.sources && lhs.defaultLocale == rhs.defaultLocale
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(sources)
        hasher.combine(defaultLocale)
    }

    /// `KIND.CHANNEL.LOCALE` or `KIND.email.LOCALE.subject` with a known kind and channel and a
    /// locale of letters, digits and `-` starting with a letter.
    public static func isTemplateName(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3 || (parts.count == 4 && parts[3] == "subject" && parts[1] == "email") else { return false }
        guard kinds.contains(where: { $0.rawValue == parts[0] }), channels.contains(parts[1]) else { return false }
        let locale = parts[2]
        guard let first = locale.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII else { return false }
        return locale.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" }
    }

    /// Compiles one template: a syntax error (with the library's line) or a tag naming anything
    /// but ``variables`` is a ``Problem``.
    static func compile(_ source: String, file: String) throws(Problem) -> MustacheTemplate {
        let template: MustacheTemplate
        do {
            // No newline after the pragma: the library's line numbers stay the file's.
            template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + source)
        } catch let error as MustacheTemplate.ParserError {
            throw Problem(file: file, line: error.context.lineNumber, message: "syntax error: \(error.error)")
        } catch {
            throw Problem(file: file, line: nil, message: "syntax error: \(error)")
        }
        if let (line, what) = unknownTag(source) {
            throw Problem(file: file, line: line, message: what)
        }
        return template
    }

    /// The first tag of `source` that names no known variable (or is a kind of tag templates do
    /// not use: partials, blocks, delimiter changes, pragmas), with its line.
    static func unknownTag(_ source: String) -> (Int, String)? {
        let chars = Array(source.unicodeScalars)
        var i = 0
        var line = 1
        while i < chars.count {
            if chars[i] == "\n" { line += 1; i += 1; continue }
            guard chars[i] == "{", i + 1 < chars.count, chars[i + 1] == "{" else { i += 1; continue }
            let tagLine = line
            var j = i + 2
            let triple = j < chars.count && chars[j] == "{"
            if triple { j += 1 }
            let close: [Unicode.Scalar] = triple ? ["}", "}", "}"] : ["}", "}"]
            var end = j
            while end + close.count <= chars.count && Array(chars[end..<end + close.count]) != close { end += 1 }
            guard end + close.count <= chars.count else { return nil }  // unclosed: the parser said so already
            var inner = String(String.UnicodeScalarView(chars[j..<end])).trimmingSpaces()
            for scalar in chars[i..<end] where scalar == "\n" { line += 1 }
            i = end + close.count
            guard let sigil = inner.unicodeScalars.first else { return (tagLine, "empty tag") }
            switch sigil {
            case "!": continue
            case "#", "^", "/", "&": inner = String(inner.dropFirst()).trimmingSpaces()
            case ">", "<", "$", "=", "%":
                return (tagLine, "{{\(sigil)…}} tags (partials, blocks, delimiters, pragmas) are not supported")
            default: break
            }
            if variables.contains(inner) { continue }
            let parts = inner.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            if parts.count == 2, parts[0] == "refund_status", refundStatusChildren.contains(parts[1]) { continue }
            return (tagLine, "unknown variable \"\(inner)\" (known: \(variables.sorted().joined(separator: ", ")))")
        }
        return nil
    }

    /// The locales tried for an order, in order: its own `locale` exactly (templates of `dir` may
    /// add locales), its language (`zh*` → zh-CN, `en*` → en), the default locale.
    public func locales(for orderLocale: String?) -> [String] {
        var result: [String] = []
        if let locale = orderLocale, !locale.isEmpty {
            result.append(locale)
            let lower = locale.lowercased()
            if lower.hasPrefix("zh") { result.append("zh-CN") } else if lower.hasPrefix("en") { result.append("en") }
        }
        result.append(defaultLocale)
        return result
    }

    /// The template `KIND.CHANNEL.L` (`subject` adds `.subject`) for the first locale L of
    /// ``locales(for:)`` that has one, and that locale.
    func template(_ kind: NotificationKind, channel: String, subject: Bool,
                  orderLocale: String?) -> (MustacheTemplate, locale: String, name: String)? {
        let channel = subject ? "email" : (Templates.channels.contains(channel) ? channel : "sms")
        let prefix = kind.rawValue + "." + channel + "."
        func find(_ locale: String) -> (MustacheTemplate, locale: String, name: String)? {
            let name = subject ? prefix + locale + ".subject" : prefix + locale
            return compiled[name].map { ($0, locale, name) }
        }
        // As locales(for:), without building the list: planning asks this twice per message.
        if let locale = orderLocale, !locale.isEmpty {
            if let found = find(locale) { return found }
            if let first = locale.utf8.first, first | 0x20 == UInt8(ascii: "z") || first | 0x20 == UInt8(ascii: "e") {
                let lower = locale.lowercased()
                if lower.hasPrefix("zh"), let found = find("zh-CN") { return found }
                if lower.hasPrefix("en"), let found = find("en") { return found }
            }
        }
        return find(defaultLocale)
    }

    /// Subject and body of a customer message, or nil for a kind without templates (ops kinds).
    /// The subject is the e-mail subject template's on every channel (the webhook body carries it).
    public func render(_ kind: NotificationKind, channel: String, context: Messages.Context) -> (subject: String, body: String)? {
        var memo = RenderMemo()
        return render(kind, channel: channel, context: context, memo: &memo)
    }

    /// Texts already rendered for one decision (one kind, one order, several channels): the
    /// subject is the same on every channel, and channels whose templates have the same source
    /// (the built-in sms and push ones) share the body. Rendering is most of a decision's cost.
    public struct RenderMemo {
        /// (text id × 2 + 1 when rendered in Chinese, text): a decision renders 2 to 4 texts.
        var texts: [(key: Int, text: String)] = []
        public init() {}

        /// The text `key` renders to, rendering it on first use.
        mutating func text(_ key: Int, _ render: () -> String) -> String {
            if let found = texts.first(where: { $0.key == key }) { return found.text }
            let text = render()
            texts.append((key, text))
            return text
        }
    }

    /// ``render(_:channel:context:)``, reusing what `memo` holds for the same decision.
    public func render(_ kind: NotificationKind, channel: String, context: Messages.Context,
                       memo: inout RenderMemo) -> (subject: String, body: String)? {
        guard let (body, locale, bodyName) = template(kind, channel: channel, subject: false, orderLocale: context.order.locale),
              let (subject, _, subjectName) = template(kind, channel: channel, subject: true, orderLocale: context.order.locale)
        else { return nil }
        let chinese = locale.lowercased().hasPrefix("zh")
        let values = Templates.values(kind, context: context, chinese: chinese)
        // Texts are keyed by their source and language (money and failure texts differ by it).
        let language = chinese ? 1 : 0
        let subjectText = memo.text((textIDs[subjectName] ?? -1) * 2 + language) { subject.render(values) }
        let bodyText = memo.text((textIDs[bodyName] ?? -1) * 2 + language) { body.render(values) }
        return (subjectText, bodyText)
    }

    /// The variables of a message, computed when a template asks for one (planning renders
    /// two templates per message: no dictionary is built, no value is formatted unless used).
    /// Absent values (no customer name, no pay URL, …) are nil, so `{{#name}}…{{/name}}` shows
    /// only what is there.
    static func values(_ kind: NotificationKind, context: Messages.Context, chinese: Bool) -> Values {
        Values(kind: kind, context: context, chinese: chinese)
    }

    struct Values: MustacheParent {
        let kind: NotificationKind
        let context: Messages.Context
        let chinese: Bool

        func money(_ minor: Int64) -> String { Messages.localMoney(minor, context.order.currency, chinese: chinese) }

        func child(named name: String) -> Any? {
            let c = context
            let text: String
            switch name {
            case "order_id": text = c.order.id
            case "amount_due": text = money(c.ledger.amountDue)
            case "amount_paid": text = money(c.ledger.amountPaid)
            case "amount_remaining": text = money(c.ledger.amountRemaining)
            case "currency": text = c.order.currency
            case "expires_at": text = Timestamp.local(c.expiresAt, timeZone: c.order.timeZone)
            case "customer_name":
                guard let name = c.order.customerName, !name.isEmpty else { return nil }
                text = name
            case "pay_url":
                guard let url = c.order.payURL, !url.isEmpty else { return nil }
                text = url
            case "support_contact":
                guard let support = c.supportContact, !support.isEmpty else { return nil }
                text = Validator.display(support, limit: 200)
            case "failure_reason_text":
                guard kind == .paymentFailed || c.failureReason != nil else { return nil }
                text = Messages.failureText(c.failureReason, chinese: chinese)
            case "installment_seq":
                guard let seq = c.installment?.seq else { return nil }
                text = String(seq)
            case "installment_amount":
                guard let plan = c.installment else { return nil }
                text = money(plan.open)
            case "installment_due_at":
                guard let plan = c.installment else { return nil }
                text = Timestamp.local(plan.dueAt, timeZone: c.order.timeZone)
            case "refund_amount":
                guard let refund = c.refund else { return nil }
                text = money(refund.amount ?? 0)
            case "refund_status":
                guard let refund = c.refund else { return nil }
                return RefundStatusValue(status: refund.status, known: refund.refundStatus)
            default: return nil
            }
            return Text(text: text)
        }
    }

    /// A value as templates see it: rendered as is, and with no children — a section on it
    /// (`{{#pay_url}}…{{/pay_url}}`) looks names up in the message's variables, not by reflection.
    struct Text: MustacheParent, MustacheCustomRenderable {
        let text: String
        var renderText: String { text }
        var isNull: Bool { false }
        func child(named: String) -> Any? { nil }
    }
}

/// `{{refund_status}}` renders the status as the shop wrote it; `{{#refund_status.succeeded}}`
/// and its siblings are true for that status (`failed`: any status that is not requested,
/// processing or succeeded).
struct RefundStatusValue: MustacheParent, MustacheCustomRenderable {
    var status: String
    var known: RefundStatus?
    var renderText: String { status }
    var isNull: Bool { false }
    func child(named name: String) -> Any? {
        switch (name, known) {
        case ("requested", .requested?), ("processing", .processing?), ("succeeded", .succeeded?): return true
        case ("failed", .requested?), ("failed", .processing?), ("failed", .succeeded?): return false
        case ("failed", _): return true
        case ("requested", _), ("processing", _), ("succeeded", _): return false
        default: return nil
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\n" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\n" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
