import Postgres

/// A job's champion scores and its challenger's shadow scores, read back for `models compare
/// --job` (docs/models.md, "Champion and challenger").
extension ClusterDatabase {
    /// Job `job`'s champion and challenger versions and both sides' probabilities counted as
    /// `ModelComparison.make` reads them (6 × `ComparisonHistograms.bins`: champion, challenger;
    /// everyone, churned, retained — the latest outcome of each subscriber is its label), and the
    /// subscribers counted.
    func shadowHistograms(job: Int64) async throws -> (champion: String, challenger: String, subscribers: Int, histograms: [Int64]) {
        try await run { c in
            guard let row = try c.query("SELECT model_version, challenger_version, state FROM scoring_jobs WHERE id = $1", [String(job)]).rows.first else {
                throw ClusterError("there is no job \(job)")
            }
            guard let champion = row[0], let challenger = row[1] else {
                throw ClusterError("job \(job) had no challenger: nothing was scored in shadow (churngrid models deploy NAME --version V --as challenger)")
            }
            guard row[2] == "completed" else { throw ClusterError("job \(job) is \(row[2] ?? "unknown"), not completed: its shadow scores are not all written") }
            guard try c.query("SELECT to_regclass('churn_shadow_scores_job_\(job)') IS NOT NULL AND to_regclass('churn_scores_job_\(job)') IS NOT NULL").scalar == "t" else {
                throw ClusterError("job \(job)'s scores were dropped (the newest completed jobs' are kept): compare a newer job")
            }
            let b = ComparisonHistograms.bins
            var h = [Int64](repeating: 0, count: 6 * b)
            let rows = try c.query("""
                WITH labels AS (SELECT DISTINCT ON (subscriber_id) subscriber_id, churned FROM subscriber_outcomes ORDER BY subscriber_id, observed_at DESC)
                SELECT 0, least(\(b - 1), greatest(0, floor(s.probability::float8 * \(b))))::int AS bin, l.churned, count(*)
                FROM churn_scores_job_\(job) s LEFT JOIN labels l USING (subscriber_id) WHERE s.probability IS NOT NULL GROUP BY 2, 3
                UNION ALL
                SELECT 1, least(\(b - 1), greatest(0, floor(h.probability::float8 * \(b))))::int AS bin, l.churned, count(*)
                FROM churn_shadow_scores_job_\(job) h LEFT JOIN labels l USING (subscriber_id) GROUP BY 2, 3
                """).rows
            var subscribers = 0, shadowed = 0
            for r in rows {
                guard let side = r[0].flatMap(Int.init), (0...1).contains(side), let bin = r[1].flatMap(Int.init), (0..<b).contains(bin),
                      let count = r[3].flatMap(Int64.init) else { throw ClusterError("job \(job): an unreadable row of its score counts") }
                h[side * b + bin] += count
                if r[2] == "t" { h[(2 + side) * b + bin] += count } else if r[2] == "f" { h[(4 + side) * b + bin] += count }
                if side == 0 { subscribers += Int(count) } else { shadowed += Int(count) }
            }
            guard shadowed == subscribers else {
                throw ClusterError("job \(job) has \(subscribers) champion scores but \(shadowed) shadow scores")
            }
            return (champion, challenger, subscribers, h)
        }
    }

    /// Job `job`'s subscribers in the champion's top decile (probability at or above `cuts[0]`),
    /// in the challenger's (`cuts[1]`), and in both.
    func shadowTopCounts(job: Int64, cuts: [Double]) async throws -> [Int] {
        try await run { c in
            let row = try c.query("""
                SELECT count(*) FILTER (WHERE s.probability >= $1::float8), count(*) FILTER (WHERE h.probability >= $2::float8),
                       count(*) FILTER (WHERE s.probability >= $1::float8 AND h.probability >= $2::float8)
                FROM churn_scores_job_\(job) s JOIN churn_shadow_scores_job_\(job) h USING (subscriber_id)
                """, [String(cuts[0]), String(cuts[1])]).rows.first
            guard let row, row.count == 3 else { throw ClusterError("job \(job): no top-decile counts") }
            return row.map { $0.flatMap(Int.init) ?? 0 }
        }
    }
}
