import Postgres
import ProfileDatabase
import SubscriberProfiles
import WireFormat

/// How a worker got the shards it loaded, since it started (`churngrid status --json`,
/// `shard_loads`): what the start and reload tests count.
public struct ShardLoads: Sendable, WireCodable, Codable, Equatable {
    public var worker: String
    /// Shards loaded from the wide table `subscriber_profiles`.
    public var fromTable = 0
    /// Shards loaded from their snapshot (`churngrid_shard_snapshots`).
    public var fromSnapshot = 0
    /// Shards streamed from another worker.
    public var streamed = 0
    /// Snapshots found but not used (corrupt, stale, other schema): those shards came from the table.
    public var snapshotsRejected = 0
    /// The last rejection, naming the shard.
    public var lastRejection = ""
    /// Snapshots this worker wrote.
    public var snapshotsWritten = 0

    public init(worker: String) { self.worker = worker }

    public func encode(to w: inout WireWriter) {
        w.write(worker); w.write(fromTable); w.write(fromSnapshot); w.write(streamed); w.write(snapshotsRejected); w.write(lastRejection)
        w.write(snapshotsWritten)
    }

    public init(from r: inout WireReader) throws(WireError) {
        worker = try r.read(); fromTable = try r.read(); fromSnapshot = try r.read(); streamed = try r.read()
        snapshotsRejected = try r.read(); lastRejection = try r.read(); snapshotsWritten = try r.read()
    }
}

/// Loading shards that nobody streams: from their snapshot when a valid one exists (profiles and
/// event state; the owner then replays the log after the snapshot's sequence number, as for a
/// streamed shard), else from `subscriber_profiles`. Blocking: runs on a thread of its own.
enum ShardLoading {
    struct Loaded: @unchecked Sendable {
        // @unchecked: the stores are handed from the loading thread to the worker actor, which
        // owns them from then on (see `LoadedShard`).
        var stores: [Int: LoadedShard] = [:]
        /// The event state of the shards loaded from snapshots.
        var events: [Int: ShardEventSnapshot] = [:]
        /// The shards loaded from the table.
        var fromTable: [Int] = []
        /// Snapshots that could not be used: (shard, why).
        var rejected: [(shard: Int, reason: String)] = []
    }

    /// Loads from the table tried before the shards are given up (the profiles kept changing).
    static let maxAttempts = 3

    static func load(url: String, shards: [Int], shardCount: Int, streams: Int = 2) throws -> Loaded {
        var out = Loaded()
        let lacking = catalogueLacking(url: url)
        do {
            let found = try ProfileSnapshotStore.read(url: url, shards: shards, shardCount: shardCount, streams: streams) { shard, found in
                switch found {
                case .invalid(let why): return Result<(LoadedShard, ShardEventSnapshot), SnapshotRejected>.failure(SnapshotRejected(why))
                case .snapshot(let d): return Result { () throws(SnapshotRejected) in try restore(d, shard: shard, lacking: lacking) }
                }
            }
            for (shard, result) in found {
                switch result {
                case .success(let (store, events)):
                    out.stores[shard] = store
                    out.events[shard] = events
                case .failure(let why):
                    out.rejected.append((shard, why.description))
                }
            }
        } catch {
            // Snapshots are an optimisation: unreadable ones (an older schema, a bad row) leave
            // every shard to the table, which is the truth.
            out.rejected = shards.map { ($0, "the snapshots could not be read: \(error)") }
            out.stores = [:]
            out.events = [:]
        }
        let rest = shards.filter { out.stores[$0] == nil }
        if !rest.isEmpty {
            let connection = try PostgresConnection(url: url)
            var attempt = 1
            while true {
                // The generation row held FOR SHARE while the streams copy: an import or an erasure
                // (whose statement trigger raises the generation, or which locks it first) cannot
                // commit meanwhile, so these profiles are those of the `as_of` read here — the events
                // received after it are replayed onto them, none before. The generation is read again
                // after the COPY all the same (a lock lost with its connection), and a change loads
                // the shards again.
                try connection.execute("BEGIN")
                defer { try? connection.execute("ROLLBACK") }
                guard let generation = try connection.query("SELECT generation FROM churngrid_profile_generation FOR SHARE").scalar.flatMap({ Int64($0) }) else {
                    throw ClusterError("churngrid_profile_generation has no row")
                }
                let asOf = try EventLog.profilesAsOf(connection)
                // By the schema in force: a catalogue feature it lacks (migrated with --allow-drop) is
                // held as missing.
                let (stores, _) = try ProfileLoader.catalogue(url: url, connection: connection).load(shards: rest, shardCount: shardCount, streams: streams)
                // Read under the same generation: the rows no later import carried, with their own as_of.
                let older = try asOf.map { try EventLog.olderProfiles(connection, shards: rest, shardCount: shardCount, latest: $0) } ?? [:]
                if try ProfileSnapshotStore.currentGeneration(connection) == generation {
                    for s in rest { out.stores[s] = LoadedShard(store: stores[s] ?? ProfileStore(), generation: generation, asOf: asOf, older: older[s] ?? [:]) }
                    out.fromTable = rest
                    break
                }
                guard attempt < maxAttempts else {
                    throw ClusterError("the subscriber profiles changed during each of \(maxAttempts) loads of \(rest.count) shards although their generation was held")
                }
                attempt += 1
            }
        }
        out.rejected.sort { $0.shard < $1.shard }
        return out
    }

    /// The built-in catalogue's features (store columns) that the feature schema in force lacks: a
    /// worker gives them no column (docs/models.md, "What the cluster reads"). Empty when the schema
    /// cannot be read: everything is held, as before.
    static func catalogueLacking(url: String) -> Set<Int> {
        guard let connection = try? PostgresConnection(url: url), let stored = try? FeatureSchemaStore.inForce(connection) else { return [] }
        return Set(FeatureCatalogue.names.indices.filter { stored.schema.index(of: FeatureCatalogue.names[$0]) == nil })
    }

    /// A store of a shard's exported profiles (a stream, a snapshot): the catalogue features in
    /// `lacking` whose every value is missing get no column; one that holds a value (written before
    /// the schema dropped it) keeps its column, so nothing received is lost.
    static func store(ids: [Int64], values: [Float], lacking: Set<Int>) throws(ProfileStoreError) -> ProfileStore {
        let absent = ProfileStore.allMissing(values, rows: ids.count, featureCount: FeatureCatalogue.count, among: lacking)
        return try ProfileStore(featureCount: FeatureCatalogue.count, ids: ids, values: values, absent: absent)
    }

    /// The store and event state of a decoded snapshot.
    static func restore(_ d: ProfileSnapshotFormat.Decoded, shard: Int, lacking: Set<Int> = []) throws(SnapshotRejected) -> (LoadedShard, ShardEventSnapshot) {
        let events: ShardEventSnapshot
        do {
            events = try d.eventState.withUnsafeBytes { raw throws(WireError) in
                var r = WireReader(raw)
                let s = try ShardEventSnapshot(from: &r)
                guard r.remaining == 0 else { throw WireError(offset: r.offset, expected: "the end of the event state (\(r.remaining) bytes more)") }
                return s
            }
        } catch {
            throw SnapshotRejected("its event state does not decode: \(error)")
        }
        guard events.shard == shard, events.appliedSeq == d.header.appliedSeq else {
            throw SnapshotRejected("its event state is of shard \(events.shard) at sequence \(events.appliedSeq), its header shard \(shard) at \(d.header.appliedSeq)")
        }
        do {
            let store = try store(ids: d.ids, values: d.values, lacking: lacking)
            return (LoadedShard(store: store, generation: d.header.generation), events)
        } catch {
            throw SnapshotRejected("its profiles do not make a store: \(error)")
        }
    }

    /// The bytes of a shard's event state in a snapshot.
    static func encode(_ events: ShardEventSnapshot) -> [UInt8] {
        var w = WireWriter()
        w.write(events)
        return w.bytes
    }
}

/// Why a snapshot was not used.
struct SnapshotRejected: Error, CustomStringConvertible, Sendable {
    var description: String
    init(_ d: String) { description = d }
}
