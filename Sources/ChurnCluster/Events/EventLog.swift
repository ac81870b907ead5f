import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles

/// An event as the log holds it.
struct LoggedEvent: Sendable {
    var event: SubscriberEvent
    var shard: Int
    var seq: Int64
    /// The owner's clock when it applied the event: the `now` a replay applies it with.
    var receivedMillis: Int64
}

/// The durable event log in PostgreSQL (`subscriber_events`, `churngrid_event_owners`,
/// `retention_triggers`; migration 8): what `EventIngest` writes before it acknowledges, and what a
/// shard's new holder replays. Every function runs on the caller's thread on a connection the
/// caller owns.
enum EventLog {
    /// The session's staging table for `append` (emptied at every commit); made once per connection.
    static func prepare(_ c: PostgresConnection) throws {
        try c.execute("""
            CREATE TEMP TABLE IF NOT EXISTS churngrid_event_stage (
                source text, event_id text, at_ms bigint, subscriber_id bigint, shard integer, seq bigint, type smallint, value double precision
            ) ON COMMIT DELETE ROWS
            """)
    }

    /// Days of partitions kept ahead of and behind today: events may be 7 days late and a day early.
    static let partitionDaysBehind = WindowedState.allowedLatenessDays + 2
    static let partitionDaysAhead = 3

    /// Creates the missing daily partitions around `day` (days since 1970).
    static func ensurePartitions(_ c: PostgresConnection, around day: Int32) throws {
        let from = Int(day) - partitionDaysBehind, to = Int(day) + partitionDaysAhead
        try c.query("SELECT churngrid_event_partitions(date '1970-01-01' + $1::int, date '1970-01-01' + $2::int)", [String(from), String(to)])
    }

    /// What a retention pass did: the partitions it dropped, the oldest day of the events left, and
    /// whether the profiles' `as_of` kept a partition the retention alone would have dropped.
    struct Pruned: Sendable {
        var dropped: [String]
        var keptFromDay: Int
        var heldByProfiles: Bool
        /// The `as_of` a load from the table replays from (`replayedFrom`), which holds the log.
        var replayedFromMillis: Int64? = nil
    }

    /// Drops the daily partitions of events and triggers whose whole day is older than
    /// `retentionDays` before `day`.
    static func dropPartitions(_ c: PostgresConnection, olderThan retentionDays: Int, today day: Int32) throws -> Pruned {
        let byRetention = Int(day) - max(retentionDays, partitionDaysBehind + 1)
        var cutoff = byRetention
        // Never the events a load from PostgreSQL would still replay (received after the profiles'
        // as_of): partitions go by the day of `at`, and an event received after `as_of`
        // may be up to the allowed lateness older than it.
        // The oldest of them: rows a later (delta) import did not carry replay from their own
        // import's as_of on.
        let replayed = try replayedFrom(c)
        if let asOf = replayed {
            cutoff = min(cutoff, Int(Timestamp.floorDiv(asOf, Timestamp.millisPerDay)) - WindowedState.allowedLatenessDays - 2)
        }
        // Nor those a load from a profile snapshot would replay (received after it was taken, so
        // at most the allowed lateness older): snapshots that old are deleted first — their shards
        // load from subscriber_profiles instead.
        try ProfileSnapshotStore.dropTaken(before: cutoff + WindowedState.allowedLatenessDays + 2, c)
        try c.execute("SET lock_timeout TO '5s'")
        defer { try? c.execute("SET lock_timeout TO 0") }
        // Every daily partition with its day, read once: those before the cutoff go, and the oldest
        // of the events' that stays is how far back the log goes.
        let partitions = try c.query("""
            SELECT c.relname, to_date(substring(c.relname FROM '_p([0-9]{8})$'), 'YYYYMMDD') - date '1970-01-01'
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname IN ('subscriber_events', 'retention_triggers')
              AND substring(c.relname FROM '_p([0-9]{8})$') IS NOT NULL
            """).rows.compactMap { row -> (name: String, day: Int)? in
                guard row.count == 2, let name = row[0], let day = row[1].flatMap({ Int($0) }) else { return nil }
                return (name, day)
            }
        let rows = partitions.filter { $0.day < cutoff }.map(\.name)
        // A shard idle for longer than the retention may lose its newest events with them.
        if rows.contains(where: { $0.hasPrefix("subscriber_events_") }) { try keepSeqFloors(c) }
        for name in rows where name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
            try c.execute("DROP TABLE IF EXISTS \(name)")
        }
        // Held by the profiles only when a partition the retention alone would have dropped is
        // still there (today when the log has no partition).
        let oldest = partitions.filter { $0.day >= cutoff && $0.name.hasPrefix("subscriber_events_") }.map(\.day).min() ?? Int(day)
        return Pruned(dropped: rows, keptFromDay: oldest, heldByProfiles: oldest < byRetention, replayedFromMillis: replayed)
    }

    /// Keeps the highest sequence number logged for `shards` (every shard with an owner when nil)
    /// in `churngrid_event_owners.seq_floor`, before rows that may hold it are deleted.
    static func keepSeqFloors(_ c: PostgresConnection, shards: [Int]? = nil) throws {
        let which = shards == nil ? "" : " WHERE o.shard = ANY($1::int[])"
        try c.query("""
            UPDATE churngrid_event_owners o
            SET seq_floor = GREATEST(o.seq_floor, coalesce((SELECT max(seq) FROM subscriber_events e WHERE e.shard = o.shard), 0))\(which)
            """, shards.map { [intArray($0)] } ?? [])
    }

    /// Raises the fence of `shards` to this owner's (term, epoch), waiting for a previous owner's
    /// write in progress to commit.
    /// Every raise gives the fence a new generation (see `heldFences`). All or none: when a shard is
    /// refused, no fence moves.
    /// - Returns: when every fence was raised, each shard's new generation (`refused` empty); else
    ///   the shards held under a newer (term, epoch) by another owner (this node is stale for them)
    ///   in `refused`, and no generation (nothing was raised).
    /// - Parameter lockTimeout: how long to wait for a previous write still holding a fence (nil:
    ///   the connection's `lock_timeout`).
    static func fence(_ c: PostgresConnection, shards: [Int], node: String, term: Int64, epoch: Int64,
                      lockTimeout: Duration? = nil) throws -> (raised: [Int: Int64], refused: Set<Int>) {
        guard !shards.isEmpty else { return ([:], []) }
        // All or none: a refused shard leaves every fence as it was.
        try c.execute("BEGIN")
        let rows: PostgresRows
        do {
            if let lockTimeout { try c.execute("SET LOCAL lock_timeout TO '\(max(1, Int(lockTimeout / .milliseconds(1))))ms'") }
            rows = try c.query("""
            INSERT INTO churngrid_event_owners AS o (shard, node, term, epoch, generation)
            SELECT s, $2, $3, $4, 1 FROM unnest($1::int[]) AS s
            ON CONFLICT (shard) DO UPDATE SET node = EXCLUDED.node, term = EXCLUDED.term, epoch = EXCLUDED.epoch, since = now(),
                                              generation = o.generation + 1
            WHERE (o.term, o.epoch) <= (EXCLUDED.term, EXCLUDED.epoch)
            RETURNING shard, generation
            """, [intArray(shards), node, String(term), String(epoch)])
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
        var held: [Int: Int64] = [:]
        for row in rows.rows {
            if row.count == 2, let shard = row[0].flatMap(Int.init), let generation = row[1].flatMap(Int64.init) { held[shard] = generation }
        }
        let refused = Set(shards).subtracting(held.keys)
        try c.execute(refused.isEmpty ? "COMMIT" : "ROLLBACK")
        return refused.isEmpty ? (held, []) : ([:], refused)
    }

    /// The highest sequence number logged for each of `shards` (0 when none).
    static func lastSeqs(_ c: PostgresConnection, shards: [Int]) throws -> [Int: Int64] {
        guard !shards.isEmpty else { return [:] }
        var out: [Int: Int64] = [:]
        for s in shards { out[s] = 0 }
        let rows = try c.query("""
            SELECT s, GREATEST((SELECT max(seq) FROM subscriber_events e WHERE e.shard = s),
                               (SELECT seq_floor FROM churngrid_event_owners o WHERE o.shard = s))
            FROM unnest($1::int[]) AS s
            """, [intArray(shards)])
        for row in rows.rows {
            if let s = row[0].flatMap(Int.init), let seq = row[1].flatMap(Int64.init) { out[s] = seq }
        }
        return out
    }

    /// The events of `shard` after `seq`, or (when `receivedAfter` is set) those received after
    /// that time, in sequence order; at most `limit`.
    static func events(_ c: PostgresConnection, shard: Int, afterSeq seq: Int64, receivedAfter: Int64? = nil, limit: Int = 50_000) throws -> [LoggedEvent] {
        let condition = receivedAfter == nil ? "" : " AND received_ms > $4"
        var parameters = [String(shard), String(seq), String(limit)]
        if let receivedAfter { parameters.append(String(receivedAfter)) }
        let rows = try c.query("""
            SELECT source, event_id, (extract(epoch FROM at) * 1000)::bigint, subscriber_id, seq, type, value::text, received_ms
            FROM subscriber_events WHERE shard = $1 AND seq > $2\(condition) ORDER BY seq LIMIT $3
            """, parameters)
        var out: [LoggedEvent] = []
        out.reserveCapacity(rows.rows.count)
        for row in rows.rows {
            guard row.count == 8, let source = row[0], let id = row[1], let at = row[2].flatMap(Int64.init), let subscriber = row[3].flatMap(Int64.init),
                  let seq = row[4].flatMap(Int64.init), let type = row[5].flatMap(Int.init), type >= 0, type < EventType.allCases.count,
                  let value = row[6].flatMap(Double.init), let received = row[7].flatMap(Int64.init) else {
                throw PostgresError(.protocolViolation, message: "a row that is not an event: \(row)", context: "replaying the events of shard \(shard)")
            }
            var e = SubscriberEvent(eventID: id, source: source, subscriberID: subscriber, type: EventType.byIndex[type], at: at)
            e.value = value
            out.append(LoggedEvent(event: e, shard: shard, seq: seq, receivedMillis: received))
        }
        return out
    }

    /// The earliest `as_of` a load from `subscriber_profiles` replays from (ms): the last import's,
    /// or, when it left rows as of earlier imports, the earliest of those (`oldest_as_of`, counted
    /// by the import; for an import recorded by an earlier release, worked out here once and
    /// stored). nil when no import was recorded.
    static func replayedFrom(_ c: PostgresConnection) throws -> Int64? {
        let row = try c.query("""
            SELECT id, (extract(epoch FROM as_of) * 1000)::bigint, older_rows, (extract(epoch FROM oldest_as_of) * 1000)::bigint
            FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1
            """).rows.first
        guard let row, row.count == 4, let id = row[0], let latest = row[1].flatMap(Int64.init) else { return nil }
        if row[2] == "0" { return latest }
        if let oldest = row[3].flatMap(Int64.init) { return min(latest, oldest) }
        // Not behind an import in progress (it locks the table for its whole run): tried again next time.
        try c.execute("SET lock_timeout TO '5s'")
        defer { try? c.execute("SET lock_timeout TO 0") }
        let worked = try c.query("""
            WITH d AS (SELECT DISTINCT updated_at FROM subscriber_profiles)
            UPDATE churngrid_profile_snapshots SET oldest_as_of = \(ProfileImport.oldestAsOf)
            WHERE id = $1::bigint RETURNING (extract(epoch FROM oldest_as_of) * 1000)::bigint
            """, [id]).scalar.flatMap(Int64.init)
        return min(latest, worked ?? latest)
    }

    /// The `as_of` of the profiles in `subscriber_profiles` (ms since 1970): the last import's, for
    /// the rows it wrote (also when it is older than an earlier import's, e.g. a re-import of an
    /// older extract; rows it did not carry: `olderProfiles`); nil when none was recorded.
    static func profilesAsOf(_ c: PostgresConnection) throws -> Int64? {
        let rows = try c.query("SELECT (extract(epoch FROM as_of) * 1000)::bigint FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1").rows
        return rows.first.flatMap { $0.first ?? nil }.flatMap(Int64.init)
    }

    /// The subscribers of `shards` whose profile rows are older than the last import (`latest`, its
    /// `as_of` in ms): rows a later import did not carry (a delta, or a subscriber the extract left
    /// out), with the `as_of` of the import or generated base that wrote each (ms). A row's
    /// `updated_at` is its writer's transaction time, which is that import's `recorded_at`. Rows
    /// that match no recorded import are taken as of `latest`, as before imports were recorded.
    /// The latest import records how many rows it left older (`older_rows`): when none, nothing
    /// is read (the common full refresh costs no second pass over the shards' rows).
    static func olderProfiles(_ c: PostgresConnection, shards: [Int], shardCount: Int, latest: Int64) throws -> [Int: [Int64: Int64]] {
        guard !shards.isEmpty else { return [:] }
        let left = try c.query("SELECT older_rows FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1").scalar
        if left == "0" { return [:] }
        // In ms as `latest` is (rounded alike), and never the latest record's own rows.
        let rows = try c.query("""
            SELECT p.subscriber_id, (extract(epoch FROM s.as_of) * 1000)::bigint
            FROM subscriber_profiles p JOIN churngrid_profile_snapshots s ON s.recorded_at = p.updated_at
            WHERE \(ProfileLoader.shardCondition(shards: shards, shardCount: shardCount))
              AND (extract(epoch FROM s.as_of) * 1000)::bigint < $1::bigint
              AND s.id <> (SELECT max(id) FROM churngrid_profile_snapshots)
            """, [String(latest)]).rows
        var out: [Int: [Int64: Int64]] = [:]
        for row in rows {
            guard row.count == 2, let id = row[0].flatMap(Int64.init), let asOf = row[1].flatMap(Int64.init) else { continue }
            out[ShardKey.shard(of: id, shardCount: shardCount), default: [:]][id] = asOf
        }
        return out
    }

    /// One write of a group of events: in one transaction, checks that this owner still holds
    /// the fence of every shard it writes, and logs the events of the shards it holds (refusing
    /// the duplicates of rows logged before).
    /// - Returns: the (shard, sequence number)s logged now (the others were duplicates), and the shards
    ///   whose fence another owner holds now (their events were not written).
    static func append(_ c: PostgresConnection, _ rows: [LoggedEvent], fences: [Fence], node: String,
                       receivedMillis: Int64) throws -> (logged: Set<ShardSeq>, lost: Set<Int>) {
        if rows.count <= smallGroup { return try appendSmall(c, rows, fences: fences, node: node, receivedMillis: receivedMillis) }
        try c.execute("BEGIN")
        do {
            // Binary COPY into the session's staging table (cheap for the server to read).
            try c.copyIn("COPY churngrid_event_stage FROM STDIN (FORMAT binary)") { writer in
                var encoder = BinaryCopyEncoder()
                for row in rows {
                    encoder.beginRow(fields: 8)
                    encoder.text(row.event.source)
                    encoder.text(row.event.eventID)
                    encoder.int64(row.event.at)
                    encoder.int64(row.event.subscriberID)
                    encoder.int32(Int32(truncatingIfNeeded: row.shard))
                    encoder.int64(row.seq)
                    encoder.int16(Int16(row.event.type.index))
                    encoder.float64(row.event.value)
                    if encoder.bytes.count >= 1 << 20 { try writer.write(encoder.take()) }
                }
                encoder.finish()
                try writer.write(encoder.take())
            }
            // One statement: the fences this owner still holds (locked FOR SHARE, so a new owner's
            // raise waits for this commit), and the insert of the events of those shards, which
            // says what was new ('h' rows: shards held; 'i' rows: events logged).
            let result = try c.query(prepared: "cg_events_append", """
                \(heldFences(generations: 6)),
                ins AS (
                    INSERT INTO subscriber_events (source, event_id, at, subscriber_id, shard, seq, type, value, received_ms)
                    SELECT source, event_id, timestamptz 'epoch' + at_ms * interval '1 millisecond', subscriber_id, shard, seq, type, value, $5
                    FROM churngrid_event_stage WHERE shard IN (SELECT shard FROM held)
                    ON CONFLICT DO NOTHING RETURNING shard, seq)
                SELECT 'h', shard, 0 FROM held UNION ALL SELECT 'i', shard, seq FROM ins
                """, [intArray(fences.map(\.shard)), intArray(fences.map(\.term)), intArray(fences.map(\.epoch)), node, String(receivedMillis),
                      intArray(fences.map(\.generation))])
            let outcome = appended(result, fences: fences)
            try c.execute("COMMIT")
            return outcome
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }

    /// Groups of at most this many events are written by `appendSmall`: one statement, one round
    /// trip. Larger ones go through binary COPY, which costs more round trips but less per event.
    static let smallGroup = 128

    /// `append` for a small group, in one statement (its own transaction): the same fence check and
    /// insert, the events passed as arrays. At moderate rates groups are small and the event thread
    /// spends its time on round trips, not rows: one instead of five (BEGIN, COPY, query, COMMIT).
    static func appendSmall(_ c: PostgresConnection, _ rows: [LoggedEvent], fences: [Fence], node: String,
                            receivedMillis: Int64) throws -> (logged: Set<ShardSeq>, lost: Set<Int>) {
        let result = try c.query(prepared: "cg_events_append_small", """
            \(heldFences(generations: 14)),
            ins AS (
                INSERT INTO subscriber_events (source, event_id, at, subscriber_id, shard, seq, type, value, received_ms)
                SELECT s, e, timestamptz 'epoch' + a * interval '1 millisecond', sub, sh, sq, t, v, $5
                FROM unnest($6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::int[], $11::bigint[], $12::smallint[], $13::float8[])
                  AS u(s, e, a, sub, sh, sq, t, v)
                WHERE sh IN (SELECT shard FROM held)
                ON CONFLICT DO NOTHING RETURNING shard, seq)
            SELECT 'h', shard, 0 FROM held UNION ALL SELECT 'i', shard, seq FROM ins
            """, [intArray(fences.map(\.shard)), intArray(fences.map(\.term)), intArray(fences.map(\.epoch)), node, String(receivedMillis),
                  ClusterDatabase.textArray(rows.map(\.event.source)), ClusterDatabase.textArray(rows.map(\.event.eventID)),
                  intArray(rows.map(\.event.at)), intArray(rows.map(\.event.subscriberID)), intArray(rows.map(\.shard)), intArray(rows.map(\.seq)),
                  intArray(rows.map { $0.event.type.index }), exactDoubleArray(rows.map(\.event.value)), intArray(fences.map(\.generation))])
        return appended(result, fences: fences)
    }

    /// The fences this owner still holds ($1–$3: shards, terms, epochs; $4: the node; parameter
    /// `generations`: the generation of each it raised last), locked FOR SHARE so that a raise
    /// waits for the insert's commit: the `held` CTE of both appends. The generation makes a write
    /// that had not locked its fences yet when its connection failed (waiting in the server for a
    /// lock, say) find none once the owner has raised them again to replay the log: it writes
    /// nothing after that replay, instead of events the owner would never apply.
    static func heldFences(generations: Int) -> String {
        """
        WITH held AS (
            SELECT o.shard FROM churngrid_event_owners o
            JOIN unnest($1::int[], $2::bigint[], $3::bigint[], $\(generations)::bigint[]) AS f(shard, term, epoch, generation)
              ON o.shard = f.shard AND o.term = f.term AND o.epoch = f.epoch AND o.node = $4 AND o.generation = f.generation
            FOR SHARE OF o)
        """
    }

    /// A shard's fence as its owner last raised it.
    struct Fence: Sendable {
        var shard: Int
        var term: Int64
        var epoch: Int64
        var generation: Int64
    }

    /// What an append's statement answered ('h' rows: shards held; 'i' rows: events logged): the
    /// events logged, and the shards whose fence another owner holds now.
    static func appended(_ result: PostgresRows, fences: [Fence]) -> (logged: Set<ShardSeq>, lost: Set<Int>) {
        var held = Set<Int>(), logged = Set<ShardSeq>()
        logged.reserveCapacity(result.rows.count)
        for row in result.rows {
            guard row.count == 3, let shard = row[1].flatMap(Int.init) else { continue }
            if row[0] == "h" {
                held.insert(shard)
            } else if let seq = row[2].flatMap(Int64.init) {
                logged.insert(ShardSeq(shard: shard, seq: seq))
            }
        }
        return (logged, Set(fences.map(\.shard)).subtracting(held))
    }

    /// Doubles as a PostgreSQL array literal that reads back bit for bit (shortest round-trip
    /// form; NaN and the infinities by name).
    static func exactDoubleArray(_ values: [Double]) -> String {
        "{" + values.map { v in v.isNaN ? "NaN" : v == .infinity ? "Infinity" : v == -.infinity ? "-Infinity" : "\(v)" }.joined(separator: ",") + "}"
    }

    /// Writes fired triggers (those written before, by a replay or a resend, are skipped).
    static func insert(_ c: PostgresConnection, triggers: [FiredTrigger]) throws {
        guard !triggers.isEmpty else { return }
        func reasonsArray(_ t: FiredTrigger) -> String {
            "{" + t.reasons.map { "\"" + $0.feature.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
        }
        try c.query("""
            INSERT INTO retention_triggers (trigger_id, event_at, rule, subscriber_id, source, event_id, event_type, probability_before,
                                            probability_after, band, reasons, contributions, model_version, node, fired_at)
            SELECT id, timestamptz 'epoch' + ea * interval '1 millisecond', r, sub, s, e, et, pb, pa, b, rs::text[], cs::real[], mv, n,
                   timestamptz 'epoch' + fa * interval '1 millisecond'
            FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[],
                        $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])
              AS u(id, ea, r, sub, s, e, et, pb, pa, b, rs, cs, mv, n, fa)
            ON CONFLICT DO NOTHING
            """, [ClusterDatabase.textArray(triggers.map(\.triggerID)), intArray(triggers.map(\.eventAt)), ClusterDatabase.textArray(triggers.map(\.rule)),
                  intArray(triggers.map(\.subscriberID)), ClusterDatabase.textArray(triggers.map(\.source)), ClusterDatabase.textArray(triggers.map(\.eventID)),
                  ClusterDatabase.textArray(triggers.map(\.eventType)), doubleArray(triggers.map(\.probabilityBefore)),
                  doubleArray(triggers.map(\.probabilityAfter)), ClusterDatabase.textArray(triggers.map(\.band)),
                  ClusterDatabase.textArray(triggers.map(reasonsArray)),
                  ClusterDatabase.textArray(triggers.map { "{" + $0.reasons.map { String(Float($0.contribution)) }.joined(separator: ",") + "}" }),
                  ClusterDatabase.textArray(triggers.map(\.modelVersion)), ClusterDatabase.textArray(triggers.map(\.node)),
                  intArray(triggers.map(\.firedAt))])
    }

    static func intArray<T: BinaryInteger>(_ values: [T]) -> String {
        var s = "{"
        s.reserveCapacity(values.count * 8 + 2)
        for (i, v) in values.enumerated() {
            if i > 0 { s += "," }
            s += String(v)
        }
        return s + "}"
    }

    static func doubleArray(_ values: [Double]) -> String {
        "{" + values.map { $0.isFinite ? "\($0)" : "NaN" }.joined(separator: ",") + "}"
    }
}

/// An event's place in the log.
struct ShardSeq: Hashable {
    let shard: Int
    let seq: Int64
}
