@testable import ChurnCluster
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// Start and reload (issue 18, part 5) on real processes and a real PostgreSQL: `coordinator
/// --min-workers` loads every shard once, on its final owner; profile snapshots load a lost
/// worker's shards with the events after them replayed exactly once; a corrupt snapshot and a
/// stale one (an import after it) fall back to `subscriber_profiles`.
@Suite("Start and reload: --min-workers and profile snapshots", .serialized, .timeLimit(.minutes(10)))
struct StartAndReloadTests {
    static let shards = EventTests.shards

    /// The cluster's status until `condition` holds (nil after `seconds`).
    static func status(_ client: ClusterClient, within seconds: Int = 120, _ condition: (ClusterStatus) -> Bool) async throws -> ClusterStatus? {
        for _ in 0..<(seconds * 10) {
            if let s = try? await client.coordinator.status(), condition(s) { return s }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    static func log(_ cluster: LocalCluster, _ name: String) -> String {
        (try? String(contentsOfFile: cluster.logPath(name), encoding: .utf8)) ?? ""
    }

    /// Events for the base starting `minutesAgo` minutes ago, from their own seed, sent through
    /// `churngrid events replay`.
    static func sendEvents(_ cluster: LocalCluster, name: String, seed: UInt64, count: Int, minutesAgo: Int64) async throws {
        var options = EventGenerator.Options(subscribers: EventTests.subscribers, events: count, seed: seed)
        options.start = Int64(Date().timeIntervalSince1970 * 1000) - minutesAgo * 60_000
        options.lateShare = 0
        var generator = EventGenerator(options)
        var lines: [String] = []
        generator.generate { lines.append($0.ndjson) }
        let path = "/tmp/churngrid-test-\(getpid())-\(name).ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (status, report) = try await EventTests.replay(path, cluster: cluster, log: "/tmp/churngrid-test-\(getpid())-\(name)-replay.log")
        try #require(status == 0, "events replay: \(report)")
        #expect((report["accepted"] as? Int ?? 0) > 0, "\(report)")
    }

    /// Kills worker-1 and waits until worker-2 owns every shard; returns worker-2's load counters
    /// and the shards it took over.
    /// `loading`: worker-2 loads the shards (no standby copies): wait for its counters too.
    static func killWorker1(_ cluster: LocalCluster, _ client: ClusterClient, loading: Bool = true) async throws -> (loads: ShardLoads, moved: Int) {
        let before = try await client.coordinator.routing()
        let moved = (0..<shards).filter { before.map.owners[$0] == "worker-1" }.count
        try #require(moved > 0)
        let earlier = try #require(try await client.coordinator.status().shardLoads?.first { $0.worker == "worker-2" }, "no load counters from worker-2")
        let pid = try #require(cluster.pid("worker-1"))
        kill(pid, SIGKILL)
        // Owned is not yet loaded: a shard counts as it finishes loading, so wait for the counters
        // too (before, a count read while the last shards still loaded came out short).
        let settled = try await status(client) { s in
            guard s.workers.map(\.name) == ["worker-2"], s.unassignedShards == 0, s.movingShards == 0,
                  let now = s.shardLoads?.first(where: { $0.worker == "worker-2" }) else { return false }
            return !loading || now.fromTable + now.fromSnapshot + now.streamed - earlier.fromTable - earlier.fromSnapshot - earlier.streamed >= moved
        }
        let s = try #require(settled, "worker-2 did not take over (and load) worker-1's \(moved) shards")
        var loads = try #require(s.shardLoads?.first { $0.worker == "worker-2" }, "no load counters from worker-2")
        // What the takeover loaded (worker-2 may have loaded shards from the table at the start).
        loads.fromTable -= earlier.fromTable
        loads.fromSnapshot -= earlier.fromSnapshot
        loads.snapshotsRejected -= earlier.snapshotsRejected
        loads.streamed -= earlier.streamed
        return (loads, moved)
    }

    @Test("--min-workers 2: nothing is placed (status says so, queries and jobs are refused) until the second worker registers; then every shard is loaded exactly once")
    func minWorkers() async throws {
        let url = try await TestDatabase.fresh()
        let n = 20_000
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 11), count: n) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: EventTests.model, workers: 1, threads: 1,
                                                   shards: Self.shards, coordinatorOptions: ["--min-workers", "2"],
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-min-workers", logger: RescoringTests.logger,
                                                   waitForReady: false)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await client.close() } }

        let waiting = try #require(try await Self.status(client, within: 60) { $0.starting == "waiting for 1 more worker (1 of 2)" },
                                   "the coordinator never said it waits for one more worker")
        #expect(waiting.unassignedShards == Self.shards && waiting.workers.allSatisfy { $0.shards == 0 })
        // A while later, still nothing placed.
        try await Task.sleep(for: .seconds(2))
        let still = try await client.coordinator.status()
        #expect(still.starting == "waiting for 1 more worker (1 of 2)" && still.unassignedShards == Self.shards)
        #expect((still.shardLoads ?? []).allSatisfy { $0.fromTable + $0.fromSnapshot + $0.streamed == 0 }, "\(still.shardLoads ?? [])")
        // Queries and jobs: a clear refusal, not a hang.
        if case .unavailable(_, let reason) = try await client.coordinator.score(1_000_000_123) {
            #expect(reason.contains("waiting for 1 more worker (1 of 2)"), "\(reason)")
        } else {
            Issue.record("a query was answered while no shard was placed")
        }
        do {
            _ = try await client.coordinator.startRescore()
            Issue.record("a job started while no shard was placed")
        } catch {
            #expect("\(error)".contains("the cluster is starting"), "\(error)")
        }
        let cli = try ChildProcess(try churngridExecutable(), ["status", "--json"] + cluster.clientOptions, logPath: "/tmp/churngrid-test-\(getpid())-min-workers-status.log")
        #expect(try await cli.wait(timeout: .seconds(30)) == 0)
        #expect(cli.log.contains("\"starting\":\"waiting for 1 more worker (1 of 2)\""), "\(cli.log)")
        #expect(Self.log(cluster, "coordinator").contains("start: waiting for 1 more worker (1 of 2) before placing shards"))

        try cluster.addWorker("worker-2", threads: 1)
        try await cluster.waitUntilReady(workers: 2, timeout: .seconds(300), logger: RescoringTests.logger)
        let ready = try #require(try await Self.status(client) { ($0.shardLoads ?? []).count == 2 && $0.starting == nil })
        let loads = try #require(ready.shardLoads)
        #expect(loads.map(\.fromTable).reduce(0, +) == Self.shards, "each shard loaded once: \(loads)")
        #expect(loads.allSatisfy { $0.streamed == 0 && $0.fromSnapshot == 0 && $0.fromTable > 0 }, "\(loads)")
        #expect(ready.workers.map(\.subscribers).reduce(0, +) == n)
        #expect(Self.log(cluster, "coordinator").contains("start: placing shards"))
        if case .found = try await client.score(1_000_000_123) {} else { Issue.record("no answer once the shards are placed") }
    }

    @Test("snapshot round trip: a lost worker's shards load from their snapshots and the events logged after them are applied exactly once")
    func roundTrip() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "snapshot-round-trip", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        try await Self.sendEvents(cluster, name: "snapshot-before", seed: 101, count: 3_000, minutesAgo: 90)
        let report = try await client.coordinator.snapshotProfiles()
        #expect(report.written == Self.shards && report.unowned == 0, "\(report)")
        #expect(report.subscribers == EventTests.subscribers)
        let stored = try PostgresConnection(url: url).query("SELECT count(*), sum(subscribers), min(applied_seq) FROM churngrid_shard_snapshots").rows[0]
        #expect(stored[0] == String(Self.shards) && stored[1] == String(EventTests.subscribers), "\(stored)")
        #expect((Int(stored[2] ?? "0") ?? 0) > 0, "the snapshots record the events they include")
        // Events after the snapshot: the new owner must replay exactly these.
        try await Self.sendEvents(cluster, name: "snapshot-after", seed: 202, count: 3_000, minutesAgo: 30)
        let (loads, moved) = try await Self.killWorker1(cluster, client)
        #expect(loads.fromSnapshot == moved && loads.fromTable == 0 && loads.snapshotsRejected == 0, "\(loads)")
        // The new owner replays the log once it owns the shards, which may be after the status
        // shows them placed (the fences are raised after the load).
        _ = try await RescoringTests.eventually("worker-2 never replayed the events logged after the snapshots", timeout: .seconds(60)) {
            Self.log(cluster, "worker-2").contains("replayed the shard's events from the log") ? true : nil
        }
        let (touched, _) = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
        #expect(touched > 0)
    }

    @Test("a corrupt snapshot is reported naming its shard, and that shard loads from subscriber_profiles")
    func corrupt() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "snapshot-corrupt", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let report = try await client.coordinator.snapshotProfiles()
        #expect(report.written == Self.shards, "\(report)")
        let routing = try await client.coordinator.routing()
        let victim = try #require((0..<Self.shards).first { routing.map.owners[$0] == "worker-1" })
        let db = try PostgresConnection(url: url)
        try db.query("UPDATE churngrid_shard_snapshots SET data = set_byte(data, 300, get_byte(data, 300) # 255) WHERE shard = $1", [String(victim)])
        let (loads, moved) = try await Self.killWorker1(cluster, client)
        #expect(loads.snapshotsRejected == 1 && loads.fromTable == 1 && loads.fromSnapshot == moved - 1, "\(loads)")
        #expect(loads.lastRejection.contains("shard \(victim):") && loads.lastRejection.contains("checksum"), "\(loads.lastRejection)")
        let log = Self.log(cluster, "worker-2")
        #expect(log.contains("profile snapshot not used; the shard is loaded from subscriber_profiles") && log.contains("shard=\(victim)"))
        _ = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
    }

    @Test("an import after a snapshot is never hidden by it: the import invalidates the snapshots, a snapshot from profiles older than the import is refused, and reloads read the table")
    func importAfterSnapshot() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "snapshot-import", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        #expect(try await client.coordinator.snapshotProfiles().written == Self.shards)
        // One subscriber of a shard worker-1 owns gets a very different profile.
        let routing = try await client.coordinator.routing()
        let shard = try #require((0..<Self.shards).first { routing.map.owners[$0] == "worker-1" })
        let db = try PostgresConnection(url: url)
        let id = try #require(try db.query("SELECT min(subscriber_id) FROM subscriber_profiles WHERE churngrid_shard(subscriber_id, $1) = $2",
                                           [String(Self.shards), String(shard)]).scalar.flatMap(Int64.init))
        let path = "/tmp/churngrid-test-\(getpid())-import.csv"
        let values = FeatureCatalogue.names.map { name in name == "complaints_90d" ? "9" : name == "port_out_inquiries_90d" ? "4" : name == "tenure_months" ? "1" : "0" }
        try ("subscriber_id," + FeatureCatalogue.names.joined(separator: ",") + "\n\(id)," + values.joined(separator: ",") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let imported = try await onOwnThread { try ProfileImport(path: path).upsert(into: try PostgresConnection(url: url)) }
        #expect(imported.updated == 1)
        #expect(try db.query("SELECT count(*) FROM churngrid_shard_snapshots").scalar == "0", "the import deleted the snapshots")
        // The workers still hold the profiles from before the import: their snapshots are refused.
        let again = try await client.coordinator.snapshotProfiles()
        #expect(again.written == 0, "\(again)")
        #expect(again.workers.flatMap(\.skipped).allSatisfy { $0.contains("stale") }, "\(again.workers.flatMap(\.skipped).prefix(3))")
        #expect(try db.query("SELECT count(*) FROM churngrid_shard_snapshots").scalar == "0")
        let (loads, moved) = try await Self.killWorker1(cluster, client)
        #expect(loads.fromSnapshot == 0 && loads.fromTable == moved, "\(loads)")
        // The reloaded shard holds the imported profile (live equals table + log).
        _ = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
        guard case .found(let score) = try await client.score(id) else {
            Issue.record("subscriber \(id) not found after the reload")
            return
        }
        #expect(score.node == "worker-2")
    }
}
