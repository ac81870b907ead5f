@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import Retention
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// Triggers whose live decision outlives the copy of their shard that fired them, on a real
/// cluster: a profile snapshot taken before the decision, a shard streamed away before it (beside
/// `LiveCampaignTests`, whose helpers it uses).
@Suite("Real-time retention: undecided triggers across snapshots and moves", .serialized, .timeLimit(.minutes(10)))
struct LiveCampaignHandoverTests {
    @Test("no standby: a profile snapshot taken while the owner's decisions wait skips the shards whose triggers are undecided; the owner SIGKILLed, the next owner loads them and decides every trigger, one action each")
    func snapshotWhileUndecided() async throws {
        let held = try await LiveCampaignTests.heldDecisions(name: "live-snap", standbys: false, victims: 50)
        defer { held.cluster.stop() }
        let victimShards = Set(held.victims.map { ShardKey.shard(of: $0, shardCount: held.shardCount) })
        // The snapshot leaves out exactly the shards whose triggers wait (a copy loaded from it would
        // never fire them again); every other shard is written.
        let snapshot = await runCommand("\(shellQuoted(try churngridExecutable())) profiles snapshot --json --coordinator \(held.cluster.coordinatorEndpoint)")
        #expect(snapshot.status == 1, "some shards skipped: \(snapshot.output)")
        let report = try CampaignTests.json(snapshot.output)
        let skipped = ((report["workers"] as? [[String: Any]]) ?? []).flatMap { ($0["skipped"] as? [String]) ?? [] }
        let skippedShards = Set(skipped.filter { $0.contains("wait for their live decision") }.compactMap { line in
            line.split(separator: ":").first.flatMap { Int($0.replacingOccurrences(of: "shard ", with: "")) }
        })
        #expect(skippedShards == victimShards, "skipped \(skippedShards.sorted()), undecided on \(victimShards.sorted()): \(skipped.prefix(3))")
        #expect(report["written"] as? Int == held.shardCount - victimShards.count, "\(snapshot.output)")

        kill(try #require(held.cluster.pid("worker-1")), SIGKILL)
        try await LiveCampaignTests.worker2ServesAll(held.client, shardCount: held.shardCount)
        try await Task.sleep(for: .seconds(2))  // the dead worker's waiting write is cancelled by the server
        try held.holder.execute("COMMIT")
        let decided = try await LiveCampaignTests.decided(held)
        #expect(decided.allSatisfy { $0[1] == "worker-2" }, "\(decided.filter { $0[1] != "worker-2" }.prefix(3))")
    }

    @Test("drained while its decisions wait for the database: the triggers it had not decided stream with their shards, and the worker they move to decides them once the drained one has given up and exited; one action each")
    func drainedWhileUndecided() async throws {
        let held = try await LiveCampaignTests.heldDecisions(name: "live-drain", standbys: false, victims: 40)
        defer { held.cluster.stop() }
        let client = held.client
        let moving = (0..<held.shardCount).filter { held.routing.node(serving: $0)?.name == "worker-1" }.count
        func streamed() async throws -> Int { try await client.coordinator.status().shardLoads?.first { $0.worker == "worker-2" }?.streamed ?? -1 }
        let streamedBefore = try await streamed()
        let drained = await runCommand("\(shellQuoted(try churngridExecutable())) nodes drain worker-1 --coordinator \(held.cluster.coordinatorEndpoint)")
        #expect(drained.status == 0, "\(drained.output)")
        try await LiveCampaignTests.worker2ServesAll(client, shardCount: held.shardCount)
        // Streamed (with the triggers), not loaded from PostgreSQL (whose replay would fire them again).
        #expect(try await streamed() - streamedBefore == moving, "worker-2 streamed worker-1's \(moving) shards")
        // worker-1 tries its decisions once more as it stops, gives up on the held row, and exits.
        _ = try await RescoringTests.eventually("worker-1 exited", timeout: .seconds(240)) { held.cluster.isRunning("worker-1") ? nil : true }
        let gaveUp = (try? String(contentsOfFile: held.cluster.logPath("worker-1"), encoding: .utf8)) ?? ""
        #expect(gaveUp.contains("live decisions not recorded at stop"), "the drained worker left its decisions undone")
        try held.holder.execute("COMMIT")
        let decided = try await LiveCampaignTests.decided(held)
        #expect(decided.allSatisfy { $0[1] == "worker-2" }, "\(decided.filter { $0[1] != "worker-2" }.prefix(3))")
        #expect(try held.db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])",
                                  [String(held.run), held.list]).scalar == "40", "one action each")
    }
}
