import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport
import WireFormat

@Suite("Erasure on a local cluster: a subscriber who asked to be forgotten is gone from every shard, standby, snapshot and table", .serialized, .timeLimit(.minutes(10)))
struct ErasureClusterTests {
    /// Rows of `ids` in each table that holds a subscriber's data.
    static func rows(_ db: PostgresConnection, _ ids: [Int64]) throws -> [String: Int] {
        let list = "{" + ids.map(String.init).joined(separator: ",") + "}"
        var out: [String: Int] = [:]
        for table in ["subscriber_profiles", "churn_scores", "subscriber_events", "retention_triggers", "campaign_actions", "contact_history",
                      "contact_consent", "do_not_contact", "subscriber_outcomes"] {
            out[table] = Int(try db.query("SELECT count(*) FROM \(table) WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar ?? "") ?? -1
        }
        out["top_risk"] = Int(try db.query("""
            SELECT count(*) FROM scoring_job_summaries, jsonb_array_elements(top_risk) e WHERE (e->>'subscriber_id')::bigint = ANY($1::bigint[])
            """, [list]).scalar ?? "") ?? -1
        return out
    }

    /// A row in every table of the retention side for each of `ids` (the cluster's own tables, as a
    /// campaign run, the CRM and an outcome import would leave them).
    static func seedRetentionRows(_ db: PostgresConnection, _ ids: [Int64], job: Int64) throws {
        let run = try #require(try db.query("""
            INSERT INTO campaign_runs (campaign, config, job_id, model_version, started_at, created_by, summary)
            SELECT 'erasure-test', '{}'::jsonb, id, model_version, now(), 'test', '{}'::jsonb FROM scoring_jobs WHERE id = $1 RETURNING run_id
            """, [String(job)]).scalar)
        for id in ids.map(String.init) {
            _ = try db.query("""
                INSERT INTO campaign_actions (run_id, subscriber_id, arm, offer_id, channel, cost, priority, expected_value, probability, clv, tier, band, reasons, script, send_after)
                VALUES ($1, $2, 'treatment', 'loyalty_call', 'call', 5, 1, 10, 0.5, 100, 'high', 'high', '{complaints_90d}', 'script', now())
                """, [run, id])
            _ = try db.query("INSERT INTO contact_history (subscriber_id, channel, at, run_id, offer_id) VALUES ($1, 'call', now(), $2, 'loyalty_call')", [id, run])
            _ = try db.query("INSERT INTO contact_consent (subscriber_id, channel, consented) VALUES ($1, 'sms', false)", [id])
            _ = try db.query("INSERT INTO do_not_contact (subscriber_id, note) VALUES ($1, 'asked')", [id])
            _ = try db.query("INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned, accepted) VALUES ($1, now(), true, false)", [id])
            _ = try db.query("""
                INSERT INTO retention_triggers (trigger_id, event_at, rule, subscriber_id, source, event_id, event_type, probability_before, probability_after,
                                                band, reasons, contributions, model_version, node, fired_at)
                VALUES ('erasure-test-' || $1, now(), 'test_rule', $1::bigint, 'test', 'e', 'complaint', 0.1, 0.5, 'high', '{complaints_90d}', '{0.3}', 'm', 'worker-1', now())
                """, [id])
        }
    }

    @Test("subscribers erase: gone from every owner and standby (also after a failover), every table, the job summaries and the snapshots; the others untouched; snapshots written again; later jobs and events do not bring them back; the audit log records it; refused while a job runs")
    func eraseEverywhere() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "erase", standbys: true)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let shards = EventTests.shards
        // Every shard has its standby before anything else.
        _ = try await RescoringTests.eventually("not every shard has a standby", timeout: .seconds(300)) { () -> Bool? in
            let map = try await client.coordinator.shardMap()
            let status = try await client.coordinator.status()
            return map.standbys.allSatisfy { $0 != nil } && status.movingShards == 0 && status.unassignedShards == 0 ? true : nil
        }

        let job1 = try await client.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(client, job1).state == .completed)
        // Victims: the two riskiest of the job (in its summary's top list) and one more; controls beside them.
        let top = try #require(try db.query("SELECT top_risk FROM scoring_job_summaries WHERE job_id = $1", [String(job1)]).scalar)
        let topIDs = (try JSONSerialization.jsonObject(with: Data(top.utf8)) as? [[String: Any]] ?? []).compactMap { ($0["subscriber_id"] as? NSNumber)?.int64Value }
        try #require(topIDs.count >= 4, "\(top)")
        let victims = [topIDs[0], topIDs[1], 1_000_000_123]
        let controls = [topIDs[2], topIDs[3], 1_000_000_124]

        // Their events (and the controls'), triggers, campaign rows, consent, outcomes and a snapshot.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var lines: [String] = []
        for (k, id) in (victims + controls).enumerated() {
            for e in 0..<3 {
                lines.append(SubscriberEvent(eventID: "erase-\(k)-\(e)", source: "test", subscriberID: id, type: .complaint, at: now - 600_000 + Int64(e) * 60_000).ndjson)
            }
        }
        let path = "/tmp/churngrid-test-\(getpid())-erase.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let (replayed, replay) = try await EventTests.replay(path, cluster: cluster, log: "/tmp/churngrid-test-\(getpid())-erase-replay.log")
        try #require(replayed == 0 && replay["accepted"] as? Int == lines.count, "\(replay)")
        try Self.seedRetentionRows(db, victims + controls, job: job1)
        let snapshot = try await client.coordinator.snapshotProfiles()
        #expect(snapshot.written == shards, "\(snapshot)")
        let before = try Self.rows(db, victims)
        #expect(before.allSatisfy { $0.value > 0 }, "every table holds the victims' rows before: \(before)")
        for id in victims + controls {
            guard case .found = try await client.score(id) else { Issue.record("subscriber \(id) is not found before the erasure"); continue }
        }

        // Refused while a job runs (its writes held by a lock, so it is running when asked).
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE scoring_job_shards IN ACCESS EXCLUSIVE MODE")
        let held = try await client.coordinator.startRescore()
        do {
            _ = try await client.coordinator.erase(subscribers: BulkArray(victims))
            Issue.record("an erasure ran while job \(held) was running")
        } catch {
            #expect("\(error)".contains("job \(held) is running"), "\(error)")
        }
        try holder.execute("COMMIT")
        #expect(try await RescoringTests.waitForJob(client, held).state == .completed)
        #expect(try Self.rows(db, victims)["subscriber_profiles"] == 3, "the refused erasure deleted nothing")
        let controlsBefore = try Self.rows(db, controls)

        // Bad input: a clear error naming the argument, nothing erased.
        let churngrid = shellQuoted(try churngridExecutable())
        let bad = await runCommand("\(churngrid) subscribers erase \(victims[0]) 12x --coordinator \(cluster.coordinatorEndpoint)")
        #expect(bad.status != 0 && bad.output.contains("argument 2, '12x', is not a subscriber id"), "\(bad.output)")
        if case .found = try await client.score(victims[0]) {} else { Issue.record("a refused command erased subscriber \(victims[0])") }

        // The erasure (with an id the cluster never held).
        let erased = await runCommand("\(churngrid) subscribers erase \(victims.map(String.init).joined(separator: " ")) 999 --coordinator \(cluster.coordinatorEndpoint) --json")
        try #require(erased.status == 0, "\(erased.output)")
        let line = erased.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(erased.output)")
        #expect(report["subscribers"] as? Int == 4 && report["foundInMemory"] as? Int == 3 && report["workers"] as? Int == 2, "\(report)")
        #expect(report["copies"] as? Int == 6, "an owner and a standby copy of each: \(report)")
        #expect(report["snapshots"] as? Int == shards, "\(report)")
        let deleted = report["rows"] as? [String: Int] ?? [:]
        #expect(deleted["subscriber_profiles"] == 3 && deleted["subscriber_events"] == 9 && deleted["churn_scores"] == 6, "two jobs' scores of each: \(deleted)")

        // Gone from PostgreSQL; the controls' rows all there.
        let after = try Self.rows(db, victims)
        #expect(after.allSatisfy { $0.value == 0 }, "\(after)")
        let controlsAfter = try Self.rows(db, controls)
        #expect(controlsAfter == controlsBefore && controlsAfter.allSatisfy { $0.value > 0 }, "the controls kept every row: \(controlsBefore) → \(controlsAfter)")
        #expect(try db.query("SELECT count(*) FROM churngrid_shard_snapshots").scalar == "0", "the snapshots held the victims: deleted")
        // Gone from every owner and every standby.
        let map = try await client.coordinator.shardMap()
        let nodes = try await client.coordinator.routing().nodes
        for id in victims {
            if case .found = try await client.score(id) { Issue.record("the owner still answers for erased subscriber \(id)") }
            let shard = ShardKey.shard(of: id, shardCount: shards)
            let standbyNode = try #require(nodes.first { $0.name == map.standbys[shard] }, "shard \(shard) has no standby")
            let standby = try ShardActor.resolve(shard: shard, role: .standby, on: standbyNode, using: client.system)
            if case .found = try await standby.lookup(id) { Issue.record("the standby of shard \(shard) still holds erased subscriber \(id)") }
            #expect(try await client.recentEvents(of: id).isEmpty, "the events applied to \(id) are forgotten")
        }
        for id in controls {
            guard case .found = try await client.score(id) else { Issue.record("control subscriber \(id) is gone"); continue }
            #expect(try await client.recentEvents(of: id).count == 3)
        }
        // The audit log records that it happened: who, the ids, the outcome.
        let audit = try db.query("SELECT actor, target, outcome FROM churngrid_audit_log WHERE action = 'erase' ORDER BY id").rows
        #expect(audit.count == 1 && audit[0][2] == "erased" && audit[0][1] == "subscribers " + (victims + [999]).map(String.init).joined(separator: ","), "\(audit)")

        // Snapshots are written again (the copies took the table's new generation) and leave them out.
        let again = try await client.coordinator.snapshotProfiles()
        #expect(again.written == shards && again.subscribers == EventTests.subscribers - 3, "\(again)")
        // A later job scores everyone else, and never them.
        let job3 = try await client.coordinator.startRescore()
        let done = try await RescoringTests.waitForJob(client, job3)
        #expect(done.state == .completed && done.subscribers == EventTests.subscribers - 3, "\(done)")
        #expect(try Self.rows(db, victims)["churn_scores"] == 0)
        // An event for an erased subscriber is rejected, as for one never known.
        let late = "/tmp/churngrid-test-\(getpid())-erase-late.ndjson"
        try (SubscriberEvent(eventID: "erase-late", source: "test", subscriberID: victims[2], type: .complaint, at: now).ndjson + "\n").write(toFile: late, atomically: true, encoding: .utf8)
        let (lateStatus, lateReport) = try await EventTests.replay(late, cluster: cluster, log: "/tmp/churngrid-test-\(getpid())-erase-late.log")
        #expect((lateReport["rejected_by_reason"] as? [String: Int])?["unknown_subscriber"] == 1, "\(lateReport)")
        // Nothing accepted, everything rejected: exit 5, so a script notices.
        #expect(lateStatus == 5, "events replay exit \(lateStatus)")

        // worker-1 dies: its standbys take over, and they do not hold the victims either.
        let (_, moved) = try await StartAndReloadTests.killWorker1(cluster, client, loading: false)
        #expect(moved > 0)
        for id in victims {
            if case .found = try await client.score(id) { Issue.record("erased subscriber \(id) is back after the failover") }
        }
        for id in controls {
            guard case .found = try await client.score(id) else { Issue.record("control subscriber \(id) is gone after the failover"); continue }
        }
    }

    @Test("a worker frozen during an erasure (failed over, so not asked) comes back: its copies are dropped and loaded again, never adopted; the erased subscribers stay gone and a job scores everyone else")
    func workerAwayDuringErasure() async throws {
        let n = 8_000
        let (url, cluster, client) = try await FrozenWorkerTests.cluster("erase-frozen", subscribers: n, shards: 32, seed: 21)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let map = try await client.coordinator.shardMap()
        // Victims on worker-1's shards: its stale copies are what could bring them back.
        let onWorker1 = try db.query("SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id").rows.compactMap { $0[0].flatMap(Int64.init) }
            .filter { map.owners[ShardKey.shard(of: $0, shardCount: 32)] == "worker-1" }
        // One victim in each of worker-1's shards: some of them go back to it when it rejoins.
        var seenShards = Set<Int>()
        let victims = onWorker1.filter { seenShards.insert(ShardKey.shard(of: $0, shardCount: 32)).inserted }
        try #require(victims.count >= 5, "worker-1 owns too few shards: \(map.owners)")
        let pid = try #require(cluster.pid("worker-1"))
        kill(pid, SIGSTOP)
        _ = try await RescoringTests.eventually("worker-1 was never failed over while frozen", timeout: .seconds(60)) { () -> Bool? in
            let status = try await client.coordinator.status()
            return try await client.coordinator.nodes().map(\.name) == ["worker-2"] && status.unassignedShards == 0 && status.movingShards == 0 ? true : nil
        }
        let report: ErasureReport
        do {
            report = try await client.coordinator.erase(subscribers: BulkArray(victims))
        } catch {
            kill(pid, SIGCONT)
            throw error
        }
        kill(pid, SIGCONT)
        #expect(report.workers == 1 && report.foundInMemory == victims.count && report.rows["subscriber_profiles"] == victims.count, "\(report)")
        // worker-1 rejoins and gets shards again: loaded afresh, not from its stale copies.
        _ = try await RescoringTests.eventually("worker-1 did not rejoin and host shards", timeout: .seconds(120)) { () -> Bool? in
            let nodes = try await client.coordinator.nodes()
            let status = try await client.coordinator.status()
            return nodes.count == 2 && nodes.allSatisfy({ $0.shards > 0 && $0.readyShards == $0.shards }) && status.unassignedShards == 0 && status.movingShards == 0 ? true : nil
        }
        // What could come back is what worker-1 held: the coordinator must have dropped its copies
        // (the mechanism, whatever the placement). When a victim's shard went back to worker-1,
        // the lookups below also show the data did not come back with it.
        let after = try await client.coordinator.shardMap()
        let returned = victims.filter { after.owners[ShardKey.shard(of: $0, shardCount: 32)] == "worker-1" }
        if returned.isEmpty { print("erase-frozen: no victim's shard went back to worker-1 this time; the drop is checked in the coordinator's log") }
        let log = try String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)
        #expect(log.contains("a worker came back after an erasure it missed: its copies are dropped and loaded again"), "the coordinator did not drop worker-1's copies")
        for id in victims {
            if case .found = try await client.score(id) { Issue.record("erased subscriber \(id) is back after worker-1 rejoined") }
        }
        let job = try await client.coordinator.startRescore()
        let done = try await RescoringTests.waitForJob(client, job)
        #expect(done.state == .completed && done.subscribers == n - victims.count, "\(done)")
        let list = "{" + victims.map(String.init).joined(separator: ",") + "}"
        #expect(try db.query("SELECT count(*) FROM churn_scores WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar == "0")
    }
}
