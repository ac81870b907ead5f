import Postgres
import SubscriberProfiles

/// ChurnGrid's tables, created and upgraded by ChurnGrid itself: numbered migrations, each
/// applied once in its own transaction and recorded in `churngrid_schema_migrations`. Running
/// them again is a no-op; two processes migrating at once are serialised by an advisory lock.
public enum ProfileSchema {
    /// One schema change.
    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    /// Advisory lock id held while migrating ("churngri" in ASCII).
    static let lockID: Int64 = 0x6368_7572_6E67_7269

    /// Every migration, in order.
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "shard key and subscriber profiles", sql: """
            -- The shard key; see ShardKey.swift. Never change it.
            CREATE FUNCTION churngrid_mix32(x bigint, s integer) RETURNS bigint
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN ((x # (x >> s)) * 1540483477) & 4294967295;
            CREATE FUNCTION churngrid_shard_key(id bigint) RETURNS integer
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN (churngrid_mix32(churngrid_mix32((id # (id >> 32)) & 4294967295, 32), 15)
                        # (churngrid_mix32(churngrid_mix32((id # (id >> 32)) & 4294967295, 32), 15) >> 13)) >> 1;
            CREATE FUNCTION churngrid_shard(id bigint, shard_count integer) RETURNS integer
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN ((churngrid_shard_key(id)::bigint * shard_count) >> 31)::integer;

            -- The source of truth for profiles: one row per subscriber; NULL = missing.
            CREATE TABLE subscriber_profiles (
                subscriber_id bigint PRIMARY KEY,
                shard_key integer NOT NULL GENERATED ALWAYS AS (churngrid_shard_key(subscriber_id)) STORED,
            \(FeatureCatalogue.names.map { "    \($0) real," }.joined(separator: "\n"))
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX subscriber_profiles_shard_key ON subscriber_profiles (shard_key);
            """),
    ]

    /// Applies the migrations `connection`'s database lacks.
    /// - Returns: the versions applied now (empty when already up to date).
    /// - Throws: `PostgresError`; a failed migration is rolled back whole.
    @discardableResult
    public static func migrate(_ connection: PostgresConnection) throws(PostgresError) -> [Int] {
        try connection.query("SELECT pg_advisory_lock($1)", [String(lockID)])
        defer { _ = try? connection.query("SELECT pg_advisory_unlock($1)", [String(lockID)]) }
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS churngrid_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let applied = Set(try connection.query("SELECT version FROM churngrid_schema_migrations").rows.compactMap { $0[0].flatMap(Int.init) })
        var now: [Int] = []
        for m in migrations where !applied.contains(m.version) {
            try connection.execute("BEGIN")
            do {
                try connection.execute(m.sql)
                try connection.query("INSERT INTO churngrid_schema_migrations (version, name) VALUES ($1, $2)", [String(m.version), m.name])
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw PostgresError(error.code, sqlState: error.sqlState, message: error.message, detail: error.detail,
                                    context: "applying migration \(m.version) (\(m.name))")
            }
            now.append(m.version)
        }
        return now
    }

    /// The profile columns in `subscriber_profiles`, in catalogue order.
    public static var featureColumns: String { FeatureCatalogue.names.joined(separator: ", ") }
}
