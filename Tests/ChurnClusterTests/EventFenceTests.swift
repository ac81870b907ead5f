@testable import ChurnCluster
import Foundation
import Logging
import Postgres
import ProfileDatabase
import SubscriberProfiles
import Testing
import TestSupport

/// The event fences' generations on a real PostgreSQL, driven on a worker's event state directly:
/// the generation an owner writes under is always the one the server holds.
@Suite("Event fence generations")
struct EventFenceTests {
    @Test("a replay's raise refused for one shard (another owner holds it) raises the others again: each owned shard's generation is the server's, and only the refused one is lost")
    func partlyRefusedRaise() async throws {
        let url = try await TestDatabase.fresh()
        let db = try PostgresConnection(url: url)
        try ProfileSchema.migrate(db)
        // Shards 1 and 3 are worker-1's (term 1, epoch 1); shard 2 has moved to worker-9 under a newer epoch.
        try db.execute("""
            INSERT INTO churngrid_event_owners (shard, node, term, epoch, generation)
            VALUES (1, 'worker-1', 1, 1, 5), (2, 'worker-9', 1, 2, 1), (3, 'worker-1', 1, 1, 7)
            """)
        var logger = Logger(label: "test.fence")
        logger.logLevel = .critical
        let confined = Confined(postgresURL: url, node: "worker-1", logger: logger)
        for s in 1...3 {
            let slot = Confined.Slot(store: LoadedShard(store: ProfileStore(featureCount: 1), generation: 1), events: ShardEvents(shard: s),
                                     role: .owner(term: 1, epoch: 1))
            slot.generation = s == 1 ? 5 : s == 2 ? 4 : 7
            // The last write's outcome unknown: the next refresh raises the fences again and replays.
            slot.unsynced = true
            confined.slots[s] = slot
        }
        confined.refreshStandbys()
        let server = Dictionary(uniqueKeysWithValues: try db.query("SELECT shard, generation, node FROM churngrid_event_owners ORDER BY shard").rows.compactMap { row -> (Int, (Int64, String))? in
            guard let s = row[0].flatMap({ Int($0) }), let g = row[1].flatMap({ Int64($0) }), let n = row[2] else { return nil }
            return (s, (g, n))
        })
        #expect(confined.slots[2]?.lost == true, "the shard another owner holds is lost")
        #expect(server[2]?.1 == "worker-9" && server[2]?.0 == 1, "its fence untouched")
        for s in [1, 3] {
            #expect(confined.slots[s]?.lost == false, "shard \(s) is still owned")
            #expect(confined.slots[s]?.generation == server[s]?.0, "shard \(s): the owner writes under generation \(confined.slots[s]?.generation ?? -1), the server holds \(server[s]?.0 ?? -1)")
            #expect(server[s]?.0 == (s == 1 ? 6 : 8), "shard \(s)'s fence raised once more")
        }
        confined.close()
    }
}
