import Foundation
import PaywatchCore
import Testing
@testable import PaywatchDelivery

/// The encodings of ``MailMessage``, decoded back with independent readers (SMTPProviderTests.swift).
@Suite struct MIMETests {
    @Test func quotedPrintableKeepsLinesShortAndDecodesBack() {
        let samples = [
            String(repeating: "a", count: 200),
            String(repeating: "é", count: 60) + " = sign",
            "trailing space \ntrailing tab\t\n== x",
            "ends with a space ",
            String(repeating: "x", count: 74) + "=",  // an escape that must not be cut by a soft break
        ]
        for sample in samples {
            let encoded = MIME.quotedPrintable(sample)
            for line in encoded.components(separatedBy: "\r\n") {
                #expect(line.count <= 76, "\(line)")
                #expect(!line.hasSuffix(" ") && !line.hasSuffix("\t"))
            }
            #expect(encoded.utf8.allSatisfy { $0 < 0x7F }, "7-bit")
            let expected = sample.replacingOccurrences(of: "\n", with: "\r\n")
            #expect(decodeQuotedPrintable(encoded) == expected)
        }
        #expect(MIME.quotedPrintable("a=b") == "a=3Db")
        #expect(MIME.quotedPrintable("end \n") == "end=20\r\n")
    }

    @Test func encodedWordsNeverSplitACharacterAndStayShort() {
        let text = String(repeating: "付款😀", count: 20)
        let words = MIME.encodedWords(text)
        #expect(words.count > 1)
        for word in words {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.count <= 60)
            // Each word decodes on its own to whole characters.
            let payload = String(word.dropFirst(10).dropLast(2))
            let bytes = Data(base64Encoded: payload)
            #expect(bytes.flatMap { String(data: $0, encoding: .utf8) } != nil, "\(word)")
        }
        #expect(decodeRFC2047(words.joined(separator: "\r\n ")) == text)
        #expect(MIME.encodedWords("") == ["=?UTF-8?B??="])
    }

    @Test func plainASCIISubjectsStayReadableAndOthersAreEncoded() {
        #expect(MIME.unstructuredWords("Order A1: please pay") == ["Order", "A1:", "please", "pay"])
        // Text that could read as an encoded-word, runs of spaces, and long words are encoded.
        #expect(MIME.unstructuredWords("=?UTF-8?B?eA==?=").first?.hasPrefix("=?UTF-8?B?") == true)
        #expect(decodeRFC2047(MIME.unstructuredWords("a  b").joined(separator: " ")) == "a  b")
        #expect(MIME.unstructuredWords(String(repeating: "x", count: 80)).count > 1)
        // Folding keeps every line within 76 characters and unfolds to the words.
        let header = MIME.header("Subject", MIME.unstructuredWords(String(repeating: "word ", count: 40) + "end"))
        #expect(header.components(separatedBy: "\r\n").allSatisfy { $0.count <= 76 })
        #expect(header.replacingOccurrences(of: "\r\n", with: "") == "Subject: " + String(repeating: "word ", count: 40) + "end")
    }

    @Test func headerTextHasNoLineBreaksOrControls() {
        #expect(MIME.headerText("a\r\nBcc: x@y\r\n\r\nz") == "a Bcc: x@y z")
        #expect(MIME.headerText("tab\there\u{0}nul\u{85}next\u{2028}sep") == "tab here nul next sep")
        #expect(MIME.phraseWords("Say \"hi\" \\ bye") == ["\"Say \\\"hi\\\" \\\\ bye\""])
        #expect(MIME.phraseWords("  ").isEmpty)
    }

    @Test func theDateIsRFC5322InUTC() {
        #expect(MIME.date(0) == "Thu, 1 Jan 1970 00:00:00 +0000")
        #expect(MIME.date(1_795_677_736_999) == "Thu, 26 Nov 2026 07:22:16 +0000")
        #expect(MIME.date(951_782_400_000) == "Tue, 29 Feb 2000 00:00:00 +0000")
    }

    @Test func theMessageIDIsDerivedFromTheKeyOneToOne() {
        func id(_ key: String) -> String {
            MailMessage(from: "shop@shop.example", to: "j@example.com", subject: "", text: "", dateMs: 0, key: key).messageID
        }
        #expect(id("pw1:A1:unpaid_reminder:1:sms") == "<pw1=3AA1=3Aunpaid_reminder=3A1=3Asms@shop.example>")
        // Keys that differ only in characters outside atext still give different ids.
        #expect(id("a:b") != id("a;b"))
        #expect(id("a.b") == "<a.b@shop.example>")
        #expect(id(".a..b.") == "<=2Ea=2E=2Eb=2E@shop.example>")
        #expect(id("订单") == "<=E8=AE=A2=E5=8D=95@shop.example>")
    }

    @Test func withoutHTMLTheMessageIsOneTextPart() {
        let bytes = MailMessage(from: "shop@shop.example", to: "j@example.com", subject: "S", text: "T", dateMs: 0, key: "k").rendered()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("multipart"))
        #expect(text.hasSuffix("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nT\r\n"))
        #expect(text.hasPrefix("From: <shop@shop.example>\r\nTo: j@example.com\r\nSubject: S\r\n"))
    }
}
