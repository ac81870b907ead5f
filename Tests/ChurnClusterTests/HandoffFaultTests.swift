import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// The worker a joining worker streams its shards from dies during the handoff.
@Suite("A stream source killed mid-handoff", .serialized, .timeLimit(.minutes(10)))
struct HandoffFaultTests {
    @Test("the source is frozen, then killed, while a joining worker streams from it: the joiner loads those shards from PostgreSQL, the source's shards move, and the next job is exactly once")
    func sourceKilled() async throws {
        let n = 100_000, shards = 96
        // A frozen worker is declared lost only after 15 s: on a loaded machine the coordinator may
        // take seconds to admit the joiner, and the source must still be a member when it plans
        // the handoff (else the joiner streams from the other worker and nothing fails).
        let (url, cluster, client) = try await FrozenWorkerTests.cluster("handoff-kill", subscribers: n, shards: shards, seed: 53,
                                                                         options: ["--unreachable-after", "15"])
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let source = try #require(cluster.pid("worker-1"))
        // Frozen first, so the handoff is under way (its streams wait on the source) when it dies.
        kill(source, SIGSTOP)
        try cluster.addWorker("worker-3", threads: 1)
        // Killed once the coordinator has admitted the joiner (it plans the handoff with the
        // frozen source still a member: the joiner's streams from it wait, then fail).
        var streaming = false
        for _ in 0..<3000 {
            let log = (try? String(contentsOfFile: cluster.logPath("worker-3"), encoding: .utf8)) ?? ""
            let coordinator = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
            if log.contains("listening"), coordinator.contains("worker=worker-3") { streaming = true; break }
            try await Task.sleep(for: .milliseconds(20))
        }
        try #require(streaming, "worker-3 never joined")
        try await Task.sleep(for: .milliseconds(500))
        kill(source, SIGKILL)
        kill(source, SIGCONT)

        var settled: ClusterStatus?
        for _ in 0..<1200 {
            let s = try await client.coordinator.status()
            if s.workers.map(\.name).sorted() == ["worker-2", "worker-3"], s.unassignedShards == 0, s.movingShards == 0 { settled = s; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let status = try #require(settled, "the cluster did not settle on the two survivors")
        #expect(status.workers.allSatisfy { $0.shards > 0 }, "\(status.workers.map { ($0.name, $0.shards) })")
        let log3 = (try? String(contentsOfFile: cluster.logPath("worker-3"), encoding: .utf8)) ?? ""
        #expect(log3.contains("streaming a shard from its holder failed; loading it from PostgreSQL"), "the handoff from the dying source failed over to PostgreSQL")

        let id = try await client.coordinator.startRescore()
        let done = try #require(try await FrozenWorkerTests.ended(client, id))
        #expect(done.state == .completed, "\(done)")
        try CoordinatorTakeoverTests.checkPublished(url: url, subscribers: n, shards: shards)
    }
}
