import ClusterSystem
import Foundation
import Logging

/// A coordinator and workers started as separate `churngrid` processes on 127.0.0.1: what
/// `churngrid demo` and the benchmarks run. Each process's output goes to a log file.
public final class LocalCluster: @unchecked Sendable {
    // @unchecked: the process list changes only in the owner's calls (`start`, `addWorker`,
    // `restartCoordinator`), made one at a time.
    /// Where clients reach the coordinators: their endpoints separated by commas (the one that
    /// leads answers).
    public var coordinatorEndpoint: String { coordinatorEndpoints.joined(separator: ",") }
    /// Each coordinator's endpoint: "coordinator" first, then "coordinator-2", …
    public private(set) var coordinatorEndpoints: [String] = []
    public let logDirectory: String
    private let executable: String
    /// The coordinator's command line, given where it listens.
    private var coordinatorArguments: (_ name: String, _ listen: String) -> [String] = { _, _ in [] }
    private var processes: [(name: String, process: Process)] = []
    /// The PostgreSQL URL, handed to the processes in their environment (never in argv).
    private var postgresURL = ""
    /// Another PostgreSQL URL for some processes (by name), e.g. through a proxy a test cuts.
    private var postgresURLs: [String: String] = [:]
    /// Further options of every `churngrid worker` (`--triggers-publish tcp://127.0.0.1:*`).
    private var workerOptions: [String] = []
    /// With CURVE: where every node's key and the authorized-keys file are.
    public private(set) var keyDirectory: String?
    /// With CURVE: what a client of this cluster presents (an admin key named "demo").
    public private(set) var credentials: ClusterClient.Credentials?

    /// Starts a coordinator and `workers` workers and waits until every shard is loaded.
    /// - Parameters:
    ///   - executable: the `churngrid` binary.
    ///   - threads: cores each worker scores with.
    ///   - coordinatorOptions: further options of `churngrid coordinator` (`--standbys`, `--handoff postgres`).
    ///   - keyDirectory: with a folder, the cluster runs with CURVE: a key per node and an admin
    ///     key "demo" for clients are written there with the authorized-keys file.
    ///   - waitForReady: false returns once the processes run (a `--min-workers` start waits for more).
    ///   - coordinators: with more than one, "coordinator" leads (it starts first) and
    ///     "coordinator-2", … stand by on the same database; workers and clients know them all.
    public static func start(executable: String, postgresURL: String, model: String, workers: Int, threads: Int,
                             shards: Int = 1024, coordinatorOptions: [String] = [], keyDirectory: String? = nil,
                             coordinators: Int = 1, workerOptions: [String] = [], postgresURLs: [String: String] = [:],
                             logDirectory: String, logger: Logger, waitForReady: Bool = true) async throws -> LocalCluster {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let cluster = LocalCluster(executable: executable, logDirectory: logDirectory)
        cluster.postgresURL = postgresURL
        cluster.postgresURLs = postgresURLs
        cluster.workerOptions = workerOptions
        let coordinatorNames = (1...max(1, coordinators)).map { $0 == 1 ? "coordinator" : "coordinator-\($0)" }
        if let keyDirectory { try cluster.makeKeys(in: keyDirectory, workers: max(1, workers), coordinators: coordinatorNames) }
        cluster.coordinatorArguments = { name, listen in
            ["coordinator", "--listen", listen, "--name", name, "--model", model, "--shards", String(shards)] + cluster.listenerOptions(name) + coordinatorOptions
        }
        do {
            for (i, name) in coordinatorNames.enumerated() {
                try cluster.spawn(executable, name, cluster.coordinatorArguments(name, "tcp://127.0.0.1:*"))
                cluster.coordinatorEndpoints.append(try await cluster.endpoint(of: name, prefix: "coordinator listening "))
                // The first leads: the others start once it holds the lease.
                if i == 0 { _ = try await cluster.endpoint(of: name, prefix: "coordinator leading term ") }
            }
            for i in 1...max(1, workers) {
                try cluster.spawn(executable, "worker-\(i)", cluster.workerArguments("worker-\(i)", threads: threads))
            }
            if waitForReady { try await cluster.waitUntilReady(workers: max(1, workers), logger: logger) }
            return cluster
        } catch {
            cluster.stop()
            throw error
        }
    }

    private init(executable: String, logDirectory: String) {
        self.executable = executable
        self.logDirectory = logDirectory
    }

    // MARK: Keys

    private var authorizedKeysPath: String { "\(keyDirectory ?? "")/authorized_keys" }

    /// Writes a key per node, the client key "demo" (admin) and the authorized-keys file.
    private func makeKeys(in directory: String, workers: Int, coordinators: [String]) throws {
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        keyDirectory = directory
        var coordinatorKeys: [String] = []
        var lines = ["# role public-key name (churngrid demo)"]
        for name in coordinators {
            let key = try NodeKeyFile.generate(name: name)
            try key.write(to: directory)
            coordinatorKeys.append(key.keys.publicKey)
            lines.append("coordinator \(key.keys.publicKey) \(name)")
        }
        let demo = try NodeKeyFile.generate(name: "demo")
        try demo.write(to: directory)
        lines.append("admin \(demo.keys.publicKey) demo")
        for i in 1...workers {
            let worker = try NodeKeyFile.generate(name: "worker-\(i)")
            try worker.write(to: directory)
            lines.append("worker \(worker.keys.publicKey) worker-\(i)")
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: authorizedKeysPath, atomically: true, encoding: .utf8)
        credentials = ClusterClient.Credentials(key: demo, coordinatorKeys: coordinatorKeys)
    }

    /// The security options of node `name` (none without CURVE).
    private func listenerOptions(_ name: String) -> [String] {
        guard let keyDirectory else { return [] }
        return ["--curve-keys", "\(keyDirectory)/\(name).key", "--authorized-keys", authorizedKeysPath]
    }

    private func workerArguments(_ name: String, threads: Int, coordinator: String? = nil) -> [String] {
        var arguments = ["worker", "--coordinator", coordinator ?? coordinatorEndpoint, "--name", name, "--threads", String(threads)] + listenerOptions(name) + workerOptions
        if let keyDirectory { arguments += ["--coordinator-key", coordinatorKeyFiles(keyDirectory)] }
        return arguments
    }

    /// The options a `churngrid` client command needs to reach this cluster.
    public var clientOptions: [String] {
        var options = ["--coordinator", coordinatorEndpoint]
        if let keyDirectory { options += ["--curve-keys", "\(keyDirectory)/demo.key", "--coordinator-key", coordinatorKeyFiles(keyDirectory)] }
        return options
    }

    /// The coordinators' public key files, in the order of their endpoints.
    private func coordinatorKeyFiles(_ directory: String) -> String {
        coordinatorEndpoints.indices.map { "\(directory)/\($0 == 0 ? "coordinator" : "coordinator-\($0 + 1)").pub" }.joined(separator: ",")
    }

    /// Adds `line` ("ROLE KEY NAME") to the authorized keys and makes every running node read
    /// them again (SIGHUP).
    public func authorize(_ line: String) throws {
        let text = (try? String(contentsOfFile: authorizedKeysPath, encoding: .utf8)) ?? ""
        try (text + line + "\n").write(toFile: authorizedKeysPath, atomically: true, encoding: .utf8)
        for (_, p) in processes where p.isRunning { kill(p.processIdentifier, SIGHUP) }
    }

    /// The log file of process `name` ("coordinator", "worker-1").
    public func logPath(_ name: String) -> String { "\(logDirectory)/\(name).log" }

    /// The pid of process `name`.
    public func pid(_ name: String) -> Int32? { processes.last { $0.name == name }?.process.processIdentifier }

    @discardableResult
    private func spawn(_ executable: String, _ name: String, _ arguments: [String], appendLog: Bool = false) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["CHURNGRID_POSTGRES_URL"] = postgresURLs[name] ?? postgresURL
        process.environment = environment
        if !appendLog || !FileManager.default.fileExists(atPath: logPath(name)) {
            _ = FileManager.default.createFile(atPath: logPath(name), contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath(name)))
        if appendLog { log.seekToEndOfFile() }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = Pipe()  // closed if this process dies
        try process.run()
        processes.append((name, process))
        return process
    }

    /// How long a node may take to say it listens (or leads).
    static let startTimeout: Duration = .seconds(180)

    private func endpoint(of name: String, prefix: String, occurrence: Int = 1) async throws -> String {
        // Generous: a node starting on a machine loaded with other clusters (a test run) may take a
        // while to migrate and load its model; a node that exits says so at once below.
        let deadline = ContinuousClock.now + Self.startTimeout
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
            let lines = text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
            if lines.count >= occurrence {
                return String(lines[occurrence - 1].dropFirst(prefix.count))
            }
            if let p = processes.last(where: { $0.name == name })?.process, !p.isRunning {
                throw ClusterError("\(name) exited (status \(p.terminationStatus)); see \(logPath(name)):\n\(text.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
        throw ClusterError("\(name) did not start within \(Self.startTimeout); see \(logPath(name)):\n\(text.suffix(2000))")
    }

    /// Waits until `workers` workers have joined and every shard is loaded.
    public func waitUntilReady(workers: Int, timeout: Duration = .seconds(1800), logger: Logger) async throws {
        let client = try await ClusterClient.connect(coordinatorEndpoint, credentials: credentials, logger: logger)
        defer { Task { await client.close() } }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = try? await client.coordinator.status(), s.workers.count >= workers, s.unassignedShards == 0, s.movingShards == 0 { return }
            for (name, p) in processes where !p.isRunning && p.terminationStatus != 0 {  // a drained worker exits 0
                throw ClusterError("\(name) exited (status \(p.terminationStatus)); see \(logPath(name))")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ClusterError("the cluster was not ready within \(timeout)")
    }

    /// Stops the cluster: the coordinator first (so the workers do not drain their shards onto
    /// each other), then the workers, with SIGTERM (SIGKILL after 20 s), waiting for each.
    public func stop() {
        let coordinators = processes.filter { $0.name.hasPrefix("coordinator") }, workers = processes.filter { !$0.name.hasPrefix("coordinator") }
        for group in [coordinators, workers] {
            for (_, p) in group where p.isRunning { p.terminate() }
            let deadline = Date().addingTimeInterval(20)
            for (_, p) in group {
                while p.isRunning && Date() < deadline { usleep(20_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
        }
    }

    /// Starts one more worker, `name`, that joins the running cluster (it does not wait for the
    /// rebalance).
    /// - Parameters:
    ///   - coordinator: the endpoint it dials instead of the coordinators' (a proxy).
    ///   - arguments: further options (`--listen`, `--advertise`).
    public func addWorker(_ name: String, threads: Int, coordinator: String? = nil, arguments: [String] = []) throws {
        if let keyDirectory, !FileManager.default.fileExists(atPath: "\(keyDirectory)/\(name).key") {
            let key = try NodeKeyFile.generate(name: name)
            try key.write(to: keyDirectory)
            try authorize("worker \(key.keys.publicKey) \(name)")
            usleep(300_000)  // the running nodes read the keys again before the newcomer knocks
        }
        try spawn(executable, name, workerArguments(name, threads: threads, coordinator: coordinator) + arguments)
    }

    /// Starts the coordinator again on the same endpoint (after it was killed) and waits until it
    /// listens; the workers re-register by themselves.
    /// - Parameter leading: wait until it leads (it took the lease back), not only until it listens.
    /// - Parameter model: another `--model` file for it than the one it started with.
    public func restartCoordinator(_ name: String = "coordinator", leading: Bool = true, model: String? = nil) async throws {
        let index = name == "coordinator" ? 0 : (Int(name.dropFirst("coordinator-".count)) ?? 1) - 1
        guard coordinatorEndpoints.indices.contains(index) else { throw ClusterError("no coordinator named \(name)") }
        let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
        let listened = text.components(separatedBy: "coordinator listening ").count - 1
        let led = text.components(separatedBy: "coordinator leading term ").count - 1
        processes.removeAll { $0.name == name && !$0.process.isRunning }
        var arguments = coordinatorArguments(name, coordinatorEndpoints[index])
        if let model, let i = arguments.firstIndex(of: "--model"), i + 1 < arguments.count { arguments[i + 1] = model }
        try spawn(executable, name, arguments, appendLog: true)
        _ = try await endpoint(of: name, prefix: "coordinator listening ", occurrence: listened + 1)
        if leading { _ = try await endpoint(of: name, prefix: "coordinator leading term ", occurrence: led + 1) }
    }

    /// The base URL of node `name`'s HTTP server (`http://127.0.0.1:PORT`): a coordinator started
    /// with `--http`, or a worker with `--metrics` (its latest start).
    public func httpURL(of name: String = "coordinator") async throws -> String {
        let prefix = name.hasPrefix("coordinator") ? "http listening " : "metrics listening "
        let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
        let occurrence = max(1, text.components(separatedBy: prefix).count - 1)
        return try await endpoint(of: name, prefix: prefix, occurrence: occurrence)
    }

    /// The exit status of process `name` once it has exited.
    public func exitStatus(_ name: String) -> Int32? {
        guard let p = processes.last(where: { $0.name == name })?.process, !p.isRunning else { return nil }
        return p.terminationStatus
    }

    /// Whether process `name` is still running.
    public func isRunning(_ name: String) -> Bool {
        processes.last { $0.name == name }?.process.isRunning ?? false
    }
}
