@testable import ChurnCluster
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Event log retention: old partitions go, never those a load from PostgreSQL would replay")
struct EventRetentionTests {
    /// The daily partitions of `subscriber_events`, as days since 1970.
    static func partitionDays(_ c: PostgresConnection) throws -> Set<Int> {
        let rows = try c.query("""
            SELECT (to_date(substring(c.relname FROM '_p([0-9]{8})$'), 'YYYYMMDD') - date '1970-01-01')
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
            WHERE p.relname = 'subscriber_events'
            """).rows
        return Set(rows.compactMap { $0[0].flatMap { Int($0) } })
    }

    /// A fresh database with daily partitions from 45 days ago to today; `body` gets a connection and today (days since 1970).
    static func withLog(_ body: @escaping @Sendable (PostgresConnection, Int) throws -> Void) async throws {
        let url = try await TestDatabase.fresh()
        try await onOwnThread {
            let c = try PostgresConnection(url: url)
            try ProfileSchema.migrate(c)
            let today = Int(Timestamp.floorDiv(Int64(Date().timeIntervalSince1970 * 1000), Timestamp.millisPerDay))
            try c.query("SELECT churngrid_event_partitions(date '1970-01-01' + $1::int, date '1970-01-01' + $2::int)", [String(today - 45), String(today + 1)])
            try body(c, today)
        }
    }

    @Test("the profiles' as_of 25 days back, retention 10 days: partitions from 9 days before as_of on are kept (events received after it may be 7 days late), older ones dropped")
    func keepsWhatALoadReplays() async throws {
        try await Self.withLog { c, today in
            let asOfDay = today - 25
            try c.query("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond', 'import')",
                        [String(Int64(asOfDay) * Timestamp.millisPerDay + 3_600_000)])
            // An event received after as_of, 7 days late: its partition is as_of's day − 7.
            let lateDay = asOfDay - WindowedState.allowedLatenessDays
            let pruned = try EventLog.dropPartitions(c, olderThan: 10, today: Int32(today))
            let dropped = pruned.dropped
            #expect(pruned.heldByProfiles && pruned.keptFromDay == asOfDay - WindowedState.allowedLatenessDays - 2, "\(pruned)")
            let kept = try Self.partitionDays(c)
            #expect(kept.contains(lateDay) && kept.contains(lateDay - 1), "the partition of a late event received after as_of was dropped: \(dropped)")
            #expect(!kept.contains(today - 45) && kept.contains(today), "\(kept.sorted())")
            #expect(kept.min() == asOfDay - WindowedState.allowedLatenessDays - 2, "\(kept.sorted())")
            #expect(!dropped.isEmpty)
            // A re-import of an older extract is the profiles' as_of from then on (not the newest ever recorded).
            let older = Int64(asOfDay - 3) * Timestamp.millisPerDay
            try c.query("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond', 'import')", [String(older)])
            #expect(try EventLog.profilesAsOf(c) == older)
        }
    }

    @Test("after a delta import, the rows it did not carry hold the log from their own import's as_of: a load replays onto them from there")
    func deltaImportHoldsTheLog() async throws {
        try await Self.withLog { c, today in
            func importing(_ ids: [Int], asOfDay: Int) throws { try Self.importing(c, ids, asOfDay: asOfDay) }
            // A full import 40 days back, then a delta of one subscriber 2 days back.
            try importing([1_000_000_001, 1_000_000_002, 1_000_000_003], asOfDay: today - 40)
            try importing([1_000_000_002], asOfDay: today - 2)
            let record = try c.query("SELECT older_rows, (extract(epoch FROM oldest_as_of) * 1000)::bigint FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1").rows.first
            #expect(record == ["2", String(Int64(today - 40) * Timestamp.millisPerDay)], "\(String(describing: record))")
            #expect(try EventLog.replayedFrom(c) == Int64(today - 40) * Timestamp.millisPerDay)
            // The retention keeps from where a load replays: the loader's own floor for the older rows.
            let latest = try #require(try EventLog.profilesAsOf(c))
            let floors = try EventLog.olderProfiles(c, shards: [0], shardCount: 1, latest: latest)
            #expect(floors[0]?.values.min() == (try EventLog.replayedFrom(c)), "\(floors)")
            // Retention 10 days: the last import alone would let everything before today − 11 go;
            // the two rows as of 40 days back keep the log (45 days of partitions here) whole.
            let pruned = try EventLog.dropPartitions(c, olderThan: 10, today: Int32(today))
            #expect(!pruned.dropped.contains { $0.hasPrefix("subscriber_events_") } && pruned.heldByProfiles && pruned.keptFromDay == today - 45, "\(pruned)")
            // An import recorded by the previous release (no oldest_as_of): worked out once and kept.
            try c.execute("UPDATE churngrid_profile_snapshots SET oldest_as_of = NULL")
            #expect(try EventLog.replayedFrom(c) == Int64(today - 40) * Timestamp.millisPerDay)
            #expect(try c.query("SELECT oldest_as_of IS NOT NULL FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1").scalar == "t")
            // Rows that match no recorded import (loaded before imports were recorded) count as of
            // the last import, as the loader takes them: worked out once, never NULL again.
            try c.execute("UPDATE subscriber_profiles SET updated_at = timestamptz '2001-01-01'")
            try c.execute("UPDATE churngrid_profile_snapshots SET oldest_as_of = NULL")
            #expect(try EventLog.replayedFrom(c) == Int64(today - 2) * Timestamp.millisPerDay)
            #expect(try c.query("SELECT oldest_as_of IS NOT NULL FROM churngrid_profile_snapshots ORDER BY id DESC LIMIT 1").scalar == "t")
            // A full refresh carries every row again: the log follows its as_of alone.
            try importing([1_000_000_001, 1_000_000_002, 1_000_000_003], asOfDay: today - 1)
            #expect(try EventLog.replayedFrom(c) == Int64(today - 1) * Timestamp.millisPerDay)
            let after = try EventLog.dropPartitions(c, olderThan: 10, today: Int32(today))
            #expect(after.dropped.contains { $0.hasPrefix("subscriber_events_") } && after.keptFromDay == today - 10, "\(after)")
        }
    }

    @Test("erasing the subscribers whose rows hold the log lets it go: the retention works its floor out again")
    func erasureReleasesTheLog() async throws {
        let url = try await TestDatabase.fresh()
        let today = Int(Timestamp.floorDiv(Int64(Date().timeIntervalSince1970 * 1000), Timestamp.millisPerDay))
        try await onOwnThread {
            let c = try PostgresConnection(url: url)
            try ProfileSchema.migrate(c)
            try Self.importing(c, [1_000_000_001, 1_000_000_002, 1_000_000_003], asOfDay: today - 40)
            try Self.importing(c, [1_000_000_002], asOfDay: today - 2)
            #expect(try EventLog.replayedFrom(c) == Int64(today - 40) * Timestamp.millisPerDay)
        }
        let db = try await ClusterDatabase.open(url: url, connections: 1, logger: Logger(label: "test.retention"))
        defer { db.close() }
        let taken = try await db.acquireLease(replacing: nil, holder: "test", endpoint: "tcp://127.0.0.1:1")
        db.lead(term: try #require(taken.term))
        let audit = AuditEntry(actor: "test", roles: "admin", credential: "-", action: "erase", target: "1", outcome: "ok")
        // During an import (it holds the table from start to end): the erasure does not wait for it,
        // and leaves the floor as it was (older: the log is kept longer, never dropped early).
        let importer = try PostgresConnection(url: url)
        try importer.execute("BEGIN")
        try importer.execute("LOCK TABLE churngrid_profile_snapshots IN SHARE ROW EXCLUSIVE MODE")
        _ = try await db.erase([1_000_000_001], shardCount: 1, audit: audit)
        try importer.execute("ROLLBACK")
        try await onOwnThread {
            let c = try PostgresConnection(url: url)
            #expect(try c.query("SELECT count(*) FROM subscriber_profiles").scalar == "2", "the erasure went through")
            #expect(try EventLog.replayedFrom(c) == Int64(today - 40) * Timestamp.millisPerDay)
        }
        // No import running: the erasure of the last old row has the floor worked out again.
        _ = try await db.erase([1_000_000_003], shardCount: 1, audit: audit)
        try await onOwnThread {
            let c = try PostgresConnection(url: url)
            #expect(try EventLog.replayedFrom(c) == Int64(today - 2) * Timestamp.millisPerDay, "only the delta's row is left")
        }
    }

    /// Imports profiles of `ids` (every feature 0) taken on `asOfDay`.
    static func importing(_ c: PostgresConnection, _ ids: [Int], asOfDay: Int) throws {
        let header = "subscriber_id," + FeatureCatalogue.names.joined(separator: ",")
        let zeros = Array(repeating: "0", count: FeatureCatalogue.count).joined(separator: ",")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cg-retention-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ([header] + ids.map { "\($0),\(zeros)" }).joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        _ = try ProfileImport(path: path).upsert(into: c, asOf: Int64(asOfDay) * Timestamp.millisPerDay)
    }

    @Test("a young log (partitions from 5 days back) under profiles 40 days old: no partition is held past the retention, so nothing is said")
    func youngLog() async throws {
        try await Self.withLog { c, today in
            let young = try c.query("""
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relname IN ('subscriber_events', 'retention_triggers')
                  AND to_date(substring(c.relname FROM '_p([0-9]{8})$'), 'YYYYMMDD') < date '1970-01-01' + $1::int
                """, [String(today - 5)]).rows.compactMap { $0[0] }
            for name in young { try c.execute("DROP TABLE \(name)") }
            try c.query("INSERT INTO churngrid_profile_snapshots (as_of, source) VALUES (timestamptz 'epoch' + $1::bigint * interval '1 millisecond', 'import')",
                        [String(Int64(today - 40) * Timestamp.millisPerDay)])
            let pruned = try EventLog.dropPartitions(c, olderThan: 30, today: Int32(today))
            #expect(pruned.dropped.isEmpty && !pruned.heldByProfiles && pruned.keptFromDay == today - 5, "\(pruned)")
        }
    }

    @Test("a shard whose newest events go (retention drops an idle shard's last partition, or they are erased) keeps their sequence numbers: its next owner numbers past them, never again a number a standby applied")
    func sequenceFloor() async throws {
        try await Self.withLog { c, today in
            try c.query("INSERT INTO churngrid_event_owners (shard, node, term, epoch) VALUES (2, 'worker-1', 1, 1), (3, 'worker-1', 1, 1)")
            // Shard 2 idle for 40 days: its events (seq 1…5) are all in a partition retention drops.
            let old = Int64(today - 40) * Timestamp.millisPerDay
            for seq in 1...5 {
                try c.query("INSERT INTO subscriber_events VALUES ('test', $1, timestamptz 'epoch' + $2::bigint * interval '1 millisecond', 1000000002, 2, $3, 1, 1, $2)",
                            ["e\(seq)", String(old + Int64(seq)), String(seq)])
            }
            #expect(try EventLog.lastSeqs(c, shards: [2])[2] == 5)
            let pruned = try EventLog.dropPartitions(c, olderThan: 30, today: Int32(today))
            #expect(pruned.dropped.contains { $0.hasPrefix("subscriber_events_") })
            #expect(!pruned.heldByProfiles && pruned.keptFromDay == today - 30, "no profiles imported: the retention alone decides (\(pruned))")
            #expect(try c.query("SELECT count(*) FROM subscriber_events WHERE shard = 2").scalar == "0")
            #expect(try EventLog.lastSeqs(c, shards: [2, 3]) == [2: 5, 3: 0], "the dropped events' numbers are kept; a shard never logged stays at 0")
        }
    }
}
