import Postgres

/// A job's champion scores and its challenger's shadow scores, read back for `models compare
/// --job` (docs/models.md, "Champion and challenger").
extension ClusterDatabase {
    /// What `ModelComparison.make` needs of job `job` (of model `name`): both versions, the
    /// subscribers counted, both sides' probabilities counted in 6 × `ComparisonHistograms.bins`
    /// (champion, challenger; everyone, churned, retained — the latest outcome of each subscriber
    /// is its label), and the top-decile counts at both sides' cuts. One read-only transaction, so
    /// the job's partitions cannot be dropped (by a later job's publication) half-way.
    func shadowComparison(job: Int64, name: String) async throws -> (champion: String, challenger: String, subscribers: Int, histograms: [Int64], top: [Int]) {
        try await run { c in
            do {
                return try Self.transaction(c) {
                    try c.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    return try Self.shadowComparison(c, job: job, name: name)
                }
            } catch let error as PostgresError where error.sqlState == "42P01" {
                throw ClusterError("job \(job)'s scores were dropped while they were read (the newest completed jobs' are kept): compare a newer job")
            }
        }
    }

    private static func shadowComparison(_ c: PostgresConnection, job: Int64, name: String) throws -> (String, String, Int, [Int64], [Int]) {
        guard let row = try c.query("SELECT state FROM scoring_jobs WHERE id = $1", [String(job)]).rows.first else {
            throw ClusterError("there is no job \(job)")
        }
        // The model's row of the job: its version and its challenger's (the served model's or an active one's).
        // (A job a coordinator of the previous release started records its challenger in scoring_jobs only.)
        guard let scored = try c.query("""
            SELECT m.model_version, coalesce(m.challenger_version, CASE WHEN m.role = 'served' THEN j.challenger_version END), m.role = 'served'
            FROM scoring_job_models m JOIN scoring_jobs j ON j.id = m.job_id WHERE m.job_id = $1 AND m.model_name = $2
            """, [String(job), name]).rows.first, let champion = scored[0] else {
            let models = try c.query("SELECT model_name FROM scoring_job_models WHERE job_id = $1 ORDER BY 1", [String(job)]).rows.compactMap { $0[0] }
            throw ClusterError("job \(job) did not score model '\(name)' (it scored: \(models.isEmpty ? "nothing recorded" : models.joined(separator: ", ")))")
        }
        guard let challenger = scored[1] else {
            throw ClusterError("job \(job) had no challenger of model \(name): nothing was scored in shadow (churngrid models deploy \(name) --version V --as challenger)")
        }
        guard row[0] == "completed" else { throw ClusterError("job \(job) is \(row[0] ?? "unknown"), not completed: its shadow scores are not all written") }
        guard try c.query("SELECT 1 FROM model_registry WHERE name = $1 AND version = $2", [name, champion]).rows.count == 1 else {
            throw ClusterError("job \(job) scored model version \(champion), which is not a registered version of model '\(name)'")
        }
        guard try c.query("SELECT to_regclass('churn_shadow_scores_job_\(job)') IS NOT NULL AND to_regclass('churn_scores_job_\(job)') IS NOT NULL").scalar == "t" else {
            throw ClusterError("job \(job)'s scores were dropped (the newest completed jobs' are kept): compare a newer job")
        }
        // The model's own scores (the other models share the partitions); the served model's
        // shadow rows have no name.
        let shadowOf = scored[2] == "t" ? "h.model_name IS NULL AND $1::text IS NOT NULL" : "h.model_name = $1"
        let b = ComparisonHistograms.bins
        var h = [Int64](repeating: 0, count: 6 * b)
        let rows = try c.query("""
            WITH labels AS (SELECT DISTINCT ON (subscriber_id) subscriber_id, churned FROM subscriber_outcomes ORDER BY subscriber_id, observed_at DESC)
            SELECT 0, least(\(b - 1), greatest(0, floor(s.probability::float8 * \(b))))::int AS bin, l.churned, count(*)
            FROM churn_scores_job_\(job) s LEFT JOIN labels l USING (subscriber_id)
            WHERE s.probability IS NOT NULL AND s.model_name = $1 GROUP BY 2, 3
            UNION ALL
            SELECT 1, least(\(b - 1), greatest(0, floor(h.probability::float8 * \(b))))::int AS bin, l.churned, count(*)
            FROM churn_shadow_scores_job_\(job) h LEFT JOIN labels l USING (subscriber_id) WHERE \(shadowOf) GROUP BY 2, 3
            """, [name]).rows
        var subscribers = 0, shadowed = 0
        for r in rows {
            guard let side = r[0].flatMap(Int.init), (0...1).contains(side), let bin = r[1].flatMap(Int.init), (0..<b).contains(bin),
                  let count = r[3].flatMap(Int64.init) else { throw ClusterError("job \(job): an unreadable row of its score counts") }
            h[side * b + bin] += count
            if r[2] == "t" { h[(2 + side) * b + bin] += count } else if r[2] == "f" { h[(4 + side) * b + bin] += count }
            if side == 0 { subscribers += Int(count) } else { shadowed += Int(count) }
        }
        guard subscribers > 0 else { throw ClusterError("job \(job) scored no subscribers") }
        guard shadowed == subscribers else {
            throw ClusterError("job \(job) has \(subscribers) champion scores but \(shadowed) shadow scores")
        }
        // Each side's top decile as the live comparison cuts it, and who is in both.
        let cuts = [ComparisonHistograms.topCut(Array(h[0..<b]), share: 0.1), ComparisonHistograms.topCut(Array(h[b..<(2 * b)]), share: 0.1)]
        let top = try c.query("""
            SELECT count(*) FILTER (WHERE s.probability >= $1::float8), count(*) FILTER (WHERE h.probability >= $2::float8),
                   count(*) FILTER (WHERE s.probability >= $1::float8 AND h.probability >= $2::float8)
            FROM churn_scores_job_\(job) s JOIN churn_shadow_scores_job_\(job) h USING (subscriber_id)
            WHERE s.model_name = $3 AND \(shadowOf.replacingOccurrences(of: "$1", with: "$3"))
            """, [String(cuts[0]), String(cuts[1]), name]).rows.first
        guard let top, top.count == 3 else { throw ClusterError("job \(job): no top-decile counts") }
        return (champion, challenger, subscribers, h, top.map { $0.flatMap(Int.init) ?? 0 })
    }
}
