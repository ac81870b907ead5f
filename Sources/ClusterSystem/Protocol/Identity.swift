import WireFormat

/// A ChurnGrid process in the cluster: its name and the endpoint its ROUTER listens on.
/// The incarnation changes on every start, so a restarted node is never mistaken for the old one.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, WireCodable {
    /// Operator-facing name (e.g. "worker-2").
    public var name: String
    /// Where its calls are received (e.g. "tcp://10.0.0.7:7401").
    public var endpoint: String
    /// Random per process start.
    public var incarnation: UInt64

    public init(name: String, endpoint: String, incarnation: UInt64) {
        self.name = name
        self.endpoint = endpoint
        self.incarnation = incarnation
    }

    public var description: String { "\(name)@\(endpoint)#\(String(incarnation, radix: 16))" }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(endpoint); w.write(incarnation)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); endpoint = try r.read(); incarnation = try r.read()
    }
}

/// A distributed actor's address: the node hosting it and its name there ("shard/517",
/// "coordinator"). Resolvable from any node that knows the node's endpoint.
public struct ActorID: Hashable, Sendable, CustomStringConvertible, WireCodable {
    public var node: NodeID
    public var name: String

    public init(node: NodeID, name: String) {
        self.node = node
        self.name = name
    }

    /// The id of shard `shard`'s actor on `node`.
    public static func shard(_ shard: Int, on node: NodeID) -> ActorID {
        ActorID(node: node, name: "shard/\(shard)")
    }

    public var description: String { "\(name) on \(node)" }

    public func encode(to w: inout WireWriter) {
        w.write(node); w.write(name)
    }

    public init(from r: inout WireReader) throws(WireError) {
        node = try r.read(); name = try r.read()
    }
}
