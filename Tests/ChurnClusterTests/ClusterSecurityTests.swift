import ChurnCluster
import ChurnHTTP
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

/// A coordinator and two workers with their own CURVE keys as real processes: roles per method
/// as the CLI reports them, a worker's key limited to itself, SIGHUP granting a new key, the
/// audit log, and no password in any log or command line.
@Suite("Cluster security: keys, roles, audit, secrets", .serialized, .timeLimit(.minutes(10)))
struct ClusterSecurityTests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    /// Runs `churngrid ARGS` and returns its exit status and output (stdout and stderr).
    static func churngrid(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let line = ([try churngridExecutable()] + arguments).map(shellQuoted).joined(separator: " ")
        return await runCommand(line + " 2>&1 </dev/null")
    }

    @Test("readers read, operators start jobs, only admins drain; a worker's key drains only itself; unknown keys get nothing; actions audited; the password appears nowhere")
    func rolesAndSecrets() async throws {
        let base = try await TestDatabase.fresh()
        let password = "Pw-\(UInt32.random(in: 100_000...999_999))-secret"
        // The private server trusts local connections, so the password is not checked; it is
        // there to be leaked, and the test looks for it everywhere.
        let url = base.replacingOccurrences(of: "postgresql://postgres@", with: "postgresql://postgres:\(password)@")
        #expect(url.contains(password))
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 3), count: 3_000) { _ in }
        }
        var logger = Logger(label: "test.security")
        logger.logLevel = .warning
        let logs = "/tmp/churngrid-test-\(getpid())-security"
        let keys = "/tmp/churngrid-test-\(getpid())-security-keys"
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: 16, coordinatorOptions: ["--http", "127.0.0.1:0"], keyDirectory: keys, logDirectory: logs, logger: logger)
        defer { cluster.stop() }
        let endpoint = cluster.coordinatorEndpoint
        let coordinatorKey = "\(keys)/coordinator.pub"

        // No process carries the password on its command line.
        for name in ["coordinator", "worker-1", "worker-2"] {
            let pid = try #require(cluster.pid(name))
            let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            #expect(!cmdline.isEmpty)
            #expect(!cmdline.contains(password), "\(name)'s argv holds the password")
        }

        // A reader key is granted while the cluster runs (SIGHUP to every node).
        #expect(try await Self.churngrid(["cluster", "keys", "--out", keys, "--name", "alice"]).status == 0)
        let alice = try NodeKeyFile.load(path: "\(keys)/alice.key")
        try cluster.authorize("reader \(alice.keys.publicKey) alice")
        try await Task.sleep(for: .milliseconds(500))
        let asAlice = ["--coordinator", endpoint, "--curve-keys", "\(keys)/alice.key", "--coordinator-key", coordinatorKey]

        let status = try await Self.churngrid(["status"] + asAlice)
        #expect(status.status == 0, "\(status.output)")
        #expect(status.output.contains("worker-1"))
        let score = try await Self.churngrid(["score", "1000000017"] + asAlice)  // straight to the owning worker
        #expect(score.status == 0, "\(score.output)")

        let drain = try await Self.churngrid(["nodes", "drain", "worker-1"] + asAlice)
        #expect(drain.status != 0)
        #expect(drain.output.contains("not authorized: CoordinatorActor.drain(_:) needs role admin"), "\(drain.output)")
        let rescore = try await Self.churngrid(["rescore"] + asAlice)
        #expect(rescore.status != 0)
        #expect(rescore.output.contains("not authorized: CoordinatorActor.startRescore() needs role operator"), "\(rescore.output)")

        // A worker's key may drain that worker only.
        let asWorker = ["--coordinator", endpoint, "--curve-keys", "\(keys)/worker-1.key", "--coordinator-key", coordinatorKey]
        let other = try await Self.churngrid(["nodes", "drain", "worker-2"] + asWorker)
        #expect(other.status != 0)
        #expect(other.output.contains("not authorized"), "\(other.output)")
        let asWorkerRescore = try await Self.churngrid(["rescore"] + asWorker)
        #expect(asWorkerRescore.output.contains("not authorized"), "\(asWorkerRescore.output)")

        // A key nobody listed learns nothing, not even the status.
        #expect(try await Self.churngrid(["cluster", "keys", "--out", keys, "--name", "mallory"]).status == 0)
        let stranger = try await Self.churngrid(["status", "--coordinator", endpoint, "--curve-keys", "\(keys)/mallory.key", "--coordinator-key", coordinatorKey])
        #expect(stranger.status != 0)
        #expect(!stranger.output.contains("worker-1"), "\(stranger.output)")
        #expect(stranger.output.contains("did not accept this node's key"), "\(stranger.output)")

        // The admin ("demo") runs a job and drains a worker; both are in the audit log.
        let admin = try #require(cluster.credentials)
        let client = try await ClusterClient.connect(endpoint, credentials: admin, logger: logger)
        let job = try await client.coordinator.startRescore()
        while try await client.coordinator.job()?.state == .running { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try await client.coordinator.job()?.state == .completed)
        #expect(try await ClusterActorSystem.$callTimeout.withValue(.seconds(120)) { try await client.coordinator.drain("worker-2") } > 0)
        await client.close()
        let audit = try await onOwnThread {
            try PostgresConnection(url: url).query("SELECT actor, action, target, credential FROM churngrid_audit_log ORDER BY id").rows
        }
        #expect(audit.contains { $0[0] == "demo" && $0[1] == "rescore" && $0[2] == "job \(job)" })
        #expect(audit.contains { $0[0] == "demo" && $0[1] == "drain" && $0[2] == "worker-2" && ($0[3] ?? "").hasPrefix("curve:") })

        // Events posted to the HTTP API with an operator's token reach the owning worker on a CURVE
        // cluster: the coordinator forwards them under its own key (role coordinator).
        let http = try await cluster.httpURL()
        let (token, hash) = APIToken.generate()
        let tokens = try await ClusterClient.connect(endpoint, credentials: admin, logger: logger)
        try await tokens.coordinator.addToken(name: "test-operator", role: "operator", sha256: hash)
        await tokens.close()
        try await Task.sleep(for: .milliseconds(2500))  // the server reads the tokens every 2 s
        let at = Timestamp.format(Int64(Date().timeIntervalSince1970 * 1000) - 60_000)
        let event = #"{"event_id":"curve-1","source":"security","subscriber_id":1000000017,"type":"complaint","at":"\#(at)"}"#
        let eventFile = "\(logs)/event.ndjson"
        try event.write(toFile: eventFile, atomically: true, encoding: .utf8)
        let posted = await runCommand("printf 'Authorization: Bearer %s' \(shellQuoted(token)) | curl -s -H @- -H 'Content-Type: application/x-ndjson' --data-binary @\(shellQuoted(eventFile)) \(shellQuoted(http + "/v1/events"))")
        #expect(posted.status == 0 && posted.output.contains(#""accepted":1"#) && posted.output.contains(#""status":"accepted""#), "\(posted.output)")

        // Not one log line of the run holds the password.
        cluster.stop()
        for file in try FileManager.default.contentsOfDirectory(atPath: logs) {
            let text = try String(contentsOfFile: "\(logs)/\(file)", encoding: .utf8)
            #expect(!text.isEmpty || file.hasPrefix("worker-"), "\(file)")
            #expect(!text.contains(password), "\(file) holds the password")
        }
    }
}
