import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Several models: models active beside the served one, over segments, scored in one job", .serialized, .timeLimit(.minutes(10)))
struct ActiveModelsTests {
    @Test("two models active beside the served one, one over a segment: one job scores all three in one pass, each stored probability the engine's own, only the segment's subscribers for the segmented one; bad activations refused; a joining worker and a restarted coordinator keep them; deactivation")
    func severalModelsInOneJob() async throws {
        let n = 12_000
        let (url, cluster, client) = try await RescoringTests.cluster(subscribers: n, shards: 16, name: "active-models")
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let churngrid = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"

        // Two other models (the default one with other base scores: every probability differs).
        let prepaidFile = try ModelRegistryTests.variant("prepaid")
        let allFile = try ModelRegistryTests.variant("all", with: "\"base_score\":\"[2.0E-1]\"")
        var versions: [String: String] = [:]
        for (name, file) in [("churn-prepaid", prepaidFile), ("churn-90d", allFile)] {
            let added = await runCommand("\(churngrid) models add --name \(name) --file \(file) \(at) --json")
            versions[name] = (ModelRegistryTests.json(added.output) as? [String: Any])?["version"] as? String
            #expect(added.status == 0 && versions[name] != nil, "\(added.output)")
        }
        let prepaid = try #require(versions["churn-prepaid"]), all = try #require(versions["churn-90d"])

        // Bad activations: a clear error each, nothing active.
        let served = await runCommand("\(churngrid) models activate churn --version \(ScoringModel.version(of: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))))) \(at)")
        #expect(served.status != 0 && served.output.contains("is the model the cluster serves"), "\(served.output)")
        let misspelt = await runCommand("\(churngrid) models activate churn-prepaid --version \(prepaid) --segment 'is_prepiad = 1' \(at)")
        #expect(misspelt.status != 0 && misspelt.output.contains("'is_prepiad'") && misspelt.output.contains("closest: is_prepaid"), "\(misspelt.output)")
        let syntax = await runCommand("\(churngrid) models activate churn-prepaid --version \(prepaid) --segment 'is_prepaid = 1 or tenure_months < 3' \(at)")
        #expect(syntax.status != 0 && syntax.output.contains("expected 'and' or the end"), "\(syntax.output)")
        let noVersion = await runCommand("\(churngrid) models activate churn-prepaid --version m-000000000 \(at)")
        #expect(noVersion.status != 0 && noVersion.output.contains("has no version"), "\(noVersion.output)")
        #expect(try db.query("SELECT count(*) FROM model_active").scalar == "0")

        // Activated: one over the prepaid segment, one for everyone.
        let one = await runCommand("\(churngrid) models activate churn-prepaid --version \(prepaid) --segment 'is_prepaid = 1' \(at) --json")
        #expect(one.status == 0 && (ModelRegistryTests.json(one.output) as? [String: Any])?["segment"] as? String == "is_prepaid = 1", "\(one.output)")
        let two = await runCommand("\(churngrid) models activate churn-90d --version \(all) \(at)")
        #expect(two.status == 0 && two.output.contains("for every subscriber"), "\(two.output)")
        #expect(try await client.coordinator.activeModelList() == [ActiveModelStatus(name: "churn-90d", version: all, segment: ""),
                                                                      ActiveModelStatus(name: "churn-prepaid", version: prepaid, segment: "is_prepaid = 1")])
        // An active version cannot be removed; deploying the version active already changes nothing.
        let remove = await runCommand("\(churngrid) models remove churn-90d --version \(all) \(at)")
        #expect(remove.status != 0 && remove.output.contains("is active beside the served model"), "\(remove.output)")
        let deploy = await runCommand("\(churngrid) models deploy churn-90d --version \(all) \(at)")
        #expect(deploy.status == 0 && deploy.output.contains("is already served: nothing changed"), "\(deploy.output)")
        let listed = await runCommand("\(churngrid) models list \(at)")
        #expect(listed.output.contains("active beside the served model, for segment is_prepaid = 1"), "\(listed.output)")

        // One job scores all three.
        let id = try await client.coordinator.startRescore()
        let job = try await RescoringTests.waitForJob(client, id)
        #expect(job.state == .completed && job.subscribers == n, "\(job.error ?? "")")
        let (stores, _) = try ProfileLoader(url: url).load(shards: Array(0..<16), shardCount: 16)
        let prepaidColumn = try #require(FeatureCatalogue.index(of: "is_prepaid"))
        var profiles: [Int64: [Float]] = [:]
        for store in stores.values {
            for row in 0..<store.count { profiles[store.id(at: row)] = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) } }
        }
        let inSegment = Set(profiles.filter { $0.value[prepaidColumn] == 1 }.keys)
        #expect(!inSegment.isEmpty && inSegment.count < n)
        let perModel = Dictionary(uniqueKeysWithValues: try db.query("SELECT model_name, model_version, role, subscribers FROM scoring_job_models WHERE job_id = $1",
                                                                     [String(id)]).rows.map { ($0[0]!, Array($0[1...])) })
        #expect(perModel["churn"]?[1] == "served" && perModel["churn"]?[2] == String(n), "\(perModel)")
        #expect(perModel["churn-prepaid"] == [prepaid, "active", String(inSegment.count)], "\(perModel)")
        #expect(perModel["churn-90d"] == [all, "active", String(n)], "\(perModel)")
        let counts = Dictionary(uniqueKeysWithValues: try db.query("SELECT model_name, count(*), count(DISTINCT subscriber_id) FROM churn_scores_current GROUP BY 1").rows
            .map { ($0[0]!, [$0[1]!, $0[2]!]) })
        #expect(counts == ["churn": [String(n), String(n)], "churn-prepaid": [String(inSegment.count), String(inSegment.count)], "churn-90d": [String(n), String(n)]])
        #expect(try db.query("SELECT count(*) FROM churn_scores_champion").scalar == String(2 * n + inSegment.count))
        // Each model's summary of the job is its own rows' (tallied by the coordinator while it wrote
        // them): count, mean and bands exact, deciles within the fine histogram's bin of PostgreSQL's.
        let models = try db.query("SELECT model_name, summary::text FROM scoring_job_models WHERE job_id = $1", [String(id)]).rows
        #expect(models.count == 3)
        for row in models {
            let name = row[0] ?? ""
            let summary = try #require(try JSONSerialization.jsonObject(with: Data((row[1] ?? "null").utf8)) as? [String: Any], "\(name): no summary")
            let exact = try #require(try db.query("""
                SELECT count(*), avg(probability::float8), percentile_cont(ARRAY[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) WITHIN GROUP (ORDER BY probability)
                FROM churn_scores WHERE job_id = $1 AND model_name = $2
                """, [String(id), name]).rows.first)
            #expect(summary["subscribers"] as? Int == Int(exact[0] ?? ""), "\(name): \(summary)")
            let mean = (summary["mean_probability"] as? Double) ?? -1, want = Double(exact[1] ?? "") ?? -2
            #expect(abs(mean - want) < 1e-9, "\(name): mean \(mean), PostgreSQL's \(want)")
            let bands = Dictionary(uniqueKeysWithValues: try db.query("""
                SELECT churngrid_risk_band(risk_band), count(*) FROM churn_scores WHERE job_id = $1 AND model_name = $2 GROUP BY 1
                """, [String(id), name]).rows.map { ($0[0] ?? "", Int($0[1] ?? "") ?? -1) })
            let stored = (summary["per_band"] as? [String: Int] ?? [:]).filter { $0.value > 0 }
            #expect(stored == bands, "\(name): bands \(stored), PostgreSQL's \(bands)")
            let histogram = summary["histogram"] as? [Int] ?? []
            #expect(histogram.count == 20 && histogram.reduce(0, +) == Int(exact[0] ?? ""), "\(name): \(histogram)")
            let deciles = summary["deciles"] as? [Double] ?? []
            let pg = (exact[2] ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").compactMap { Double($0) }
            #expect(deciles.count == 9 && pg.count == 9 && zip(deciles, pg).allSatisfy { abs($0 - $1) <= 1.0 / 65_536 },
                    "\(name): deciles \(deciles), PostgreSQL's \(pg)")
        }
        // `models show` prints the active model's last job.
        let lastJob = await runCommand("\(churngrid) models show churn-prepaid \(at)")
        #expect(lastJob.output.contains("last job \(id) (active, segment is_prepaid = 1): \(inSegment.count) subscribers"), "\(lastJob.output)")

        // Each model's stored probability is the engine's own for that subscriber, with its reasons.
        for (name, file) in [("churn-prepaid", prepaidFile), ("churn-90d", allFile), ("churn", RescoringTests.model)] {
            let model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: file))), source: file)
            var worst = 0.0, checked = 0, reasonsDiffering = 0
            for r in try db.query("SELECT subscriber_id, probability, model_version, reason1, reason2, reason3 FROM churn_scores_current WHERE model_name = $1",
                                  [name]).rows {
                let sid = Int64(r[0]!)!
                guard let profile = profiles[sid] else { Issue.record("\(name) scored unknown subscriber \(sid)"); continue }
                let (p, _, reasons) = model.score(profile: profile)
                worst = max(worst, abs(Double(r[1]!)! - p))
                if Array(r[3...].compactMap { $0 }) != reasons.map(\.feature) { reasonsDiffering += 1 }
                #expect(r[2] == model.version)
                if name == "churn-prepaid" { #expect(inSegment.contains(sid), "\(sid) is not prepaid but was scored by churn-prepaid") }
                checked += 1
            }
            #expect(checked > 0 && worst < 1e-6, "\(name): largest difference from the engine \(worst) over \(checked)")
            #expect(reasonsDiffering == 0, "\(name): \(reasonsDiffering) subscribers' stored reasons differ from the engine's")
        }

        // Drift: each active model's reference is taken from this first job, over its segment's
        // subscribers only (every feature's bins count them all), as the served model's is.
        let driftDeadline = ContinuousClock.now + .seconds(60)
        var measured: [String: String] = [:]
        while ContinuousClock.now < driftDeadline {
            measured = Dictionary(uniqueKeysWithValues: try db.query("SELECT model_version, count(*) FROM model_drift WHERE job_id = $1 GROUP BY 1",
                                                                     [String(id)]).rows.map { ($0[0]!, $0[1]!) })
            if measured.count == 3 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(measured.keys.sorted() == [all, prepaid, job.modelVersion].sorted(), "\(measured)")
        for (version, size) in [(prepaid, inSegment.count), (all, n)] {
            let sums = try db.query("SELECT feature, (SELECT sum(c) FROM unnest(counts) AS c) FROM model_drift_reference WHERE model_version = $1", [version]).rows
            #expect(!sums.isEmpty && sums.allSatisfy { $0[1] == String(size) }, "\(version): \(sums.prefix(3)) (expected \(size) each)")
        }
        let shown = await runCommand("\(churngrid) models show churn-prepaid \(at)")
        #expect(shown.status == 0 && shown.output.contains("drift") && !shown.output.contains("no job of this version measured yet"), "\(shown.output.prefix(800))")

        // Live: `score` answers with the served model and every active model whose segment holds
        // the subscriber, each equal to the job's score (the profiles have not changed since).
        let stored = Dictionary(uniqueKeysWithValues: try db.query("SELECT subscriber_id || '/' || model_name, probability FROM churn_scores_current").rows.map { ($0[0]!, Double($0[1]!)!) })
        let prepaidOne = try #require(inSegment.min()), otherOne = try #require(Set(profiles.keys).subtracting(inSegment).min())
        for (sid, expected) in [(prepaidOne, ["churn-90d", "churn-prepaid"]), (otherOne, ["churn-90d"])] {
            let live = await runCommand("\(churngrid) score \(sid) \(at) --json")
            let answer = ModelRegistryTests.json(live.output) as? [String: Any] ?? [:]
            let others = answer["active_models"] as? [[String: Any]] ?? []
            #expect(live.status == 0 && others.compactMap { $0["name"] as? String } == expected, "\(live.output)")
            for o in others {
                let name = o["name"] as? String ?? "", p = o["probability"] as? Double ?? -1
                #expect(abs(p - (stored["\(sid)/\(name)"] ?? -2)) < 1e-6, "\(sid) \(name): live \(p), job \(stored["\(sid)/\(name)"] ?? -2)")
                #expect(o["modelVersion"] as? String == versions[name])
            }
        }
        let text = await runCommand("\(churngrid) status \(at)")
        #expect(text.output.contains("active model churn-prepaid \(prepaid) beside it, for segment is_prepaid = 1"), "\(text.output)")

        // A worker that joins gets the active models with its assignment; a restarted coordinator keeps them.
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.waitForBalance(client, workers: 3)
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator()
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        _ = try await RescoringTests.waitForBalance(restarted, workers: 3)
        #expect(try await restarted.coordinator.activeModelList().map(\.name) == ["churn-90d", "churn-prepaid"])
        let off = await runCommand("\(churngrid) models deactivate churn-90d \(at)")
        #expect(off.status == 0 && off.output.contains("no longer active"), "\(off.output)")
        // A challenger of the served model beside an active one: a job scores all three, and
        // comparing the job's champion with its challenger reads the served model's rows only.
        let challengerFile = try ModelRegistryTests.variant("challenger", with: "\"base_score\":\"[5.0E-2]\"")
        let addedChallenger = await runCommand("\(churngrid) models add --name churn --file \(challengerFile) \(at) --json")
        let challengerVersion = (ModelRegistryTests.json(addedChallenger.output) as? [String: Any])?["version"] as? String ?? ""
        let deployed = await runCommand("\(churngrid) models deploy churn --version \(challengerVersion) --as challenger --traffic 10 \(at)")
        #expect(deployed.status == 0, "\(deployed.output)")
        let second = try await restarted.coordinator.startRescore()
        let secondJob = try await RescoringTests.waitForJob(restarted, second)
        #expect(secondJob.state == .completed, "\(secondJob.error ?? "")")
        let compared = await runCommand("\(churngrid) models compare churn --job \(second) \(at) --json")
        #expect(compared.status == 0 && (ModelRegistryTests.json(compared.output) as? [String: Any])?["subscribers"] as? Int == n, "\(compared.output)")
        let after = Dictionary(uniqueKeysWithValues: try db.query("SELECT model_name, count(*) FROM churn_scores_current GROUP BY 1").rows.map { ($0[0]!, $0[1]!) })
        #expect(after == ["churn": String(n), "churn-prepaid": String(inSegment.count)], "\(after)")
        #expect(try db.query("SELECT count(*) FROM churn_scores WHERE job_id = $1 AND model_name = 'churn-prepaid' AND subscriber_id IN (SELECT subscriber_id FROM subscriber_profiles WHERE is_prepaid IS DISTINCT FROM 1)",
                             [String(second)]).scalar == "0")
        // The segment changes: the version's drift over the new population is measured against a
        // reference of its own (taken by the next job), not against the old segment's, which would
        // report the change of population as drift (is_prepaid: every subscriber 1 before, 0 now).
        let moved = await runCommand("\(churngrid) models activate churn-prepaid --version \(prepaid) --segment 'is_prepaid = 0' \(at)")
        #expect(moved.status == 0, "\(moved.output)")
        let third = try await restarted.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(restarted, third).state == .completed)
        let referenced = try await RescoringTests.eventually("job \(third)'s drift of churn-prepaid was not measured", timeout: .seconds(60)) { () -> [String]? in
            let ids = try db.query("SELECT DISTINCT reference_job_id::text FROM model_drift WHERE job_id = $1 AND model_version = $2", [String(third), prepaid]).rows
                .compactMap { $0[0] }
            return ids.isEmpty ? nil : ids
        }
        #expect(referenced == [String(third)], "job \(third) measured churn-prepaid against the reference of job(s) \(referenced)")
        let populations = try db.query("SELECT population, min(job_id), count(*) FROM model_drift_reference WHERE model_version = $1 GROUP BY 1 ORDER BY 1",
                                       [prepaid]).rows.map { $0.map { $0 ?? "" } }
        #expect(populations.map { $0[0] } == ["is_prepaid = 0", "is_prepaid = 1"] && populations.map { $0[1] } == [String(third), String(id)], "\(populations)")
        let psi = try db.query("SELECT max(psi) FROM model_drift WHERE job_id = $1 AND model_version = $2", [String(third), prepaid]).scalar
        #expect(Double(psi ?? "") == 0, "a job measured against its own reference drifts by 0, not \(psi ?? "nothing")")
        let audit = try db.query("SELECT action, outcome FROM churngrid_audit_log WHERE action LIKE 'models %activate' ORDER BY id").rows.map { "\($0[0]!): \($0[1]!)" }
        #expect(audit.contains("models activate: activated for segment is_prepaid = 1") && audit.contains("models deactivate: deactivated"), "\(audit)")
    }
}
