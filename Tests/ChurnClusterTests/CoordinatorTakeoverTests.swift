import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// Two coordinators on one database (real `churngrid` processes): one leads, the other stands by
/// and takes the lease over when the leader stops renewing it; the old leader's writes are fenced
/// by its term, so at most one coordinator publishes.
@Suite("Two coordinators: lease, takeover and fencing", .serialized, .timeLimit(.minutes(10)))
struct CoordinatorTakeoverTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path
    static let lease = 6.0

    static var logger: Logger {
        var l = Logger(label: "test.takeover")
        l.logLevel = .warning
        return l
    }

    static func start(_ name: String, subscribers: Int, shards: Int) async throws -> (url: String, cluster: LocalCluster, client: ClusterClient) {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 29), count: subscribers) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: model, workers: 2, threads: 1,
                                                   shards: shards, coordinatorOptions: ["--lease-seconds", String(lease), "--rejoin-grace", "30", "--http", "127.0.0.1:0"],
                                                   coordinators: 2, logDirectory: "/tmp/churngrid-test-\(getpid())-\(name)", logger: logger)
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        return (url, cluster, client)
    }

    /// Holds the job's publication back until `release`: its transaction waits at the summary's
    /// INSERT (before it marks the job completed or checks the lease), so the job is still running
    /// when the test strikes however slowly a loaded machine gets there. Readers pass.
    final class PublicationHold {
        let connection: PostgresConnection
        init(url: String) throws {
            connection = try PostgresConnection(url: url)
            try connection.execute("BEGIN")
            try connection.execute("LOCK TABLE scoring_job_summaries IN EXCLUSIVE MODE")
        }
        func release() { try? connection.execute("ROLLBACK") }
    }

    static func log(_ cluster: LocalCluster, _ name: String) -> String {
        (try? String(contentsOfFile: cluster.logPath(name), encoding: .utf8)) ?? ""
    }

    /// Waits until job `id` runs with at least one shard written.
    /// Whether job `id` still runs, to strike under it now: as soon as it runs, not after a shard
    /// is written (scoring runs ahead of writing, and on a loaded machine the job could end first).
    static func midJob(_ client: ClusterClient, _ id: Int64) async throws -> Bool {
        guard let job = try await client.coordinator.job(), job.id == id else { return false }
        return job.state == .running
    }

    /// A client of coordinator `name` once it leads and every shard is ready there (asked at its own
    /// endpoint: the figure is the takeover's, not a client's search for the leader).
    static func ledBy(_ name: String, _ cluster: LocalCluster, within: Duration) async throws -> ClusterClient? {
        let deadline = ContinuousClock.now + within
        let index = name == "coordinator" ? 0 : (Int(name.dropFirst("coordinator-".count)) ?? 1) - 1
        while ContinuousClock.now < deadline {
            if let client = try? await ClusterClient.connect(cluster.coordinatorEndpoints[index], logger: logger) {
                if let s = try? await client.coordinator.status(), s.coordinator.hasPrefix(name + "@"), s.unassignedShards == 0, s.workers.count == 2 {
                    return client
                }
                await client.close()
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// Every subscriber's published score: exactly one each, equal to the tree engine's on the
    /// same profile.
    static func checkPublished(url: String, subscribers n: Int, shards: Int) throws {
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        let scoring = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: model))), source: model)
        let (stores, _) = try ProfileLoader(url: url).load(shards: Array(0..<shards), shardCount: shards)
        var published: [Int64: Double] = [:]
        for r in try db.query("SELECT subscriber_id, probability FROM churn_scores_current").rows {
            if let id = r[0].flatMap({ Int64($0) }), let p = r[1].flatMap({ Double($0) }) { published[id] = p }
        }
        var worst = 0.0, checked = 0
        for store in stores.values {
            for row in 0..<store.count {
                let profile = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) }
                let p = scoring.score(profile: profile).probability
                let difference = abs((published[store.id(at: row)] ?? .nan) - p)
                worst = difference.isNaN ? .infinity : max(worst, difference)
                checked += 1
            }
        }
        #expect(checked == n)
        #expect(worst < 1e-6, "largest difference between a published score and the engine: \(worst)")
    }

    @Test("the leader killed mid-job: the standby takes the lease over, the workers follow it keeping their shards, the interrupted job is failed in the new term, the next job is exact")
    func leaderKilled() async throws {
        let n = 60_000, shards = 96
        let (url, cluster, client) = try await Self.start("takeover-kill", subscribers: n, shards: shards)
        defer { cluster.stop() }
        let hold = try PublicationHold(url: url)
        defer { hold.release() }
        // An operator's `rescore --wait` given both coordinators: it follows the takeover and
        // reports how the job ended.
        let waiting = try ChildProcess(try churngridExecutable(), ["rescore", "--wait", "--json", "--coordinator", cluster.coordinatorEndpoint],
                                       logPath: cluster.logPath("rescore-wait"))
        var started: JobStatus?
        for _ in 0..<600 where started == nil {
            started = try await client.coordinator.job()
            if started == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let first = try #require(started?.id, "the CLI started no job")
        #expect(try await client.coordinator.status().coordinator.hasPrefix("coordinator@"))
        #expect(Self.log(cluster, "coordinator-2").contains("standing by"), "the second coordinator stands by")
        // The CLI has its job's id (it logs it) before the leader goes: killed earlier, the CLI's
        // start itself would fail, which is another test's matter.
        for _ in 0..<600 where !waiting.log.contains("rescoring job started") { try await Task.sleep(for: .milliseconds(20)) }
        try #require(waiting.log.contains("rescoring job started"), "the CLI never had its job's id: \(waiting.log)")
        try #require(try await Self.midJob(client, first), "the job ended before the leader could be killed under it")
        // Its publication waits at the hold; the leader renews its lease meanwhile, on a
        // connection of its own: 1.5 leases later it still leads. (When renewals queued
        // behind the publication on the shared connection, the standby took over here.)
        let db0 = try PostgresConnection(url: url)
        _ = try await RescoringTests.eventually("the publication waits at the hold", timeout: .seconds(300)) {
            try db0.query("""
                SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                    AND query LIKE '%INSERT INTO scoring_job_summaries%'
                """).scalar != "0" ? true : nil
        }
        try await Task.sleep(for: .seconds(1.5 * Self.lease))
        let held = try db0.query("SELECT term, holder FROM churngrid_lease").rows.first
        try #require(held?[0] == "1" && held?[1] != "coordinator-2", "the leader lost its lease while its publication waited: \(String(describing: held))")
        let killedAt = ContinuousClock.now
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        hold.release()  // the dead leader's transaction, if it waited there, can only roll back
        await client.close()

        let next = try #require(try await Self.ledBy("coordinator-2", cluster, within: .seconds(120)), "coordinator-2 did not take over")
        print("coordinator takeover: every shard served again \(ContinuousClock.now - killedAt) after the leader was killed (lease \(Self.lease) s)")
        let log2 = Self.log(cluster, "coordinator-2")
        #expect(log2.contains("took the coordinator lease"))
        #expect(log2.contains("adopted the shards the worker still hosts"), "the workers kept their shards")

        let db = try PostgresConnection(url: url)
        let lease = try db.query("SELECT term, holder FROM churngrid_lease").rows.first
        #expect(lease?[0] == "2" && lease?[1] == "coordinator-2", "\(String(describing: lease))")
        let interrupted = try db.query("SELECT state, term FROM scoring_jobs WHERE id = $1", [String(first)]).rows.first
        #expect(interrupted?[0] == "failed" && interrupted?[1] == "1", "\(String(describing: interrupted))")
        // The alert's gauge (ChurnGridJobFailed): the new leader read the failure it marked, which a
        // counter born with it in would not show as an increase.
        let fetched = await runCommand("curl -sf \(shellQuoted(try await cluster.httpURL(of: "coordinator-2") + "/metrics"))")
        #expect(fetched.status == 0, "coordinator-2's /metrics: \(fetched.output)")
        let metrics = fetched.output
        let failedAt = metrics.split(separator: "\n").first { $0.hasPrefix("churngrid_last_failed_job_timestamp_seconds ") }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
        let failedRow = try db.query("SELECT extract(epoch FROM finished_at)::float8 FROM scoring_jobs WHERE id = $1", [String(first)]).scalar.flatMap(Double.init)
        #expect(failedAt != nil && failedRow != nil && abs((failedAt ?? 0) - (failedRow ?? -9)) < 1, "the new leader's last failed job time \(String(describing: failedAt)) is the interrupted job's end \(String(describing: failedRow))")
        #expect(metrics.contains("churngrid_last_completed_job_timestamp_seconds "), "a cluster that never completed a job shows its creation time")
        let cliStatus = try await waiting.wait(timeout: .seconds(120))
        #expect(cliStatus == 1, "rescore --wait exits 1 for a failed job: \(waiting.log)")
        #expect(waiting.log.contains("\"failed\"") && waiting.log.contains("coordinator stopped"), "rescore --wait followed the takeover: \(waiting.log)")

        let second = try await next.coordinator.startRescore()
        let done = try #require(try await DatabaseFaultTests.ended(next, second, within: .seconds(300)))
        #expect(done.state == .completed, "\(done)")
        #expect(try db.query("SELECT term FROM scoring_jobs WHERE id = $1", [String(second)]).scalar == "2")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(second))
        try Self.checkPublished(url: url, subscribers: n, shards: shards)
        await next.close()
    }

    @Test("the leader frozen past its lease mid-job: the standby takes over; resumed, the old leader's writes are refused and it steps down; only the new leader publishes")
    func leaderFrozen() async throws {
        let n = 120_000, shards = 128
        let (url, cluster, client) = try await Self.start("takeover-freeze", subscribers: n, shards: shards)
        defer { cluster.stop() }
        let hold = try PublicationHold(url: url)
        defer { hold.release() }
        let first = try await client.coordinator.startRescore()
        try #require(try await Self.midJob(client, first), "the job ended before the leader could be frozen under it")
        let db0 = try PostgresConnection(url: url)
        try #require(try db0.query("SELECT term FROM churngrid_lease").scalar == "1", "the leader still leads when it is frozen")
        let frozen = try #require(cluster.pid("coordinator"))
        kill(frozen, SIGSTOP)
        // Released while frozen: a publication that waited goes on to wait for its frozen leader,
        // idle in its transaction (ended by the server after 10 s), holding nothing a takeover
        // waits for: the lease row is locked only just before COMMIT; its KEY SHARE lock on the
        // job's row does not stop the job being failed, and the partition's drop gives up and is
        // tried again later.
        hold.release()
        await client.close()

        let next = try await Self.ledBy("coordinator-2", cluster, within: .seconds(120))
        kill(frozen, SIGCONT)  // only now: the takeover happened while the leader was frozen
        let client2 = try #require(next, "coordinator-2 did not take over from the frozen leader")
        let second = try await client2.coordinator.startRescore()

        // Resumed, the old leader finds its term gone at its next write or renewal and steps down.
        var status: Int32?
        for _ in 0..<600 where status == nil {
            status = cluster.exitStatus("coordinator")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status != nil && status != 0, "the old leader stepped down (exit status \(String(describing: status)))")
        let log1 = Self.log(cluster, "coordinator")
        #expect(log1.contains("stepping down"), "the old leader said why it stopped")

        let done = try #require(try await DatabaseFaultTests.ended(client2, second, within: .seconds(300)))
        #expect(done.state == .completed, "\(done)")
        let db = try PostgresConnection(url: url)
        let firstJob = try db.query("SELECT state FROM scoring_jobs WHERE id = $1", [String(first)]).scalar
        #expect(firstJob == "failed", "the frozen leader's job was never published (\(String(describing: firstJob)))")
        #expect(try db.query("SELECT count(*) FROM scoring_jobs WHERE state = 'completed'").scalar == "1")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(second))
        try Self.checkPublished(url: url, subscribers: n, shards: shards)
        await client2.close()
    }
}
