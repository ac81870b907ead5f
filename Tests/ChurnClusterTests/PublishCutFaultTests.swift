@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport
import WireFormat

/// A publication whose COMMIT was sent when the coordinator's connection failed, and which the
/// server went on to commit: the coordinator cannot tell whether it did. It must find the job
/// published — once, completed, never failed — whether its next try comes before the late commit
/// or waits for it (beside `DatabaseFaultTests.restartedMidPublish`, where the cut publish rolls back).
@Suite("A job start or publication committing after its connection was cut", .timeLimit(.minutes(10)))
struct PublishCutFaultTests {
    /// A fresh base of `subscribers` and a cluster whose coordinator reaches PostgreSQL through a
    /// proxy the test cuts (`TCPProxy.dropClients`).
    struct ProxiedCoordinator {
        static let subscribers = 20_000
        let url: String
        let proxy: TCPProxy
        let cluster: LocalCluster
        let client: ClusterClient
        let db: PostgresConnection

        static func start(_ name: String) async throws -> ProxiedCoordinator {
            let url = try await TestDatabase.fresh()
            try await onOwnThread {
                _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 5), count: subscribers) { _ in }
            }
            var components = try #require(URLComponents(string: url))
            let proxy = try TCPProxy(targetPort: UInt16(try #require(components.port)))
            components.port = Int(proxy.port)
            let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: RescoringTests.model, workers: 2,
                                                       threads: 1, shards: 32, postgresURLs: ["coordinator": try #require(components.string)],
                                                       logDirectory: "/tmp/churngrid-test-\(getpid())-\(name)", logger: RescoringTests.logger)
            let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
            return ProxiedCoordinator(url: url, proxy: proxy, cluster: cluster, client: client, db: try PostgresConnection(url: url))
        }

        /// Makes the COMMIT of a transaction that writes `table` (`events`: "INSERT", "INSERT OR
        /// UPDATE") wait while advisory lock `key` is held: a deferred trigger runs at COMMIT.
        func holdCommits(writing table: String, on events: String, key: Int) throws {
            try db.execute("""
                CREATE FUNCTION test_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_advisory_xact_lock(\(key)); RETURN NULL; END $$;
                CREATE CONSTRAINT TRIGGER test_hold_commit AFTER \(events) ON \(table)
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_hold_commit();
                """)
        }

        /// The backend whose COMMIT waits on the advisory lock.
        func heldCommit() async throws -> String {
            try await RescoringTests.eventually("a COMMIT waiting", timeout: .seconds(300)) {
                try db.query("""
                    SELECT pid FROM pg_stat_activity
                    WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query = 'COMMIT'
                    """).rows.first?[0].flatMap { $0 }
            }
        }

        /// Runs `call` with the COMMIT of its write to `table` held in the server (advisory lock
        /// `key`), cuts the coordinator's connections while that COMMIT waits, waits for the
        /// coordinator to log `retried` (it writes again), checks that the held COMMIT still waits
        /// and that `unseen` (a count) is still 0 — then lets the COMMIT through and returns what
        /// `call` returned.
        func cutAtCommit<T: Sendable>(writing table: String, on events: String, key: Int, retried: String, unseen: String,
                                      _ call: @escaping @Sendable () async throws -> T) async throws -> T {
            try holdCommits(writing: table, on: events, key: key)
            let holder = try PostgresConnection(url: url)
            _ = try holder.query("SELECT pg_advisory_lock($1)", [String(key)])
            let task = Task { try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await call() } }
            let committing = try await heldCommit()
            #expect(proxy.dropClients() > 0, "the coordinator's connections were cut")
            let log = { [cluster] in (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? "" }
            _ = try await RescoringTests.eventually("the coordinator wrote again", timeout: .seconds(120)) { log().contains(retried) ? true : nil }
            try await Task.sleep(for: .seconds(1))
            #expect(try db.query("SELECT wait_event FROM pg_stat_activity WHERE pid = $1", [committing]).scalar == "advisory",
                    "the server did not notice the cut: the COMMIT still waits")
            #expect(try db.query(unseen).scalar == "0", "nothing visible before the late COMMIT: \(unseen)")
            _ = try holder.query("SELECT pg_advisory_unlock($1)", [String(key)])
            let result = try await task.value
            proxy.releaseDropped()
            return result
        }

        func stop() {
            cluster.stop()
            proxy.stop()
        }
    }

    @Test("the coordinator's COMMIT of a publication waits in the server (a deferred trigger the test installs waits on a lock) when its connection is cut (through a proxy, the server side left open); the coordinator retries, the late COMMIT goes through: the job is completed and published once, its scores whole")
    func commitAfterCut() async throws {
        let setup = try await ProxiedCoordinator.start("publish-cut")
        defer { setup.stop() }
        let (url, proxy, cluster, client, db, subscribers) = (setup.url, setup.proxy, setup.cluster, setup.client, setup.db, ProxiedCoordinator.subscribers)
        // A publication's COMMIT waits while the test holds the lock.
        try setup.holdCommits(writing: "churngrid_published", on: "INSERT OR UPDATE", key: 4242)
        let holder = try PostgresConnection(url: url)
        _ = try holder.query("SELECT pg_advisory_lock(4242)")
        let job = try await client.coordinator.startRescore()
        let committing = try await setup.heldCommit()
        #expect(proxy.dropClients() > 0, "the coordinator's connections were cut")
        // The coordinator sees its publish fail and tries again (its new connections are relayed)
        // while the cut COMMIT still waits in the server.
        let log = { (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? "" }
        _ = try await RescoringTests.eventually("the coordinator retried the publication", timeout: .seconds(120)) {
            log().contains("publishing waits for it") ? true : nil
        }
        try await Task.sleep(for: .seconds(1))
        #expect(try db.query("SELECT wait_event FROM pg_stat_activity WHERE pid = $1", [committing]).scalar == "advisory",
                "the server did not notice the cut: the COMMIT still waits")
        #expect(try db.query("SELECT count(*) FROM churngrid_published").scalar == "0", "nothing published before the late COMMIT")
        _ = try holder.query("SELECT pg_advisory_unlock(4242)")
        _ = try await RescoringTests.eventually("the late COMMIT done", timeout: .seconds(120)) { () throws -> Bool? in
            try db.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [committing]).scalar == "0" ? true : nil
        }
        proxy.releaseDropped()

        let done = try #require(try await DatabaseFaultTests.ended(client, job, within: .seconds(300)))
        #expect(done.state == .completed, "\(done)")
        #expect(done.retries > 0, "the publish was retried (retries \(done.retries))")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(job))
        #expect(try db.query("SELECT state FROM scoring_jobs WHERE id = $1", [String(job)]).scalar == "completed")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(subscribers) && counts?[1] == String(subscribers), "\(String(describing: counts))")
        #expect(try db.query("SELECT count(*) FROM scoring_job_summaries WHERE job_id = $1", [String(job)]).scalar == "1")
        // The next job publishes normally (the trigger no longer waits).
        let next = try await client.coordinator.startRescore()
        #expect(try await DatabaseFaultTests.ended(client, next, within: .seconds(300))?.state == .completed)
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(next))
        await client.close()
    }
    @Test("a job's start whose COMMIT waits in the server when the coordinator's connection is cut: the caller is told it failed, the server commits it later (a job recorded running that never runs); the next start fails that orphan and runs, completed and published")
    func startCommitAfterCut() async throws {
        let setup = try await ProxiedCoordinator.start("start-cut")
        defer { setup.stop() }
        let (url, proxy, client, db, subscribers) = (setup.url, setup.proxy, setup.client, setup.db, ProxiedCoordinator.subscribers)
        try setup.holdCommits(writing: "scoring_jobs", on: "INSERT", key: 4243)
        let holder = try PostgresConnection(url: url)
        _ = try holder.query("SELECT pg_advisory_lock(4243)")
        let start = Task { try await client.coordinator.startRescore() }
        _ = try await setup.heldCommit()
        #expect(proxy.dropClients() > 0, "the coordinator's connections were cut")
        let told = await start.result
        #expect((try? told.get()) == nil, "the caller is told the start failed: \(told)")
        _ = try holder.query("SELECT pg_advisory_unlock(4243)")
        let orphan = try await RescoringTests.eventually("the cut-off start committed", timeout: .seconds(60)) { () throws -> String? in
            try db.query("SELECT id FROM scoring_jobs WHERE state = 'running'").scalar
        }
        proxy.releaseDropped()
        // The next start fails the orphan (it never runs) and runs.
        let next = try await client.coordinator.startRescore()
        #expect(String(next) != orphan)
        #expect(try await DatabaseFaultTests.ended(client, next, within: .seconds(300))?.state == .completed)
        let row = try db.query("SELECT state, error FROM scoring_jobs WHERE id = $1", [orphan]).rows.first
        let error = row?[1].flatMap { $0 } ?? ""
        #expect(row?[0] == "failed" && error.contains("start was cut off"), "\(String(describing: row))")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(next))
        #expect(try db.query("SELECT to_regclass('churn_scores_job_' || $1) IS NULL", [orphan]).scalar == "t", "the orphan's partition dropped")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(subscribers) && counts?[1] == String(subscribers), "\(String(describing: counts))")
        await client.close()
    }

    @Test("a campaign run whose COMMIT waits in the server when the coordinator's connection is cut: the coordinator writes it again under the same request token, which waits for the late COMMIT and finds its run; the caller is told that run, its contacts written once")
    func campaignRunCommitAfterCut() async throws {
        let setup = try await ProxiedCoordinator.start("campaign-cut")
        defer { setup.stop() }
        let (client, db) = (setup.client, setup.db)
        let job = try await client.coordinator.startRescore()
        #expect(try await DatabaseFaultTests.ended(client, job, within: .seconds(300))?.state == .completed)
        let config = Array(LiveCampaignTests.campaign(name: "cut-run", callCapacity: nil, control: 0.2).utf8)
        let answer = try await setup.cutAtCommit(writing: "campaign_runs", on: "INSERT", key: 4244, retried: "the campaign run's write waits for it",
                                                 unseen: "SELECT count(*) FROM campaign_runs") {
            try await client.coordinator.runCampaign(CampaignRunRequest(config: config, source: "cut-run.json", job: job))
        }
        let summary = try CampaignTests.json(answer)
        let runID = try #require(summary["run_id"] as? Int64, "the caller is told the run: \(answer)")
        // One run, the one the late COMMIT wrote; its contacts once each.
        let runs = try db.query("SELECT run_id, request_token IS NOT NULL FROM campaign_runs").rows
        #expect(runs.count == 1 && runs.first?[0] == String(runID) && runs.first?[1] == "t", "\(runs)")
        let treated = Int(try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'", [String(runID)]).scalar ?? "") ?? 0
        #expect(treated > 100 && summary["treatment"] as? Int == treated, "treated \(treated), told \(summary["treatment"] ?? "-")")
        let contacts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM contact_history").rows.first
        #expect(contacts?[0] == String(treated) && contacts?[1] == String(treated), "\(String(describing: contacts))")
        await client.close()
    }

    @Test("a live campaign's start whose COMMIT waits in the server when the coordinator's connection is cut: the coordinator starts it again under the same request token, which waits for the late COMMIT and finds its run; the operator is told that run is live, and it is the one live")
    func liveStartCommitAfterCut() async throws {
        let setup = try await ProxiedCoordinator.start("live-start-cut")
        defer { setup.stop() }
        let (client, db) = (setup.client, setup.db)
        let config = Array(LiveCampaignTests.campaign(name: "cut-live", callCapacity: nil, control: 0.2).utf8)
        let answer = try await setup.cutAtCommit(writing: "campaign_live", on: "INSERT", key: 4245, retried: "the live campaign's start waits for it",
                                                 unseen: "SELECT count(*) FROM campaign_live") {
            try await client.coordinator.startLiveCampaign(LiveCampaignRequest(config: config, source: "cut-live.json"))
        }
        let runID = try #require(try CampaignTests.json(answer)["run_id"] as? Int64, "the operator is told the run: \(answer)")
        // One run, live: the one the late COMMIT made.
        #expect(try db.query("SELECT count(*) FROM campaign_runs").scalar == "1")
        #expect(try db.query("SELECT run_id FROM campaign_live").scalar == String(runID))
        let status = try CampaignTests.json(try await client.coordinator.liveCampaignStatus())
        #expect(status["run_id"] as? Int64 == runID, "\(status)")
        await client.close()
    }

    @Test("a model deployment whose record's COMMIT waits in the server when the coordinator's connection is cut: the coordinator writes it again (the same model and version), which waits for the late COMMIT; the deployment goes through, and the cluster serves what the database names")
    func deployCommitAfterCut() async throws {
        let setup = try await ProxiedCoordinator.start("deploy-cut")
        defer { setup.stop() }
        let (client, db) = (setup.client, setup.db)
        let file = try ModelRegistryTests.variant("deploy-cut")
        let added = try await client.coordinator.addModel(name: "churn", source: "deploy-cut.json", bytes: BulkArray(Array(try Data(contentsOf: URL(fileURLWithPath: file)))))
        let before = try #require(try db.query("SELECT version FROM model_served").scalar)
        #expect(before != added.version)
        let deployment = try await setup.cutAtCommit(writing: "model_served", on: "INSERT OR UPDATE", key: 4246, retried: "recording the deployment waits for it",
                                                     unseen: "SELECT count(*) FROM model_served WHERE version = '\(added.version)'") {
            try await client.coordinator.deployModel(name: "churn", version: added.version)
        }
        #expect(deployment.version == added.version && deployment.previous == before, "\(deployment)")
        #expect(try db.query("SELECT version FROM model_served").scalar == added.version)
        #expect(try await client.coordinator.status().modelVersion == added.version, "the cluster serves what the database names")
        await client.close()
    }
}
