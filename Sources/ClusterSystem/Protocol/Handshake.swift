import WireFormat

/// What two nodes say before any call crosses between them.
public enum HandshakeMessage: Sendable, Equatable, WireCodable {
    /// The connecting side introduces itself.
    case hello(protocolVersion: UInt32, cluster: String, node: NodeID)
    /// The accepting side agrees and introduces itself.
    case welcome(protocolVersion: UInt32, node: NodeID)
    /// The accepting side (`node`) refuses, saying why.
    case refused(reason: String, node: NodeID)

    public func encode(to w: inout WireWriter) {
        switch self {
        case let .hello(v, cluster, node): w.write(UInt8(1)); w.write(v); w.write(cluster); w.write(node)
        case let .welcome(v, node): w.write(UInt8(2)); w.write(v); w.write(node)
        case let .refused(reason, node): w.write(UInt8(3)); w.write(reason); w.write(node)
        }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        switch try r.read(UInt8.self) {
        case 1: self = .hello(protocolVersion: try r.read(), cluster: try r.read(), node: try r.read())
        case 2: self = .welcome(protocolVersion: try r.read(), node: try r.read())
        case 3: self = .refused(reason: try r.read(), node: try r.read())
        case let tag: throw WireError(offset: at, expected: "a handshake message tag 1–3, found \(tag)")
        }
    }
}

/// The handshake between this node and one peer, as a pure state machine: feed it events, do
/// what the returned action says. No sockets or clocks inside, so every path is testable.
public struct Handshake: Sendable {
    /// This side's settings.
    public struct Local: Sendable {
        public var node: NodeID
        public var cluster: String
        public var protocolVersion: UInt32

        public init(node: NodeID, cluster: String, protocolVersion: UInt32) {
            self.node = node
            self.cluster = cluster
            self.protocolVersion = protocolVersion
        }

        /// The oldest version this side still speaks: the previous one, so a cluster upgrades one
        /// node at a time (old and new nodes talk in the older version meanwhile).
        public var minimumProtocolVersion: UInt32 { max(1, protocolVersion &- 1) }

        var versions: String {
            minimumProtocolVersion == protocolVersion ? "\(protocolVersion)" : "\(minimumProtocolVersion)–\(protocolVersion)"
        }
    }

    /// How the connection a hello came on was authenticated.
    public enum Credentials: Sendable, Equatable {
        /// No CURVE on this node: nobody is authenticated and every caller holds every role.
        case insecure
        /// The CURVE key the connection was made with (the ZAP handler admitted it), and what the
        /// authorized keys say of it (nil: not listed any more).
        case key(String, AuthorizedKeys.Grant?)
    }

    public enum State: Sendable, Equatable {
        case idle
        case helloSent
        case established(peer: NodeID)
        case failed(reason: String)
    }

    /// What the caller must do next.
    public enum Action: Sendable, Equatable {
        case send(HandshakeMessage)
        /// Send this, then treat the peer as connected.
        case sendAndEstablish(HandshakeMessage, peer: NodeID)
        /// The peer is connected.
        case establish(peer: NodeID)
        /// Send this refusal (if any), log the reason, and drop the peer.
        case refuse(HandshakeMessage?, reason: String)
        /// Nothing to do.
        case none
    }

    public let local: Local
    /// The CURVE key the peer must present in its welcome (the key this side dialled it with);
    /// "" without CURVE.
    public let peerKey: String
    public private(set) var state: State = .idle
    /// Who the peer is and what it may do, once a hello was accepted.
    public private(set) var caller: Caller?
    /// The version both sides speak on this connection, once established: the older of the two.
    public private(set) var negotiatedVersion: UInt32?

    public init(local: Local, peerKey: String = "") {
        self.local = local
        self.peerKey = peerKey
    }

    /// This side starts the handshake (it connected to the peer).
    public mutating func start() -> Action {
        guard state == .idle else { return .none }
        state = .helloSent
        return .send(.hello(protocolVersion: local.protocolVersion, cluster: local.cluster, node: local.node))
    }

    /// A handshake message arrived from the peer, on a connection authenticated as `credentials`.
    /// A hello is accepted only when its node's key is the connection's key and its name is the
    /// name that key is authorized under (a node cannot speak for another).
    public mutating func received(_ message: HandshakeMessage, credentials: Credentials = .insecure) -> Action {
        switch (state, message) {
        case let (.idle, .hello(version, cluster, node)):
            // A newer peer is welcomed in this side's version (it still speaks it, or refuses the
            // welcome); an older one only if this side still speaks its version.
            if version < local.minimumProtocolVersion {
                return fail("\(node) speaks protocol \(version); this node speaks \(local.versions)", tellPeer: true)
            }
            if cluster != local.cluster {
                return fail("\(node) belongs to cluster '\(cluster)'; this node to '\(local.cluster)'", tellPeer: true)
            }
            switch credentials {
            case .insecure:
                caller = Caller(node: node, name: node.name, publicKey: "", roles: Set(Role.allCases))
            case .key(let key, let grant):
                guard let grant else {
                    return fail("the key \(key.prefix(8))… is not (or no longer) authorized", tellPeer: true)
                }
                guard node.publicKey == key else {
                    return fail("'\(node.name)' claims key \(node.publicKey.prefix(8))… but connected with \(key.prefix(8))…", tellPeer: true)
                }
                guard node.name == grant.name else {
                    return fail("the key \(key.prefix(8))… belongs to '\(grant.name)', not to '\(node.name)'", tellPeer: true)
                }
                caller = Caller(node: node, name: grant.name, publicKey: key, roles: grant.roles)
            }
            state = .established(peer: node)
            let agreed = min(version, local.protocolVersion)
            negotiatedVersion = agreed
            return .sendAndEstablish(.welcome(protocolVersion: agreed, node: local.node), peer: node)
        case let (.helloSent, .welcome(version, node)):
            guard version >= local.minimumProtocolVersion, version <= local.protocolVersion else {
                return fail("\(node) answered with protocol \(version); this node speaks \(local.versions)", tellPeer: false)
            }
            guard peerKey.isEmpty || node.publicKey == peerKey else {
                return fail("\(node) presents key \(node.publicKey.prefix(8))…, not the key \(peerKey.prefix(8))… it was dialled with", tellPeer: false)
            }
            state = .established(peer: node)
            negotiatedVersion = version
            return .establish(peer: node)
        case let (.helloSent, .refused(reason, node)):
            return fail("refused by \(node): \(reason)", tellPeer: false)
        case (.established, .hello), (.established, .welcome):
            return .none  // a duplicate after a reconnect: harmless
        default:
            return fail("unexpected \(message) in state \(state)", tellPeer: false)
        }
    }

    private mutating func fail(_ reason: String, tellPeer: Bool) -> Action {
        state = .failed(reason: reason)
        return .refuse(tellPeer ? .refused(reason: reason, node: local.node) : nil, reason: reason)
    }
}
