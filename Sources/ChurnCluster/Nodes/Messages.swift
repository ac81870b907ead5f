import ClusterSystem
import SubscriberProfiles
import WireFormat

/// The model as the coordinator distributes it: its bytes and version id.
public struct ModelPackage: Sendable, WireCodable {
    public var version: String
    public var source: String
    public var bytes: BulkArray<UInt8>

    public init(version: String, source: String, bytes: [UInt8]) {
        self.version = version
        self.source = source
        self.bytes = BulkArray(bytes)
    }

    public func encode(to w: inout WireWriter) { w.write(version); w.write(source); w.write(bytes) }
    public init(from r: inout WireReader) throws(WireError) { version = try r.read(); source = try r.read(); bytes = try r.read() }
}

/// What a worker hosts a shard as.
public enum ShardRole: UInt8, Sendable, WireCodable {
    /// Answers queries and jobs (actor `shard/N`).
    case owner = 0
    /// Holds a warm copy and answers queries only when a client cannot reach the owner (actor
    /// `standby/N`); takes over at once when the owner is lost.
    case standby = 1

    public func encode(to w: inout WireWriter) { w.write(rawValue) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        guard let role = ShardRole(rawValue: try r.read()) else { throw WireError(offset: at, expected: "a shard role (0 owner, 1 standby)") }
        self = role
    }
}

/// What the coordinator tells a worker to host: shards, each with its role and where its
/// profiles come from (the worker's own copy, a peer streaming its copy, or PostgreSQL).
public struct Assignment: Sendable, WireCodable {
    public var shardCount: Int
    /// Shards to host (added to what the worker already hosts).
    public var shards: [Int]
    /// The role per shard.
    public var roles: [ShardRole]
    /// Per shard, the node to stream the profiles from when the worker has no copy; nil means
    /// load them from PostgreSQL.
    public var sources: [NodeID?]
    public var epoch: Int64
    /// The coordinator's lease term: a worker refuses an order older than one it has obeyed
    /// (a coordinator that lost its lease while frozen cannot move shards).
    public var term: Int64
    public var model: ModelPackage
    /// The coordinator's trigger rules (`coordinator --triggers`).
    public var triggers: TriggerPackage = .none
    /// The challenger served beside the model (nil: none; `models deploy --as challenger`).
    public var challenger: ChallengerPackage?
    /// Schema features to hold beside the catalogue's and the models' (the live campaign's
    /// eligibility reads them): loaded before the shards answer.
    public var features: [String] = []
    /// The models active beside the served one (`models activate`), scored in every job.
    public var active: [ActiveModelPackage] = []
    /// The challengers of active models (`models deploy NAME --as challenger` for an active
    /// model), at most one per active model; written only when there is one (a worker one version
    /// older reads an assignment without them).
    public var activeChallengers: [ChallengerPackage] = []
    // No database settings travel with an assignment: each worker has its own (`--postgres`
    // with the password from PGPASSWORD/PGPASSFILE), so no secret crosses the wire.

    public func encode(to w: inout WireWriter) {
        w.write(shardCount); w.write(shards); w.write(roles); w.write(sources); w.write(epoch); w.write(term); w.write(model); w.write(triggers)
        w.write(challenger); w.write(features); w.write(active)
        if !activeChallengers.isEmpty { w.write(activeChallengers) }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shardCount = try r.read(); shards = try r.read(); roles = try r.read(); sources = try r.read()
        epoch = try r.read(); term = try r.read(); model = try r.read()
        triggers = r.remaining > 0 ? try r.read() : .none  // from a coordinator one version older
        challenger = r.remaining > 0 ? try r.read() : nil
        features = r.remaining > 0 ? try r.read() : []
        active = r.remaining > 0 ? try r.read() : []
        activeChallengers = r.remaining > 0 ? try r.read() : []
        guard active.count <= maxActiveModels, Set(active.map(\.name)).count == active.count else {
            throw WireError(offset: at, expected: "at most \(maxActiveModels) active models, each named once")
        }
        guard ActiveChallengers.fit(activeChallengers, active: active) else {
            throw WireError(offset: at, expected: "at most one challenger per active model, each of another version than its champion")
        }
        guard features.count <= FeatureSchema.maxFeatures, features.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else {
            throw WireError(offset: at, expected: "at most \(FeatureSchema.maxFeatures) feature names of 1–63 bytes")
        }
        guard roles.count == shards.count, sources.count == shards.count else {
            throw WireError(offset: at, expected: "an assignment with a role and a source per shard (\(shards.count) shards, \(roles.count) roles, \(sources.count) sources)")
        }
        guard (1...ShardMap.maxShardCount).contains(shardCount) else {
            throw WireError(offset: at, expected: "a shard count of 1–\(ShardMap.maxShardCount), found \(shardCount)")
        }
        guard shards.allSatisfy({ (0..<shardCount).contains($0) }), Set(shards).count == shards.count else {
            throw WireError(offset: at, expected: "distinct shard numbers below the shard count \(shardCount)")
        }
    }

    public init(shardCount: Int, shards: [Int], roles: [ShardRole]? = nil, sources: [NodeID?]? = nil, epoch: Int64, term: Int64, model: ModelPackage,
                triggers: TriggerPackage = .none, challenger: ChallengerPackage? = nil, features: [String] = [], active: [ActiveModelPackage] = [], activeChallengers: [ChallengerPackage] = []) {
        self.triggers = triggers
        self.activeChallengers = activeChallengers
        self.active = active
        self.features = features
        self.challenger = challenger
        self.shardCount = shardCount
        self.term = term
        self.shards = shards
        self.roles = roles ?? Array(repeating: .owner, count: shards.count)
        self.sources = sources ?? Array(repeating: nil, count: shards.count)
        self.epoch = epoch
        self.model = model
    }
}

/// The shards a worker hosts, by role (what a coordinator that restarted adopts).
public struct Holdings: Sendable, WireCodable {
    public var owned: [Int]
    public var standby: [Int]

    public init(owned: [Int], standby: [Int]) {
        self.owned = owned
        self.standby = standby
    }

    public func encode(to w: inout WireWriter) { w.write(owned); w.write(standby) }
    public init(from r: inout WireReader) throws(WireError) { owned = try r.read(); standby = try r.read() }
}

/// A shard's profiles as they travel from one worker to another (the store's flat form).
public struct ShardState: Sendable, WireCodable {
    public var shard: Int
    public var featureCount: Int
    public var ids: BulkArray<Int64>
    /// Feature-major: feature j of subscriber r at `j * ids.count + r`.
    public var values: BulkArray<Float>
    /// The shard's event state (its sequence number, windowed buckets, cool-downs), from a sender
    /// that has one; a receiver replays the log beyond it.
    var events: ShardEventSnapshot?
    /// The generation of `subscriber_profiles` the profiles descend from (0: unknown); see
    /// `ProfileSnapshotStore`.
    var profileGeneration: Int64 = 0
    /// Triggers the sender's events fired on the shard whose live decision it has not recorded
    /// yet: the receiver decides them when it owns the shard (it took the state after their
    /// events, so it never fires them itself; a second decision is `already`).
    var undecided: [FiredTrigger] = []

    public init(shard: Int, featureCount: Int, ids: [Int64], values: [Float]) {
        self.shard = shard
        self.featureCount = featureCount
        self.ids = BulkArray(ids)
        self.values = BulkArray(values)
    }

    public func encode(to w: inout WireWriter) {
        w.write(shard); w.write(featureCount); w.write(ids); w.write(values); w.write(events); w.write(profileGeneration)
        // Only when there are any: a receiver one version older reads no further than the
        // generation (and refuses a reply with bytes it did not read).
        if !undecided.isEmpty { w.write(undecided) }
    }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shard = try r.read(); featureCount = try r.read(); ids = try r.read(); values = try r.read()
        events = r.remaining > 0 ? try r.read() : nil  // a peer one version older sends none
        profileGeneration = r.remaining > 0 ? try r.read() : 0  // likewise
        undecided = r.remaining > 0 ? try r.read() : []  // likewise
        guard (1...65_536).contains(featureCount), ids.elements.count.multipliedReportingOverflow(by: featureCount) == (values.elements.count, false) else {
            throw WireError(offset: at, expected: "a shard's profiles: 1–65536 features and features × subscribers values (\(featureCount) × \(ids.elements.count) ≠ \(values.elements.count))")
        }
    }
}

/// A worker's state, for `churngrid status`.
public struct WorkerStatus: Sendable, WireCodable, Codable {
    public var name: String
    public var endpoint: String
    /// Shards it owns.
    public var shards: Int
    /// Shards it holds a standby copy of.
    public var standbyShards: Int
    /// Subscribers in the shards it owns.
    public var subscribers: Int
    /// Bytes held by the profile stores of the shards it owns.
    public var profileBytes: Int
    /// Bytes held by its standby copies (of shards it does not own).
    public var standbyBytes: Int
    /// The process's resident memory.
    public var residentBytes: Int
    public var modelVersion: String
    public var cores: Int
    /// The memory it may use (`worker --max-memory`; 0: no limit): shards are placed within it.
    public var maxMemory: Int = 0

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(endpoint); w.write(shards); w.write(standbyShards); w.write(subscribers); w.write(profileBytes); w.write(standbyBytes); w.write(residentBytes)
        w.write(modelVersion); w.write(cores); w.write(maxMemory)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); endpoint = try r.read(); shards = try r.read(); standbyShards = try r.read(); subscribers = try r.read()
        profileBytes = try r.read(); standbyBytes = try r.read(); residentBytes = try r.read(); modelVersion = try r.read(); cores = try r.read()
        maxMemory = try r.read()
    }

    public init(name: String, endpoint: String, shards: Int, standbyShards: Int, subscribers: Int, profileBytes: Int, standbyBytes: Int,
                residentBytes: Int, modelVersion: String, cores: Int, maxMemory: Int = 0) {
        self.maxMemory = maxMemory
        self.name = name
        self.endpoint = endpoint
        self.shards = shards
        self.standbyShards = standbyShards
        self.standbyBytes = standbyBytes
        self.subscribers = subscribers
        self.profileBytes = profileBytes
        self.residentBytes = residentBytes
        self.modelVersion = modelVersion
        self.cores = cores
    }
}

/// A rescoring job's state (the `state` column of `scoring_jobs`).
public enum JobState: String, Sendable, Codable, CaseIterable, CustomStringConvertible, WireCodable {
    case running, completed, failed

    public var description: String { rawValue }

    public func encode(to w: inout WireWriter) { w.write(rawValue) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let text: String = try r.read()
        guard let state = JobState(rawValue: text) else { throw WireError(offset: at, expected: "a job state (running, completed, failed)") }
        self = state
    }
}

/// A cluster member's state, as the coordinator sees it.
public enum NodeState: String, Sendable, Codable, CaseIterable, CustomStringConvertible, WireCodable {
    /// Hosts its share of the shards.
    case active
    /// Its shards are moving away before it leaves.
    case draining

    public var description: String { rawValue }

    public func encode(to w: inout WireWriter) { w.write(rawValue) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let text: String = try r.read()
        guard let state = NodeState(rawValue: text) else { throw WireError(offset: at, expected: "a node state (active, draining)") }
        self = state
    }
}

/// A rescoring job's progress.
public struct JobStatus: Sendable, WireCodable, Codable {
    public var id: Int64
    public var state: JobState
    public var modelVersion: String
    public var shardsDone: Int
    public var shardCount: Int
    public var subscribers: Int
    public var seconds: Double
    /// Shards re-run after a worker was lost or a call failed.
    public var retries: Int
    /// Shards whose rescoring made no progress past the straggler deadline and were run again
    /// elsewhere (the standby, or a worker the shard moved to); the first answer counts.
    public var stragglers: Int = 0
    public var error: String?
    /// Where the time went, once the job has ended on the coordinator that ran it. Not on the
    /// wire (a `JobStatus` is nested in `ClusterStatus`, so a field added here would break older
    /// peers): `CoordinatorActor.jobTimeline(id:)` answers it, and `rescore --json` shows it.
    public var timeline: JobTimeline?

    public var subscribersPerSecond: Double { seconds > 0 ? Double(subscribers) / seconds : 0 }

    public func encode(to w: inout WireWriter) {
        w.write(id); w.write(state); w.write(modelVersion); w.write(shardsDone); w.write(shardCount); w.write(subscribers)
        w.write(seconds); w.write(retries); w.write(stragglers); w.write(error)
    }

    public init(from r: inout WireReader) throws(WireError) {
        id = try r.read(); state = try r.read(); modelVersion = try r.read(); shardsDone = try r.read(); shardCount = try r.read()
        subscribers = try r.read(); seconds = try r.read(); retries = try r.read(); stragglers = try r.read(); error = try r.read()
    }

    public init(id: Int64, state: JobState, modelVersion: String, shardsDone: Int, shardCount: Int, subscribers: Int, seconds: Double, retries: Int, error: String?) {
        self.id = id
        self.state = state
        self.modelVersion = modelVersion
        self.shardsDone = shardsDone
        self.shardCount = shardCount
        self.subscribers = subscribers
        self.seconds = seconds
        self.retries = retries
        self.error = error
    }
}

/// The whole cluster, for `churngrid status`.
public struct ClusterStatus: Sendable, WireCodable, Codable {
    public var coordinator: String
    public var shardCount: Int
    public var epoch: Int64
    public var modelVersion: String
    public var unassignedShards: Int
    /// Shards being loaded by a new owner (a join, leave or failover in progress); at least 1
    /// from a worker's registration until its shards are planned and placed.
    public var movingShards: Int
    public var workers: [WorkerStatus]
    /// Workers that did not answer the status request.
    public var silentWorkers: [String]
    public var job: JobStatus?
    /// While the coordinator waits for `--min-workers` before placing shards: "waiting for 1 more
    /// worker (1 of 2)"; nil once shards are placed.
    public var starting: String?
    /// How each worker got the shards it loaded (PostgreSQL table, snapshot, stream).
    public var shardLoads: [ShardLoads]?
    /// The last job's drift against its model version's reference (nil: none measured yet).
    public var drift: DriftReport?
    /// The challenger served beside the model (nil: none).
    public var challenger: ChallengerStatus?
    /// The models active beside the served one (`models activate`), scored in every job.
    public var activeModels: [ActiveModelStatus] = []
    /// Placing shards failed and is tried again (nil: the last placement succeeded).
    public var placement: PlacementPending?
    /// Whether the coordinator's PostgreSQL answers (nil: a coordinator that does not say).
    public var database: DatabaseStatus?

    public func encode(to w: inout WireWriter) {
        w.write(coordinator); w.write(shardCount); w.write(epoch); w.write(modelVersion); w.write(unassignedShards)
        w.write(movingShards); w.write(workers); w.write(silentWorkers); w.write(job)
        w.write(starting); w.write(shardLoads ?? [])
        w.write(drift)
        w.write(challenger)
        w.write(activeModels)
        w.write(placement)
        w.write(database)
    }

    public init(from r: inout WireReader) throws(WireError) {
        coordinator = try r.read(); shardCount = try r.read(); epoch = try r.read(); modelVersion = try r.read()
        unassignedShards = try r.read(); movingShards = try r.read(); workers = try r.read(); silentWorkers = try r.read(); job = try r.read()
        // Fields a coordinator one version older does not send.
        if r.remaining > 0 {
            starting = try r.read()
            shardLoads = try r.read([ShardLoads].self)
        }
        if r.remaining > 0 { drift = try r.read() }
        if r.remaining > 0 { challenger = try r.read() }
        if r.remaining > 0 { activeModels = try r.read() }
        if r.remaining > 0 { placement = try r.read() }
        if r.remaining > 0 { database = try r.read() }
    }

    public init(coordinator: String, shardCount: Int, epoch: Int64, modelVersion: String, unassignedShards: Int, movingShards: Int,
                workers: [WorkerStatus], silentWorkers: [String], job: JobStatus?, starting: String? = nil, shardLoads: [ShardLoads]? = nil,
                drift: DriftReport? = nil, challenger: ChallengerStatus? = nil) {
        self.drift = drift
        self.challenger = challenger
        self.starting = starting
        self.shardLoads = shardLoads
        self.movingShards = movingShards
        self.coordinator = coordinator
        self.shardCount = shardCount
        self.epoch = epoch
        self.modelVersion = modelVersion
        self.unassignedShards = unassignedShards
        self.workers = workers
        self.silentWorkers = silentWorkers
        self.job = job
    }
}

/// One subscriber's score computed now, for `churngrid score`.
public struct LiveScore: Sendable, WireCodable, Codable {
    public var subscriberID: Int64
    public var probability: Double
    public var riskBand: String
    public var reasons: [Reason]
    public var modelVersion: String
    public var shard: Int
    public var node: String
    public var epoch: Int64

    public func encode(to w: inout WireWriter) {
        w.write(subscriberID); w.write(probability); w.write(riskBand); w.write(reasons); w.write(modelVersion); w.write(shard); w.write(node); w.write(epoch)
    }

    public init(from r: inout WireReader) throws(WireError) {
        subscriberID = try r.read(); probability = try r.read(); riskBand = try r.read(); reasons = try r.read()
        modelVersion = try r.read(); shard = try r.read(); node = try r.read(); epoch = try r.read()
    }

    public init(subscriberID: Int64, probability: Double, riskBand: String, reasons: [Reason], modelVersion: String, shard: Int, node: String, epoch: Int64) {
        self.subscriberID = subscriberID
        self.probability = probability
        self.riskBand = riskBand
        self.reasons = reasons
        self.modelVersion = modelVersion
        self.shard = shard
        self.node = node
        self.epoch = epoch
    }
}

/// The answer to a live query.
public enum ScoreLookup: Sendable, WireCodable {
    case found(LiveScore)
    /// No such subscriber in its shard.
    case notFound(subscriberID: Int64, shard: Int)
    /// The shard has no ready owner right now (a move or failover in progress).
    case unavailable(shard: Int, reason: String)

    /// This answer with the shard map epoch it was routed by.
    func stamped(epoch: Int64) -> ScoreLookup {
        guard case .found(var s) = self else { return self }
        s.epoch = epoch
        return .found(s)
    }

    public func encode(to w: inout WireWriter) {
        switch self {
        case .found(let s): w.write(UInt8(1)); w.write(s)
        case .notFound(let id, let shard): w.write(UInt8(2)); w.write(id); w.write(shard)
        case .unavailable(let shard, let reason): w.write(UInt8(3)); w.write(shard); w.write(reason)
        }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        switch try r.read(UInt8.self) {
        case 1: self = .found(try r.read())
        case 2: self = .notFound(subscriberID: try r.read(), shard: try r.read())
        case 3: self = .unavailable(shard: try r.read(), reason: try r.read())
        case let t: throw WireError(offset: at, expected: "a score lookup tag 1–3, found \(t)")
        }
    }
}

/// A cluster member as `churngrid nodes list` shows it.
public struct NodeInfo: Sendable, WireCodable, Codable {
    public var state: NodeState
    public var name: String
    public var endpoint: String
    /// Shards the shard map gives it.
    public var shards: Int
    /// Of those, shards loaded and serving.
    public var readyShards: Int
    /// Shards it holds a standby copy of.
    public var standbyShards: Int

    public init(state: NodeState, name: String, endpoint: String, shards: Int, readyShards: Int, standbyShards: Int) {
        self.state = state
        self.name = name
        self.endpoint = endpoint
        self.shards = shards
        self.readyShards = readyShards
        self.standbyShards = standbyShards
    }

    public func encode(to w: inout WireWriter) {
        w.write(state); w.write(name); w.write(endpoint); w.write(shards); w.write(readyShards); w.write(standbyShards)
    }

    public init(from r: inout WireReader) throws(WireError) {
        state = try r.read(); name = try r.read(); endpoint = try r.read(); shards = try r.read(); readyShards = try r.read()
        standbyShards = try r.read()
    }
}

/// What a client needs to send a query straight to the node holding the shard: the shard map
/// (owners of shards that are not ready are left out) and the owners' node ids.
public struct Routing: Sendable, WireCodable {
    public var map: ShardMap
    public var nodes: [NodeID]

    public init(map: ShardMap, nodes: [NodeID]) {
        self.map = map
        self.nodes = nodes
    }

    /// The node serving `shard`, if any.
    public func node(serving shard: Int) -> NodeID? {
        guard let owner = map.owners[shard] else { return nil }
        return nodes.first { $0.name == owner }
    }

    /// The node holding `shard`'s standby copy, if any.
    public func standby(of shard: Int) -> NodeID? {
        guard let standby = map.standbys[shard] else { return nil }
        return nodes.first { $0.name == standby }
    }

    public func encode(to w: inout WireWriter) { w.write(map); w.write(nodes) }
    public init(from r: inout WireReader) throws(WireError) { map = try r.read(); nodes = try r.read() }
}

/// What the coordinator answers a worker's heartbeat.
public enum Membership: UInt8, Sendable, WireCodable {
    /// The worker is a member: nothing to do.
    case member = 0
    /// The coordinator does not count it (failed over while frozen or cut off, or the coordinator
    /// restarted): it registers again.
    case unknown = 1
    /// It was drained away and is being told to leave.
    case leaving = 2

    public func encode(to w: inout WireWriter) { w.write(rawValue) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        guard let m = Membership(rawValue: try r.read()) else { throw WireError(offset: at, expected: "a membership (0 member, 1 unknown, 2 leaving)") }
        self = m
    }
}

/// The coordinator's view of the cluster without asking the workers (metrics, readiness).
public struct CoordinatorOverview: Sendable {
    public var term: Int64
    public var epoch: Int64
    public var shardCount: Int
    /// Shards with an owner in the map.
    public var owned: Int
    /// Shards whose owner has loaded them.
    public var ready: Int
    /// Shards being loaded by a new owner now.
    public var moving: Int
    public var nodes: [NodeInfo]
    /// Members whose heartbeat has been missing for more than 3 s.
    public var silent: [String]
    public var job: JobStatus?
    /// Whether the coordinator's PostgreSQL answers.
    public var database: DatabaseStatus?

    /// Every shard owned and ready (the coordinator's `/readyz`).
    public var isReady: Bool { shardCount > 0 && ready == shardCount }
}
