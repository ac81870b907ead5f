import ClusterSystem
import Foundation
import Logging
import SubscriberEvents
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
    ///
    /// Live queries made concurrently through one client are coalesced: those for one worker
    /// share batch calls (`LookupCoalescing`), up to `batchesInFlight` of them on the wire per
    /// worker at once; a single query at a time goes alone, without waiting for a timer.
    public static func connect(_ endpoints: String, credentials: Credentials? = nil, batchesInFlight: Int = 4, logger: Logger) async throws -> ClusterClient {
        let list = endpoints.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ClusterError("no coordinator endpoint given") }
        var configuration = ClusterActorSystem.Configuration(name: credentials?.key.name ?? "client", listen: nil, logger: logger)
        configuration.options.inboundConcurrency = 1
        configuration.options.curve = credentials?.key.keys
        let system = try await ClusterActorSystem(configuration)
        do {
            let leader = try await findLeader(list, credentials: credentials, system: system)
            return ClusterClient(system: system, coordinator: leader, endpoints: list, credentials: credentials, batchesInFlight: batchesInFlight)
        } catch {
            await system.shutdown()
            throw error
        }
    }

    /// The leading coordinator among `list`, reached over `system`.
    static func findLeader(_ list: [String], credentials: Credentials?, system: ClusterActorSystem) async throws -> CoordinatorActor {
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
        if let leader { return leader }
        throw ClusterError(list.count == 1 ? errors.joined() : "no coordinator leads: " + errors.joined(separator: "; "))
    }

    private let endpoints: [String]
    private let credentials: Credentials?

    private init(system: ClusterActorSystem, coordinator: CoordinatorActor, endpoints: [String], credentials: Credentials?, batchesInFlight: Int) {
        self.system = system
        self.coordinator = coordinator
        self.endpoints = endpoints
        self.credentials = credentials
        router = ScoreRouter(system: system, coordinator: coordinator, coalesce: true, batchesInFlight: batchesInFlight)
    }

    /// A router over the coordinator that leads now (after a restart or a takeover the one this
    /// client connected to is gone).
    func reconnectedRouter() async throws -> ScoreRouter {
        ScoreRouter(system: system, coordinator: try await Self.findLeader(endpoints, credentials: credentials, system: system))
    }

    /// One subscriber's live score, asked of the owning shard directly (one hop instead of two;
    /// see `ScoreRouter`).
    public func score(_ subscriberID: Int64, explain: ExplainMode = .approx) async throws -> ScoreLookup {
        try await router.score(subscriberID, explain: explain)
    }

    /// Starts one live query without waiting for it; `done` is called exactly once with how it
    /// ended (see `ScoreRouter.submit`). Fetch the routing table first (`prepareRouting`) so the
    /// first queries need not each ask the coordinator for it.
    public func submit(_ subscriberID: Int64, explain: ExplainMode = .approx, _ done: @escaping @Sendable (ScoreRouter.Outcome) -> Void) {
        router.submit(subscriberID, explain: explain, done)
    }

    /// Fetches and caches the shard map.
    public func prepareRouting() async throws {
        _ = try await router.routing()
    }

    /// Coalesced batch calls sent so far and the queries they carried.
    public var coalescingCounts: (calls: Int, queries: Int) { router.coalescingCounts }

    /// Many subscribers' live scores, one call per worker.
    public func scores(_ ids: [Int64], explain: ExplainMode = .approx) async throws -> BatchAnswer {
        try await router.scores(ids, explain: explain)
    }

    /// Sends events to the workers owning their subscribers and waits for each one's outcome
    /// (see `EventSender`): `accepted`, `duplicate` or `rejected`, or `retry` for those the cluster
    /// had not settled by `deadline`.
    /// - Returns: an ack per event, in order, and how many sends were repeated (not owner, busy,
    ///   unknown outcome).
    public func send(events: [SubscriberEvent], deadline: Duration = .seconds(60)) async throws -> (acks: [EventAck], resent: Int) {
        let (acks, resends) = try await sendCounting(events: events, deadline: deadline)
        return (acks, resends.total)
    }

    /// `send(events:deadline:)`, with the resends counted by cause.
    public func sendCounting(events: [SubscriberEvent], deadline: Duration = .seconds(60)) async throws -> (acks: [EventAck], resends: EventResends) {
        var sender = EventSender(system: system, router: router, reconnect: { try await self.reconnectedRouter() })
        return try await sender.send(events, deadline: deadline)
    }

    /// The last events applied to a subscriber, from the worker owning it (empty when none).
    public func recentEvents(of subscriberID: Int64) async throws -> [RecentEvent] {
        let table = try await router.routing()
        let shard = table.map.shard(of: subscriberID)
        guard let node = table.node(serving: shard) else { return [] }
        return try await WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system).recentEvents(subscriberID, shard: shard)
    }

    /// The live answers of the models active beside the served one whose segment holds the
    /// subscriber, asked of the shard's owner.
    public func activeModelScores(of subscriberID: Int64) async throws -> [ActiveModelAnswer] {
        try await router.activeModelScores(of: subscriberID)
    }

    /// Every worker's event figures and trigger feed (the workers that did not answer are left out).
    public func eventStatus() async throws -> [WorkerEventStatus] {
        try await eventStatusReport().answered
    }

    /// Every worker's event figures and trigger feed, and why each worker that did not answer
    /// within 5 s did not (by worker name).
    public func eventStatusReport() async throws -> (answered: [WorkerEventStatus], unanswered: [String: String]) {
        let table = try await router.routing(refresh: true)
        var out: [WorkerEventStatus] = [], unanswered: [String: String] = [:]
        for node in table.nodes {
            let worker = try WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system)
            do {
                out.append(try await ClusterActorSystem.$callTimeout.withValue(.seconds(5), operation: { try await worker.eventStatus() }))
            } catch {
                unanswered[node.name] = "\(error)"
            }
        }
        return (out.sorted { $0.name < $1.name }, unanswered)
    }

    public func close() async {
        await system.shutdown()
    }
}
