import Postgres
import SubscriberProfiles

/// Loads shards' profiles from `subscriber_profiles` with one binary COPY: each shard is one
/// range of `shard_key`, read through the index; rows are placed straight into column stores.
public struct ProfileLoader {
    /// What a load did.
    public struct Report: Sendable {
        public var rows: Int
        public var seconds: Double
        public var rowsPerSecond: Double { seconds > 0 ? Double(rows) / seconds : 0 }
    }

    let connection: PostgresConnection

    /// A loader reading through `connection`.
    public init(connection: PostgresConnection) {
        self.connection = connection
    }

    /// The SQL selecting the profiles of `shards` (of `shardCount`).
    public static func selectSQL(shards: [Int], shardCount: Int) -> String {
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
        let condition = ranges.isEmpty ? "false" : ranges.map { "(shard_key >= \($0.lowerBound) AND shard_key < \($0.upperBound))" }.joined(separator: " OR ")
        return "SELECT subscriber_id, \(ProfileSchema.featureColumns) FROM subscriber_profiles WHERE \(condition)"
    }

    /// Loads the profiles of `shards` into one store per shard (NULL becomes NaN, missing).
    /// - Throws: `PostgresError`, including when the table's columns are not what the catalogue says.
    public func load(shards: [Int], shardCount: Int) throws -> (stores: [Int: ProfileStore], report: Report) {
        let clock = ContinuousClock()
        let start = clock.now
        let f = FeatureCatalogue.count
        var stores: [Int: ProfileStore] = [:]
        for s in shards { stores[s] = ProfileStore(featureCount: f) }
        // Stores indexed by shard for the row loop (a dictionary lookup per row would cost more).
        let first = shards.min() ?? 0
        var byShard = [ProfileStore?](repeating: nil, count: (shards.max() ?? 0) - first + 1)
        for s in shards { byShard[s - first] = stores[s] }
        var decoder = BinaryCopyDecoder()
        var profile = [Float](repeating: 0, count: f)
        let sql = "COPY (\(Self.selectSQL(shards: shards, shardCount: shardCount))) TO STDOUT (FORMAT binary)"
        try connection.copyOut(sql) { chunk in
            try decoder.feed(chunk) { row in
                guard row.fieldCount == f + 1 else {
                    throw PostgresError(.protocolViolation, message: "row has \(row.fieldCount) columns; expected subscriber_id and \(f) features",
                                        context: "loading profiles")
                }
                guard let id = try row.int64() else {
                    throw PostgresError(.protocolViolation, message: "subscriber_id is NULL", context: "loading profiles")
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
        let d = clock.now - start
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        return (stores, Report(rows: decoder.rows, seconds: seconds))
    }
}
