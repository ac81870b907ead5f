import Testing
@testable import SubscriberProfiles

@Suite("A store with absent features")
struct ProfileStoreAbsentTests {
    @Test("an absent feature has no column: it reads as missing everywhere, writes to it are dropped, and it costs no memory")
    func absentFeature() throws {
        let full = ProfileStore(featureCount: 4)
        let sparse = ProfileStore(featureCount: 4, absent: [1, 3])
        #expect(sparse.heldCount == 2 && sparse.absent == [1, 3] && sparse.holds(feature: 0) && !sparse.holds(feature: 1))
        let n = ProfileStore.chunkRows + 500  // across a chunk boundary
        full.reserve(n)
        sparse.reserve(n)
        for i in 0..<n {
            let p: [Float] = [Float(i), 7, -Float(i), 9]
            full.upsert(id: Int64(i), profile: p)
            sparse.upsert(id: Int64(i), profile: p)
        }
        // An update (an event) writes the absent feature too: dropped.
        sparse.upsert(id: 42, profile: [1, 2, 3, 4])
        #expect(sparse.profile(of: 42)?.map { $0.isNaN ? -1 : $0 } == [1, -1, 3, -1])
        #expect(sparse.value(row: sparse.row(of: 7)!, feature: 2) == -7 && sparse.value(row: sparse.row(of: 7)!, feature: 3).isNaN)
        var walked = 0
        sparse.forEachRun { _, rows, ids, columns in
            #expect(columns.count == 4)
            for r in 0..<rows where ids[r] != 42 {
                #expect(columns[0][r] == Float(ids[r]) && columns[1][r].isNaN && columns[2][r] == -Float(ids[r]) && columns[3][r].isNaN)
            }
            walked += rows
        }
        #expect(walked == n)
        // Removing moves the last row (its held columns only) into the hole.
        sparse.remove(id: 3)
        #expect(sparse.profile(of: Int64(n - 1))?[2] == -Float(n - 1) && sparse.profile(of: 3) == nil)
        // Two of four columns: the values cost half; ids and the index are the same.
        #expect(full.residentBytes - sparse.residentBytes >= 2 * 4 * n)
        // The travelling form keeps every feature (absent ones missing), and rebuilds the same.
        let (ids, values) = sparse.exported()
        #expect(values.count == ids.count * 4)
        let lacking = ProfileStore.allMissing(values, rows: ids.count, featureCount: 4, among: [0, 1, 3])
        #expect(lacking == [1, 3], "feature 0 holds values: never left absent")
        let copy = try ProfileStore(featureCount: 4, ids: ids, values: values, absent: lacking)
        #expect(copy.heldCount == 2 && copy.count == sparse.count)
        for id in [Int64(0), 42, Int64(n - 1)] {
            #expect(copy.profile(of: id)?.map(\.bitPattern) == sparse.profile(of: id)?.map(\.bitPattern), "subscriber \(id)")
        }
        // Erasing clears the held columns only.
        #expect(copy.erase(id: 42) && copy.profile(of: 42) == nil)
    }

    @Test("a store with every feature absent holds ids only, and extras beside them")
    func onlyExtras() throws {
        let store = ProfileStore(featureCount: 3, absent: [0, 1, 2])
        for i in 0..<1_000 { store.upsert(id: Int64(i), profile: [1, 2, 3]) }
        #expect(store.heldCount == 0 && store.count == 1_000)
        let extras = ExtraColumns(names: ["x"], rows: store.rowCount)
        for r in 0..<store.rowCount { extras.set(row: r, feature: 0, Float(store.id(at: r))) }
        try store.attach(extras)
        #expect(store.profile(of: 5)?.map { $0.isNaN ? -1 : $0 } == [-1, -1, -1, 5])
        // 8 for the id, the index, and 4 for the one extra column: no own values.
        #expect(store.residentBytes < 1_000 * (8 + 4 + 16))
    }
}
