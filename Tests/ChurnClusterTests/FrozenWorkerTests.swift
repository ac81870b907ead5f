import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// A worker frozen (SIGSTOP: a hung disk, a long pause) long enough to be failed over, then
/// resumed: it registers again by itself, takes shards again, and the next job is exactly once.
@Suite("A frozen worker that comes back", .serialized, .timeLimit(.minutes(10)))
struct FrozenWorkerTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    @Test("frozen past the unreachable limit: failed over; resumed: it rejoins and hosts shards again without a restart")
    func frozenAndResumed() async throws {
        let url = try await TestDatabase.fresh()
        let n = 8_000
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 13), count: n) { _ in }
        }
        var logger = Logger(label: "test.frozen")
        logger.logLevel = .warning
        // Failed over 10 s after it freezes: longer than `status --json` needs to ask it (5 s) on a
        // loaded machine, so the status below always meets it frozen.
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: 32, coordinatorOptions: ["--unreachable-after", "10"],
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-frozen", logger: logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        defer { Task { await client.close() } }
        let pid = try #require(cluster.pid("worker-1"))

        kill(pid, SIGSTOP)
        // An operator's `status --json` while it is frozen: a worker whose event figures do not
        // come is named under events_unanswered, not left out.
        let status = try ChildProcess(try churngridExecutable(), ["status", "--json"] + cluster.clientOptions,
                                      logPath: "/tmp/churngrid-test-\(getpid())-frozen-status.log")
        var failedOver = false
        for _ in 0..<600 {
            let names = try await client.coordinator.nodes().map(\.name)
            if names == ["worker-2"] { failedOver = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await status.wait(timeout: .seconds(60)) == 0, "\(status.log)")
        kill(pid, SIGCONT)
        try #require(failedOver, "worker-1 was never failed over while frozen")
        let line = try #require(status.log.split(separator: "\n").first { $0.hasPrefix("{") }, "status --json printed no JSON: \(status.log)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let unanswered = try #require(json["events_unanswered"] as? [String: String], "no events_unanswered: \(line)")
        let answered = ((json["events"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }
        let silent = (json["silentWorkers"] as? [String]) ?? []
        #expect(answered == ["worker-2"], "\(line)")
        #expect(unanswered["worker-1"] != nil && silent == ["worker-1"], "worker-1, frozen, is named: \(line)")

        var back: [NodeInfo] = []
        for _ in 0..<300 {
            back = try await client.coordinator.nodes()
            let status = try await client.coordinator.status()
            if back.count == 2, back.allSatisfy({ $0.shards > 0 && $0.readyShards == $0.shards }), status.unassignedShards == 0, status.movingShards == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(back.map(\.name) == ["worker-1", "worker-2"], "\(back)")
        #expect(back.first { $0.name == "worker-1" }.map { $0.shards > 0 } == true, "\(back)")
        #expect(cluster.isRunning("worker-1"))
        let log = (try? String(contentsOfFile: cluster.logPath("worker-1"), encoding: .utf8)) ?? ""
        #expect(log.contains("joining again"), "worker-1 re-registered by itself")

        // Every subscriber still scored exactly once, by both workers.
        let id = try await client.coordinator.startRescore()
        var job: JobStatus?
        for _ in 0..<600 {
            if let j = try await client.coordinator.job(), j.id == id, j.state != .running { job = j; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(job?.state == .completed, "\(String(describing: job))")
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT count(DISTINCT node) FROM scoring_job_shards WHERE job_id = $1", [String(id)]).scalar == "2", "both workers scored")
    }

    static func cluster(_ name: String, subscribers n: Int, shards: Int, seed: UInt64, options: [String] = []) async throws -> (url: String, cluster: LocalCluster, client: ClusterClient) {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: seed), count: n) { _ in }
        }
        var logger = Logger(label: "test.\(name)")
        logger.logLevel = .warning
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: shards, coordinatorOptions: options,
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-\(name)", logger: logger)
        return (url, cluster, try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger))
    }

    static func ended(_ client: ClusterClient, _ id: Int64) async throws -> JobStatus? {
        for _ in 0..<3000 {
            if let j = try await client.coordinator.job(), j.id == id, j.state != .running { return j }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    @Test("frozen for 30 s in the middle of a job: failed over, the job completes exactly once on the survivor; resumed, the worker serves again")
    func frozenMidJob() async throws {
        let n = 150_000
        let (url, cluster, client) = try await Self.cluster("frozen-mid-job", subscribers: n, shards: 128, seed: 31)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let pid = try #require(cluster.pid("worker-1"))
        // The job's writes are held (a lock on the shards' ledger) until the worker is frozen, so
        // the freeze always lands while the job runs, however loaded the machine.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE scoring_job_shards IN ACCESS EXCLUSIVE MODE")
        let id = try await client.coordinator.startRescore()
        kill(pid, SIGSTOP)
        let atFreeze = try await client.coordinator.job()
        try holder.execute("COMMIT")
        let frozenMidJob = atFreeze?.id == id && atFreeze?.state == .running
        try #require(frozenMidJob, "the job ended before the worker could be frozen under it")
        try await Task.sleep(for: .seconds(30))
        let job = try await client.coordinator.job()
        kill(pid, SIGCONT)
        let resumedAt = ContinuousClock.now
        let done = try #require(try await Self.ended(client, id))
        #expect(done.state == .completed, "\(done)")
        #expect(done.retries > 0 || job?.state == .completed, "the frozen worker's shards were re-run (retries \(done.retries))")

        // Resumed: it registers again and owns ready shards.
        var serving: Duration?
        for _ in 0..<600 {
            let nodes = try await client.coordinator.nodes()
            if let w1 = nodes.first(where: { $0.name == "worker-1" }), w1.shards > 0, w1.readyShards == w1.shards {
                serving = ContinuousClock.now - resumedAt
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let back = try #require(serving, "worker-1 never served again after it resumed")
        print("frozen worker: serving shards again \(back) after SIGCONT")
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT job_id FROM churngrid_published").scalar == String(id))
    }

    @Test("a slow but live worker (stopped and continued in a duty cycle, never long enough to be failed over): its stragglers run elsewhere and the job completes exactly once")
    func slowWorker() async throws {
        let n = 120_000
        let (url, cluster, client) = try await Self.cluster("straggler", subscribers: n, shards: 128, seed: 37, options: ["--straggler-seconds", "1"])
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let pid = try #require(cluster.pid("worker-1"))
        // 1.2 s stopped, 0.6 s running: heartbeats get through (the limit is 3 s), scoring crawls.
        // Stopped before the job starts: its first calls to worker-1 wait past the 1 s deadline
        // (scoring its part takes a fraction of a running window, so a job started while it runs
        // could end with no straggler at all).
        kill(pid, SIGSTOP)
        let slowing = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(1200))
                kill(pid, SIGCONT)
                try? await Task.sleep(for: .milliseconds(600))
                kill(pid, SIGSTOP)
            }
            kill(pid, SIGCONT)
        }
        let id = try await client.coordinator.startRescore()
        let done = try await Self.ended(client, id)
        slowing.cancel()
        _ = await slowing.value
        kill(pid, SIGCONT)
        let job = try #require(done)
        #expect(job.state == .completed, "\(job)")
        #expect(job.stragglers > 0, "shards on the slow worker ran again elsewhere (stragglers \(job.stragglers))")
        #expect(cluster.isRunning("worker-1"))
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("straggler"), "the coordinator logged its stragglers")
    }

    @Test("a worker without room (--max-memory below what it needs) joins but is given no shards, nothing is left without an owner, and a drain that would need its room is refused")
    func memoryLimit() async throws {
        let n = 60_000, shards = 64
        let (_, cluster, client) = try await Self.cluster("max-memory", subscribers: n, shards: shards, seed: 59)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        // 8 MiB: less than the process itself needs, so no room for any shard.
        let limit = 8 << 20
        try cluster.addWorker("worker-small", threads: 1, arguments: ["--max-memory", "8M"])
        var small: WorkerStatus?
        for _ in 0..<600 {
            let s = try await client.coordinator.status()
            if s.workers.count == 3, s.unassignedShards == 0, s.movingShards == 0, let w = s.workers.first(where: { $0.name == "worker-small" }) {
                small = w
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let w = try #require(small, "worker-small never joined")
        #expect(w.maxMemory == limit)
        #expect(w.shards == 0, "worker-small was given \(w.shards) shards it has no room for")
        let log = (try? String(contentsOfFile: cluster.logPath("worker-small"), encoding: .utf8)) ?? ""
        #expect(log.contains("joined the cluster"))

        // Draining worker-1 moves its shards to worker-2 (no limit); draining worker-2 then would
        // need worker-small's room: refused, and nothing loses its owner.
        _ = try await client.coordinator.drain("worker-1")
        do {
            _ = try await client.coordinator.drain("worker-2")
            Issue.record("draining onto a worker without room was accepted")
        } catch {
            #expect("\(error)".contains("room for 0 of the 64 shards"), "\(error)")
        }
        let after = try await client.coordinator.status()
        #expect(after.unassignedShards == 0, "no shard lost its owner")
        #expect(after.workers.first { $0.name == "worker-2" }?.shards == shards)
    }
}
