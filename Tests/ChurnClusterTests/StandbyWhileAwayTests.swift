@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// Standby copies made while PostgreSQL is away: after an owner dies during the outage, the
/// coordinator promotes its standbys (their takeovers wait for the database) and makes new standby
/// copies of those shards, streamed from their new owners with their event state. When a new owner
/// dies too, still during the outage, those copies are promoted in turn. Once the server is back
/// every shard takes events again, and every profile equals snapshot + log.
@Suite("Standby copies made while PostgreSQL is away", .timeLimit(.minutes(10)))
struct StandbyWhileAwayTests {
    @Test("3 workers with standbys; PostgreSQL stopped; worker-1 SIGKILLed (its standbys promoted, new standby copies made during the outage), then the owner of most of its shards SIGKILLed too; PostgreSQL started: the last worker owns every shard, takes every event, and its state equals snapshot + log")
    func standbysMadeWhileAway() async throws {
        let script = DatabaseFaultTests.script
        let dir = "/tmp/churngrid-test-\(getpid())-standby-away"
        let (started, output) = await runCommand("bash \(shellQuoted(script)) start \(shellQuoted(dir)) 2>&1")
        try #require(started == 0, "\(output)")
        let url = try #require(output.split(separator: "\n").last.map(String.init))
        defer { _ = system("bash \(shellQuoted(script)) stop \(shellQuoted(dir)) >/dev/null 2>&1") }
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 7), count: EventTests.subscribers) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: EventTests.model, workers: 3, threads: 1,
                                                   shards: EventTests.shards, coordinatorOptions: ["--triggers", EventTests.triggers, "--standbys", "--lease-seconds", "180"],
                                                   logDirectory: "\(dir)-logs", logger: RescoringTests.logger)
        defer { cluster.stop() }
        // The coordinator gives orders only while its lease lasts; with PostgreSQL away it is not
        // renewed: a long lease lets both failovers happen during the outage, however slow the machine.
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        let (_, events) = try EventTests.stream("standby-away", events: 6_000)
        let (before, _) = try await client.send(events: Array(events.prefix(3_000)), deadline: .seconds(120))
        #expect(before.allSatisfy { $0.status == .accepted || $0.status == .duplicate }, "\(Set(before.map(\.status)))")
        let routing = try await client.coordinator.routing()
        let shardsOfWorker1 = (0..<EventTests.shards).filter { routing.node(serving: $0)?.name == "worker-1" }
        try #require(!shardsOfWorker1.isEmpty)

        let (stopped, stopText) = await runCommand("bash \(shellQuoted(script)) stop \(shellQuoted(dir)) 2>&1")
        try #require(stopped == 0, "\(stopText)")
        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        // worker-1's shards are promoted on the others (their takeovers wait for PostgreSQL) and
        // copied anew as standbys, all during the outage.
        let afterFirst = try await RescoringTests.eventually("worker-1's shards served by the others", timeout: .seconds(180)) { () async throws -> Routing? in
            let r = try await client.coordinator.routing()
            return shardsOfWorker1.allSatisfy { s in r.node(serving: s).map { $0.name != "worker-1" } ?? false } ? r : nil
        }
        let waiting = try await RescoringTests.eventually("takeovers waiting for PostgreSQL", timeout: .seconds(120)) { () async throws -> Int? in
            let n = try await client.eventStatus().reduce(0) { $0 + $1.stats.shardsWaiting }
            return n > 0 ? n : nil
        }
        #expect(waiting >= 1)
        // The survivor that took most of worker-1's shards dies too; the other one must take them
        // from the standby copies it was given during the outage.
        let counts = Dictionary(grouping: shardsOfWorker1) { afterFirst.node(serving: $0)?.name ?? "" }.mapValues(\.count)
        let victim = try #require(counts.max { $0.value < $1.value }?.key)
        let survivor = victim == "worker-2" ? "worker-3" : "worker-2"
        _ = try await RescoringTests.eventually("standby copies on \(survivor) of \(victim)'s shards", timeout: .seconds(180)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            let owned = (0..<EventTests.shards).filter { r.node(serving: $0)?.name == victim }
            return !owned.isEmpty && owned.allSatisfy { r.map.standbys[$0] == survivor } ? true : nil
        }
        kill(try #require(cluster.pid(victim)), SIGKILL)
        _ = try await RescoringTests.eventually("\(survivor) serves every shard during the outage", timeout: .seconds(180)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<EventTests.shards).allSatisfy { r.node(serving: $0)?.name == survivor } ? true : nil
        }
        // Still away: events are refused (retry or not_owner), none acknowledged.
        let (refused, _) = try await client.send(events: Array(events[3_000..<3_100]), deadline: .seconds(3))
        #expect(refused.allSatisfy { $0.status != .accepted && $0.status != .duplicate }, "\(Set(refused.map(\.status)))")

        let (back, backText) = await runCommand("PG_SAME_PORT=1 bash \(shellQuoted(script)) start \(shellQuoted(dir)) 2>&1")
        try #require(back == 0, "\(backText)")
        _ = try await RescoringTests.eventually("\(survivor) serves every shard", timeout: .seconds(180)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<EventTests.shards).allSatisfy { r.node(serving: $0)?.name == survivor } ? true : nil
        }
        _ = try await RescoringTests.eventually("\(survivor) owns every shard's events", timeout: .seconds(180)) { () async throws -> Bool? in
            let s = try await client.eventStatus()
            return s.count == 1 && s.allSatisfy { $0.stats.shardsReplaying + $0.stats.shardsWaiting + $0.stats.shardsLost == 0 } ? true : nil
        }
        // The copies made during the outage were promoted (not loaded again from PostgreSQL).
        let coordinatorLog = (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
        #expect(coordinatorLog.split(separator: "\n").contains { $0.contains("standbys took over the lost worker's shards") && $0.contains("worker=\(victim)") },
                "\(survivor)'s standby copies of \(victim)'s shards were promoted")
        let (after, _) = try await client.send(events: Array(events[3_000...]), deadline: .seconds(120))
        #expect(after.allSatisfy { $0.status == .accepted || $0.status == .duplicate }, "\(Set(after.map(\.status)))")
        let db = try PostgresConnection(url: url)
        let distinct = Set(events.map { EventKey($0) }).count
        #expect(try db.query("SELECT count(*), count(DISTINCT (source, event_id, at)) FROM subscriber_events").rows[0] == [String(distinct), String(distinct)])
        _ = try await EventTests.expectLiveEqualsRebuilt(client, url: url)
        await client.close()
    }
}
