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

/// The live campaign on a real cluster (a coordinator and two `churngrid` workers, real
/// PostgreSQL): fired triggers decided on the worker that fired them, with the batch run's rules.
@Suite("Real-time retention: triggers decided on their worker", .serialized, .timeLimit(.minutes(10)))
struct LiveCampaignTests {
    /// Every port-out inquiry fires, every time.
    static let rules = #"{"cooldown_hours": 0, "rules": [{"name": "port_out", "when": {"event": ["port_out_inquiry"]}}]}"#

    static func campaign(name: String, callCapacity: Int?, control: Double, budget: Double = 1000) -> String {
        """
        {"name": "\(name)",
         "value_tiers": [0.5],
         "offers": [
           {"id": "retention_call", "channel": "call", "cost": 0.01, "acceptance": 1, "retention_effect": 1, "eligible": {},
            "description": "a call from the loyalty team"},
           {"id": "port_sms", "channel": "sms", "cost": 0.005, "acceptance": 1, "retention_effect": 0.5, "eligible": {}}],
         "matrix": {"tier0": {"low": ["retention_call", "port_sms"], "medium": ["retention_call", "port_sms"],
                              "high": ["retention_call", "port_sms"], "very_high": ["retention_call", "port_sms"]},
                    "tier1": {"low": ["retention_call", "port_sms"], "medium": ["retention_call", "port_sms"],
                              "high": ["retention_call", "port_sms"], "very_high": ["retention_call", "port_sms"]}},
         "contact_policy": {"channels": {"call": {"max": 1, "days": 30}, "sms": {"max": 1, "days": 7}},
                            "global": {"max": 2, "days": 30}, "cooldown_after_refusal_days": 60},
         \(callCapacity.map { "\"capacity\": {\"call\": \($0)}," } ?? "")
         "budget": \(budget),
         "control_fraction": \(control)}
        """
    }

    static func cluster(name: String, standbys: Bool) async throws -> (url: String, cluster: LocalCluster, client: ClusterClient, dir: String) {
        let dir = "/tmp/churngrid-test-\(getpid())-\(name)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let rules = "\(dir)/rules.json"
        try Data(Self.rules.utf8).write(to: URL(fileURLWithPath: rules))
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 11), count: 5_000) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: RescoringTests.model, workers: 2, threads: 1,
                                                   shards: 32, coordinatorOptions: ["--triggers", rules] + (standbys ? ["--standbys"] : []),
                                                   logDirectory: dir, logger: RescoringTests.logger)
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        return (url, cluster, client, dir)
    }

    /// One port-out inquiry per subscriber, now; every one must be accepted.
    /// A fresh cluster with a live campaign whose decisions are all held (the `campaign_live` row
    /// they read is locked by `holder`), and `victims` subscribers of worker-1's shards whose
    /// port-out inquiries fired triggers there (counted by worker-1, their rows written), none decided.
    struct HeldDecisions {
        let url: String
        let cluster: LocalCluster
        let client: ClusterClient
        let db: PostgresConnection
        let run: Int64
        let routing: Routing
        let shardCount: Int
        let victims: [Int64]
        /// The victims as a PostgreSQL array literal.
        let list: String
        let holder: PostgresConnection
    }

    static func heldDecisions(name: String, standbys: Bool, victims count: Int) async throws -> HeldDecisions {
        let (url, cluster, client, dir) = try await Self.cluster(name: name, standbys: standbys)
        do {
            let db = try PostgresConnection(url: url)
            let config = "\(dir)/live.json"
            try Data(Self.campaign(name: name, callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: config))
            let started = await runCommand("\(shellQuoted(try churngridExecutable())) campaign live start --config \(config) --json --coordinator \(cluster.coordinatorEndpoint)")
            try #require(started.status == 0, "\(started.output)")
            let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)
            let routing = try await client.coordinator.routing()
            let shardCount = routing.map.shardCount
            let candidates = try Self.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 2000")
            let victims = Array(candidates.filter { routing.node(serving: ShardKey.shard(of: $0, shardCount: shardCount))?.name == "worker-1" }.prefix(count))
            try #require(victims.count == count)
            let holder = try PostgresConnection(url: url)
            try holder.execute("BEGIN")
            _ = try holder.query("SELECT 1 FROM campaign_live FOR UPDATE")
            try await Self.inquire(client, victims, tag: name)
            let list = "{\(victims.map(String.init).joined(separator: ","))}"
            // Fired by their owner, worker-1 (its own count), and on record (a standby following the
            // log fires the same triggers: whichever writes a trigger's row first is named on it).
            let owner = try WorkerActor.resolve(id: ActorID(node: try #require(routing.nodes.first { $0.name == "worker-1" }), name: WorkerActor.name), using: client.system)
            _ = try await RescoringTests.eventually("worker-1 fired the triggers", timeout: .seconds(60)) { () async throws -> Bool? in
                let fired = try await owner.eventStatus().stats.triggers
                let stored = try db.query("SELECT count(DISTINCT subscriber_id) FROM retention_triggers WHERE subscriber_id = ANY($1::bigint[])", [list]).scalar
                return fired >= count && stored == String(count) ? true : nil
            }
            return HeldDecisions(url: url, cluster: cluster, client: client, db: db, run: run, routing: routing, shardCount: shardCount,
                                 victims: victims, list: list, holder: holder)
        } catch {
            cluster.stop()
            throw error
        }
    }

    /// Waits until worker-2 serves every shard.
    static func worker2ServesAll(_ client: ClusterClient, shardCount: Int) async throws {
        _ = try await RescoringTests.eventually("worker-2 serves every shard", timeout: .seconds(120)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<shardCount).allSatisfy { r.node(serving: $0)?.name == "worker-2" } ? true : nil
        }
    }

    /// The victims' actions of `run` (subscriber, decided_by), once there is one for each.
    static func decided(_ held: HeldDecisions) async throws -> [[String?]] {
        try await RescoringTests.eventually("the victims' triggers decided", timeout: .seconds(120)) { () throws -> [[String?]]? in
            let rows = try held.db.query("SELECT subscriber_id, decided_by FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])",
                                         [String(held.run), held.list]).rows
            return rows.count == held.victims.count ? rows : nil
        }
    }

    static func inquire(_ client: ClusterClient, _ ids: [Int64], tag: String) async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let events = ids.map { SubscriberEvent(eventID: "\(tag)-\($0)", source: "test", subscriberID: $0, type: .portOutInquiry, at: now) }
        let (acks, _) = try await client.send(events: events)
        let refused = acks.filter { $0.status != .accepted }
        #expect(refused.isEmpty, "\(refused.count) of \(ids.count) events not accepted: \(refused.prefix(3))")
    }

    /// The workers' live figures summed: (decided, skipped).
    static func liveCounts(_ client: ClusterClient) async throws -> (decided: Int, skipped: Int) {
        let all = try await client.eventStatus()
        return (all.reduce(0) { $0 + $1.stats.liveDecided }, all.reduce(0) { $0 + $1.stats.liveSkipped })
    }

    static func ids(_ db: PostgresConnection, _ sql: String) throws -> [Int64] {
        try db.query(sql).rows.compactMap { $0[0].flatMap { Int64($0) } }
    }

    @Test("a trigger becomes an action on its worker: cell, reason, policy (do-not-contact, caps, a refusal imported while live), control by the documented hash, leased capacity and budget never exceeded; a second trigger changes nothing; replace and stop end a run")
    func triggersDecided() async throws {
        let (url, cluster, client, dir) = try await Self.cluster(name: "live", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let cli = "\(shellQuoted(try churngridExecutable()))"
        let target = "--coordinator \(cluster.coordinatorEndpoint)"
        let name = "live-test"
        let config = "\(dir)/live.json"
        // The budget runs out: 360 subscribers at 0.005–0.01 each would spend about 2.
        try Data(Self.campaign(name: name, callCapacity: 30, control: 0.2, budget: 1).utf8).write(to: URL(fileURLWithPath: config))

        let all = try Self.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 460")
        let banned = Array(all[0..<20]), capped = Array(all[20..<40]), refusing = Array(all[400..<410]), late = Array(all[410..<430])
        let replacing = Array(all[430..<460])
        let open = Array(all[40..<400])
        try db.execute("INSERT INTO do_not_contact (subscriber_id) SELECT unnest('{\(banned.map(String.init).joined(separator: ","))}'::bigint[])")
        // Two contacts yesterday: the global cap (2 in 30 days) is reached.
        try db.execute("""
            INSERT INTO contact_history (subscriber_id, channel, at, offer_id)
            SELECT id, c, now() - interval '1 day', 'earlier' FROM unnest('{\(capped.map(String.init).joined(separator: ","))}'::bigint[]) id, unnest('{sms,call}'::text[]) c
            """)

        // A bad file is named; nothing goes live.
        let bad = "\(dir)/bad.json"
        try Data(Self.campaign(name: name, callCapacity: 30, control: 1.5).utf8).write(to: URL(fileURLWithPath: bad))
        let refused = await runCommand("\(cli) campaign live start --config \(bad) \(target)")
        #expect(refused.status != 0 && refused.output.contains("control_fraction"), "\(refused.output)")

        let started = await runCommand("\(cli) campaign live start --config \(config) --json \(target)")
        try #require(started.status == 0, "\(started.output)")
        let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)

        try await Self.inquire(client, banned + capped + open, tag: "first")
        let first = banned.count + capped.count + open.count
        let counts = try await RescoringTests.eventually("every trigger decided", timeout: .seconds(120)) { () async throws -> (Int, Int)? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= first ? (c.decided, c.skipped) : nil
        }
        let actions = try db.query("""
            SELECT subscriber_id, arm, offer_id, channel, cost, trigger_id, decided_by, script IS NOT NULL FROM campaign_actions WHERE run_id = $1
            """, [String(run)]).rows
        #expect(actions.count == counts.0, "\(actions.count) actions written, the workers decided \(counts.0)")
        let byID = Dictionary(actions.map { (Int64($0[0]!)!, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(banned.allSatisfy { byID[$0] == nil }, "a do-not-contact subscriber got an action")
        #expect(capped.allSatisfy { byID[$0] == nil }, "a subscriber at the global cap got an action")
        #expect(actions.count >= 100 && actions.count < open.count, "\(actions.count) of \(open.count) open subscribers got an action before the budget ran out")
        let control = ControlGroup(campaign: name, fraction: 0.2)
        var calls = 0, cost = 0.0, controls = 0
        for a in actions {
            let id = Int64(a[0]!)!
            #expect((a[1] == "control") == control.contains(id), "subscriber \(id): arm \(a[1]!) is not the documented hash's")
            if a[1] == "control" { controls += 1 } else {
                if a[3] == "call" { calls += 1 }
                cost += Double(a[4]!)!
            }
            #expect((a[3] == "call") == (a[7] == "t"), "a call carries a script, nothing else does")
        }
        #expect(calls > 0 && calls <= 30, "\(calls) calls made of a capacity of 30")
        // Leased in chunks (a first 0.125 to each worker), topped up as the workers spend: more than
        // the first grants is spent (a top-up reached a waiting trigger), never more than the budget.
        #expect(cost <= 1 + 1e-6 && cost > 0.3, "spent \(cost) of a budget of 1")
        #expect(controls > 0 && Double(controls) < Double(actions.count) * 0.4, "\(controls) controls of \(actions.count)")
        let orphans = try db.query("""
            SELECT count(*) FROM campaign_actions a WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM retention_triggers t WHERE t.trigger_id = a.trigger_id)
            """, [String(run)]).scalar
        #expect(orphans == "0", "every action names a fired trigger")
        let contacts = try db.query("SELECT count(*) FILTER (WHERE a.arm = 'treatment'), count(*) FILTER (WHERE a.arm = 'control') FROM contact_history h JOIN campaign_actions a ON a.run_id = h.run_id AND a.subscriber_id = h.subscriber_id WHERE h.run_id = $1", [String(run)]).rows.first
        #expect(contacts?[0] == String(actions.count - controls) && contacts?[1] == "0", "treatment contacted once each, control never: \(contacts ?? [])")
        let granted = try db.query("SELECT coalesce(sum(granted), 0), coalesce(sum(used), 0) FROM campaign_live_quotas WHERE run_id = $1 AND resource = 'call'", [String(run)]).rows.first
        #expect((Double(granted?[0] ?? "99") ?? 99) <= 30 && Double(granted?[1] ?? "-1") == Double(calls), "call leases: \(granted ?? [])")
        let budget = try db.query("SELECT coalesce(sum(granted), 0), coalesce(sum(used), 0) FROM campaign_live_quotas WHERE run_id = $1 AND resource = 'budget'", [String(run)]).rows.first
        #expect((Double(budget?[0] ?? "99") ?? 99) <= 1 + 1e-9 && abs((Double(budget?[1] ?? "-1") ?? -1) - cost) < 1e-4, "budget leases: \(budget ?? [])")

        // The same subscribers again: the triggers fire, nobody gets a second action in the run.
        try await Self.inquire(client, banned + capped + open, tag: "second")
        _ = try await RescoringTests.eventually("the second triggers decided", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= 2 * first ? true : nil
        }
        // (Subscribers the budget left out may be served now, from what the leases still had.)
        let again = try db.query("SELECT subscriber_id, trigger_id, arm, cost FROM campaign_actions WHERE run_id = $1", [String(run)]).rows
        let firstTriggers = Dictionary(uniqueKeysWithValues: actions.map { ($0[0]!, $0[5]!) })
        #expect(again.filter { firstTriggers[$0[0]!] != nil && firstTriggers[$0[0]!] != $0[1] }.isEmpty, "a subscriber's action changed with a second trigger")
        #expect(again.filter { $0[2] == "treatment" }.reduce(0.0) { $0 + Double($1[3]!)! } <= 1 + 1e-6, "the budget was exceeded")
        let treated = again.filter { $0[2] == "treatment" }.count, held = again.count - treated

        // A refusal imported while live (the contact state's generation changes): honoured at once.
        let csv = "\(dir)/outcomes.csv"
        let yesterday = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-86_400))
        try Data(("subscriber_id,churned,accepted,observed_at\n" + refusing.map { "\($0),0,0,\(yesterday)" }.joined(separator: "\n") + "\n").utf8)
            .write(to: URL(fileURLWithPath: csv))
        let imported = await runCommand("\(cli) outcomes import --input \(csv) \(target)")
        try #require(imported.status == 0, "\(imported.output)")
        try await Self.inquire(client, refusing, tag: "refusing")
        _ = try await RescoringTests.eventually("the refusing subscribers' triggers decided", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= 2 * first + refusing.count ? true : nil
        }
        let refusedActions = try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])",
                                          [String(run), "{\(refusing.map(String.init).joined(separator: ","))}"]).scalar
        #expect(refusedActions == "0", "a subscriber who refused yesterday got an action")

        let status = await runCommand("\(cli) campaign live status --json \(target)")
        let shown = try CampaignTests.json(status.output)
        #expect(shown["run_id"] as? Int64 == run && (shown["treatment"] as? Int) == treated && (shown["control"] as? Int) == held,
                "\(status.output)")

        // Replaced by another campaign (its own run, its own budget): the first run ends with its
        // summary, and triggers from now on are decided into the new run.
        let second = "\(dir)/second.json"
        try Data(Self.campaign(name: "live-test-2", callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: second))
        let replaced = await runCommand("\(cli) campaign live start --config \(second) --json \(target)")
        try #require(replaced.status == 0, "\(replaced.output)")
        let next = try #require(try CampaignTests.json(replaced.output)["run_id"] as? Int64)
        #expect(try CampaignTests.json(replaced.output)["replaced_run"] as? Int64 == run)
        let summary = try db.query("SELECT summary->>'treatment', finished_at IS NOT NULL FROM campaign_runs WHERE run_id = $1", [String(run)]).rows.first
        #expect(summary?[0] == String(treated) && summary?[1] == "t", "the first run's summary: \(summary ?? [])")
        try await Self.inquire(client, replacing, tag: "replacing")
        let moved = try await RescoringTests.eventually("the triggers after the replacement decided", timeout: .seconds(120)) { () throws -> [[String?]]? in
            let rows = try db.query("SELECT run_id FROM campaign_actions WHERE subscriber_id = ANY($1::bigint[])", ["{\(replacing.map(String.init).joined(separator: ","))}"]).rows
            return rows.count >= replacing.count / 2 ? rows : nil
        }
        #expect(moved.allSatisfy { $0[0] == String(next) }, "triggers after the replacement went to run \(next): \(moved.prefix(3))")
        _ = try await RescoringTests.eventually("every trigger after the replacement handled", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= 2 * first + refusing.count + replacing.count ? true : nil
        }

        // Stopped: triggers are no longer decided.
        let stopped = await runCommand("\(cli) campaign live stop --json \(target)")
        let stoppedRun = try CampaignTests.json(stopped.output)["run_id"] as? Int64
        #expect(stopped.status == 0 && stoppedRun == next, "\(stopped.output)")
        try await Self.inquire(client, late, tag: "late")
        _ = try await RescoringTests.eventually("the triggers after the stop handled", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= 2 * first + refusing.count + replacing.count + late.count ? true : nil
        }
        let afterStop = try db.query("SELECT count(*) FROM campaign_actions WHERE subscriber_id = ANY($1::bigint[])", ["{\(late.map(String.init).joined(separator: ","))}"]).scalar
        #expect(afterStop == "0", "a trigger after the stop was decided")
        let none = await runCommand("\(cli) campaign live status \(target)")
        #expect(none.output.contains("no campaign is live"), "\(none.output)")
    }

    @Test("the owner SIGKILLed while its decisions wait for the database: its standby, promoted, decides the triggers the dead owner fired; one action each")
    func ownerKilledBeforeRecording() async throws {
        let held = try await Self.heldDecisions(name: "live-kill", standbys: true, victims: 100)
        defer { held.cluster.stop() }
        try await Task.sleep(for: .seconds(3))  // the standby follows the log (every 2 s)
        kill(try #require(held.cluster.pid("worker-1")), SIGKILL)
        try await Self.worker2ServesAll(held.client, shardCount: held.shardCount)
        try await Task.sleep(for: .seconds(2))  // the dead worker's waiting write is cancelled by the server
        try held.holder.execute("COMMIT")
        let decided = try await Self.decided(held)
        #expect(decided.allSatisfy { $0[1] == "worker-2" }, "the dead worker's decisions landed after it died: \(decided.filter { $0[1] != "worker-2" }.prefix(3))")
    }

    @Test("a batch run while the live campaign decides: subscribers decided live while the run was deciding are left out of it, the live workers see the run's contacts at once after it, and no subscriber is ever contacted beyond the policy")
    func batchRunBesideLive() async throws {
        let (url, cluster, client, dir) = try await Self.cluster(name: "live-batch", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let cli = "\(shellQuoted(try churngridExecutable()))"
        let target = "--coordinator \(cluster.coordinatorEndpoint)"
        let live = "\(dir)/live.json", batch = "\(dir)/batch.json"
        try Data(Self.campaign(name: "live-side", callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: live))
        try Data(Self.campaign(name: "batch-side", callCapacity: nil, control: 0).utf8).write(to: URL(fileURLWithPath: batch))
        let started = await runCommand("\(cli) campaign live start --config \(live) --json \(target)")
        try #require(started.status == 0, "\(started.output)")
        let liveRun = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)
        let job = try await client.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(client, job).state == .completed)
        let all = try Self.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id")
        let during = Array(all[0..<200]), after = Array(all[200..<400])

        // The run decides, then waits to write (the published job's row is held, which its record
        // references): the live campaign decides for `during` meanwhile.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        _ = try holder.query("SELECT 1 FROM scoring_jobs WHERE id = $1 FOR UPDATE", [String(job)])
        let running = try ChildProcess(try churngridExecutable(), ["campaign", "run", "--config", batch, "--json", "--coordinator", cluster.coordinatorEndpoint],
                                       logPath: "\(dir)/batch-run.log")
        _ = try await RescoringTests.eventually("the run waits to write", timeout: .seconds(120)) { () throws -> Bool? in
            try db.query("""
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND NOT l.granted AND a.query LIKE '%INSERT INTO campaign_runs%'
                """).scalar == "1" ? true : nil
        }
        try await Self.inquire(client, during, tag: "during")
        _ = try await RescoringTests.eventually("the live decisions during the run", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= during.count ? true : nil
        }
        let liveDuring = try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1", [String(liveRun)]).scalar
        #expect(liveDuring == String(during.count), "every subscriber triggered during the run got a live action: \(liveDuring ?? "-")")
        try holder.execute("COMMIT")
        let status = try await running.wait(timeout: .seconds(120))
        try #require(status == 0, "campaign run: \(running.log)")
        let summary = try CampaignTests.json(running.log)
        let batchRun = try #require(summary["run_id"] as? Int64)

        // The run left out every subscriber decided live while it decided — it had read their
        // contacts before those were made (the fault this covers: 200 actions dropped).
        let list = "{\(during.map(String.init).joined(separator: ","))}"
        #expect(try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[])", [String(batchRun), list]).scalar == "0")
        #expect(Self.log(cluster).contains("were left out of it") && Self.log(cluster).contains("actions=\(during.count)"),
                "the coordinator says how many it left out")
        let treated = Int(try db.query("SELECT count(*) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'", [String(batchRun)]).scalar ?? "") ?? 0
        #expect(treated > 1_000 && (summary["treatment"] as? Int) == treated, "the run treated the others: \(treated), summary \(summary["treatment"] ?? "-")")

        // After the run: the live workers see its contacts at once (its generation), so a
        // subscriber it called gets no second call live — the other channel, within the global cap.
        let calledByRun = Set(try Self.ids(db, "SELECT subscriber_id FROM campaign_actions WHERE run_id = \(batchRun) AND channel = 'call' AND arm = 'treatment'"))
        let afterCalled = after.filter { calledByRun.contains($0) }
        try #require(afterCalled.count >= 100, "the run called \(afterCalled.count) of the next 200")
        let decidedBefore = try await Self.liveCounts(client)
        try await Self.inquire(client, afterCalled, tag: "after")
        _ = try await RescoringTests.eventually("the live decisions after the run", timeout: .seconds(120)) { () async throws -> Bool? in
            let c = try await Self.liveCounts(client)
            return c.decided + c.skipped >= decidedBefore.decided + decidedBefore.skipped + afterCalled.count ? true : nil
        }
        let afterList = "{\(afterCalled.map(String.init).joined(separator: ","))}"
        let liveAfter = try db.query("SELECT channel, count(*) FROM campaign_actions WHERE run_id = $1 AND subscriber_id = ANY($2::bigint[]) GROUP BY 1",
                                     [String(liveRun), afterList]).rows
        #expect(liveAfter.allSatisfy { $0[0] == "sms" } && liveAfter.contains { $0[0] == "sms" && Int($0[1] ?? "") == afterCalled.count },
                "called by the run, offered the SMS live: \(liveAfter)")

        // Nobody, across both runs, beyond the policy (call 1 in 30 days, SMS 1 in 7, 2 in all in 30).
        let over = try db.query("""
            SELECT subscriber_id, count(*) FILTER (WHERE channel = 'call'), count(*) FILTER (WHERE channel = 'sms'), count(*)
            FROM contact_history GROUP BY subscriber_id
            HAVING count(*) FILTER (WHERE channel = 'call') > 1 OR count(*) FILTER (WHERE channel = 'sms') > 1 OR count(*) > 2
            """).rows
        #expect(over.isEmpty, "contacted beyond the policy: \(over.prefix(5))")
    }

    @Test("a worker SIGKILLed while it holds a lease of the live budget: the coordinator takes back what it did not spend, and the survivor spends the whole budget, never more")
    func leaseTakenBack() async throws {
        let (url, cluster, client, dir) = try await Self.cluster(name: "live-lease", standbys: false)
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let config = "\(dir)/live.json"
        try Data(Self.campaign(name: "live-lease", callCapacity: nil, control: 0, budget: 1).utf8).write(to: URL(fileURLWithPath: config))
        let started = await runCommand("\(shellQuoted(try churngridExecutable())) campaign live start --config \(config) --json --coordinator \(cluster.coordinatorEndpoint)")
        try #require(started.status == 0, "\(started.output)")
        let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)
        // Both workers hold a first chunk of the budget (1 / (4 × 2)), unspent.
        let lease = { (node: String) throws -> (granted: Double, used: Double)? in
            guard let r = try db.query("SELECT granted, used FROM campaign_live_quotas WHERE run_id = $1 AND node = $2 AND resource = 'budget'",
                                       [String(run), node]).rows.first, let g = r[0].flatMap(Double.init), let u = r[1].flatMap(Double.init) else { return nil }
            return (g, u)
        }
        let held = try await RescoringTests.eventually("both workers hold a lease", timeout: .seconds(60)) { () throws -> Double? in
            guard let l = try lease("worker-2"), l.granted > 0, try lease("worker-1") != nil else { return nil }
            return l.granted
        }
        #expect(abs(held - 0.125) < 1e-9, "worker-2's first chunk: \(held)")

        // worker-2 dies with its lease unspent: taken back once it is no longer a member.
        kill(try #require(cluster.pid("worker-2")), SIGKILL)
        let back = try await RescoringTests.eventually("worker-2's lease taken back", timeout: .seconds(120)) { () throws -> (granted: Double, used: Double)? in
            guard let l = try lease("worker-2"), l.granted <= l.used + 1e-9 else { return nil }
            return l
        }
        #expect(back.used == 0, "worker-2 spent nothing: \(back)")
        _ = try await RescoringTests.eventually("worker-1 serves every shard", timeout: .seconds(120)) { () async throws -> Bool? in
            let r = try await client.coordinator.routing()
            return (0..<r.map.shardCount).allSatisfy { r.node(serving: $0)?.name == "worker-1" } ? true : nil
        }
        // Far more triggers than the budget pays for, all on worker-1: it spends what worker-2 gave
        // back too (without it, at most 1 − 0.125).
        let ids = try Self.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 400")
        try await Self.inquire(client, ids, tag: "lease")
        let spent = try await RescoringTests.eventually("the budget spent", timeout: .seconds(120)) { () throws -> Double? in
            let s = try db.query("SELECT coalesce(sum(cost), 0) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'", [String(run)]).scalar.flatMap(Double.init) ?? 0
            return s > 1 - 0.125 + 0.02 ? s : nil
        }
        try await Task.sleep(for: .seconds(2))  // decisions still in flight land (or find no room)
        let total = try db.query("SELECT coalesce(sum(cost), 0) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'", [String(run)]).scalar.flatMap(Double.init) ?? 0
        #expect(spent > 0.895 && total <= 1 + 1e-6, "spent \(total) of a budget of 1 (worker-2 gave back 0.125)")
        let granted = try db.query("SELECT sum(granted) FROM campaign_live_quotas WHERE run_id = $1 AND resource = 'budget'", [String(run)]).scalar.flatMap(Double.init) ?? 99
        #expect(granted <= 1 + 1e-9, "granted \(granted) of a budget of 1")
    }

    static func log(_ cluster: LocalCluster) -> String {
        (try? String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8)) ?? ""
    }
}
