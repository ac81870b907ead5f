import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// The cluster's own PostgreSQL (a private server of this test, not the shared one) stopped while
/// a job runs, then started again: the coordinator reconnects by itself, the failed job's state is
/// written once the database is back (never left 'running'), and the next job is exactly once.
@Suite("PostgreSQL going away during a job", .serialized, .timeLimit(.minutes(10)))
struct DatabaseFaultTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path
    static let script = TestDatabase.packageRoot.appendingPathComponent("Deploy/local/pg.sh").path

    /// Job `id` once it has ended, or nil if it still runs after `within`.
    static func ended(_ client: ClusterClient, _ id: Int64, within: Duration) async throws -> JobStatus? {
        let deadline = ContinuousClock.now + within
        while ContinuousClock.now < deadline {
            do {
                if let job = try await client.coordinator.job(), job.id == id, job.state != .running { return job }
            } catch let error as RemoteCallError where error.code == .timedOut {
                // A loaded machine (CI runs the suites side by side) may keep one poll past its
                // timeout; the deadline still bounds the wait.
                print("job \(id): a status poll timed out (\(error)); asking again")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    /// A private PostgreSQL of this test (so it can be stopped, restarted and frozen without
    /// touching the shared one), a generated base in it, and a cluster over it.
    struct Setup {
        let dir: String, url: String, subscribers: Int
        let cluster: LocalCluster, client: ClusterClient, logger: Logger

        static func start(_ name: String, subscribers: Int, shards: Int, seed: UInt64, urlSuffix: String = "",
                          coordinatorOptions: [String] = []) async throws -> Setup {
            let dir = "/tmp/churngrid-test-\(getpid())-\(name)"
            let (status, output) = await runCommand("bash \(shellQuoted(script)) start \(shellQuoted(dir)) 2>&1")
            try #require(status == 0, "\(output)")
            let url = try #require(output.split(separator: "\n").last.map(String.init)) + urlSuffix
            try await onOwnThread {
                _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: seed), count: subscribers) { _ in }
            }
            var logger = Logger(label: "test.\(name)")
            logger.logLevel = .warning
            let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: DatabaseFaultTests.model, workers: 2,
                                                       threads: 1, shards: shards, coordinatorOptions: coordinatorOptions,
                                                       logDirectory: "\(dir)-logs", logger: logger)
            let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
            return Setup(dir: dir, url: url, subscribers: subscribers, cluster: cluster, client: client, logger: logger)
        }

        func stop() {
            cluster.stop()
            let client = client, dir = dir
            Task {
                await client.close()
                _ = await runCommand("bash \(shellQuoted(DatabaseFaultTests.script)) stop \(shellQuoted(dir))")
            }
        }
    }

    @Test("stopped mid-job past the deadline: the job fails with the reason, the coordinator reconnects, the failure is recorded once the server is back, the next job is exactly once")
    func restartMidJob() async throws {
        let setup = try await Setup.start("pg-fault", subscribers: 200_000, shards: 256, seed: 11, coordinatorOptions: ["--database-deadline", "3"])
        defer { setup.stop() }
        let (dir, url, cluster, client, n) = (setup.dir, setup.url, setup.cluster, setup.client, setup.subscribers)

        // The server stops once the job has written its first shards.
        let first = try await client.coordinator.startRescore()
        var stoppedMidJob = false
        for _ in 0..<3000 {
            guard let job = try await client.coordinator.job() else { break }
            if job.state != .running { break }
            if job.shardsDone >= 1 {
                _ = await runCommand("bash \(shellQuoted(Self.script)) stop \(shellQuoted(dir))")
                stoppedMidJob = job.state == .running
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(stoppedMidJob, "the job ended before the server could be stopped under it")
        let failed = try await Self.ended(client, first, within: .seconds(60))
        #expect(failed?.state == .failed, "\(String(describing: failed))")
        #expect(failed?.error?.isEmpty == false)

        // The server comes back (same port); asking the status writes the recorded failure.
        let (restarted, text) = await runCommand("PG_SAME_PORT=1 bash \(shellQuoted(Self.script)) start \(shellQuoted(dir)) 2>&1")
        #expect(restarted == 0, "\(text)")
        _ = try await client.coordinator.status()
        let db = try PostgresConnection(url: url)
        let row = try db.query("SELECT state, error FROM scoring_jobs WHERE id = $1", [String(first)]).rows.first
        #expect(row?[0] == "failed", "job \(first) is \(String(describing: row?[0]))")
        #expect(try db.query("SELECT count(*) FROM pg_tables WHERE tablename = $1", ["churn_scores_job_\(first)"]).scalar == "0")

        // The next job runs on the reconnected coordinator and scores everyone exactly once.
        let second = try await client.coordinator.startRescore()
        let done = try await Self.ended(client, second, within: .seconds(300))
        #expect(done?.state == .completed, "\(String(describing: done))")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("reconnected to PostgreSQL"), "the coordinator reconnected (the fault happened)")
    }

    @Test("restarted mid-job: the job's writes wait for the server and the job completes with every subscriber exactly once")
    func restartedMidJob() async throws {
        let setup = try await Setup.start("pg-restart", subscribers: 200_000, shards: 256, seed: 17)
        defer { setup.stop() }
        let (dir, url, client, n) = (setup.dir, setup.url, setup.client, setup.subscribers)

        let id = try await client.coordinator.startRescore()
        var restartedMidJob = false
        for _ in 0..<3000 {
            guard let job = try await client.coordinator.job(), job.state == .running else { break }
            if job.shardsDone >= 1 {
                let (restarted, text) = await runCommand("bash \(shellQuoted(Self.script)) restart \(shellQuoted(dir)) 2>&1")
                #expect(restarted == 0, "\(text)")
                restartedMidJob = true
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(restartedMidJob, "the job ended before the server could be restarted under it")
        let done = try await Self.ended(client, id, within: .seconds(300))
        #expect(done?.state == .completed, "\(String(describing: done))")
        #expect((done?.retries ?? 0) > 0, "the job's writes were retried: the restart happened under it")
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(id))
    }

    @Test("a worker joins while PostgreSQL is down: the shards move (streamed), nothing is half-applied, and the map is saved once the server is back")
    func joinWhileDown() async throws {
        let setup = try await Setup.start("pg-join", subscribers: 6_000, shards: 48, seed: 19)
        defer { setup.stop() }
        let (dir, url, cluster, client, logger) = (setup.dir, setup.url, setup.cluster, setup.client, setup.logger)
        let before = try await client.coordinator.status().epoch
        // Every owner has taken its shards' events (raised their fences) before the server goes:
        // a copy whose owner has not yet done so travels without event state, and the joining
        // worker would have to load it from PostgreSQL, which is down. (The cold start streams
        // half the shards just before this; on a loaded machine the fences may still be rising.)
        _ = try await RescoringTests.eventually("the owners' event fences were not all raised", timeout: .seconds(60)) { () -> Bool? in
            let raised = try PostgresConnection(url: url).query("""
                SELECT count(*) FROM churngrid_event_owners o JOIN churngrid_shard_map m ON m.shard = o.shard AND m.node = o.node
                """).scalar
            return raised == "48" ? true : nil
        }

        _ = await runCommand("bash \(shellQuoted(Self.script)) stop \(shellQuoted(dir))")
        try cluster.addWorker("worker-3", threads: 1)
        try await cluster.waitUntilReady(workers: 3, timeout: .seconds(120), logger: logger)
        let joined = try await client.coordinator.status()
        #expect(joined.epoch > before)
        #expect(joined.workers.allSatisfy { $0.shards > 0 }, "\(joined.workers.map { ($0.name, $0.shards) })")
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("the shard map could not be saved"), "the save failed while the server was down")

        let (restarted, text) = await runCommand("PG_SAME_PORT=1 bash \(shellQuoted(Self.script)) start \(shellQuoted(dir)) 2>&1")
        #expect(restarted == 0, "\(text)")
        var saved: String?
        for _ in 0..<100 {
            _ = try await client.coordinator.status()
            saved = try? PostgresConnection(url: url).query("SELECT epoch FROM churngrid_cluster").scalar
            if saved == String(joined.epoch) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(saved == String(joined.epoch), "saved epoch \(String(describing: saved)), in memory \(joined.epoch)")
        let nodes = try PostgresConnection(url: url).query("SELECT count(DISTINCT node) FROM churngrid_shard_map").scalar
        #expect(nodes == "3")
    }

    @Test("a worker lost while PostgreSQL is down (no standbys): its shards cannot be reloaded, so their placement is retried; a worker that joins meanwhile is not turned away; once the server is back every shard has an owner again and answers")
    func lostWhileDown() async throws {
        let setup = try await Setup.start("pg-lost", subscribers: 6_000, shards: 48, seed: 23)
        defer { setup.stop() }
        let (dir, url, cluster, client, logger) = (setup.dir, setup.url, setup.cluster, setup.client, setup.logger)
        _ = try await RescoringTests.eventually("the owners' event fences were not all raised", timeout: .seconds(60)) { () -> Bool? in
            let raised = try PostgresConnection(url: url).query("""
                SELECT count(*) FROM churngrid_event_owners o JOIN churngrid_shard_map m ON m.shard = o.shard AND m.node = o.node
                """).scalar
            return raised == "48" ? true : nil
        }
        let ids = try PostgresConnection(url: url).query("SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 200").rows.compactMap { $0[0].flatMap { Int64($0) } }

        _ = await runCommand("bash \(shellQuoted(Self.script)) stop \(shellQuoted(dir))")
        kill(try #require(cluster.pid("worker-2")), SIGKILL)
        // Declared lost; its shards cannot be loaded on worker-1 from the stopped server.
        let logPath = cluster.logPath("coordinator")
        _ = try await RescoringTests.eventually("the coordinator did not fail to move the lost worker's shards", timeout: .seconds(60)) { () -> Bool? in
            ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("could not move the lost worker's shards; trying again") ? true : nil
        }
        let stranded = try await client.coordinator.status()
        #expect(stranded.unassignedShards > 0, "shards without an owner while the server is down: \(stranded.unassignedShards)")
        // The status says why nothing moves, and when it is tried again (not only the log).
        let pending = try #require(stranded.placement, "the status does not say that placing shards failed")
        // The last attempt's reason names the cause: the worker could not reach PostgreSQL.
        #expect(pending.failures >= 1 && pending.lastError.contains("PostgreSQL") && pending.lastError.contains("worker-1"), "\(pending)")
        let shown = await runCommand("\(shellQuoted(try churngridExecutable())) status --coordinator \(cluster.coordinatorEndpoint)")
        #expect(shown.status == 0 && shown.output.contains("placement: placing shards failed"), "\(shown.output)")
        // And that the coordinator's own PostgreSQL calls fail (the lease renewal makes one a second).
        let database = try #require(stranded.database, "the status does not say whether PostgreSQL answers")
        #expect(!database.reachable && database.failures >= 1 && (database.unreachableForSeconds ?? 0) > 0 && database.lastError?.contains("PostgreSQL") == true, "\(database)")
        #expect(shown.output.contains("database: UNREACHABLE for "), "\(shown.output)")
        // A worker that joins meanwhile is a member, not turned away by the failed placement.
        try cluster.addWorker("worker-3", threads: 1)
        try await Task.sleep(for: .seconds(4))

        let (restarted, text) = await runCommand("PG_SAME_PORT=1 bash \(shellQuoted(Self.script)) start \(shellQuoted(dir)) 2>&1")
        #expect(restarted == 0, "\(text)")
        let settled = try await RescoringTests.eventually("the shards were not all placed again after the server came back", timeout: .seconds(180)) { () -> ClusterStatus? in
            guard let s = try? await client.coordinator.status(), s.unassignedShards == 0, s.movingShards == 0,
                  s.workers.map(\.name).sorted() == ["worker-1", "worker-3"], s.workers.allSatisfy({ $0.shards > 0 }) else { return nil }
            return s
        }
        #expect(settled.workers.reduce(0) { $0 + $1.shards } == 48)
        #expect(settled.placement == nil, "placed: the status no longer reports a failure (\(String(describing: settled.placement)))")
        #expect(settled.database?.reachable == true && settled.database?.failures == 0 && settled.database?.leaseValid == true,
                "\(String(describing: settled.database))")
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("placed the shards after failed attempts"), "the placement was retried until it succeeded")
        // Every subscriber asked for answers (from its shard's new owner).
        var found = 0
        for id in ids {
            if case .found = try await client.score(id) { found += 1 }
        }
        #expect(found == ids.count, "\(found) of \(ids.count) subscribers answered")
        _ = logger
    }

    @Test("a worker that alone cannot take its shards while PostgreSQL answers (its --postgres reaches no server; shards hand over through the database) is turned away: it exits with the reason, the others keep every shard, and a worker set up right joins after it; the refusal is on record for a restarted coordinator, and a new process of that name clears it")
    func turnedAway() async throws {
        let setup = try await Setup.start("pg-turned", subscribers: 4_000, shards: 24, seed: 29, coordinatorOptions: ["--handoff", "postgres"])
        defer { setup.stop() }
        let (cluster, client, logger) = (setup.cluster, setup.client, setup.logger)
        let before = try await client.coordinator.status()
        #expect(before.unassignedShards == 0 && before.workers.count == 2)

        // Nothing listens on port 1: every load from PostgreSQL fails on this worker only.
        try cluster.addWorker("worker-3", threads: 1, arguments: ["--postgres", "postgresql://postgres@127.0.0.1:1/postgres"])
        let status = try await RescoringTests.eventually("worker-3 was not turned away", timeout: .seconds(120)) { cluster.exitStatus("worker-3") }
        #expect(status != 0)
        let workerLog = (try? String(contentsOfFile: cluster.logPath("worker-3"), encoding: .utf8)) ?? ""
        #expect(workerLog.contains("could not take the shards it was given"), "\(workerLog.suffix(1500))")
        let coordinatorLog = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(coordinatorLog.contains("it is turned away"), "the coordinator says why")
        let after = try await client.coordinator.status()
        #expect(after.unassignedShards == 0 && after.workers.map(\.name).sorted() == ["worker-1", "worker-2"], "\(after.workers.map { ($0.name, $0.shards) })")
        #expect(after.workers.reduce(0) { $0 + $1.shards } == 24)

        // A worker set up right joins and takes its share.
        try cluster.addWorker("worker-4", threads: 1)
        _ = try await RescoringTests.eventually("worker-4 did not take a share", timeout: .seconds(120)) { () -> Bool? in
            guard let s = try? await client.coordinator.status(), s.unassignedShards == 0, s.movingShards == 0,
                  s.workers.first(where: { $0.name == "worker-4" }).map({ $0.shards > 0 }) == true else { return nil }
            return true
        }

        // On record, so that the next coordinator refuses that process at once too (a restart, a takeover).
        let db = try PostgresConnection(url: setup.url)
        let record = try db.query("SELECT node, reason FROM churngrid_turned_away").rows
        #expect(record.count == 1 && record.first?[0] == "worker-3" && record.first?[1]?.contains("could not take the shards it was given") == true, "\(record)")
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        _ = try await RescoringTests.eventually("the coordinator did not stop", timeout: .seconds(30)) { cluster.isRunning("coordinator") ? nil : true }
        try await cluster.restartCoordinator()
        let restartedLog = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(restartedLog.contains("workers turned away earlier are refused until restarted") && restartedLog.contains("worker-3@"),
                "the restarted coordinator read the record")
        // worker-3 restarted with a working configuration (another process): admitted, and the record cleared.
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        defer { Task { await restarted.close() } }
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.eventually("the restarted worker-3 did not take a share", timeout: .seconds(180)) { () -> Bool? in
            guard let s = try? await restarted.coordinator.status(), s.unassignedShards == 0, s.movingShards == 0,
                  s.workers.first(where: { $0.name == "worker-3" }).map({ $0.shards > 0 }) == true else { return nil }
            return true
        }
        #expect(try db.query("SELECT count(*) FROM churngrid_turned_away").scalar == "0", "a new process of the name clears the record")
        _ = logger
    }

    /// The private server's processes (postmaster and backends), for SIGSTOP/SIGCONT.
    static func serverProcesses(_ dir: String) async -> [pid_t] {
        guard let text = try? String(contentsOfFile: "\(dir)/data/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let postmaster = pid_t(first) else { return [] }
        let (_, children) = await runCommand("pgrep -P \(postmaster)")
        return [postmaster] + children.split(separator: "\n").compactMap { pid_t($0) }
    }

    @Test("stalled (SIGSTOP) past the statement timeout and the deadline: the job fails while the server is still frozen, instead of hanging; once it thaws the failure is recorded and the next job is exactly once")
    func stalledServer() async throws {
        let setup = try await Setup.start("pg-stall", subscribers: 200_000, shards: 256, seed: 23, urlSuffix: "?connect_timeout=2",
                                          coordinatorOptions: ["--database-deadline", "3", "--statement-timeout", "2"])
        defer { setup.stop() }
        let (dir, url, cluster, client, n) = (setup.dir, setup.url, setup.cluster, setup.client, setup.subscribers)

        let first = try await client.coordinator.startRescore()
        var frozen: [pid_t] = []
        for _ in 0..<3000 {
            guard let job = try await client.coordinator.job(), job.state == .running else { break }
            if job.shardsDone >= 1 {
                frozen = await Self.serverProcesses(dir)
                for pid in frozen { kill(pid, SIGSTOP) }
                break
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(!frozen.isEmpty, "the job ended before the server could be frozen under it")
        let failed = try await Self.ended(client, first, within: .seconds(40))
        for pid in frozen { kill(pid, SIGCONT) }  // only now: the job had to end while the server was frozen
        #expect(failed?.state == .failed, "the job ended while the server was frozen: \(String(describing: failed))")
        #expect(failed?.error?.contains("unavailable") == true, "\(String(describing: failed?.error))")
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("longer than the statement timeout"), "the watchdog cut a stalled call")

        // Thawed: the failure is written, the next job is exactly once.
        _ = try await client.coordinator.status()
        let db = try PostgresConnection(url: url)
        #expect(try db.query("SELECT state FROM scoring_jobs WHERE id = $1", [String(first)]).scalar == "failed")
        let second = try await client.coordinator.startRescore()
        let done = try await Self.ended(client, second, within: .seconds(300))
        #expect(done?.state == .completed, "\(String(describing: done))")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
    }

    /// Holds `churngrid_published` locked (a transaction of the test's own), so a job's publication
    /// stops in the middle of its transaction; returns once the coordinator's publish waits on it.
    static func holdPublication(_ url: String) async throws -> PostgresConnection {
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE churngrid_published IN ACCESS EXCLUSIVE MODE")
        return holder
    }

    /// Whether the coordinator's publish transaction is waiting for the lock on `churngrid_published`.
    static func publishWaiting(_ url: String) throws -> Bool {
        try PostgresConnection(url: url).query("""
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'churngrid-coordinator' AND wait_event_type = 'Lock'
              AND query LIKE '%churngrid_published%'
            """).scalar != "0"
    }

    @Test("restarted in the middle of a publication (its transaction under way): the publish is retried after the reconnect and the job completes, published once, exactly once")
    func restartedMidPublish() async throws {
        let setup = try await Setup.start("pg-publish", subscribers: 60_000, shards: 64, seed: 43)
        defer { setup.stop() }
        let (dir, url, cluster, client, n) = (setup.dir, setup.url, setup.cluster, setup.client, setup.subscribers)
        let holder = try await Self.holdPublication(url)
        let id = try await client.coordinator.startRescore()
        var midPublish = false
        for _ in 0..<1200 {
            if try Self.publishWaiting(url) { midPublish = true; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(midPublish, "the publication never started")
        #expect(try await client.coordinator.job()?.state == .running)
        // The publishing session is cut while the lock is still held (a fast shutdown ends the
        // holder and the waiter in no set order: on a loaded machine the publish could commit
        // between the two), then the server restarts, which ends the holder's transaction too.
        let cut = try holder.query("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'churngrid-coordinator' AND wait_event_type = 'Lock'
              AND query LIKE '%churngrid_published%'
            """).scalar
        #expect(cut == "1", "the waiting publication was cut (\(cut ?? "none"))")
        let (restarted, text) = await runCommand("bash \(shellQuoted(Self.script)) restart \(shellQuoted(dir)) 2>&1")
        #expect(restarted == 0, "\(text)")
        _ = holder
        let done = try #require(try await Self.ended(client, id, within: .seconds(300)))
        #expect(done.state == .completed, "\(done)")
        #expect(done.retries > 0, "the publish was retried (retries \(done.retries))")
        let db = try PostgresConnection(url: url)
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(id))
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT count(*) FROM scoring_job_summaries WHERE job_id = $1", [String(id)]).scalar == "1")
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("publishing waits for it"), "the publish was cut off and waited for the server")
    }

    @Test("SIGTERM in the middle of a publication: the coordinator stops cleanly and the job ends either published whole or failed with nothing of it published — never half, never running")
    func sigtermMidPublish() async throws {
        let setup = try await Setup.start("pg-sigterm", subscribers: 40_000, shards: 64, seed: 47)
        defer { setup.stop() }
        let (url, cluster, client, n) = (setup.url, setup.cluster, setup.client, setup.subscribers)
        // A first job published, so a failed second one must leave it in place.
        let first = try await client.coordinator.startRescore()
        #expect(try await Self.ended(client, first, within: .seconds(300))?.state == .completed)
        let holder = try await Self.holdPublication(url)
        let second = try await client.coordinator.startRescore()
        var midPublish = false
        for _ in 0..<1200 {
            if try Self.publishWaiting(url) { midPublish = true; break }
            try await Task.sleep(for: .milliseconds(50))
        }
        try #require(midPublish, "the publication never started")
        kill(try #require(cluster.pid("coordinator")), SIGTERM)
        try await Task.sleep(for: .seconds(1))
        try holder.execute("COMMIT")  // the publication may go on now
        var status: Int32?
        for _ in 0..<600 where status == nil {
            status = cluster.exitStatus("coordinator")
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == 0, "the coordinator stopped cleanly (status \(String(describing: status)))")
        let db = try PostgresConnection(url: url)
        let state = try db.query("SELECT state FROM scoring_jobs WHERE id = $1", [String(second)]).scalar
        let published = try db.query("SELECT job_id FROM churngrid_published").scalar
        switch state {
        case "completed":
            #expect(published == String(second))
        case "failed":
            #expect(published == String(first), "a failed job is never published")
            #expect(try db.query("SELECT count(*) FROM scoring_job_summaries WHERE job_id = $1", [String(second)]).scalar == "0")
        default:
            Issue.record("job \(second) is \(state ?? "missing") after the coordinator stopped")
        }
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        print("SIGTERM mid-publish: job \(second) ended \(state ?? "?")")
    }
}
