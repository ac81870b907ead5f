import ClusterSystem
import Logging
import ServiceLifecycle
import SubscriberProfiles
import TreeModel
import WireFormat

/// `churngrid coordinator`: the coordinator node as a service that stops cleanly on SIGTERM
/// (a running job is marked failed with its reason; nothing half-written is published).
public final class CoordinatorService: Service, Sendable {
    /// What the coordinator needs.
    public struct Configuration: Sendable {
        public var node: ClusterActorSystem.Configuration
        public var postgresURL: String
        /// The model file every shard scores with.
        public var modelPath: String
        /// Shards of a new cluster (an existing cluster keeps its own).
        public var shardCount = 1024
        /// PostgreSQL connections writing a job's scores in parallel.
        public var writers = 2
        public var settings = CoordinatorActor.Settings()
        /// The authorized-keys file to read again on SIGHUP (nil: none, or no CURVE).
        public var authorizedKeysPath: String?

        public init(node: ClusterActorSystem.Configuration, postgresURL: String, modelPath: String) {
            self.node = node
            self.postgresURL = postgresURL
            self.modelPath = modelPath
        }
    }

    public let system: ClusterActorSystem
    public let coordinator: CoordinatorActor
    private let database: ClusterDatabase
    private let logger: Logger
    private let configuration: Configuration

    /// Starts the node: schema, shard map, model, then listens.
    public init(_ configuration: Configuration) async throws {
        self.configuration = configuration
        logger = configuration.node.logger
        let bytes = try TreeEnsemble.bytes(ofFile: configuration.modelPath)
        let model = try ScoringModel(bytes: bytes, source: configuration.modelPath)
        database = try await ClusterDatabase.open(url: configuration.postgresURL, connections: configuration.writers,
                                              statementTimeout: configuration.settings.statementTimeout, logger: configuration.node.logger)
        let interrupted = try await database.failInterruptedJobs(reason: "the coordinator stopped while the job was running")
        if !interrupted.isEmpty { logger.warning("jobs interrupted by a coordinator stop were marked failed", metadata: ["jobs": "\(interrupted)"]) }
        try await database.register(model: model)
        let saved = try await database.loadCluster(requestedShardCount: configuration.shardCount)
        var map = saved
        if map.shardCount != configuration.shardCount {
            logger.notice("the cluster's shard count is fixed; keeping it", metadata: ["shards": "\(map.shardCount)", "requested": "\(configuration.shardCount)"])
        }
        // Workers re-register after a coordinator start and keep the shards they host; until then
        // no shard is ready.
        map = ShardMap(shardCount: map.shardCount, epoch: map.epoch)
        system = try await ClusterActorSystem(configuration.node)
        let package = ModelPackage(version: model.version, source: configuration.modelPath, bytes: bytes)
        let system = system, database = database, logger = logger
        coordinator = system.withActorName(CoordinatorActor.name) {
            CoordinatorActor(actorSystem: system, database: database, model: model, package: package, map: map, saved: saved,
                             settings: configuration.settings, logger: logger)
        }
        logger.info("coordinator ready", metadata: ["endpoint": "\(system.node.endpoint)", "shards": "\(map.shardCount)", "model": "\(model.version)"])
    }

    public func run() async throws {
        let coordinator = coordinator
        let reloads = system.reloadingAuthorizedKeysOnHangup(configuration.authorizedKeysPath)
        defer { reloads?.cancel() }
        let events = Task {
            for await event in system.peerEvents {
                if case .unreachable(let endpoint, let key, _, let reason) = event {
                    await coordinator.whenLocal { await $0.workerLost(endpoint: endpoint, publicKey: key, reason: reason) }
                }
            }
        }
        try? await gracefulShutdown()
        events.cancel()
        logger.info("coordinator stopping")
        if let job = await coordinator.whenLocal({ $0.job() }) ?? nil, job.state == "running" {
            try? await database.fail(job: job.id, reason: "the coordinator was stopped")
        }
        await system.shutdown()
        database.close()
    }
}

/// `churngrid worker`: a worker node as a service; joins the coordinator, hosts its shards. On
/// SIGTERM it asks the coordinator to drain it (its shards move to the other workers while it
/// keeps answering) and exits when that is done; drained by `churngrid nodes drain`, it exits too.
public final class WorkerService: Service, Sendable {
    public struct Configuration: Sendable {
        public var node: ClusterActorSystem.Configuration
        public var coordinator: String
        /// The coordinator's CURVE public key ("" on a cluster without CURVE).
        public var coordinatorKey: String = ""
        /// Cores used to score a shard.
        public var threads: Int
        /// This worker's own PostgreSQL settings (the password from PGPASSWORD or PGPASSFILE).
        public var postgresURL: String
        /// How long a SIGTERM waits for the coordinator to move this worker's shards away.
        public var drainTimeout: Duration = .seconds(600)
        /// The authorized-keys file to read again on SIGHUP.
        public var authorizedKeysPath: String?

        public init(node: ClusterActorSystem.Configuration, coordinator: String, threads: Int, postgresURL: String) {
            self.node = node
            self.coordinator = coordinator
            self.threads = threads
            self.postgresURL = postgresURL
        }
    }

    public let system: ClusterActorSystem
    public let worker: WorkerActor
    private let configuration: Configuration
    private let logger: Logger
    private let left: AsyncStream<Void>
    private let leave: AsyncStream<Void>.Continuation

    public init(_ configuration: Configuration) async throws {
        self.configuration = configuration
        logger = configuration.node.logger
        let system = try await ClusterActorSystem(configuration.node)
        self.system = system
        (left, leave) = AsyncStream.makeStream(of: Void.self)
        let threads = configuration.threads, logger = logger, leave = leave, url = configuration.postgresURL
        worker = system.withActorName(WorkerActor.name) {
            WorkerActor(actorSystem: system, threads: threads, postgresURL: url, logger: logger) { leave.yield() }
        }
    }

    /// Joins the coordinator (and again whenever it restarts), then serves until SIGTERM.
    public func run() async throws {
        let reloads = system.reloadingAuthorizedKeysOnHangup(configuration.authorizedKeysPath)
        defer { reloads?.cancel() }
        try await join()
        // One heartbeat a second; the coordinator's answer says whether it still counts this
        // worker: one that was failed over while frozen or cut off, or that a restarted
        // coordinator does not know, registers again (and drops what the map gave to others).
        let events = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.heartbeatInterval)
                guard let self else { return }
                await self.heartbeat()
            }
        }
        // Runs until the coordinator says it has drained us, or until SIGTERM.
        let signalled = await withGracefulShutdownHandler {
            for await _ in left { return false }
            return true
        } onGracefulShutdown: { [leave] in
            leave.finish()
        }
        events.cancel()
        if signalled { await drainBeforeStopping() }
        logger.info("worker stopping")
        await system.shutdown()
    }

    /// SIGTERM: the coordinator moves this worker's shards to the others first (the worker keeps
    /// answering until each batch has flipped), so stopping a worker loses no query.
    private func drainBeforeStopping() async {
        do {
            // A coordinator that is gone (the whole cluster is stopping) is not waited for long.
            let node = try await system.connect(to: configuration.coordinator, publicKey: configuration.coordinatorKey, timeout: .seconds(2))
            let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
            logger.notice("asking the coordinator to move this worker's shards away before stopping")
            let moved = try await ClusterActorSystem.$callTimeout.withValue(configuration.drainTimeout) {
                try await coordinator.drain(system.node.name)
            }
            logger.notice("drained", metadata: ["moved": "\(moved)"])
        } catch {
            logger.warning("stopping without a drain", metadata: ["error": "\(error)"])
        }
    }

    static let heartbeatInterval: Duration = .seconds(1)

    private func heartbeat() async {
        do {
            let node = try await system.connect(to: configuration.coordinator, publicKey: configuration.coordinatorKey, timeout: .seconds(2))
            let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
            let membership = try await ClusterActorSystem.$callTimeout.withValue(.seconds(2)) { try await coordinator.heartbeat(worker: system.node) }
            guard membership == .unknown else { return }
            logger.notice("the coordinator does not count this worker as a member (failed over while unreachable, or the coordinator restarted); joining again")
            try await join()
        } catch {
            logger.debug("heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    private func join() async throws {
        let node = try await system.connect(to: configuration.coordinator, publicKey: configuration.coordinatorKey, timeout: .seconds(60))
        let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
        let shards = try await ClusterActorSystem.$callTimeout.withValue(.seconds(1800)) {
            try await coordinator.register(worker: system.node)
        }
        logger.info("joined the cluster", metadata: ["coordinator": "\(node)", "shards": "\(shards)"])
    }
}

