import Postgres
import SubscriberProfiles

/// What an erasure deleted from PostgreSQL.
struct DatabaseErasure: Sendable {
    /// Rows deleted per table (for `scoring_job_summaries`: the job summaries whose top list lost an entry).
    var rows: [String: Int] = [:]
    /// Shard snapshots deleted with the profiles (by the table's trigger).
    var snapshots = 0
    /// `subscriber_profiles`' generation before and after, when profiles were deleted.
    var generation: (from: Int64, to: Int64)?
}

/// One row of `churngrid_audit_log`.
struct AuditEntry: Sendable {
    var actor, roles, credential, action, target, outcome: String
}

extension ClusterDatabase {
    /// The tables holding rows of a subscriber found by `subscriber_id` alone (besides
    /// `subscriber_profiles`, `subscriber_events` — found through its shard — and the job summaries).
    static let erasedTables = ["churn_scores", "churn_shadow_scores", "retention_triggers", "campaign_actions", "contact_history",
                               "contact_consent", "do_not_contact", "subscriber_outcomes"]

    /// Whether any erasure is recorded in the audit log.
    func erasuresOnRecord() async throws -> Bool {
        try await run { c in
            try c.query("SELECT EXISTS (SELECT 1 FROM churngrid_audit_log WHERE action = 'erase' AND outcome = 'erased')").scalar == "t"
        }
    }

    /// Deletes every row of `ids` in one transaction fenced by the lease: profiles (which deletes
    /// the shards' snapshots and raises the profiles' generation), scores of every job kept, events,
    /// triggers, campaign actions, contacts, consent, the do-not-contact list, outcomes, and their
    /// entries in the job summaries' top-risk lists.
    func erase(_ ids: [Int64], shardCount: Int, audit: AuditEntry) async throws -> DatabaseErasure {
        let term = term
        let list = "{" + ids.map(String.init).joined(separator: ",") + "}"
        // Events are found through their shard's index (shard, seq): the shard count never changes.
        let shardList = Set(ids.map { ShardKey.shard(of: $0, shardCount: shardCount) }).sorted()
        let shards = "{" + shardList.map(String.init).joined(separator: ",") + "}"
        return try await run { c in
            try Self.transaction(c, fencedBy: term) {
                var out = DatabaseErasure()
                func count(_ sql: String, _ parameters: [String] = [list]) throws -> Int {
                    Int(try c.query(sql, parameters).scalar ?? "0") ?? 0
                }
                let profiles = try count("SELECT count(*) FROM subscriber_profiles WHERE subscriber_id = ANY($1::bigint[])")
                if profiles > 0 {
                    // The trigger on subscriber_profiles raises the generation and deletes every snapshot.
                    guard let before = try c.query("SELECT generation FROM churngrid_profile_generation FOR UPDATE").scalar.flatMap({ Int64($0) }) else {
                        throw ClusterError("churngrid_profile_generation has no row")
                    }
                    out.snapshots = try count("SELECT count(*) FROM churngrid_shard_snapshots", [])
                    out.rows["subscriber_profiles"] = try count("WITH d AS (DELETE FROM subscriber_profiles WHERE subscriber_id = ANY($1::bigint[]) RETURNING 1) SELECT count(*) FROM d")
                    // The rows gone may be the oldest the event log is kept for: the retention works
                    // the floor out again (EventLog.replayedFrom), so erasing them lets the log go.
                    // Never waited for: an import holds the table from its start to its end (and then
                    // waits for the generation row this erasure holds: a deadlock), and counts the floor
                    // itself at its end. Skipped then, the floor stays older than it need be: the log
                    // is kept longer, nothing is dropped early.
                    if (out.rows["subscriber_profiles"] ?? 0) > 0 {
                        try c.execute("SAVEPOINT erasure_floor")
                        do {
                            try c.execute("LOCK TABLE churngrid_profile_snapshots IN ROW EXCLUSIVE MODE NOWAIT")
                            try c.execute("""
                                UPDATE churngrid_profile_snapshots SET oldest_as_of = NULL
                                WHERE id = (SELECT max(id) FROM churngrid_profile_snapshots) AND older_rows IS DISTINCT FROM 0
                                """)
                            try c.execute("RELEASE SAVEPOINT erasure_floor")
                        } catch let error as PostgresError where error.sqlState == "55P03" {
                            try c.execute("ROLLBACK TO SAVEPOINT erasure_floor")
                        }
                    }
                    let after = try c.query("SELECT generation FROM churngrid_profile_generation").scalar.flatMap { Int64($0) } ?? before
                    out.generation = (before, after)
                } else {
                    out.rows["subscriber_profiles"] = 0
                }
                // Writes still running in the server — a worker's statement whose connection failed
                // (the worker saw an error, the server did not; it may wait for a lock) — must not
                // commit after the deletes. Each wait below is bounded: a statement stuck longer
                // fails the erasure, to be run again (erasing twice is harmless); and short, as this
                // connection also renews the coordinator's lease.
                try c.execute("SET LOCAL lock_timeout TO '5s'")
                // Live decisions: those under way hold the live campaign's row FOR SHARE (this waits
                // for them; the deletes below see their rows), and any later one carries the contact
                // generation this raises, so it is refused as stale (the workers have forgotten the
                // erased subscribers' triggers by then, and reload their contact state without their
                // contacts). Before the table locks: a decision under way writes its rows.
                try c.execute("UPDATE campaign_live SET contact_generation = contact_generation + 1")
                // Events, trigger rows, actions and contacts being written finish before the deletes,
                // which then see their rows; new writes wait for the erasure's commit (a moment).
                try c.execute("LOCK TABLE subscriber_events, retention_triggers, campaign_actions, contact_history IN SHARE MODE")
                for table in Self.erasedTables {
                    out.rows[table] = try count("WITH d AS (DELETE FROM \(table) WHERE subscriber_id = ANY($1::bigint[]) RETURNING 1) SELECT count(*) FROM d")
                }
                // The erased events may be their shards' newest: their numbers are kept.
                try EventLog.keepSeqFloors(c, shards: shardList)
                out.rows["subscriber_events"] = try count("""
                    WITH d AS (DELETE FROM subscriber_events WHERE shard = ANY($2::integer[]) AND subscriber_id = ANY($1::bigint[]) RETURNING 1)
                    SELECT count(*) FROM d
                    """, [list, shards])
                out.rows["scoring_job_summaries"] = try count("""
                    WITH d AS (
                        UPDATE scoring_job_summaries SET top_risk = (
                            SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM jsonb_array_elements(top_risk) WITH ORDINALITY AS t(e, n)
                            WHERE NOT ((e->>'subscriber_id')::bigint = ANY($1::bigint[])))
                        WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(top_risk) e WHERE (e->>'subscriber_id')::bigint = ANY($1::bigint[]))
                        RETURNING 1)
                    SELECT count(*) FROM d
                    """)
                _ = try c.query("INSERT INTO churngrid_audit_log (actor, roles, credential, action, target, outcome) VALUES ($1, $2, $3, $4, $5, $6)",
                                [audit.actor, audit.roles, audit.credential, audit.action, audit.target, audit.outcome])
                return out
            }
        }
    }
}
