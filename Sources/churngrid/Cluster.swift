import ArgumentParser
import ClusterDiagnostics
import ClusterSystem
import Foundation
import Logging
import Synchronization
import ZeroMQ

/// Options every cluster process shares.
struct NodeOptions: ParsableArguments {
    @Option(help: "Node name shown in logs and status.")
    var name: String = "node"

    @Option(help: "Endpoint to listen on for calls (tcp://HOST:PORT; port * picks a free one).")
    var listen: String = "tcp://127.0.0.1:*"

    @Option(help: "Cluster name; nodes of other clusters are refused.")
    var cluster: String = "churngrid"

    @OptionGroup var security: ListenerSecurityOptions

    @Option(help: "Milliseconds of silence after which a node is unreachable.")
    var unreachableAfterMs: Int = 2000

    @Option(help: .hidden)
    var protocolVersion: UInt32 = ClusterActorSystem.protocolVersion

    func configuration(logger: Logger) throws -> ClusterActorSystem.Configuration {
        var c = ClusterActorSystem.Configuration(name: name, listen: listen, cluster: cluster, logger: logger)
        c.protocolVersion = protocolVersion
        c.options.unreachableAfter = .milliseconds(unreachableAfterMs)
        try security.apply(to: &c)
        return c
    }
}

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Cluster transport tools: CURVE keys and probe nodes.",
        subcommands: [Keys.self, ProbeNodeCommand.self]
    )

    struct ProbeNodeCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "probe-node",
            abstract: "Run a node hosting a probe actor (transport checks and `bench rpc`) until SIGTERM or stdin closes.")

        @OptionGroup var node: NodeOptions

        @Flag(help: "Also serve a raw libzmq echo (the benchmark's reference).")
        var rawEcho = false

        func run() async throws {
            let logger = makeLogger("churngrid.probe")
            let probe = try await ProbeNode(try node.configuration(logger: logger), rawEcho: rawEcho)
            print("listening \(probe.system.node.endpoint) \(String(probe.system.node.incarnation, radix: 16))")
            if let raw = probe.rawEchoEndpoint { print("raw-echo \(raw)") }
            fflush(nil)  // the parent reads these lines before anything else
            let reloads = probe.system.reloadingAuthorizedKeysOnHangup(node.security.authorizedKeys)
            defer { reloads?.cancel() }
            await waitForStopRequest()
            await probe.shutdown()
        }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks against their references, measured in the same run.",
        subcommands: [RPC.self, Queries.self]
    )

    struct RPC: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Distributed calls between two processes vs a raw libzmq DEALER/ROUTER echo: latency, pipelined calls/s, bulk GB/s.")

        @Option(help: "Sequential calls for the latency percentiles.")
        var calls = 100_000

        @Option(help: "Calls for the pipelined rate.")
        var pipelined = 300_000

        @Option(help: "Calls in flight for the pipelined rate (the raw echo keeps as many in flight).")
        var inFlight = 512

        @Option(help: "Bulk calls (1M Float32 each).")
        var bulkCalls = 300

        @Flag(help: "Print one JSON object.")
        var json = false

        @Flag(help: "Both nodes with their own CURVE keys (encrypted, authenticated) instead of plain TCP; the raw reference stays plain.")
        var curve = false

        func run() async throws {
            let logger = makeLogger("churngrid.bench")
            var serverArguments = ["cluster", "probe-node", "--name", "bench-server", "--raw-echo"]
            var clientKey: NodeKeyFile?, serverKey = ""
            if curve {
                let directory = ".churngrid/bench/keys"
                try? FileManager.default.removeItem(atPath: directory)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let server = try NodeKeyFile.generate(name: "bench-server"), client = try NodeKeyFile.generate(name: "bench-client")
                try server.write(to: directory)
                try "reader \(client.keys.publicKey) bench-client\n".write(toFile: "\(directory)/authorized_keys", atomically: true, encoding: .utf8)
                serverArguments += ["--curve-keys", "\(directory)/bench-server.key", "--authorized-keys", "\(directory)/authorized_keys"]
                clientKey = client
                serverKey = server.keys.publicKey
            }
            let server = try ChildNode.start(arguments: serverArguments)
            defer { server.stop() }
            var configuration = ClusterActorSystem.Configuration(name: "bench-client", listen: nil, logger: logger)
            configuration.options.curve = clientKey?.keys
            configuration.options.maxInFlightPerPeer = max(1024, inFlight)
            let client = try await ClusterActorSystem(configuration)
            var options = RPCBenchmark.Options()
            options.latencyCalls = calls
            options.pipelinedCalls = pipelined
            options.inFlight = inFlight
            options.bulkCalls = bulkCalls
            let json = json
            var result = try await RPCBenchmark.run(client: client, server: server.endpoint, serverKey: serverKey, rawEcho: server.rawEcho ?? "", options: options) { line in
                if !json { print(line) }
            }
            if curve {
                let times = try await RPCBenchmark.refusals(server: server.endpoint, serverKey: serverKey, attempts: 20)
                result.refusal_p50_ms = times.isEmpty ? nil : times[times.count / 2]
                result.refusal_max_ms = times.last
                if !json { print("refusal of an unlisted key: p50 \(result.refusal_p50_ms ?? -1) ms, max \(result.refusal_max_ms ?? -1) ms (\(times.count) of 20 refused)") }
            }
            await client.shutdown()
            if json {
                try printJSON(result)
            } else {
                func r(_ v: Double) -> String { String(format: "%.2f", v) }
                print("""

                                         raw libzmq      distributed call   ratio
                latency p50 (µs)         \(r(result.raw_p50_us).padding(16))\(r(result.call_p50_us).padding(19))\(r(result.call_p50_us / result.raw_p50_us))×
                latency p99 (µs)         \(r(result.raw_p99_us).padding(16))\(r(result.call_p99_us).padding(19))\(r(result.call_p99_us / result.raw_p99_us))×
                latency p99.9 (µs)       \(r(result.raw_p999_us).padding(16))\(r(result.call_p999_us).padding(19))\(r(result.call_p999_us / result.raw_p999_us))×
                pipelined (per second)   \(String(Int(result.raw_messages_per_second)).padding(16))\(String(Int(result.calls_per_second)).padding(19))\(r(result.calls_per_second / result.raw_messages_per_second))×
                bulk 4 MB (GB/s)         \(r(result.raw_bulk_gb_per_second).padding(16))\(r(result.bulk_gb_per_second).padding(19))\(r(result.bulk_gb_per_second / result.raw_bulk_gb_per_second))×
                """)
            }
        }
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}

/// A `churngrid` child process running a node; its first stdout lines give its endpoints.
final class ChildNode {
    let process: Process
    let endpoint: String
    let rawEcho: String?

    private init(process: Process, endpoint: String, rawEcho: String?) {
        self.process = process
        self.endpoint = endpoint
        self.rawEcho = rawEcho
    }

    static func start(arguments: [String]) throws -> ChildNode {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = Pipe()  // closed when this process exits: the child then stops too
        try process.run()
        var text = ""
        var endpoint: String?, raw: String?
        while endpoint == nil || (arguments.contains("--raw-echo") && raw == nil) {
            let data = out.fileHandleForReading.availableData
            guard !data.isEmpty else { throw ValidationError("the probe node exited before listening") }
            text += String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                if words.first == "listening", words.count > 1 { endpoint = String(words[1]) }
                if words.first == "raw-echo", words.count > 1 { raw = String(words[1]) }
            }
        }
        return ChildNode(process: process, endpoint: endpoint!, rawEcho: raw)
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

private let signalled = Atomic<Bool>(false)

/// Returns after SIGTERM or SIGINT, or once standard input is closed (the parent is gone).
func waitForStopRequest() async {
    signal(SIGTERM) { _ in signalled.store(true, ordering: .relaxed) }
    signal(SIGINT) { _ in signalled.store(true, ordering: .relaxed) }
    let stdinClosed = watchStandardInput()
    while !signalled.load(ordering: .relaxed) && !stdinClosed.isSet {
        try? await Task.sleep(for: .milliseconds(50))
    }
}
