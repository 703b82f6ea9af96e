@testable import PaywatchConfig
import Testing

@Suite struct KeyLocatorTests {
    @Test func findsHeadersKeysDottedAndInlineKeys() {
        let text = """
            \u{FEFF}# comment with key = "x"
            top = 1
            [store] # trailing comment
            url = "a # not a comment"
            [ channels . "sms" ]
            provider = 'webhook'
            [channels]
            email.url = "http://h"
            ops = { url = "http://h", "to" = "x" }
            [unpaid]
            reminders = [
              "10m",
              # key = 1
              "25m",
            ]
            text = '''
            fake = 1
            '''
            after = "\\"quoted\\" = 2"
            "quoted key" = 1
            [[arr]]
            x = 1
            """
        let locator = KeyLocator(text)
        #expect(locator.line(of: ["top"]) == 2)
        #expect(locator.line(of: ["store"]) == 3)
        #expect(locator.line(of: ["store", "url"]) == 4)
        #expect(locator.line(of: ["channels"]) == 5)
        #expect(locator.line(of: ["channels", "sms"]) == 5)
        #expect(locator.line(of: ["channels", "sms", "provider"]) == 6)
        #expect(locator.line(of: ["channels", "email"]) == 8)
        #expect(locator.line(of: ["channels", "email", "url"]) == 8)
        #expect(locator.line(of: ["channels", "ops", "to"]) == 9)
        #expect(locator.line(of: ["unpaid", "reminders"]) == 11)
        #expect(locator.line(of: ["unpaid", "key"]) == nil)
        #expect(locator.line(of: ["unpaid", "text"]) == 16)
        #expect(locator.line(of: ["unpaid", "fake"]) == nil)
        #expect(locator.line(of: ["unpaid", "after"]) == 19)
        #expect(locator.line(of: ["unpaid", "quoted key"]) == 20)
        #expect(locator.line(of: ["arr", "x"]) == 22)
    }
}
