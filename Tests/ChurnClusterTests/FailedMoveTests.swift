import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// A move that fails half-way: some workers took their part (and raised the event fences of the
/// shards they were to own), another did not, and the map stays as it was.
@Suite("A move that fails half-way", .serialized, .timeLimit(.minutes(10)))
struct FailedMoveTests {
    @Test("a drain whose one receiver freezes fails; the draining worker takes its shards' event fences back, so every event of every subscriber is accepted, none left refused as not_owner")
    func drainFailsHalfWay() async throws {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 31), count: 6_000) { _ in }
        }
        let logs = "/tmp/churngrid-test-\(getpid())-failed-move"
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: EventTests.model, workers: 3, threads: 1, shards: 24,
                                                   coordinatorOptions: ["--triggers", EventTests.triggers], logDirectory: logs, logger: RescoringTests.logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await client.close() } }
        let before = try await client.coordinator.status()
        try #require(before.workers.count == 3 && before.workers.allSatisfy { $0.shards > 0 }, "\(before.workers.map { ($0.name, $0.shards) })")

        // worker-3 freezes; worker-1's drain gives it a part, which fails once it is found unreachable,
        // while worker-2 takes its part.
        let frozen = try #require(cluster.pid("worker-3"))
        kill(frozen, SIGSTOP)
        defer { kill(frozen, SIGCONT) }
        do {
            let moved = try await ClusterActorSystem.$callTimeout.withValue(.seconds(120)) { try await client.coordinator.drain("worker-1") }
            Issue.record("the drain succeeded (\(moved) shards) although a receiver was frozen")
        } catch {
            #expect("\(error)".contains("worker-3"), "the failure names the frozen worker: \(error)")
        }
        let log = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(log.contains("a move failed half-way"), "the coordinator took the fences back")

        // The cluster settles on worker-1 and worker-2 (worker-3 failed over).
        _ = try await RescoringTests.eventually("the cluster did not settle without worker-3", timeout: .seconds(120)) { () -> Bool? in
            guard let s = try? await client.coordinator.status(), s.unassignedShards == 0, s.movingShards == 0,
                  s.workers.map(\.name).sorted() == ["worker-1", "worker-2"] else { return nil }
            return true
        }
        // An event for every subscriber: each is accepted by its shard's owner.
        let ids = try PostgresConnection(url: url).query("SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id").rows.compactMap { $0[0].flatMap { Int64($0) } }
        let at = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        let path = "\(logs)/events.ndjson"
        try (ids.map { SubscriberEvent(eventID: "after-failed-move-\($0)", source: "test", subscriberID: $0, type: .complaint, at: at).ndjson }.joined(separator: "\n") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let (status, report) = try await EventTests.replay(path, cluster: cluster, log: "\(logs)/replay.log")
        #expect(status == 0 && report["accepted"] as? Int == ids.count, "replay exit \(status): \(report)")
    }
}
