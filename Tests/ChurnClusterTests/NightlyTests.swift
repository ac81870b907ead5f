import ChurnCluster
import Foundation
import Postgres
import Testing
import TestSupport

/// Deploy/nightly/nightly.sh, the pipeline the systemd timer, compose and the Kubernetes CronJob
/// run, against a real cluster with a model active beside the served one: the export is the
/// served model's scores, one row per subscriber, and it is written before the campaign step.
@Suite("The nightly pipeline", .serialized, .timeLimit(.minutes(10)))
struct NightlyTests {
    @Test("with a second model active: the export has one row per subscriber (the served model's), is written before the campaign step, and the run fails when the campaign setting is missing")
    func exportWithActiveModels() async throws {
        let n = 6_000
        let (url, cluster, client) = try await RescoringTests.cluster(subscribers: n, shards: 8, name: "nightly")
        defer { cluster.stop() }
        defer { Task { await client.close() } }
        let churngrid = try churngridExecutable()
        let at = "--coordinator \(cluster.coordinatorEndpoint)"
        let variant = try ModelRegistryTests.variant("nightly-90d", with: "\"base_score\":\"[2.0E-1]\"")
        let added = await runCommand("\(shellQuoted(churngrid)) models add --name churn-90d --file \(variant) \(at) --json")
        let version = try #require((ModelRegistryTests.json(added.output) as? [String: Any])?["version"] as? String, "\(added.output)")
        let activated = await runCommand("\(shellQuoted(churngrid)) models activate churn-90d --version \(version) \(at)")
        try #require(activated.status == 0, "\(activated.output)")

        let exportDir = "/tmp/churngrid-test-\(getpid())-nightly-export"
        try? FileManager.default.removeItem(atPath: exportDir)
        defer { try? FileManager.default.removeItem(atPath: exportDir) }
        let script = TestDatabase.packageRoot.appendingPathComponent("Deploy/nightly/nightly.sh").path
        func nightly(campaign: String?) async -> (status: Int32, output: String) {
            let settings = ["CHURNGRID_BIN": churngrid, "CHURNGRID_POSTGRES_URL": url, "CHURNGRID_COORDINATORS": cluster.coordinatorEndpoint,
                            "CHURNGRID_EXPORT_DIR": exportDir, "CHURNGRID_SKIP_IMPORT": "1"].merging(campaign.map { ["CHURNGRID_CAMPAIGN_ARGS": $0] } ?? [:]) { $1 }
            let environment = settings.sorted { $0.key < $1.key }.map { "\($0.key)=\(shellQuoted($0.value))" }.joined(separator: " ")
            return await runCommand("env -u CHURNGRID_CAMPAIGN_ARGS \(environment) bash \(shellQuoted(script)) 2>&1")
        }
        func exported() throws -> [[Substring]] {
            let files = try FileManager.default.contentsOfDirectory(atPath: exportDir).filter { $0.hasPrefix("churn_scores_") && $0.hasSuffix(".csv") }
            let file = try #require(files.first, "no export in \(exportDir): \(files)")
            return try String(contentsOfFile: "\(exportDir)/\(file)", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        }

        // The campaign setting missing: the run fails at the campaign step, after the export.
        let missing = await nightly(campaign: nil)
        #expect(missing.status != 0 && missing.output.contains("[4/4 campaign] ERROR: CHURNGRID_CAMPAIGN_ARGS is not set"), "\(missing.output)")
        #expect(missing.output.contains("[3/4 export] wrote"), "\(missing.output)")
        let lines = try exported()
        let header = try #require(lines.first)
        let model = try #require(header.firstIndex(of: "model_name")), id = try #require(header.firstIndex(of: "subscriber_id"))
        let rows = lines.dropFirst()
        #expect(rows.count == n, "one row per subscriber, not one per model: \(rows.count)")
        #expect(Set(rows.map { $0[id] }).count == n)
        #expect(rows.allSatisfy { $0[model] == "churn" }, "only the served model's rows")
        // The database holds both models' scores for the job (the view has a row per model).
        let db = try PostgresConnection(url: url)
        #expect(try db.query("SELECT count(*) FROM churn_scores_current").scalar == String(2 * n))

        // `none`: no campaign on purpose; the run completes.
        try FileManager.default.removeItem(atPath: exportDir)
        let none = await nightly(campaign: "none")
        #expect(none.status == 0 && none.output.contains("no campaign on purpose") && none.output.contains("nightly run complete"), "\(none.output)")
        #expect(try exported().count == n + 1)
    }
}
