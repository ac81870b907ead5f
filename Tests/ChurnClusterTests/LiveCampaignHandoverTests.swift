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
    @Test("drained while its trigger rows cannot be written (retention_triggers locked): the unwritten rows stream with their shards, and the worker they move to writes each once after the drained one exited, named for the worker that fired it")
    func drainedWithRowsUnwritten() async throws {
        let (url, cluster, client, _) = try await LiveCampaignTests.cluster(name: "rows-drain", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let routing = try await client.coordinator.routing()
        let shardCount = routing.map.shardCount
        let candidates = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 2000")
        let victims = Array(candidates.filter { routing.node(serving: ShardKey.shard(of: $0, shardCount: shardCount))?.name == "worker-1" }.prefix(30))
        try #require(victims.count == 30)
        let list = "{\(victims.map(String.init).joined(separator: ","))}"
        // Trigger rows cannot be written while this is held (their INSERT waits out its lock timeout
        // and fails); the events themselves are logged and acknowledged.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE retention_triggers IN SHARE MODE")
        let owner = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-1" }), name: WorkerActor.name), using: client.system)
        let firedBefore = try await owner.eventStatus().stats.triggers
        try await LiveCampaignTests.inquire(client, victims, tag: "rows-drain")
        #expect(try await owner.eventStatus().stats.triggers - firedBefore >= victims.count, "worker-1 fired the victims' triggers")
        // The fault happened: worker-1 tried to write the rows and could not.
        _ = try await RescoringTests.eventually("worker-1 failed to write the trigger rows", timeout: .seconds(120)) { () -> Bool? in
            let log = (try? String(contentsOfFile: cluster.logPath("worker-1"), encoding: .utf8)) ?? ""
            return log.contains("trigger rows could not be written yet") ? true : nil
        }
        #expect(try db.query("SELECT count(*) FROM retention_triggers WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar == "0")

        let moving = (0..<shardCount).filter { routing.node(serving: $0)?.name == "worker-1" }.count
        func streamed() async throws -> Int { try await client.coordinator.status().shardLoads?.first { $0.worker == "worker-2" }?.streamed ?? -1 }
        let streamedBefore = try await streamed()
        let drained = await runCommand("\(shellQuoted(try churngridExecutable())) nodes drain worker-1 --coordinator \(cluster.coordinatorEndpoint)")
        #expect(drained.status == 0, "\(drained.output)")
        try await LiveCampaignTests.worker2ServesAll(client, shardCount: shardCount)
        // Streamed with the unwritten rows, not loaded from PostgreSQL (whose replay would fire the
        // triggers again, on worker-2).
        #expect(try await streamed() - streamedBefore == moving, "worker-2 streamed worker-1's \(moving) shards")
        // worker-1 tries the rows once more as it stops, fails on the lock, and exits.
        _ = try await RescoringTests.eventually("worker-1 exited", timeout: .seconds(240)) { cluster.isRunning("worker-1") ? nil : true }
        let stopped = (try? String(contentsOfFile: cluster.logPath("worker-1"), encoding: .utf8)) ?? ""
        #expect(stopped.contains("trigger rows not written at stop"), "the drained worker exited with its rows unwritten")
        #expect(try db.query("SELECT count(*) FROM retention_triggers WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar == "0")

        try holder.execute("COMMIT")
        let rows = try await RescoringTests.eventually("the victims' trigger rows written", timeout: .seconds(120)) { () throws -> [[String?]]? in
            let rows = try db.query("SELECT subscriber_id, node FROM retention_triggers WHERE subscriber_id = ANY($1::bigint[])", [list]).rows
            return rows.count >= victims.count ? rows : nil
        }
        #expect(rows.count == victims.count, "one row per trigger: \(rows.count) for \(victims.count)")
        #expect(Set(rows.compactMap { $0[0].flatMap { Int64($0) } }) == Set(victims))
        #expect(rows.allSatisfy { $0[1] == "worker-1" }, "named for the worker that fired them: \(rows.filter { $0[1] != "worker-1" }.prefix(3))")
    }
}
