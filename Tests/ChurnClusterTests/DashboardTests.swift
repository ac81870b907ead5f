import ChurnCluster
import ChurnHTTP
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The coordinator's dashboard in a real headless Chromium (Debian `chromium` and
/// `chromium-driver`, Python `selenium`: `make test-deps`): `dashboard_check.py` signs in with a
/// reader token, waits for the first render and checks every panel against the API's own answers.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct DashboardTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path
    static let script = TestDatabase.packageRoot.appendingPathComponent("Tests/ChurnClusterTests/dashboard_check.py").path
    static let screenshot = TestDatabase.packageRoot.appendingPathComponent(".build/dashboard.png").path

    @Test("the dashboard signs in with a token, shows the cluster, the job, the published summary and a lookup exactly as the API answers them")
    func dashboardMatchesTheAPI() async throws {
        let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
        let tools = await runCommand("\(shellQuoted(python)) -c 'import selenium' && command -v chromium && command -v chromedriver")
        try #require(tools.status == 0, "the dashboard test needs chromium, chromium-driver and selenium (make test-deps): \(tools.output)")

        let n = 50_000, shards = 64
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 71), count: n) { _ in }
        }
        var logger = Logger(label: "test.dashboard")
        logger.logLevel = .warning
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: shards, coordinatorOptions: ["--http", "127.0.0.1:0"],
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-dashboard", logger: logger)
        defer { cluster.stop() }
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: logger)
        defer { Task { await client.close() } }
        let base = try await cluster.httpURL()

        // One job, published: the summary the histogram, the bands and the top ten come from.
        let id = try await client.coordinator.startRescore()
        var ended: JobStatus?
        for _ in 0..<1200 where ended == nil {
            if let j = try await client.coordinator.job(id: id), j.state != .running { ended = j } else { try await Task.sleep(for: .milliseconds(100)) }
        }
        let job = try #require(ended, "job \(id) did not end within 120 s")
        try #require(job.state == .completed, "\(job)")

        // A reader token; the coordinator reads the tokens every 2 s.
        let (token, hash) = APIToken.generate()
        try await client.coordinator.addToken(name: "dashboard-test", role: "reader", sha256: hash)
        try await Task.sleep(for: .milliseconds(2500))

        // The token goes to the script in its environment only (never on a command line, where
        // `ps` shows it): set for the spawn, removed right after (the child has its copy).
        try FileManager.default.createDirectory(atPath: (Self.screenshot as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let logPath = cluster.logPath("dashboard-check")
        setenv("CHURNGRID_TOKEN", token, 1)
        let check: ChildProcess
        do {
            defer { unsetenv("CHURNGRID_TOKEN") }
            check = try ChildProcess("/usr/bin/env", [python, Self.script, base, Self.screenshot, "--timeout", "60"], logPath: logPath)
        }
        let status = try await onOwnThread { try await check.wait(timeout: .seconds(300)) }
        let output = check.log
        #expect(status == 0, "dashboard_check.py exited with \(status):\n\(output)")
        #expect(!output.contains(token), "the script's output shows the token")
        let last = output.split(separator: "\n").last.map(String.init) ?? ""
        if let data = last.data(using: .utf8), let figures = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let ms = figures["first_render_ms"] {
            print("dashboard: first render \(ms) ms after navigation start (\(n) subscribers, \(shards) shards); screenshot \(Self.screenshot)")
        } else {
            Issue.record("the script's last line is not {\"first_render_ms\": N}: \(last)")
        }
    }
}
