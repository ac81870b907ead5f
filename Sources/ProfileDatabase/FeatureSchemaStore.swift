import Postgres
import SubscriberProfiles

/// The feature schema in PostgreSQL: reading the one in force, and applying a new one to
/// `subscriber_profiles` (`churngrid profiles migrate --schema FILE`).
public enum FeatureSchemaStore {
    /// A stored schema and its version.
    public struct Stored: Sendable {
        public var version: Int
        public var schema: FeatureSchema
    }

    /// What applying a schema did.
    public struct Applied: Sendable {
        /// The version in force afterwards (unchanged when there was nothing to do).
        public var version: Int
        public var change: SchemaChange
    }

    /// A schema that cannot be applied (the reason names the columns), or a stored one that cannot be read.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Longest wait for `subscriber_profiles`' lock when altering it: a long load or import holds
    /// a lock that conflicts, and every query queued behind a waiting `ALTER` would wait too.
    public static let lockTimeout = "5s"

    /// The schema in force (the newest version), migrating the database first.
    /// - Throws: `PostgresError`, or `Failure` when the stored document is not a valid schema.
    public static func current(_ connection: PostgresConnection) throws -> Stored {
        try ProfileSchema.migrate(connection)
        return try inForce(connection)
    }

    /// The schema in force in a database already migrated.
    /// - Throws: `PostgresError`, or `Failure` when the stored document is not a valid schema.
    public static func inForce(_ connection: PostgresConnection) throws -> Stored {
        guard let row = try newestRow(connection),
              let version = row[0].flatMap({ Int($0) }), let document = row[1] else {
            throw Failure(message: "churngrid_feature_schema is empty: the database has no feature schema (run churngrid profiles migrate)")
        }
        do {
            // PostgreSQL prints jsonb with more spaces than a file may have had: no file-size limit here.
            return Stored(version: version, schema: try FeatureSchema.parse(Array(document.utf8), source: "churngrid_feature_schema version \(version)", limit: .max))
        } catch {
            throw Failure(message: "the stored feature schema cannot be read: \(error)")
        }
    }

    /// The features an earlier schema version had and the one in force does not (dropped by
    /// `profiles migrate --allow-drop`), by name: what something written before the drop (trigger
    /// rules, a model) may still name, and is then held as missing rather than refused.
    public static func dropped(_ connection: PostgresConnection, inForce: Stored) throws -> [String] {
        let names = try connection.query("""
            SELECT DISTINCT f->>'name' FROM churngrid_feature_schema s, jsonb_array_elements(s.document->'features') f
            WHERE s.version < $1 ORDER BY 1
            """, [String(inForce.version)]).rows.compactMap { $0[0] }
        let kept = Set(inForce.schema.names)
        return names.filter { !kept.contains($0) }
    }

    /// The newest schema row (version, document), nil when there is none.
    private static func newestRow(_ connection: PostgresConnection) throws -> [String?]? {
        do {
            return try connection.query("SELECT version, document::text FROM churngrid_feature_schema ORDER BY version DESC LIMIT 1").rows.first
        } catch {
            guard error.sqlState == "42P01" else { throw error }
            throw Failure(message: "the database has no feature schema yet (no churngrid_feature_schema): run churngrid profiles migrate")
        }
    }

    /// The feature columns of `subscriber_profiles` (every column but the id, the shard key and
    /// `updated_at`), in table order, with their types.
    public static func columns(_ connection: PostgresConnection) throws(PostgresError) -> [SchemaChange.Column] {
        try connection.query("""
            SELECT a.attname, format_type(a.atttypid, NULL)
            FROM pg_attribute a
            WHERE a.attrelid = 'subscriber_profiles'::regclass AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """).rows.compactMap { row in
            guard let name = row[0], let type = row[1], !FeatureSchema.tableColumns.contains(name) else { return nil }
            return SchemaChange.Column(name: name, type: type)
        }
    }

    /// What must not be dropped, and why: every feature a registered model reads. (The built-in
    /// catalogue's features may go: the workers then hold them as missing, and trigger rules and
    /// campaign eligibility that read them never match.)
    static func readers(_ connection: PostgresConnection) throws(PostgresError) -> [String: String] {
        var readers: [String: String] = [:]
        for row in try connection.query("""
            SELECT f, string_agg(DISTINCT name || ' ' || left(version, 12), ', ')
            FROM model_registry, unnest(features) AS f GROUP BY f
            """).rows {
            if let f = row[0], let models = row[1] { readers[f] = "model \(models)" }
        }
        return readers
    }

    /// Plans and applies `schema` in one transaction: `subscriber_profiles` gains (and, with
    /// `allowDrop`, loses) columns, the schema becomes the newest version, and the audit log
    /// records who did it. Nothing changes when the plan is refused or anything fails; applying
    /// the schema in force again changes nothing.
    /// - Parameter appliedBy: who applies it (the operating-system user of the CLI).
    /// - Throws: `SchemaChange.Refusal`, `Failure`, `PostgresError` (a busy table: a lock timeout).
    @discardableResult
    public static func apply(_ schema: FeatureSchema, to connection: PostgresConnection, allowDrop: Bool,
                             appliedBy: String) throws -> Applied {
        try ProfileSchema.migrate(connection)
        try connection.execute("BEGIN")
        let applied: Applied
        do {
            applied = try applyInTransaction(schema, connection, allowDrop: allowDrop, appliedBy: appliedBy)
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
        try connection.execute(applied.change.isEmpty ? "ROLLBACK" : "COMMIT")
        return applied
    }

    private static func applyInTransaction(_ schema: FeatureSchema, _ connection: PostgresConnection, allowDrop: Bool,
                                           appliedBy: String) throws -> Applied {
        let document = schema.document()
        guard document.utf8.count <= FeatureSchema.maxFileBytes else {
            throw Failure(message: "the schema's document has \(document.utf8.count) bytes, more than the \(FeatureSchema.maxFileBytes) a schema file may have (so it could not be printed and applied again): shorten the descriptions")
        }
        try connection.execute("SET LOCAL lock_timeout = '\(lockTimeout)'")
        // One schema change at a time: the version row is taken under this lock.
        try lock("LOCK TABLE churngrid_feature_schema IN EXCLUSIVE MODE", connection,
                 "another profiles migrate --schema is applying a schema (churngrid_feature_schema stayed locked for \(lockTimeout)): nothing was changed; run it again when that has finished")
        let stored = try inForce(connection)
        // No model is registered between reading what models read and dropping a column.
        try lock("LOCK TABLE model_registry IN SHARE MODE", connection,
                 "model_registry stayed locked for \(lockTimeout) (a model is being added or removed): nothing was changed; run it again")
        let change = try SchemaChange.plan(columns: try columns(connection), stored: stored.schema, to: schema,
                                           allowDrop: allowDrop, readers: try readers(connection))
        if change.isEmpty { return Applied(version: stored.version, change: change) }
        if let alter = change.alterSQL { try alterTable(alter, connection) }
        let version = stored.version + 1
        try connection.query("""
            INSERT INTO churngrid_feature_schema (version, document, features, summary, applied_by)
            VALUES ($1, $2::jsonb, $3, $4, $5)
            """, [String(version), document, String(schema.count), change.summary, appliedBy])
        try connection.query("""
            INSERT INTO churngrid_audit_log (actor, roles, credential, action, target, outcome)
            VALUES ($1, 'database', 'postgres', 'profiles.migrate', $2, $3)
            """, [appliedBy, "feature schema version \(version)", change.summary])
        return Applied(version: version, change: change)
    }

    /// Runs `sql`, saying what a lock timeout means.
    private static func alterTable(_ sql: String, _ connection: PostgresConnection) throws {
        try lock(sql, connection, "subscriber_profiles stayed locked for \(lockTimeout) (a load or an import is reading or writing it): nothing was changed; run the migration again when it has finished")
    }

    /// Runs `sql`; a lock timeout becomes `Failure(message: timedOut)`.
    private static func lock(_ sql: String, _ connection: PostgresConnection, _ timedOut: String) throws {
        do {
            try connection.execute(sql)
        } catch {
            guard error.sqlState == "55P03" else { throw error }
            throw Failure(message: timedOut)
        }
    }
}
