import ClusterSystem
import Foundation
import Logging
import Metrics
import ProfileDatabase
import Retention
import Synchronization
import ServiceLifecycle
import SubscriberEvents
import SubscriberProfiles
import TreeModel
import WireFormat

/// `churngrid coordinator`: the coordinator node as a service that stops cleanly on SIGTERM
/// (a running job is marked failed with its reason; nothing half-written is published).
///
/// Several coordinators may run against one database: the one holding the lease in PostgreSQL
/// leads, the others stand by (listening, but with no coordinator actor, so workers and clients
/// try the next endpoint) and take over when the leader stops renewing the lease. A leader that
/// finds another coordinator has taken its lease steps down: the service ends with
/// `SteppedDown`, and its supervisor (systemd, Kubernetes) starts it again as a standby.
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
        /// How long a standby waits for an unrenewed lease before it takes over.
        public var leasePeriod: Duration = .seconds(15)

        public init(node: ClusterActorSystem.Configuration, postgresURL: String, modelPath: String) {
            self.node = node
            self.postgresURL = postgresURL
            self.modelPath = modelPath
        }
    }

    /// The coordinator lost its lease to another coordinator and stopped leading.
    public struct SteppedDown: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "stepped down: \(reason)" }
    }

    public let system: ClusterActorSystem
    /// The coordinator actor, once this process leads.
    public var coordinator: CoordinatorActor? { leading.withLock { $0 } }
    private let leading = Mutex<CoordinatorActor?>(nil)
    private let database: ClusterDatabase
    private let lease: LeaseKeeper
    private let model: ScoringModel
    private let package: ModelPackage
    private let logger: Logger
    private let configuration: Configuration

    /// Starts the node: model, schema, then listens (as a standby until `run` takes the lease).
    public init(_ configuration: Configuration) async throws {
        self.configuration = configuration
        logger = configuration.node.logger
        let bytes = try TreeEnsemble.bytes(ofFile: configuration.modelPath)
        model = try ScoringModel(bytes: bytes, source: configuration.modelPath)
        package = ModelPackage(version: model.version, source: configuration.modelPath, bytes: bytes)
        database = try await ClusterDatabase.open(url: configuration.postgresURL, connections: configuration.writers,
                                                  statementTimeout: configuration.settings.statementTimeout, logger: configuration.node.logger)
        do {
            // Trigger rules that name a feature the schema never had: refused now, not at a failover.
            let stored = try await database.featureSchema()
            try Self.checkRules(configuration.settings.triggers, against: stored, dropped: try await database.droppedFeatures(inForce: stored), logger: logger)
            system = try await ClusterActorSystem(configuration.node)
        } catch {
            database.close()
            throw error
        }
        lease = LeaseKeeper(name: system.node.name, endpoint: system.node.endpoint, period: configuration.leasePeriod, database: database, logger: logger)
    }

    /// Takes the lease (standing by while another coordinator holds it), loads the cluster and
    /// serves until SIGTERM, or until another coordinator takes the lease over.
    public func run() async throws {
        let reloads = system.reloadingAuthorizedKeysOnHangup(configuration.authorizedKeysPath)
        defer { reloads?.cancel() }
        let lease = lease, database = database, system = system, logger = logger
        // Standing by ends with the lease, or with SIGTERM.
        let term: Int64? = try? await cancelWhenGracefulShutdown { try await lease.acquire() }
        guard let term, !Task.isShuttingDownGracefully else {
            logger.info("coordinator stopping (was standing by)")
            await system.shutdown()
            database.close()
            return
        }
        let coordinator: CoordinatorActor
        do {
            coordinator = try await lead(term: term)
        } catch {
            await system.shutdown()
            database.close()
            throw error
        }
        print("coordinator leading term \(term)")
        fflush(nil)
        let events = Task {
            for await event in system.peerEvents {
                if case .unreachable(let endpoint, let key, _, let reason) = event {
                    Counter(label: "churngrid_heartbeats_missed_total").increment()
                    await coordinator.whenLocal { await $0.workerLost(endpoint: endpoint, publicKey: key, reason: reason) }
                }
            }
        }
        // The event log's daily partitions: made ahead, dropped after the retention, every hour.
        let retention = configuration.settings.eventRetentionDays
        let contactRetention = configuration.settings.contactRetentionDays
        let partitions = Task {
            while !Task.isCancelled {
                do {
                    let day = Int32(clamping: Int64(Date().timeIntervalSince1970) / 86_400)
                    let pruned = try await database.run { c in
                        try EventLog.ensurePartitions(c, around: day)
                        return try EventLog.dropPartitions(c, olderThan: retention, today: day)
                    }
                    if !pruned.dropped.isEmpty {
                        logger.notice("dropped event partitions past the retention", metadata: ["partitions": "\(pruned.dropped)", "days": "\(retention)"])
                    }
                    let keptDays = Int(day) - pruned.keptFromDay
                    Gauge(label: "churngrid_event_log_oldest_timestamp_seconds").record(pruned.keptFromDay * 86_400)
                    Gauge(label: "churngrid_event_log_held_by_profiles").record(pruned.heldByProfiles ? 1 : 0)
                    if pruned.heldByProfiles {
                        // The log grows by a day a day until the profiles are refreshed.
                        logger.warning("""
                            the event log is kept beyond its retention: a load from subscriber_profiles would replay it onto rows as of \
                            an old import; import profiles carrying those subscribers (a delta or an extract that leaves them out \
                            keeps their old rows), or erase the subscribers no extract carries any more, to let it go
                            """,
                                       metadata: ["kept_days": "\(keptDays)", "retention_days": "\(retention)",
                                                  "replayed_from": "\(pruned.replayedFromMillis.map(Timestamp.format) ?? "?")"])
                    }
                } catch {
                    logger.warning("could not maintain the event log's partitions", metadata: ["error": "\(error)"])
                }
                // Contacts and campaign runs (their actions with them) past their retention.
                do {
                    let (contacts, runs) = try await database.pruneCampaigns(olderThanDays: contactRetention)
                    if contacts + runs > 0 {
                        logger.notice("dropped contacts and campaign runs past the retention", metadata: ["contacts": "\(contacts)", "runs": "\(runs)", "days": "\(contactRetention)"])
                    }
                } catch {
                    logger.warning("could not drop old contacts and campaign runs", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(3600))
            }
        }
        defer { partitions.cancel() }
        // When jobs last completed and failed (the alerts' gauges), if the lead could not read it.
        let jobTimes = Task {
            while !Task.isCancelled && !JobMetrics.timesRead {
                try? await Task.sleep(for: .seconds(30))
                guard !Task.isCancelled, let times = try? await database.jobTimes() else { continue }
                JobMetrics.record(times)
                logger.info("read when jobs last completed and failed", metadata: ["completed": "\(times.lastCompleted.map { String($0) } ?? "never")"])
            }
        }
        defer { jobTimes.cancel() }
        // The live campaign's capacity and budget, leased to the workers (docs/retention.md, "Real time").
        let leases = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: CoordinatorActor.liveLeaseInterval)
                await coordinator.whenLocal { await $0.keepLiveLeases() }
            }
        }
        defer { leases.cancel() }
        // Serves until SIGTERM or until the lease is lost.
        let steppedDown = await withGracefulShutdownHandler {
            await lease.keep()
        } onGracefulShutdown: {
            lease.stop()
        }
        events.cancel()
        if let steppedDown {
            logger.error("another coordinator took the lease over; stepping down", metadata: ["reason": "\(steppedDown)"])
            await system.shutdown()
            database.close()
            throw SteppedDown(reason: steppedDown)
        }
        logger.info("coordinator stopping")
        if let job = await coordinator.whenLocal({ $0.job() }) ?? nil, job.state == .running {
            do {
                try await database.fail(job: job.id, reason: "the coordinator was stopped")
            } catch {
                // The next coordinator to lead fails it (failInterruptedJobs).
                logger.warning("could not mark the running job failed while stopping; the next coordinator to lead will", metadata: ["job": "\(job.id)", "error": "\(error)"])
            }
        }
        await system.shutdown()
        database.close()
    }

    /// Refuses trigger rules that name a feature the feature schema never had (a misspelt name);
    /// one that a migration dropped since (`dropped`) is held as missing, so its conditions never
    /// hold: logged as an error, and the coordinator starts (a drop must not stop a restart).
    private static func checkRules(_ rules: TriggerPackage, against stored: FeatureSchemaStore.Stored, dropped: [String], logger: Logger) throws {
        guard !rules.bytes.elements.isEmpty else { return }
        let parsed: TriggerRules
        do {
            parsed = try TriggerRules.parse(rules.bytes.elements, file: rules.source,
                                            featureNames: WorkerActor.readableFeatures(schema: stored.schema.names, dropped: dropped))
        } catch {
            throw ClusterError("--triggers: \(error) (checked against the feature schema in force, version \(stored.version))")
        }
        // Dropped since (or a catalogue feature the schema left out): always missing.
        let missing = parsed.featuresRead.filter { stored.schema.index(of: $0) == nil }
        if !missing.isEmpty {
            logger.error("trigger rules name features the feature schema in force no longer has: held as missing, their conditions never hold (fix --triggers)",
                         metadata: ["features": "\(missing.joined(separator: ","))", "schema_version": "\(stored.version)", "rules": "\(rules.source)"])
        }
    }

    /// Having taken the lease: fails the jobs of earlier terms, loads the shard map and starts the
    /// coordinator actor (workers re-register and keep the shards they host).
    private func lead(term: Int64) async throws -> CoordinatorActor {
        let interrupted = try await database.failInterruptedJobs(reason: "the coordinator stopped while the job was running")
        // The job counters exist from the lead on (at 0); jobs this lead failed count as failed.
        // The alerts read the last completion's and failure's times, the database's until this
        // process ends a job (a failure marked just now included).
        JobMetrics.started(failedNow: interrupted.count)
        if !interrupted.isEmpty { logger.warning("jobs interrupted by a coordinator stop were marked failed", metadata: ["jobs": "\(interrupted)"]) }
        do {
            JobMetrics.record(try await database.jobTimes())
        } catch {
            // Read again every 30 s while this coordinator leads (`run`).
            logger.warning("could not read when jobs last completed and failed: read again every 30 s until it can be", metadata: ["error": "\(error)"])
        }
        // The --model file must read what the profiles can hold (checked as `models add` checks),
        // and the trigger rules too.
        let stored = try await database.featureSchema()
        try Self.checkRules(configuration.settings.triggers, against: stored, dropped: try await database.droppedFeatures(inForce: stored), logger: logger)
        // A file that does not fit the schema is not registered; the cluster then serves what it
        // served (a restart after a schema change never stops on an old --model), or does not start.
        let startupModel = try TreeEnsemble.parse(package.bytes.elements, file: configuration.modelPath)
        let startupProblem = ModelFeatureCheck.problem(model: startupModel, schema: stored.schema, schemaVersion: stored.version)
        if let startupProblem {
            logger.warning("--model does not fit the feature schema in force: not registered", metadata: ["model": "\(configuration.modelPath)", "problem": "\(startupProblem)"])
        }
        // The model served: the registry's record of the last deployment, or the --model file
        // when it is new to the registry (registered as model `churn`).
        let served = try await database.modelToServe(startup: package, features: model.featureNames, name: ModelRegistry.defaultName, by: system.node.name,
                                                     startupProblem: startupProblem)
        var serving = model, servingPackage = package
        if served.version != package.version {
            let source = "registry:\(served.name)/\(served.version)"
            serving = try ScoringModel(bytes: served.bytes, source: source)
            servingPackage = ModelPackage(version: serving.version, source: source, bytes: served.bytes)
        }
        logger.notice("serving model", metadata: ["name": "\(served.name)", "version": "\(served.version)", "why": "\(served.reason)"])
        try await database.register(model: serving)
        let saved = try await database.loadCluster(requestedShardCount: configuration.shardCount)
        if saved.shardCount != configuration.shardCount {
            logger.notice("the cluster's shard count is fixed; keeping it", metadata: ["shards": "\(saved.shardCount)", "requested": "\(configuration.shardCount)"])
        }
        // Workers re-register after a coordinator start and keep the shards they host; until then
        // no shard is ready.
        let map = ShardMap(shardCount: saved.shardCount, epoch: saved.epoch)
        let subscribers = (try? await database.estimatedSubscribers()) ?? 0
        let erased = try await database.erasuresOnRecord()
        let turnedAway = try await database.turnedAwayWorkers()
        if !turnedAway.isEmpty {
            logger.notice("workers turned away earlier are refused until restarted", metadata: ["workers": "\(turnedAway.map { "\($0.node)" })"])
        }
        let system = system, database = database, lease = lease, settings = configuration.settings, logger = logger
        // The challenger deployed beside it, if any (one that no longer loads here is not served).
        var challenger: ChallengerPackage?
        if let c = try await database.servedChallenger() {
            let source = "registry:\(c.name)/\(c.version)"
            do {
                let loaded = try ScoringModel(bytes: c.bytes, source: source)
                challenger = ChallengerPackage(name: c.name, model: ModelPackage(version: loaded.version, source: source, bytes: c.bytes), basisPoints: c.basisPoints)
                logger.notice("serving a challenger", metadata: ["name": "\(c.name)", "version": "\(c.version)", "basis_points": "\(c.basisPoints)"])
            } catch {
                // Ended, and recorded so (status, models list and models remove agree with what is served).
                logger.error("the challenger recorded in model_served does not load here: it is ended (deploy it again once it loads)",
                             metadata: ["name": "\(c.name)", "version": "\(c.version)", "error": "\(error)"])
                try await database.setChallenger(name: c.name, version: nil, basisPoints: 0, by: "\(system.node.name) (it did not load)")
            }
        }
        // The live campaign's eligibility features beyond the catalogue: every worker holds them
        // (every assignment names them, from the first).
        var liveFeatures: [String] = []
        if let live = try await database.run({ c in try LiveCampaignStore.current(c) }) {
            let names = WorkerActor.readableFeatures(schema: stored.schema.names), catalogue = Set(FeatureCatalogue.names)
            do {
                let campaign = try Campaign.parse(Array(live.config.utf8), source: "campaign_live (run \(live.runID))", eligibilityFeatures: names)
                liveFeatures = campaign.eligibilityFeatureNames(among: names).filter { !catalogue.contains($0) }
            } catch {
                logger.error("the live campaign no longer reads against the feature schema in force: its offers that select on a missing feature never match",
                             metadata: ["run": "\(live.runID)", "error": "\(error)"])
            }
        }
        // The models active beside it (one that no longer fits is deactivated, and recorded so).
        var active: [ActiveModelPackage] = []
        for a in try await database.activeModels() {
            do {
                active.append(try CoordinatorActor.checkedActive(name: a.name, version: a.version, bytes: a.bytes, segment: a.segment,
                                                                 servedName: served.name, schema: stored).0)
                logger.notice("scoring an active model", metadata: ["name": "\(a.name)", "version": "\(a.version)", "segment": "\(a.segment)"])
            } catch {
                logger.error("an active model recorded in model_active does not load here or no longer fits the feature schema: it is deactivated (activate it again once it does)",
                             metadata: ["name": "\(a.name)", "version": "\(a.version)", "error": "\(error)"])
                try await database.setActive(name: a.name, version: nil, segment: "", by: "\(system.node.name) (it did not load)")
            }
        }
        active.sort { $0.name < $1.name }  // as activations keep them
        // Their challengers (one that no longer loads or fits is ended, and recorded so).
        var activeChallengers: [ChallengerPackage] = []
        for c in try await database.activeChallengers() {
            guard let champion = active.first(where: { $0.name == c.name }) else { continue }
            do {
                guard c.current else { throw ClusterError("it challenged another version than the one active now (\(champion.model.version))") }
                guard let bytes = c.bytes else { throw ClusterError("its row in model_active or model_registry does not read") }
                let checked = try CoordinatorActor.checkedActive(name: c.name, version: c.version, bytes: bytes, segment: champion.segment,
                                                                 servedName: served.name, schema: stored).0
                activeChallengers.append(ChallengerPackage(name: c.name, model: checked.model, basisPoints: c.basisPoints))
                logger.notice("serving an active model's challenger", metadata: ["name": "\(c.name)", "version": "\(c.version)", "basis_points": "\(c.basisPoints)"])
            } catch {
                logger.error("an active model's challenger recorded in model_active does not load here or no longer fits the feature schema: it is ended (deploy it again once it does)",
                             metadata: ["name": "\(c.name)", "version": "\(c.version)", "error": "\(error)"])
                try await database.setActiveChallenger(name: c.name, version: nil, basisPoints: 0, by: "\(system.node.name) (it did not load)")
            }
        }
        let challengers = activeChallengers
        let model = serving, package = servingPackage, name = served.name, servedChallenger = challenger, held = liveFeatures, others = active
        let coordinator = system.withActorName(CoordinatorActor.name) {
            CoordinatorActor(actorSystem: system, database: database, lease: lease, term: term, model: model, package: package, modelName: name, map: map, saved: saved,
                             settings: settings, estimatedSubscribers: subscribers, erasuresOnRecord: erased, challenger: servedChallenger,
                             liveFeatures: held, activeModels: others, activeChallengers: challengers, turnedAway: turnedAway, logger: logger)
        }
        leading.withLock { $0 = coordinator }
        logger.info("coordinator ready", metadata: ["endpoint": "\(system.node.endpoint)", "term": "\(term)", "shards": "\(map.shardCount)",
                                                    "model": "\(model.version)"])
        return coordinator
    }
}

/// `churngrid worker`: a worker node as a service; joins the coordinator, hosts its shards. On
/// SIGTERM it asks the coordinator to drain it (its shards move to the other workers while it
/// keeps answering) and exits when that is done; drained by `churngrid nodes drain`, it exits too.
public final class WorkerService: Service, Sendable {
    public struct Configuration: Sendable {
        public var node: ClusterActorSystem.Configuration
        /// The coordinators' endpoints: the one holding the lease leads, the others stand by.
        public var coordinators: [String]
        /// Each coordinator's CURVE public key, in the same order ("" on a cluster without CURVE;
        /// one key for all when only one is given).
        public var coordinatorKeys: [String] = []
        /// Cores used to score a shard.
        public var threads: Int
        /// This worker's own PostgreSQL settings (the password from PGPASSWORD or PGPASSFILE).
        public var postgresURL: String
        /// How long a SIGTERM waits for the coordinator to move this worker's shards away.
        public var drainTimeout: Duration = .seconds(600)
        /// The authorized-keys file to read again on SIGHUP.
        public var authorizedKeysPath: String?
        /// The memory this worker may use (0: no limit): the coordinator places shards within it.
        public var maxMemory = 0
        /// Where fired triggers are published (a ZeroMQ PUB endpoint to bind, e.g. tcp://0.0.0.0:7500).
        public var triggersPublish: String?

        public init(node: ClusterActorSystem.Configuration, coordinators: [String], threads: Int, postgresURL: String) {
            self.node = node
            self.coordinators = coordinators
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
    /// The coordinator endpoint tried first (the last one that answered as leader).
    private let current = Mutex(0)
    private let joinedCluster = Mutex(false)
    /// The coordinator refused this worker's registration again (it answered the call with an error).
    private struct RefusedAgain: Error, CustomStringConvertible {
        let error: RemoteCallError
        var description: String { "\(error)" }
    }

    /// Heartbeats failed in a row (their first failure, every 60th and the recovery are logged).
    private let heartbeatFailures = Mutex(0)

    /// Whether the worker has registered with a leading coordinator and loaded what it was given
    /// (a worker's `/readyz`, with no assignment being loaded).
    public var hasJoined: Bool { joinedCluster.withLock { $0 } }

    public init(_ configuration: Configuration) async throws {
        self.configuration = configuration
        logger = configuration.node.logger
        let system = try await ClusterActorSystem(configuration.node)
        self.system = system
        (left, leave) = AsyncStream.makeStream(of: Void.self)
        let threads = configuration.threads, logger = logger, leave = leave, url = configuration.postgresURL, maxMemory = configuration.maxMemory
        worker = system.withActorName(WorkerActor.name) {
            WorkerActor(actorSystem: system, threads: threads, postgresURL: url, maxMemory: maxMemory, logger: logger) { leave.yield() }
        }
    }

    /// Joins the coordinator (and again whenever it restarts), then serves until SIGTERM.
    public func run() async throws {
        let reloads = system.reloadingAuthorizedKeysOnHangup(configuration.authorizedKeysPath)
        defer { reloads?.cancel() }
        if let endpoint = configuration.triggersPublish {
            _ = try await worker.whenLocal { try await $0.publishTriggers(on: endpoint) }
        }
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
        await worker.whenLocal { await $0.stopEvents() }
        await system.shutdown()
    }

    /// The coordinator endpoints in the order to try them: the last leader first.
    private func candidates() -> [(endpoint: String, key: String)] {
        let first = current.withLock { $0 }
        let all = configuration.coordinators.enumerated().map { i, endpoint in
            (endpoint, configuration.coordinatorKeys.isEmpty ? "" : configuration.coordinatorKeys[min(i, configuration.coordinatorKeys.count - 1)])
        }
        guard first < all.count else { return all }
        return Array(all[first...] + all[..<first])
    }

    /// The leading coordinator: the first endpoint whose coordinator actor answers (a standby has
    /// none and answers "not found"), trying the last leader first.
    /// - Returns: the leader, and its answer to this worker's heartbeat when one was needed to
    ///   tell the leader from the standbys.
    private func leader(timeout: Duration) async throws -> (coordinator: CoordinatorActor, membership: Membership?) {
        var errors: [String] = []
        for (endpoint, key) in candidates() {
            do {
                let node = try await system.connect(to: endpoint, publicKey: key, timeout: timeout)
                let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
                var membership: Membership?
                if configuration.coordinators.count > 1 {
                    // Only the leader has the actor: the heartbeat tells.
                    membership = try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await coordinator.heartbeat(worker: system.node) }
                }
                if let i = configuration.coordinators.firstIndex(of: endpoint) { current.withLock { $0 = i } }
                return (coordinator, membership)
            } catch {
                errors.append("\(endpoint): \(error)")
            }
        }
        throw ClusterError("no coordinator leads: " + errors.joined(separator: "; "))
    }

    /// SIGTERM: the coordinator moves this worker's shards to the others first (the worker keeps
    /// answering until each batch has flipped), so stopping a worker loses no query.
    private func drainBeforeStopping() async {
        do {
            // A coordinator that is gone (the whole cluster is stopping) is not waited for long.
            let coordinator = try await leader(timeout: .seconds(2)).coordinator
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

    /// One heartbeat. A coordinator that no longer counts this worker makes it register again;
    /// until that succeeds the worker is not ready (`/readyz`). A failure is logged when it starts
    /// (and every minute it lasts, with the refusal's reason when the coordinator turned the worker
    /// away), and the recovery too: a worker the cluster does not use says so.
    private func heartbeat() async {
        do {
            let (coordinator, probed) = try await leader(timeout: .seconds(2))
            let membership: Membership
            if let probed { membership = probed } else {
                membership = try await ClusterActorSystem.$callTimeout.withValue(.seconds(2)) { try await coordinator.heartbeat(worker: system.node) }
            }
            if membership == .unknown {
                joinedCluster.withLock { $0 = false }
                logger.notice("the coordinator does not count this worker as a member (failed over while unreachable, the coordinator restarted, or a standby took over); joining again")
                do { try await join(coordinator) } catch let e as RemoteCallError where e.code == .remoteThrew {
                    throw RefusedAgain(error: e)
                }
            }
            let failed = heartbeatFailures.withLock { n in defer { n = 0 }; return n }
            if failed > 0 { logger.notice("heartbeats answered again", metadata: ["failed": "\(failed)", "coordinator": "\(coordinator.id.node)"]) }
        } catch {
            if error is CancellationError || Task.isCancelled { return }  // the worker is stopping
            let n = heartbeatFailures.withLock { n in n += 1; return n }
            guard n == 1 || n % 60 == 0 else { return }
            let refused = error is RefusedAgain
            logger.log(level: refused ? .error : .warning,
                       refused ? "the coordinator refused this worker when it registered again: it serves nothing until that is fixed (then restart it)"
                               : "heartbeat failed: the worker goes on serving what it holds and tries every second",
                       metadata: ["error": "\(error)", "failures": "\(n)", "coordinators": "\(configuration.coordinators.joined(separator: ","))",
                                  "joined": "\(hasJoined)"])
        }
    }

    /// Registers with the leading coordinator; while none answers (it is starting, or a standby is
    /// taking over) tries again every second. A coordinator that refuses (not authorized, a name
    /// or endpoint taken) ends the worker with its reason.
    private func join(_ known: CoordinatorActor? = nil) async throws {
        var waited = false
        while true {
            let coordinator: CoordinatorActor
            do {
                if let known { coordinator = known } else { coordinator = try await leader(timeout: .seconds(5)).coordinator }
            } catch {
                if !waited { logger.notice("waiting for a leading coordinator", metadata: ["coordinators": "\(configuration.coordinators)", "error": "\(error)"]) }
                waited = true
                try await Task.sleep(for: .seconds(1))
                continue
            }
            let shards: Int
            do {
                shards = try await ClusterActorSystem.$callTimeout.withValue(.seconds(1800)) {
                    try await coordinator.register(worker: system.node)
                }
            } catch let error as RemoteCallError where known == nil && [.actorNotFound, .unreachable, .nodeRestarted, .timedOut].contains(error.code) {
                // Not leading (yet, or any more): look again.
                if !waited { logger.notice("waiting for a leading coordinator", metadata: ["error": "\(error)"]) }
                waited = true
                try await Task.sleep(for: .seconds(1))
                continue
            }
            logger.info("joined the cluster", metadata: ["coordinator": "\(coordinator.id.node)", "shards": "\(shards)"])
            joinedCluster.withLock { $0 = true }
            return
        }
    }
}
