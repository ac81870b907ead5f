import ClusterSystem
import Distributed
import Logging
import Metrics
import Postgres
import Retention
import SubscriberProfiles
import WireFormat

/// The coordinator (named `coordinator`): owns the shard map, places shards on workers, runs
/// rescoring jobs into PostgreSQL and routes live queries to the owning shard.
public distributed actor CoordinatorActor {
    public typealias ActorSystem = ClusterActorSystem

    /// The name of the coordinator actor.
    public static let name = "coordinator"

    /// Tuning.
    public struct Settings: Sendable {
        /// Shard rescoring calls in flight per worker, at least: a worker gets one more than its
        /// scoring threads, so a shard's scores are on the wire while the next is scored.
        public var shardsInFlightPerWorker = 2
        /// Attempts per shard before a job fails.
        public var attemptsPerShard = 5
        /// How long loading assigned shards may take.
        public var assignTimeout: Duration = .seconds(900)
        /// How long one shard's rescoring may take.
        public var rescoreTimeout: Duration = .seconds(300)
        /// Shards moved per step of a rebalance: each step loads its shards on their new owners,
        /// flips the map (a new epoch) and releases them on the old owners, so a move never holds
        /// the whole node's worth of shards twice and queries see each batch switch at once.
        public var moveBatch = 128
        /// Where a shard's new holder takes its profiles from while another worker holds them.
        public var handoff: Handoff = .stream
        /// Keep a warm standby copy of every shard on a second worker (twice the memory), so a
        /// lost worker's shards are served again as soon as the loss is detected.
        public var standbys = false
        /// After a restart, how long the coordinator waits for the workers of the saved shard map
        /// to register again before it moves their shards elsewhere (they keep their shards, so a
        /// coordinator restart reloads nothing).
        public var rejoinGrace: Duration = .seconds(15)
        /// How long a job waits for PostgreSQL to come back (its writes are retried meanwhile,
        /// without counting against a shard's attempts) before it fails.
        public var databaseDeadline: Duration = .seconds(120)
        /// How long one PostgreSQL call may wait for the server before its connection is cut and
        /// the call retried (a stalled server).
        public var statementTimeout: Duration = .seconds(300)
        /// How long a job waits for shards that have no ready owner before it fails.
        public var unownedShardDeadline: Duration = .seconds(600)
        /// How long a shard's rescoring may make no progress before it runs again elsewhere (its
        /// standby, or the worker it is moved to); the first answer counts.
        public var stragglerDeadline: Duration = .seconds(60)
        /// The trigger rules every worker applies to events (`--triggers FILE`; none by default).
        public var triggers: TriggerPackage = .none
        /// Days of events and fired triggers kept in PostgreSQL (older daily partitions are dropped).
        public var eventRetentionDays = 30
        /// How every job values its subscribers (`--clv-margin-rate`, `--clv-monthly-discount`,
        /// `--clv-horizon-months`): the `clv` of their scores, and the value tiers of campaigns.
        public var clv = CLVSettings.default
        /// Days contacts and campaign runs (with their actions) are kept (`--contact-retention-days`):
        /// at least the longest contact-policy window of any campaign, or its caps stop counting.
        public var contactRetentionDays = 400
        /// Workers to wait for before shards are first placed (`--min-workers`; 1: place at once);
        /// see `StartGate`.
        public var minWorkers = 1

        public init() {}
    }

    /// How a moved shard's profiles reach its new holder.
    public enum Handoff: String, Sendable, CaseIterable {
        /// Streamed over ZeroMQ from the worker holding them (PostgreSQL when none can).
        case stream
        /// Reloaded from PostgreSQL.
        case postgres
    }

    struct Member {
        let node: NodeID
        let actor: WorkerActor
        /// Its scoring threads.
        let cores: Int
        /// The memory it may use (0: no limit), and what it uses besides profiles.
        var maxMemory = 0
        var overhead = 0
    }

    struct Run {
        var status: JobStatus
        let started: ContinuousClock.Instant
    }

    let database: ClusterDatabase
    /// The coordinator lease: this coordinator leads in `term`; orders to workers wait while the
    /// lease has run out (PostgreSQL away) and stop once another coordinator has taken over.
    let lease: LeaseKeeper
    let term: Int64
    /// The model the cluster serves (changed by `deployModel`, between jobs).
    var model: ScoringModel
    var package: ModelPackage
    /// Its registry name.
    var modelName = ModelRegistry.defaultName
    /// The challenger served beside it (`models deploy --as challenger`), carried by every assignment.
    var challenger: ChallengerPackage?
    /// The models active beside the served one (`models activate`), carried by every assignment
    /// and scored in every job.
    var activeModels: [ActiveModelPackage] = []
    /// The challengers of active models (`models deploy NAME --as challenger` for an active
    /// model), at most one each: carried by every assignment, scored in shadow in every job.
    var activeChallengers: [ChallengerPackage] = []
    /// The live campaign's eligibility features beyond the catalogue: every assignment asks the
    /// worker to hold them (set when it starts, and read back when this coordinator takes over).
    var liveFeatures: [String] = []
    /// A running campaign run's eligibility features beyond the catalogue (held by a worker that
    /// joins while it runs, so a shard moved to it can decide).
    var runFeatures: [String] = []
    /// What every assignment asks its worker to hold.
    var heldFeatures: [String] { liveFeatures + runFeatures.filter { !liveFeatures.contains($0) } }
    /// A deployment is running (`deployModel`): jobs, campaign runs and erasures wait for it.
    var deploying = false
    /// A job is being started (between its checks and its record): erasures and deployments wait.
    var jobStarting = false
    /// A model comparison is running (`compareModels`): deployments and erasures wait.
    var comparing = false
    let settings: Settings
    let logger: Logger
    private var map: ShardMap
    private var members: [String: Member] = [:]
    /// Shards whose owner has loaded them (queries and jobs go there).
    private var ready: Set<Int> = []
    private var run: Run?
    /// Workers drained away (told to leave); a new registration of the name clears it.
    private var drained: Set<String> = []
    /// Failed jobs whose state could not be written (the database was away), by id.
    private var unrecordedFailures: [Int64: String] = [:]
    /// The map in memory is newer than the saved one (the database was away when it changed).
    var mapUnsaved = false
    private var savingMap = false
    /// Shards being loaded by their new owner right now.
    private var moving = 0
    /// Counts the starts and ends of moves (a status that straddles one reports it as moving).
    private var moves = 0
    /// Workers registered whose shards are still being planned or placed (`register`): until
    /// that is done the map is not settled, though no shard may be loading yet.
    private var admitting: Set<String> = []
    /// Shards moving as the status and metrics report them: at least one while a worker is being
    /// admitted (a joining worker listed with no shards and nothing moving would look settled).
    private var movingReported: Int { admitting.isEmpty ? moving : max(1, moving) }
    /// When each member's last heartbeat came (workers send one a second).
    private var lastHeartbeat: [String: ContinuousClock.Instant] = [:]
    /// The members whose shards are moving away before they leave.
    private var draining: Set<String> = []
    private var membershipBusy = false
    /// A campaign run is deciding (one at a time: each reads the contacts the previous one wrote).
    var campaignBusy = false
    /// Where the campaign run in progress is (`campaignRunProgress()`).
    let campaignProgress = CampaignProgress()
    /// An erasure is running (`erase(subscribers:)`): jobs and campaign runs wait for it.
    var erasing = false
    /// Outcome imports under way (an erasure is refused meanwhile: their rows could land after its deletes).
    var outcomesImporting = 0
    /// When this coordinator last erased subscribers, and when each worker it lost was lost: a
    /// worker that comes back after an erasure it missed has its copies dropped (`register`).
    var lastErasure: ContinuousClock.Instant?
    private var lostAt: [String: ContinuousClock.Instant] = [:]
    /// Whether the audit log holds an erasure from before this coordinator led.
    let erasuresOnRecord: Bool
    /// The last job's drift (`CoordinatorDrift`), and whether the stored one was read at start.
    var lastDrift: DriftReport?
    var driftLoaded = false
    /// The last queued drift measurement (each waits for the one before).
    var driftTail: Task<Void, Never>?
    private var membershipWaiters: [CheckedContinuation<Void, Never>] = []
    /// Workers of the map a previous coordinator saved that have not registered again yet.
    var awaited: Set<String>
    private let rejoinDeadline: ContinuousClock.Instant
    private var rejoinTimer: Task<Void, Never>?
    /// The profile bytes of one shard copy: estimated from the base's size until shards are loaded,
    /// then measured from what the workers hold.
    private var shardBytes: Int
    private var shardBytesMeasured: ContinuousClock.Instant?
    /// Whether shards may be placed yet (`--min-workers`).
    var startGate: StartGate
    /// When to try placing shards again after a rebalance failed (`PlacementRetry`).
    private var placementRetry = PlacementRetry()
    private var placementTimer: Task<Void, Never>?
    /// Whether a scheduled retry is placing shards now (a success elsewhere does not cancel it).
    private var retryRunning = false
    /// Workers turned away (they alone could not take their shards while PostgreSQL answered), by
    /// name: the same process is refused at once when it asks again.
    private var turnedAway: [String: (node: NodeID, reason: String)] = [:]

    /// - Parameter saved: the shard map a previous coordinator left (its owners are waited for
    ///   for `settings.rejoinGrace`); `map` starts with no owner.
    init(actorSystem: ClusterActorSystem, database: ClusterDatabase, lease: LeaseKeeper, term: Int64, model: ScoringModel, package: ModelPackage,
         modelName: String = ModelRegistry.defaultName, map: ShardMap, saved: ShardMap? = nil, settings: Settings, estimatedSubscribers: Int = 0,
         erasuresOnRecord: Bool = false, challenger: ChallengerPackage? = nil, liveFeatures: [String] = [], activeModels: [ActiveModelPackage] = [],
         activeChallengers: [ChallengerPackage] = [], turnedAway: [(node: NodeID, reason: String)] = [], logger: Logger) {
        self.actorSystem = actorSystem
        for t in turnedAway { self.turnedAway[t.node.name] = (t.node, t.reason) }
        self.challenger = challenger
        self.activeModels = activeModels
        self.activeChallengers = activeChallengers
        self.liveFeatures = liveFeatures
        // A profile: its id, its features as Float32, and about half as much again for the index
        // and the chunks' slack.
        shardBytes = max(1, estimatedSubscribers * (8 + 4 * FeatureCatalogue.count) * 3 / 2 / max(1, map.shardCount))
        self.database = database
        self.lease = lease
        self.term = term
        self.model = model
        self.package = package
        self.modelName = modelName
        self.erasuresOnRecord = erasuresOnRecord
        self.map = map
        self.settings = settings
        self.logger = logger
        awaited = Set((saved?.owners ?? []).compactMap { $0 })
        rejoinDeadline = .now + settings.rejoinGrace
        startGate = StartGate(minWorkers: settings.minWorkers)
    }

    // MARK: Membership

    /// A worker joins (or rejoins after a restart): the shard map is rebalanced over all workers,
    /// moved shards are loaded by their new owners before the map flips, then released by the old.
    /// - Returns: the number of shards the worker hosts.
    public distributed func register(worker node: NodeID) async throws -> Int {
        // A worker registers itself, as it introduced itself in its handshake: nobody can make
        // the coordinator dial another endpoint, or take over another worker's name.
        if let caller = ClusterActorSystem.caller, caller.node != node {
            throw ClusterError("a worker registers only itself: the caller is \(caller.node), the registration names \(node)")
        }
        guard !node.endpoint.isEmpty else { throw ClusterError("'\(node.name)' listens nowhere: a worker needs --listen") }
        await lockMembership()
        if let (other, _) = members.first(where: { $0.key != node.name && $0.value.node.endpoint == node.endpoint }) {
            unlockMembership()
            throw ClusterError("'\(node.name)' claims the endpoint \(node.endpoint) of member '\(other)'")
        }
        defer { unlockMembership() }
        // The same process turned away before asks again (its heartbeat after a coordinator restart):
        // refused at once, without moving anything. A restarted process (another incarnation) is tried.
        if let refused = turnedAway[node.name] {
            if refused.node == node {
                throw ClusterError("\(node.name) was turned away: \(refused.reason); restart it once that is fixed")
            }
            turnedAway[node.name] = nil
            // Off the membership lock (the database may be slow): a record left behind names the
            // old process only, which never registers again.
            let database = database, logger = logger
            Task {
                do { try await database.forgetTurnedAway(refused.node) } catch {
                    logger.warning("the record of a worker turned away could not be cleared", metadata: ["worker": "\(refused.node)", "error": "\(error)"])
                }
            }
        }
        let known = members[node.name] != nil || awaited.contains(node.name)
        if let old = members[node.name], old.node != node {
            logger.notice("worker restarted", metadata: ["worker": "\(node.name)"])
            members[node.name] = nil
            for s in map.shards(of: node.name) { ready.remove(s) }
            await promoteStandbys(replacing: node.name)  // its copies are gone
        }
        let actor = try WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: actorSystem)
        if missedAnErasure(node.name, known: known) {
            // Its copies may hold subscribers erased while it was away: dropped, loaded again.
            let held = try await actor.holdings()
            if !held.owned.isEmpty || !held.standby.isEmpty {
                logger.notice("a worker came back after an erasure it missed: its copies are dropped and loaded again",
                              metadata: ["worker": "\(node.name)", "owned": "\(held.owned.count)", "standby": "\(held.standby.count)"])
                try await lease.held()
                try await actor.release(owned: held.owned, standby: held.standby, term: term)
            }
        }
        let status = try await actor.status()
        let cores = min(max(1, status.cores), 4096)  // a worker's claim, bounded
        let member = Member(node: node, actor: actor, cores: cores, maxMemory: Self.claimedBytes(status.maxMemory),
                            overhead: Self.claimedBytes(Self.claimedBytes(status.residentBytes) - Self.claimedBytes(status.profileBytes)
                                                        - Self.claimedBytes(status.standbyBytes)))
        members[node.name] = member
        drained.remove(node.name)
        awaited.remove(node.name)
        logger.info("worker joined", metadata: ["worker": "\(node)"])
        admitting.insert(node.name)
        defer { admitting.remove(node.name) }
        do {
            return try await admit(member)
        } catch let error as LeaseLost {
            throw error  // stepping down
        } catch {
            // A member that could not be given what is its is not left half-registered.
            if members[node.name]?.node == node {
                // It alone failed while PostgreSQL answers: it cannot (e.g. a release that cannot read
                // what this cluster serves). Remembered, so that its next attempts are refused at once.
                if error is WorkerRefusedShards, await databaseReachable() {
                    turnedAway[node.name] = (node, "\(error)")
                    logger.error("the joining worker could not take its shards while the others and PostgreSQL could: it is turned away",
                                 metadata: ["worker": "\(node.name)", "error": "\(error)"])
                    // On record too, so the next coordinator (a restart, a takeover) refuses it at once;
                    // off the membership lock.
                    let database = database, logger = logger, reason = "\(error)"
                    Task {
                        do { try await database.recordTurnedAway(node, reason: reason) } catch {
                            logger.warning("a worker turned away could not be recorded: the next coordinator will try it again", metadata: ["worker": "\(node.name)", "error": "\(error)"])
                        }
                    }
                } else {
                    logger.warning("the joining worker could not be admitted; it may register again", metadata: ["worker": "\(node.name)", "error": "\(error)"])
                }
                await removeMember(node.name)
            }
            throw ClusterError("\(node.name) could not be admitted: \(error)")
        }
    }

    /// The joining `member`'s shards: those it still hosts (adopted), its share of a rebalance,
    /// and the release of what it hosts that the map gives to others (the caller holds the
    /// membership lock). A placement that fails for a reason other than this worker is tried
    /// again later (PostgreSQL away while shards must be loaded from it): the worker stays.
    /// - Throws: `WorkerRefusedShards` when this worker alone could not take what it was given.
    /// - Returns: the number of shards it hosts.
    private func admit(_ member: Member) async throws -> Int {
        let node = member.node, actor = member.actor
        let holdings: Holdings
        do {
            holdings = try await adopt(from: member)
        } catch let error as LeaseLost {
            throw error
        } catch {
            throw WorkerRefusedShards(detail: "the shards it still hosts could not be given back to it: \(error)")
        }
        // Only this cluster's shards count as serving (a foreign number does not open the gate).
        let ours = Holdings(owned: holdings.owned.filter { map.contains(shard: $0) }, standby: holdings.standby.filter { map.contains(shard: $0) })
        if case .wait = gateRegistered(node.name, holdings: ours) {
            // --min-workers: nothing is placed before enough workers are here (each shard is then
            // loaded once, on its final owner).
        } else if !awaited.isEmpty && ContinuousClock.now < rejoinDeadline {
            // After a restart: the other workers of the saved map still hold their shards.
            logger.notice("waiting for the saved map's workers to register again before moving their shards",
                          metadata: ["waiting": "\(awaited.sorted())", "until": "\(rejoinDeadline - .now)"])
            if rejoinTimer == nil {
                let deadline = rejoinDeadline
                rejoinTimer = Task {
                    try? await Task.sleep(until: deadline)
                    await self.rebalanceAfterRejoinGrace()
                }
            }
        } else {
            do {
                try await rebalance()
                settledPlacement()
            } catch let failed as MoveFailed where failed.workers == [node.name] {
                if await databaseReachable() { throw WorkerRefusedShards(detail: "\(failed)") }
                placementFailed("could not place shards after a worker joined", failed)
            } catch let error as LeaseLost {
                throw error
            } catch {
                placementFailed("could not place shards after a worker joined", error)
            }
        }
        // Fencing: what the worker hosts that the map gives to others is dropped.
        let (strayOwned, strayStandby) = map.stray(in: holdings, of: node.name)
        if !strayOwned.isEmpty || !strayStandby.isEmpty {
            logger.notice("the worker hosted shards the map gives to others; released", metadata: ["worker": "\(node.name)",
                                                                                                    "owned": "\(strayOwned.count)", "standby": "\(strayStandby.count)"])
            try await lease.held()
            try await actor.release(owned: strayOwned, standby: strayStandby, term: term)
        }
        return map.shards(of: node.name).count
    }

    /// A worker registering with shards it still hosts (the coordinator restarted, the worker did
    /// not) keeps those nobody owns: they are ready at once, nothing is reloaded. It is told the
    /// coordinator's model (its profiles stay).
    /// - Returns: what it hosted.
    private func adopt(from member: Member) async throws -> Holdings {
        let name = member.node.name
        let holdings = try await member.actor.holdings()
        let foreign = (holdings.owned + holdings.standby).filter { !map.contains(shard: $0) }
        if !foreign.isEmpty {
            // Not this cluster's shards (released below as stray, never adopted).
            logger.warning("the worker hosts shard numbers this cluster does not have: they are dropped, not adopted",
                           metadata: ["worker": "\(name)", "shards": "\(foreign.prefix(10).map(String.init).joined(separator: ","))\(foreign.count > 10 ? ",…" : "")",
                                      "count": "\(foreign.count)", "shardCount": "\(map.shardCount)"])
        }
        let (owned, standby) = map.adoptable(from: holdings, by: name, standbys: settings.standbys)
        guard !owned.isEmpty || !standby.isEmpty else { return holdings }
        try await lease.held()
        let next = map.giving(name, owned: owned, standby: standby)
        let shards = owned + standby
        let assignment = self.assignment(shards, roles: Array(repeating: .owner, count: owned.count) + Array(repeating: .standby, count: standby.count),
                                         epoch: next.epoch)
        _ = try await ClusterActorSystem.$callTimeout.withValue(settings.assignTimeout) { try await member.actor.assign(assignment) }
        map = next
        for s in owned { ready.insert(s) }
        logger.notice("adopted the shards the worker still hosts", metadata: ["worker": "\(name)", "owned": "\(owned.count)", "standby": "\(standby.count)"])
        await saveMap()
        return holdings
    }

    /// An assignment of `shards` at `epoch`: with everything a worker serves beside them (the
    /// model, its challenger, the active models and theirs, the trigger rules, the features to hold).
    private func assignment(_ shards: [Int], roles: [ShardRole]? = nil, sources: [NodeID?]? = nil, epoch: Int64) -> Assignment {
        Assignment(shardCount: map.shardCount, shards: shards, roles: roles, sources: sources, epoch: epoch, term: term, model: package,
                   triggers: settings.triggers, challenger: challenger, features: heldFeatures, active: activeModels, activeChallengers: activeChallengers)
    }

    /// The saved map's workers had their time to register again: the shards of those that did not
    /// move to the members.
    private func rebalanceAfterRejoinGrace() async {
        await lockMembership()
        defer { unlockMembership() }
        if !awaited.isEmpty { logger.warning("workers of the saved map did not register again", metadata: ["workers": "\(awaited.sorted())"]) }
        awaited = []
        await rebalanceOrRetry("could not place the shards after the rejoin grace")
    }

    /// Rebalances (the caller holds the membership lock); when that fails, logs `failure` and
    /// tries again later (`PlacementRetry`: after 1 s, doubling up to 30 s, until it succeeds).
    private func rebalanceOrRetry(_ failure: String) async {
        do {
            try await rebalance()
            settledPlacement()
        } catch {
            placementFailed(failure, error)
        }
    }

    /// A rebalance succeeded: a scheduled retry is no longer needed.
    private func settledPlacement() {
        if case .settled(let retries) = placementRetry.succeeded() {
            logger.notice("placed the shards after failed attempts", metadata: ["retries": "\(retries)", "unassigned": "\(map.owners.filter { $0 == nil }.count)"])
        }
        if !retryRunning {
            placementTimer?.cancel()
            placementTimer = nil
        }
    }

    /// A rebalance failed with `error`: logged, and tried again later (not when the lease is lost).
    private func placementFailed(_ failure: String, _ error: any Error) {
        if let lost = error as? LeaseLost {
            lease.lost(lost)
            return
        }
        let unowned = map.owners.filter { $0 == nil }.count
        switch placementRetry.failed(now: .now, reason: "\(failure): \(error)") {
        case .schedule(let at, let attempt):
            logger.error("\(failure); trying again", metadata: ["error": "\(error)", "attempt": "\(attempt)", "in": "\(at - .now)", "unassigned": "\(unowned)"])
            placementTimer = Task {
                try? await Task.sleep(until: at)
                if !Task.isCancelled { await self.retryPlacement() }
            }
        case .alreadyScheduled, .settled, .none:
            logger.error("\(failure); a retry is scheduled", metadata: ["error": "\(error)", "unassigned": "\(unowned)"])
        }
    }

    /// The scheduled retry of a failed placement.
    private func retryPlacement() async {
        do { try await lease.held() } catch { return }  // stepping down: the next leader places them
        await lockMembership()
        defer { unlockMembership() }
        guard !Task.isCancelled else { return }  // a rebalance succeeded meanwhile (a later failure has its own timer)
        placementRetry.retrying()  // from here a failure schedules the next retry
        retryRunning = true
        defer { retryRunning = false }
        Counter(label: "churngrid_placement_retries_total").increment()
        await rebalanceOrRetry("placing shards failed again")
    }

    /// Whether PostgreSQL answers now.
    private func databaseReachable() async -> Bool {
        do {
            return try await database.run { c in try c.query("SELECT 1").scalar == "1" }
        } catch {
            return false
        }
    }

    /// A worker was lost (unreachable): its shards move to the survivors, which reload them from
    /// PostgreSQL; a running job re-runs them there.
    func workerLost(endpoint: String, publicKey: String, reason: String) async {
        await lockMembership()
        defer { unlockMembership() }
        // The link that failed is the member's own (its endpoint and its key): a node that claimed
        // a member's endpoint with another key cannot get the member declared lost.
        guard let (name, _) = members.first(where: { $0.value.node.endpoint == endpoint && $0.value.node.publicKey == publicKey }) else { return }
        logger.error("worker lost", metadata: ["worker": "\(name)", "reason": "\(reason)"])
        await removeMember(name)
    }

    /// Member `name` is gone (lost, or turned away): its standbys take over, its other shards
    /// move to the others (the caller holds the membership lock).
    private func removeMember(_ name: String) async {
        members[name] = nil
        lostAt[name] = .now
        gateLeft(name)
        for s in map.shards(of: name) { ready.remove(s) }
        await promoteStandbys(replacing: name)
        await rebalanceOrRetry("could not move the lost worker's shards")
    }

    /// The standbys of a lost worker's shards become their owners at once (they hold the
    /// profiles; no load): one call per standby worker, then one map flip. Shards without a
    /// standby, or whose standby fails to take over, stay unowned for `rebalance` to reload.
    private func promoteStandbys(replacing lost: String) async {
        do { try await lease.held() } catch { return }  // stepping down
        var (next, promoted) = map.losing(lost)
        guard !promoted.isEmpty else {
            map = next
            await saveMap()
            return
        }
        let start = ContinuousClock.now
        // Each standby's failure, if any: why it could not take over.
        await withTaskGroup(of: (String, [Int], String?).self) { group in
            for (name, shards) in promoted {
                guard let member = members[name] else {
                    group.addTask { (name, shards, "it is no longer a member") }
                    continue
                }
                let assignment = self.assignment(shards, epoch: next.epoch)
                group.addTask {
                    do {
                        _ = try await ClusterActorSystem.$callTimeout.withValue(.seconds(30)) { try await member.actor.assign(assignment) }
                        return (name, shards, nil)
                    } catch {
                        return (name, shards, "\(error)")
                    }
                }
            }
            for await (name, shards, failure) in group {
                guard let failure else { continue }
                logger.warning("a standby could not take over; its shards will be reloaded",
                               metadata: ["worker": "\(name)", "shards": "\(shards.count)", "error": "\(failure)",
                                          "first_shards": "\(shards.sorted().prefix(10).map(String.init).joined(separator: ","))"])
                next = next.withoutOwner(shards)
            }
        }
        map = next
        let taken = promoted.values.flatMap { $0 }.filter { map.owners[$0] != nil }
        for s in taken { ready.insert(s) }
        await saveMap()
        logger.notice("standbys took over the lost worker's shards", metadata: ["worker": "\(lost)", "shards": "\(taken.count)",
                                                                               "epoch": "\(map.epoch)", "seconds": "\(ContinuousClock.now - start)"])
    }

    /// Spreads the shards over the members that are not draining, moving as few as possible,
    /// and (with standbys) gives each a standby on another member, in batches of `moveBatch`:
    /// for each batch the new holders take the profiles (streamed from a current holder, or from
    /// PostgreSQL) while the old owners keep answering, the map flips to a new epoch and is saved,
    /// and the old holders release their roles (calls still addressed there fail as "not found"
    /// and are redirected). Shards whose owner changes go first; standby placements after.
    private func rebalance() async throws {
        guard startGate.isOpen else { return }  // --min-workers: nothing is placed before enough workers are here
        let start = ContinuousClock.now
        var ownersMoved = 0, standbysPlaced = 0, steps = 0
        defer { moving = 0 }
        // One batch per step, planned afresh each time: between steps, membership changes waiting
        // for the lock (a drain, a registration, a lost worker) go first, so none waits behind a
        // whole rebalance — at most behind one batch's loading.
        while steps <= 4 * (map.shardCount / max(1, settings.moveBatch) + 1) {
            let placement = Array(members.keys.filter { !draining.contains($0) })
            let capacity = await capacities(of: placement)
            var (target, _) = map.rebalanced(over: placement, capacity: capacity)
            let homeless = target.owners.filter { $0 == nil }.count
            if steps == 0 && homeless > 0 && !placement.isEmpty {
                logger.error("no worker has room for some shards (worker --max-memory): they stay without an owner until a worker with room joins",
                             metadata: ["shards": "\(homeless)", "shardBytes": "\(shardBytes)", "room": "\(capacity.sorted { $0.key < $1.key })"])
            }
            if settings.standbys { target = target.withStandbys(over: placement, previous: map) }
            let ownerChanges = (0..<map.shardCount).filter { target.owners[$0] != map.owners[$0] || (target.owners[$0] != nil && !ready.contains($0)) }
            let standbyChanges = (0..<map.shardCount).filter { target.owners[$0] == map.owners[$0] && target.standbys[$0] != map.standbys[$0] }
            let changed = ownerChanges + standbyChanges
            guard !changed.isEmpty else { break }
            moving = ownerChanges.count
            let batch = Array(changed.prefix(max(1, settings.moveBatch)))
            try await move(batch, to: target)
            let owners = Set(ownerChanges)
            ownersMoved += batch.filter { owners.contains($0) }.count
            standbysPlaced += batch.count - batch.filter { owners.contains($0) }.count
            steps += 1
            if !membershipWaiters.isEmpty {
                unlockMembership()  // the next change goes first
                await lockMembership()
            }
        }
        if steps > 0 {
            logger.info("shard map changed", metadata: ["epoch": "\(map.epoch)", "ownersMoved": "\(ownersMoved)",
                                                        "standbysPlaced": "\(standbysPlaced)", "steps": "\(steps)",
                                                        "workers": "\(members.count - draining.count)", "seconds": "\(ContinuousClock.now - start)"])
        }
    }

    /// A byte count a worker reports, bounded to 0…1 PiB.
    static func claimedBytes(_ bytes: Int) -> Int { min(max(0, bytes), 1 << 50) }

    /// The shards each of `names` has room for within its `--max-memory` (none listed: no limit),
    /// at the measured size of a shard copy; with standbys, half (each worker holds about as many
    /// standby copies as shards it owns).
    private func capacities(of names: [String]) async -> [String: Int] {
        var limited: [String: Member] = [:]
        for name in names { if let m = members[name], m.maxMemory > 0 { limited[name] = m } }
        guard !limited.isEmpty else { return [:] }
        // What a shard copy costs, from what the workers hold now (when they hold anything): its
        // profiles, or what the workers' resident memory grew by per copy since they registered
        // (allocator slack, load buffers), whichever is more.
        // Measured at most every 10 s, asking the workers at once with a short timeout (one that
        // does not answer is left out).
        if shardBytesMeasured.map({ ContinuousClock.now - $0 > .seconds(10) }) ?? true {
            let asked = names.compactMap { members[$0] }
            let answers = await withTaskGroup(of: (WorkerStatus, Int)?.self) { group in
                for member in asked {
                    group.addTask {
                        guard let s = try? await ClusterActorSystem.$callTimeout.withValue(.seconds(1), operation: { try await member.actor.status() }) else { return nil }
                        return (s, member.overhead)
                    }
                }
                var all: [(WorkerStatus, Int)] = []
                for await answer in group { if let answer { all.append(answer) } }
                return all
            }
            var profiles = 0, grown = 0, copies = 0
            for (s, overhead) in answers {
                // A worker's figures are its claims: bounded, so no sum can overflow.
                profiles += Self.claimedBytes(s.profileBytes) + Self.claimedBytes(s.standbyBytes)
                grown += max(0, Self.claimedBytes(s.residentBytes) - overhead)
                copies += min(max(0, s.shards), ShardMap.maxShardCount) + min(max(0, s.standbyShards), ShardMap.maxShardCount)
            }
            if copies > 0 && profiles > 0 {
                shardBytes = max(1, max(profiles, grown) / copies)
                shardBytesMeasured = .now
            }
        }
        return limited.mapValues { m in
            let room = max(0, (m.maxMemory - m.overhead) / shardBytes)
            return settings.standbys ? room / 2 : room
        }
    }

    /// One step of a rebalance: `shards` take `target`'s owner and standby.
    private func move(_ shards: [Int], to target: ShardMap) async throws {
        moves &+= 1
        defer { moves &+= 1 }
        try await lease.held()
        let previous = map, next = map.adopting(target, shards: shards)
        var work: [String: (shards: [Int], roles: [ShardRole], sources: [NodeID?])] = [:]
        func add(_ name: String, _ shard: Int, _ role: ShardRole) {
            // A holder that is still a member streams its copy (the owner while it answers, else the
            // standby); a worker that holds the shard already keeps its own.
            var source: NodeID?
            if settings.handoff == .stream {
                let holders = [previous.owners[shard], previous.standbys[shard]].compactMap { $0 }.filter { $0 != name }
                source = holders.lazy.compactMap { self.members[$0]?.node }.first
            }
            work[name, default: ([], [], [])].shards.append(shard)
            work[name]!.roles.append(role)
            work[name]!.sources.append(source)
        }
        for s in shards {
            if let owner = next.owners[s], owner != previous.owners[s] || !ready.contains(s) { add(owner, s, .owner) }
            if let standby = next.standbys[s], standby != previous.standbys[s] { add(standby, s, .standby) }
        }
        // Every worker's part at once; the move fails (the map stays) when any part failed, naming each.
        let failures = await withTaskGroup(of: (String, String?).self) { group in
            for (name, w) in work {
                guard let member = members[name] else { continue }
                let assignment = self.assignment(w.shards, roles: w.roles, sources: w.sources, epoch: next.epoch)
                let timeout = settings.assignTimeout
                group.addTask {
                    do {
                        _ = try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await member.actor.assign(assignment) }
                        return (name, nil)
                    } catch {
                        return (name, "\(error)")
                    }
                }
            }
            var failed: [String: String] = [:]
            for await (name, error) in group { if let error { failed[name] = error } }
            return failed
        }
        guard failures.isEmpty else {
            await takeBackFences(shards, previous: previous, next: next, failures: failures)
            throw MoveFailed(failures: failures)
        }
        map = next
        for s in shards where map.owners[s] != nil { ready.insert(s) }
        await saveMap()
        // Holders that are still members drop the roles they no longer have.
        var released: [String: (owned: [Int], standby: [Int])] = [:]
        for s in shards {
            if let old = previous.owners[s], old != next.owners[s] { released[old, default: ([], [])].owned.append(s) }
            if let old = previous.standbys[s], old != next.standbys[s] { released[old, default: ([], [])].standby.append(s) }
        }
        for (name, r) in released {
            if let member = members[name] { try? await member.actor.release(owned: r.owned, standby: r.standby, term: term) }
        }
    }

    /// After a move failed half-way (the map stays): the workers whose part succeeded may have
    /// raised the event fences of the shards they were to own at `next.epoch`, and the owners the
    /// map keeps would then answer those shards' events `not_owner` until the shards moved again.
    /// The map's epoch passes `next.epoch`, the kept owners raise the fences again under it, and
    /// the copies the map does not give (a new owner that held no role for the shard) are released.
    private func takeBackFences(_ shards: [Int], previous: ShardMap, next: ShardMap, failures: [String: String]) async {
        let fenced = shards.filter { s in
            guard let owner = next.owners[s], owner != previous.owners[s] else { return false }
            return failures[owner] == nil
        }
        guard !fenced.isEmpty else { return }
        map = map.superseding(next.epoch)
        await saveMap()
        var kept: [String: [Int]] = [:], stray: [String: [Int]] = [:]
        for s in fenced {
            // A shard whose owner is gone (a failover) keeps its new copy: the next try adopts it.
            guard let old = previous.owners[s], members[old] != nil else { continue }
            kept[old, default: []].append(s)
            // A former standby keeps its copy (it follows the log again when promoted).
            if let owner = next.owners[s], owner != previous.standbys[s], members[owner] != nil { stray[owner, default: []].append(s) }
        }
        guard !kept.isEmpty else { return }
        logger.warning("a move failed half-way: the owners the map keeps raise their shards' event fences again",
                       metadata: ["shards": "\(fenced.count)", "epoch": "\(map.epoch)", "owners": "\(kept.keys.sorted())"])
        for (name, owned) in kept {
            guard let member = members[name] else { continue }
            let assignment = self.assignment(owned, roles: owned.map { _ in .owner }, sources: owned.map { _ in nil }, epoch: map.epoch)
            do {
                _ = try await ClusterActorSystem.$callTimeout.withValue(settings.assignTimeout) { try await member.actor.assign(assignment) }
            } catch {
                logger.warning("an owner could not raise its shards' event fences again; they move with the next rebalance or failover",
                               metadata: ["worker": "\(name)", "shards": "\(owned.count)", "error": "\(error)"])
            }
        }
        for (name, owned) in stray {
            if let member = members[name] { try? await member.actor.release(owned: owned, standby: [], term: term) }
        }
    }

    private func savedMap() { savingMap = false }

    /// A worker's sign of life, every second: whether this coordinator counts it as a member. A
    /// worker that was failed over while it was frozen (or that a restarted coordinator does not
    /// know yet) hears `.unknown` and registers again; one drained away hears `.leaving`.
    public distributed func heartbeat(worker node: NodeID) -> Membership {
        if let caller = ClusterActorSystem.caller, caller.node != node { return .unknown }
        if mapUnsaved && !savingMap {
            savingMap = true
            Task {
                await self.saveMap()
                await self.savedMap()
            }
        }
        if members[node.name]?.node == node {
            lastHeartbeat[node.name] = .now
            return .member
        }
        return drained.contains(node.name) ? .leaving : .unknown
    }

    /// Moves every shard of worker `name` to the other workers, then tells it to leave (its
    /// process exits cleanly). A worker stopped with SIGTERM asks for this itself.
    /// - Returns: the number of shards moved.
    public distributed func drain(_ name: String) async throws -> Int {
        let caller = ClusterActorSystem.caller
        if let caller, !caller.roles.contains(.admin) {
            // A worker's key may drain that worker only (it does so when it is stopped).
            guard caller.roles.contains(.worker), caller.node.name == name else {
                throw NotAuthorized(method: "CoordinatorActor.drain(_:)", needed: Role.admins, caller: "\(caller)")
            }
        }
        await lockMembership()
        defer { unlockMembership() }
        guard let member = members[name] else {
            await audit(caller, action: "drain", target: name, outcome: "refused: no such worker")
            throw ClusterError("no worker named '\(name)' (members: \(members.keys.sorted().joined(separator: ", ")))")
        }
        guard members.count > 1 else {
            throw ClusterError("'\(name)' is the last worker: its shards have nowhere to go")
        }
        let remaining = members.keys.filter { $0 != name }
        let room = await capacities(of: remaining)
        if remaining.allSatisfy({ room[$0] != nil }), case let total = room.values.reduce(0, +), total < map.shardCount {
            await audit(caller, action: "drain", target: name, outcome: "refused: no room")
            throw ClusterError("cannot drain '\(name)': the other workers have room for \(total) of the \(map.shardCount) shards within their --max-memory (\(room.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")))")
        }
        let shards = map.shards(of: name).count
        logger.notice("draining worker", metadata: ["worker": "\(name)", "shards": "\(shards)"])
        draining.insert(name)
        defer { draining.remove(name) }
        try await rebalance()
        members[name] = nil
        gateLeft(name)
        drained.insert(name)
        logger.notice("worker drained; it leaves", metadata: ["worker": "\(name)", "moved": "\(shards)"])
        try? await ClusterActorSystem.$callTimeout.withValue(.seconds(5)) { try await member.actor.leave(term: term) }
        await audit(caller, action: "drain", target: name, outcome: "drained: \(shards) shards moved")
        return shards
    }

    // MARK: HTTP API tokens

    /// Stores a new HTTP API token: only its SHA-256 (hex) crosses the wire and is kept; the
    /// token itself is made and shown by the caller (`churngrid tokens create`).
    public distributed func addToken(name: String, role: String, sha256: String) async throws {
        let caller = ClusterActorSystem.caller
        guard ["reader", "operator", "admin"].contains(role) else { throw ClusterError("role '\(role)': a token's role is reader, operator or admin") }
        guard sha256.utf8.count == 64, sha256.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw ClusterError("a token's hash is 64 lower-case hex digits (SHA-256)")
        }
        let by = Self.callerName(caller)
        do {
            try await database.addToken(name: name, role: role, sha256: sha256, createdBy: by)
        } catch {
            await audit(caller, action: "token create", target: name, outcome: "refused: \(error)")
            throw error
        }
        await audit(caller, action: "token create", target: name, outcome: "created with role \(role)")
    }

    /// Revokes token `name`. - Returns: whether a live token of that name was revoked.
    public distributed func revokeToken(name: String) async throws -> Bool {
        let revoked = try await database.revokeToken(name: name)
        await audit(ClusterActorSystem.caller, action: "token revoke", target: name, outcome: revoked ? "revoked" : "no live token of that name")
        return revoked
    }

    /// Every token's record (name, role, hash, who made it, when; revoked ones too).
    public distributed func tokens() async throws -> [APITokenRecord] {
        try await database.tokens()
    }

    /// Every shard's ready owner, or the shards that have none (a campaign pass needs them all).
    func readyOwners() -> (owners: [(shard: Int, node: NodeID)], missing: [Int]) {
        var owners: [(shard: Int, node: NodeID)] = [], missing: [Int] = []
        for shard in 0..<map.shardCount {
            if ready.contains(shard), let name = map.owners[shard], let member = members[name] {
                owners.append((shard, member.node))
            } else {
                missing.append(shard)
            }
        }
        return (owners, missing)
    }

    /// The shard count of the cluster.
    var shardCount: Int { map.shardCount }

    /// Whether worker `name`, registering, may have been away during an erasure: not when it was a
    /// member (or of the saved map) all along; when it was lost before this coordinator's last
    /// erasure; and, when this coordinator never saw it, whenever any erasure happened before.
    func missedAnErasure(_ name: String, known: Bool) -> Bool {
        if known { return false }
        if let lost = lostAt[name] { return lastErasure.map { $0 > lost } ?? false }
        return lastErasure != nil || erasuresOnRecord
    }

    /// Every member's worker actor, by name.
    func memberWorkers() -> [(name: String, worker: WorkerActor)] {
        members.sorted { $0.key < $1.key }.map { ($0.key, $0.value.actor) }
    }

    /// Writes an action to the audit log (who, with which key, what, when); a failure to write
    /// is logged, not thrown: the action has happened.
    func audit(_ caller: Caller?, action: String, target: String, outcome: String) async {
        let (actor, roles, credential) = Self.auditFields(caller)
        logger.notice("audit", metadata: ["actor": "\(actor)", "action": "\(action)", "target": "\(target)", "outcome": "\(outcome)"])
        do {
            try await database.audit(actor: actor, roles: roles, credential: credential, action: action, target: target, outcome: outcome)
        } catch {
            logger.error("could not write the audit log", metadata: ["action": "\(action)", "error": "\(error)"])
        }
    }

    /// Who the audit log names for `caller`: its name, roles and credential.
    static func auditFields(_ caller: Caller?) -> (actor: String, roles: String, credential: String) {
        (callerName(caller), caller.map { $0.roles.map(\.rawValue).sorted().joined(separator: ",") } ?? "",
         caller.map { $0.credential ?? ($0.publicKey.isEmpty ? "none (insecure cluster)" : "curve:\($0.publicKey)") } ?? "none")
    }

    /// The members with their state.
    public distributed func nodes() -> [NodeInfo] {
        members.sorted { $0.key < $1.key }.map { name, member in
            let owned = map.shards(of: name)
            return NodeInfo(state: draining.contains(name) ? .draining : .active, name: name, endpoint: member.node.endpoint,
                            shards: owned.count, readyShards: owned.filter { ready.contains($0) }.count,
                            standbyShards: map.standbyShards(of: name).count)
        }
    }

    /// The shard map and the owners' node ids, for clients that send queries straight to the
    /// owning node.
    public distributed func routing() -> Routing {
        var owners = map.owners
        for s in owners.indices where !ready.contains(s) { owners[s] = nil }
        return Routing(map: ShardMap(shardCount: map.shardCount, epoch: map.epoch, owners: owners, standbys: map.standbys),
                       nodes: members.values.map(\.node))
    }

    /// Membership changes run one at a time, in arrival order (actor methods interleave at awaits).
    func lockMembership() async {
        if !membershipBusy {
            membershipBusy = true
            return
        }
        await withCheckedContinuation { membershipWaiters.append($0) }
    }

    func unlockMembership() {
        if membershipWaiters.isEmpty {
            membershipBusy = false
        } else {
            membershipWaiters.removeFirst().resume()  // ownership passes to the next change
        }
    }

    // MARK: Jobs

    /// Starts rescoring the whole base with top-3 reasons for everyone (refused while a job runs).
    /// - Returns: the job id.
    public distributed func startRescore() async throws -> Int64 {
        try await startRescore(.standard)
    }

    /// Starts rescoring the whole base with the reasons `options` asks for (refused while a job runs).
    /// - Returns: the job id.
    public distributed func startRescore(_ options: RescoreOptions) async throws -> Int64 {
        if !awaited.isEmpty {
            // Just started (or took over): the saved map's workers are registering again; the job
            // waits for them a little rather than being refused or running on part of the cluster.
            let deadline = min(rejoinDeadline, ContinuousClock.now + .seconds(10))
            while !awaited.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        }
        if let run, run.status.state == .running {
            throw ClusterError("job \(run.status.id) is still running (\(run.status.shardsDone)/\(run.status.shardCount) shards)")
        }
        if let refusal = startGate.refusal { throw ClusterError(refusal) }
        guard !erasing else { throw ClusterError("subscribers are being erased; start the job when the erasure has finished") }
        guard !deploying else { throw ClusterError("a model is being deployed; start the job when the deployment has finished") }
        guard !members.isEmpty else {
            let lost = lostAt.keys.filter { !drained.contains($0) }.sorted()
            throw ClusterError(lost.isEmpty ? "no workers have joined yet"
                               : "no workers: every worker was lost (\(lost.joined(separator: ", "))); start them again, they register by themselves")
        }
        guard !jobStarting else { throw ClusterError("another job is being started") }
        // From here to `run` being set, erasures and deployments are refused (they check this).
        jobStarting = true
        defer { jobStarting = false }
        await writeUnrecordedFailures()
        // A start of this term whose COMMIT was cut off may have committed after all: its job is
        // recorded running and never runs. None runs now, so any such row is one of those.
        if let orphans = try? await database.failOrphanedJobs(except: Array(unrecordedFailures.keys) + (run.map { [$0.status.id] } ?? [])),
           !orphans.isEmpty {
            logger.warning("jobs whose start was cut off had been recorded running; failed", metadata: ["jobs": "\(orphans)"])
        }
        let id: Int64
        do {
            id = try await database.startJob(modelVersion: model.version, shardCount: map.shardCount, clv: settings.clv, challenger: challenger?.model.version,
                                             modelName: modelName, active: activeModels.map { a in
                                                 (a.name, a.model.version, a.segment, activeChallengers.first { $0.name == a.name }?.model.version)
                                             })
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; ask the coordinator that took over")
        }
        run = Run(status: JobStatus(id: id, state: .running, modelVersion: model.version, shardsDone: 0, shardCount: map.shardCount,
                                    subscribers: 0, seconds: 0, retries: 0, error: nil), started: .now)
        logger.info("rescoring started", metadata: ["job": "\(id)", "shards": "\(map.shardCount)", "model": "\(model.version)",
                                                    "reasons": "\(options.reasons)", "explain_method": "\(options.method)"])
        await audit(ClusterActorSystem.caller, action: "rescore", target: "job \(id)", outcome: "started")
        Task { await self.execute(job: id, options: options) }
        return id
    }

    /// Job `id`: the current or last job as this coordinator runs it, else as recorded in
    /// PostgreSQL (a job of an earlier term or before a restart: failed by the coordinator that took
    /// over, or ended); nil when there is no such job.
    public distributed func job(id: Int64) async throws -> JobStatus? {
        if let status = job(), status.id == id { return status }
        return try await database.jobStatus(id)
    }

    /// Where the time of job `id` went (`JobTimeline`), once it has ended on this coordinator;
    /// nil for a job it did not run or that is still running.
    public distributed func jobTimeline(id: Int64) -> JobTimeline? {
        guard let status = run?.status, status.id == id, status.state != .running else { return nil }
        return status.timeline
    }

    /// The current or last job.
    public distributed func job() -> JobStatus? {
        guard var status = run?.status else { return nil }
        if status.state == .running { status.seconds = seconds(ContinuousClock.now - run!.started) }
        return status
    }

    /// Where a job's shards can run now: ready owners and standbys that are members.
    private func jobPlacement() -> JobRun.Placement {
        JobRun.Placement(owners: map.owners.indices.map { s in map.owners[s].flatMap { ready.contains(s) && members[$0] != nil ? $0 : nil } },
                         standbys: map.standbys.map { $0.flatMap { members[$0] != nil ? $0 : nil } },
                         cores: members.mapValues(\.cores))
    }

    /// Runs a job: `JobRun` decides (every shard rescored by its owner a few at a time per worker,
    /// its scores written by one of the database's writer connections while the workers go on
    /// scoring, retries, stragglers, deadlines); this carries its actions out and feeds the
    /// outcomes back, with a tick every 200 ms.
    private func execute(job id: Int64, options: RescoreOptions) async {
        var settings = JobRun.Settings()
        settings.attemptsPerShard = self.settings.attemptsPerShard
        settings.shardsInFlightPerWorker = self.settings.shardsInFlightPerWorker
        settings.maxWaitingWrites = 64 * database.writers
        settings.writers = database.writers
        settings.databaseDeadline = self.settings.databaseDeadline
        settings.unownedShardDeadline = self.settings.unownedShardDeadline
        settings.stragglerDeadline = self.settings.stragglerDeadline
        var job = JobRun(shardCount: map.shardCount, settings: settings)
        var clock = JobTimekeeper(start: run?.started ?? .now)
        let (failure, summary) = await withTaskGroup(of: JobRun.Event.self) { group -> (String?, JobSummary) in
            var actions = job.start(now: .now, placement: jobPlacement())
            var ticking = false
            while true {
                for action in actions {
                    clock.acted(action, now: .now)
                    switch action {
                    case .score(let shard, let node, let role):
                        startScoring(shard, on: node, role: role, options: options, in: &group)
                    case .write(let connection, let entries):
                        let database = database
                        let clv = self.settings.clv, name = modelName
                        group.addTask {
                            do {
                                let claimed = try await database.write(job: id, batch: entries.map { ($0.scores, $0.node) }, clv: clv, modelName: name,
                                                                       connection: connection)
                                return .written(connection: connection, claimed: claimed)
                            } catch let error as LeaseLost {
                                return .writeFailed(connection: connection, .leaseLost("\(error)"))
                            } catch let error as PostgresError where error.isUnavailable {
                                return .writeFailed(connection: connection, .unavailable("\(error)"))
                            } catch {
                                return .writeFailed(connection: connection, .other("\(error)"))
                            }
                        }
                    case .relieve(let shard, let node):
                        Task { await self.relieve(shard: shard, from: node) }
                    case .note(let note):
                        log(note, job: id)
                    case .finished(let failure):
                        group.cancelAll()
                        return (failure, job.summary)
                    }
                }
                if !ticking {
                    ticking = true
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(200))
                        return .tick
                    }
                }
                guard let event = await group.next() else { return ("the job's tasks ended unexpectedly", job.summary) }
                clock.happened(event, now: .now)
                if case .tick = event { ticking = false }
                if case .writeFailed(_, .leaseLost(let reason)) = event { lease.lost(LeaseLost(term: term, current: nil, reason: reason)) }
                actions = job.handle(event, now: .now, placement: jobPlacement())
                if var r = run, r.status.id == id {
                    r.status.shardsDone = job.shardsDone
                    r.status.subscribers = job.summary.subscribers
                    r.status.retries = job.retries
                    r.status.stragglers = job.stragglers
                    run = r
                }
            }
        }
        await finish(job: id, failure: failure, summary: summary, clock: clock)
    }

    /// Calls `rescore` on the shard's actor in `role` on `node`; checks the answer is for the shard,
    /// with the cluster's model, and only that shard's subscribers.
    private func startScoring(_ shard: Int, on node: String, role: ShardRole, options: RescoreOptions, in group: inout TaskGroup<JobRun.Event>) {
        // The job's own version (recorded when it started): a shard that answers with another is refused.
        let timeout = settings.rescoreTimeout, modelVersion = run?.status.modelVersion ?? model.version, shardCount = map.shardCount
        // The challenger scored in shadow (fixed while a job runs: deployments wait for it).
        let shadowVersion = challenger?.model.version ?? ""
        // So are the models active beside it (fixed too: activations wait for the job).
        let others = activeModels.map { "\($0.name) \($0.model.version) [\($0.segment)]" }
        // And their challengers in shadow, each over its model's rows.
        let otherShadows = activeChallengers.map { "\($0.name) \($0.model.version)" }.sorted()
        let shardActor = members[node].flatMap { try? ShardActor.resolve(shard: shard, role: role, on: $0.node, using: actorSystem) }
        group.addTask {
            do {
                guard let shardActor else { throw ClusterError("cannot address shard \(shard) on \(node)") }
                let scores = try await ClusterActorSystem.$callTimeout.withValue(timeout) {
                    // The standard job through the method every worker version answers.
                    options == .standard ? try await shardActor.rescore() : try await shardActor.rescore(options)
                }
                guard scores.shard == shard, scores.modelVersion == modelVersion,
                      scores.ids.elements.allSatisfy({ ShardKey.shard(of: $0, shardCount: shardCount) == shard }) else {
                    throw ClusterError("\(node) answered for shard \(scores.shard) with model \(scores.modelVersion) and subscribers of other shards, asked for shard \(shard) with \(modelVersion)")
                }
                guard scores.shadowVersion == shadowVersion || scores.count == 0 else {
                    throw ClusterError("\(node) scored shard \(shard) in shadow with challenger '\(scores.shadowVersion)', not the job's '\(shadowVersion)'")
                }
                let scoredOthers = scores.others.map { "\($0.name) \($0.version) [\($0.segment)]" }
                guard scoredOthers == others || (scores.count == 0 && scores.others.isEmpty) else {
                    throw ClusterError("\(node) scored shard \(shard) with the active models [\(scoredOthers.joined(separator: ", "))], not the job's [\(others.joined(separator: ", "))]")
                }
                let scoredShadows = scores.otherShadows.map { "\($0.name) \($0.version)" }.sorted()
                guard scoredShadows == otherShadows || (scores.count == 0 && scores.otherShadows.isEmpty) else {
                    throw ClusterError("\(node) scored shard \(shard) in shadow with the active models' challengers [\(scoredShadows.joined(separator: ", "))], "
                                       + "not the job's [\(otherShadows.joined(separator: ", "))]")
                }
                return .scored(shard: shard, node: node, scores)
            } catch let error as RemoteCallError where [.unreachable, .nodeRestarted].contains(error.code) {
                return .scoringFailed(shard: shard, node: node, error: "\(error)", nodeFault: true)
            } catch {
                return .scoringFailed(shard: shard, node: node, error: "\(error)")
            }
        }
    }

    private func log(_ note: JobRun.Note, job id: Int64) {
        switch note {
        case .retrying(let shard, let attempt, let what, let error):
            logger.warning("shard \(what) failed; it will be retried", metadata: ["job": "\(id)", "shard": "\(shard)", "attempt": "\(attempt)", "error": "\(error)"])
        case .databaseAway(let shards, let error):
            logger.warning("PostgreSQL is unavailable; the job's writes wait for it", metadata: ["job": "\(id)", "shards": "\(shards)", "error": "\(error)"])
        case .straggler(let shard, let node, let to):
            logger.warning("a shard's rescoring made no progress past the straggler deadline; running it again elsewhere",
                           metadata: ["job": "\(id)", "shard": "\(shard)", "slow": "\(node)", "to": "\(to)", "deadline": "\(settings.stragglerDeadline)"])
        case .duplicateDropped(let shard):
            logger.notice("a shard's second answer or write was dropped (it was written once)", metadata: ["job": "\(id)", "shard": "\(shard)"])
        case .cutOffCommitCounted(let shard):
            logger.notice("a write cut off by the database going away had committed; counted once", metadata: ["job": "\(id)", "shard": "\(shard)"])
        }
    }

    /// Moves a straggler's shard away from the slow worker to the member with the fewest shards
    /// (a membership change: one move step, the map flips, the slow worker releases it).
    private func relieve(shard: Int, from slow: String) async {
        await lockMembership()
        defer { unlockMembership() }
        guard map.owners[shard] == slow,
              let other = members.keys.filter({ $0 != slow && !draining.contains($0) }).min(by: { map.shards(of: $0).count < map.shards(of: $1).count }) else { return }
        var owners = map.owners, standbys = map.standbys
        owners[shard] = other
        if standbys[shard] == other { standbys[shard] = settings.standbys ? slow : nil }
        do {
            try await move([shard], to: ShardMap(shardCount: map.shardCount, epoch: map.epoch, owners: owners, standbys: standbys))
            logger.notice("moved a straggler's shard away from its slow worker", metadata: ["shard": "\(shard)", "from": "\(slow)", "to": "\(other)"])
        } catch {
            logger.warning("could not move a straggler's shard", metadata: ["shard": "\(shard)", "from": "\(slow)", "error": "\(error)"])
        }
    }

    private func finish(job id: Int64, failure: String?, summary: JobSummary, clock: JobTimekeeper) async {
        var clock = clock
        var publishing: ContinuousClock.Instant?
        defer {
            clock.ended(publishing: publishing, now: .now)
            let t = clock.timeline
            if run?.status.id == id { run?.status.timeline = t }
            logger.info("job timeline", metadata: [
                "job": "\(id)", "scoring_ended_s": "\(t.scoringEnded)", "writing_ended_s": "\(t.writingEnded)",
                "publish_s": "\(t.publish)", "total_s": "\(t.total)", "shard_calls_s": "\(t.shardCalls)",
                "write_busy_s": "\(t.writeBusy)", "writes": "\(t.writes)"])
        }
        if let failure {
            run?.status.state = .failed
            run?.status.error = failure
            logger.error("rescoring failed; nothing published", metadata: ["job": "\(id)", "error": "\(failure)"])
            await recordFailure(job: id, reason: failure)
        } else {
            do {
                publishing = .now
                try await publishWaitingForTheDatabase(job: id, summary: summary)
                run?.status.state = .completed
                logger.info("rescoring completed and published", metadata: ["job": "\(id)"])
                queueDriftMeasurement(job: id, scoreHistogram: summary.histogram.map { Int64($0) })
                // Each active model's too, over its segment (the job's models: activations wait for jobs).
                for other in activeModels {
                    // Its score histogram (`histogramBins`, as the served model's), over its segment.
                    let histogram = summary.models[other.name]?.histogram ?? [Int](repeating: 0, count: JobSummary.histogramBins)
                    queueDriftMeasurement(job: id, scoreHistogram: histogram.map { Int64($0) }, active: other)
                }
            } catch {
                run?.status.state = .failed
                run?.status.error = "publishing failed: \(error)"
                logger.error("publishing failed; nothing published", metadata: ["job": "\(id)", "error": "\(error)"])
                await recordFailure(job: id, reason: "publishing failed: \(error)")
            }
        }
        if let r = run { run?.status.seconds = seconds(ContinuousClock.now - r.started) }
        JobMetrics.ended(completed: run?.status.state == .completed)
    }

    /// Saves the shard map (for a coordinator that restarts). The map in memory is the truth: a
    /// database that is away does not undo or stop a membership change; the map is saved again
    /// when the next worker heartbeat, status or job finds it unsaved.
    private func saveMap() async {
        do {
            try await database.save(map)
            if mapUnsaved { logger.notice("the shard map is saved again", metadata: ["epoch": "\(map.epoch)"]) }
            mapUnsaved = false
        } catch let error as LeaseLost {
            lease.lost(error)
        } catch {
            if !mapUnsaved { logger.warning("the shard map could not be saved; it will be once the database is back", metadata: ["epoch": "\(map.epoch)", "error": "\(error)"]) }
            mapUnsaved = true
        }
    }

    /// Publishes, waiting for PostgreSQL (up to the deadline) when it is away; a publish whose
    /// COMMIT was cut off is found published on the next try.
    private func publishWaitingForTheDatabase(job id: Int64, summary: JobSummary) async throws {
        let start = ContinuousClock.now
        var cutOff = false
        while true {
            do {
                if cutOff, try await database.isPublished(job: id) { return }
                try await database.publish(job: id, summary: summary, featureNames: model.featureNames, modelName: modelName)
                return
            } catch let e as PostgresError where e.isUnavailable && ContinuousClock.now - start < settings.databaseDeadline {
                cutOff = true
                run?.status.retries += 1
                logger.warning("PostgreSQL is unavailable; publishing waits for it", metadata: ["job": "\(id)", "error": "\(e)"])
                try? await Task.sleep(for: .milliseconds(500))
            } catch {
                // A cut-off publish whose transaction still ran on the server can commit while this
                // try runs, which then fails (its index exists, the job is no longer running): the
                // job is published, once — not failed.
                if cutOff, (try? await database.isPublished(job: id)) == true {
                    logger.notice("the cut-off publish had committed meanwhile; the job is published", metadata: ["job": "\(id)", "error": "\(error)"])
                    return
                }
                throw error
            }
        }
    }

    /// Runs an operator's write, and runs it again while PostgreSQL is unavailable (logging
    /// "PostgreSQL is unavailable; `waiting`"), up to the
    /// database deadline (checked between tries): a try cut off at COMMIT may have been carried
    /// out all the same, so `write` must find it or repeat it harmlessly (a request token, or the
    /// same values). Past the deadline it throws what `givingUp` makes of the last error.
    func writingAgainWhileUnavailable<T: Sendable>(_ waiting: String, metadata: Logger.Metadata,
                                                   givingUp: (PostgresError) async -> Error,
                                                   _ write: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + settings.databaseDeadline
        while true {
            do {
                return try await write()
            } catch let e as PostgresError where e.isUnavailable {
                guard ContinuousClock.now < deadline else { throw await givingUp(e) }
                logger.warning("PostgreSQL is unavailable; \(waiting)", metadata: metadata.merging(["error": "\(e)"]) { $1 })
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Writes a job's failure (guarded: a job that is no longer running keeps its state and its
    /// scores). While the database is away the failure is kept and written before the next job
    /// starts, or when `status` is asked — never lost, never left 'running'.
    private func recordFailure(job id: Int64, reason: String) async {
        unrecordedFailures[id] = reason
        await writeUnrecordedFailures()
    }

    private func writeUnrecordedFailures() async {
        for (job, reason) in unrecordedFailures.sorted(by: { $0.key < $1.key }) {
            do {
                try await database.fail(job: job, reason: reason)
                unrecordedFailures[job] = nil
            } catch let error as LeaseLost {
                // The coordinator that took over fails this job itself (it was running in our term).
                unrecordedFailures = [:]
                lease.lost(error)
                return
            } catch {
                logger.warning("a failed job's state cannot be written yet; it will be written once the database is back",
                               metadata: ["job": "\(job)", "error": "\(error)"])
                return
            }
        }
    }

    // MARK: Queries and status

    /// One subscriber's score computed now by the shard that holds it. A shard that moved while
    /// the call was under way (the old owner released it) is asked again at its new owner.
    public distributed func score(_ subscriberID: Int64) async throws -> ScoreLookup {
        let shard = map.shard(of: subscriberID)
        if let refusal = startGate.refusal { return .unavailable(shard: shard, reason: refusal) }
        var attempt = 0
        while true {
            guard let owner = map.owners[shard], ready.contains(shard), let member = members[owner] else {
                return .unavailable(shard: shard, reason: "shard \(shard) has no ready worker (workers: \(members.count))")
            }
            let epoch = map.epoch
            do {
                return try await ShardActor.resolve(shard: shard, on: member.node, using: actorSystem).lookup(subscriberID).stamped(epoch: epoch)
            } catch let error as RemoteCallError {
                let next = QueryRouting.next(after: error.code, attempt: attempt)
                attempt += 1
                switch next {
                case .standbyThenMap:
                    if let standby = map.standbys[shard], let holder = members[standby],
                       let actor = try? ShardActor.resolve(shard: shard, role: .standby, on: holder.node, using: actorSystem),
                       let answer = try? await actor.lookup(subscriberID) {
                        return answer.stamped(epoch: epoch)
                    }
                    if map.epoch == epoch {
                        return .unavailable(shard: shard, reason: "shard \(shard) has no ready worker: its owner \(owner) is unreachable and is being failed over (\(error.message))")
                    }
                case .map:
                    if map.epoch == epoch { throw error }  // the coordinator's own map has not moved: nothing newer to ask
                case .giveUp:
                    throw error
                }
            }
        }
    }

    /// What the coordinator's metrics, `/readyz` and `/v1/cluster` read without asking the workers.
    public func overview() -> CoordinatorOverview {
        let now = ContinuousClock.now
        let silent = members.keys.filter { name in lastHeartbeat[name].map { now - $0 > .seconds(3) } ?? false }.sorted()
        return CoordinatorOverview(term: term, epoch: map.epoch, shardCount: map.shardCount, owned: map.owners.filter { $0 != nil }.count,
                                   ready: ready.count, moving: movingReported, nodes: nodes(), silent: silent, job: job(),
                                   database: database.status(leaseValid: lease.isValid))
    }

    /// The shard map (for clients that route queries themselves).
    public distributed func shardMap() -> ShardMap { map }

    /// Nodes, shards, memory, model, epoch and the current or last job.
    public distributed func status() async -> ClusterStatus {
        if !unrecordedFailures.isEmpty { await writeUnrecordedFailures() }
        if mapUnsaved { await saveMap() }
        // The workers are asked one after the other while shards may move: a status whose
        // answers straddle a move says so (moving > 0), never a settled cluster it did not see.
        let movesBefore = moves, movingBefore = movingReported
        var workers: [WorkerStatus] = [], silent: [String] = []
        for (name, member) in members.sorted(by: { $0.key < $1.key }) {
            do {
                workers.append(try await ClusterActorSystem.$callTimeout.withValue(.seconds(3)) { try await member.actor.status() })
            } catch {
                silent.append(name)
            }
        }
        var status = ClusterStatus(coordinator: "\(actorSystem.node)", shardCount: map.shardCount, epoch: map.epoch, modelVersion: model.version,
                             unassignedShards: map.shardCount - ready.count,
                             movingShards: moves != movesBefore || movingBefore > 0 ? max(1, movingReported, movingBefore) : movingReported,
                             workers: workers, silentWorkers: silent, job: job(), starting: startGate.waiting,
                             shardLoads: await shardLoads(), drift: await latestDrift(),
                             challenger: challenger.map(ChallengerStatus.init))
        status.activeModels = activeModelList()
        status.placement = placementRetry.pending(now: .now)
        status.database = database.status(leaseValid: lease.isValid)
        return status
    }

    /// Job `job`'s drift against its model version's reference (0: the last job measured); nil
    /// when none was measured.
    public distributed func drift(job: Int64) async throws -> DriftReport? {
        if job == 0 { return await latestDrift() }
        return try await database.drift(job: job)
    }
}

extension CoordinatorActor: AccessControlled {
    /// The one role table of the coordinator's methods (docs/security.md).
    public static let access: [String: Set<Role>] = [
        "register(worker:)": [.worker],
        "heartbeat(worker:)": [.worker],
        "drain(_:)": [.admin, .worker],  // a worker only itself (checked in the method)
        "startRescore()": Role.operators,
        "jobTimeline(id:)": Role.readers,
        "startRescore(_:)": Role.operators,
        "nodes()": Role.readers,
        "routing()": Role.readers,
        "job()": Role.readers,
        "job(id:)": Role.readers,
        "drift(job:)": Role.readers,
        "score(_:)": Role.readers,
        "shardMap()": Role.readers,
        "status()": Role.readers,
        "addToken(name:role:sha256:)": Role.admins,
        "revokeToken(name:)": Role.admins,
        "tokens()": Role.admins,
        "runCampaign(_:)": Role.operators,
        "campaignRunProgress()": Role.readers,
        "exportCampaign(run:channel:)": Role.operators,
        "campaignReport(run:windowDays:)": Role.operators,
        "importOutcomes(_:)": Role.operators,
        "snapshotProfiles()": Role.operators,
        "erase(subscribers:)": Role.admins,
        "addModel(name:source:bytes:)": Role.admins,
        "addModel(name:source:bytes:reference:)": Role.admins,
        "models()": Role.readers,
        "model(name:)": Role.readers,
        "modelLastJobs(name:)": Role.readers,
        "challengerList()": Role.readers,
        "removeModel(name:version:)": Role.admins,
        "deployModel(name:version:)": Role.admins,
        "deployChallenger(name:version:trafficPercent:)": Role.admins,
        "promoteChallenger(name:)": Role.admins,
        "activateModel(name:version:segment:)": Role.admins,
        "deactivateModel(name:)": Role.admins,
        "activeModelList()": Role.readers,
        "compareModels(name:version:)": Role.operators,
        "compareJob(name:job:)": Role.operators,
        "startLiveCampaign(_:)": Role.operators,
        "stopLiveCampaign()": Role.operators,
        "liveCampaignStatus()": Role.readers,
    ]
}

/// A request the coordinator refuses, with the reason.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// A move step failed: the workers whose part of it failed, with why (the map did not change).
struct MoveFailed: Error, CustomStringConvertible {
    let failures: [String: String]
    var workers: Set<String> { Set(failures.keys) }
    var description: String { failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ") }
}

/// A joining worker could not take the shards it was given while the others could.
struct WorkerRefusedShards: Error, CustomStringConvertible {
    let detail: String
    var description: String { "it could not take the shards it was given: \(detail)" }
}
