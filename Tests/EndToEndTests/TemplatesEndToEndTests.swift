import Foundation
import GRDB
import PaywatchTestSupport
import Testing

extension EndToEnd {
    /// `[templates] dir` with the real binary: a bad template stops `check-config` and `run` with
    /// exit 78 naming the file (and line); a good one is what customers get.
    @Suite(.serialized) struct TemplatesEndToEndTests {
        static func config(_ base: String, dir: String) -> String {
            """
            [unpaid]
            reminders = ["1s"]
            channels = ["sms"]

            [templates]
            dir = "\(dir)"
            default_locale = "en"

            \(Harness.smsAndOps(base))
            """
        }

        /// A harness whose `[templates] dir` holds `files`.
        static func harness(_ files: [String: String]) throws -> (Harness, String) {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paywatch-templates-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, text) in files {
                try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
            }
            return (try Harness { Self.config($0, dir: dir) }, dir)
        }

        @Test func aSyntaxErrorIsAConfigErrorNamingTheFile() throws {
            let (h, dir) = try Self.harness(["unpaid_reminder.sms.en.mustache": "Hi\n{{#customer_name}} no close"])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for command in ["check-config", "run"] {
                let result = try h.run([command, "--config", h.configPath])
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains("\(dir)/unpaid_reminder.sms.en.mustache:"), "\(result.err)")
                #expect(result.err.contains("template: syntax error"), "\(result.err)")
            }
        }

        @Test func anUnknownVariableIsAConfigErrorNamingFileAndLine() throws {
            let (h, dir) = try Self.harness(["payment_failed.email.zh-CN.subject.mustache": "订单\n{{order_id}} {{amount}}"])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            for command in ["check-config", "run"] {
                let result = try h.run([command, "--config", h.configPath])
                #expect(result.code == 78, "\(command): \(result.err)")
                #expect(result.err.contains("\(dir)/payment_failed.email.zh-CN.subject.mustache:2: template: unknown variable \"amount\""),
                        "\(result.err)")
            }
        }

        @Test func aFileThatIsNoTemplateNameOrAMissingDirIsRefused() throws {
            let (h, dir) = try Self.harness(["unpaid_remindr.sms.en.mustache": "x"])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let result = try h.run(["check-config", "--config", h.configPath])
            #expect(result.code == 78)
            #expect(result.err.contains("unpaid_remindr.sms.en.mustache: template: not a template name"), "\(result.err)")
            try FileManager.default.removeItem(atPath: dir)
            let missing = try h.run(["check-config", "--config", h.configPath])
            #expect(missing.code == 78)
            #expect(missing.err.contains("[templates] dir: cannot read the folder \(dir)"), "\(missing.err)")
        }

        @Test func anOverrideIsWhatTheCustomerGets() throws {
            let (h, dir) = try Self.harness([
                "unpaid_reminder.sms.en.mustache": "{{order_id}}: please pay {{amount_remaining}} & thanks{{#customer_name}}, {{customer_name}}{{/customer_name}}",
                "README.txt": "not a template: ignored",
            ])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let check = try h.run(["check-config", "--config", h.configPath])
            #expect(check.code == 0, "\(check.err)")
            #expect(check.out.contains("dir = \"\(dir)\""), "\(check.out)")
            #expect(try h.run(["migrate", "--config", h.configPath]).code == 0)
            let created = Harness.nowMs() - 5_000
            try h.shop().write { db in
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, locale, customer_name) VALUES ('EN', 12900, ?, '+8613800000000', 'en-US', 'Bo <B&B>')",
                               arguments: [created])
                try db.execute(sql: "INSERT INTO orders(id, amount_due, created_at, phone, locale) VALUES ('ZH', 12900, ?, '+8613900000000', 'zh-CN')",
                               arguments: [created])
            }
            let once = try h.run(["run", "--once", "--config", h.configPath])
            #expect(once.code == 0, "\(once.err)")
            var bodies: [String: (String, String)] = [:]
            for request in h.gateway.requests() {
                if let json = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
                   json["kind"] as? String == "unpaid_reminder", let id = json["order_id"] as? String {
                    bodies[id] = (json["subject"] as? String ?? "", json["body"] as? String ?? "")
                }
            }
            #expect(bodies["EN"]?.1 == "EN: please pay CNY 129.00 & thanks, Bo <B&B>")
            #expect(bodies["EN"]?.0 == "Order EN is waiting for payment")
            // zh-CN has no file: the built-in text.
            #expect(bodies["ZH"]?.1.hasPrefix("您的订单 ZH（¥129.00）将保留至") == true, "\(String(describing: bodies["ZH"]))")
        }
    }
}
