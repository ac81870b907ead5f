import ArgumentParser
import ChurnHTTP
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
        subcommands: [RPC.self, Queries.self, HTTP.self]
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

        @Flag(help: "Both nodes with their own CURVE keys (encrypted, authenticated) instead of plain TCP; the raw reference uses CURVE too.")
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
            var result = try await RPCBenchmark.run(client: client, server: server.endpoint, serverKey: serverKey, rawEcho: server.rawEcho ?? "", rawCurve: clientKey?.keys, options: options) { line in
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

extension BenchCommand {
    /// `churngrid bench http`: open-loop load on the coordinator's HTTP API.
    struct HTTP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "http",
            abstract: "Open-loop load on the HTTP API (live scores or batches of random ids): latency from each request's scheduled send, failures included; the bearer token comes from CHURNGRID_TOKEN.")

        @Option(help: "The API's base URL (http://HOST:PORT).")
        var url: String

        @Option(help: "Requests per second.")
        var rate: Double = 1000

        @Option(help: "Seconds to run.")
        var duration: Double = 10

        @Option(help: "Keep-alive connections (requests pipeline on each).")
        var connections = 32

        @Option(help: "Subscribers in the base (ids 1000000000 …).")
        var subscribers = 1_000_000

        @Option(help: "Ids per request: 0 asks GET /v1/subscribers/{id}/score, more POSTs /v1/scores:batch.")
        var batch = 0

        @Option(help: "Seed of the random ids.")
        var seed: UInt64 = 1

        @Flag(help: "Send the token (CHURNGRID_TOKEN) to a host that is not a loopback address, in clear (this load generator speaks plain HTTP).")
        var insecure = false

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            guard url.hasPrefix("http://"), let (host, port) = APIServer.Configuration.parse(address: String(url.dropFirst(7).split(separator: "/").first ?? "")) else {
                throw ValidationError("--url: http://HOST:PORT")
            }
            let loopback = isLoopbackHost(host)
            if !(ProcessInfo.processInfo.environment["CHURNGRID_TOKEN"] ?? "").isEmpty, !loopback, !insecure {
                throw ValidationError("--url \(url) is not a loopback address: the token (CHURNGRID_TOKEN) would cross the network in clear over plain HTTP. Run it on the coordinator's machine, or give --insecure to accept that.")
            }
            guard rate > 0, duration > 0, connections > 0, subscribers > 0, (0...10_000).contains(batch) else { throw ValidationError("rate, duration, connections and subscribers are positive; batch 0–10000") }
            guard rate * duration <= 100_000_000 else { throw ValidationError("at most 100000000 requests per run (rate × duration)") }
            let token = ProcessInfo.processInfo.environment["CHURNGRID_TOKEN"] ?? ""
            let auth = token.isEmpty ? "" : "Authorization: Bearer \(token)\r\n"
            let (n, batch, seed) = (UInt64(subscribers), batch, seed)
            let request: @Sendable (Int) -> [UInt8] = { i in
                // A cheap, reproducible random id per request (splitmix64 of the index).
                func id(_ k: UInt64) -> UInt64 {
                    var z = (UInt64(i) &* 0x9E37_79B9_7F4A_7C15) &+ k &+ seed
                    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                    return 1_000_000_000 + (z ^ (z >> 31)) % n
                }
                if batch == 0 {
                    return Array("GET /v1/subscribers/\(id(0))/score HTTP/1.1\r\nHost: \(host)\r\n\(auth)\r\n".utf8)
                }
                let body = "{\"subscriber_ids\":[" + (0..<batch).map { String(id(UInt64($0) &* 7919)) }.joined(separator: ",") + "]}"
                return Array("POST /v1/scores:batch HTTP/1.1\r\nHost: \(host)\r\n\(auth)Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
            }
            let result = try await HTTPLoadGenerator.run(.init(host: host, port: port, rate: rate, duration: try SecondsFlag.duration(duration, "--duration"),
                                                              connections: connections, request: request))
            if json {
                try printJSON(result)
            } else {
                print(String(format: "%d requests at %.0f/s: %d ok, %d failed; achieved %.0f/s; latency from the scheduled send p50 %.0f µs, p90 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs",
                             result.requests, result.rate, result.ok, result.failed, result.achieved_per_second, result.p50_us, result.p90_us, result.p99_us, result.p999_us, result.max_us))
            }
        }
    }
}
