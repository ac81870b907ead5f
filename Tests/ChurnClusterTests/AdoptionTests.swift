import ChurnCluster
import Testing

/// What a restarted coordinator makes of the shards a registering worker says it hosts: a reply
/// from the worker, so its numbers are outside input (a worker of another cluster, or of this
/// database before it was created again with fewer shards, reports numbers the map does not have).
@Suite("Adopting a registering worker's shards")
struct AdoptionTests {
    @Test("shards nobody owns are adopted, each once; numbers outside the map are never adopted and are released as stray, without touching the map")
    func adoptable() {
        var map = ShardMap(shardCount: 8).giving("b", owned: [0, 1], standby: [2])
        map = map.giving("a", owned: [5], standby: [])
        let hostile = Holdings(owned: [3, 3, 1, -1, 8, Int.max, Int.min, 5], standby: [2, 4, 4, 3, 9, -7, 5])

        let (owned, standby) = map.adoptable(from: hostile, by: "a", standbys: true)
        #expect(owned == [3])  // 1 is b's, 5 already a's, the rest are not the map's shards
        #expect(standby == [4])  // 2 has b as standby, 3 is adopted as owner, 5 is a's own, 9 and -7 are not shards
        #expect(map.adoptable(from: hostile, by: "a", standbys: false).standby.isEmpty)

        let stray = map.stray(in: hostile, of: "a")
        #expect(stray.owned == [Int.min, -1, 1, 3, 8, Int.max])  // 3 is not a's until the adoption is applied
        #expect(stray.standby == [-7, 2, 3, 4, 5, 9])
        // After the adoption, only the foreign numbers and the shards others hold stay stray.
        let adopted = map.giving("a", owned: owned, standby: standby)
        #expect(adopted.stray(in: hostile, of: "a").owned == [Int.min, -1, 1, 8, Int.max])
        #expect(adopted.stray(in: hostile, of: "a").standby == [-7, 2, 3, 5, 9])
        #expect(adopted.owners.count == 8 && adopted.standbys.count == 8)

        #expect(map.contains(shard: 0) && map.contains(shard: 7))
        #expect(!map.contains(shard: -1) && !map.contains(shard: 8) && !map.contains(shard: Int.max))
    }
}
