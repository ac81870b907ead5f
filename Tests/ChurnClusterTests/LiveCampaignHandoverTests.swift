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
        let (url, cluster, client, dir) = try await LiveCampaignTests.cluster(name: "live-snap", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let cli = "\(shellQuoted(try churngridExecutable()))"
        let config = "\(dir)/live.json"
        try Data(LiveCampaignTests.campaign(name: "live-snap", callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: config))
        let started = await runCommand("\(cli) campaign live start --config \(config) --json --coordinator \(cluster.coordinatorEndpoint)")
        try #require(started.status == 0, "\(started.output)")
        let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)

        let routing = try await client.coordinator.routing()
        let shardCount = routing.map.shardCount
        let candidates = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 2000")
        let victims = Array(candidates.filter { routing.node(serving: ShardKey.shard(of: $0, shardCount: shardCount))?.name == "worker-1" }.prefix(50))
        try #require(victims.count == 50)
        let victimShards = Set(victims.map { ShardKey.shard(of: $0, shardCount: shardCount) })

        // Every live decision held (the row their write reads is locked) while the triggers fire.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        _ = try holder.query("SELECT 1 FROM campaign_live FOR UPDATE")
        try await LiveCampaignTests.inquire(client, victims, tag: "snap")
        let list = "{\(victims.map(String.init).joined(separator: ","))}"
        let owner = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-1" }), name: WorkerActor.name), using: client.system)
        _ = try await RescoringTests.eventually("worker-1 fired the triggers", timeout: .seconds(60)) { () async throws -> Bool? in
            let fired = try await owner.eventStatus().stats.triggers
            let stored = try db.query("SELECT count(DISTINCT subscriber_id) FROM retention_triggers WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar
            return fired >= 50 && stored == "50" ? true : nil
        }
        // The snapshot leaves out exactly the shards whose triggers wait (a copy loaded from it would
        // never fire them again); every other shard is written.
        let snapshot = await runCommand("\(cli) profiles snapshot --json --coordinator \(cluster.coordinatorEndpoint)")
        #expect(snapshot.status == 1, "some shards skipped: \(snapshot.output)")
        let report = try CampaignTests.json(snapshot.output)
        let skipped = ((report["workers"] as? [[String: Any]]) ?? []).flatMap { ($0["skipped"] as? [String]) ?? [] }
        let skippedShards = Set(skipped.filter { $0.contains("wait for their live decision") }.compactMap { line in
            line.split(separator: ":").first.flatMap { Int($0.replacingOccurrences(of: "shard ", with: "")) }
        })
        #expect(skippedShards == victimShards, "skipped \(skippedShards.sorted()), undecided on \(victimShards.sorted()): \(skipped.prefix(3))")
        #expect(report["written"] as? Int == shardCount - victimShards.count, "\(snapshot.output)")

        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        _ = try await RescoringTests.eventually("worker-2 serves every shard", timeout: .seconds(120)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<shardCount).allSatisfy { r.node(serving: $0)?.name == "worker-2" } ? true : nil
        }
        try await Task.sleep(for: .seconds(2))  // the dead worker's waiting write is cancelled by the server
        try holder.execute("COMMIT")
        let decided = try await RescoringTests.eventually("the victims' triggers decided", timeout: .seconds(120)) { () throws -> [[String?]]? in
            let rows = try db.query("SELECT subscriber_id, decided_by FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])",
                                    [String(run), list]).rows
            return rows.count == victims.count ? rows : nil
        }
        #expect(decided.allSatisfy { $0[1] == "worker-2" }, "\(decided.filter { $0[1] != "worker-2" }.prefix(3))")
    }

    @Test("drained while its decisions wait for the database: the triggers it had not decided stream with their shards, and the worker they move to decides them once the drained one has given up and exited; one action each")
    func drainedWhileUndecided() async throws {
        let (url, cluster, client, dir) = try await LiveCampaignTests.cluster(name: "live-drain", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let cli = "\(shellQuoted(try churngridExecutable()))"
        let config = "\(dir)/live.json"
        try Data(LiveCampaignTests.campaign(name: "live-drain", callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: config))
        let started = await runCommand("\(cli) campaign live start --config \(config) --json --coordinator \(cluster.coordinatorEndpoint)")
        try #require(started.status == 0, "\(started.output)")
        let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)

        let routing = try await client.coordinator.routing()
        let shardCount = routing.map.shardCount
        let candidates = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 2000")
        let victims = Array(candidates.filter { routing.node(serving: ShardKey.shard(of: $0, shardCount: shardCount))?.name == "worker-1" }.prefix(40))
        try #require(victims.count == 40)
        let list = "{\(victims.map(String.init).joined(separator: ","))}"

        // Every live decision held while the triggers fire and the shards move.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        _ = try holder.query("SELECT 1 FROM campaign_live FOR UPDATE")
        try await LiveCampaignTests.inquire(client, victims, tag: "drain")
        let owner = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-1" }), name: WorkerActor.name), using: client.system)
        _ = try await RescoringTests.eventually("worker-1 fired the triggers", timeout: .seconds(60)) { () async throws -> Bool? in
            try await owner.eventStatus().stats.triggers >= 40 ? true : nil
        }
        let moving = (0..<shardCount).filter { routing.node(serving: $0)?.name == "worker-1" }.count
        func streamed() async throws -> Int { try await client.coordinator.status().shardLoads?.first { $0.worker == "worker-2" }?.streamed ?? -1 }
        let streamedBefore = try await streamed()
        let drained = await runCommand("\(cli) nodes drain worker-1 --coordinator \(cluster.coordinatorEndpoint)")
        #expect(drained.status == 0, "\(drained.output)")
        _ = try await RescoringTests.eventually("worker-2 serves every shard", timeout: .seconds(120)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<shardCount).allSatisfy { r.node(serving: $0)?.name == "worker-2" } ? true : nil
        }
        // Streamed (with the triggers), not loaded from PostgreSQL (whose replay would fire them again).
        #expect(try await streamed() - streamedBefore == moving, "worker-2 streamed worker-1's \(moving) shards")
        // worker-1 tries its decisions once more as it stops, gives up on the held row, and exits.
        _ = try await RescoringTests.eventually("worker-1 exited", timeout: .seconds(240)) { cluster.isRunning("worker-1") ? nil : true }
        let gaveUp = (try? String(contentsOfFile: cluster.logPath("worker-1"), encoding: .utf8)) ?? ""
        #expect(gaveUp.contains("live decisions not recorded at stop"), "the drained worker left its decisions undone")
        try holder.execute("COMMIT")

        let decided = try await RescoringTests.eventually("the victims' triggers decided", timeout: .seconds(120)) { () throws -> [[String?]]? in
            let rows = try db.query("SELECT subscriber_id, decided_by FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])",
                                    [String(run), list]).rows
            return rows.count == victims.count ? rows : nil
        }
        #expect(decided.allSatisfy { $0[1] == "worker-2" }, "\(decided.filter { $0[1] != "worker-2" }.prefix(3))")
        #expect(try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])", [String(run), list]).scalar == "40",
                "one action each")
    }
}
