@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// An owner's write of events whose connection fails while the statement waits in the server: the
/// worker sees an error (the outcome unknown), the server does not (the statement goes on). The
/// owner replays the log before it takes the shards' events again; the cut statement must then
/// either have committed before that replay read the log, or never write at all. Otherwise its
/// rows land after the replay: events acknowledged as duplicates when resent but never applied,
/// and sequence numbers given twice.
@Suite("An event write cut off while it waits, going on in the server", .timeLimit(.minutes(10)))
struct CutWriteFaultTests {
    /// Where the cut statement waits.
    enum CutPoint: String, CaseIterable, CustomTestStringConvertible {
        /// On the log's table, before it locked its shards' fences (`LOCK TABLE subscriber_events`):
        /// the owner's raise does not wait for it.
        case beforeFences
        /// On today's partition, with its fences locked (`LOCK TABLE` of the partition the events
        /// go to): the owner's raise waits until it commits.
        case afterFences
        var testDescription: String { rawValue }
    }

    @Test("worker-1's write of 40 events waits on a lock when its connection is cut (through a proxy, the server side left open); the statement runs on once the lock goes: before its fences it writes nothing (they were raised again for the owner's replay), after them the owner's replay waits for it and applies it; each event logged once and applied once, every profile equals snapshot + log",
          arguments: CutPoint.allCases)
    func cutWrite(_ point: CutPoint) async throws {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 7), count: EventTests.subscribers) { _ in }
        }
        // worker-1 reaches PostgreSQL through a proxy whose client side the test fails.
        var components = try #require(URLComponents(string: url))
        let proxy = try TCPProxy(targetPort: UInt16(try #require(components.port)))
        defer { proxy.stop() }
        components.port = Int(proxy.port)
        let dir = "/tmp/churngrid-test-\(getpid())-cut-write-\(point.rawValue)"
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: EventTests.model, workers: 2, threads: 1,
                                                   shards: EventTests.shards, coordinatorOptions: ["--triggers", EventTests.triggers],
                                                   postgresURLs: ["worker-1": try #require(components.string)], logDirectory: dir, logger: RescoringTests.logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        let db = try PostgresConnection(url: url)
        let routing = try await client.coordinator.routing()
        let worker1 = try #require(routing.nodes.first { $0.name == "worker-1" })
        let onWorker1 = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 2000")
            .filter { routing.node(serving: ShardKey.shard(of: $0, shardCount: EventTests.shards))?.name == "worker-1" }
        try #require(onWorker1.count > 200)
        let owner = try WorkerActor.resolve(id: ActorID(node: worker1, name: WorkerActor.name), using: client.system)
        let worker1Log = { (try? String(contentsOfFile: cluster.logPath("worker-1"), encoding: .utf8)) ?? "" }
        // worker-1's event connection open, its statements prepared (the cut must hit a write, not
        // the preparation of a new connection).
        try await LiveCampaignTests.inquire(client, [try #require(onWorker1.last)], tag: "cut-warm-up")

        // The cut statement waits on the test's lock for at most the worker's `lock_timeout` (10 s).
        // On a machine so loaded that the owner's replay comes later, it gives up first and the
        // fault was not exercised: the attempt's events are settled and another attempt made.
        var exercised = false
        for attempt in 1...3 where !exercised {
            let victims = Array(onWorker1.dropFirst((attempt - 1) * 40).prefix(40))
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let events = victims.map { SubscriberEvent(eventID: "cut-\(attempt)-\($0)", source: "test", subscriberID: $0, type: .complaint, at: now) }
            let shards = events.map { Int32(ShardKey.shard(of: $0.subscriberID, shardCount: EventTests.shards)) }
            let victimShards = "{" + Set(shards).map(String.init).joined(separator: ",") + "}"
            let list = "{\(victims.map(String.init).joined(separator: ","))}"
            func logged() throws -> String? { try db.query("SELECT count(*) FROM subscriber_events WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar }

            let holder = try PostgresConnection(url: url)
            try holder.execute("BEGIN")
            switch point {
            case .beforeFences:
                try holder.execute("LOCK TABLE subscriber_events IN SHARE MODE")
            case .afterFences:
                let partition = try #require(try db.query("""
                    SELECT 'subscriber_events_p' || to_char(to_timestamp($1::bigint / 1000.0) AT TIME ZONE 'UTC', 'YYYYMMDD')
                    """, [String(now)]).scalar)
                try holder.execute("LOCK TABLE \(partition) IN SHARE MODE")
            }
            let first = Task {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(300)) { try await owner.ingest(EventBatch(events, shards: shards)) }
            }
            let waiting = try await RescoringTests.eventually("worker-1's write waiting on the lock", timeout: .seconds(300)) {
                try db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'WITH held AS%'").rows.first?[0].flatMap { $0 }
            }
            func generations() throws -> [[String?]] {
                try db.query("SELECT shard, generation FROM churngrid_event_owners WHERE shard = ANY($1::int[]) ORDER BY shard", [victimShards]).rows
            }
            func stillWaiting() throws -> Bool { try db.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [waiting]).scalar == "Lock" }
            let atCut = try generations()
            #expect(proxy.dropClients() > 0, "worker-1's connections were cut")
            let acks = try await first.value
            #expect(acks.statuses.elements.allSatisfy { $0 == EventAckStatus.retry.rawValue }, "the cut write's events are answered retry: \(acks.statuses.elements.prefix(8))")
            #expect(worker1Log().contains("logging events failed"), "worker-1 saw its write fail")

            switch point {
            case .beforeFences:
                // The owner raises its fences again and replays the log (at its next standby
                // refresh) while the cut statement still waits in the server.
                _ = try await RescoringTests.eventually("worker-1's fences raised again after the cut", timeout: .seconds(300)) { () throws -> Bool? in
                    let now = try generations()
                    return now.count == atCut.count && zip(now, atCut).allSatisfy { $0[1] != $1[1] } ? true : nil
                }
            case .afterFences:
                // The raise waits for the cut statement (it holds the fences): the shards stay
                // replaying, their events answered retry.
                _ = try await RescoringTests.eventually("worker-1's replay waiting for the cut statement", timeout: .seconds(300)) { () async throws -> Bool? in
                    let replaying = try await owner.eventStatus().stats.shardsReplaying
                    let gone = try !stillWaiting()
                    return worker1Log().contains("could not be replayed yet") && replaying > 0 || gone ? true : nil
                }
            }
            // The server did not notice the cut: the statement still waits (unless it ran out of
            // its own lock wait first — then this attempt proves nothing).
            guard try stillWaiting() else {
                proxy.releaseDropped()
                try holder.execute("ROLLBACK")
                let (settled, _) = try await client.send(events: events)
                #expect(settled.allSatisfy { $0.status == .accepted }, "\(settled.filter { $0.status != .accepted }.prefix(3))")
                print("attempt \(attempt): the cut statement gave up waiting before the owner's replay; trying again")
                continue
            }
            exercised = true
            if point == .afterFences { #expect(try generations() == atCut, "no raise got past the cut statement's fences") }

            // The cut statement runs on now.
            try holder.execute("COMMIT")
            _ = try await RescoringTests.eventually("the cut statement ended", timeout: .seconds(60)) { () throws -> Bool? in
                try db.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [waiting]).scalar == "0" ? true : nil
            }
            proxy.releaseDropped()
            switch point {
            case .beforeFences:
                // Its fences had been raised again since it was sent: it logged none of its events.
                #expect(try logged() == "0", "the cut statement wrote after the owner's replay")
            case .afterFences:
                // It committed, and the owner's replay (which waited for it) applies its events.
                #expect(try logged() == "40")
            }
            _ = try await RescoringTests.eventually("worker-1 synced again", timeout: .seconds(300)) { () async throws -> Bool? in
                try await owner.eventStatus().stats.shardsReplaying == 0 ? true : nil
            }
            // The producer resends (it was told retry): every event is taken once, by the resend or
            // by the replay of what the cut statement logged.
            let (resent, _) = try await client.send(events: events)
            let expected: EventAckStatus = point == .beforeFences ? .accepted : .duplicate
            #expect(resent.allSatisfy { $0.status == expected }, "\(resent.filter { $0.status != expected }.prefix(3))")
            #expect(try db.query("SELECT count(*), count(DISTINCT (shard, seq)) FROM subscriber_events WHERE subscriber_id = ANY($1::bigint[])", [list]).rows[0] == ["40", "40"])
            let reused = try db.query("""
                SELECT count(*) FROM subscriber_events a JOIN subscriber_events b ON a.shard = b.shard AND a.seq = b.seq
                  AND (a.source, a.event_id, a.at) <> (b.source, b.event_id, b.at)
                WHERE a.shard = ANY($1::int[])
                """, [victimShards]).scalar
            #expect(reused == "0", "no sequence number given twice in the victims' shards")
        }
        #expect(exercised, "in 3 attempts, the cut statement never outlived the owner's replay")
        // Applied once: the live state is what the log rebuilds, sequence numbers included.
        _ = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
        await client.close()
    }
}
