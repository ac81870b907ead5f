import ChurnCluster
@testable import ChurnHTTP
import ClusterSystem
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport
import WireFormat

/// The coordinator's HTTP API against a real cluster (a coordinator and workers as `churngrid`
/// processes, a real PostgreSQL): every endpoint with and without the right token, every response
/// validated against the OpenAPI document, metrics through promtool (Tests/ChurnClusterTests/api_check.py).
@Suite("HTTP API", .serialized, .timeLimit(.minutes(10)))
struct HTTPAPITests {
    static let model = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    static var logger: Logger {
        var l = Logger(label: "test.http")
        l.logLevel = .warning
        return l
    }

    @Test("every endpoint, with and without the right token, answers as its OpenAPI document says")
    func endpoints() async throws {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 17), count: 40_000) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 2, threads: 1,
                                                   shards: 64, coordinatorOptions: ["--http", "127.0.0.1:0"],
                                                   logDirectory: "/tmp/churngrid-test-\(getpid())-http", logger: Self.logger)
        defer { cluster.stop() }
        // A third worker with its metrics port: it is drained through the API at the end.
        try cluster.addWorker("worker-3", threads: 1, arguments: ["--metrics", "127.0.0.1:0"])
        try await cluster.waitUntilReady(workers: 3, logger: Self.logger)
        let base = try await cluster.httpURL()
        let workerMetrics = try await cluster.httpURL(of: "worker-3")
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: Self.logger)
        defer { Task { await client.close() } }

        // A published job for the summary and the jobs list.
        let job = try await client.coordinator.startRescore()
        let deadline = ContinuousClock.now + .seconds(120)
        while try await client.coordinator.job(id: job)?.state == .running, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await client.coordinator.job(id: job)?.state == .completed)

        // One token per role, made as `churngrid tokens create` makes them: the hash crosses the wire.
        var environment: [String] = []
        var secrets: [String] = []
        for role in ["reader", "operator", "admin"] {
            let (token, hash) = APIToken.generate()
            try await client.coordinator.addToken(name: "test-\(role)", role: role, sha256: hash)
            environment.append("CG_\(role.uppercased())=\(shellQuoted(token))")
            secrets.append(token)
        }
        try await Task.sleep(for: .milliseconds(2500))  // the server reads the tokens every 2 s
        // A registered model that is not served, for the activation routes.
        let other = try ModelRegistryTests.variant("http-active")
        let added = try await client.coordinator.addModel(name: "churn-90d", source: "churn-90d.json", bytes: BulkArray(Array(try Data(contentsOf: URL(fileURLWithPath: other)))))
        environment += ["CG_ACTIVE_MODEL=churn-90d", "CG_ACTIVE_VERSION=\(added.version)"]

        let script = TestDatabase.packageRoot.appendingPathComponent("Tests/ChurnClusterTests/api_check.py").path
        let line = environment.joined(separator: " ") + " python3 " + [script, base, workerMetrics, "1000000042", "worker-3", "1000000000", "40000"].map(shellQuoted).joined(separator: " ")
        let (status, output) = await runCommand(line)
        #expect(status == 0, "api_check.py failed:\n\(output)")
        #expect(output.contains("\"checks\""))

        // The drained worker exited by itself, cleanly.
        let exitDeadline = ContinuousClock.now + .seconds(30)
        while cluster.isRunning("worker-3"), ContinuousClock.now < exitDeadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(cluster.exitStatus("worker-3") == 0)

        // Tokens never reach a log; request logs carry request ids.
        let logs = ["coordinator", "worker-1", "worker-2", "worker-3"].map { (try? String(contentsOfFile: cluster.logPath($0), encoding: .utf8)) ?? "" }
        for secret in secrets { #expect(!logs.contains { $0.contains(secret) }, "a token appears in a log") }
        #expect(logs[0].contains("request="))
    }

    @Test("HTTPS with a certificate and key: the API answers over TLS, plain HTTP is refused, and the session cookie is Secure")
    func tls() async throws {
        let directory = "/tmp/churngrid-test-\(getpid())-tls"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (made, madeOutput) = await runCommand("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout \(directory)/key.pem -out \(directory)/cert.pem")
        try #require(made == 0, "openssl: \(madeOutput)")
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 5), count: 2_000) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 1, threads: 1, shards: 8,
                                                   coordinatorOptions: ["--http", "127.0.0.1:0", "--tls-cert", "\(directory)/cert.pem", "--tls-key", "\(directory)/key.pem"],
                                                   logDirectory: "\(directory)/logs", logger: Self.logger)
        defer { cluster.stop() }
        let base = try await cluster.httpURL()
        #expect(base.hasPrefix("https://"))
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: Self.logger)
        defer { Task { await client.close() } }
        let (token, hash) = APIToken.generate()
        try await client.coordinator.addToken(name: "tls-reader", role: "reader", sha256: hash)
        try await Task.sleep(for: .milliseconds(2500))
        let script = """
            import http.client, json, ssl, sys, urllib.request, urllib.error, os
            base, cafile = sys.argv[1], sys.argv[2]
            ctx = ssl.create_default_context(cafile=cafile)
            token = os.environ["CG_TOKEN"]
            r = urllib.request.urlopen(urllib.request.Request(base + "/v1/cluster", headers={"Authorization": "Bearer " + token}), context=ctx, timeout=10)
            assert r.status == 200 and json.load(r)["shard_count"] == 8
            r = urllib.request.urlopen(urllib.request.Request(base + "/v1/session", data=json.dumps({"token": token}).encode(), headers={"Content-Type": "application/json"}), context=ctx, timeout=10)
            assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"], r.headers["Set-Cookie"]
            try:
                urllib.request.urlopen(base.replace("https://", "http://") + "/healthz", timeout=5)
                sys.exit("plain HTTP was answered on the TLS port")
            except (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException):
                pass
            print("tls ok")
            """
        try script.write(toFile: "\(directory)/check.py", atomically: true, encoding: .utf8)
        let (status, output) = await runCommand("CG_TOKEN=\(shellQuoted(token)) python3 \(directory)/check.py \(shellQuoted(base)) \(directory)/cert.pem")
        #expect(status == 0 && output.contains("tls ok"), "\(output)")
    }

    @Test("a standby coordinator: healthy, not ready, its API answers not-leading; once it takes over it serves the API")
    func standby() async throws {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            _ = try BaseLoader(connection: try PostgresConnection(url: url)).load(SyntheticBase(seed: 6), count: 2_000) { _ in }
        }
        let cluster = try await LocalCluster.start(executable: try churngridExecutable(), postgresURL: url, model: Self.model, workers: 1, threads: 1, shards: 8,
                                                   coordinatorOptions: ["--http", "127.0.0.1:0", "--lease-seconds", "3", "--rejoin-grace", "5"],
                                                   coordinators: 2, logDirectory: "/tmp/churngrid-test-\(getpid())-http-standby", logger: Self.logger)
        defer { cluster.stop() }
        let leader = try await cluster.httpURL(of: "coordinator"), standby = try await cluster.httpURL(of: "coordinator-2")
        let client = try await ClusterClient.connect(cluster.coordinatorEndpoint, logger: Self.logger)
        defer { Task { await client.close() } }
        let (token, hash) = APIToken.generate()
        try await client.coordinator.addToken(name: "ha-reader", role: "reader", sha256: hash)
        try await Task.sleep(for: .milliseconds(2500))
        // The header on curl's standard input (the shell's printf): the token never in a process's arguments.
        let header = "printf 'Authorization: Bearer %s\\n' \(shellQuoted(token))"
        func get(_ base: String, _ path: String) async -> String {
            await runCommand("\(header) | curl -s -o /dev/null -w '%{http_code}' -H @- \(shellQuoted(base + path))").output
        }
        #expect(await get(leader, "/readyz") == "200")
        #expect(await get(standby, "/healthz") == "200")
        #expect(await get(standby, "/readyz") == "503")
        #expect(await get(standby, "/v1/cluster") == "503")
        let body = await runCommand("\(header) | curl -s -H @- \(shellQuoted(standby + "/v1/cluster"))").output
        #expect(body.contains("/problems/not-leading"), "\(body)")
        // The leader dies: the standby takes the lease, its workers rejoin, and its API serves.
        kill(try #require(cluster.pid("coordinator")), SIGKILL)
        let deadline = ContinuousClock.now + .seconds(60)
        var ready = false
        while !ready, ContinuousClock.now < deadline {
            ready = await get(standby, "/readyz") == "200"
            if !ready { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(ready, "the standby never became ready after the leader died")
        #expect(await get(standby, "/v1/cluster") == "200")
        #expect(await get(standby, "/v1/subscribers/1000000001/score") == "200")
    }

    @Test("a non-loopback --http without TLS is refused unless --insecure; TLS needs both files")
    func refusesPlainHTTPOffLoopback() async throws {
        let exe = try churngridExecutable()
        let (status, output) = await runCommand("CHURNGRID_POSTGRES_URL=postgresql://127.0.0.1:1/none \(shellQuoted(exe)) coordinator --model \(shellQuoted(Self.model)) --http 0.0.0.0:18080 </dev/null")
        #expect(status != 0)
        #expect(output.contains("--tls-cert"), "\(output)")
        let (status2, output2) = await runCommand("CHURNGRID_POSTGRES_URL=postgresql://127.0.0.1:1/none \(shellQuoted(exe)) coordinator --model \(shellQuoted(Self.model)) --http 127.0.0.1:18080 --tls-cert x.pem </dev/null")
        #expect(status2 != 0)
        #expect(output2.contains("go together"), "\(output2)")
    }
}

/// The HTTP layer's pure parts: the route table against the OpenAPI document, problems, sessions, tokens.
@Suite("HTTP API: routes, document, sessions")
struct HTTPAPIUnitTests {
    func document() throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(OpenAPIDocument.json.utf8)) as? [String: Any])
    }

    @Test("the route table and the OpenAPI document describe the same methods and paths")
    func routesMatchDocument() throws {
        let paths = try #require(try document()["paths"] as? [String: [String: Any]])
        var documented = Set<String>()
        for (path, operations) in paths {
            for method in operations.keys where ["get", "post", "put", "delete", "patch"].contains(method) { documented.insert("\(method.uppercased()) \(path)") }
        }
        let routed = Set(APIRoute.table.map { "\($0.method) \($0.template)" })
        #expect(documented == routed, "documented but not routed: \(documented.subtracting(routed)); routed but not documented: \(routed.subtracting(documented))")
        // Every routed template parses back to a route with that template.
        for (method, template) in APIRoute.table {
            let path = template.replacingOccurrences(of: "{id}", with: "42").replacingOccurrences(of: "{name}", with: "worker-1").replacingOccurrences(of: "{run}", with: "7")
            #expect(try APIRoute.parse(method: method, path: path).template == template)
        }
    }

    @Test("every problem type is in the document's enum, with a 4xx/5xx status")
    func problemTypes() throws {
        let schemas = try #require((try document()["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let problem = try #require(schemas["Problem"] as? [String: Any])
        let types = try #require(((problem["properties"] as? [String: Any])?["type"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(types) == Set(ProblemType.allCases.map(\.uri)))
        for t in ProblemType.allCases { #expect(t.status.code >= 400) }
    }

    @Test("bad paths: unknown routes are 404, wrong methods 405 with Allow, malformed ids 400 naming the field")
    func badPaths() throws {
        #expect(throws: Problem.self) { try APIRoute.parse(method: "GET", path: "/v2/anything") }
        do {
            _ = try APIRoute.parse(method: "PUT", path: "/v1/jobs")
            Issue.record("PUT /v1/jobs parsed")
        } catch {
            #expect(error.type == .methodNotAllowed)
            #expect(error.headers[.allow] == "GET, POST")
        }
        for bad in ["/v1/subscribers/1e9/score", "/v1/subscribers//score", "/v1/subscribers/%31/score", "/v1/jobs/-1"] {
            do {
                let route = try APIRoute.parse(method: "GET", path: bad)
                Issue.record("\(bad) parsed as \(route)")
            } catch {
                #expect(error.type == .invalidParameter && error.field == "id", "\(bad): \(error)")
            }
        }
        #expect(try APIRoute.parse(method: "POST", path: "/v1/nodes/worker%2D1:drain") == .drain(node: "worker-1"))
        #expect(try APIRoute.parse(method: "GET", path: "/v1/campaigns/runs/7/report") == .campaignReport(run: 7))
        #expect(try APIRoute.parse(method: "GET", path: "/v1/campaigns/runs/7/actions.csv") == .campaignActions(run: 7))
        for bad in ["/v1/campaigns/runs/x/report", "/v1/campaigns/runs/-7/actions.csv"] {
            do {
                let route = try APIRoute.parse(method: "GET", path: bad)
                Issue.record("\(bad) parsed as \(route)")
            } catch {
                #expect(error.type == .invalidParameter && error.field == "run", "\(bad): \(error)")
            }
        }
        do {
            _ = try APIRoute.parse(method: "GET", path: "/v1/campaigns/runs")
            Issue.record("GET /v1/campaigns/runs parsed")
        } catch {
            #expect(error.type == .methodNotAllowed && error.headers[.allow] == "POST")
        }
        #expect(try APIRoute.parse(method: "HEAD", path: "/healthz") == .healthz)
    }

    @Test("sessions expire, close, and end with their token")
    func sessions() {
        var table = SessionTable()
        let t0 = ContinuousClock.now
        let identity = APIIdentity(name: "a", role: .reader, tokenHash: "h1")
        table.open(id: "s1", identity: identity, now: t0)
        table.open(id: "s2", identity: APIIdentity(name: "b", role: .admin, tokenHash: "h2"), now: t0)
        #expect(table.identity(of: "s1", now: t0 + .seconds(60)) == identity)
        #expect(table.identity(of: "nope", now: t0) == nil)
        table.prune(isLive: { $0 != "h2" }, now: t0)
        #expect(table.identity(of: "s2", now: t0) == nil)
        #expect(table.identity(of: "s1", now: t0 + SessionTable.lifetime + .seconds(1)) == nil)
        #expect(table.count == 0)
        // One token cannot fill the table: beyond its share, its own oldest session goes.
        for i in 0..<(SessionTable.perToken + 5) { table.open(id: "x\(i)", identity: identity, now: t0 + .seconds(i)) }
        #expect(table.count == SessionTable.perToken)
        #expect(table.identity(of: "x0", now: t0 + .seconds(60)) == nil)
        #expect(table.identity(of: "x\(SessionTable.perToken + 4)", now: t0 + .seconds(60)) == identity)
    }

    @Test("tokens: random, hashed, looked up by hash, revoked ones refused")
    func tokens() {
        let (a, hashA) = APIToken.generate(), (b, _) = APIToken.generate()
        #expect(a != b && a.hasPrefix("cgt_") && a.count == 47)
        #expect(hashA == APIToken.sha256(of: a) && hashA.count == 64)
        let table = TokenTable()
        table.replace(with: [APITokenRecord(name: "a", role: "reader", sha256: hashA, createdAt: "", createdBy: "", revokedAt: nil)])
        #expect(table.identity(of: a)?.name == "a")
        #expect(table.identity(of: b) == nil)
        table.replace(with: [APITokenRecord(name: "a", role: "reader", sha256: hashA, createdAt: "", createdBy: "", revokedAt: "2026-12-03")])
        #expect(table.identity(of: a) == nil)
    }

    @Test("POST /v1/events counts the lines the parser answers: blank ones (spaces, tabs, a CR before the newline) are not counted, anything else is")
    func eventLineCount() {
        #expect(Handlers.nonBlankLines(Array("".utf8)) == 0)
        #expect(Handlers.nonBlankLines(Array("a\n\n  \t\nb".utf8)) == 2)
        #expect(Handlers.nonBlankLines(Array("a\r\n\r\n \r".utf8)) == 1)
        #expect(Handlers.nonBlankLines(Array("\r\r\nx\n".utf8)) == 2, "a CR not ending its line is content, as the parser takes it")
    }

    @Test("JSON output escapes strings and writes non-finite numbers as null")
    func json() throws {
        var o = JSONOut()
        o.object { o in
            o.key("s"); o.string("a\"b\\c\n\u{1}é")
            o.key("n"); o.double(.nan)
            o.key("a"); o.array { o in o.int(1); o.int(-2) }
        }
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(o.bytes)) as? [String: Any])
        #expect(parsed["s"] as? String == "a\"b\\c\n\u{1}é")
        #expect(parsed["n"] is NSNull)
        #expect(parsed["a"] as? [Int] == [1, -2])
    }
}
