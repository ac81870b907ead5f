import ClusterSystem
import Foundation
import Logging
import Synchronization

/// What `churngrid rescore | score | status | nodes` and the query benchmark use: a short-lived
/// node that talks to the coordinator, and sends live queries straight to the worker holding
/// the subscriber's shard.
public struct ClusterClient: Sendable {
    public let system: ClusterActorSystem
    public let coordinator: CoordinatorActor
    private let router: ScoreRouter

    /// How a client authenticates on a cluster with CURVE: its own key (its name is the key's
    /// name, which the nodes' authorized keys bind to a role) and the coordinator's public key.
    public struct Credentials: Sendable {
        public var key: NodeKeyFile
        /// The coordinators' public keys, in the order of their endpoints (one key: for all).
        public var coordinatorKeys: [String]

        public init(key: NodeKeyFile, coordinatorKey: String) {
            self.init(key: key, coordinatorKeys: [coordinatorKey])
        }

        public init(key: NodeKeyFile, coordinatorKeys: [String]) {
            self.key = key
            self.coordinatorKeys = coordinatorKeys
        }

        func coordinatorKey(_ i: Int) -> String {
            coordinatorKeys.isEmpty ? "" : coordinatorKeys[min(i, coordinatorKeys.count - 1)]
        }
    }

    /// Connects to the leading coordinator: `endpoints` is one endpoint or several separated by
    /// commas (a leader and its standbys; the first whose coordinator answers leads). The client
    /// opens no listening socket: answers come back on the connections it opens, so it works from
    /// another host and behind NAT.
    public static func connect(_ endpoints: String, credentials: Credentials? = nil, logger: Logger) async throws -> ClusterClient {
        let list = endpoints.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ClusterError("no coordinator endpoint given") }
        var configuration = ClusterActorSystem.Configuration(name: credentials?.key.name ?? "client", listen: nil, logger: logger)
        configuration.options.inboundConcurrency = 1
        configuration.options.curve = credentials?.key.keys
        let system = try await ClusterActorSystem(configuration)
        // Every endpoint at once: the first that answers as leader wins; the others are not waited
        // for (a dead endpoint's handshake only times out in the background).
        let (answers, answer) = AsyncStream.makeStream(of: (CoordinatorActor?, String).self)
        for (i, endpoint) in list.enumerated() {
            Task {
                do {
                    let node = try await system.connect(to: endpoint, publicKey: credentials?.coordinatorKey(i) ?? "", timeout: .seconds(list.count > 1 ? 3 : 10))
                    let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
                    if list.count > 1 {
                        // A standby has no coordinator actor: a cheap call finds the leader.
                        _ = try await ClusterActorSystem.$callTimeout.withValue(.seconds(5)) { try await coordinator.job() }
                    }
                    answer.yield((coordinator, ""))
                } catch {
                    answer.yield((nil, "\(endpoint): \(error)"))
                }
            }
        }
        var leader: CoordinatorActor?, errors: [String] = []
        for await (coordinator, error) in answers {
            if let coordinator {
                leader = coordinator
                break
            }
            errors.append(error)
            if errors.count == list.count { break }
        }
        answer.finish()
        if let leader { return ClusterClient(system: system, coordinator: leader) }
        await system.shutdown()
        throw ClusterError(list.count == 1 ? errors.joined() : "no coordinator leads: " + errors.joined(separator: "; "))
    }

    private init(system: ClusterActorSystem, coordinator: CoordinatorActor) {
        self.system = system
        self.coordinator = coordinator
        router = ScoreRouter(system: system, coordinator: coordinator)
    }

    /// One subscriber's live score, asked of the owning shard directly (one hop instead of two;
    /// see `ScoreRouter`).
    public func score(_ subscriberID: Int64, explain: ExplainMode = .approx) async throws -> ScoreLookup {
        try await router.score(subscriberID, explain: explain)
    }

    /// Many subscribers' live scores, one call per worker.
    public func scores(_ ids: [Int64], explain: ExplainMode = .approx) async throws -> BatchAnswer {
        try await router.scores(ids, explain: explain)
    }

    public func close() async {
        await system.shutdown()
    }
}
