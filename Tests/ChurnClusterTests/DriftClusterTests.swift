import ChurnCluster
import Foundation
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Drift on a local cluster: the first job takes the reference, a shifted population is flagged", .serialized, .timeLimit(.minutes(10)))
struct DriftClusterTests {
    static func drift(_ client: ClusterClient, job: Int64) async throws -> DriftReport {
        try await RescoringTests.eventually("job \(job)'s drift was not measured", timeout: .seconds(180)) {
            try await client.coordinator.drift(job: job)
        }
    }

    @Test("job 1 takes the reference (every PSI 0); three complaints for every subscriber put complaints_90d at 'act' in job 2 and leave every other feature at exactly 0; status, the CLI and the tables show it")
    func shiftedPopulation() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "drift", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let features = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: EventTests.model))), source: EventTests.model).featureNames

        let first = try await client.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(client, first).state == .completed)
        let reference = try await Self.drift(client, job: first)
        #expect(reference.isReference && reference.referenceJob == first)
        #expect(Set(reference.features.map(\.feature)) == Set(features + [DriftReport.scoreName]))
        #expect(reference.features.allSatisfy { $0.psi == 0 && $0.level == .stable }, "\(reference.features.filter { $0.psi != 0 })")
        #expect(try db.query("SELECT count(*) FROM model_drift_reference").scalar == String(features.count + 1))

        // Three complaints for every subscriber in the last half hour: complaints_90d rises by 3.
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var lines: [String] = []
        for i in 0..<EventTests.subscribers {
            for k in 0..<3 {
                lines.append(SubscriberEvent(eventID: "drift-\(i)-\(k)", source: "test", subscriberID: 1_000_000_000 + Int64(i), type: .complaint,
                                             at: now - 1_800_000 + Int64(k) * 60_000).ndjson)
            }
        }
        let path = "/tmp/churngrid-test-\(getpid())-drift.ndjson"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        // Unsettled events (a loaded machine) are sent again, as an operator would: each is
        // accepted once over all the runs, never twice.
        let (status, report, accepted, runs) = try await EventTests.replayUntilSettled(path, cluster: cluster, log: "/tmp/churngrid-test-\(getpid())-drift-replay.log")
        try #require(status == 0, "events replay (\(runs) runs): \(report)")
        // Counted once each: an event a run had logged but not yet acknowledged when it gave up is
        // a duplicate in the next run, so the runs' `accepted` may add up to fewer than the lines.
        #expect(accepted <= lines.count, "accepted over \(runs) runs: \(accepted); the last run: \(report)")
        #expect(try db.query("SELECT count(*), count(DISTINCT (source, event_id, at)) FROM subscriber_events WHERE event_id LIKE 'drift-%'").rows.first
                == [String(lines.count), String(lines.count)], "every event logged once over \(runs) runs; the last run: \(report)")

        let second = try await client.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(client, second).state == .completed)
        // The CLI waits for the job's drift (measured just after it is published).
        let churngrid = shellQuoted(try churngridExecutable())
        let waited = await runCommand("\(churngrid) drift --coordinator \(cluster.coordinatorEndpoint) --job \(second) --wait")
        #expect(waited.status == 0 && waited.output.contains("drift of job \(second) against job \(first)"), "\(waited.output)")
        let drift = try await Self.drift(client, job: second)
        #expect(!drift.isReference && drift.referenceJob == first)
        let complaints = try #require(drift.features.first { $0.feature == "complaints_90d" })
        #expect(complaints.level == .act && complaints.psi >= 0.25, "complaints_90d: \(complaints)")
        #expect(drift.features.first?.feature == "complaints_90d" || drift.features.first?.feature == DriftReport.scoreName, "worst first: \(drift.features.prefix(3))")
        // Nothing else changed: the same bins hold the same subscribers.
        let others = drift.features.filter { $0.feature != "complaints_90d" && $0.feature != DriftReport.scoreName }
        #expect(others.count == features.count - 1 && others.allSatisfy { $0.psi == 0 }, "\(others.filter { $0.psi != 0 })")

        // status and the CLI say it; the rows are stored.
        let clusterStatus = try await client.coordinator.status()
        #expect(clusterStatus.drift?.job == second && clusterStatus.drift?.at(.act).map(\.feature).contains("complaints_90d") == true)
        let text = await runCommand("\(churngrid) status --coordinator \(cluster.coordinatorEndpoint)")
        #expect(text.status == 0 && text.output.contains("drift of job \(second) against job \(first)") && text.output.contains("act: complaints_90d"), "\(text.output)")
        let json = await runCommand("\(churngrid) drift --coordinator \(cluster.coordinatorEndpoint) --json")
        let line = json.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(json.output)")
        #expect(parsed["job"] as? Int == Int(second) && parsed["referenceJob"] as? Int == Int(first))
        let rows = parsed["features"] as? [[String: Any]] ?? []
        #expect(rows.contains { $0["feature"] as? String == "complaints_90d" && $0["level"] as? String == "act" }, "\(line)")
        let failing = await runCommand("\(churngrid) drift --coordinator \(cluster.coordinatorEndpoint) --fail-on act")
        #expect(failing.status == 3 && failing.output.contains("complaints_90d"), "\(failing.output)")
        let unknown = await runCommand("\(churngrid) drift --coordinator \(cluster.coordinatorEndpoint) --job 999999")
        #expect(unknown.status == 1 && unknown.output.contains("job 999999 has no drift measured"), "\(unknown.output)")
        let stored = try db.query("SELECT count(*), count(*) FILTER (WHERE level = 'act') FROM model_drift WHERE job_id = $1", [String(second)]).rows[0]
        #expect(stored[0] == String(features.count + 1) && (Int(stored[1] ?? "0") ?? 0) >= 1, "\(stored)")
    }

    /// The base as the profile table has it, as a CSV (header: subscriber_id and every profile
    /// feature; missing values empty), `shift` added to the named features.
    static func writeBase(url: String, to path: String, shift: [String: Float] = [:], dropping: String? = nil) throws -> Int {
        let (stores, _) = try ProfileLoader(url: url).load(shards: Array(0..<EventTests.shards), shardCount: EventTests.shards)
        let names = FeatureCatalogue.names
        let kept = names.indices.filter { names[$0] != dropping }
        var text = (["subscriber_id"] + kept.map { names[$0] }).joined(separator: ",") + "\n"
        var rows = 0
        for store in stores.values {
            for row in 0..<store.count {
                var line = String(store.id(at: row))
                for f in kept {
                    let v = store.value(row: row, feature: f) + (shift[names[f]] ?? 0)
                    line += v.isNaN ? "," : ",\(v)"
                }
                text += line + "\n"
                rows += 1
            }
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return rows
    }

    @Test("a reference file given to models add: the version's first job is measured against it (the shifted feature at 'act', every other feature at exactly 0); a second reference is refused and nothing changes; a file without a feature's column is refused naming it")
    func referenceFile() async throws {
        let (url, cluster, client) = try await EventTests.cluster(name: "drift-file", standbys: false)
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let db = try PostgresConnection(url: url)
        let features = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: EventTests.model))), source: EventTests.model).featureNames
        let churngrid = shellQuoted(try churngridExecutable())
        let add = "\(churngrid) models add --name churn --file \(shellQuoted(EventTests.model)) --coordinator \(cluster.coordinatorEndpoint) --reference"

        // A file without one of the model's columns: refused before anything is sent.
        let broken = "/tmp/churngrid-test-\(getpid())-reference-broken.csv"
        _ = try await onOwnThread { try Self.writeBase(url: url, to: broken, dropping: "complaints_90d") }
        let refused = await runCommand("\(add) \(broken)")
        #expect(refused.status != 0 && refused.output.contains(broken) && refused.output.contains("complaints_90d"), "\(refused.output)")
        #expect(try db.query("SELECT count(*) FROM model_drift_reference").scalar == "0")

        // The base as it is, but three more complaints for everyone: the reference the base has
        // drifted away from.
        let path = "/tmp/churngrid-test-\(getpid())-reference.csv"
        let rows = try await onOwnThread { try Self.writeBase(url: url, to: path, shift: ["complaints_90d": 3]) }
        #expect(rows == EventTests.subscribers)
        let added = await runCommand("\(add) \(path)")
        #expect(added.status == 0 && added.output.contains("drift reference: \(rows) rows of"), "\(added.output)")
        let stored = try db.query("SELECT count(*), count(*) FILTER (WHERE job_id = 0), min(array_length(counts, 1)) FROM model_drift_reference").rows[0]
        #expect(stored[0] == String(features.count + 1) && stored[1] == stored[0], "\(stored)")
        let audit = try db.query("SELECT outcome FROM churngrid_audit_log WHERE action = 'models add' ORDER BY id DESC LIMIT 1").scalar ?? ""
        #expect(audit.contains("with the drift reference of churngrid-test-") && audit.contains("(\(rows) rows)"), "\(audit)")

        let first = try await client.coordinator.startRescore()
        #expect(try await RescoringTests.waitForJob(client, first).state == .completed)
        let drift = try await Self.drift(client, job: first)
        #expect(!drift.isReference && drift.referenceJob == 0, "measured against the file, not taken from the job: \(drift.referenceJob)")
        let complaints = try #require(drift.features.first { $0.feature == "complaints_90d" })
        #expect(complaints.level == .act && complaints.psi >= 0.25, "complaints_90d: \(complaints)")
        // The file's bins hold the same subscribers as the shards' profiles.
        let others = drift.features.filter { $0.feature != "complaints_90d" && $0.feature != DriftReport.scoreName }
        #expect(others.count == features.count - 1 && others.allSatisfy { $0.psi == 0 }, "\(others.filter { $0.psi != 0 })")
        let text = await runCommand("\(churngrid) drift --coordinator \(cluster.coordinatorEndpoint) --job \(first)")
        #expect(text.status == 0 && text.output.contains("drift of job \(first) against the reference file given to models add"), "\(text.output)")

        // A second reference for the version: refused, the first kept.
        let before = try db.query("SELECT feature, edges::text, counts::text FROM model_drift_reference ORDER BY feature").rows
        let again = await runCommand("\(add) \(path)")
        #expect(again.status != 0 && again.output.contains("already has a drift reference (from a file)"), "\(again.output)")
        #expect(try db.query("SELECT feature, edges::text, counts::text FROM model_drift_reference ORDER BY feature").rows == before)
    }
}
