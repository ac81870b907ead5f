import ClusterSystem
import Distributed
import WireFormat

/// A distributed actor for checking a cluster's transport: empty calls, payloads both ways,
/// remote throws, slow calls and calls back across nodes. Every probe node hosts one, named
/// `ProbeActor.name`; the multi-process tests and `churngrid bench rpc` call it.
public distributed actor ProbeActor {
    public typealias ActorSystem = ClusterActorSystem

    /// The name every probe node gives its probe.
    public static let name = "probe"

    /// An empty call (latency).
    public distributed func ping() {}

    /// The hosting node's name.
    public distributed func nodeName() -> String {
        actorSystem.node.name
    }

    /// Returns its argument (bulk both ways).
    public distributed func echo(_ bytes: BulkArray<UInt8>) -> BulkArray<UInt8> {
        bytes
    }

    /// Sums a bulk column (bulk one way).
    public distributed func sum(_ values: BulkArray<Float>) -> Double {
        values.elements.withUnsafeBufferPointer { p in
            var s = 0.0
            for v in p { s += Double(v) }
            return s
        }
    }

    /// Throws a `ProbeError` carrying `message`.
    public distributed func fail(_ message: String) throws {
        throw ProbeError(message: message)
    }

    /// Waits, then returns how long it waited.
    public distributed func sleep(milliseconds: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return milliseconds
    }

    /// Calls the probe of the node at `endpoint` (a call made while serving one: both directions)
    /// and returns that node's name.
    public distributed func askNode(at endpoint: String) async throws -> String {
        let other = try await actorSystem.connect(to: endpoint)
        let probe = try ProbeActor.resolve(id: ActorID(node: other, name: Self.name), using: actorSystem)
        return try await probe.nodeName()
    }
}

/// The error `ProbeActor.fail` throws.
public struct ProbeError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "probe failure: \(message)" }
}

extension ProbeActor: AccessControlled {
    /// Transport checks and benchmarks: any authenticated caller.
    public static let access: [String: Set<Role>] = [
        "ping()": Role.readers,
        "nodeName()": Role.readers,
        "echo(_:)": Role.readers,
        "sum(_:)": Role.readers,
        "fail(_:)": Role.readers,
        "sleep(milliseconds:)": Role.readers,
        "askNode(at:)": Role.readers,
    ]
}
