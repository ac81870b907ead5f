import Dispatch
import Postgres
import SubscriberProfiles

/// Loads shards' profiles from `subscriber_profiles` with one binary COPY: each shard is one
/// range of `shard_key`, read through the index; rows are placed straight into column stores.
public struct ProfileLoader: Sendable {
    /// What a load did.
    public struct Report: Sendable {
        public var rows: Int
        public var seconds: Double
        public var rowsPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    }

    let url: String
    /// The features loaded, in store column order (default: the built-in catalogue's).
    let features: [FeatureSchema.Feature]
    /// Features the table has no column for: read as missing (NaN).
    let absent: Set<String>

    /// The store columns of the features the table has no column for (`absent`).
    public var absentColumns: Set<Int> { Set(features.indices.filter { absent.contains(features[$0].name) }) }

    /// A loader of the built-in catalogue's features from the database at `url` (every one a
    /// `real` column, as the default schema has them).
    public init(url: String) {
        self.url = url
        features = FeatureSchema.catalogue.features
        absent = []
    }

    /// A loader of the built-in catalogue's features as the schema in force `schema` has them:
    /// each read as its type there (a catalogue feature dropped and added again as an integer is
    /// cast, not misread), those it lacks (dropped) read as missing.
    public init(url: String, catalogueBy schema: FeatureSchema) {
        self.url = url
        var features: [FeatureSchema.Feature] = [], absent = Set<String>()
        for f in FeatureSchema.catalogue.features {
            if let j = schema.index(of: f.name) {
                features.append(schema.features[j])
            } else {
                features.append(f)
                absent.insert(f.name)
            }
        }
        self.features = features
        self.absent = absent
    }

    /// The catalogue loader by the schema in force in the database at `url` (what a worker loads).
    /// - Throws: `PostgresError`, or `FeatureSchemaStore.Failure` when there is no readable schema.
    public static func catalogue(url: String, connection: PostgresConnection? = nil) throws -> ProfileLoader {
        ProfileLoader(url: url, catalogueBy: try FeatureSchemaStore.inForce(try connection ?? PostgresConnection(url: url)).schema)
    }

    /// A loader of the named features of `schema` only, in that order (what a store holding only
    /// what its models read would load).
    /// - Throws: `FeatureSchemaStore.Failure` naming a feature the schema lacks, with the closest names.
    public init(url: String, schema: FeatureSchema, features names: [String]) throws {
        self.url = url
        var features: [FeatureSchema.Feature] = []
        var seen = Set<String>()
        for name in names {
            guard let j = schema.index(of: name) else {
                let near = NameSuggestions.nearest(to: name, among: schema.names).joined(separator: ", ")
                throw FeatureSchemaStore.Failure(message: "feature '\(name)' is not in the feature schema (closest: \(near.isEmpty ? "none" : near))")
            }
            guard seen.insert(name).inserted else { throw FeatureSchemaStore.Failure(message: "feature '\(name)' is named twice") }
            features.append(schema.features[j])
        }
        guard !features.isEmpty else { throw FeatureSchemaStore.Failure(message: "no features to load") }
        self.features = features
        absent = []
    }

    /// Loads `shards` over `streams` parallel COPY streams (one connection and one thread each,
    /// every stream filling its own shards' stores), which keeps PostgreSQL busy on more than one
    /// core; a single stream is bound by one backend's COPY speed.
    public func load(shards: [Int], shardCount: Int, streams: Int) throws -> (stores: [Int: ProfileStore], report: Report) {
        let groups = max(1, min(streams, shards.count))
        if groups == 1 { return try load(shards: shards, shardCount: shardCount) }
        let sorted = shards.sorted()
        // Contiguous runs of shards per stream, so each stream's query is one key range.
        let per = (sorted.count + groups - 1) / groups
        let parts = stride(from: 0, to: sorted.count, by: per).map { Array(sorted[$0..<min(sorted.count, $0 + per)]) }
        let results = ResultSlots<(stores: [Int: ProfileStore], report: Report)>(count: parts.count)
        let clock = ContinuousClock()
        let start = clock.now
        DispatchQueue.concurrentPerform(iterations: parts.count) { i in
            results.set(i, Result { try load(shards: parts[i], shardCount: shardCount) })
        }
        var stores: [Int: ProfileStore] = [:]
        var rows = 0
        for r in results.values {
            let (s, report) = try r!.get()
            stores.merge(s) { a, _ in a }
            rows += report.rows
        }
        return (stores, Report(rows: rows, seconds: seconds(clock.now - start)))
    }

    /// The SQL selecting the profiles of `shards` (of `shardCount`): the id and each feature as
    /// a `real` (a boolean as 0/1, a category as its code).
    public static func selectSQL(shards: [Int], shardCount: Int, features: [FeatureSchema.Feature] = FeatureSchema.catalogue.features,
                                 absent: Set<String> = []) -> String {
        let columns = features.map { absent.contains($0.name) ? "NULL::real" : $0.kind.asReal($0.name) }.joined(separator: ", ")
        return "SELECT subscriber_id, \(columns) FROM subscriber_profiles WHERE \(shardCondition(shards: shards, shardCount: shardCount))"
    }

    /// The rows of `shards` of `subscriber_profiles`, as a condition on its `shard_key` (indexed).
    public static func shardCondition(shards: [Int], shardCount: Int) -> String {
        // Adjacent shards merge into one key range.
        var ranges: [Range<Int64>] = []
        for s in shards.sorted() {
            let r = ShardKey.keyRange(shard: s, shardCount: shardCount)
            if let last = ranges.last, last.upperBound == r.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<r.upperBound
            } else {
                ranges.append(r)
            }
        }
        return ranges.isEmpty ? "false" : "(" + ranges.map { "(shard_key >= \($0.lowerBound) AND shard_key < \($0.upperBound))" }.joined(separator: " OR ") + ")"
    }

    /// Loads the profiles of `shards` into one store per shard (NULL becomes NaN, missing).
    /// - Throws: `PostgresError`, including when the table lacks a column the loader reads.
    public func load(shards: [Int], shardCount: Int) throws -> (stores: [Int: ProfileStore], report: Report) {
        let connection = try PostgresConnection(url: url)
        let clock = ContinuousClock()
        let start = clock.now
        let f = features.count
        var stores: [Int: ProfileStore] = [:]
        // A feature the table has no column for gets none in the stores either (it reads as missing).
        for s in shards { stores[s] = ProfileStore(featureCount: f, absent: absentColumns) }
        // Size each store for its expected share of the table (one index resize instead of many).
        if let estimate = try? connection.query("SELECT reltuples::bigint FROM pg_class WHERE relname = 'subscriber_profiles'").scalar,
           let total = Int(estimate), total > 0 {
            for store in stores.values { store.reserve(total / shardCount + total / shardCount / 8) }
        }
        // Stores indexed by shard for the row loop (a dictionary lookup per row would cost more).
        let first = shards.min() ?? 0
        var byShard = [ProfileStore?](repeating: nil, count: (shards.max() ?? 0) - first + 1)
        for s in shards { byShard[s - first] = stores[s] }
        var decoder = BinaryCopyDecoder()
        var profile = [Float](repeating: 0, count: f)
        let sql = "COPY (\(Self.selectSQL(shards: shards, shardCount: shardCount, features: features, absent: absent))) TO STDOUT (FORMAT binary)"
        try connection.copyOut(sql) { chunk in
            try decoder.feed(chunk) { row in
                guard row.fieldCount == f + 1 else {
                    throw PostgresError(.protocolViolation, message: "row has \(row.fieldCount) columns; expected subscriber_id and \(f) features",
                                        context: "loading profiles")
                }
                guard let id = try row.int64() else {
                    throw PostgresError(.protocolViolation, message: "subscriber_id is NULL", context: "loading profiles")
                }
                guard id != ProfileStore.erasedID else {
                    throw PostgresError(.protocolViolation, message: "subscriber_id \(id) is reserved (it marks an erased subscriber in memory): change it in subscriber_profiles",
                                        context: "loading profiles")
                }
                for j in 0..<f { profile[j] = try row.float32OrNaN() }
                let shard = ShardKey.shard(of: id, shardCount: shardCount)
                guard shard >= first, shard - first < byShard.count, let store = byShard[shard - first] else {
                    throw PostgresError(.protocolViolation, message: "subscriber \(id) belongs to shard \(shard), which was not asked for (shard_key out of date?)",
                                        context: "loading profiles")
                }
                store.upsert(id: id, profile: profile)
            }
        }
        try decoder.finish()
        return (stores, Report(rows: decoder.rows, seconds: seconds(clock.now - start)))
    }
}

/// One result slot per parallel task, each written by exactly one task.
final class ResultSlots<T>: @unchecked Sendable {
    // @unchecked: slot i is written only by task i, into its own element of a fixed buffer,
    // and the slots are read only after every task has finished.
    private let slots: UnsafeMutablePointer<Result<T, Error>?>
    private let count: Int

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func set(_ i: Int, _ value: Result<T, Error>) { slots[i] = value }
    var values: [Result<T, Error>?] { Array(UnsafeBufferPointer(start: slots, count: count)) }
}
