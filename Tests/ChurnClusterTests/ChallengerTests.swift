import ChurnCluster
import ClusterSystem
import Foundation
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Synchronization
import Testing
import TestSupport

@Suite("Champion and challenger on a local cluster: a deterministic share of live answers, promotion, bad input", .serialized, .timeLimit(.minutes(10)))
struct ChallengerTests {
    @Test("the challenger split: deterministic, its share within tolerance, raising the share only adds subscribers, percentages refused outside (0, 100]")
    func split() throws {
        let ids = (0..<100_000).map { 1_000_000_000 + Int64($0) }
        let at20 = ids.filter { ChallengerSplit.answersChallenger(name: "churn", subscriber: $0, basisPoints: 2_000) }
        // 20% of 100,000: sd 126, so ±1% is about 8 sd.
        #expect(abs(at20.count - 20_000) < 1_000, "\(at20.count)")
        let at30 = Set(ids.filter { ChallengerSplit.answersChallenger(name: "churn", subscriber: $0, basisPoints: 3_000) })
        #expect(at20.allSatisfy { at30.contains($0) }, "raising the share keeps everyone it had")
        // Another model's name splits otherwise (independent: about 20% of 20%).
        let other = at20.filter { ChallengerSplit.answersChallenger(name: "churn_90d", subscriber: $0, basisPoints: 2_000) }.count
        #expect(abs(other - 4_000) < 500, "\(other)")
        #expect(!ids.contains { ChallengerSplit.answersChallenger(name: "churn", subscriber: $0, basisPoints: 0) })
        #expect(ids.allSatisfy { ChallengerSplit.answersChallenger(name: "churn", subscriber: $0, basisPoints: 10_000) })
        // Pinned: the documented hash (docs/models.md gives it in Python), so an analyst can
        // reproduce the split; these are that Python's values.
        #expect(ChallengerSplit.bucket(name: "churn", subscriber: 1_000_000_000) == 4_795)
        #expect(ChallengerSplit.bucket(name: "churn", subscriber: 1_000_000_001) == 2_791)
        #expect(ChallengerSplit.bucket(name: "churn_90d", subscriber: 42) == 5_296)
        #expect(try ChallengerSplit.basisPoints(percent: 12.5) == 1_250 && (try ChallengerSplit.basisPoints(percent: 0.001)) == 1)
        for bad in [0, -1, 100.5, .nan, .infinity] {
            #expect(throws: ClusterError.self) { try ChallengerSplit.basisPoints(percent: bad) }
        }
    }

    @Test("models deploy --as challenger --traffic 20 under query load: no query fails, each subscriber answered by the version its hash names (single and coalesced queries, a worker that joins after), about 20% by the challenger; a job publishes the champion and scores the challenger in shadow, compared by models compare --job; erasure takes shadow scores too; a restarted coordinator keeps it; promote makes it the champion; bad input refused")
    func challengerOnCluster() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "challenger", standbys: true)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let churngrid = shellQuoted(try churngridExecutable())
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        let v1 = ScoringModel.version(of: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))))
        let variant = try ModelRegistryTests.variant("challenger")
        let v2Model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: variant))), source: variant)
        let v1Model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))), source: RescoringTests.model)
        let v2 = v2Model.version
        #expect(await runCommand("\(churngrid) models add --name churn --file \(variant) \(at)").status == 0)

        // Bad input: a clear error, nothing changes.
        let noTraffic = await runCommand("\(churngrid) models deploy churn --version \(v2) --as challenger \(at)")
        #expect(noTraffic.status != 0 && noTraffic.output.contains("--as challenger needs --traffic PCT"), "\(noTraffic.output)")
        let zero = await runCommand("\(churngrid) models deploy churn --version \(v2) --as challenger --traffic 0 \(at)")
        #expect(zero.status != 0 && zero.output.contains("a percentage above 0 and at most 100"), "\(zero.output)")
        let itself = await runCommand("\(churngrid) models deploy churn --version \(v1) --as challenger --traffic 10 \(at)")
        #expect(itself.status != 0 && itself.output.contains("is the champion"), "\(itself.output)")
        let nothing = await runCommand("\(churngrid) models promote churn \(at)")
        #expect(nothing.status != 0 && nothing.output.contains("has no challenger to promote"), "\(nothing.output)")
        let otherName = await runCommand("\(churngrid) models deploy churn_90d --version \(v2) --as challenger --traffic 10 \(at)")
        #expect(otherName.status != 0 && otherName.output.contains("model 'churn_90d' is neither"), "\(otherName.output)")
        #expect(try await client.coordinator.status().challenger == nil)

        // The profiles, to check each answer against the engine.
        let (stores, _) = try await onOwnThread { try ProfileLoader(url: url).load(shards: Array(0..<EventTests.shards), shardCount: EventTests.shards) }
        var profiles: [Int64: [Float]] = [:]
        for store in stores.values {
            for row in 0..<store.count { profiles[store.id(at: row)] = (0..<FeatureCatalogue.count).map { store.value(row: row, feature: $0) } }
        }
        let expected = { (id: Int64) -> String in ChallengerSplit.answersChallenger(name: "churn", subscriber: id, basisPoints: 2_000) ? v2 : v1 }

        // Deployed under query load (single queries, and 8 at a time, which the client coalesces
        // into batch calls).
        final class Record: Sendable {
            let answered = Mutex<[(Int64, String, Double)]>([])
            let failures = Mutex<[String]>([])
        }
        let stop = Atomic<Bool>(false)
        let record = Record()
        let load = Task {
            var i: Int64 = 0
            while !stop.load(ordering: .relaxed) {
                let base = i
                i += 9
                await withTaskGroup(of: Void.self) { group in
                    for k in 0..<(base % 2 == 0 ? 1 : 8) {
                        let id = 1_000_000_000 + ((base + Int64(k)) * 7919) % Int64(EventTests.subscribers)
                        group.addTask {
                            do {
                                switch try await client.score(id) {
                                case .found(let s): record.answered.withLock { $0.append((id, s.modelVersion, s.probability)) }
                                case .notFound: record.failures.withLock { $0.append("\(id): not found") }
                                case .unavailable(let shard, let reason): record.failures.withLock { $0.append("\(id): shard \(shard) unavailable: \(reason)") }
                                }
                            } catch {
                                record.failures.withLock { $0.append("\(id): \(error)") }
                            }
                        }
                    }
                }
            }
        }
        _ = try await RescoringTests.eventually("no answers before the deployment") { record.answered.withLock { $0.count } > 200 ? true : nil }
        let deployed = await runCommand("\(churngrid) models deploy churn --version \(v2.prefix(8)) --as challenger --traffic 20 \(at) --json")
        let report = ModelRegistryTests.json(deployed.output) as? [String: Any] ?? [:]
        #expect(deployed.status == 0 && report["version"] as? String == v2 && report["challengerPercent"] as? Double == 20 && report["workers"] as? Int == 2,
                "\(deployed.output)")
        let atDeploy = record.answered.withLock { $0.count }
        _ = try await RescoringTests.eventually("too few answers after the deployment") { record.answered.withLock { $0.count } > atDeploy + 3_000 ? true : nil }
        stop.store(true, ordering: .relaxed)
        await load.value
        #expect(record.failures.withLock { $0 }.isEmpty, "queries failed during the deployment: \(record.failures.withLock { $0.prefix(5) })")
        let after = record.answered.withLock { Array($0[(atDeploy + 200)...]) }  // well after the switch
        let wrong = after.filter { $0.1 != expected($0.0) }
        #expect(wrong.count == 0, "\(wrong.count) of \(after.count) answers by the other version: \(wrong.prefix(3))")
        // Each answer is its version's probability.
        let differing = after.prefix(1_000).filter { id, version, p in
            guard let profile = profiles[id] else { return true }
            return abs((version == v2 ? v2Model : v1Model).score(profile: profile).probability - p) > 1e-9
        }
        #expect(differing.count == 0, "\(differing.count) answers are not their version's probability: \(differing.prefix(3))")
        // Before the switch only the champion answered.
        #expect(record.answered.withLock { $0.prefix(200).allSatisfy { $0.1 == v1 } })

        // About 20% of all subscribers, each by its hash (single lookups over the whole base).
        var byChallenger = 0
        for id in profiles.keys.sorted() {
            guard case .found(let s) = try await client.score(id) else { Issue.record("no answer for \(id)"); continue }
            if s.modelVersion == v2 { byChallenger += 1 }
            if s.modelVersion != expected(id) { Issue.record("\(id) answered by \(s.modelVersion), its hash names \(expected(id))"); break }
        }
        let share = Double(byChallenger) / Double(profiles.count)
        #expect(abs(share - 0.2) < 0.02, "challenger share \(share)")
        let status = try await client.coordinator.status()
        #expect(status.modelVersion == v1 && status.challenger == ChallengerStatus(name: "churn", version: v2, percent: 20))
        let listed = await runCommand("\(churngrid) models list \(at)")
        #expect(listed.output.contains("~ churn \(v2)") && listed.output.contains("(challenger, 20.00% of live answers)"), "\(listed.output)")
        let removeChallenger = await runCommand("\(churngrid) models remove churn --version \(v2) \(at)")
        #expect(removeChallenger.status != 0 && removeChallenger.output.contains("is the challenger the cluster serves"), "\(removeChallenger.output)")

        // A job publishes the champion's scores and scores the challenger in shadow, each the engine's.
        let job = try await client.coordinator.startRescore()
        let done = try await RescoringTests.waitForJob(client, job)
        #expect(done.state == .completed && done.modelVersion == v1, "\(done)")
        #expect(try db.query("SELECT count(*) FROM churn_scores_current WHERE model_version <> $1", [v1]).scalar == "0")
        #expect(try db.query("SELECT challenger_version FROM scoring_jobs WHERE id = $1", [String(job)]).scalar == v2)
        let shadowCount = try db.query("SELECT count(*), count(DISTINCT subscriber_id), min(model_version), max(model_version) FROM churn_scores_challenger").rows[0]
        #expect(shadowCount == [String(EventTests.subscribers), String(EventTests.subscribers), v2, v2], "\(shadowCount)")
        var shadowWrong = 0
        for row in try db.query("SELECT subscriber_id, probability FROM churn_scores_challenger WHERE subscriber_id % 17 = 0").rows {
            guard let id = row[0].flatMap(Int64.init), let p = row[1].flatMap(Float.init), let profile = profiles[id] else { shadowWrong += 1; continue }
            if abs(Double(p) - v2Model.score(profile: profile).probability) > 1e-6 { shadowWrong += 1 }
        }
        #expect(shadowWrong == 0, "\(shadowWrong) shadow scores are not the challenger's")

        // compare --job: both sides from the job's stored scores, against outcomes for a fifth of the base.
        _ = try db.query("""
            INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned)
            SELECT subscriber_id, now(), (subscriber_id % 7 = 0) OR probability > 0.3 FROM churn_scores_current WHERE subscriber_id % 5 = 0
            """)
        let compared = await runCommand("\(churngrid) models compare churn --job \(job) \(at) --json")
        let c = ModelRegistryTests.json(compared.output) as? [String: Any] ?? [:]
        let championSide = c["champion"] as? [String: Any] ?? [:], challengerSide = c["challenger"] as? [String: Any] ?? [:]
        #expect(compared.status == 0 && c["subscribers"] as? Int == EventTests.subscribers && c["labelled"] as? Int == EventTests.subscribers / 5,
                "\(compared.output)")
        #expect(championSide["version"] as? String == v1 && challengerSide["version"] as? String == v2)
        // v2 only shifts every margin: the same ranking, so the same top decile and AUC, higher probabilities.
        #expect((c["topDecileAgreement"] as? Double ?? 0) >= 0.99, "\(c)")
        #expect((challengerSide["meanProbability"] as? Double ?? 0) > (championSide["meanProbability"] as? Double ?? 1), "\(c)")
        let labelled = try db.query("SELECT s.probability, o.churned FROM churn_scores_current s JOIN subscriber_outcomes o USING (subscriber_id)").rows
        let positives = labelled.filter { $0[1] == "t" }.compactMap { $0[0].flatMap(Double.init) }
        let negatives = labelled.filter { $0[1] == "f" }.compactMap { $0[0].flatMap(Double.init) }.sorted()
        var wins = 0.0
        for p in positives {
            let below = negatives.firstIndex { $0 >= p } ?? negatives.count
            wins += Double(below) + 0.5 * Double(negatives[below...].prefix { $0 == p }.count)
        }
        let auc = wins / (Double(positives.count) * Double(negatives.count))
        #expect(abs((championSide["auc"] as? Double ?? 0) - auc) < 2e-3 && abs((challengerSide["auc"] as? Double ?? 0) - auc) < 2e-3,
                "AUC \(championSide["auc"] ?? "-") / \(challengerSide["auc"] ?? "-"), direct \(auc)")
        let noJob = await runCommand("\(churngrid) models compare churn --job 999999 \(at)")
        #expect(noJob.status != 0 && noJob.output.contains("there is no job 999999"), "\(noJob.output)")
        let both = await runCommand("\(churngrid) models compare churn --job \(job) --version \(v2) \(at)")
        #expect(both.status != 0 && both.output.contains("either --version V"), "\(both.output)")
        let wrongName = await runCommand("\(churngrid) models compare churn_90d --job \(job) \(at)")
        #expect(wrongName.status != 0 && wrongName.output.contains("did not score model 'churn_90d'"), "\(wrongName.output)")
        // Neither flag: the champion against its challenger over the live base.
        let live = await runCommand("\(churngrid) models compare churn \(at) --json")
        let l = ModelRegistryTests.json(live.output) as? [String: Any] ?? [:]
        #expect(live.status == 0 && (l["challenger"] as? [String: Any])?["version"] as? String == v2 && (l["topDecileAgreement"] as? Double ?? 0) >= 0.99,
                "\(live.output)")

        // An erased subscriber's shadow score goes with its other rows.
        let victim = try #require(profiles.keys.min())
        let erased = await runCommand("\(churngrid) subscribers erase \(victim) \(at)")
        #expect(erased.status == 0, "\(erased.output)")
        #expect(try db.query("SELECT count(*) FROM churn_shadow_scores WHERE subscriber_id = $1", [String(victim)]).scalar == "0")
        profiles[victim] = nil

        // A worker that joins gets shards with the challenger (it travels with assignments), and a
        // restarted coordinator keeps serving it.
        try cluster.addWorker("worker-3", threads: 1)
        _ = try await RescoringTests.waitForBalance(client, workers: 3)
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        try await Task.sleep(for: .seconds(1))
        try await cluster.restartCoordinator()
        let restarted = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: RescoringTests.logger)
        defer { Task { await restarted.close() } }
        _ = try await RescoringTests.waitForBalance(restarted, workers: 3)
        #expect(try await restarted.coordinator.status().challenger == ChallengerStatus(name: "churn", version: v2, percent: 20))
        var onNewWorker = 0
        for id in profiles.keys.sorted().prefix(1_000) {
            guard case .found(let s) = try await restarted.score(id) else { Issue.record("no answer for \(id) after the restart"); continue }
            #expect(s.modelVersion == expected(id), "\(id) on \(s.node) (shard \(s.shard)): \(s.modelVersion)")
            if s.node == "worker-3" && s.modelVersion == v2 { onNewWorker += 1 }
        }
        #expect(onNewWorker > 0, "the joined worker answered some subscribers with the challenger")

        // Promoted: every answer is v2's; the challenger is gone; recorded.
        let promoted = await runCommand("\(churngrid) models promote churn \(at)")
        #expect(promoted.status == 0 && promoted.output.contains("deployed model churn \(v2) (was \(v1))"), "\(promoted.output)")
        let served = try db.query("SELECT version, challenger_version FROM model_served").rows.first
        #expect(served?[0] == v2 && served?[1] == nil, "\(String(describing: served))")
        #expect(try await restarted.coordinator.status().challenger == nil)
        for id in profiles.keys.sorted().prefix(300) {
            guard case .found(let s) = try await restarted.score(id) else { Issue.record("no answer for \(id) after the promotion"); continue }
            #expect(s.modelVersion == v2)
        }
        // A job after the promotion has no challenger: nothing in shadow, and nothing to compare.
        let plain = try await restarted.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(restarted, plain).state == .completed)
        #expect(try db.query("SELECT challenger_version IS NULL, to_regclass('churn_shadow_scores_job_' || id) IS NULL FROM scoring_jobs WHERE id = $1",
                             [String(plain)]).rows.first == ["t", "t"])
        let none = await runCommand("\(churngrid) models compare churn --job \(plain) \(at)")
        #expect(none.status != 0 && none.output.contains("had no challenger"), "\(none.output)")
        let audit = try db.query("SELECT action, target FROM churngrid_audit_log WHERE action LIKE 'models %' ORDER BY id").rows
        #expect(audit.contains { $0[0] == "models deploy" && ($0[1] ?? "").contains("as challenger at 20.0%") } && audit.contains { $0[0] == "models promote" },
                "\(audit)")
    }
}
