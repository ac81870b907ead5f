import Foundation
import Logging
import Postgres
import WireFormat

/// What the HTTP API reads from PostgreSQL (tokens, jobs, summaries), on a connection of its
/// own: a slow API read never delays the coordinator's lease renewals or a job's writes.
public final class APIStore: Sendable {
    let database: ClusterDatabase

    init(database: ClusterDatabase) {
        self.database = database
    }

    /// Opens its connection (the schema is brought up to date first).
    public static func open(url: String, statementTimeout: Duration = .seconds(30), logger: Logger) async throws -> APIStore {
        APIStore(database: try await ClusterDatabase.open(url: url, connections: 1, statementTimeout: statementTimeout, lease: false, logger: logger))
    }

    public func close() { database.close() }

    /// Every token (revoked ones too), oldest first.
    public func tokens() async throws -> [APITokenRecord] { try await database.tokens() }

    /// The most recent jobs, newest first.
    public func jobs(limit: Int) async throws -> [JobRecord] {
        try await database.run { c in
            try c.query(JobRecord.select + " ORDER BY j.id DESC LIMIT $1", [String(limit)]).rows.compactMap(JobRecord.init(row:))
        }
    }

    /// Job `id` as recorded, nil when there is none.
    public func job(_ id: Int64) async throws -> JobRecord? {
        try await database.run { c in
            try c.query(JobRecord.select + " WHERE j.id = $1", [String(id)]).rows.first.flatMap(JobRecord.init(row:))
        }
    }

    /// The published job's id (nil before the first job completed).
    public func publishedJob() async throws -> Int64? {
        try await database.run { c in try c.query("SELECT job_id FROM churngrid_published").scalar.flatMap { Int64($0) } }
    }

    /// Job `id`'s drift as the API's JSON (`JobDrift`), worst first: the served model's (the
    /// models active beside it are measured too: `models show`); nil when none was measured.
    public func driftJSON(job id: Int64) async throws -> String? {
        try await database.run { c in
            try c.query("""
                SELECT json_build_object('job_id', min(job_id), 'model_version', min(model_version), 'reference_job_id', min(reference_job_id),
                                         'features', json_agg(json_build_object('feature', feature, 'psi', psi, 'level', level)
                                                              ORDER BY psi DESC, feature))::text
                FROM model_drift WHERE job_id = $1 AND model_version = (SELECT model_version FROM scoring_jobs WHERE id = $1) HAVING count(*) > 0
                """, [String(id)]).scalar
        }
    }

    /// Job `id`'s summary as a JSON object (snake_case keys), nil when it has none (not completed).
    public func summaryJSON(job id: Int64) async throws -> String? {
        try await database.run { c in
            try c.query("""
                SELECT json_build_object('job_id', s.job_id, 'subscribers', s.subscribers, 'mean_probability', s.mean_probability,
                                         'deciles', s.deciles, 'histogram', s.histogram, 'per_band', s.per_band,
                                         'per_region', s.per_region, 'per_region_band', s.per_region_band, 'top_risk', s.top_risk,
                                         'model_version', j.model_version,
                                         'finished_at', to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                                         -- Every model the job scored, the served one first, each with its own figures
                                         -- over the subscribers it scored (none for jobs published before they were kept).
                                         'models', (SELECT coalesce(json_agg(jsonb_build_object('model_name', m.model_name, 'model_version', m.model_version,
                                                                                              'role', m.role, 'segment', m.segment)
                                                                           || coalesce(m.summary, jsonb_strip_nulls(jsonb_build_object('subscribers', m.subscribers)))
                                                                           ORDER BY m.role DESC, m.model_name), '[]'::json)
                                                    FROM scoring_job_models m WHERE m.job_id = s.job_id))::text
                FROM scoring_job_summaries s JOIN scoring_jobs j ON j.id = s.job_id WHERE s.job_id = $1
                """, [String(id)]).scalar
        }
    }
}

/// A job as PostgreSQL records it.
public struct JobRecord: Sendable {
    public var id: Int64
    public var state: JobState
    public var modelVersion: String
    public var shardsDone: Int
    public var shardCount: Int
    public var subscribers: Int
    public var startedAt: String
    public var finishedAt: String?
    public var seconds: Double
    public var error: String?
    public var published: Bool
    public var term: Int64?

    /// The columns `init(row:)` reads, from `scoring_jobs j`.
    static let select = """
        SELECT j.id, j.state, j.model_version, j.shards_done, j.shard_count, j.subscribers,
               to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               extract(epoch FROM coalesce(j.finished_at, now()) - j.started_at), j.error,
               j.id = (SELECT job_id FROM churngrid_published), j.term
        FROM scoring_jobs j
        """

    init?(row r: [String?]) {
        guard r.count >= 12, let id = r[0].flatMap({ Int64($0) }), let state = r[1].flatMap({ JobState(rawValue: $0) }) else { return nil }
        self.id = id
        self.state = state
        modelVersion = r[2] ?? ""
        shardsDone = r[3].flatMap { Int($0) } ?? 0
        shardCount = r[4].flatMap { Int($0) } ?? 0
        subscribers = r[5].flatMap { Int($0) } ?? 0
        startedAt = r[6] ?? ""
        finishedAt = r[7]
        seconds = r[8].flatMap { Double($0) } ?? 0
        error = r[9]
        published = r[10] == "t"
        term = r[11].flatMap { Int64($0) }
    }
}

/// An HTTP API token as stored (never the token itself: its SHA-256).
public struct APITokenRecord: Sendable, WireCodable {
    public var name: String
    public var role: String
    public var sha256: String
    public var createdAt: String
    public var createdBy: String
    public var revokedAt: String?

    public init(name: String, role: String, sha256: String, createdAt: String, createdBy: String, revokedAt: String?) {
        self.name = name
        self.role = role
        self.sha256 = sha256
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.revokedAt = revokedAt
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(role); w.write(sha256); w.write(createdAt); w.write(createdBy); w.write(revokedAt)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); role = try r.read(); sha256 = try r.read(); createdAt = try r.read(); createdBy = try r.read(); revokedAt = try r.read()
    }
}

extension ClusterDatabase {
    func tokens() async throws -> [APITokenRecord] {
        try await run { c in
            try c.query("""
                SELECT name, role, token_sha256, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), created_by,
                       to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                FROM churngrid_api_tokens ORDER BY created_at, name
                """).rows.map { r in
                APITokenRecord(name: r[0] ?? "", role: r[1] ?? "", sha256: r[2] ?? "", createdAt: r[3] ?? "", createdBy: r[4] ?? "", revokedAt: r[5])
            }
        }
    }

    /// Stores a new token's hash. - Throws: `ClusterError` when the name is taken.
    func addToken(name: String, role: String, sha256: String, createdBy: String) async throws {
        try await run { c in
            do {
                try c.query("INSERT INTO churngrid_api_tokens (name, role, token_sha256, created_by) VALUES ($1, $2, $3, $4)",
                            [name, role, sha256, createdBy])
            } catch let error as PostgresError where error.sqlState == "23505" {
                throw ClusterError("a token named '\(name)' exists already (revoked tokens keep their names): choose another name")
            } catch let error as PostgresError where error.sqlState == "23514" {
                throw ClusterError("token name '\(name)' or role '\(role)' refused: names are 1–64 letters, digits, '.', '_', '@', '-'; roles reader, operator, admin")
            }
        }
    }

    /// Revokes token `name`. - Returns: whether a live token of that name was revoked.
    func revokeToken(name: String) async throws -> Bool {
        try await run { c in
            try c.query("UPDATE churngrid_api_tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING name", [name]).rows.count == 1
        }
    }
}
