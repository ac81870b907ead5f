import ArgumentParser
import ChurnCluster
import ChurnHTTP
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job on one machine: a private PostgreSQL, a synthetic base, a coordinator and workers as separate processes, a full rescoring, its summary, the ten highest-risk subscribers and a few live queries.")

    @Option(help: "Subscribers in the synthetic base.")
    var subscribers = 1_000_000

    @Option(help: "Worker processes.")
    var workers = 2

    @Option(help: "PostgreSQL URL without a password (PGPASSWORD or PGPASSFILE; default: a private server under .churngrid/pg, started and stopped here).")
    var postgres: String?

    @Flag(help: "Use the PostgreSQL in CHURNGRID_POSTGRES_URL (a URL with its password stays out of the process list). Never implied: the demo replaces subscriber_profiles.")
    var postgresFromEnvironment = false

    @Option(help: "Model file.")
    var model = "models/churn-default.json"

    @Flag(help: "Leave the cluster (and the private PostgreSQL) running and print how to query it.")
    var keepRunning = false

    @Flag(help: "Run the cluster without CURVE (by default every node has its own key under .churngrid/demo/keys and only authorized keys get in).")
    var insecure = false

    @Option(help: "Where the coordinator serves the HTTP API and the dashboard (HOST:PORT; port 0 picks a free one; empty: none).")
    var http = "127.0.0.1:0"

    @Flag(help: "End with one JSON object (subscribers, job_id, rescore_seconds, scores_written, postgres_url, …).")
    var json = false

    func validate() throws {
        guard (1...100_000_000).contains(subscribers) else { throw ValidationError("--subscribers: 1 to 100000000") }
        guard (1...64).contains(workers) else { throw ValidationError("--workers: 1 to 64") }
        guard postgres == nil || !postgresFromEnvironment else { throw ValidationError("give --postgres URL or --postgres-from-environment, not both") }
    }

    func run() async throws {
        var logger = makeLogger("churngrid.demo")
        logger.logLevel = .warning
        let say: (String) -> Void = { line in if json { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) } }
        try await reportingClusterErrors {
            let ownDatabase = postgres == nil && !postgresFromEnvironment
            let url = ownDatabase ? try startPrivatePostgres() : try postgresURL(option: postgres)
            say("ChurnGrid demo: \(subscribers) subscribers, \(workers) workers, PostgreSQL \(PostgresConnection.redacted(url))")

            say("\n[1/5] Generating the synthetic base into subscriber_profiles")
            let bar = ProgressBar(label: "generating", total: subscribers)
            let generated = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 1), count: subscribers) { p in
                bar.update(p.rows, seconds: p.seconds)
            }
            bar.finish()
            say(String(format: "  %d subscribers in %.1f s, churn rate %.2f%%", generated.rows, generated.seconds,
                       100 * Double(generated.churned) / Double(max(1, generated.rows))))

            say("\n[2/5] Starting a coordinator and \(workers) workers on 127.0.0.1 (each loads its shards)"
                + (insecure ? ", without CURVE" : ", CURVE on: a key per node in .churngrid/demo/keys, admin key 'demo' for this client"))
            let start = ContinuousClock.now
            let cluster = try await LocalCluster.start(executable: try ownExecutable(), postgresURL: url, model: model, workers: workers,
                                                       threads: max(1, defaultThreads() / max(1, workers)),
                                                       coordinatorOptions: http.isEmpty ? [] : ["--http", http],
                                                       keyDirectory: insecure ? nil : ".churngrid/demo/keys",
                                                       logDirectory: ".churngrid/demo/logs", logger: logger)
            let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, credentials: cluster.credentials, logger: logger)
            let status = try await client.coordinator.status()
            say(String(format: "  ready in %.1f s: coordinator %@, shard map epoch %lld, model %@", seconds(ContinuousClock.now - start),
                       cluster.coordinatorEndpoint, status.epoch, status.modelVersion))
            for w in status.workers {
                say(String(format: "  %@: %d shards, %d subscribers, %.0f B/subscriber in profiles", w.name, w.shards, w.subscribers,
                           w.subscribers > 0 ? Double(w.profileBytes) / Double(w.subscribers) : 0))
            }

            say("\n[3/5] Rescoring the whole base")
            let id = try await client.coordinator.startRescore()
            let job = try await waitForJob(client, id: id, showProgress: true)
            say("  " + jobSummary(job))
            guard job.state == .completed else {
                await client.close()
                if !keepRunning { cluster.stop(); if ownDatabase { stopPrivatePostgres() } }
                throw ExitCode(1)
            }

            say("\n[4/5] Published scores (view churn_scores_current)")
            let db = try PostgresConnection(url: url)
            let summary = try db.query("SELECT subscribers, mean_probability, deciles, per_band, per_region FROM scoring_job_summaries WHERE job_id = $1", [String(id)]).rows[0]
            let written = Int(try db.query("SELECT count(*) FROM churn_scores_current").scalar ?? "0") ?? 0
            say("  \(written) scores written, mean probability \(String(format: "%.4f", Double(summary[1] ?? "0") ?? 0))")
            say("  deciles \(summary[2] ?? "")")
            say("  per risk band \(summary[3] ?? "")")
            say("\n  Ten highest-risk subscribers and why:")
            let top = try db.query("""
                SELECT subscriber_id, probability, risk_band, reason1, contribution1, reason2, contribution2, reason3, contribution3
                FROM churn_scores_current ORDER BY probability DESC, subscriber_id LIMIT 10
                """).rows
            for r in top {
                let reasons = stride(from: 3, to: 9, by: 2).compactMap { i in r[i].map { "\($0) (+\(String(format: "%.2f", Double(r[i + 1] ?? "0") ?? 0)))" } }
                say("  \(r[0] ?? "")  p=\(String(format: "%.3f", Double(r[1] ?? "0") ?? 0))  \(r[2] ?? "")  \(reasons.joined(separator: ", "))")
            }

            say("\n[5/5] Live queries (computed now by the owning shard)")
            let median = try db.query("SELECT subscriber_id FROM churn_scores_current ORDER BY probability OFFSET (SELECT count(*) / 2 FROM churn_scores_current) LIMIT 1").scalar
            for text in [top.first?[0], median, "1"].compactMap({ $0 ?? nil }) {
                guard let sid = Int64(text) else { continue }
                let clock = ContinuousClock.now
                let answer = try await client.score(sid)
                let micros = Int(seconds(ContinuousClock.now - clock) * 1e6)
                switch answer {
                case .found(let s): say("  \(describe(s))  (\(micros) µs)")
                case .notFound(let id, let shard): say("  subscriber \(id): not found (shard \(shard))  (\(micros) µs)")
                case .unavailable(let shard, let reason): say("  shard \(shard) unavailable: \(reason)")
                }
            }
            var dashboard: String?
            if !http.isEmpty {
                // A reader token for the dashboard and the API: only its hash crosses the wire.
                let base = try await cluster.httpURL()
                let (token, hash) = APIToken.generate()
                let name = "demo-reader-\(Int(Date().timeIntervalSince1970))"
                try await client.coordinator.addToken(name: name, role: "reader", sha256: hash)
                dashboard = base + "/"
                say("""

                    Dashboard and HTTP API: \(base)/  (API described at \(base)/openapi.json\(keepRunning ? "" : "; up until the demo ends: KEEP_RUNNING=1 keeps it"))
                      a reader token '\(name)' (sign in with it on the dashboard; shown only now):
                      \(token)
                      printf 'Authorization: Bearer %s\\n' '\(token)' | curl -H @- \(base)/v1/subscribers/\(top.first?[0] ?? "ID")/score
                      (the header comes on standard input: a token in curl's arguments would show in the process list)
                    """)
            }
            await client.close()

            if keepRunning {
                say("""

                    The cluster is still running (logs in \(cluster.logDirectory)):
                      churngrid status \(cluster.clientOptions.joined(separator: " "))
                      churngrid score \(top.first?[0] ?? "ID") \(cluster.clientOptions.joined(separator: " "))
                      churngrid rescore --wait \(cluster.clientOptions.joined(separator: " "))
                      psql '\(PostgresConnection.redacted(url))' -c 'SELECT * FROM churn_scores_current ORDER BY probability DESC LIMIT 10'
                    Stop it with: kill \(["coordinator"] .compactMap { cluster.pid($0) }.map(String.init).joined()) \((1...workers).compactMap { cluster.pid("worker-\($0)") }.map(String.init).joined(separator: " "))\(ownDatabase ? " && bash Deploy/local/pg.sh stop" : "")
                    """)
            } else {
                say("\nStopping the cluster\(ownDatabase ? " and the private PostgreSQL" : "")")
                cluster.stop()
                if ownDatabase { stopPrivatePostgres() }
            }
            if json {
                try printJSON(DemoResult(subscribers: subscribers, workers: workers, job_id: id, rescore_seconds: job.seconds,
                                         subscribers_per_second: job.subscribersPerSecond, scores_written: written,
                                         postgres_url: PostgresConnection.redacted(url), coordinator: cluster.coordinatorEndpoint, model_version: job.modelVersion,
                                         mean_probability: Double(summary[1] ?? "0") ?? 0, kept_running: keepRunning, dashboard: dashboard))
            }
        }
    }
}

struct DemoResult: Encodable {
    var subscribers: Int
    var workers: Int
    var job_id: Int64
    var rescore_seconds: Double
    var subscribers_per_second: Double
    var scores_written: Int
    var postgres_url: String
    var coordinator: String
    var model_version: String
    var mean_probability: Double
    var kept_running: Bool
    var dashboard: String?
}

func ownExecutable() throws -> String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
}

func startPrivatePostgres() throws -> String {
    let out = try shell("bash Deploy/local/pg.sh start")
    guard let url = out.split(separator: "\n").last(where: { $0.hasPrefix("postgresql://") }) else {
        throw ValidationError("could not start the private PostgreSQL (Deploy/local/pg.sh start):\n\(out)")
    }
    return String(url)
}

func stopPrivatePostgres() {
    _ = try? shell("bash Deploy/local/pg.sh stop")
}

/// Runs a shell command and returns its standard output. The output goes through a file, not a
/// pipe: a server started by the command (pg.sh) would otherwise hold the pipe open.
func shell(_ command: String) throws -> String {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("churngrid-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out").path
    defer { try? FileManager.default.removeItem(atPath: out) }
    // system(3), not Foundation's Process: its waitUntilExit was seen to hang here.
    _ = system("\(command) > '\(out)' 2>&1 < /dev/null")
    return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
