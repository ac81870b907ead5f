import Dispatch
import Postgres
import SubscriberProfiles

/// Per-shard profile snapshots in PostgreSQL (`churngrid_shard_snapshots`, migration 10; the format
/// is `ProfileSnapshotFormat`). Every function blocks its thread on connections it opens itself.
///
/// Correctness: a snapshot carries the `subscriber_profiles` generation its profiles descend from
/// (`churngrid_profile_generation`, raised by a trigger on every statement that changes the table,
/// which also deletes every snapshot). It is written only while that generation is current and
/// read only while it still is, so a snapshot never serves profiles older than the table's.
public enum ProfileSnapshotStore {
    /// One shard's snapshot to write.
    public struct Entry: Sendable {
        public var header: ProfileSnapshotFormat.Header
        public var subscribers: Int
        public var bytes: [UInt8]
        public init(header: ProfileSnapshotFormat.Header, subscribers: Int, bytes: [UInt8]) {
            self.header = header
            self.subscribers = subscribers
            self.bytes = bytes
        }
    }

    /// What a read found for one shard.
    public enum Found: Sendable {
        case snapshot(ProfileSnapshotFormat.Decoded)
        /// There is one, but it cannot be used (corrupt, other schema, stale generation): why.
        case invalid(String)
    }

    /// The current generation of `subscriber_profiles`.
    public static func currentGeneration(_ c: PostgresConnection) throws -> Int64 {
        guard let text = try c.query("SELECT generation FROM churngrid_profile_generation").scalar, let g = Int64(text) else {
            throw PostgresError(.protocolViolation, message: "churngrid_profile_generation has no row", context: "reading the profile generation")
        }
        return g
    }

    /// Writes `entries` (replacing each shard's older snapshot; never a newer one) if their
    /// generation is still current.
    /// - Returns: the shards written; the others were stale (the table changed since) or older
    ///   than the snapshot already stored.
    public static func write(url: String, node: String, entries: [Entry]) throws -> Set<Int> {
        guard !entries.isEmpty else { return [] }
        let c = try PostgresConnection(url: url)
        try c.execute("""
            CREATE TEMP TABLE IF NOT EXISTS churngrid_snapshot_stage (
                shard integer, shard_count integer, generation bigint, applied_seq bigint, subscribers integer, taken_ms bigint, data bytea
            ) ON COMMIT DELETE ROWS
            """)
        try c.execute("BEGIN")
        do {
            _ = try c.copyIn("COPY churngrid_snapshot_stage FROM STDIN (FORMAT binary)") { writer in
                var encoder = BinaryCopyEncoder()
                for e in entries {
                    encoder.beginRow(fields: 7)
                    encoder.int32(Int32(truncatingIfNeeded: e.header.shard))
                    encoder.int32(Int32(truncatingIfNeeded: e.header.shardCount))
                    encoder.int64(e.header.generation)
                    encoder.int64(e.header.appliedSeq)
                    encoder.int32(Int32(truncatingIfNeeded: e.subscribers))
                    encoder.int64(e.header.takenMillis)
                    encoder.bytea(e.bytes)
                    try writer.write(encoder.take())
                }
                encoder.finish()
                try writer.write(encoder.take())
            }
            // Only while the generation is current (read under a share lock: an import's trigger,
            // which raises it, waits for this commit and then deletes what this wrote).
            let rows = try c.query("""
                WITH g AS (SELECT generation FROM churngrid_profile_generation FOR SHARE)
                INSERT INTO churngrid_shard_snapshots AS s (shard, shard_count, generation, applied_seq, subscribers, format, taken_at, node, data)
                SELECT st.shard, st.shard_count, st.generation, st.applied_seq, st.subscribers, $1,
                       timestamptz 'epoch' + st.taken_ms * interval '1 millisecond', $2, st.data
                FROM churngrid_snapshot_stage st, g WHERE st.generation = g.generation
                ON CONFLICT (shard) DO UPDATE SET shard_count = EXCLUDED.shard_count, generation = EXCLUDED.generation,
                    applied_seq = EXCLUDED.applied_seq, subscribers = EXCLUDED.subscribers, format = EXCLUDED.format,
                    taken_at = EXCLUDED.taken_at, written_at = now(), node = EXCLUDED.node, data = EXCLUDED.data
                WHERE s.shard_count <> EXCLUDED.shard_count
                   OR (s.generation, s.applied_seq, s.taken_at) <= (EXCLUDED.generation, EXCLUDED.applied_seq, EXCLUDED.taken_at)
                RETURNING shard
                """, [String(ProfileSnapshotFormat.version), node])
            try c.execute("COMMIT")
            return Set(rows.rows.compactMap { $0[0].flatMap(Int.init) })
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }

    /// Reads and checks the snapshots of `shards` over `streams` connections in parallel, handing
    /// each to `transform` as it arrives (so a decoded snapshot is turned into what the caller
    /// keeps before the next one is read).
    /// - Returns: per shard that has a row: what `transform` made of its snapshot, or of why it
    ///   cannot be used; a shard without a row is absent.
    public static func read<T>(url: String, shards: [Int], shardCount: Int, streams: Int,
                               transform: @escaping @Sendable (Int, Found) -> T) throws -> [Int: T] {
        guard !shards.isEmpty else { return [:] }
        let sorted = shards.sorted()
        let groups = max(1, min(streams, sorted.count))
        let per = (sorted.count + groups - 1) / groups
        let parts = stride(from: 0, to: sorted.count, by: per).map { Array(sorted[$0..<min(sorted.count, $0 + per)]) }
        let results = ResultSlots<[Int: T]>(count: parts.count)
        DispatchQueue.concurrentPerform(iterations: parts.count) { i in
            results.set(i, Result { try read(url: url, shards: parts[i], shardCount: shardCount, transform: transform) })
        }
        var out: [Int: T] = [:]
        for r in results.values {
            guard let r else { continue }
            out.merge(try r.get()) { a, _ in a }
        }
        return out
    }

    /// Reads the snapshots of `shards` on one connection.
    static func read<T>(url: String, shards: [Int], shardCount: Int, transform: (Int, Found) -> T) throws -> [Int: T] {
        let c = try PostgresConnection(url: url)
        // One transaction: the generation and the rows are read from the same database state.
        try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { try? c.execute("COMMIT") }
        let generation = try currentGeneration(c)
        let wanted = Set(shards)
        var out: [Int: T] = [:]
        var decoder = BinaryCopyDecoder()
        let list = "{" + shards.map(String.init).joined(separator: ",") + "}"
        try c.copyOut("""
            COPY (SELECT shard, shard_count, generation, data FROM churngrid_shard_snapshots WHERE shard = ANY('\(list)'::int[])) TO STDOUT (FORMAT binary)
            """) { chunk in
            try decoder.feed(chunk) { row in
                guard row.fieldCount == 4, let shardField = try row.next(), shardField.count == 4,
                      let countField = try row.next(), countField.count == 4, let stored = try row.int64() else {
                    throw PostgresError(.protocolViolation, message: "a snapshot row that is not (shard, shard_count, generation, data)", context: "reading profile snapshots")
                }
                let shard = Int(Int32(bigEndian: shardField.loadUnaligned(as: Int32.self)))
                let count = Int(Int32(bigEndian: countField.loadUnaligned(as: Int32.self)))
                guard wanted.contains(shard) else { return }
                guard let data = try row.next() else {
                    out[shard] = transform(shard, .invalid("its data is NULL"))
                    return
                }
                if count != shardCount {
                    out[shard] = transform(shard, .invalid("written for \(count) shards; the cluster has \(shardCount)"))
                } else if stored != generation {
                    out[shard] = transform(shard, .invalid("stale: written at profile generation \(stored), the table is at \(generation) (profiles changed since)"))
                } else {
                    do {
                        let decoded = try ProfileSnapshotFormat.decode(data, shard: shard, shardCount: shardCount)
                        out[shard] = transform(shard, decoded.header.generation == generation ? .snapshot(decoded)
                            : .invalid("its header says profile generation \(decoded.header.generation), its row \(stored)"))
                    } catch {
                        out[shard] = transform(shard, .invalid("\(error)"))
                    }
                }
            }
        }
        try decoder.finish()
        return out
    }

    /// Deletes the snapshots taken before `day` (days since 1970): the event log no longer holds
    /// every event a load from them would have to replay.
    /// - Returns: how many were deleted.
    @discardableResult
    public static func dropTaken(before day: Int, _ c: PostgresConnection) throws -> Int {
        let rows = try c.query("DELETE FROM churngrid_shard_snapshots WHERE taken_at < timestamptz 'epoch' + $1::int * interval '1 day' RETURNING shard", [String(day)])
        return rows.rows.count
    }
}
