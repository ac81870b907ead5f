@testable import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Synchronization
import Testing
import TestSupport

/// A cluster on the operator's own feature schema: the public IBM Telco churn columns, the
/// built-in catalogue dropped. `telco_models.py` makes the base (synthetic values with the
/// dataset's columns and values), its schema, and an XGBoost and a LightGBM model trained on it,
/// with each library's probability of every subscriber.
@Suite("A cluster on the operator's own feature schema", .serialized)
struct SchemaClusterTests {
    static let script = TestDatabase.packageRoot.appendingPathComponent("Tests/ChurnClusterTests/telco_models.py").path
    static let rows = 3000

    /// customerID → (XGBoost's probability, LightGBM's).
    static func expected(_ path: String) throws -> [Int64: (xgboost: Float, lightgbm: Double)] {
        var out: [Int64: (Float, Double)] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst() {
            let cells = line.split(separator: ",")
            guard cells.count == 3, let id = Int64(cells[0]), let x = Double(cells[1]), let l = Double(cells[2]) else { continue }
            out[id] = (Float(x), l)
        }
        return out
    }

    @Test("on the Telco columns (catalogue dropped), an XGBoost model scores every subscriber with XGBoost's own probability, by a job and live; a LightGBM model reading 4 more columns is deployed (the workers load them first) and scores with LightGBM's; a model reading a feature the schema lacks is refused with the schema's closest names")
    func telco() async throws {
        let url = try await TestDatabase.fresh()
        let dir = "/tmp/churngrid-test-\(getpid())-telco"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        // One thread, waiting passively: OpenMP threads spinning at barriers on a machine loaded with
        // every other test slow training down many times over.
        let made = await runCommand("OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \(python) \(shellQuoted(Self.script)) \(dir) \(Self.rows) 11")
        try #require(made.status == 0, "telco_models.py: \(made.output)")
        let churngrid = shellQuoted(try churngridExecutable())
        let schema = "\(dir)/telco_schema.json"

        // The database takes the Telco schema in place of the catalogue, and the export as it is.
        let migrated = await runCommand("\(churngrid) profiles migrate --schema \(schema) --allow-drop --postgres \(url)")
        try #require(migrated.status == 0, "\(migrated.output)")
        let imported = await runCommand("\(churngrid) profiles import --schema \(schema) --input \(dir)/telco.csv --postgres \(url)")
        try #require(imported.status == 0, "\(imported.output)")
        let db = try PostgresConnection(url: url)
        #expect(try db.query("SELECT count(*) FROM subscriber_profiles").scalar == String(Self.rows))
        #expect(try db.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 'subscriber_profiles' AND column_name = 'arpu_30d'").scalar == "0",
                "the catalogue's columns are dropped")
        let expected = try Self.expected("\(dir)/telco_expected.csv")
        try #require(expected.count == Self.rows)

        // A trigger rule on two of the schema's own features, one of which no model reads yet.
        let rulesFile = "\(dir)/telco_triggers.json"
        try """
            {"cooldown_hours": 1, "rules": [{"name": "month_to_month_paperless_complaint", "when": {"event": ["complaint"], "features": [
              {"feature": "contract", "op": "==", "value": 0}, {"feature": "paperless_billing", "op": "==", "value": 1}]}}]}
            """.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        // Rules naming a feature the schema lacks: the coordinator refuses to lead, naming it and the closest.
        let badRules = "\(dir)/bad_triggers.json"
        try """
            {"rules": [{"name": "r", "when": {"event": ["complaint"], "features": [{"feature": "contrakt", "op": "==", "value": 0}]}}]}
            """.write(toFile: badRules, atomically: true, encoding: .utf8)
        let refusedRules = await runCommand("\(churngrid) coordinator --listen tcp://127.0.0.1:0 --postgres \(url) --model \(dir)/telco_xgboost.json --triggers \(badRules) 2>&1",
                                            timeout: .seconds(120))
        #expect(refusedRules.status != 0 && refusedRules.output.contains("--triggers:") && refusedRules.output.contains("contrakt")
                && refusedRules.output.contains("contract"), "\(refusedRules.output)")
        // The built-in default model reads catalogue features this schema dropped: with no model
        // served yet, the coordinator does not start on it, and says why.
        let unfit = await runCommand("\(churngrid) coordinator --listen tcp://127.0.0.1:0 --postgres \(url) --model \(shellQuoted(RescoringTests.model)) --triggers none 2>&1",
                                     timeout: .seconds(120))
        #expect(unfit.status != 0 && unfit.output.contains("is a built-in catalogue feature that the feature schema in force"), "\(unfit.output)")
        let logs = "/tmp/churngrid-test-\(getpid())-telco-logs"
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: "\(dir)/telco_xgboost.json", workers: 2,
                                                   threads: 1, shards: 16, coordinatorOptions: ["--triggers", rulesFile],
                                                   logDirectory: logs, logger: RescoringTests.logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await client.close() } }
        let at = "--coordinator \(cluster.coordinatorEndpoint)"

        /// A job's probabilities against the library's: how many differ.
        func scoredByJob(_ library: String, _ want: (Int64) -> Float?) async throws -> (job: JobStatus, differing: Int, worst: Double) {
            let id = try await client.coordinator.startRescore()
            let job = try await RescoringTests.waitForJob(client, id)
            var differing = 0, worst = 0.0, seen = 0
            for r in try db.query("SELECT subscriber_id, probability FROM churn_scores WHERE job_id = $1", [String(id)]).rows {
                guard let sid = Int64(r[0] ?? ""), let p = Float(r[1] ?? ""), let w = want(sid) else { differing += 1; continue }
                seen += 1
                if p != w { differing += 1; worst = max(worst, abs(Double(p) - Double(w))) }
            }
            #expect(seen == Self.rows, "\(library): \(seen) subscribers scored")
            return (job, differing, worst)
        }

        // XGBoost, the --model file: every stored probability is XGBoost's own (both in float32).
        let xgb = try await scoredByJob("xgboost") { expected[$0]?.xgboost }
        #expect(xgb.job.state == .completed && xgb.job.subscribers == Self.rows, "\(xgb.job.error ?? "")")
        #expect(xgb.differing == 0, "\(xgb.differing) of \(Self.rows) probabilities differ from XGBoost's (largest difference \(xgb.worst))")
        // Reasons name the schema's features.
        let telcoNames = Set(try db.query("SELECT jsonb_array_elements(document->'features')->>'name' FROM churngrid_feature_schema ORDER BY version DESC").rows.compactMap { $0[0] })
        let reasons = try db.query("SELECT DISTINCT reason1 FROM churn_scores_current WHERE reason1 IS NOT NULL").rows.compactMap { $0[0] }
        #expect(!reasons.isEmpty && reasons.allSatisfy { telcoNames.contains($0) }, "\(reasons)")
        // The schema has none of the built-in catalogue: the workers hold no column for it, only
        // the ids, their index and the model's columns (docs/models.md, "What the cluster reads"),
        // less than the catalogue's values alone would cost.
        let held = try #require(await StartAndReloadTests.status(client) { $0.workers.reduce(0) { $0 + $1.subscribers } == Self.rows })
        let perSubscriber = held.workers.reduce(0) { $0 + $1.profileBytes } / Self.rows
        #expect(perSubscriber < 4 * FeatureCatalogue.count, "\(perSubscriber) bytes per subscriber held: the catalogue's columns are held")
        // Live queries answer the same.
        for sid in expected.keys.sorted().prefix(40) {
            guard case .found(let live) = try await client.coordinator.score(sid) else { Issue.record("subscriber \(sid) not found live"); continue }
            #expect(Float(live.probability) == expected[sid]?.xgboost, "subscriber \(sid): live \(live.probability), XGBoost \(expected[sid]?.xgboost ?? -1)")
            #expect(live.reasons.allSatisfy { telcoNames.contains($0.feature) })
        }

        // Complaints from 60 subscribers: the rule fires for exactly those on a month-to-month
        // contract with paperless billing, as the export says.
        let table = try String(contentsOfFile: "\(dir)/telco.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let header = table[0].map(String.init)
        let contract = try #require(header.firstIndex(of: "Contract")), paperless = try #require(header.firstIndex(of: "PaperlessBilling"))
        var shouldFire = Set<Int64>(), lines: [String] = []
        let now = Int64(Date().timeIntervalSince1970 * 1000) - 60_000
        for (k, row) in table.dropFirst().prefix(60).enumerated() {
            guard let sid = Int64(row[0]) else { continue }
            if row[contract] == "Month-to-month" && row[paperless] == "Yes" { shouldFire.insert(sid) }
            lines.append("{\"event_id\":\"telco-\(k)\",\"subscriber_id\":\(sid),\"type\":\"complaint\",\"at\":\"\(Timestamp.format(now + Int64(k)))\"}")
        }
        try #require(!shouldFire.isEmpty && shouldFire.count < 60)
        let stream = "\(dir)/complaints.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: stream, atomically: true, encoding: .utf8)
        let replayed = try await EventTests.replay(stream, cluster: cluster, log: "\(dir)/replay.log")
        #expect(replayed.status == 0, "\(replayed.report)")
        let fired = try await RescoringTests.eventually("the triggers of the complaints were not all stored", timeout: .seconds(120)) { () -> Set<Int64>? in
            let ids = Set(try db.query("SELECT subscriber_id FROM retention_triggers WHERE rule = 'month_to_month_paperless_complaint'").rows.compactMap { Int64($0[0] ?? "") })
            return ids.count >= shouldFire.count ? ids : nil
        }
        #expect(fired == shouldFire, "fired for \(fired.subtracting(shouldFire)) and not for \(shouldFire.subtracting(fired))")

        // Bad input: a feature the schema lacks, named with the schema's closest names; nothing registered.
        let text = try String(contentsOfFile: "\(dir)/telco_xgboost.json", encoding: .utf8)
        try #require(text.contains("\"tenure\""))
        try text.replacingOccurrences(of: "\"tenure\"", with: "\"tenur\"").write(toFile: "\(dir)/misnamed.json", atomically: true, encoding: .utf8)
        let refused = await runCommand("\(churngrid) models add --name telco --file \(dir)/misnamed.json \(at)")
        #expect(refused.status != 0 && refused.output.contains("model feature 'tenur' is not a subscriber profile feature") && refused.output.contains("'tenure'"),
                "\(refused.output)")

        // LightGBM, reading gender, streaming_tv, paperless_billing and total_charges too: added and
        // deployed; the workers load those columns before they switch.
        let added = await runCommand("\(churngrid) models add --name telco --file \(dir)/telco_lightgbm.txt \(at) --json")
        try #require(added.status == 0, "\(added.output)")
        let version = (ModelRegistryTests.json(added.output) as? [String: Any])?["version"] as? String ?? ""
        // Queried throughout the deployment: no query fails, and each answer is one version's own
        // probability — XGBoost's until the switch, LightGBM's from then on, never back.
        let ids = expected.keys.sorted()
        let answered = AnswerCount()
        let querying = Task { () -> (queries: Int, failed: Int, wrong: Int, backwards: Int, lightgbm: Int) in
            var queries = 0, failed = 0, wrong = 0, backwards = 0, lightgbm = 0, switched = false
            while !Task.isCancelled {
                let sid = ids[queries % ids.count]
                queries += 1
                let answer: ScoreLookup
                do { answer = try await client.coordinator.score(sid) } catch {
                    if !Task.isCancelled { failed += 1; print("query of \(sid) failed: \(error)") }  // (the one cut off at the end is not a failure)
                    continue
                }
                guard case .found(let live) = answer, let want = expected[sid] else { failed += 1; print("query of \(sid): \(answer)"); continue }
                answered.add()
                if live.modelVersion == version {
                    switched = true
                    lightgbm += 1
                    if abs(live.probability - want.lightgbm) > 1e-12 { wrong += 1 }
                } else {
                    if switched { backwards += 1 }
                    if Float(live.probability) != want.xgboost { wrong += 1 }
                }
            }
            return (queries, failed, wrong, backwards, lightgbm)
        }
        // The deployment starts once the queries are answered (a loaded machine may start the task late).
        _ = try await RescoringTests.eventually("no query answered before the deployment", timeout: .seconds(180)) { answered.value > 0 ? true : nil }
        let deployed = await runCommand("\(churngrid) models deploy telco --version \(version) \(at)")
        try await Task.sleep(for: .milliseconds(300))
        querying.cancel()
        let during = await querying.value
        try #require(deployed.status == 0, "\(deployed.output)")
        // Queries ran across the switch (answers of both versions; how many depends on the machine's load).
        #expect(during.failed == 0 && during.wrong == 0 && during.backwards == 0 && during.lightgbm > 0 && during.queries - during.lightgbm > 0,
                "queries during the deployment: \(during)")
        let lgbm = try await scoredByJob("lightgbm") { expected[$0].map { Float($0.lightgbm) } }
        #expect(lgbm.job.state == .completed && lgbm.job.modelVersion == version, "\(lgbm.job.error ?? "") \(lgbm.job.modelVersion)")
        #expect(lgbm.differing == 0, "\(lgbm.differing) of \(Self.rows) probabilities differ from LightGBM's (largest difference \(lgbm.worst))")
        for sid in expected.keys.sorted().suffix(40) {
            guard case .found(let live) = try await client.coordinator.score(sid) else { Issue.record("subscriber \(sid) not found live"); continue }
            #expect(live.modelVersion == version)
            #expect(abs(live.probability - (expected[sid]?.lightgbm ?? -1)) < 1e-12, "subscriber \(sid): live \(live.probability), LightGBM \(expected[sid]?.lightgbm ?? -1)")
        }
        // Both workers loaded the new columns (and only those) for their shards.
        var loadedOn = 0
        for worker in 1...2 {
            let log = (try? String(contentsOfFile: "\(logs)/worker-\(worker).log", encoding: .utf8)) ?? ""
            if log.contains("extra feature columns loaded") && log.contains("total_charges") { loadedOn += 1 }
        }
        #expect(loadedOn == 2, "the workers' logs do not both show the extra columns loaded")

        // A third worker joins: the shards streamed to it (the catalogue's columns only) load their
        // extra columns before they answer, and score with LightGBM's own probabilities.
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.waitForBalance(client, workers: 3)
        // Settled with worker-3 holding its share (right after it registers, the status may list it
        // before the rebalance has planned its moves).
        let balanced = try await RescoringTests.eventually("worker-3 took no shard", timeout: .seconds(300)) { () -> ClusterStatus? in
            let s = try await RescoringTests.waitForBalance(client, workers: 3)
            return (s.workers.first { $0.name == "worker-3" }?.shards ?? 0) > 0 ? s : nil
        }
        let third = try #require(balanced.workers.first { $0.name == "worker-3" })
        #expect(third.shards > 0, "no shard moved to worker-3")
        let after = try await scoredByJob("lightgbm after a join") { expected[$0].map { Float($0.lightgbm) } }
        #expect(after.job.state == .completed && after.differing == 0, "\(after.differing) differ after worker-3 joined (\(after.job.error ?? ""))")
        let joinedLog = (try? String(contentsOfFile: "\(logs)/worker-3.log", encoding: .utf8)) ?? ""
        #expect(joinedLog.contains("extra feature columns loaded") && joinedLog.contains("total_charges"), "worker-3 did not load the extra columns")

        // A coordinator restarted with the built-in default model as --model (which this schema
        // cannot feed) still leads, and serves the model deployed last.
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator(model: RescoringTests.model)
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        let servedAfter = try await RescoringTests.eventually("no live answer after the restart", timeout: .seconds(120)) { () -> LiveScore? in
            guard case .found(let live) = try? await restarted.coordinator.score(ids[0]) else { return nil }
            return live
        }
        #expect(servedAfter.modelVersion == version && abs(servedAfter.probability - (expected[ids[0]]?.lightgbm ?? -1)) < 1e-12)
        let coordinatorLog = (try? String(contentsOfFile: "\(logs)/coordinator.log", encoding: .utf8)) ?? ""
        #expect(coordinatorLog.contains("--model does not fit the feature schema in force: not registered"))
    }
}

extension SchemaClusterTests {
    /// The running cluster's schema gains a contract type (`profiles migrate --schema`), filled
    /// for every subscriber: code `subscriber_id % 3`.
    static func addContract(url: String, dir: String) async throws {
        let schema = try FeatureSchema(id: "subscriber_id", features: FeatureSchema.catalogue.features + [
            .init(name: "contract", kind: .category(["Month-to-month", "One year", "Two year"]))])
        try schema.document().write(toFile: "\(dir)/schema.json", atomically: true, encoding: .utf8)
        let migrated = await runCommand("\(shellQuoted(try churngridExecutable())) profiles migrate --schema \(dir)/schema.json --postgres \(url)")
        try #require(migrated.status == 0, "\(migrated.output)")
        try PostgresConnection(url: url).execute("UPDATE subscriber_profiles SET contract = (subscriber_id % 3)::smallint")
    }

    @Test("a campaign run's eligibility may select on a feature the schema adds: the workers load it before deciding, and every action's offer is one its subscriber is eligible for; a misspelt one is refused with the schema's closest name")
    func campaignOnSchemaFeature() async throws {
        let (url, cluster, client) = try await RescoringTests.cluster(subscribers: 20_000, shards: 32, name: "schema-campaign")
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let cli = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        let dir = "/tmp/churngrid-test-\(getpid())-schema-campaign"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try await Self.addContract(url: url, dir: dir)
        let job = try await RescoringTests.waitForJob(client, try await client.coordinator.startRescore())
        try #require(job.state == .completed)

        let every = #"{"very_high": ["m2m_call", "annual_sms"], "high": ["m2m_call", "annual_sms"], "medium": ["m2m_call", "annual_sms"], "low": ["m2m_call", "annual_sms"]}"#
        let config = """
            {"name": "by-contract", "value_tiers": [0.3333, 0.6667],
             "offers": [
               {"id": "m2m_call", "channel": "call", "cost": 0.01, "acceptance": 0.5, "retention_effect": 0.5, "eligible": {"contract": [0]}},
               {"id": "annual_sms", "channel": "sms", "cost": 0.01, "acceptance": 0.5, "retention_effect": 0.5, "eligible": {"contract": [1, 2]}}],
             "matrix": {"high": \(every), "mid": \(every), "low": \(every)},
             "control_fraction": 0.1}
            """
        try config.write(toFile: "\(dir)/campaign.json", atomically: true, encoding: .utf8)
        let ran = await runCommand("\(cli) campaign run --config \(dir)/campaign.json --json \(at)")
        try #require(ran.status == 0, "\(ran.output)")
        let run = try CampaignTests.json(ran.output)
        let rows = try db.query("""
            SELECT a.offer_id, p.contract, count(*) FROM campaign_actions a JOIN subscriber_profiles p USING (subscriber_id)
            WHERE a.run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2
            """, ["\(run["run_id"] ?? "")"]).rows
        var byOffer: [String: [String: Int]] = [:]
        for r in rows { byOffer[r[0] ?? "", default: [:]][r[1] ?? "null"] = Int(r[2] ?? "") ?? 0 }
        #expect(Set(byOffer["m2m_call"]?.keys ?? [:].keys) == ["0"], "\(byOffer)")
        #expect(Set(byOffer["annual_sms"]?.keys ?? [:].keys).isSubset(of: ["1", "2"]) && !(byOffer["annual_sms"] ?? [:]).isEmpty, "\(byOffer)")
        let logs = (1...2).map { ((try? String(contentsOfFile: cluster.logPath("worker-\($0)"), encoding: .utf8)) ?? "").split(separator: "\n") }
        #expect(logs.allSatisfy { $0.contains { $0.contains("extra feature columns loaded") && $0.contains("features=contract ") } }, "the workers did not both load the contract column")

        // A misspelt schema feature: refused by the coordinator with the schema's closest names.
        try config.replacingOccurrences(of: "\"contract\": [1, 2]", with: "\"contrct\": [1, 2]").write(toFile: "\(dir)/bad.json", atomically: true, encoding: .utf8)
        let bad = await runCommand("\(cli) campaign run --config \(dir)/bad.json \(at)")
        #expect(bad.status != 0 && bad.output.contains("contrct") && bad.output.contains("closest: \"contract\""), "\(bad.output)")
    }

    @Test("a live campaign's eligibility may select on a feature the schema adds: every worker holds it before the campaign goes live, a worker that joins later too, and each trigger's action is an offer its subscriber is eligible for")
    func liveCampaignOnSchemaFeature() async throws {
        let (url, cluster, client, dir) = try await LiveCampaignTests.cluster(name: "schema-live", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let cli = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        try await Self.addContract(url: url, dir: dir)
        let cells = #"{"low": ["m2m_call", "annual_sms"], "medium": ["m2m_call", "annual_sms"], "high": ["m2m_call", "annual_sms"], "very_high": ["m2m_call", "annual_sms"]}"#
        let config = """
            {"name": "live-by-contract", "value_tiers": [0.5],
             "offers": [
               {"id": "m2m_call", "channel": "call", "cost": 0.01, "acceptance": 1, "retention_effect": 1, "eligible": {"contract": [0]}},
               {"id": "annual_sms", "channel": "sms", "cost": 0.01, "acceptance": 1, "retention_effect": 1, "eligible": {"contract": [1, 2]}}],
             "matrix": {"tier0": \(cells), "tier1": \(cells)},
             "budget": 1000, "control_fraction": 0.1}
            """
        try config.write(toFile: "\(dir)/live.json", atomically: true, encoding: .utf8)
        let started = await runCommand("\(cli) campaign live start --config \(dir)/live.json --json \(at)")
        try #require(started.status == 0, "\(started.output)")
        let run = try #require((try CampaignTests.json(started.output))["run_id"] as? Int64)

        let ids = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id LIMIT 150")
        try await LiveCampaignTests.inquire(client, ids, tag: "schema")
        _ = try await RescoringTests.eventually("every trigger decided", timeout: .seconds(120)) { () async throws -> Int? in
            let c = try await LiveCampaignTests.liveCounts(client)
            return c.decided + c.skipped >= ids.count ? c.decided : nil
        }
        let rows = try db.query("""
            SELECT a.offer_id, p.contract, count(*) FROM campaign_actions a JOIN subscriber_profiles p USING (subscriber_id)
            WHERE a.run_id = $1 GROUP BY 1, 2
            """, [String(run)]).rows
        var byOffer: [String: Set<String>] = [:]
        for r in rows { byOffer[r[0] ?? "", default: []].insert(r[1] ?? "null") }
        #expect(byOffer["m2m_call"] == ["0"], "\(byOffer)")
        #expect(byOffer["annual_sms"].map { !$0.isEmpty && $0.isSubset(of: ["1", "2"]) } ?? false, "\(byOffer)")

        // A worker that joins while the campaign is live holds the feature too (its assignment names it).
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.waitForBalance(client, workers: 3)
        let joined = ((try? String(contentsOfFile: cluster.logPath("worker-3"), encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(joined.contains { $0.contains("extra feature columns loaded") && $0.contains("features=contract ") }, "worker-3 does not hold the contract column")
        // And decides triggers of its own shards by it.
        let third = try await client.coordinator.routing()
        let onThird = try LiveCampaignTests.ids(db, "SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id DESC LIMIT 600").filter {
            third.node(serving: ShardKey.shard(of: $0, shardCount: 32))?.name == "worker-3"
        }
        try #require(onThird.count >= 20, "only \(onThird.count) of 600 subscribers are on worker-3")
        let before = try await LiveCampaignTests.liveCounts(client)
        try await LiveCampaignTests.inquire(client, onThird, tag: "joined")
        _ = try await RescoringTests.eventually("worker-3's triggers decided", timeout: .seconds(120)) { () async throws -> Int? in
            let c = try await LiveCampaignTests.liveCounts(client)
            return c.decided + c.skipped >= before.decided + before.skipped + onThird.count ? c.decided : nil
        }
        let late = try db.query("""
            SELECT a.offer_id, p.contract FROM campaign_actions a JOIN subscriber_profiles p USING (subscriber_id)
            WHERE a.run_id = $1 AND a.subscriber_id = ANY($2::bigint[])
            """, [String(run), "{" + onThird.map(String.init).joined(separator: ",") + "}"]).rows
        #expect(!late.isEmpty && late.allSatisfy { ($0[0] == "m2m_call") == ($0[1] == "0") }, "worker-3's actions: \(late)")
    }
}

extension SchemaClusterTests {
    @Test("trigger rules naming a feature that a migration later drops: the coordinator still restarts and leads (logging which features are held as missing), and a worker that joins loads its shards; a feature the schema never had is still refused")
    func rulesOnDroppedFeature() async throws {
        let url = try await TestDatabase.fresh()
        let dir = "/tmp/churngrid-test-\(getpid())-dropped"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 7), count: 6_000) { _ in }
        }
        try await Self.addContract(url: url, dir: dir)
        let rulesFile = "\(dir)/contract_triggers.json"
        try """
            {"cooldown_hours": 1, "rules": [{"name": "month_to_month_complaint", "when": {"event": ["complaint"], "features": [
              {"feature": "contract", "op": "==", "value": 0}]}}]}
            """.write(toFile: rulesFile, atomically: true, encoding: .utf8)
        let logs = "/tmp/churngrid-test-\(getpid())-dropped-logs"
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: RescoringTests.model, workers: 2,
                                                   threads: 1, shards: 16, coordinatorOptions: ["--triggers", rulesFile],
                                                   logDirectory: logs, logger: RescoringTests.logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await client.close() } }
        _ = try await RescoringTests.waitForBalance(client, workers: 2)

        // The operator drops the feature (no registered model reads it, so the migration allows it).
        let churngrid = shellQuoted(try churngridExecutable())
        let dropped = await runCommand("\(churngrid) profiles migrate --schema \(shellQuoted(TestDatabase.packageRoot.appendingPathComponent("Deploy/schema/default.json").path)) --allow-drop --postgres \(url)")
        #expect(dropped.status == 0 && dropped.output.contains("contract"), "\(dropped.output)")
        // A misspelt feature is still refused at start, naming the closest.
        let typo = "\(dir)/typo_triggers.json"
        try """
            {"rules": [{"name": "r", "when": {"event": ["complaint"], "features": [{"feature": "tenure_monthz", "op": "<", "value": 3}]}}]}
            """.write(toFile: typo, atomically: true, encoding: .utf8)
        let refused = await runCommand("\(churngrid) coordinator --listen tcp://127.0.0.1:0 --postgres \(url) --model \(shellQuoted(RescoringTests.model)) --triggers \(typo) 2>&1",
                                       timeout: .seconds(120))
        #expect(refused.status != 0 && refused.output.contains("tenure_monthz") && refused.output.contains("tenure_months"), "\(refused.output)")

        // The coordinator restarts with the same rules: it leads, and says which features are held as missing.
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator()
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        _ = try await RescoringTests.waitForBalance(restarted, workers: 2)
        let coordinatorLog = (try? String(contentsOfFile: "\(logs)/coordinator.log", encoding: .utf8)) ?? ""
        #expect(coordinatorLog.contains("trigger rules name features the feature schema in force no longer has") && coordinatorLog.contains("features=contract"),
                "the coordinator did not say which features its rules read that the schema dropped")
        // A worker that joins parses the rules, holds the feature as missing, and takes shards.
        try cluster.addWorker("worker-3", threads: 1)
        let balanced = try await RescoringTests.waitForBalance(restarted, workers: 3)
        #expect((balanced.workers.first { $0.name == "worker-3" }?.shards ?? 0) > 0, "no shard moved to worker-3")
        let joinedLog = (try? String(contentsOfFile: "\(logs)/worker-3.log", encoding: .utf8)) ?? ""
        #expect(joinedLog.contains("no longer in the feature schema: held as missing") && joinedLog.contains("contract"), "\(joinedLog.suffix(2000))")
    }
}

/// Answers counted across tasks (the query loop and the test that waits for its first answer).
final class AnswerCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
