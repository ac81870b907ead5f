import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import SubscriberProfiles
import Synchronization
import Testing
import TestSupport

@Suite("Model registry and deployment on a local cluster: add, list, show, remove; a hot swap under query load", .serialized, .timeLimit(.minutes(10)))
struct ModelRegistryTests {
    /// The default model with another base score: another version whose every probability differs.
    static func variant(_ name: String, replacing: String = "\"base_score\":\"[3.2799017E-2]\"", with: String = "\"base_score\":\"[9.0E-2]\"") throws -> String {
        let text = try String(contentsOfFile: RescoringTests.model, encoding: .utf8)
        try #require(text.contains(replacing), "the default model no longer has \(replacing)")
        let path = "/tmp/churngrid-test-\(getpid())-\(name).json"
        try text.replacingOccurrences(of: replacing, with: with).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The JSON object or array on the last line of a command's output that has one.
    static func json(_ output: String) -> Any? {
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") || $0.hasPrefix("[") } ?? ""
        return try? JSONSerialization.jsonObject(with: Data(line.utf8))
    }

    @Test("models add/list/show/remove with bad input refused; models deploy under query load: no query fails, each shard's answers go from the old version to the new once, standbys too; a job after it scores with the new version; a restarted coordinator keeps serving it")
    func registryAndHotSwap() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "models", standbys: true)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let churngrid = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        let v1 = ScoringModel.version(of: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))))

        // The --model file is registered as `churn` and served.
        let listed = await runCommand("\(churngrid) models list \(at) --json")
        let first = Self.json(listed.output) as? [[String: Any]] ?? []
        #expect(listed.status == 0 && first.count == 1 && first[0]["name"] as? String == "churn" && first[0]["version"] as? String == v1
                && first[0]["served"] as? Bool == true, "\(listed.output)")

        // A second version; adding it again changes nothing.
        let variant = try Self.variant("variant")
        let v2 = ScoringModel.version(of: Array(try Data(contentsOf: URL(fileURLWithPath: variant))))
        let added = await runCommand("\(churngrid) models add --name churn --file \(variant) \(at) --json")
        let entry = Self.json(added.output) as? [String: Any] ?? [:]
        #expect(added.status == 0 && entry["version"] as? String == v2 && entry["served"] as? Bool == false && entry["format"] as? String == "xgboost", "\(added.output)")
        #expect(await runCommand("\(churngrid) models add --name churn --file \(variant) \(at)").status == 0)
        #expect(try db.query("SELECT count(*) FROM model_registry").scalar == "2")

        // Bad input: a clear error, nothing registered.
        let unknownFeature = try Self.variant("unknown-feature", replacing: "\"tenure_months\"", with: "\"tenure_monthz\"")
        let refused = await runCommand("\(churngrid) models add --name churn --file \(unknownFeature) \(at)")
        #expect(refused.status != 0 && refused.output.contains("model feature 'tenure_monthz' is not a subscriber profile feature: the feature schema in force (version 1) does not have it (closest: 'tenure_months'"),
                "\(refused.output)")
        // A feature the schema has (added by profiles migrate --schema) is one a model may read (the
        // workers load it when the model is deployed); removed again to keep this test's counts.
        let schemaFile = "/tmp/churngrid-test-\(getpid())-schema.json"
        defer { try? FileManager.default.removeItem(atPath: schemaFile) }
        let withContract = try FeatureSchema(id: "subscriber_id", features: FeatureSchema.catalogue.features + [.init(name: "contract", kind: .category(["monthly", "yearly"]))])
        try withContract.document().write(toFile: schemaFile, atomically: true, encoding: .utf8)
        let migrated = await runCommand("\(churngrid) profiles migrate --schema \(schemaFile) --postgres \(url)")
        #expect(migrated.status == 0 && migrated.output.contains("feature schema version 2"), "\(migrated.output)")
        let readsContract = try Self.variant("reads-contract", replacing: "\"tenure_months\"", with: "\"contract\"")
        let readsSchema = await runCommand("\(churngrid) models add --name churn-contract --file \(readsContract) \(at) --json")
        let contractVersion = (Self.json(readsSchema.output) as? [String: Any])?["version"] as? String ?? ""
        #expect(readsSchema.status == 0 && !contractVersion.isEmpty, "\(readsSchema.output)")
        let removedContract = await runCommand("\(churngrid) models remove churn-contract --version \(contractVersion) \(at)")
        #expect(removedContract.status == 0, "\(removedContract.output)")
        let corrupt = "/tmp/churngrid-test-\(getpid())-corrupt.json"
        try "{\"learner\": [1, 2".write(toFile: corrupt, atomically: true, encoding: .utf8)
        let broken = await runCommand("\(churngrid) models add --name churn --file \(corrupt) \(at)")
        #expect(broken.status != 0 && broken.output.contains("corrupt.json"), "\(broken.output)")
        let badName = await runCommand("\(churngrid) models add --name 'Churn!' --file \(variant) \(at)")
        #expect(badName.status != 0 && badName.output.contains("model name 'Churn!' is not valid"), "\(badName.output)")
        let noVersion = await runCommand("\(churngrid) models deploy churn --version m-0000000000 \(at)")
        #expect(noVersion.status != 0 && noVersion.output.contains("model 'churn' has no version 'm-0000000000'"), "\(noVersion.output)")
        #expect(try db.query("SELECT count(*) FROM model_registry").scalar == "2")

        // Refused while a job runs (its writes held by a lock, so it is running when asked): a job never mixes versions.
        let holder = try PostgresConnection(url: url)
        try holder.execute("BEGIN")
        try holder.execute("LOCK TABLE scoring_job_shards IN ACCESS EXCLUSIVE MODE")
        let held = try await client.coordinator.startRescore()
        let during = await runCommand("\(churngrid) models deploy churn --version \(v2) \(at)")
        try holder.execute("COMMIT")
        #expect(during.status != 0 && during.output.contains("job \(held) is running"), "\(during.output)")
        let heldJob = try await RescoringTests.waitForJob(client, held)
        #expect(heldJob.state == .completed && heldJob.modelVersion == v1, "\(heldJob)")

        // The hot swap under query load: every shard's answers, in order.
        let stop = Atomic<Bool>(false), afterDeploy = Atomic<Bool>(false)
        // Per shard, the answers to queries sent once the deployment had returned.
        let sentAfter = Mutex<[Int: [String]]>([:])
        let answers = Mutex<[Int: [String]]>([:])
        let failures = Mutex<[String]>([])
        let load = Task {
            var i: Int64 = 0
            while !stop.load(ordering: .relaxed) {
                let id = 1_000_000_000 + (i * 7919) % Int64(EventTests.subscribers)
                i += 1
                let sent = afterDeploy.load(ordering: .relaxed)
                do {
                    switch try await client.score(id) {
                    case .found(let s):
                        answers.withLock { $0[s.shard, default: []].append(s.modelVersion) }
                        if sent { sentAfter.withLock { $0[s.shard, default: []].append(s.modelVersion) } }
                    case .notFound: failures.withLock { $0.append("\(id): not found") }
                    case .unavailable(let shard, let reason): failures.withLock { $0.append("\(id): shard \(shard) unavailable: \(reason)") }
                    }
                } catch {
                    failures.withLock { $0.append("\(id): \(error)") }
                }
            }
        }
        _ = try await RescoringTests.eventually("no answers before the deployment") { answers.withLock { $0.values.map(\.count).reduce(0, +) } > 200 ? true : nil }
        let deployed = await runCommand("\(churngrid) models deploy churn --version \(v2.prefix(8)) \(at) --json")
        afterDeploy.store(true, ordering: .relaxed)
        // Every shard answers again after the deployment (so each one's last answer says which
        // version it serves now), however the load happened to spread over the shards.
        _ = try await RescoringTests.eventually("not every shard answered a query sent after the deployment") {
            sentAfter.withLock { $0.count == EventTests.shards } ? true : nil
        }
        stop.store(true, ordering: .relaxed)
        await load.value
        let report = Self.json(deployed.output) as? [String: Any] ?? [:]
        #expect(deployed.status == 0 && report["version"] as? String == v2 && report["previous"] as? String == v1 && report["workers"] as? Int == 2, "\(deployed.output)")
        #expect(failures.withLock { $0 }.isEmpty, "queries failed during the deployment: \(failures.withLock { $0.prefix(5) })")
        let perShard = answers.withLock { $0 }
        for (shard, versions) in perShard {
            // v1 … v1 v2 … v2: one switch, never back.
            let firstNew = versions.firstIndex(of: v2) ?? versions.count
            #expect(versions[..<firstNew].allSatisfy { $0 == v1 } && versions[firstNew...].allSatisfy { $0 == v2 }, "shard \(shard): \(versions)")
        }
        #expect(perShard.values.contains { $0.first == v1 }, "the load saw the old version")
        // Every query sent after the deployment returned is answered by the new version (one sent
        // before may still have been answered by the old one after that).
        #expect(sentAfter.withLock { $0.values.allSatisfy { $0.allSatisfy { $0 == v2 } } }, "\(sentAfter.withLock { $0.filter { $0.value.contains(v1) }.prefix(3) })")

        // Standbys switched too; the cluster's status names the new version.
        let map = try await client.coordinator.shardMap()
        let nodes = try await client.coordinator.routing().nodes
        #expect(try await client.coordinator.status().modelVersion == v2)
        let sample = try #require(perShard.keys.first)
        let sampleID = try #require(try db.query("SELECT subscriber_id FROM subscriber_profiles WHERE churngrid_shard(subscriber_id, $1) = $2 LIMIT 1",
                                                 [String(EventTests.shards), String(sample)]).scalar.flatMap { Int64($0) })
        let standbyNode = try #require(nodes.first { $0.name == map.standbys[sample] })
        let standbyAnswer = try await ShardActor.resolve(shard: sample, role: .standby, on: standbyNode, using: client.system).lookup(sampleID)
        guard case .found(let fromStandby) = standbyAnswer else { Issue.record("the standby does not hold \(sampleID)"); return }
        #expect(fromStandby.modelVersion == v2)

        // A job after it scores with the new version, and its scores are the live answers'.
        let job = try await client.coordinator.startRescore()
        let done = try await RescoringTests.waitForJob(client, job)
        #expect(done.state == .completed && done.modelVersion == v2, "\(done)")
        let stored = try #require(try db.query("SELECT probability, model_version FROM churn_scores_current WHERE subscriber_id = $1", [String(sampleID)]).rows.first)
        guard case .found(let live) = try await client.score(sampleID) else { Issue.record("no live answer for \(sampleID)"); return }
        #expect(stored[1] == v2 && stored[0].flatMap(Float.init) == Float(live.probability), "job \(stored) vs live \(live.probability)")

        // compare: the served v2 against v1 over the live base, with outcomes for 4,000 subscribers.
        // v2 only shifts every margin (another base score): the same ranking, so the same top decile
        // and AUC; higher probabilities.
        _ = try db.query("""
            INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned)
            SELECT subscriber_id, now(), (subscriber_id % 7 = 0) OR probability > 0.3 FROM churn_scores_current WHERE subscriber_id % 5 = 0
            """)
        let compared = await runCommand("\(churngrid) models compare churn --version \(v1) \(at) --json")
        let c = Self.json(compared.output) as? [String: Any] ?? [:]
        let served = c["champion"] as? [String: Any] ?? [:], other = c["challenger"] as? [String: Any] ?? [:]
        #expect(compared.status == 0 && c["subscribers"] as? Int == EventTests.subscribers && c["labelled"] as? Int == EventTests.subscribers / 5, "\(compared.output)")
        #expect(served["version"] as? String == v2 && other["version"] as? String == v1)
        #expect((c["topDecileAgreement"] as? Double ?? 0) >= 0.99, "\(c)")
        #expect((served["meanProbability"] as? Double ?? 0) > (other["meanProbability"] as? Double ?? 1), "\(c)")
        // The AUC against a direct computation over the job's stored scores (the served model's).
        let labelled = try db.query("SELECT s.probability, o.churned FROM churn_scores_current s JOIN subscriber_outcomes o USING (subscriber_id)").rows
        let positives = labelled.filter { $0[1] == "t" }.compactMap { $0[0].flatMap(Double.init) }, negatives = labelled.filter { $0[1] == "f" }.compactMap { $0[0].flatMap(Double.init) }
        var wins = 0.0
        let sortedNegatives = negatives.sorted()
        for p in positives {
            let below = sortedNegatives.firstIndex { $0 >= p } ?? sortedNegatives.count
            let ties = sortedNegatives[below...].prefix { $0 == p }.count
            wins += Double(below) + 0.5 * Double(ties)
        }
        let auc = wins / (Double(positives.count) * Double(negatives.count))
        let servedAUC = served["auc"] as? Double ?? 0, otherAUC = other["auc"] as? Double ?? 0
        #expect(abs(servedAUC - auc) < 2e-3 && abs(otherAUC - auc) < 2e-3, "AUC \(servedAUC) / \(otherAUC), direct \(auc)")
        #expect(abs((served["liftTopDecile"] as? Double ?? 0) - (other["liftTopDecile"] as? Double ?? -1)) < 0.05, "\(c)")
        let text = await runCommand("\(churngrid) models compare churn --version \(v1) \(at)")
        #expect(text.status == 0 && text.output.contains("in both top deciles"), "\(text.output)")
        // A version that ranks differently (two features' names swapped: it reads each from the
        // other's column): its top decile overlaps only partly, and its AUC is its own.
        let swapped = try Self.variant("swapped", replacing: "\"tenure_months\"", with: "\"__swap__\"")
        let swappedText = try String(contentsOfFile: swapped, encoding: .utf8)
            .replacingOccurrences(of: "\"complaints_90d\"", with: "\"tenure_months\"").replacingOccurrences(of: "\"__swap__\"", with: "\"complaints_90d\"")
        try swappedText.write(toFile: swapped, atomically: true, encoding: .utf8)
        let v3 = ScoringModel.version(of: Array(swappedText.utf8))
        #expect(await runCommand("\(churngrid) models add --name churn --file \(swapped) \(at)").status == 0)
        let reordered = await runCommand("\(churngrid) models compare churn --version \(v3) \(at) --json")
        let r = Self.json(reordered.output) as? [String: Any] ?? [:]
        let rServed = r["champion"] as? [String: Any] ?? [:], rOther = r["challenger"] as? [String: Any] ?? [:]
        let agreement = r["topDecileAgreement"] as? Double ?? -1
        #expect(reordered.status == 0 && agreement > 0.05 && agreement < 0.99, "\(reordered.output)")
        #expect(abs((rServed["auc"] as? Double ?? 0) - auc) < 2e-3, "the served version's AUC is the same whatever it is compared with: \(rServed)")
        #expect(abs((rOther["auc"] as? Double ?? 0) - auc) > 0.005, "the reordered version's AUC is its own: \(rOther)")
        for side in [rServed, rOther] {
            let top = side["topDecile"] as? Int ?? 0
            #expect(abs(top - EventTests.subscribers / 10) <= EventTests.subscribers / 50, "a top decile holds about a tenth: \(top)")
        }

        // show names both versions; the served one cannot be removed, the other can.
        let shown = await runCommand("\(churngrid) models show churn \(at)")
        #expect(shown.status == 0 && shown.output.contains("* churn \(v2)") && shown.output.contains("  churn \(v1)"), "\(shown.output)")
        let keep = await runCommand("\(churngrid) models remove churn --version \(v2) \(at)")
        #expect(keep.status != 0 && keep.output.contains("is the one the cluster serves"), "\(keep.output)")

        // A restarted coordinator (still started with --model = v1) keeps serving v2.
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator()
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        _ = try await RescoringTests.waitForBalance(restarted, workers: 2)
        #expect(try String(contentsOfFile: cluster.logPath("coordinator"), encoding: .utf8).contains("why=the model deployed last (model_served)"))
        #expect(try await restarted.coordinator.status().modelVersion == v2)
        guard case .found(let after) = try await restarted.score(sampleID) else { Issue.record("no answer after the restart"); return }
        #expect(after.modelVersion == v2)
        let removed = await runCommand("\(churngrid) models remove churn --version \(v1) \(at)")
        #expect(removed.status == 0 && removed.output.contains("removed model churn version \(v1)"), "\(removed.output)")
        let audit = try db.query("SELECT action FROM churngrid_audit_log WHERE action LIKE 'models %' ORDER BY id").rows.compactMap { $0[0] }
        #expect(audit.contains("models add") && audit.contains("models deploy") && audit.contains("models remove"), "\(audit)")
    }
}
