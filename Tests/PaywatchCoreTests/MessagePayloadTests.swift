import Foundation
import Testing
@testable import PaywatchCore

/// The message content stored in the outbox, and the webhook JSON built from it.
@Suite struct MessagePayloadTests {
    static let awkward = "quote \" backslash \\ newline \n CR \r tab \t NUL \u{0} 中文 😀 \u{2028}"

    @Test func theStoredFormReadsBackEqualWithItsFactsInOrder() throws {
        var payload = MessagePayload(subject: Self.awkward, text: "text " + Self.awkward, html: "<p>\(Self.awkward)</p>")
        payload.add("zeta", "last letter, first fact")
        payload.add("amount_due", Int64.max)
        payload.add("amount_paid", Int64.min)
        payload.add("alpha", Self.awkward)
        payload.add("missing", nil as String?)
        let decoded = try #require(MessagePayload.decode(payload.encoded()))
        #expect(decoded == payload)
        #expect(decoded.facts.map(\.name) == ["zeta", "amount_due", "amount_paid", "alpha"])
        #expect(decoded.fact("amount_due") == .number(Int64.max))
        // Without an HTML part, none comes back.
        #expect(MessagePayload.decode(MessagePayload(subject: "", text: "").encoded())?.html == nil)
    }

    @Test func theFastReaderReadsWhatAnyJSONWriterMayWriteAndRefusesWhatIsNotIts() throws {
        // Escapes a writer may choose: \u forms, a surrogate pair, \/; spaces; another key order.
        let written = #" { "facts" : [ ["a\u00e9\/b", -9223372036854775808], ["emoji", "\ud83d\ude00"] ], "text" : "t\n\u4e2d", "#
            + #""subject":"s\"q","v":1 } "#
        let payload = try #require(PayloadReader.read(written))
        #expect(payload.subject == "s\"q")
        #expect(payload.text == "t\n中")
        #expect(payload.facts == [.init("aé/b", .number(Int64.min)), .init("emoji", .text("😀"))])
        // What it does not take, the general reader decides (and refuses, here).
        for refused in [#"{"v":1,"subject":"s","text":"t","facts":[["x",1.5]]}"#,        // not an integer
                        #"{"v":1,"subject":"s","text":"t","facts":[["x",9223372036854775808]]}"#,  // past Int64
                        #"{"v":1,"subject":"\ud800","text":"t","facts":[]}"#,        // a lone surrogate
                        "{\"v\":1,\"subject\":\"a\u{1}b\",\"text\":\"t\",\"facts\":[]}",  // a raw control character
                        #"{"v":1,"subject":"s","text":"t","facts":[],"x":1}"#,        // another key
                        #"{"v":1,"subject":"s","text":"t","facts":[]} trailing"#, #"{"v":1,"subject":"s""#, ""] {
            #expect(PayloadReader.read(refused) == nil, "\(refused)")
        }
        // Whatever encoded() writes, it reads back.
        var awkward = MessagePayload(subject: Self.awkward, text: Self.awkward, html: Self.awkward)
        awkward.add(Self.awkward, Self.awkward)
        awkward.add("n", Int64.min)
        #expect(PayloadReader.read(awkward.encoded()) == awkward)
    }

    @Test func aWebhookBodyStoredByAnEarlierReleaseReadsAsItsPayload() throws {
        let legacy = """
            {"idempotency_key":"pw1:A1:unpaid_reminder:1:sms","kind":"unpaid_reminder","channel":"sms","order_id":"A1",\
            "to":"+8613800000000","subject":"Pay","body":"Please pay","locale":"en","amount_due":12900,"currency":"CNY"}
            """
        let payload = try #require(MessagePayload.decode(legacy))
        #expect(payload.subject == "Pay")
        #expect(payload.text == "Please pay")
        #expect(payload.facts == [.init("amount_due", .number(12900)), .init("currency", .text("CNY")), .init("locale", .text("en"))])
        // The webhook body built from it again carries every field it had.
        let again = payload.webhookJSON(key: "pw1:A1:unpaid_reminder:1:sms", kind: "unpaid_reminder", channel: "sms",
                                        orderID: "A1", to: "+8613800000000")
        let before = try #require(try JSONSerialization.jsonObject(with: Data(legacy.utf8)) as? NSDictionary)
        let after = try #require(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? NSDictionary)
        #expect(before == after)
        // Anything else is not a payload.
        for junk in ["", "[]", "{}", "{\"v\":1}", "{\"v\":1,\"subject\":\"s\",\"text\":\"t\",\"facts\":[[\"a\"]]}", "not json", "{\"v\":2}"] {
            #expect(MessagePayload.decode(junk) == nil, "\(junk)")
        }
    }

    @Test func theWebhookBodyIsTheEnvelopeSubjectTextAndFactsInOrder() throws {
        var payload = MessagePayload(subject: "S", text: "T")
        payload.add("locale", "zh-CN")
        payload.add("amount_due", 100)
        let json = payload.webhookJSON(key: "k", kind: "unpaid_reminder", channel: "sms", orderID: "A\"1", to: "+1")
        #expect(json == #"{"idempotency_key":"k","kind":"unpaid_reminder","channel":"sms","order_id":"A\"1","to":"+1","subject":"S","body":"T","locale":"zh-CN","amount_due":100}"#)
        // No order (send-test): no order_id.
        #expect(!payload.webhookJSON(key: "k", kind: "test", channel: "sms", orderID: nil, to: "+1").contains("order_id"))
    }

    @Test func aDecidedMessageCarriesItsContentNotAWireFormat() throws {
        let message = OutgoingMessage(idempotencyKey: "k", orderID: "A1", kind: .unpaidReminder, step: 1, channel: "sms",
                                      recipient: "+8613800000000",
                                      payload: MessagePayload(subject: "S", text: "T", facts: [.init("amount_due", .number(5))]).encoded())
        #expect(message.content.text == "T")
        #expect(!message.payload.contains("idempotency_key"))
        #expect(message.webhookBody.contains(#""idempotency_key":"k""#))
        #expect(message.webhookBody.contains(#""amount_due":5"#))
    }
}

/// `paywatch send-test --kind`: every kind renders for the sample order, with what it is about.
@Suite struct SampleMessageTests {
    @Test func everyKindRendersForTheSampleOrderWithWhatItIsAbout() {
        let policy = Policy(unpaidHoldMs: 1_800_000, unpaidRemindersMs: [600_000], unpaidChannels: ["sms"], supportContact: "400-000")
        let now: Millis = 1_790_000_000_000
        for kind in NotificationKind.allCases {
            for locale in ["en", "zh-CN"] {
                let payload = Messages.sample(kind: kind, channel: "sms", policy: policy, now: now, locale: locale)
                #expect(!payload.text.isEmpty && !payload.subject.isEmpty, "\(kind) \(locale)")
                #expect(payload.text.contains("TEST-0001") || payload.subject.contains("TEST-0001"), "\(kind) \(locale): \(payload.text)")
            }
        }
        let sample = { (kind: NotificationKind) in Messages.sample(kind: kind, channel: "sms", policy: policy, now: now, locale: "en") }
        #expect(sample(.installmentDue).fact("installment_seq") == .number(2))
        #expect(sample(.refundProgress).fact("refund_id") == .text("R-TEST"))
        #expect(sample(.payingStalled).fact("provider_ref") == .text("ch_test"))
        #expect(sample(.paymentFailed).fact("failure_reason") == .text("card_declined"))
        #expect(sample(.duplicatePayment).fact("amount_to_return") == .number(12_900))
        #expect(sample(.paymentConfirmed).fact("amount_paid") == .number(12_900))
    }
}
