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
@Suite("A frozen worker that comes back", .serialized)
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
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: 32, logDirectory: "/tmp/churngrid-test-\(getpid())-frozen", logger: logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        defer { Task { await client.close() } }
        let pid = try #require(cluster.pid("worker-1"))

        kill(pid, SIGSTOP)
        var failedOver = false
        for _ in 0..<300 {
            let names = try await client.coordinator.nodes().map(\.name)
            if names == ["worker-2"] { failedOver = true; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGCONT)
        try #require(failedOver, "worker-1 was never failed over while frozen")

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
            if let j = try await client.coordinator.job(), j.id == id, j.state != "running" { job = j; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(job?.state == "completed", "\(String(describing: job))")
        let db = try PostgresConnection(url: url)
        let counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT count(DISTINCT node) FROM scoring_job_shards WHERE job_id = $1", [String(id)]).scalar == "2", "both workers scored")
    }
}
