import GRDB
import GRDBSQLite

/// A statement on GRDB's connection, bound through SQLite's C API: for the few statements a
/// sweep runs per order. GRDB's `execute(arguments:)` builds its arguments as an array of
/// existentials and converts each value at every call, which was over a third of the writer's
/// own (Swift) time when planning; these bind each value directly.
///
/// Used only inside one GRDB access to `db` (the statement is finalized at the end of it).
/// Errors are GRDB's `DatabaseError` with SQLite's result code, as GRDB would throw them, so
/// callers tell transient faults from rows the shop's constraints reject the same way.
final class RawStatement {
    private let db: Database
    private var statement: OpaquePointer?

    init(_ db: Database, sql: String) throws {
        self.db = db
        guard let connection = db.sqliteConnection else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "the connection is closed", sql: sql)
        }
        let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK else {
            let message = String(cString: sqlite3_errmsg(connection))
            sqlite3_finalize(statement)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
    }

    deinit { sqlite3_finalize(statement) }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// A value to bind: SQLite's integer, text or NULL.
    enum Value {
        case int(Int64)
        case text(String)
        case null

        static func int(_ value: Int64?) -> Value { value.map(Value.int) ?? .null }
        static func int(_ value: Int) -> Value { .int(Int64(value)) }
        static func text(_ value: String?) -> Value { value.map(Value.text) ?? .null }
    }

    /// Binds `values` to the parameters in order and runs the statement to its end; returns the
    /// number of rows it changed.
    @discardableResult
    func execute(_ values: Value...) throws -> Int {
        guard let statement else { return 0 }
        // Reset after every step (below), so the statement is ready here.
        for (index, value) in zip(Int32(1)..., values) {
            let code: Int32
            switch value {
            case .int(let number): code = sqlite3_bind_int64(statement, index, number)
            case .text(let text):
                var text = text
                // SQLITE_TRANSIENT: SQLite copies the bytes, which live only in this closure. An
                // empty text is bound as one (a nil pointer would bind NULL).
                code = text.withUTF8 { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        guard let base = chars.baseAddress, !chars.isEmpty else {
                            return sqlite3_bind_text(statement, index, "", 0, Self.transient)
                        }
                        return sqlite3_bind_text(statement, index, base, Int32(chars.count), Self.transient)
                    }
                }
            case .null: code = sqlite3_bind_null(statement, index)
            }
            guard code == SQLITE_OK else { throw error(code) }
        }
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE || code == SQLITE_ROW else {
            sqlite3_reset(statement)
            throw error(code)
        }
        sqlite3_reset(statement)
        return db.changesCount
    }

    private func error(_ code: Int32) -> DatabaseError {
        let connection = db.sqliteConnection
        let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(code)"
        let sql = statement.flatMap { sqlite3_sql($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
    }
}
