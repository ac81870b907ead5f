import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// A network partition between the coordinator and one worker (a TCP proxy the test controls,
/// both directions), cut while a job runs and healed afterwards.
@Suite("Network partition between the coordinator and a worker", .serialized, .timeLimit(.minutes(10)))
struct PartitionTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    @Test("cut mid-job: the worker is failed over and the job completes exactly once on the other; healed: the cut-off worker rejoins, drops what moved, and serves again")
    func cutAndHealed() async throws {
        let n = 100_000, shards = 96
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 41), count: n) { _ in }
        }
        var logger = Logger(label: "test.partition")
        logger.logLevel = .warning
        // worker-p is failed over 10 s after the cut: the job started after the cut has its
        // shards dispatched to it first, however slowly a loaded machine starts it.
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 1, threads: 1,
                                                   shards: shards, coordinatorOptions: ["--unreachable-after", "10"],
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-partition", logger: logger)
        defer { cluster.stop() }
        // worker-p reaches the coordinator, and is reached, only through proxies.
        let coordinatorPort = try #require(cluster.coordinatorEndpoint.split(separator: ":").last.flatMap { UInt16($0) })
        let toCoordinator = try TCPProxy(targetPort: coordinatorPort)
        let workerPort = try TCPProxy.freePort()
        let toWorker = try TCPProxy(targetPort: workerPort)
        defer { toCoordinator.stop(); toWorker.stop() }
        try cluster.addWorker("worker-p", threads: 1, coordinator: "tcp://127.0.0.1:\(toCoordinator.port)",
                              arguments: ["--listen", "tcp://127.0.0.1:\(workerPort)", "--advertise", "tcp://127.0.0.1:\(toWorker.port)"])
        try await cluster.waitUntilReady(workers: 2, timeout: .seconds(300), logger: logger)
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        defer { Task { await client.close() } }

        // Cut, then the job: worker-p, still a member, is given its shards and can answer none.
        // (Cut after the job had written a shard, a loaded machine let worker-p finish all of its
        // shards first: a rehearsal saw no retry.)
        toCoordinator.cut()
        toWorker.cut()
        let id = try await client.coordinator.startRescore()
        let started = try await client.coordinator.job(id: id)
        try #require(started?.state == .running, "the job ran before worker-p was failed over: \(String(describing: started))")
        let done = try #require(try await FrozenWorkerTests.ended(client, id))
        #expect(done.state == .completed, "\(done)")
        #expect(done.retries > 0, "worker-p's shards were re-run elsewhere (retries \(done.retries))")
        let nodes = try await client.coordinator.nodes().map(\.name)
        #expect(nodes == ["worker-1"], "worker-p is not a member while cut off: \(nodes)")
        #expect(cluster.isRunning("worker-p"), "a partition does not stop the worker")
        #expect(toCoordinator.bytesSwallowed + toWorker.bytesSwallowed > 0, "traffic hit the partition")

        // Healed: worker-p's heartbeat gets through, it registers again and takes shards.
        toCoordinator.heal()
        toWorker.heal()
        let healedAt = ContinuousClock.now
        var serving: Duration?
        for _ in 0..<1200 {
            let status = try await client.coordinator.status()
            if let w = try await client.coordinator.nodes().first(where: { $0.name == "worker-p" }), w.shards > 0, w.readyShards == w.shards,
               status.unassignedShards == 0, status.movingShards == 0 {
                serving = ContinuousClock.now - healedAt
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let back = try #require(serving, "worker-p never served again after the partition healed")
        print("partition healed: worker-p serving again after \(back)")
        let log = (try? String(contentsOfFile: cluster.logPath("worker-p"), encoding: .utf8)) ?? ""
        #expect(log.contains("joining again"), "worker-p re-registered by itself")

        let db = try PostgresConnection(url: url)
        var counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")

        // The next job runs on both, exactly once.
        let next = try await client.coordinator.startRescore()
        let second = try #require(try await FrozenWorkerTests.ended(client, next))
        #expect(second.state == .completed, "\(second)")
        counts = try db.query("SELECT count(*), count(DISTINCT subscriber_id) FROM churn_scores_current").rows.first
        #expect(counts?[0] == String(n) && counts?[1] == String(n), "\(String(describing: counts))")
        #expect(try db.query("SELECT count(DISTINCT node) FROM scoring_job_shards WHERE job_id = $1", [String(next)]).scalar == "2", "both workers scored")
    }
}
