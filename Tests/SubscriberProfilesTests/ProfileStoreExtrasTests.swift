import Testing
@testable import SubscriberProfiles

@Suite("Profile store: extra schema columns beside the store's own")
struct ProfileStoreExtrasTests {
    /// A block over `store`'s rows holding, per row, the id times 10 (feature 0) and minus the id (feature 1).
    static func block(for store: ProfileStore) -> ExtraColumns {
        let block = ExtraColumns(names: ["x", "y"], rows: store.rowCount)
        for r in 0..<store.rowCount {
            let id = Float(store.id(at: r))
            block.set(row: r, feature: 0, id * 10)
            block.set(row: r, feature: 1, -id)
        }
        return block
    }

    @Test("attached extras are read after the store's own columns by walks (across chunks and holes), profiles and values; an erasure clears them; a block of other rows is refused; exports keep the store's own columns only")
    func attached() throws {
        let n = ProfileStore.chunkRows + 300
        let store = ProfileStoreErasureTests.store(n)
        #expect(store.width == 3 && store.extras == nil)
        #expect(throws: ProfileStoreError.self) { try store.attach(ExtraColumns(names: ["x"], rows: n - 1)) }
        try store.attach(Self.block(for: store))
        #expect(store.width == 5)
        #expect(store.profile(of: 7) == [7, 1, -7, 70, -7])
        #expect(store.value(row: store.row(of: 9)!, feature: 3) == 90)
        #expect(store.erase(id: 7))
        #expect(store.erase(id: Int64(ProfileStore.chunkRows) + 2))
        let row7 = (0..<store.rowCount).first { store.id(at: $0) == ProfileStore.erasedID }!
        #expect(store.value(row: row7, feature: 3).isNaN && store.value(row: row7, feature: 4).isNaN, "the erased subscriber's extras are cleared")
        var seen = 0
        store.forEachRun { _, rows, ids, columns in
            #expect(columns.count == 5)
            for i in 0..<rows {
                #expect(columns[3][i] == Float(ids[i]) * 10 && columns[4][i] == -Float(ids[i]) && columns[0][i] == Float(ids[i]))
            }
            seen += rows
        }
        #expect(seen == n - 2)
        let exported = store.exported()
        #expect(exported.values.count == 3 * (n - 2), "a shard travels with its own columns only")
        // A block built while an erasure ran keeps the erased row's values: attaching clears them.
        let stale = ExtraColumns(names: ["x"], rows: store.rowCount)
        for r in 0..<store.rowCount { stale.set(row: r, feature: 0, 1) }
        try store.attach(stale)
        #expect(stale.value(row: row7, feature: 0).isNaN)
        try store.attach(nil)
        #expect(store.width == 3 && store.profile(of: 9) == [9, 1, -9])
    }

    @Test("a row's chosen features gathered at a stride read as each `value(row:feature:)`: the store's own in any order, the extras, an index past the extras missing (absent features: BatchLookupTests)")
    func gatheredValues() throws {
        let n = ProfileStore.chunkRows + 300
        let store = ProfileStoreErasureTests.store(n)
        try store.attach(Self.block(for: store))
        let features = [4, 0, 2, 9, 3, 1, 3]
        var out = [Float](repeating: 0, count: 3 * features.count)
        for id in [Int64(3), Int64(ProfileStore.chunkRows) + 17] {
            let row = try #require(store.row(of: id))
            out.withUnsafeMutableBufferPointer { store.values(row: row, features: features, into: $0.baseAddress! + 1, stride: 3) }
            for (k, feature) in features.enumerated() {
                let want = store.value(row: row, feature: feature)
                #expect(out[1 + 3 * k] == want || (out[1 + 3 * k].isNaN && want.isNaN), "subscriber \(id), feature \(feature)")
            }
            #expect(out[1 + 3 * 3].isNaN, "an index past the extras is missing")
            #expect(out[1 + 3 * 0] == Float(id) * -1 && out[1 + 3 * 4] == Float(id) * 10)
        }
    }

    @Test("rows added after a block was attached read its columns as missing (NaN), in runs of their own")
    func rowsPastTheBlock() throws {
        let store = ProfileStore(featureCount: 1)
        for i in 1...10 { store.upsert(id: Int64(i), profile: [Float(i)]) }
        try store.attach(Self.block(for: store))
        for i in 11...15 { store.upsert(id: Int64(i), profile: [Float(i)]) }
        var values: [Int64: Float] = [:]
        store.forEachRun { _, rows, ids, columns in
            for i in 0..<rows { values[ids[i]] = columns[1][i] }
        }
        #expect(values.count == 15)
        #expect((1...10).allSatisfy { values[Int64($0)] == Float($0) * 10 })
        #expect((11...15).allSatisfy { values[Int64($0)]!.isNaN })
        #expect(store.profile(of: 12)![1].isNaN)
    }
}
