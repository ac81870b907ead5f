import ClusterSystem
import Distributed
import Logging
import ProfileDatabase
import SubscriberProfiles
import WireFormat
#if canImport(Glibc)
import Glibc
#endif

/// A worker node's control actor (named `worker`): the coordinator tells it which shards to host
/// and with which model; it loads their profiles from PostgreSQL and starts one `ShardActor` each.
public distributed actor WorkerActor {
    public typealias ActorSystem = ClusterActorSystem

    /// The name every worker gives this actor.
    public static let name = "worker"

    private var shards: [Int: ShardActor] = [:]
    private var held: [Int: (subscribers: Int, bytes: Int)] = [:]
    private var model: ScoringModel?
    private let scoring: ScoringThreads
    private let loader = BlockingThread(name: "cg-load", niceness: 5)
    private let logger: Logger
    private let onLeave: @Sendable () -> Void

    /// - Parameter onLeave: called when the coordinator has drained this worker and tells it to go.
    public init(actorSystem: ClusterActorSystem, threads: Int, logger: Logger, onLeave: @escaping @Sendable () -> Void = {}) {
        self.actorSystem = actorSystem
        self.onLeave = onLeave
        scoring = ScoringThreads(count: threads)
        self.logger = logger
    }

    /// Loads `assignment.shards` (replacing the model if its version changed) and hosts them.
    /// - Returns: the subscribers loaded per shard, in the assignment's order.
    public distributed func assign(_ assignment: Assignment) async throws -> [Int] {
        if model?.version != assignment.model.version {
            let next = try ScoringModel(bytes: assignment.model.bytes.elements, source: assignment.model.source)
            if model != nil {
                // Existing shards keep their profiles and take the new model.
                for (shard, _) in shards { shards[shard] = nil }
                logger.notice("model changed: shards will be reloaded", metadata: ["model": "\(next.version)"])
            }
            model = next
        }
        let model = model!
        let wanted = assignment.shards.filter { shards[$0] == nil }
        let url = assignment.postgresURL, count = assignment.shardCount
        let start = ContinuousClock.now
        let loaded = try await loader.run { () throws -> [Int: LoadedShard] in
            let (stores, _) = try ProfileLoader(url: url).load(shards: wanted, shardCount: count, streams: 2)
            return stores.mapValues { LoadedShard(store: $0) }
        }
        var subscribers = 0
        for shard in wanted {
            let store = loaded[shard] ?? LoadedShard(store: ProfileStore())
            held[shard] = (store.store.count, store.store.residentBytes)
            subscribers += store.store.count
            let system = actorSystem
            shards[shard] = system.withActorName(ShardActor.name(shard)) {
                ShardActor(actorSystem: system, shard: shard, store: store, model: model, scoring: scoring)
            }
        }
        // Loading went through libpq's buffers and growing columns: give the freed heap back to
        // the system, or it stays in the process's resident set next to the profiles.
        releaseFreedHeap()
        logger.info("shards loaded", metadata: ["shards": "\(wanted.count)", "subscribers": "\(subscribers)",
                                                  "seconds": "\(ContinuousClock.now - start)", "model": "\(model.version)"])
        return assignment.shards.map { held[$0]?.subscribers ?? 0 }
    }

    /// Stops hosting `shards` (they moved to another worker).
    public distributed func release(_ shards: [Int]) {
        for s in shards {
            self.shards[s] = nil
            held[s] = nil
        }
        releaseFreedHeap()
        logger.info("shards released", metadata: ["shards": "\(shards.count)"])
    }

    /// The coordinator has moved every shard away: the worker process stops.
    public distributed func leave() {
        logger.notice("drained by the coordinator; leaving", metadata: ["shards": "\(shards.count)"])
        onLeave()
    }

    /// What this worker holds.
    public distributed func status() -> WorkerStatus {
        WorkerStatus(name: actorSystem.node.name, endpoint: actorSystem.node.endpoint, shards: shards.count,
                     subscribers: held.values.reduce(0) { $0 + $1.subscribers },
                     profileBytes: held.values.reduce(0) { $0 + $1.bytes }, residentBytes: processResidentBytes(),
                     modelVersion: model?.version ?? "", cores: scoring.count)
    }
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
