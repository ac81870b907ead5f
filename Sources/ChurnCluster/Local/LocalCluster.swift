import Foundation
import Logging

/// A coordinator and workers started as separate `churngrid` processes on 127.0.0.1: what
/// `churngrid demo` and the benchmarks run. Each process's output goes to a log file.
public final class LocalCluster: @unchecked Sendable {
    // @unchecked: the process list is built in `start` and only read afterwards.
    public private(set) var coordinatorEndpoint = ""
    public let logDirectory: String
    private var processes: [(name: String, process: Process)] = []

    /// Starts a coordinator and `workers` workers and waits until every shard is loaded.
    /// - Parameters:
    ///   - executable: the `churngrid` binary.
    ///   - threads: cores each worker scores with.
    public static func start(executable: String, postgresURL: String, model: String, workers: Int, threads: Int,
                             shards: Int = 1024, logDirectory: String, logger: Logger) async throws -> LocalCluster {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let cluster = LocalCluster(logDirectory: logDirectory)
        do {
            try cluster.spawn(executable, "coordinator", ["coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", postgresURL,
                                                           "--model", model, "--shards", String(shards)])
            cluster.coordinatorEndpoint = try await cluster.endpoint(of: "coordinator", prefix: "coordinator listening ")
            for i in 1...max(1, workers) {
                try cluster.spawn(executable, "worker-\(i)", ["worker", "--coordinator", cluster.coordinatorEndpoint, "--name", "worker-\(i)",
                                                              "--threads", String(threads)])
            }
            try await cluster.waitUntilReady(workers: max(1, workers), logger: logger)
            return cluster
        } catch {
            cluster.stop()
            throw error
        }
    }

    private init(logDirectory: String) {
        self.logDirectory = logDirectory
    }

    /// The log file of process `name` ("coordinator", "worker-1").
    public func logPath(_ name: String) -> String { "\(logDirectory)/\(name).log" }

    /// The pid of process `name`.
    public func pid(_ name: String) -> Int32? { processes.first { $0.name == name }?.process.processIdentifier }

    @discardableResult
    private func spawn(_ executable: String, _ name: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: logPath(name), contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath(name)))
        process.standardOutput = log
        process.standardError = log
        process.standardInput = Pipe()  // closed if this process dies
        try process.run()
        processes.append((name, process))
        return process
    }

    private func endpoint(of name: String, prefix: String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = (try? String(contentsOfFile: logPath(name), encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count))
            }
            if let p = processes.first(where: { $0.name == name })?.process, !p.isRunning {
                throw ClusterError("\(name) exited (status \(p.terminationStatus)); see \(logPath(name)):\n\(text.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ClusterError("\(name) did not start within 60 s; see \(logPath(name))")
    }

    /// Waits until `workers` workers have joined and every shard is loaded.
    public func waitUntilReady(workers: Int, timeout: Duration = .seconds(1800), logger: Logger) async throws {
        let client = try await ClusterClient.connect(coordinatorEndpoint, logger: logger)
        defer { Task { await client.close() } }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = try? await client.coordinator.status(), s.workers.count >= workers, s.unassignedShards == 0, s.movingShards == 0 { return }
            for (name, p) in processes where !p.isRunning {
                throw ClusterError("\(name) exited (status \(p.terminationStatus)); see \(logPath(name))")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ClusterError("the cluster was not ready within \(timeout)")
    }

    /// Stops every process with SIGTERM (SIGKILL after 20 s) and waits for them.
    public func stop() {
        for (_, p) in processes.reversed() where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(20)
        for (_, p) in processes {
            while p.isRunning && Date() < deadline { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
    }
}
