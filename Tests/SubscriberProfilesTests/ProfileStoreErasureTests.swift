import Foundation
import Synchronization
import Testing
import TestSupport
@testable import SubscriberProfiles

@Suite("Profile store: erasing subscribers")
struct ProfileStoreErasureTests {
    /// A store of `n` subscribers (ids 1…n, two chunks and a bit), feature 0 = the id.
    static func store(_ n: Int = ProfileStore.chunkRows + 500) -> ProfileStore {
        let store = ProfileStore(featureCount: 3)
        for i in 1...n { store.upsert(id: Int64(i), profile: [Float(i), 1, -Float(i)]) }
        return store
    }

    @Test("an erased subscriber is gone from lookups, walks, exports and the count; its values are overwritten; the others are untouched")
    func erasedEverywhere() throws {
        let n = ProfileStore.chunkRows + 500
        let store = Self.store(n)
        // First row, last row of the first chunk, first of the second, two adjacent, the very last.
        let erased: [Int64] = [1, Int64(ProfileStore.chunkRows), Int64(ProfileStore.chunkRows) + 1, 700, 701, Int64(n)]
        let rows = erased.map { store.row(of: $0)! }
        for id in erased { #expect(store.erase(id: id)) }
        #expect(!store.erase(id: 1), "erasing twice finds nothing the second time")
        #expect(!store.erase(id: Int64(n) + 1), "an unknown subscriber")
        #expect(store.count == n - erased.count && store.erasedRows == erased.count && store.rowCount == n)
        for (id, row) in zip(erased, rows) {
            #expect(store.profile(of: id) == nil && store.row(of: id) == nil)
            #expect(store.id(at: row) == ProfileStore.erasedID)
            #expect((0..<3).allSatisfy { store.value(row: row, feature: $0).isNaN }, "the erased values are overwritten")
        }
        #expect(store.row(of: ProfileStore.erasedID) == nil)
        // Every other subscriber is found with its own profile.
        let gone = Set(erased)
        for i in 1...n where !gone.contains(Int64(i)) {
            #expect(store.profile(of: Int64(i)) == [Float(i), 1, -Float(i)])
        }
        // The walk skips the holes and visits everyone else once, with the right values.
        var seen = Set<Int64>()
        store.forEachRun { first, count, ids, columns in
            for r in 0..<count {
                #expect(ids[r] != ProfileStore.erasedID && seen.insert(ids[r]).inserted)
                #expect(columns[0][r] == Float(ids[r]) && columns[2][r] == -Float(ids[r]))
                #expect(store.id(at: first + r) == ids[r], "firstRow is the run's first row")
            }
        }
        #expect(seen.count == n - erased.count && seen.isDisjoint(with: gone))
        // The export leaves them out, and a store rebuilt from it has no holes.
        let (ids, values) = store.exported()
        #expect(ids.count == n - erased.count && Set(ids).isDisjoint(with: gone))
        #expect(values.count == ids.count * 3)
        let rebuilt = try ProfileStore(featureCount: 3, ids: ids, values: values)
        #expect(rebuilt.count == ids.count && rebuilt.erasedRows == 0)
        for id in ids.prefix(1000) { #expect(rebuilt.profile(of: id) == store.profile(of: id)) }
    }

    @Test("a subscriber erased and added again is found with its new profile; removals and inserts after erasures keep every lookup right")
    func mixedWithRemovals() {
        var rng = SeededGenerator("erasures mixed with removals")
        let store = ProfileStore(featureCount: 2)
        var reference: [Int64: [Float]] = [:]
        for step in 0..<40_000 {
            let id = Int64.random(in: 1..<8_000, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: #expect(store.remove(id: id) == (reference.removeValue(forKey: id) != nil))
            case 1: #expect(store.erase(id: id) == (reference.removeValue(forKey: id) != nil))
            default:
                let p: [Float] = [Float(step), Float(id)]
                #expect(store.upsert(id: id, profile: p) == (reference[id] == nil))
                reference[id] = p
            }
        }
        #expect(store.count == reference.count)
        for id in Int64(1)..<8_000 { #expect(store.profile(of: id) == reference[id]) }
        var walked: [Int64: Float] = [:]
        store.forEachRun { _, count, ids, columns in
            for r in 0..<count { walked[ids[r]] = columns[0][r] }
        }
        #expect(walked.count == reference.count && walked.allSatisfy { reference[$0.key]?[0] == $0.value })
    }

    @Test("while erasures happen on another thread, lookups of the others stay right and one of a subscriber being erased answers its own profile or nothing, never another's")
    func concurrentLookups() async {
        let n = 200_000
        let store = Self.store(n)
        let shared = UncheckedBox(store)
        let flags = Flags()
        let wrong = await withTaskGroup(of: Int.self) { group in
            group.addTask {
                await onOwnThread {
                    flags.start()
                    // Erase every even id below 20,000 while the reader runs.
                    for id in stride(from: Int64(2), to: 20_000, by: 2) { shared.value.erase(id: id) }
                    flags.erasing.store(false, ordering: .relaxed)
                    return 0
                }
            }
            group.addTask {
                await onOwnThread {
                    flags.start()
                    var wrong = 0, rounds = 0
                    while flags.erasing.load(ordering: .relaxed) || rounds < 2 {
                        rounds += 1
                        for i in 1..<20_100 {
                            let p = shared.value.profile(of: Int64(i))
                            if i % 2 == 1 || i >= 20_000 {
                                if p?[0] != Float(i) { wrong += 1 }
                            } else if let p, !(p[0] == Float(i) || p[0].isNaN) {
                                wrong += 1  // another subscriber's profile
                            }
                        }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0, "lookups answered wrong \(wrong) times")
        #expect(store.count == n - 9_999)
        for id in stride(from: Int64(2), to: 20_000, by: 2) { #expect(store.profile(of: id) == nil) }
    }
}

/// The two threads' start line and the writer's "done".
final class Flags: Sendable {
    let started = Atomic<Int>(0)
    let erasing = Atomic<Bool>(true)

    /// Returns once both threads have arrived.
    func start() {
        started.add(1, ordering: .relaxed)
        while started.load(ordering: .relaxed) < 2 {}
    }
}

/// Hands a non-Sendable store to the test's threads (the store's own rules make this safe:
/// one writer, readers of other rows).
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
