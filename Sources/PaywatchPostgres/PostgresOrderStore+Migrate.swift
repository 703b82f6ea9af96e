import PaywatchCore
import PaywatchStore
import PostgresNIO

extension PostgresOrderStore {
    /// Creates the shop's tables when missing and paywatch's own, applies the migrations not
    /// applied yet, brings the shop's tables to the contract's shape (missing optional columns, a
    /// unique key) and (re)creates the triggers; all in one transaction under an advisory lock, so
    /// replicas starting together migrate one at a time. Refuses, changing nothing, a database
    /// migrated by a newer paywatch and shop tables without a required column or with repeated keys.
    @discardableResult
    public func migrate() async throws -> [String] {
        let display = settings.displayName
        // First one connection of its own: a refused login or a missing database is said at once
        // (exit 78), where the pool would retry it until its wait ran out.
        if let error = await probeError() {
            let mapped = Self.mapError(error, settings: settings)
            if (mapped as? StoreError)?.isConfiguration == true { throw mapped }
        }
        return try await transaction { connection in
            try await self.execute(connection, "SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))")
            try await self.execute(connection, """
                CREATE TABLE IF NOT EXISTS pw_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            let applied = Set(try await self.rows(connection, "SELECT version FROM pw_schema", Binds()).map { try $0.int(0) })
            let known = Set(PostgresSchema.migrations.map(\.version))
            let unknown = applied.subtracting(known).sorted()
            if !unknown.isEmpty {
                throw StoreError(description: "\(display) was migrated by a newer paywatch (unknown schema version \(unknown.map(String.init).joined(separator: ", "))): run that release, or restore a backup",
                                 isConfiguration: true)
            }
            let problems = try await self.shopProblems(connection)
            if !problems.isEmpty {
                throw StoreError(description: "the shop's tables in \(display) do not fit the contract: " + problems.joined(separator: "; "),
                                 isConfiguration: true)
            }
            for statement in PostgresSchema.shopTables { try await self.execute(connection, statement) }
            let fresh = applied.isEmpty
            var upgraded: [Int] = []
            for migration in PostgresSchema.migrations where !applied.contains(migration.version) {
                for statement in migration.statements { try await self.execute(connection, statement) }
                var binds = Binds()
                try await self.execute(connection, "INSERT INTO pw_schema(version) VALUES (\(binds.add(migration.version)))", binds)
                upgraded.append(migration.version)
            }
            var done = fresh || upgraded.isEmpty ? [] : [SQLiteOrderStore.upgradeLine(upgraded.map(String.init))]
            done += try await self.conformShopTables(connection)
            let columns = try await self.columns(connection, "orders")
            for statement in PostgresSchema.markTriggers(orderColumns: PostgresSchema.orderColumns.filter { columns[$0] != nil }) {
                try await self.execute(connection, statement)
            }
            if fresh {
                // Orders that were there before paywatch: plan them all at the first sweep.
                try await self.execute(connection, """
                    INSERT INTO pw_order_state(order_id, next_due_at) SELECT id::text, 0 FROM orders WHERE id IS NOT NULL
                    ON CONFLICT (order_id) DO NOTHING
                    """)
            }
            return done
        }
    }

    /// The columns of `table` in the current schema, by lower-cased name, with their types
    /// (`information_schema.columns.data_type`); empty when there is no such table.
    func columns(_ connection: PostgresConnection, _ table: String) async throws -> [String: String] {
        var binds = Binds()
        var result: [String: String] = [:]
        for row in try await rows(connection, """
            SELECT lower(column_name), data_type FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = \(binds.add(table))
            """, binds) {
            result[try row.string(0)] = try row.string(1)
        }
        return result
    }

    /// The columns of each of `tables` (lower-cased names, types as `information_schema` words),
    /// in one query on the catalog (`information_schema` takes milliseconds per table).
    func columns(_ connection: PostgresConnection, tables: [String]) async throws -> [String: [String: String]] {
        var binds = Binds()
        var result: [String: [String: String]] = [:]
        for row in try await rows(connection, """
            SELECT c.relname::text, lower(a.attname::text),
                   CASE t.typname WHEN 'int2' THEN 'smallint' WHEN 'int4' THEN 'integer' WHEN 'int8' THEN 'bigint'
                       WHEN 'float4' THEN 'real' WHEN 'float8' THEN 'double precision'
                       WHEN 'timestamptz' THEN 'timestamp with time zone' WHEN 'timestamp' THEN 'timestamp without time zone'
                       WHEN 'varchar' THEN 'character varying' WHEN 'bpchar' THEN 'character' ELSE t.typname::text END
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_type t ON t.oid = a.atttypid
            WHERE n.nspname = current_schema() AND c.relname = ANY(\(binds.add(tables))::text[]) AND c.relkind IN ('r', 'p')
              AND a.attnum > 0 AND NOT a.attisdropped
            """, binds) {
            result[try row.string(0), default: [:]][try row.string(1)] = try row.string(2)
        }
        return result
    }

    /// `BASE TABLE`, `VIEW`, … for `table` in the current schema, nil when there is none.
    func tableType(_ connection: PostgresConnection, _ table: String) async throws -> String? {
        var binds = Binds()
        return try await first(connection, """
            SELECT table_type FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = \(binds.add(table))
            """, binds).map { try $0.string(0) }
    }

    /// Problems that stop `migrate`, all of them at once: a view where a table must be, missing
    /// required columns, repeated keys.
    func shopProblems(_ connection: PostgresConnection) async throws -> [String] {
        var problems: [String] = []
        for table in PostgresSchema.tables {
            guard let type = try await tableType(connection, table.name) else { continue }
            if type != "BASE TABLE" {
                problems.append("\(table.name) is a \(type.lowercased()): paywatch needs a table (it notices changes through triggers)")
                continue
            }
            let columns = try await self.columns(connection, table.name)
            let missing = table.required.filter { columns[$0] == nil }
            if !missing.isEmpty {
                problems.append("\(table.name) lacks the required column\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", "))")
                continue
            }
            if try await !hasUniqueKey(connection, table) {
                let key = table.key.joined(separator: ", ")
                let repeated = try await rows(connection, """
                    SELECT \(table.key.map { "\($0)::text" }.joined(separator: ", ")) FROM \(table.name)
                    GROUP BY \(key) HAVING COUNT(*) > 1 LIMIT 5
                    """, Binds()).map { row in
                    try table.key.indices.map { Validator.display(try row.stringOrNil($0) ?? "?", limit: 40) }.joined(separator: "/")
                }
                if !repeated.isEmpty {
                    problems.append("\(table.name) repeats \(key) (\(repeated.joined(separator: ", "))\(repeated.count == 5 ? ", …" : "")): each must appear once")
                }
            }
        }
        return problems
    }

    /// Adds the missing optional columns and a unique index where the key is not unique yet;
    /// returns what it did, for the operator.
    func conformShopTables(_ connection: PostgresConnection) async throws -> [String] {
        var done: [String] = []
        for table in PostgresSchema.tables where try await tableType(connection, table.name) != nil {
            let columns = try await self.columns(connection, table.name)
            for column in table.optional where columns[column.name] == nil {
                try await execute(connection, "ALTER TABLE \(table.name) ADD COLUMN \(column.name) \(column.definition)")
                done.append("added column \(table.name).\(column.name)")
            }
            if try await !hasUniqueKey(connection, table) {
                let key = table.key.joined(separator: ", ")
                try await execute(connection, "CREATE UNIQUE INDEX pw_\(table.name)_key ON \(table.name)(\(key))")
                done.append("added a unique index on \(table.name)(\(key))")
            }
        }
        return done
    }

    /// Whether a primary key or unique index (not partial, not on expressions) covers exactly the
    /// table's key columns.
    func hasUniqueKey(_ connection: PostgresConnection, _ table: PostgresSchema.Table) async throws -> Bool {
        var binds = Binds()
        let indexes = try await rows(connection, """
            SELECT array_to_string(ARRAY(
                       SELECT lower(a.attname) FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k
                       ORDER BY 1), ',')
            FROM pg_index i
            WHERE i.indrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(\(binds.add(table.name))))
              AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
            """, binds)
        let wanted = table.key.sorted().joined(separator: ",")
        return try indexes.contains { try $0.string(0) == wanted }
    }
}
