@testable import ChurnCluster
import Foundation
import Postgres
import SubscriberEvents
import Testing
import TestSupport

/// A takeover's replay of the log cut off: the survivor's connection is terminated while it reads
/// the events a dead owner logged, after it raised the shards' fences. Until a replay has read the
/// log to its end the shards must not take events (they would be numbered from the copy and the
/// previous owner's last events skipped for good).
@Suite("A takeover whose replay of the log is cut off", .timeLimit(.minutes(10)))
struct TakeoverReplayFaultTests {
    @Test("the survivor's replay of a dead owner's shards is cut off (its connection terminated while it reads the log, under a stream): events are resent, not taken, until a replay reads the log to its end; every acknowledged event is logged once and every profile equals snapshot + log")
    func replayCutOff() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "replay-cut", standbys: false)
        defer { cluster.stop() }
        let (path, events) = try EventTests.stream("replay-cut", events: 30_000)
        let distinct = Set(events.map { EventKey($0) }).count
        let replay = try ChildProcess(try churngridExecutable(), ["events", "replay", "--input", path, "--coordinator", cluster.coordinatorEndpoint,
                                                                  "--rate", "2000", "--json", "--no-triggers"],
                                      logPath: "\(cluster.logDirectory)/replay.log")
        let db = try PostgresConnection(url: url)
        func logged() throws -> Int { Int(try db.query("SELECT count(*) FROM subscriber_events").scalar ?? "0") ?? 0 }
        _ = try await RescoringTests.eventually("events logged", timeout: .seconds(120)) { try logged() > 3_000 ? true : nil }

        // The newest partition (days ahead) held: a read of the whole log waits on it, today's
        // inserts do not.
        let partition = try #require(try db.query("""
            SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = 'subscriber_events'
            """).scalar)
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE \(partition) IN ACCESS EXCLUSIVE MODE")
        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        // The survivor raises the dead owner's fences, then its replay waits on the lock: its
        // connection is terminated there, half-way through the takeover.
        let reader = try await RescoringTests.eventually("the survivor's replay waiting on the log", timeout: .seconds(120)) {
            try db.query("""
                SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'SELECT source, event_id, %'
                """).rows.first?[0].flatMap { $0 }
        }
        let fenced = try db.query("SELECT count(*) FROM churngrid_event_owners WHERE node = 'worker-2'").scalar.flatMap { Int($0) } ?? 0
        #expect(fenced > EventTests.shards / 2, "the survivor raised the dead owner's fences before its replay (\(fenced) held)")
        #expect(try db.query("SELECT pg_terminate_backend($1)", [reader]).scalar == "t", "the replay's connection was cut")
        try holder.execute("ROLLBACK")
        let atCut = try logged()

        let status = try await replay.wait(timeout: .seconds(600))
        let line = replay.log.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let report = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
        #expect(status == 0, "replay: \(replay.log.suffix(2000))")
        #expect(report["unsettled"] as? Int == 0)
        #expect((report["resent"] as? Int ?? 0) > 0, "the takeover made the producer resend: \(report)")
        let accepted = report["accepted"] as? Int ?? -1, duplicates = report["duplicates"] as? Int ?? -1
        #expect(accepted + duplicates == events.count, "\(report)")
        #expect(try logged() > atCut, "events were logged after the cut")
        #expect(try db.query("SELECT count(*), count(DISTINCT (source, event_id, at)) FROM subscriber_events").rows[0] == [String(distinct), String(distinct)])
        let survivor = (try? String(contentsOfFile: cluster.logPath("worker-2"), encoding: .utf8)) ?? ""
        #expect(survivor.contains("the shards' events wait until their fences can be raised")
                || survivor.contains("taking over the shards' events failed"), "the survivor saw its replay fail")

        _ = try await RescoringTests.eventually("every shard owned again", timeout: .seconds(120)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<EventTests.shards).allSatisfy { r.node(serving: $0) != nil } ? true : nil
        }
        _ = try await RescoringTests.eventually("no shard left replaying", timeout: .seconds(120)) { () async throws -> Bool? in
            let s = try await client.eventStatus()  // worker-2 alone
            return s.count == 1 && s.allSatisfy { $0.stats.shardsReplaying + $0.stats.shardsWaiting + $0.stats.shardsLost == 0 } ? true : nil
        }
        _ = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
        await client.close()
    }
}
