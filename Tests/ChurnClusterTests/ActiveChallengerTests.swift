import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Synchronization
import Testing
import TestSupport

@Suite("A challenger per active model: live share, shadow scores in jobs, compare, promote", .serialized, .timeLimit(.minutes(10)))
struct ActiveChallengerTests {
    @Test("an active model over a segment gets a challenger under live lookups (none fails): each subscriber answered by the version its hash names, with that version's probability; a job scores the challenger in shadow over the segment only, each equal to the engine's; compared by job and live; kept by a restarted coordinator; promoted; a champion deployed back; bad input refused")
    func activeModelChallenger() async throws {
        let n = 8_000
        let (url, cluster, client) = try await RescoringTests.cluster(subscribers: n, shards: 8, name: "active-challenger")
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let churngrid = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        let name = "churn-prepaid"

        // Two versions of an active model (every probability differs between them).
        let files = [try ModelRegistryTests.variant("ac-v1"), try ModelRegistryTests.variant("ac-v2", with: "\"base_score\":\"[2.0E-1]\"")]
        var versions: [String] = []
        for file in files {
            let added = await runCommand("\(churngrid) models add --name \(name) --file \(file) \(at) --json")
            let version = (ModelRegistryTests.json(added.output) as? [String: Any])?["version"] as? String
            #expect(added.status == 0 && version != nil, "\(added.output)")
            versions.append(version ?? "")
        }
        let (v1, v2) = (versions[0], versions[1])
        let engines = try Dictionary(uniqueKeysWithValues: zip(versions, files).map { v, f in
            (v, try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: f))), source: f))
        })
        let activated = await runCommand("\(churngrid) models activate \(name) --version \(v1) --segment 'is_prepaid = 1' \(at)")
        #expect(activated.status == 0, "\(activated.output)")

        // Bad input: a clear error, nothing changes.
        let itself = await runCommand("\(churngrid) models deploy \(name) --version \(v1) --as challenger --traffic 30 \(at)")
        #expect(itself.status != 0 && itself.output.contains("is the active one"), "\(itself.output)")
        let unknown = await runCommand("\(churngrid) models deploy churn-nobody --version \(v2) --as challenger --traffic 30 \(at)")
        #expect(unknown.status != 0 && unknown.output.contains("model 'churn-nobody' is neither"), "\(unknown.output)")
        let none = await runCommand("\(churngrid) models promote \(name) \(at)")
        #expect(none.status != 0 && none.output.contains("has no challenger to promote"), "\(none.output)")
        #expect(try await client.coordinator.challengerList().isEmpty)

        // The profiles, to check each answer against the engine.
        let (stores, _) = try await onOwnThread { try ProfileLoader(url: url).load(shards: Array(0..<8), shardCount: 8) }
        let prepaidColumn = try #require(FeatureCatalogue.index(of: "is_prepaid"))
        var profiles: [Int64: [Float]] = [:]
        for store in stores.values {
            for row in 0..<store.count { profiles[store.id(at: row)] = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) } }
        }
        let inSegment = Set(profiles.filter { $0.value[prepaidColumn] == 1 }.keys)
        #expect(inSegment.count > 500 && inSegment.count < n)
        let sample = Array(inSegment.sorted().prefix(400))

        // Deployed as challenger for 30% while the active model's answers are asked for: none fails.
        let failed = Atomic<Int>(0), answered = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let load = Task {
            var k = 0
            while !stop.load(ordering: .relaxed) {
                do {
                    let answers = try await client.activeModelScores(of: sample[k % sample.count])
                    if answers.contains(where: { $0.name == name }) { answered.add(1, ordering: .relaxed) } else { failed.add(1, ordering: .relaxed) }
                } catch {
                    failed.add(1, ordering: .relaxed)
                }
                k += 1
            }
        }
        do {
            _ = try await RescoringTests.eventually("no live answer before the deployment", timeout: .seconds(180)) { answered.load(ordering: .relaxed) > 20 ? true : nil }
        } catch {
            throw ClusterError("\(error) (\(answered.load(ordering: .relaxed)) answered, \(failed.load(ordering: .relaxed)) failed)")
        }
        let before = answered.load(ordering: .relaxed)
        let deployed = await runCommand("\(churngrid) models deploy \(name) --version \(v2) --as challenger --traffic 30 \(at) --json")
        try await RescoringTests.eventually("no live answer after the deployment", timeout: .seconds(180)) { answered.load(ordering: .relaxed) > before + 20 ? true : nil }
        stop.store(true, ordering: .relaxed)
        await load.value
        #expect(deployed.status == 0 && (ModelRegistryTests.json(deployed.output) as? [String: Any])?["challengerPercent"] as? Double == 30, "\(deployed.output)")
        #expect(failed.load(ordering: .relaxed) == 0, "\(failed.load(ordering: .relaxed)) live answers failed or lacked the active model during the deployment")
        #expect(try await client.coordinator.challengerList() == [ChallengerStatus(name: name, version: v2, percent: 30)])
        let recorded = try db.query("SELECT version, challenger_version, challenger_basis_points FROM model_active WHERE name = $1", [name]).rows.first
        #expect(recorded == [v1, v2, "3000"], "\(String(describing: recorded))")
        let status = await runCommand("\(churngrid) status \(at)")
        #expect(status.output.contains("active model \(name) \(v1) beside it, for segment is_prepaid = 1 (challenger \(v2) for 30.00% of its live answers)"), "\(status.output)")
        let removed = await runCommand("\(churngrid) models remove \(name) --version \(v2) \(at)")
        #expect(removed.status != 0 && removed.output.contains("is the challenger of the active model"), "\(removed.output)")

        // Live: each subscriber answered by the version its hash names, with that version's probability.
        func checkLive(_ c: ClusterClient, challenger: String?, champion: String) async throws -> Int {
            var fromChallenger = 0
            for sid in sample {
                let answer = try #require(try await c.activeModelScores(of: sid).first { $0.name == name }, "\(sid): no answer of \(name)")
                let wanted = challenger != nil && ChallengerSplit.answersChallenger(name: name, subscriber: sid, basisPoints: 3_000) ? challenger! : champion
                #expect(answer.modelVersion == wanted, "\(sid): answered by \(answer.modelVersion), its hash names \(wanted)")
                let p = try #require(engines[answer.modelVersion]).score(profile: try #require(profiles[sid])).probability
                #expect(abs(answer.probability - p) < 1e-9, "\(sid): \(answer.probability), the engine's \(p)")
                if answer.modelVersion == challenger { fromChallenger += 1 }
            }
            return fromChallenger
        }
        let share = try await checkLive(client, challenger: v2, champion: v1)
        #expect(share > sample.count / 5 && share < sample.count * 2 / 5, "the challenger answered \(share) of \(sample.count)")

        // A worker that joins now gets its shards with the active model's challenger (it travels
        // with the assignment): the same answers, some of them from the new worker.
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.waitForBalance(client, workers: 3)
        #expect(try await checkLive(client, challenger: v2, champion: v1) == share)
        var fromNewWorker = 0
        for sid in sample {
            if case .found(let s) = try await client.score(sid), s.node == "worker-3" { fromNewWorker += 1 }
        }
        #expect(fromNewWorker > 0, "no sampled subscriber is on the worker that joined")

        // A job scores the challenger in shadow over the segment only, beside its champion.
        let id = try await client.coordinator.startRescore()
        let job = try await RescoringTests.waitForJob(client, id)
        #expect(job.state == .completed, "\(job.error ?? "")")
        let models = Dictionary(uniqueKeysWithValues: try db.query("SELECT model_name, model_version, challenger_version FROM scoring_job_models WHERE job_id = $1",
                                                                   [String(id)]).rows.map { ($0[0] ?? "", [$0[1], $0[2]]) })
        #expect(models[name] == [v1, v2] && models["churn"]?[1] == nil, "\(models)")
        var worst = 0.0, shadowed = 0
        for r in try db.query("SELECT subscriber_id, probability, model_version FROM churn_scores_challenger WHERE model_name = $1", [name]).rows {
            let sid = Int64(r[0] ?? "") ?? -1
            #expect(inSegment.contains(sid) && r[2] == v2, "\(r)")
            guard let profile = profiles[sid] else { continue }
            worst = max(worst, abs((Double(r[1] ?? "") ?? -1) - (engines[v2]?.score(profile: profile).probability ?? 2)))
            shadowed += 1
        }
        #expect(shadowed == inSegment.count && worst < 1e-6, "\(shadowed) shadow scores for \(inSegment.count) in the segment; largest difference from the engine \(worst)")
        #expect(try db.query("SELECT count(*) FROM churn_scores_challenger WHERE model_name <> $1", [name]).scalar == "0")

        // Compared: the job's champion and shadow scores, and live over the segment.
        var means: [[Double]] = []
        for how in ["--job \(id)", ""] {
            let compared = await runCommand("\(churngrid) models compare \(name) \(how) \(at) --json")
            let report = ModelRegistryTests.json(compared.output) as? [String: Any] ?? [:]
            #expect(compared.status == 0 && report["subscribers"] as? Int == inSegment.count, "\(how): \(compared.output)")
            means.append(["champion", "challenger"].map { ((report[$0] as? [String: Any])?["meanProbability"] as? Double) ?? -1 })
        }
        // Live, over the same profiles, both versions score the segment's subscribers as the job did
        // (the job stored them as 4-byte floats).
        #expect(means.count == 2 && zip(means[0], means[1]).allSatisfy { $0 >= 0 && abs($0 - $1) < 1e-5 }, "job and live means: \(means)")
        let served = await runCommand("\(churngrid) models compare churn --job \(id) \(at)")
        #expect(served.status != 0 && served.output.contains("had no challenger of model churn"), "\(served.output)")

        // A restarted coordinator keeps it, and the workers answer as before.
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator()
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        _ = try await RescoringTests.waitForBalance(restarted, workers: 3)
        #expect(try await restarted.coordinator.challengerList() == [ChallengerStatus(name: name, version: v2, percent: 30)])
        #expect(try await checkLive(restarted, challenger: v2, champion: v1) == share)

        // Promoted: the challenger's version is the active one, over the same segment; no challenger.
        let promoted = await runCommand("\(churngrid) models promote \(name) \(at)")
        #expect(promoted.status == 0 && promoted.output.contains("(was \(v1))"), "\(promoted.output)")
        #expect(try await restarted.coordinator.activeModelList() == [ActiveModelStatus(name: name, version: v2, segment: "is_prepaid = 1")])
        #expect(try await restarted.coordinator.challengerList().isEmpty)
        #expect(try db.query("SELECT challenger_version IS NULL FROM model_active WHERE name = $1", [name]).scalar == "t")
        #expect(try await checkLive(restarted, challenger: nil, champion: v2) == 0)

        // A champion deployed back to the active model (a hot swap of it, over the same segment).
        let back = await runCommand("\(churngrid) models deploy \(name) --version \(v1) \(at)")
        #expect(back.status == 0 && back.output.contains("\(v1) (was \(v2))"), "\(back.output)")
        #expect(try await restarted.coordinator.activeModelList() == [ActiveModelStatus(name: name, version: v1, segment: "is_prepaid = 1")])
        _ = try await checkLive(restarted, challenger: nil, champion: v1)
        let audit = try db.query("SELECT action || ': ' || target || ': ' || outcome FROM churngrid_audit_log WHERE action LIKE 'models %' ORDER BY id").rows.compactMap { $0[0] }
        #expect(audit.contains("models deploy: \(name) \(v2) as challenger at 30.0%: deployed")
                && audit.contains { $0.hasPrefix("models promote: \(name) \(v2): activated for segment is_prepaid = 1 (previous \(v1)); challenger \(v2) ended") },
                "\(audit)")
    }
}
