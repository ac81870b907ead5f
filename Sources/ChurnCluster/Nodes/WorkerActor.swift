import ClusterSystem
import Distributed
import Logging
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import WireFormat
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A worker node's control actor (named `worker`): the coordinator tells it which shards to host,
/// as owner or standby, and with which model; it takes their profiles from a peer or PostgreSQL
/// and starts one `ShardActor` per role (`shard/N` for the owner, `standby/N` for a standby).
public distributed actor WorkerActor {
    public typealias ActorSystem = ClusterActorSystem

    /// The name every worker gives this actor.
    public static let name = "worker"

    /// Shards streamed from one peer at a time.
    static let streamsInFlight = 4
    /// How long streaming one shard may take before the rest come from PostgreSQL.
    static let exportTimeout: Duration = .seconds(10)

    /// The profiles held, per shard (shared by its actors; dropped when no role is left).
    var stores: [Int: LoadedShard] = [:]
    var owned: [Int: ShardActor] = [:]
    var standing: [Int: ShardActor] = [:]
    var model: ScoringModel?
    /// The challenger its shards answer a share of live queries with (`models deploy --as challenger`).
    var challenger: ServedChallenger?
    /// The models active beside the served one (`models activate`): scored in every job.
    var activeModels: [ServedActiveModel] = []
    /// A model loaded ahead of a deployment's switch (`prepareModel`).
    var preparedModel: ScoringModel?
    /// The other version of a comparison (`prepareComparison`).
    var comparisonModel: ScoringModel?
    /// Schema features every held shard keeps beside the catalogue's because a model loaded here
    /// reads them (append-only while the worker runs: models compiled earlier keep their columns).
    var extraLayout: [String] = []
    /// The last change of extra columns: the next one waits for it.
    var extrasWork: Task<Void, Error>?
    /// The catalogue features last logged as held without a column (the schema in force lacks them).
    var loggedAbsent: Set<Int> = []
    /// The cluster's shard count, from the last assignment (0 before the first).
    var shardCount = 0
    let scoring: ScoringThreads
    let loader = BlockingThread(name: "cg-load", niceness: 5)
    let logger: Logger
    private let onLeave: @Sendable () -> Void
    /// This worker's own PostgreSQL settings (never received from the coordinator).
    let postgresURL: String
    /// The memory this worker may use (0: no limit).
    private let maxMemory: Int
    /// The newest coordinator order obeyed: (lease term, map epoch). Older orders are refused.
    private var obeyed: (term: Int64, epoch: Int64) = (0, 0)
    /// The shards of the assignments being loaded now, each with the number of assignments
    /// loading it (two may overlap while the actor waits for a load).
    private var loading: [Int: Int] = [:]
    /// The event path: logs, applies and acknowledges subscriber events for the shards owned here.
    let events: EventIngest
    /// The trigger rules in force (as the coordinator sent them).
    var triggers = TriggerPackage.none
    /// Where fired triggers are published (`--triggers-publish`), as subscribers connect to it.
    private var triggerFeedEndpoint = ""
    private var standbyRefresh: Task<Void, Never>?
    var eventsModel = ""
    /// How the shards loaded here came (table, snapshot, stream): `shardLoads()`.
    var loadCounts = ShardLoads(worker: "")

    /// - Parameters:
    ///   - postgresURL: where this worker loads profiles from (its own setting; the password comes
    ///     from PGPASSWORD or PGPASSFILE, never from the wire).
    ///   - onLeave: called when the coordinator has drained this worker and tells it to go.
    public init(actorSystem: ClusterActorSystem, threads: Int, postgresURL: String, maxMemory: Int = 0, logger: Logger,
                onLeave: @escaping @Sendable () -> Void = {}) {
        self.actorSystem = actorSystem
        self.maxMemory = maxMemory
        self.onLeave = onLeave
        self.postgresURL = postgresURL
        scoring = ScoringThreads(count: threads)
        self.logger = logger
        events = EventIngest(postgresURL: postgresURL, node: actorSystem.node.name, logger: logger)
    }

    /// Publishes fired triggers on a ZeroMQ PUB socket bound at `endpoint` (with CURVE, secured
    /// like the cluster: subscribers present an authorized key and know this node's public key).
    /// - Returns: the endpoint subscribers connect to.
    public func publishTriggers(on endpoint: String) async throws -> String {
        let system = actorSystem
        let bound = try await events.publish(on: endpoint) { try system.makeSocket(.pub, server: true) }
        // A wildcard host is advertised as the host of this node's own endpoint.
        var advertised = bound
        for wildcard in ["tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"] where bound.hasPrefix(wildcard) {
            let port = bound.dropFirst(wildcard.count)
            let node = actorSystem.node.endpoint
            if let colon = node.lastIndex(of: ":") { advertised = String(node[..<colon]) + ":" + port }
        }
        triggerFeedEndpoint = advertised
        logger.notice("publishing triggers", metadata: ["endpoint": "\(advertised)"])
        return advertised
    }

    /// Stops the event path (before the node shuts down: its PUB socket closes first).
    public func stopEvents() async {
        standbyRefresh?.cancel()
        await events.stop()
    }

    /// Hosts `assignment.shards` in their roles (replacing the model if its version changed):
    /// profiles it holds already are reused, the others are streamed from the named peer or, when
    /// there is none or it fails, loaded from PostgreSQL. A shard it owned and now stands by for
    /// keeps answering as owner until the coordinator releases that role after the map flips.
    /// - Returns: the subscribers held per shard, in the assignment's order.
    public distributed func assign(_ assignment: Assignment) async throws -> [Int] {
        try obey(term: assignment.term, epoch: assignment.epoch, "assign")
        shardCount = assignment.shardCount
        if model?.version != assignment.model.version {
            let next: ScoringModel
            if let prepared = preparedModel, prepared.version == assignment.model.version {
                next = prepared
            } else {
                // The extra columns it reads are loaded on the shards held here first.
                next = try await compile(bytes: assignment.model.bytes.elements, source: assignment.model.source)
            }
            if model != nil {
                // The shards keep their profiles and answer with the new model (switched in place:
                // no query finds a shard missing).
                logger.notice("model changed", metadata: ["model": "\(next.version)"])
                await switchShards(to: next)
            }
            model = next
            preparedModel = nil
        }
        guard let model else { throw ClusterError("no model to score with") }
        await follow(challenger: assignment.challenger)
        await follow(active: assignment.active, challengers: assignment.activeChallengers)
        if eventsModel != model.version || triggers != assignment.triggers {
            let rules: TriggerRules?
            do {
                rules = assignment.triggers.bytes.elements.isEmpty ? nil
                    : try await parseRules(assignment.triggers)
            } catch {
                throw ClusterError("the coordinator's trigger rules do not load here: \(error)")
            }
            try await events.configure(model: model, rules: rules, shardCount: assignment.shardCount)
            triggers = assignment.triggers
            eventsModel = model.version
        }
        if standbyRefresh == nil {
            let events = events
            standbyRefresh = Task { await events.refreshStandbys() }
        }
        try checkRoom(for: assignment.shards.filter { stores[$0] == nil }.count)
        let start = ContinuousClock.now
        for shard in assignment.shards { loading[shard, default: 0] += 1 }
        defer {
            for shard in assignment.shards {
                loading[shard, default: 1] -= 1
                if loading[shard] == 0 { loading[shard] = nil }
            }
        }
        // A copy held here whose event state the event thread does not have (an earlier
        // assignment failed half-way) is dropped and loaded again.
        for shard in assignment.shards where stores[shard] != nil && owned[shard] == nil && standing[shard] == nil {
            if !(await events.holds(shard)) { stores[shard] = nil }
        }
        var fromPeers: [NodeID: [Int]] = [:], fromDatabase: [Int] = []
        for (shard, source) in zip(assignment.shards, assignment.sources) where stores[shard] == nil {
            if let source { fromPeers[source, default: []].append(shard) } else { fromDatabase.append(shard) }
        }
        var streamed = 0, streamedShards = 0
        var snapshots: [Int: ShardEventSnapshot] = [:]
        var carried: [Int: [FiredTrigger]] = [:]
        // The catalogue features the schema in force lacks: the streamed copies hold no column for them.
        let lacking = fromPeers.isEmpty ? [] : try await loader.run { [postgresURL] in ShardLoading.catalogueLacking(url: postgresURL) }
        for (peer, shards) in fromPeers {
            let (states, failed) = await stream(shards, from: peer)
            streamedShards += states.count
            for state in states {
                // Profiles with no event state (a peer one version older) cannot be told which
                // events they hold: they come from PostgreSQL instead.
                guard let snapshot = state.events, snapshot.shard == state.shard else {
                    fromDatabase.append(state.shard)
                    continue
                }
                // Profiles of another width would be read out of bounds by this worker's models.
                guard state.featureCount == FeatureCatalogue.count else {
                    logger.warning("a peer sent profiles of another width; loading the shard from PostgreSQL",
                                   metadata: ["shard": "\(state.shard)", "peer": "\(peer)", "features": "\(state.featureCount)", "expected": "\(FeatureCatalogue.count)"])
                    fromDatabase.append(state.shard)
                    continue
                }
                snapshots[state.shard] = snapshot
                if !state.undecided.isEmpty {
                    let kept = Confined.received(state.undecided, shard: state.shard, shardCount: assignment.shardCount, ids: Set(state.ids.elements),
                                                 now: Confined.nowMillis())
                    if !kept.isEmpty { carried[state.shard] = kept }
                }
                let store = try await loader.run { () throws -> LoadedShard in
                    LoadedShard(store: try ShardLoading.store(ids: state.ids.elements, values: state.values.elements, lacking: lacking),
                                generation: state.profileGeneration)
                }
                stores[state.shard] = store
                streamed += store.store.count
            }
            fromDatabase += failed
        }
        loadCounts.streamed += streamedShards
        var fromSnapshots = 0
        if !fromDatabase.isEmpty {
            // From each shard's snapshot when it has a valid one (profiles and event state, like a
            // stream), else from the wide table (ShardLoading).
            let url = postgresURL, count = assignment.shardCount, wanted = fromDatabase
            let loaded = try await loader.run { try ShardLoading.load(url: url, shards: wanted, shardCount: count) }
            for shard in fromDatabase { stores[shard] = loaded.stores[shard] ?? LoadedShard(store: ProfileStore()) }
            for (shard, events) in loaded.events { snapshots[shard] = events }
            noteLoads(loaded)
            fromSnapshots = loaded.events.count
            fromDatabase = loaded.fromTable
        }
        // Copies that arrived after an erasure lose the erased subscribers before they answer.
        let arriving = assignment.shards.reduce(into: [Int: LoadedShard]()) { out, s in if owned[s] == nil && standing[s] == nil { out[s] = stores[s] } }
        if !arriving.isEmpty, try await events.cleanArriving(arriving) > 0 {
            logger.info("erased subscribers removed from arriving copies", metadata: ["shards": "\(arriving.count)"])
        }
        // Catalogue features the schema in force lacks have no column in the copies loaded now:
        // said once per change (event updates of them are skipped).
        let absent = arriving.values.reduce(into: Set<Int>()) { $0.formUnion($1.store.absent) }
        if !absent.isEmpty, absent != loggedAbsent {
            loggedAbsent = absent
            logger.notice("built-in catalogue features the feature schema in force lacks are held without a column: they read as missing and event updates of them are skipped",
                          metadata: ["features": "\(absent.sorted().map { FeatureCatalogue.names[$0] }.joined(separator: ","))", "count": "\(absent.count)"])
        }
        // The extra columns the models loaded here read, and those the assignment names (the live
        // campaign's eligibility), before the arriving copies answer.
        let catalogue = Set(FeatureCatalogue.names)
        let named = assignment.features.filter { !catalogue.contains($0) }
        if !arriving.isEmpty || !named.isEmpty { try await holdExtras(adding: named) }
        // The event path: owners raise their shards' fences and replay the log beyond their copies
        // before they answer as owners; standbys follow the log.
        let loadedFromDatabase = Set(fromDatabase)
        func item(_ shard: Int) -> (shard: Int, store: LoadedShard, snapshot: ShardEventSnapshot?, fromDatabase: Bool)? {
            stores[shard].map { (shard, $0, snapshots[shard], loadedFromDatabase.contains(shard)) }
        }
        let owners = zip(assignment.shards, assignment.roles).filter { $0.1 == .owner }.compactMap { item($0.0) }
        let followers = zip(assignment.shards, assignment.roles).filter { $0.1 == .standby && owned[$0.0] == nil }.compactMap { item($0.0) }
        // The older rows' floors go to the event state with the items; the copies kept here (and
        // the shard actors') hold none.
        for s in loadedFromDatabase { stores[s]?.older = [:] }
        // The shards answer queries at once; their events are refused until the fences are raised
        // and the log replayed on the event thread (in order with what that thread does next).
        // Triggers the senders had not decided go with the copies (queued on the event thread
        // before the ownership below).
        await events.carry(carried)
        let events = events, logger = logger, term = assignment.term, epoch = assignment.epoch
        Task {
            do { try await events.own(owners, term: term, epoch: epoch) } catch {
                logger.warning("taking over the shards' events failed", metadata: ["error": "\(error)"])
            }
        }
        do {
            try await events.standBy(followers)
        } catch let error as PostgresError where error.isUnavailable {
            // The standby copies follow the log once PostgreSQL is back (they hold their own profiles).
            logger.warning("PostgreSQL is away: standby copies follow the log once it is back", metadata: ["error": "\(error)"])
        }
        for (shard, role) in zip(assignment.shards, assignment.roles) {
            switch role {
            // The model now (a deployment may have switched it while the profiles loaded).
            case .owner:
                if owned[shard] == nil { owned[shard] = hostActor(shard, role: .owner, model: self.model ?? model) }
            case .standby:
                if standing[shard] == nil { standing[shard] = hostActor(shard, role: .standby, model: self.model ?? model) }
            }
        }
        // Loading went through libpq's buffers and growing columns: give the freed heap back to
        // the system, or it stays in the process's resident set next to the profiles.
        if !fromDatabase.isEmpty || streamed > 0 || fromSnapshots > 0 { releaseFreedHeap() }
        logger.info("shards hosted", metadata: ["shards": "\(assignment.shards.count)", "streamed": "\(streamedShards)",
                                                 "streamedSubscribers": "\(streamed)", "fromPostgres": "\(fromDatabase.count)", "fromSnapshots": "\(fromSnapshots)",
                                                 "seconds": "\(ContinuousClock.now - start)", "model": "\(model.version)"])
        return assignment.shards.map { stores[$0]?.store.count ?? 0 }
    }

    /// Streams `shards` from `peer`'s worker a few at a time.
    /// - Returns: the states received and the shards that could not be streamed.
    private func stream(_ shards: [Int], from peer: NodeID) async -> (states: [ShardState], failed: [Int]) {
        guard let source = try? WorkerActor.resolve(id: ActorID(node: peer, name: WorkerActor.name), using: actorSystem) else { return ([], shards) }
        let logger = logger
        return await withTaskGroup(of: (Int, ShardState?).self) { group in
            var next = 0, states: [ShardState] = [], failed: [Int] = []
            var peerFailed = false
            func startOne() {
                let shard = shards[next]
                next += 1
                if peerFailed {  // one failure and the rest come from PostgreSQL: no timeout per shard
                    failed.append(shard)
                    return
                }
                group.addTask {
                    do {
                        let state = try await ClusterActorSystem.$callTimeout.withValue(Self.exportTimeout) { try await source.export(shard) }
                        // The peer answers for the shard asked for, or not at all.
                        guard state.shard == shard else { throw ClusterError("\(peer.name) sent shard \(state.shard) when asked for shard \(shard)") }
                        return (shard, state)
                    } catch {
                        logger.warning("streaming a shard from its holder failed; loading it from PostgreSQL",
                                       metadata: ["shard": "\(shard)", "peer": "\(peer)", "error": "\(error)"])
                        return (shard, nil)
                    }
                }
            }
            while next < min(shards.count, Self.streamsInFlight) { startOne() }
            while let (shard, state) = await group.next() {
                if let state { states.append(state) } else { failed.append(shard); peerFailed = true }
                if peerFailed {
                    while next < shards.count { startOne() }  // each goes straight to `failed`
                } else if next < shards.count {
                    startOne()
                }
            }
            return (states, failed)
        }
    }

    /// Refuses to load `newShards` more when, at the size of the shards held now, they would take
    /// this worker past `--max-memory` (the coordinator places within each worker's room; this
    /// guards against its estimate being off).
    private func checkRoom(for newShards: Int) throws {
        guard maxMemory > 0, newShards > 0, !stores.isEmpty else { return }
        let held = stores.values.reduce(0) { $0 + $1.store.residentBytes }
        let perShard = held / stores.count
        let resident = processResidentBytes()
        if resident + newShards * perShard > maxMemory {
            let room = max(0, (maxMemory - resident) / max(1, perShard))
            throw ClusterError("\(actorSystem.node.name) has room for \(room) more shards within --max-memory \(maxMemory) bytes (resident \(resident), \(perShard) bytes per shard), asked to load \(newShards)")
        }
    }

    /// Refuses to build `bytes` more of extra columns that would take the process past
    /// `--max-memory` (a deployment that needs more columns than the worker has room for).
    func checkRoom(forExtraBytes bytes: Int) throws {
        guard maxMemory > 0, bytes > 0 else { return }
        let resident = processResidentBytes()
        if resident + bytes > maxMemory {
            throw ClusterError("\(actorSystem.node.name) has no room for \(bytes) bytes of extra feature columns within --max-memory \(maxMemory) bytes (resident \(resident))")
        }
    }

    /// Fencing: an order from an older lease term than one already obeyed (a coordinator that was
    /// frozen or cut off while another took over), or from an older map epoch in the same term, is
    /// refused.
    func obey(term: Int64, epoch: Int64?, _ order: String) throws {
        if term < obeyed.term || (term == obeyed.term && epoch.map { $0 < obeyed.epoch } ?? false) {
            logger.warning("refused an order from a stale coordinator", metadata: ["order": "\(order)", "term": "\(term)", "epoch": "\(epoch.map { "\($0)" } ?? "-")",
                                                                                "obeyed": "term \(obeyed.term) epoch \(obeyed.epoch)"])
            throw ClusterError("stale coordinator order (\(order)): term \(term)\(epoch.map { " epoch \($0)" } ?? "") is older than term \(obeyed.term) epoch \(obeyed.epoch) already obeyed")
        }
        if term > obeyed.term { obeyed = (term, epoch ?? 0) } else if let epoch { obeyed.epoch = max(obeyed.epoch, epoch) }
    }

    private func hostActor(_ shard: Int, role: ShardRole, model: ScoringModel) -> ShardActor {
        let system = actorSystem, store = stores[shard] ?? LoadedShard(store: ProfileStore()), scoring = scoring
        let challenger = challenger, others = activeModels
        return system.withActorName(ShardActor.name(shard, role: role)) {
            ShardActor(actorSystem: system, shard: shard, store: store, model: model, challenger: challenger, others: others, scoring: scoring)
        }
    }

    /// A shard's profiles, for a worker taking it over.
    /// - Throws: `ClusterError` when this worker does not hold the shard.
    public distributed func export(_ shard: Int) async throws -> ShardState {
        guard let loaded = stores[shard] else { throw ClusterError("\(actorSystem.node.name) does not hold shard \(shard)") }
        // Taken on the event thread between two groups: the profiles and the event state agree.
        let (ids, values, snapshot, undecided) = try await events.exportForHandoff(shard, store: loaded)
        var state = ShardState(shard: shard, featureCount: loaded.store.featureCount, ids: ids, values: values)
        state.events = snapshot
        state.undecided = undecided
        state.profileGeneration = loaded.generation
        return state
    }

    /// Stops hosting `owned` as owner and `standby` as standby (the map has moved them); a
    /// shard's profiles go when it has no role left here.
    public distributed func release(owned: [Int], standby: [Int], term: Int64) async throws {
        try obey(term: term, epoch: nil, "release")
        for s in owned { self.owned[s] = nil }
        for s in standby { standing[s] = nil }
        let gone = Set(owned + standby).filter { self.owned[$0] == nil && standing[$0] == nil }
        for s in gone { stores[s] = nil }
        await events.release(Array(gone))
        // An owner that stays as standby follows the log from now on.
        let demoted = owned.filter { standing[$0] != nil }.compactMap { s in stores[s].map { (shard: s, store: $0, snapshot: ShardEventSnapshot?.none, fromDatabase: false) } }
        try? await events.standBy(demoted)
        releaseFreedHeap()
        logger.info("shards released", metadata: ["owned": "\(owned.count)", "standby": "\(standby.count)"])
    }

    /// Logs, applies and acknowledges subscriber events sent to this worker (each with the shard
    /// the sender's map gives it); see `EventIngest`.
    public distributed func ingest(_ batch: EventBatch) async -> EventAcks {
        await events.ingest(batch)
    }

    /// The last events applied to `subscriber` of `shard` (newest last; empty when none or when
    /// this worker does not hold the shard).
    public distributed func recentEvents(_ subscriber: Int64, shard: Int) async -> [RecentEvent] {
        await events.recent(subscriber, shard: shard)
    }

    /// The event path's counters and where triggers are published ("" when they are not).
    public distributed func eventStatus() async -> WorkerEventStatus {
        WorkerEventStatus(name: actorSystem.node.name, stats: await events.stats(), triggerFeed: triggerFeedEndpoint,
                          publicKey: actorSystem.node.publicKey)
    }

    /// The coordinator started, replaced or stopped the live campaign: it is read again now
    /// (rather than at the next poll). Nothing is taken from the wire: the campaign is read from
    /// PostgreSQL with this worker's own credentials.
    public distributed func liveCampaignChanged(term: Int64) throws {
        try obey(term: term, epoch: nil, "liveCampaignChanged")
        events.live?.poke()
    }

    /// The shards hosted, by role.
    public distributed func holdings() -> Holdings {
        Holdings(owned: owned.keys.sorted(), standby: standing.keys.sorted())
    }

    /// The coordinator has moved every shard away: the worker process stops.
    public distributed func leave(term: Int64) throws {
        try obey(term: term, epoch: nil, "leave")
        logger.notice("drained by the coordinator; leaving", metadata: ["shards": "\(owned.count)"])
        onLeave()
    }

    /// The profiles of the shards among `shards` this worker owns.
    func ownedStores(_ shards: [Int32]) -> [Int: LoadedShard] {
        var out: [Int: LoadedShard] = [:]
        for s in Set(shards) where owned[Int(s)] != nil { out[Int(s)] = stores[Int(s)] }
        return out
    }

    /// The model its shards score with (nil before the first assignment).
    var currentModel: ScoringModel? { model }
    /// The challenger beside it.
    var currentChallenger: ServedChallenger? { challenger }

    /// What the worker's metrics and `/readyz` read: its status and the shards of an assignment
    /// it is still loading (ready: hosting some and loading none).
    public func localStatus() -> (status: WorkerStatus, loading: Int) {
        (status(), loading.count)
    }

    /// What this worker holds.
    public distributed func status() -> WorkerStatus {
        var subscribers = 0, bytes = 0, standbyBytes = 0
        for (shard, loaded) in stores {
            if owned[shard] != nil {
                subscribers += loaded.store.count
                bytes += loaded.store.residentBytes
            } else {
                standbyBytes += loaded.store.residentBytes
            }
        }
        return WorkerStatus(name: actorSystem.node.name, endpoint: actorSystem.node.endpoint, shards: owned.count,
                            standbyShards: standing.count, subscribers: subscribers, profileBytes: bytes, standbyBytes: standbyBytes,
                            residentBytes: processResidentBytes(), modelVersion: model?.version ?? "", cores: scoring.count, maxMemory: maxMemory)
    }
}

extension WorkerActor: AccessControlled {
    /// Only the coordinator places and removes shards; workers stream shards to each other;
    /// everyone with a reader's role may see a worker's status.
    public static let access: [String: Set<Role>] = [
        "assign(_:)": [.coordinator],
        "release(owned:standby:term:)": [.coordinator],
        "holdings()": [.coordinator],
        "leave(term:)": [.coordinator],
        "export(_:)": [.worker],
        "status()": Role.readers,
        "lookup(batch:)": Role.readers,
        // An operator's producer sends straight to the worker; the coordinator forwards what its
        // HTTP API took from an operator's token (POST /v1/events).
        "ingest(_:)": Role.operators.union([.coordinator]),
        "recentEvents(_:shard:)": Role.readers,
        "eventStatus()": Role.readers,
        "writeSnapshots(_:shardCount:)": [.coordinator],
        "shardLoads()": Role.readers,
        "erase(_:term:)": [.coordinator],
        "prepareModel(_:term:)": [.coordinator],
        "holdFeatures(_:term:)": [.coordinator],
        "switchModel(version:term:)": [.coordinator],
        "switchChallenger(_:term:)": [.coordinator],
        "serveActive(_:term:)": [.coordinator],
        "serveActive(_:challengers:term:)": [.coordinator],
        "prepareComparison(_:term:)": [.coordinator],
        "compareModels(_:term:)": [.coordinator],
        "compareModels(_:activeModel:segment:term:)": [.coordinator],
        "profilesErased(from:to:term:)": [.coordinator],
        "liveCampaignChanged(term:)": [.coordinator],
    ]
}

/// This process's resident set size in bytes (from /proc/self/statm).
public func processResidentBytes() -> Int {
    guard let f = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, 256, f) != nil else { return 0 }
    let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// Returns the heap's free pages to the system (glibc's `malloc_trim`, looked up at run time:
/// Swift's Glibc module does not declare it). A no-op elsewhere.
func releaseFreedHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}
