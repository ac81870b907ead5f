import ClusterDiagnostics
import ClusterSystem
import Logging
import TestSupport
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A `churngrid cluster probe-node` child process and what it printed.
struct ProbeProcess {
    let child: ChildProcess
    let endpoint: String

    /// Starts a probe node named `name` with extra command-line options.
    static func start(_ name: String, _ options: [String] = []) async throws -> ProbeProcess {
        let log = "/tmp/churngrid-test-\(getpid())-\(name)-\(UInt32.random(in: 0...UInt32.max)).log"
        let child = try ChildProcess(try churngridExecutable(), ["cluster", "probe-node", "--name", name, "--unreachable-after-ms", "3000"] + options, logPath: log)
        let line = try await child.line(startingWith: "listening ")
        return ProbeProcess(child: child, endpoint: String(line.split(separator: " ")[1]))
    }

    /// Waits until the node's log contains `text`.
    func waitForLog(_ text: String, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let late = ContinuousClock.now >= deadline  // looked at once more after the deadline
            if child.log.contains(text) { return true }
            if late { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// This test process's own node, with a probe of its own so other nodes can call back.
func localNode(_ name: String, curve: CurveKeyPair? = nil, authorized: AuthorizedKeys? = nil, configure: (inout ClusterActorSystem.Options) -> Void = { _ in }) async throws -> (ClusterActorSystem, ProbeActor) {
    var logger = Logger(label: "test.\(name)")
    logger.logLevel = .warning
    var configuration = ClusterActorSystem.Configuration(name: name, logger: logger)
    configuration.options.unreachableAfter = .seconds(3)  // generous: CI machines are busy
    configuration.options.curve = curve
    configuration.options.authorizedKeys = authorized
    configure(&configuration.options)
    let system = try await ClusterActorSystem(configuration)
    let probe = system.withActorName(ProbeActor.name) { ProbeActor(actorSystem: system) }
    return (system, probe)
}

/// The probe of the node at `endpoint`, after a handshake.
func probe(at endpoint: String, key: String = "", from system: ClusterActorSystem) async throws -> ProbeActor {
    let node = try await system.connect(to: endpoint, publicKey: key)
    return try ProbeActor.resolve(id: ActorID(node: node, name: ProbeActor.name), using: system)
}

/// Runs `body` and returns the `RemoteCallError` it threw (nil if it threw none or another error).
func remoteError(_ body: () async throws -> Void) async -> RemoteCallError? {
    do {
        try await body()
        return nil
    } catch let e as RemoteCallError {
        return e
    } catch {
        return nil
    }
}
