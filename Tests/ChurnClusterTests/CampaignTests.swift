import ChurnCluster
import Foundation
import Postgres
import Retention
import Testing
import TestSupport

/// Campaign runs on a real cluster (a coordinator and two `churngrid` workers) over a real
/// PostgreSQL, driven with the commands an operator types.
@Suite("Retention campaigns on a local cluster", .serialized, .timeLimit(.minutes(10)))
struct CampaignTests {
    static let campaignJSON = """
        {"name": "test-retention",
         "value_tiers": [0.5],
         "offers": [
           {"id": "loyalty_call", "channel": "call", "cost": 0.5, "acceptance": 0.35, "retention_effect": 0.5,
            "reasons": ["complaints_90d", "support_calls_30d", "dropped_call_rate", "port_out_inquiries_90d", "other_tariff_views_30d"], "eligible": {}},
           {"id": "boost", "channel": "push", "cost": 0.05, "acceptance": 0.2, "retention_effect": 0.2, "eligible": {}},
           {"id": "discount", "channel": "sms", "cost": 0.3, "acceptance": 0.15, "retention_effect": 0.3, "eligible": {"is_prepaid": [0]}}],
         "matrix": {"tier1": {"very_high": ["loyalty_call", "boost", "discount"], "high": ["loyalty_call", "boost", "discount"], "medium": ["boost", "discount"]},
                    "tier0": {"very_high": ["boost"], "high": ["boost"]}},
         "contact_policy": {"channels": {"call": {"max": 1, "days": 30}, "push": {"max": 1, "days": 7}, "sms": {"max": 1, "days": 7}},
                            "global": {"max": 2, "days": 30}, "cooldown_after_refusal_days": 60},
         "capacity": {"call": 60, "push": 400},
         "budget": 90,
         "control_fraction": 0.2}
        """

    static func json(_ output: String) throws -> [String: Any] {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ClusterError("no JSON in: \(output)")
        }
        return object
    }

    @Test("CLV as the formula; a run fills capacity and budget, holds out its control by the documented hash, never contacts do-not-contact; a second run keeps the caps; export; outcomes all or nothing; the report's uplift as computed directly")
    func campaignEndToEnd() async throws {
        let (url, cluster, client) = try await RescoringTests.cluster(subscribers: 20_000, shards: 64, name: "campaign")
        defer { cluster.stop() }
        let db = try PostgresConnection(url: url)
        let cli = "\(shellQuoted(try churngridExecutable()))"
        let target = "--coordinator \(cluster.coordinatorEndpoint)"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cg-campaign-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("campaign.json").path
        try Data(Self.campaignJSON.utf8).write(to: URL(fileURLWithPath: config))

        // Before any job: a clear refusal.
        let early = await runCommand("\(cli) campaign run --config \(config) --json \(target)")
        #expect(early.status != 0 && early.output.contains("no job has been published"), "\(early.output)")

        let job = try await RescoringTests.waitForJob(client, try await client.coordinator.startRescore())
        try #require(job.state == .completed)

        // CLV of sampled rows equals the formula with the default settings (0.35, 0.01, 24).
        let sample = try db.query("""
            SELECT s.probability, s.clv, p.arpu_30d FROM churn_scores_current s JOIN subscriber_profiles p USING (subscriber_id)
            WHERE p.arpu_30d IS NOT NULL ORDER BY s.subscriber_id LIMIT 500
            """).rows
        #expect(sample.count == 500)
        for r in sample {
            let p = Double(r[0]!)!, clv = Double(r[1]!)!, arpu = Double(r[2]!)!
            let m = arpu * 0.35
            let direct = (1...24).reduce(0.0) { $0 + m * pow(1 - p, Double($1)) / pow(1.01, Double($1)) }
            #expect(abs(clv - direct) <= 1e-4 * max(1, direct), "p \(p) arpu \(arpu): clv \(clv), formula \(direct)")
        }

        // The 20 riskiest subscribers may not be contacted.
        let banned = try db.query("SELECT subscriber_id FROM churn_scores_current ORDER BY probability DESC LIMIT 20").rows.map { $0[0]! }
        try db.execute("INSERT INTO do_not_contact (subscriber_id) SELECT unnest('{\(banned.joined(separator: ","))}'::bigint[])")

        // Bad files are named before anything is decided.
        let bad = dir.appendingPathComponent("bad.json").path
        try Data(Self.campaignJSON.replacingOccurrences(of: "\"cost\": 0.5", with: "\"cost\": -5").utf8).write(to: URL(fileURLWithPath: bad))
        let refused = await runCommand("\(cli) campaign run --config \(bad) \(target)")
        #expect(refused.status != 0 && refused.output.contains("offers[0].cost"), "\(refused.output)")

        // While it decides, any reader may ask where it is (`campaign run` prints it every 5 s).
        // The run is held at its fill (contact_history locked: the policy's read waits), so the
        // stage is there to be read however loaded the machine is.
        let hold = try PostgresConnection(url: url)
        try hold.execute("BEGIN")
        try hold.execute("LOCK TABLE contact_history IN ACCESS EXCLUSIVE MODE")
        defer { try? hold.execute("ROLLBACK") }
        let running = Task { await runCommand("\(cli) campaign run --config \(config) --job \(job.id) --request-token test-run-1 --json \(target)") }
        let atFill = try await RescoringTests.eventually("the run's progress names its fill", timeout: .seconds(300)) {
            let line = (try? await client.coordinator.campaignRunProgress()) ?? ""
            return line.hasPrefix("contact policy, control group and fill over ") ? line : nil
        }
        try hold.execute("ROLLBACK")
        let candidates = Int(atFill.dropFirst("contact policy, control group and fill over ".count).prefix { $0.isNumber }) ?? 0
        #expect(candidates > 0, "\(atFill)")
        let first = await running.value
        try #require(first.status == 0, "\(first.output)")
        #expect(try await client.coordinator.campaignRunProgress() == "", "no run deciding: an empty line")
        let run1 = try Self.json(first.output)
        let runID = try #require(run1["run_id"] as? Int)
        let treatment = try #require(run1["treatment"] as? Int), control = try #require(run1["control"] as? Int)
        #expect(treatment > 100 && control > 20, "\(run1)")
        #expect(run1["eligible"] as? Int ?? 0 >= treatment + control)

        // Asked again under the same token (a caller cut off before the answer): the run it wrote,
        // nothing decided or contacted again.
        let runsBefore = try db.query("SELECT count(*) FROM campaign_runs").scalar, contactsBefore = try db.query("SELECT count(*) FROM contact_history").scalar
        let again = await runCommand("\(cli) campaign run --config \(config) --job \(job.id) --request-token test-run-1 --json \(target)")
        try #require(again.status == 0, "\(again.output)")
        let repeated = try Self.json(again.output)
        #expect(repeated["run_id"] as? Int == runID && repeated["treatment"] as? Int == treatment && repeated["control"] as? Int == control, "\(repeated)")
        #expect(try db.query("SELECT count(*) FROM campaign_runs").scalar == runsBefore)
        #expect(try db.query("SELECT count(*) FROM contact_history").scalar == contactsBefore)
        // The same token for another campaign file: refused (a token names one intended run), nothing written.
        let other = dir.appendingPathComponent("other.json").path
        try Data(Self.campaignJSON.replacingOccurrences(of: "\"budget\": 90", with: "\"budget\": 91").utf8).write(to: URL(fileURLWithPath: other))
        let reused = await runCommand("\(cli) campaign run --config \(other) --request-token test-run-1 \(target)")
        #expect(reused.status != 0 && reused.output.contains("request token test-run-1 was used by run \(runID) for another campaign file"), "\(reused.output)")
        #expect(try db.query("SELECT count(*) FROM campaign_runs").scalar == runsBefore)
        let badToken = await runCommand("\(cli) campaign run --config \(config) --request-token 'no spaces' \(target)")
        #expect(badToken.status == 64 && badToken.output.contains("--request-token"), "\(badToken.output)")

        // What was written is what was reported, within capacity and budget.
        let perChannel = Dictionary(uniqueKeysWithValues: try db.query("""
            SELECT channel, count(*) FILTER (WHERE arm = 'treatment'), count(*) FILTER (WHERE arm = 'control') FROM campaign_actions WHERE run_id = $1 GROUP BY channel
            """, [String(runID)]).rows.map { ($0[0]!, (Int($0[1]!)!, Int($0[2]!)!)) })
        let reported = run1["per_channel"] as? [String: [String: Int]] ?? [:]
        for (channel, counts) in perChannel {
            #expect(reported[channel]?["treatment"] == counts.0 && reported[channel]?["control"] == counts.1, "\(channel)")
        }
        #expect((perChannel["call"]?.0 ?? 0) <= 60 && (perChannel["push"]?.0 ?? 0) <= 400)
        #expect((perChannel["call"]?.0 ?? 0) == 60 || (run1["budget_used"] as? Double ?? 0) > 89, "the call centre's capacity or the budget binds")
        let spent = Double(try db.query("SELECT coalesce(sum(cost), 0) FROM campaign_actions WHERE run_id = $1 AND arm = 'treatment'", [String(runID)]).scalar ?? "0") ?? 0
        #expect(spent <= 90.0001 && abs(spent - (run1["budget_used"] as? Double ?? -1)) < 1e-3)
        // The control arm: the documented hash, about 20% of those selected, never contacted.
        let holdout = ControlGroup(campaign: "test-retention", fraction: 0.2)
        let arms = try db.query("SELECT subscriber_id, arm FROM campaign_actions WHERE run_id = $1", [String(runID)]).rows
        #expect(arms.allSatisfy { holdout.contains(Int64($0[0]!)!) == ($0[1] == "control") })
        let share = Double(control) / Double(treatment + control)
        #expect(abs(share - 0.2) < 4 * (0.2 * 0.8 / Double(treatment + control)).squareRoot() + 0.01, "control share \(share)")
        #expect(try db.query("SELECT count(*) FROM contact_history WHERE run_id = $1", [String(runID)]).scalar == String(treatment))
        #expect(try db.query("""
            SELECT count(*) FROM contact_history h JOIN campaign_actions a ON a.run_id = h.run_id AND a.subscriber_id = h.subscriber_id WHERE a.arm = 'control'
            """).scalar == "0")
        // Call actions carry a script naming a reason in plain words and the offer.
        let script = try db.query("SELECT script FROM campaign_actions WHERE run_id = $1 AND channel = 'call' LIMIT 1", [String(runID)]).scalar
        #expect(script?.contains("Offer:") == true && (script?.count ?? 999) <= 500, "\(script ?? "no call action")")

        // A second run at once: the caps hold (the first run's contacts are suppressed), no one is over a cap.
        let second = await runCommand("\(cli) campaign run --config \(config) --json \(target)")
        try #require(second.status == 0, "\(second.output)")
        let run2 = try Self.json(second.output)
        #expect(run2["suppressed_by_policy"] as? Int ?? 0 > 0, "\(run2)")
        #expect(try db.query("""
            SELECT count(*) FROM (SELECT subscriber_id FROM contact_history WHERE channel = 'call' GROUP BY subscriber_id HAVING count(*) > 1) x
            """).scalar == "0")
        #expect(try db.query("SELECT count(*) FROM (SELECT subscriber_id FROM contact_history GROUP BY subscriber_id HAVING count(*) > 2) x").scalar == "0")
        #expect(try db.query("SELECT count(*) FROM contact_history WHERE subscriber_id = ANY($1::bigint[])", ["{\(banned.joined(separator: ","))}"]).scalar == "0")

        // Export for the push system: the run's treatment actions on that channel, best first.
        let csv = dir.appendingPathComponent("push.csv").path
        let exported = await runCommand("\(cli) campaign export \(runID) --channel push --out \(csv) \(target)")
        #expect(exported.status == 0, "\(exported.output)")
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "subscriber_id,offer_id,channel,send_after,priority,expected_value,reasons,script")
        #expect(lines.count - 1 == perChannel["push"]?.0 ?? 0)
        let unknownChannel = await runCommand("\(cli) campaign export \(runID) --channel fax --out \(csv) \(target)")
        #expect(unknownChannel.status != 0 && unknownChannel.output.contains("sms"))

        // Outcomes: a file naming an unknown subscriber imports nothing; then a real one.
        let actions = try db.query("SELECT subscriber_id, arm FROM campaign_actions WHERE run_id = $1 ORDER BY subscriber_id", [String(runID)]).rows
        let now = ISO8601DateFormatter().string(from: Date().addingTimeInterval(5))
        var outcomes = "subscriber_id,churned,accepted,observed_at\n"
        for (i, r) in actions.enumerated() {
            // A deterministic world where the offer works: 10% of the treated churn, 25% of the control.
            let churned = r[1] == "treatment" ? (i % 10 == 0) : (i % 4 == 0)
            outcomes += "\(r[0]!),\(churned ? 1 : 0),\(r[1] == "treatment" ? (i % 3 == 0 ? "1" : "0") : ""),\(now)\n"
        }
        try await Task.sleep(for: .seconds(6))  // the outcomes are observed after the run
        let broken = dir.appendingPathComponent("broken.csv").path
        try Data((outcomes + "1,1,,\(now)\n").utf8).write(to: URL(fileURLWithPath: broken))
        let unknown = await runCommand("\(cli) outcomes import --input \(broken) \(target)")
        #expect(unknown.status != 0 && unknown.output.contains("line \(actions.count + 2)") && unknown.output.contains("subscriber 1"), "\(unknown.output)")
        #expect(try db.query("SELECT count(*) FROM subscriber_outcomes").scalar == "0")
        let malformed = dir.appendingPathComponent("malformed.csv").path
        try Data("subscriber_id,churned,observed_at\n\(actions[0][0]!),2,\(now)\n".utf8).write(to: URL(fileURLWithPath: malformed))
        let twoIsNotBoolean = await runCommand("\(cli) outcomes import --input \(malformed) \(target)")
        #expect(twoIsNotBoolean.status != 0 && twoIsNotBoolean.output.contains("malformed.csv:2: column 'churned'"), "\(twoIsNotBoolean.output)")
        let good = dir.appendingPathComponent("outcomes.csv").path
        try Data(outcomes.utf8).write(to: URL(fileURLWithPath: good))
        let imported = await runCommand("\(cli) outcomes import --input \(good) \(target)")
        #expect(imported.status == 0 && imported.output.contains("\(actions.count) outcomes added"), "\(imported.output)")

        // The report equals the direct computation from the rows.
        let reportRun = await runCommand("\(cli) campaign report \(runID) --json \(target)")
        try #require(reportRun.status == 0, "\(reportRun.output)")
        let report = try Self.json(reportRun.output)
        let direct = try db.query("""
            SELECT a.arm, count(*), count(*) FILTER (WHERE o.churned) FROM campaign_actions a JOIN subscriber_outcomes o USING (subscriber_id)
            WHERE a.run_id = $1 GROUP BY a.arm ORDER BY a.arm
            """, [String(runID)]).rows
        let c = (n: Double(direct[0][1]!)!, churned: Double(direct[0][2]!)!), t = (n: Double(direct[1][1]!)!, churned: Double(direct[1][2]!)!)
        let treated = report["treatment"] as? [String: Any], held = report["control"] as? [String: Any]
        #expect(treated?["subscribers"] as? Int == Int(t.n) && treated?["churned"] as? Int == Int(t.churned))
        #expect(held?["subscribers"] as? Int == Int(c.n) && held?["churned"] as? Int == Int(c.churned))
        let uplift = (c.churned / c.n - t.churned / t.n) * 100
        #expect(abs((report["uplift_pp"] as? Double ?? .nan) - uplift) < 1e-9)
        let ci = report["uplift_ci95_pp"] as? [Double] ?? []
        #expect(ci.count == 2 && ci[0] < uplift && uplift < ci[1] && ci[0] > 0, "the offer works in this world: \(ci)")
        await client.close()
    }
}
