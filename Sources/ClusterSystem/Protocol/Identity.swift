import WireFormat

/// A ChurnGrid process in the cluster: its name, the endpoint its ROUTER listens on ("" for a
/// pure client, which listens nowhere) and its CURVE public key ("" on a cluster without CURVE),
/// which is what others need to open an authenticated link to it. The incarnation changes on
/// every start, so a restarted node is never mistaken for the old one.
public struct NodeID: Hashable, Sendable, CustomStringConvertible, WireCodable {
    /// Operator-facing name (e.g. "worker-2").
    public var name: String
    /// Where its calls are received (e.g. "tcp://10.0.0.7:7401").
    public var endpoint: String
    /// Random per process start.
    public var incarnation: UInt64
    /// Its CURVE public key in Z85 ("" without CURVE).
    public var publicKey: String

    public init(name: String, endpoint: String, incarnation: UInt64, publicKey: String = "") {
        self.name = name
        self.endpoint = endpoint
        self.incarnation = incarnation
        self.publicKey = publicKey
    }

    public var description: String { "\(name)@\(endpoint)#\(String(incarnation, radix: 16))" }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(endpoint); w.write(incarnation); w.write(publicKey)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        name = try r.read(); endpoint = try r.read(); incarnation = try r.read(); publicKey = try r.read()
        guard name.utf8.count <= 128, endpoint.utf8.count <= 256, publicKey.isEmpty || publicKey.utf8.count == 40 else {
            throw WireError(offset: at, expected: "a node id (name ≤ 128 bytes, endpoint ≤ 256, key empty or 40 Z85 characters)")
        }
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
