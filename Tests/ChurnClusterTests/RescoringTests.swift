import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Synchronization
import Testing
import TestSupport
import TreeModel

/// A coordinator and two workers as separate `churngrid` processes on 127.0.0.1, over a real
/// PostgreSQL holding a synthetic base.
@Suite("Rescoring jobs and live queries on a local cluster", .serialized, .timeLimit(.minutes(10)))
struct RescoringTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    static var logger: Logger {
        var l = Logger(label: "test.cluster")
        l.logLevel = .warning
        return l
    }

    /// A database with `subscribers` generated profiles, and a cluster over it.
    static func cluster(subscribers: Int, shards: Int, name: String, coordinatorOptions: [String] = []) async throws -> (url: String, cluster: LocalCluster, client: ClusterClient) {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {  // seconds of blocking work: off the cooperative pool
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 7), count: subscribers) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: model, workers: 2, threads: 1,
                                                   shards: shards, coordinatorOptions: coordinatorOptions,
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-\(name)", logger: logger)
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        return (url, cluster, client)
    }

    /// Polls `probe` until it returns a value.
    static func eventually<T>(_ what: String, timeout: Duration = .seconds(600), _ probe: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterError("\(what) within \(timeout)")
    }

    static func waitForJob(_ client: ClusterClient, _ id: Int64, until: (JobStatus) -> Bool = { $0.state != .running }) async throws -> JobStatus {
        try await eventually("job \(id) did not finish") {
            guard let s = try await client.coordinator.job(), s.id == id, until(s) else { return nil }
            return s
        }
    }

    @Test("every subscriber is scored exactly once, the published scores are the tree engine's, a live query equals the job")
    func rescoreExactlyOnce() async throws {
        let n = 20_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 64, name: "exactly-once")
        defer { cluster.stop() }
        let id = try await client.coordinator.startRescore()
        let job = try await Self.waitForJob(client, id)
        #expect(job.state == .completed, "\(job.error ?? "")")
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
        var publishedReasons: [Int64: [String]] = [:]
        for r in try db.query("SELECT subscriber_id, probability, reason1, reason2, reason3 FROM churn_scores_current").rows {
            published[Int64(r[0]!)!] = Float(r[1]!)!
            publishedReasons[Int64(r[0]!)!] = r[2...].compactMap { $0 }
        }
        var worst = 0.0, checked = 0, reasonsDiffering = 0, lowRiskExplained = 0
        for store in stores.values {
            for row in 0..<store.count {
                let profile = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) }
                let (p, band, reasons) = scoring.score(profile: profile)
                worst = max(worst, abs(Double(published[store.id(at: row)] ?? -1) - p))
                // Every subscriber's stored reasons are the live query's, low risk included.
                if publishedReasons[store.id(at: row)] != reasons.map(\.feature) { reasonsDiffering += 1 }
                if band == .low && !reasons.isEmpty && publishedReasons[store.id(at: row)]?.isEmpty == false { lowRiskExplained += 1 }
                checked += 1
            }
        }
        #expect(checked == n)
        #expect(worst < 1e-6, "largest difference between a published score and the engine: \(worst)")
        #expect(reasonsDiffering == 0, "\(reasonsDiffering) of \(n) subscribers' stored reasons differ from a live query's")
        #expect(lowRiskExplained > n / 2, "only \(lowRiskExplained) low-risk subscribers have stored reasons")

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

        // Per job: reasons only from band medium up, or none at all; the scores are the same.
        for (options, label) in [(RescoreOptions(reasons: .atRisk), "at-risk"), (RescoreOptions(reasons: .none), "none")] {
            let next = try await client.coordinator.startRescore(options)
            let done = try await Self.waitForJob(client, next)
            #expect(done.state == .completed, "\(label): \(done.error ?? "")")
            let row = try db.query("""
                SELECT count(*), count(*) FILTER (WHERE reason1 IS NOT NULL AND risk_band = 'low'),
                       count(*) FILTER (WHERE reason1 IS NOT NULL), count(*) FILTER (WHERE risk_band <> 'low')
                FROM churn_scores_current
                """).rows[0]
            #expect(row[0] == String(n), "\(label)")
            #expect(row[1] == "0", "\(label): \(row[1] ?? "?") low-risk subscribers with reasons")
            if options.reasons == .none {
                #expect(row[2] == "0", "no reasons: \(row[2] ?? "?") rows have one")
            } else {
                #expect(Int(row[2] ?? "") ?? 0 > 0 && row[2] == row[3], "at-risk: \(row[2] ?? "?") explained of \(row[3] ?? "?") at risk")
            }
        }
        await client.close()
    }

    @Test("a worker killed with SIGKILL mid-job and under query load: its shards are reloaded and re-run on the survivor, every subscriber is scored exactly once, queries meanwhile answer 'unavailable' and nothing worse")
    func workerKilledMidJob() async throws {
        let n = 60_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 256, name: "kill")
        defer { cluster.stop() }
        let ids = try PostgresConnection(url: url).query("SELECT subscriber_id FROM subscriber_profiles ORDER BY random() LIMIT 300").rows.map { Int64($0[0]!)! }
        let load = QueryLoad(client: client, ids: ids)
        await load.waitForAnswers(10)  // the load runs before the fault too
        let early = load.answeredSoFar
        // The job's writes are held (a lock on the shards' ledger) from its start until the worker
        // is dead, so the kill always lands while the job runs, however loaded the machine: a small
        // job could otherwise finish before a poll saw it running.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE scoring_job_shards IN ACCESS EXCLUSIVE MODE")
        let id = try await client.coordinator.startRescore()
        let victim = try #require(cluster.pid("worker-1"))
        kill(victim, SIGKILL)
        let atKill = try #require(try await client.coordinator.job())
        try holder.execute("COMMIT")
        try #require(atKill.id == id && atKill.state == .running && atKill.shardsDone == 0, "the worker must die while the job runs (it was \(atKill.state), \(atKill.shardsDone) shards done)")
        let job = try await Self.waitForJob(client, id)

        let db = try PostgresConnection(url: url)
        if job.state == .completed {
            let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows[0]
            #expect(counts[0] == String(n) && counts[1] == String(n))
            #expect(try db.query("SELECT count(*) FROM scoring_job_shards WHERE job_id = $1", [String(id)]).scalar == "256")
            // The fault reached the job: the survivor scored shards the dead worker owned when it started.
            let survivor = Int(try db.query("SELECT count(*) FROM scoring_job_shards WHERE job_id = $1 AND node = 'worker-2'", [String(id)]).scalar ?? "0") ?? 0
            #expect(survivor > 128, "worker-2 scored \(survivor) of 256 shards (it owned 128 when the job started)")
        } else {
            // The other acceptable outcome: a clean failure with nothing published.
            Issue.record("the job failed instead of re-running the lost shards: \(job.error ?? "")")
            #expect(try db.query("SELECT count(*) FROM churngrid_published").scalar == "0")
        }
        let status = try await Self.waitForBalance(client, workers: 1)
        #expect(status.workers.map(\.name) == ["worker-2"])
        #expect(status.unassignedShards == 0)
        let (_, failed, late) = await load.finish(answering: 20)
        print("query load: \(load.summary)")
        // Without standbys the lost shards are unavailable until reloaded: said so, never an error.
        #expect(failed.allSatisfy { $0.contains("unavailable") && $0.contains("no ready worker") }, "\(failed.filter { !$0.contains("unavailable") }.prefix(3))")
        // Answered before the fault and again once the cluster settled on the survivor.
        #expect(early >= 10 && late >= 20, "answered \(early) before, \(late) after: \(load.summary)")
        let after = try await Self.scores(client, ids)
        #expect(after.count == ids.count && after.values.allSatisfy { $0.node == "worker-2" })
        await client.close()
    }

    /// Queries at a steady pace from their own task until `finish`: how many were answered and how many failed.
    final class QueryLoad: Sendable {
        private final class Flags: Sendable {
            let stopped = Atomic<Bool>(false)
            let answered = Atomic<Int>(0)
            let asked = Atomic<Int>(0)
            let slowestMilliseconds = Atomic<Int>(0)
            /// Queries that took over a second: when they were sent (ms into the load), which way,
            /// how long they took and how they ended.
            let slow = Mutex<[String]>([])
        }
        private let flags = Flags()
        private let started = ContinuousClock.now
        private let task: Task<(answered: Int, failed: [String]), Never>

        init(client: ClusterClient, ids: [Int64]) {
            let flags = flags
            let begin = started
            task = Task {
                var answered = 0, failed: [String] = []
                var i = 0
                while !flags.stopped.load(ordering: .relaxed) {
                    let id = ids[i % ids.count]
                    let sent = ContinuousClock.now
                    var outcome = ""
                    // Alternately straight to the shard's node (cached map) and through the coordinator.
                    do {
                        let answer = i % 2 == 0 ? try await client.score(id) : try await client.coordinator.score(id)
                        if case .found(let s) = answer, s.subscriberID == id {
                            answered += 1
                            flags.answered.store(answered, ordering: .relaxed)
                            outcome = "answered"
                        } else {
                            outcome = "\(id): \(answer)"
                            failed.append(outcome)
                        }
                    } catch {
                        outcome = "\(id): \(error)"
                        failed.append(outcome)
                    }
                    let took = ContinuousClock.now - sent
                    let ms = Int(took.components.seconds * 1000 + took.components.attoseconds / 1_000_000_000_000_000)
                    if ms > flags.slowestMilliseconds.load(ordering: .relaxed) { flags.slowestMilliseconds.store(ms, ordering: .relaxed) }
                    if ms > 1000 {
                        let at = sent - begin
                        let note = "at \(at.components.seconds) s \(i % 2 == 0 ? "direct" : "via coordinator") \(ms) ms: "
                            + outcome.prefix(200)
                        flags.slow.withLock { if $0.count < 40 { $0.append(note) } }
                    }
                    i += 1
                    flags.asked.store(i, ordering: .relaxed)
                    try? await Task.sleep(for: .milliseconds(4))
                }
                return (answered, failed)
            }
        }

        /// What the load did so far (for a failed expectation's message).
        var summary: String {
            "\(flags.asked.load(ordering: .relaxed)) queries in \(ContinuousClock.now - started), \(flags.answered.load(ordering: .relaxed)) answered, "
                + "the slowest took \(flags.slowestMilliseconds.load(ordering: .relaxed)) ms; over a second: "
                + flags.slow.withLock { $0.joined(separator: "; ") }
        }

        /// Queries answered so far.
        var answeredSoFar: Int { flags.answered.load(ordering: .relaxed) }

        /// Waits until the load has had `answers` answers so far (at most `timeout`).
        func waitForAnswers(_ answers: Int, timeout: Duration = .seconds(120)) async {
            let deadline = ContinuousClock.now + timeout
            while answeredSoFar < answers, ContinuousClock.now < deadline, !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }

        /// Goes on until `more` further queries were answered from now (or `timeout` passed: how
        /// fast a loaded machine answers is no measure of the cluster, so no count is asked of a
        /// span of time), then stops after the query under way (none is cancelled) and returns
        /// the counts in all and how many were answered from now on.
        func finish(answering more: Int = 0, timeout: Duration = .seconds(300)) async -> (answered: Int, failed: [String], late: Int) {
            let mark = answeredSoFar
            await waitForAnswers(mark + more, timeout: timeout)
            flags.stopped.store(true, ordering: .relaxed)
            let (answered, failed) = await task.value
            return (answered, failed, answered - mark)
        }
    }

    static func waitForBalance(_ client: ClusterClient, workers: Int) async throws -> ClusterStatus {
        try await eventually("the cluster did not settle on \(workers) workers", timeout: .seconds(300)) {
            let s = try await client.coordinator.status()
            return s.workers.count == workers && s.unassignedShards == 0 && s.movingShards == 0 && s.silentWorkers.isEmpty ? s : nil
        }
    }

    @Test("a worker joins under steady query load and is drained again, then another stops on SIGTERM: no query fails, every move is visible")
    func joinAndDrainUnderLoad() async throws {
        let n = 30_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 128, name: "join-drain")
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let ids = try db.query("SELECT subscriber_id FROM subscriber_profiles ORDER BY random() LIMIT 500").rows.map { Int64($0[0]!)! }
        let epochBefore = try await client.coordinator.status().epoch
        let before = try await Self.scores(client, ids.prefix(200))
        let load = QueryLoad(client: client, ids: ids)
        await load.waitForAnswers(10)
        let early = load.answeredSoFar

        // Join: the newcomer takes its fair share while queries go on; its shards' profiles are
        // streamed from their old owners, and answer exactly as before.
        try cluster.addWorker("worker-3", threads: 1)
        let joined = try await Self.waitForBalance(client, workers: 3)
        #expect(joined.workers.map(\.shards).sorted() == [42, 43, 43])
        let after = try await Self.scores(client, ids.prefix(200))
        #expect(after.values.contains { $0.node == "worker-3" })
        #expect(after.mapValues(\.probability) == before.mapValues(\.probability))
        #expect(try String(contentsOfFile: cluster.logPath("worker-3"), encoding: .utf8).contains("streamedSubscribers"))
        #expect(joined.workers.map(\.subscribers).reduce(0, +) == n)
        #expect(joined.epoch > epochBefore)
        let listed = try await client.coordinator.nodes()
        #expect(listed.map(\.name) == ["worker-1", "worker-2", "worker-3"] && listed.allSatisfy { $0.state == .active && $0.readyShards == $0.shards })

        // Drain with the command an operator types: the shards go back, the worker exits by itself.
        let drained = await runCommand("\(shellQuoted(try churngridExecutable())) nodes drain worker-3 --coordinator \(cluster.coordinatorEndpoint)")
        #expect(drained.status == 0, "\(drained.output)")
        #expect(drained.output.contains("worker-3 drained"))
        let afterDrain = try await Self.waitForBalance(client, workers: 2)
        #expect(afterDrain.workers.map(\.name) == ["worker-1", "worker-2"] && afterDrain.workers.map(\.subscribers).reduce(0, +) == n)
        #expect(try await Self.waitUntilExited(cluster, "worker-3"))
        #expect(cluster.exitStatus("worker-3") == 0, "a drained worker exits cleanly")

        // SIGTERM on a worker drains it the same way before it exits.
        kill(try #require(cluster.pid("worker-2")), SIGTERM)
        let afterStop = try await Self.waitForBalance(client, workers: 1)
        #expect(afterStop.workers.first?.shards == 128 && afterStop.workers.first?.subscribers == n)
        #expect(try await Self.waitUntilExited(cluster, "worker-2"))
        #expect(cluster.exitStatus("worker-2") == 0, "a worker stopped with SIGTERM exits cleanly")
        let (_, failed, late) = await load.finish(answering: 20)
        print("query load: \(load.summary)")
        #expect(failed.isEmpty, "\(failed.count) failed queries, e.g. \(failed.prefix(3))")
        #expect(early >= 10 && late >= 20, "answered \(early) before, \(late) after: \(load.summary)")
        await client.close()
    }

    /// Live scores of `ids` with the node that answered.
    static func scores(_ client: ClusterClient, _ ids: some Sequence<Int64>) async throws -> [Int64: (probability: Double, node: String)] {
        var out: [Int64: (probability: Double, node: String)] = [:]
        let deadline = ContinuousClock.now + .seconds(300)
        for id in ids {
            guard ContinuousClock.now < deadline else { throw ClusterError("\(out.count) subscribers answered in 300 s; the rest were not asked") }
            let answer = try await client.score(id)
            guard case .found(let s) = answer else { throw ClusterError("subscriber \(id) was not answered: \(answer)") }
            out[id] = (s.probability, s.node)
        }
        return out
    }

    @Test("with standbys, a worker killed with SIGKILL during a job and under query load: no query fails, its standbys take over, the job is exactly once")
    func standbysTakeOverFromKilledWorker() async throws {
        let n = 60_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 128, name: "standby-kill", coordinatorOptions: ["--standbys"])
        defer { cluster.stop() }
        // Every shard has a standby on the other worker before anything is killed.
        let placed = try await Self.eventually("standbys were not placed") {
            let nodes = try await client.coordinator.nodes()
            return nodes.count == 2 && nodes.allSatisfy({ $0.standbyShards == 64 && $0.readyShards == 64 }) ? nodes : nil
        }
        #expect(placed.map(\.shards) == [64, 64])
        let db = try PostgresConnection(url: url)
        let ids = try db.query("SELECT subscriber_id FROM subscriber_profiles ORDER BY random() LIMIT 500").rows.map { Int64($0[0]!)! }
        let before = try await Self.scores(client, ids.prefix(100))
        let load = QueryLoad(client: client, ids: ids)
        await load.waitForAnswers(10)
        let early = load.answeredSoFar
        let id = try await client.coordinator.startRescore()
        let atKill = try await Self.waitForJob(client, id) { $0.shardsDone >= 10 || $0.state != .running }
        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        try #require(atKill.state == .running && atKill.shardsDone < 128, "the worker must die while the job runs (it was \(atKill.state), \(atKill.shardsDone) shards done)")
        let job = try await Self.waitForJob(client, id)
        #expect(job.state == .completed, "\(job.error ?? "")")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows[0]
        #expect(counts[0] == String(n) && counts[1] == String(n))
        let survivor = Int(try db.query("SELECT count(*) FROM scoring_job_shards WHERE job_id = $1 AND node = 'worker-2'", [String(id)]).scalar ?? "0") ?? 0
        #expect(survivor > 64, "worker-2 scored \(survivor) of 128 shards (it owned 64 when the job started): its standbys took over mid-job")
        let status = try await Self.waitForBalance(client, workers: 1)
        #expect(status.workers.first?.shards == 128 && status.workers.first?.subscribers == n)
        let (_, failed, late) = await load.finish(answering: 20)
        print("query load: \(load.summary)")
        #expect(failed.isEmpty, "\(failed.count) failed queries, e.g. \(failed.prefix(3))")
        #expect(early >= 10 && late >= 20, "answered \(early) before, \(late) after: \(load.summary)")
        // The standby copies answer exactly as the lost owner did.
        let after = try await Self.scores(client, ids.prefix(100))
        #expect(after.mapValues(\.probability) == before.mapValues(\.probability))
        #expect(after.values.allSatisfy { $0.node == "worker-2" })
        await client.close()
    }

    static func waitUntilExited(_ cluster: LocalCluster, _ name: String) async throws -> Bool {
        (try? await eventually("\(name) did not exit", timeout: .seconds(30)) { cluster.isRunning(name) ? nil : true }) ?? false
    }

    @Test("a worker joining during a job: the job completes with every subscriber exactly once")
    func joinDuringJob() async throws {
        let n = 100_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 256, name: "join-job")
        defer { cluster.stop() }
        let id = try await client.coordinator.startRescore()
        _ = try await Self.waitForJob(client, id) { $0.shardsDone >= 5 || $0.state != .running }
        try cluster.addWorker("worker-3", threads: 1)
        let job = try await Self.waitForJob(client, id)
        #expect(job.state == .completed, "\(job.error ?? "")")
        let db = try PostgresConnection(url: url)
        // The newcomer took shards over while the job ran, and scored some of them for it.
        #expect(try db.query("SELECT count(*) > 0 FROM scoring_job_shards WHERE job_id = $1 AND node = 'worker-3'", [String(id)]).scalar == "t")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows[0]
        #expect(counts[0] == String(n) && counts[1] == String(n))
        #expect(try await Self.waitForBalance(client, workers: 3).workers.map(\.subscribers).reduce(0, +) == n)
        await client.close()
    }

    @Test("the coordinator killed with SIGKILL mid-job: on restart the job is failed with its reason, nothing of it published; workers rejoin keeping their shards and the next job is exactly once")
    func coordinatorKilledMidJob() async throws {
        let n = 40_000
        let (url, cluster, client) = try await Self.cluster(subscribers: n, shards: 256, name: "coordinator-kill")
        defer { cluster.stop() }
        let id = try await client.coordinator.startRescore()
        let atKill = try await Self.waitForJob(client, id) { $0.shardsDone >= 10 || $0.state != .running }
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try #require(atKill.state == .running && atKill.shardsDone < 256, "the coordinator must die while the job runs (it was \(atKill.state), \(atKill.shardsDone) shards done)")
        await client.close()
        try await cluster.restartCoordinator()

        let db = try PostgresConnection(url: url)
        let row = try db.query("SELECT state, error FROM scoring_jobs WHERE id = $1", [String(id)]).rows[0]
        #expect(row[0] == "failed")
        #expect(row[1]?.contains("coordinator stopped") == true, "\(row[1] ?? "no reason")")
        #expect(try db.query("SELECT count(*) FROM churngrid_published").scalar == "0")
        #expect(try db.query("SELECT to_regclass('churn_scores_job_\(id)') IS NULL").scalar == "t")

        let again = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: Self.logger)
        _ = try await Self.waitForBalance(again, workers: 2)
        // The workers kept their shards across the coordinator's restart: adopted, not reloaded.
        let log = try String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)
        #expect(log.components(separatedBy: "adopted the shards the worker still hosts").count - 1 == 2)
        for worker in ["worker-1", "worker-2"] {
            let lines = try String(contentsOfFile: cluster.logPath(worker), encoding: .utf8).split(separator: "\n")
            let rejoined = try #require(lines.firstIndex { $0.contains("the coordinator restarted") }, "\(worker) did not notice the restart")
            let hosted = lines[rejoined...].filter { $0.contains("shards hosted") }
            #expect(!hosted.isEmpty && hosted.allSatisfy { $0.contains("fromPostgres=0") && $0.contains("streamed=0") }, "\(worker) reloaded after the restart: \(hosted)")
        }
        let next = try await again.coordinator.startRescore()
        let job = try await Self.waitForJob(again, next)
        #expect(job.state == .completed, "\(job.error ?? "")")
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id), min(job_id) FROM churn_scores_current").rows[0]
        #expect(counts[0] == String(n) && counts[1] == String(n) && counts[2] == String(next))
        await again.close()
    }
}

@Suite("Shard placement")
struct ShardPlacementTests {
    @Test("memory limits: a worker gets no more shards than it has room for, the others share the rest; shards nobody has room for stay without an owner")
    func capacity() {
        let (map, _) = ShardMap(shardCount: 100).rebalanced(over: ["a", "b", "c"], capacity: ["a": 10])
        #expect(map.shards(of: "a").count == 10)
        #expect(map.shards(of: "b").count + map.shards(of: "c").count == 90)
        #expect(abs(map.shards(of: "b").count - map.shards(of: "c").count) <= 1)
        #expect(map.owners.allSatisfy { $0 != nil })

        // Room shrinks (a restarted worker with a lower limit): only the excess moves.
        let (shrunk, moves) = map.rebalanced(over: ["a", "b", "c"], capacity: ["a": 10, "b": 40])
        #expect(shrunk.shards(of: "b").count == 40 && shrunk.shards(of: "c").count == 50)
        #expect(moves.count == 5)

        // Not enough room anywhere: what fits is placed, the rest has no owner.
        let (full, _) = ShardMap(shardCount: 100).rebalanced(over: ["a", "b"], capacity: ["a": 30, "b": 20])
        #expect(full.shards(of: "a").count == 30 && full.shards(of: "b").count == 20)
        #expect(full.owners.filter { $0 == nil }.count == 50)
        // A worker with room joins: everything is placed.
        let (joined, _) = full.rebalanced(over: ["a", "b", "c"], capacity: ["a": 30, "b": 20])
        #expect(joined.owners.allSatisfy { $0 != nil })
        #expect(joined.shards(of: "c").count == 50)

        // No limits: as even as before.
        let (even, _) = ShardMap(shardCount: 10).rebalanced(over: ["a", "b", "c"])
        #expect(["a", "b", "c"].map { even.shards(of: $0).count } == [4, 3, 3])
    }

    @Test("standbys go to a node other than the owner, evenly, and stay where they are when nodes join")
    func standbys() {
        let (map, _) = ShardMap(shardCount: 12).rebalanced(over: ["a", "b", "c"])
        let placed = map.withStandbys(over: ["a", "b", "c"])
        for s in 0..<12 { #expect(placed.standbys[s] != nil && placed.standbys[s] != placed.owners[s]) }
        #expect(["a", "b", "c"].map { placed.standbyShards(of: $0).count } == [4, 4, 4])
        #expect(ShardMap(shardCount: 4).rebalanced(over: ["a"]).map.withStandbys(over: ["a"]).standbys.allSatisfy { $0 == nil })

        let (grown, moves) = placed.rebalanced(over: ["a", "b", "c", "d"])
        let regrown = grown.withStandbys(over: ["a", "b", "c", "d"])
        #expect(moves.count == 3)
        let kept = (0..<12).filter { regrown.standbys[$0] == placed.standbys[$0] }.count
        #expect(kept >= 12 - 3 - 3, "a join re-places only the standbys it has to (kept \(kept) of 12)")
    }

    @Test("losing a node: its standbys become the owners, it is nobody's standby, the epoch increases")
    func losing() {
        let placed = ShardMap(shardCount: 8).rebalanced(over: ["a", "b"]).map.withStandbys(over: ["a", "b"])
        let (after, promoted) = placed.losing("a")
        #expect(after.epoch == placed.epoch + 1)
        #expect(after.owners.allSatisfy { $0 == "b" } && after.standbys.allSatisfy { $0 == nil })
        #expect(promoted["b"] == placed.shards(of: "a"))
    }

    @Test("a drained or lost owner's shards go to their standby when it has room")
    func homelessGoToStandby() {
        let placed = ShardMap(shardCount: 9).rebalanced(over: ["a", "b", "c"]).map.withStandbys(over: ["a", "b", "c"])
        let (after, moves) = placed.rebalanced(over: ["b", "c"])
        #expect(moves.count == 3)
        for m in moves { #expect(m.to == placed.standbys[m.shard]) }
        #expect(after.shards(of: "b").count + after.shards(of: "c").count == 9)
    }
}
