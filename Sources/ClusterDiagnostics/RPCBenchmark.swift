import ClusterSystem
import WireFormat
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// `churngrid bench rpc`: the distributed call against raw libzmq, measured side by side in the
/// same run against the same server process.
public enum RPCBenchmark {
    /// What to measure.
    public struct Options: Sendable {
        /// Sequential round trips for the latency percentiles (each side).
        public var latencyCalls = 100_000
        /// Calls for the pipelined throughput (each side).
        public var pipelinedCalls = 300_000
        /// Calls kept in flight for the pipelined throughput.
        public var inFlight = 512
        /// Bulk calls of `bulkFloats` Float32 each.
        public var bulkCalls = 300
        public var bulkFloats = 1_000_000
        /// Bulk calls in flight.
        public var bulkInFlight = 4

        public init() {}
    }

    /// The figures; raw_* are libzmq's DEALER→ROUTER echo, call_* ChurnGrid's distributed call.
    public struct Result: Codable, Sendable {
        /// With CURVE: how long a node whose key the server does not list waits for its refusal
        /// (a fresh node per attempt, connect to error), median and worst of the attempts.
        public var refusal_p50_ms: Double?
        public var refusal_max_ms: Double?
        public var raw_p50_us: Double
        public var raw_p99_us: Double
        public var raw_p999_us: Double
        public var call_p50_us: Double
        public var call_p99_us: Double
        public var call_p999_us: Double
        /// call p50 / raw p50.
        public var p50_ratio: Double
        public var raw_messages_per_second: Double
        public var calls_per_second: Double
        public var raw_bulk_gb_per_second: Double
        public var bulk_gb_per_second: Double
        public var latency_calls: Int
        public var pipelined_calls: Int
        public var in_flight: Int
        public var bulk_calls: Int
        public var bulk_bytes_per_call: Int
    }

    /// Runs every measurement against a probe node (`ProbeNode` with its raw echo).
    /// - Parameters:
    ///   - client: this process's node.
    ///   - server: the probe node's call endpoint; `rawEcho` its raw echo endpoint.
    ///   - progress: called with a line per finished step.
    /// Times the refusal of `attempts` nodes with unlisted keys at the CURVE server `server`.
    /// - Returns: the milliseconds each waited for its `.refused` error (sorted).
    public static func refusals(server: String, serverKey: String, attempts: Int) async throws -> [Double] {
        var times: [Double] = []
        for i in 0..<attempts {
            var configuration = ClusterActorSystem.Configuration(name: "stranger-\(i)", listen: nil)
            configuration.logger.logLevel = .critical
            configuration.options.curve = try CurveKeyPair.generate()
            let stranger = try await ClusterActorSystem(configuration)
            let t = ContinuousClock.now
            do {
                _ = try await stranger.connect(to: server, publicKey: serverKey, timeout: .seconds(10))
            } catch let error as RemoteCallError where error.code == .refused {
                times.append(micros(ContinuousClock.now - t) / 1000)
            }
            await stranger.shutdown()
        }
        return times.sorted()
    }

    /// With CURVE (`rawCurve`: this side's keys), the raw reference is a CURVE client of the echo
    /// (whose key is `serverKey`), so both sides of the comparison pay the cipher.
    public static func run(client: ClusterActorSystem, server: String, serverKey: String = "", rawEcho: String, rawCurve: CurveKeyPair? = nil, options: Options,
                           progress: @Sendable (String) -> Void) async throws -> Result {
        let raw = RawTarget(endpoint: rawEcho, curve: rawCurve, serverKey: serverKey)
        let node = try await client.connect(to: server, publicKey: serverKey)
        let probe = try ProbeActor.resolve(id: ActorID(node: node, name: ProbeActor.name), using: client)

        // Latency: warm both paths, then measure one after the other.
        var rawLatency = try await onThread { try rawRoundTrips(raw, count: options.latencyCalls) }
        for _ in 0..<2_000 { try await probe.ping() }
        var callLatency = [Double]()
        callLatency.reserveCapacity(options.latencyCalls)
        let clock = ContinuousClock()
        for _ in 0..<options.latencyCalls {
            let t = clock.now
            try await probe.ping()
            callLatency.append(micros(clock.now - t))
        }
        rawLatency.sort()
        callLatency.sort()
        progress("latency: raw p50 \(fmt(rawLatency.pct(0.5))) µs, call p50 \(fmt(callLatency.pct(0.5))) µs")

        // Pipelined: the same number in flight on both.
        let rawRate = try await onThread { try rawPipelined(raw, count: options.pipelinedCalls, inFlight: options.inFlight, size: 16) }
        let callRate = try await pipelined(options.pipelinedCalls, tasks: options.inFlight) { try await probe.ping() }
        progress("pipelined: raw \(Int(rawRate)) msgs/s, calls \(Int(callRate)) calls/s")

        // Bulk: 1M Float32 per call, acknowledged.
        let bytes = options.bulkFloats * 4
        let rawBulk = try await onThread { try rawPipelined(raw, count: options.bulkCalls, inFlight: options.bulkInFlight, size: bytes) } * Double(bytes) / 1e9
        let column = BulkArray((0..<options.bulkFloats).map { Float($0 % 1000) })
        let callBulk = try await pipelined(options.bulkCalls, tasks: options.bulkInFlight) { _ = try await probe.sum(column) } * Double(bytes) / 1e9
        progress("bulk: raw \(fmt(rawBulk)) GB/s, calls \(fmt(callBulk)) GB/s")

        return Result(
            raw_p50_us: rawLatency.pct(0.5), raw_p99_us: rawLatency.pct(0.99), raw_p999_us: rawLatency.pct(0.999),
            call_p50_us: callLatency.pct(0.5), call_p99_us: callLatency.pct(0.99), call_p999_us: callLatency.pct(0.999),
            p50_ratio: callLatency.pct(0.5) / rawLatency.pct(0.5),
            raw_messages_per_second: rawRate, calls_per_second: callRate,
            raw_bulk_gb_per_second: rawBulk, bulk_gb_per_second: callBulk,
            latency_calls: options.latencyCalls, pipelined_calls: options.pipelinedCalls, in_flight: options.inFlight,
            bulk_calls: options.bulkCalls, bulk_bytes_per_call: bytes)
    }

    /// Calls per second with `tasks` callers sharing `total` calls.
    private static func pipelined(_ total: Int, tasks: Int, _ call: @escaping @Sendable () async throws -> Void) async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<tasks {
                let n = total / tasks + (t < total % tasks ? 1 : 0)
                group.addTask { for _ in 0..<n { try await call() } }
            }
            try await group.waitForAll()
        }
        return Double(total) / seconds(ContinuousClock.now - start)
    }

    /// The raw echo and how to reach it.
    struct RawTarget: Sendable {
        let endpoint: String
        let curve: CurveKeyPair?
        let serverKey: String
    }

    private static func rawSocket(_ target: RawTarget) throws -> (ZMQContext, ZMQSocket) {
        let context = try ZMQContext(ioThreads: 1)
        let socket = try ZMQSocket(context, .dealer)
        try socket.set(.linger, 0)
        if let curve = target.curve { try socket.makeCurveClient(curve, serverKey: target.serverKey) }
        try socket.connect(target.endpoint)
        return (context, socket)
    }

    private static func rawRoundTrips(_ endpoint: RawTarget, count: Int) throws -> [Double] {
        let (context, socket) = try rawSocket(endpoint)
        defer { socket.close(); _ = context }
        let message = [UInt8](repeating: 7, count: 16)
        for _ in 0..<2_000 {
            try socket.send([message])
            _ = try socket.receive()
        }
        var samples = [Double]()
        samples.reserveCapacity(count)
        let clock = ContinuousClock()
        for _ in 0..<count {
            let t = clock.now
            try socket.send([message])
            _ = try socket.receive()
            samples.append(micros(clock.now - t))
        }
        return samples
    }

    private static func rawPipelined(_ endpoint: RawTarget, count: Int, inFlight: Int, size: Int) throws -> Double {
        let (context, socket) = try rawSocket(endpoint)
        defer { socket.close(); _ = context }
        let payload = [UInt8](repeating: 7, count: size)
        let start = ContinuousClock.now
        var sent = 0, received = 0
        while sent < min(inFlight, count) {
            try socket.send([payload])
            sent += 1
        }
        while received < count {
            _ = try socket.receive()
            received += 1
            if sent < count {
                try socket.send([payload])
                sent += 1
            }
        }
        return Double(count) / seconds(ContinuousClock.now - start)
    }
}

extension Array where Element == Double {
    func pct(_ p: Double) -> Double {
        isEmpty ? 0 : self[Swift.min(count - 1, Int(Double(count) * p))]
    }
}

private func micros(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

private func fmt(_ v: Double) -> String {
    "\((v * 100).rounded() / 100)"
}

/// Runs blocking work (raw libzmq calls) on a thread of its own, never on the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        let job = Unmanaged.passRetained(Job { c.resume(with: Result { try body() }) })
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, job.toOpaque())
        pthread_detach(thread)
    }
}

private final class Job {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
