/// A remote call that did not return a result: what went wrong, on which node, for which actor
/// and method.
public struct RemoteCallError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: UInt8 {
            case remoteThrew = 1, timedOut, unreachable, refused, actorNotFound, nodeRestarted
            case invalidInvocation, shutdown, noSession, malformedReply, notAuthorized
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        init?(rawValue: UInt8) {
            guard let b = Base(rawValue: rawValue) else { return nil }
            base = b
        }

        var rawValue: UInt8 { base.rawValue }

        /// The remote method threw; `message` and `remoteErrorType` describe the error.
        public static let remoteThrew = Code(.remoteThrew)
        /// No answer within the call's timeout (`ClusterActorSystem.callTimeout`).
        public static let timedOut = Code(.timedOut)
        /// The node stopped answering heartbeats (crashed, killed, network gone).
        public static let unreachable = Code(.unreachable)
        /// The node refused this node: different cluster, protocol version or credentials.
        public static let refused = Code(.refused)
        /// No actor of that name lives on the node.
        public static let actorNotFound = Code(.actorNotFound)
        /// The node was restarted since the actor's id was obtained: resolve it again.
        public static let nodeRestarted = Code(.nodeRestarted)
        /// The callee could not decode the call (method unknown to it, bad arguments: version skew).
        public static let invalidInvocation = Code(.invalidInvocation)
        /// This node's actor system is shutting down.
        public static let shutdown = Code(.shutdown)
        /// The callee has no handshake from this connection (it restarted, or forgot us).
        static let noSession = Code(.noSession)
        /// The reply could not be decoded as the declared result type.
        public static let malformedReply = Code(.malformedReply)
        /// The caller's key does not hold a role the method needs; `message` says which
        /// ("not authorized: CoordinatorActor.drain(_:) needs role admin").
        public static let notAuthorized = Code(.notAuthorized)

        public var description: String {
            switch base {
            case .remoteThrew: "remote error"
            case .timedOut: "timed out"
            case .unreachable: "node unreachable"
            case .refused: "refused"
            case .actorNotFound: "actor not found"
            case .nodeRestarted: "node restarted"
            case .invalidInvocation: "invalid invocation"
            case .shutdown: "shutting down"
            case .noSession: "no session"
            case .malformedReply: "malformed reply"
            case .notAuthorized: "not authorized"
            }
        }
    }

    public var code: Code
    /// The node the call was for (its endpoint when the node's identity was never learnt).
    public var node: String
    /// The actor's name on that node.
    public var actor: String
    /// The method, demangled ("ProbeActor.ping()").
    public var method: String
    /// What happened, in words.
    public var message: String
    /// The Swift type of the error the remote method threw (for `.remoteThrew`), e.g. "Shard.NotFound".
    public var remoteErrorType: String?

    public init(code: Code, node: String, actor: String, method: String, message: String, remoteErrorType: String? = nil) {
        self.code = code
        self.node = node
        self.actor = actor
        self.method = method
        self.message = message
        self.remoteErrorType = remoteErrorType
    }

    public var description: String {
        if code == .notAuthorized { return message }  // "not authorized: <method> needs role <r>"
        let type = remoteErrorType.map { " [\($0)]" } ?? ""
        // A failure of the connection itself (no actor was called yet): the endpoint and why.
        if actor.isEmpty && method == "connect" && !node.isEmpty { return "cannot reach \(node): \(code): \(message)\(type)" }
        return "remote call \(method) to \(actor) on \(node): \(code): \(message)\(type)"
    }
}
