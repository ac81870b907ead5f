import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport
import TreeModel

/// A coordinator and two workers as separate `churngrid` processes on 127.0.0.1, over a real
/// PostgreSQL holding a synthetic base.
@Suite("Rescoring jobs and live queries on a local cluster", .serialized)
struct RescoringTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    static var logger: Logger {
        var l = Logger(label: "test.cluster")
        l.logLevel = .warning
        return l
    }

    /// A database with `subscribers` generated profiles, and a cluster over it.
    static func cluster(subscribers: Int, shards: Int, name: String) async throws -> (url: String, cluster: LocalCluster, client: ClusterClient) {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {  // seconds of blocking work: off the cooperative pool
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 7), count: subscribers) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: model, workers: 2, threads: 1,
                                                   shards: shards, logDirectory: "/tmp/churngrid-test-\(getpid())-\(name)", logger: logger)
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        return (url, cluster, client)
    }

    static func waitForJob(_ client: ClusterClient, _ id: Int64, until: (JobStatus) -> Bool = { $0.state != "running" }) async throws -> JobStatus {
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            if let s = try await client.coordinator.job(), s.id == id, until(s) { return s }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterError("job \(id) did not finish")
    }

    @Test("every subscriber is scored exactly once, the published scores are the tree engine's, a live query equals the job")
    func rescoreExactlyOnce() async throws {
        let n = 20_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 64, name: "exactly-once")
        defer { cluster.stop() }
        let id = try await client.coordinator.startRescore()
        let job = try await Self.waitForJob(client, id)
        #expect(job.state == "completed", "\(job.error ?? "")")
        #expect(job.subscribers == n && job.shardsDone == 64)

        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows[0]
        #expect(counts[0] == String(n) && counts[1] == String(n))
        #expect(try db.query("SELECT count(*) FROM scoring_job_shards WHERE job_id = $1", [String(id)]).scalar == "64")
        // The summary the coordinator accumulated equals what PostgreSQL computes from the rows.
        let stored = try db.query("""
            SELECT subscribers, mean_probability, array_to_string(deciles, ','), array_to_string(histogram, ','), per_band::text, per_region::text
            FROM scoring_job_summaries WHERE job_id = $1
            """, [String(id)]).rows[0]
        let computed = try db.query("""
            WITH s AS (SELECT * FROM churn_scores WHERE job_id = \(id))
            SELECT count(*), avg(probability),
                array_to_string(percentile_cont(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) WITHIN GROUP (ORDER BY probability), ','),
                (SELECT string_agg(n::text, ',' ORDER BY b) FROM (SELECT b, (SELECT count(*) FROM s WHERE least(width_bucket(probability, 0, 1, 20), 20) = b) AS n
                                                          FROM generate_series(1, 20) AS b) AS h),
                (SELECT jsonb_object_agg(churngrid_risk_band(risk_band), n)::text FROM (SELECT risk_band, count(*) AS n FROM s GROUP BY risk_band) AS x),
                (SELECT jsonb_object_agg(coalesce(region::text, 'unknown'), n)::text FROM (SELECT region, count(*) AS n FROM s GROUP BY region) AS x)
            FROM s
            """).rows[0]
        #expect(stored[0] == String(n) && stored[0] == computed[0])
        #expect(abs(Double(stored[1]!)! - Double(computed[1]!)!) < 1e-9)
        let decileError = zip(stored[2]!.split(separator: ","), computed[2]!.split(separator: ",")).map { abs(Double($0)! - Double($1)!) }
        #expect(decileError.count == 9 && decileError.max()! < 1e-6, "deciles \(stored[2]!) vs \(computed[2]!)")
        #expect(stored[3] == computed[3], "histogram")
        // Bands with no subscriber are stored as 0; PostgreSQL's aggregate leaves them out.
        let bands = try db.query("SELECT coalesce(jsonb_object_agg(key, value) FILTER (WHERE value::text <> '0'), '{}')::text FROM jsonb_each($1::jsonb)", [stored[4]]).scalar
        #expect(bands == computed[4], "per band")
        #expect(stored[5] == computed[5], "per region")
        #expect(try db.query("SELECT count(*) FROM subscriber_profiles p LEFT JOIN churn_scores_current s USING (subscriber_id) WHERE s.subscriber_id IS NULL").scalar == "0")

        // The tree engine on the same profiles, read back from PostgreSQL.
        let scoring = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: Self.model))), source: Self.model)
        let (stores, _) = try ProfileLoader(url: url).load(shards: Array(0..<64), shardCount: 64)
        var published: [Int64: Float] = [:]
        for r in try db.query("SELECT subscriber_id, probability FROM churn_scores_current").rows {
            published[Int64(r[0]!)!] = Float(r[1]!)!
        }
        var worst = 0.0, checked = 0
        for store in stores.values {
            for row in 0..<store.count {
                let profile = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) }
                let p = scoring.score(profile: profile).probability
                worst = max(worst, abs(Double(published[store.id(at: row)] ?? -1) - p))
                checked += 1
            }
        }
        #expect(checked == n)
        #expect(worst < 1e-6, "largest difference between a published score and the engine: \(worst)")

        // Live queries: the job's score and first reason for unchanged subscribers; a clear "not found".
        for r in try db.query("SELECT subscriber_id, probability, reason1 FROM churn_scores_current ORDER BY probability DESC LIMIT 5").rows {
            guard case .found(let live) = try await client.coordinator.score(Int64(r[0]!)!) else {
                Issue.record("subscriber \(r[0]!) not found live"); continue
            }
            #expect(abs(live.probability - Double(r[1]!)!) < 1e-6)
            #expect(live.reasons.first?.feature == r[2])
            #expect(live.modelVersion == job.modelVersion)
        }
        guard case .notFound(let missing, _) = try await client.coordinator.score(1) else {
            Issue.record("an unknown subscriber was not reported as not found"); return
        }
        #expect(missing == 1)
        await client.close()
    }

    @Test("a worker killed with SIGKILL mid-job: its shards are re-run on the survivor and every subscriber is scored exactly once")
    func workerKilledMidJob() async throws {
        let n = 60_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 256, name: "kill")
        defer { cluster.stop() }
        let id = try await client.coordinator.startRescore()
        _ = try await Self.waitForJob(client, id) { $0.shardsDone >= 20 || $0.state != "running" }
        let victim = try #require(cluster.pid("worker-1"))
        kill(victim, SIGKILL)
        let job = try await Self.waitForJob(client, id)

        let db = try PostgresConnection(url: url)
        if job.state == "completed" {
            let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows[0]
            #expect(counts[0] == String(n) && counts[1] == String(n))
            #expect(try db.query("SELECT count(*) FROM scoring_job_shards WHERE job_id = $1", [String(id)]).scalar == "256")
        } else {
            // The other acceptable outcome: a clean failure with nothing published.
            Issue.record("the job failed instead of re-running the lost shards: \(job.error ?? "")")
            #expect(try db.query("SELECT count(*) FROM churngrid_published").scalar == "0")
        }
        let status = try await client.coordinator.status()
        #expect(status.workers.map(\.name) == ["worker-2"])
        #expect(status.unassignedShards == 0)
        await client.close()
    }
}
