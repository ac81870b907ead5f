@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// A profile import committing while a shard loads from `subscriber_profiles`: the load holds the
/// profiles' generation while it copies, so the import waits for it, and the copy replays the
/// events received after the `as_of` of the profiles it copied — not the import's, which would
/// skip the events in between.
@Suite("A profile import during a shard's load", .timeLimit(.minutes(10)))
struct ImportDuringLoadTests {
    /// A cluster (no standbys) that took 3,000 events, and worker-1's state of its shards then:
    /// what a correct reload of them reproduces (no event comes meanwhile).
    static func eventsThenWorker1State(_ name: String) async throws
        -> (url: String, cluster: LocalCluster, client: ClusterClient, events: [SubscriberEvent], routing: Routing, moving: [Int], before: [Int: ShardState]) {
        let (url, cluster, client) = try await EventTests.cluster(name: name, standbys: false)
        do {
            let (_, events) = try EventTests.stream(name, events: 3_000)
            let (acks, _) = try await client.send(events: events, deadline: .seconds(120))
            #expect(acks.allSatisfy { $0.status == .accepted || $0.status == .duplicate }, "\(Set(acks.map(\.status)))")
            let routing = try await client.coordinator.routing()
            let moving = (0..<EventTests.shards).filter { routing.map.owners[$0] == "worker-1" }
            try #require(!moving.isEmpty)
            let worker1 = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-1" }), name: WorkerActor.name),
                                                  using: client.system)
            var before: [Int: ShardState] = [:]
            for s in moving { before[s] = try await worker1.export(s) }
            return (url, cluster, client, events, routing, moving, before)
        } catch {
            cluster.stop()
            throw error
        }
    }

    @Test("worker-1 SIGKILLed (no standby) while the table is locked: worker-2's load of its shards waits in its COPY, an import (newer as_of, one subscriber changed) is started and waits behind it; the lock goes: the load copies the old profiles and replays the events after their as_of, exactly the dead worker's state, and the import commits after it")
    func importDuringLoad() async throws {
        let (url, cluster, client, _, routing, moving, before) = try await Self.eventsThenWorker1State("import-load")
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let id = try #require(try db.query("SELECT min(subscriber_id) FROM subscriber_profiles WHERE churngrid_shard(subscriber_id, $1) = $2",
                                           [String(EventTests.shards), String(moving[0])]).scalar.flatMap(Int64.init))
        let path = "/tmp/churngrid-test-\(getpid())-import-load.csv"
        let values = FeatureCatalogue.names.map { name in name == "complaints_90d" ? "9" : name == "tenure_months" ? "1" : "0" }
        try ("subscriber_id," + FeatureCatalogue.names.joined(separator: ",") + "\n\(id)," + values.joined(separator: ",") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let generationBefore = try db.query("SELECT generation FROM churngrid_profile_generation").scalar

        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE subscriber_profiles IN ACCESS EXCLUSIVE MODE")
        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        // worker-2 takes the profiles' generation, then its COPY waits on the lock.
        _ = try await RescoringTests.eventually("worker-2's load waiting in its COPY", timeout: .seconds(180)) { () throws -> Bool? in
            try db.query("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'COPY%subscriber_profiles%'
                """).scalar != "0" ? true : nil
        }
        let importing = Task { try await onOwnThread { try ProfileImport(path: path).upsert(into: try PostgresConnection(url: url)) } }
        _ = try await RescoringTests.eventually("the import waiting", timeout: .seconds(60)) { () throws -> Bool? in
            try db.query("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query NOT ILIKE 'COPY%subscriber_profiles%'
                """).scalar != "0" ? true : nil
        }
        try holder.execute("COMMIT")
        let imported = try await importing.value
        #expect(imported.updated == 1)
        #expect(try db.query("SELECT generation FROM churngrid_profile_generation").scalar != generationBefore, "the import committed")

        _ = try await RescoringTests.eventually("worker-2 serves every shard", timeout: .seconds(180)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<EventTests.shards).allSatisfy { r.node(serving: $0)?.name == "worker-2" } ? true : nil
        }
        let worker2 = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-2" }), name: WorkerActor.name),
                                              using: client.system)
        var differing: [Int] = []
        for s in moving {
            let after = try await worker2.export(s)
            guard let old = before[s], after.ids.elements == old.ids.elements,
                  after.values.elements.map(\.bitPattern) == old.values.elements.map(\.bitPattern) else {
                differing.append(s)
                continue
            }
        }
        #expect(differing.isEmpty, "shards reloaded with another state than worker-1 held (events skipped or twice, or the imported profiles): \(differing)")
        await client.close()
    }

    @Test("a delta import (one subscriber, newer as_of) after events: worker-1 SIGKILLed, worker-2 loads its shards from the table and replays onto every other subscriber the events received after their own rows' as_of; the imported one is as the file says")
    func deltaImport() async throws {
        let (url, cluster, client, events, routing, moving, before) = try await Self.eventsThenWorker1State("delta-import")
        defer { cluster.stop() }
        // Subscribers of worker-1's shards that events changed: what the reload must not lose.
        let held = Set(before.values.flatMap(\.ids.elements))
        let touched = Set(events.map(\.subscriberID)).intersection(held)
        try #require(touched.count > 10)

        // A delta: one subscriber of worker-1's, as of now (after every event above).
        let db = try PostgresConnection(url: url)
        let id = try #require(touched.min())
        let path = "/tmp/churngrid-test-\(getpid())-delta-import.csv"
        let values = FeatureCatalogue.names.map { name in name == "complaints_90d" ? "9" : name == "tenure_months" ? "1" : "0" }
        try ("subscriber_id," + FeatureCatalogue.names.joined(separator: ",") + "\n\(id)," + values.joined(separator: ",") + "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let imported = try await onOwnThread { try ProfileImport(path: path).upsert(into: try PostgresConnection(url: url)) }
        #expect(imported.updated == 1)
        #expect(try db.query("SELECT count(*) FROM churngrid_profile_snapshots").scalar == "2", "the generated base and the delta")

        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        _ = try await RescoringTests.eventually("worker-2 serves every shard", timeout: .seconds(180)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<EventTests.shards).allSatisfy { r.node(serving: $0)?.name == "worker-2" } ? true : nil
        }
        let worker2 = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-2" }), name: WorkerActor.name),
                                              using: client.system)
        /// Each subscriber's profile in a shard's exported state (feature-major columns).
        func rows(_ state: ShardState) -> [Int64: [UInt32]] {
            let n = state.ids.elements.count, f = state.featureCount
            var out: [Int64: [UInt32]] = [:]
            for (r, sid) in state.ids.elements.enumerated() { out[sid] = (0..<f).map { state.values.elements[$0 * n + r].bitPattern } }
            return out
        }
        var lost: [Int64] = [], checked = 0
        var importedRow: [Float] = []
        for s in moving {
            let old = rows(try #require(before[s])), now = try await worker2.export(s)
            let new = rows(now)
            #expect(Set(old.keys) == Set(new.keys))
            for (sid, profile) in old where sid != id {
                checked += 1
                if new[sid] != profile { lost.append(sid) }
            }
            if let r = now.ids.elements.firstIndex(of: id) {
                importedRow = (0..<now.featureCount).map { now.values.elements[$0 * now.ids.elements.count + r] }
            }
        }
        #expect(checked > 0)
        #expect(lost.count == 0, "subscribers not in the delta whose reloaded profile lacks (or doubles) the events they received before it: \(lost.count), e.g. \(lost.prefix(5)) (of \(touched.count) with events)")
        let complaints = try #require(FeatureCatalogue.index(of: "complaints_90d"))
        #expect(importedRow.count > complaints && importedRow[complaints] == 9, "the delta's subscriber is as the file says (no event after it)")
        await client.close()
    }
}
