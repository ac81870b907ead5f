import Logging
import ZeroMQ

extension ClusterActorSystem {
    /// The wire protocol version this build speaks; nodes with another version are refused.
    public static let protocolVersion: UInt32 = 1

    /// How a node takes part in the cluster.
    public struct Configuration: Sendable {
        /// Operator-facing node name ("coordinator", "worker-2").
        public var name: String
        /// Where this node's ROUTER listens for calls (`tcp://127.0.0.1:*` picks a free port);
        /// nil for a pure client (the CLI, an event producer), which opens no listening socket:
        /// answers come back on the connections it opened, so it works behind NAT.
        public var listen: String?
        /// The endpoint other nodes should dial, when it differs from the bound one (a wildcard
        /// interface, NAT). Default: the bound endpoint.
        public var advertise: String?
        /// Nodes only talk to nodes of the same cluster name.
        public var cluster: String
        /// Protocol version announced in the handshake. Leave the default; tests change it to
        /// check that a mismatched node is refused.
        public var protocolVersion: UInt32 = ClusterActorSystem.protocolVersion
        /// Security and limits.
        public var options: Options
        /// Where the system logs (structured, swift-log).
        public var logger: Logger

        public init(name: String, listen: String? = "tcp://127.0.0.1:*", cluster: String = "churngrid", options: Options = Options(), logger: Logger? = nil) {
            self.name = name
            self.listen = listen
            self.cluster = cluster
            self.options = options
            self.logger = logger ?? Logger(label: "churngrid.cluster")
        }
    }

    /// Timeouts, heartbeats, backpressure limits and CURVE.
    public struct Options: Sendable {
        /// How long a call waits for its reply unless the caller sets `ClusterActorSystem.$callTimeout`.
        public var callTimeout: Duration = .seconds(30)
        /// How often a caller pings each node it is connected to.
        public var heartbeatInterval: Duration = .milliseconds(200)
        /// A node silent for this long is unreachable: its pending calls fail with `.unreachable`.
        public var unreachableAfter: Duration = .seconds(2)
        /// Calls on the wire to one node at a time; further calls wait (backpressure on the caller).
        public var maxInFlightPerPeer: Int = 1024
        /// Inbound calls executed at the same time (a fixed set of tasks, never one task per message).
        public var inboundConcurrency: Int = 16
        /// Inbound calls queued or executing before this node stops reading from its peers (libzmq
        /// then holds further messages and TCP pushes back on the callers).
        public var inboundQueueLimit: Int = 4096
        /// Largest message accepted; a peer sending a larger one is disconnected by libzmq. The
        /// default holds the largest real message with room to spare (a shard's profiles streamed
        /// in a handoff, or a model's bytes in an assignment); raise it for very wide schemas.
        public var maxMessageBytes: Int = ClusterActorSystem.Options.defaultMaxMessageBytes
        public static let defaultMaxMessageBytes = 256 << 20
        /// This node's own CURVE key pair. With it, every connection is CURVE-encrypted and
        /// authenticated: this node dials others with their public key (`NodeID.publicKey`),
        /// and admits only the keys in `authorizedKeys`.
        public var curve: CurveKeyPair?
        /// Who may connect to this node and what each may call (`ROLE PUBLIC_KEY NAME` lines).
        /// With `curve` and no list, nobody can connect (a pure client needs none).
        public var authorizedKeys: AuthorizedKeys?

        public init() {}
    }
}
