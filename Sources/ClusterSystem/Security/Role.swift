/// What a caller may do: the one role table of the whole project (the CLI's keys and the HTTP
/// API's tokens use the same names). `reader` ⊂ `operator` ⊂ `admin`; `worker` and `coordinator`
/// are the cluster's own nodes and are granted only the methods the cluster needs of them.
public enum Role: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Scores, routing, status.
    case reader
    /// Also starts jobs, sends events, runs campaigns, imports outcomes.
    case `operator`
    /// Also drains nodes, manages models, triggers, tokens and keys.
    case admin
    /// A worker node: registers, heartbeats, exports shards to other workers.
    case worker
    /// The coordinator: assigns, releases, asks workers to leave.
    case coordinator

    public var description: String { rawValue }

    /// Roles that may read (scores, routing, status): every person's role and the cluster's nodes.
    public static let readers: Set<Role> = [.reader, .operator, .admin, .worker, .coordinator]
    /// Roles that may act on the data (jobs, events, campaigns).
    public static let operators: Set<Role> = [.operator, .admin]
    /// Roles that may change the cluster (drain, models, keys).
    public static let admins: Set<Role> = [.admin]
}

/// Who may call each distributed method of an actor type. Every distributed method of an actor
/// hosted by a ChurnGrid node is listed; a method that is not is refused to everyone (deny by
/// default), so a new method cannot be exposed by forgetting it.
public protocol AccessControlled {
    /// Roles allowed per method, keyed by the method's name with its argument labels as Swift
    /// prints it ("drain(_:)", "register(worker:)", "lookup(_:)").
    static var access: [String: Set<Role>] { get }
}

/// The authenticated peer of the call being executed (`ClusterActorSystem.caller`).
public struct Caller: Sendable, Hashable, CustomStringConvertible {
    /// The node as it introduced itself in its hello (name bound to its key).
    public var node: NodeID
    /// The name its key is authorized under ("" on a cluster without CURVE).
    public var name: String
    /// Its CURVE public key (Z85; "" without CURVE).
    public var publicKey: String
    /// What it may do.
    public var roles: Set<Role>
    /// How it authenticated when not by a CURVE key (the HTTP API's "token:NAME"), for the audit log.
    public var credential: String?

    public init(node: NodeID, name: String, publicKey: String, roles: Set<Role>, credential: String? = nil) {
        self.node = node
        self.name = name
        self.publicKey = publicKey
        self.roles = roles
        self.credential = credential
    }

    /// Whether it holds one of `roles`.
    public func holds(any roles: Set<Role>) -> Bool { !self.roles.isDisjoint(with: roles) }

    /// For audit logs: the name and the start of the key.
    public var description: String {
        if let credential { return "\(name) (\(credential))" }
        return publicKey.isEmpty ? "\(node.name) (no key: insecure cluster)" : "\(name) (key \(publicKey.prefix(8))…)"
    }
}

/// A call refused because the caller lacks a role; the message is what `churngrid` prints.
public struct NotAuthorized: Error, Sendable, CustomStringConvertible {
    public var method: String
    public var needed: Set<Role>
    public var caller: String

    public init(method: String, needed: Set<Role>, caller: String) {
        self.method = method
        self.needed = needed
        self.caller = caller
    }

    /// The weakest role that would do, as the operator would grant it.
    public var neededDescription: String {
        if needed.isEmpty { return "(none: the method is not exposed)" }
        let order: [Role] = [.reader, .operator, .admin, .worker, .coordinator]
        if needed.isSuperset(of: Role.readers) { return "reader" }
        if needed == Role.operators || needed.isSuperset(of: Role.operators) && !needed.contains(.reader) {
            let rest = needed.subtracting(Role.operators)
            return (["operator"] + order.filter { rest.contains($0) }.map(\.rawValue)).joined(separator: " or ")
        }
        return order.filter { needed.contains($0) }.map(\.rawValue).joined(separator: " or ")
    }

    public var description: String { "not authorized: \(method) needs role \(neededDescription)" }
}
