import Foundation
import Testing
import TestSupport
@testable import SubscriberProfiles

@Suite("Profile store")
struct ProfileStoreTests {
    @Test("random inserts, updates and removals agree with a dictionary")
    func modelBased() {
        var rng = SeededGenerator("random inserts, updates and removals")
        let store = ProfileStore(featureCount: 3)
        var reference: [Int64: [Float]] = [:]
        for step in 0..<60_000 {
            let id = Int64.random(in: 0..<20_000, using: &rng) * 7919 - 50_000
            if Int.random(in: 0..<4, using: &rng) == 0 {
                #expect(store.remove(id: id) == (reference.removeValue(forKey: id) != nil))
            } else {
                let p: [Float] = [Float(step), Float(id), Bool.random(using: &rng) ? .nan : 1]
                #expect(store.upsert(id: id, profile: p) == (reference[id] == nil))
                reference[id] = p
            }
        }
        #expect(store.count == reference.count)
        for (id, p) in reference {
            let got = store.profile(of: id)
            #expect(got?[0] == p[0] && got?[1] == p[1] && (got?[2].isNaN == p[2].isNaN))
        }
        #expect(store.profile(of: 123_456_789_000) == nil)
        // Every row is visited once by the scorer's walk, with its own id.
        var seen = Set<Int64>()
        store.forEachRun { first, rows, ids, columns in
            for r in 0..<rows {
                #expect(seen.insert(ids[r]).inserted)
                #expect(columns[0][r] == reference[ids[r]]![0])
            }
        }
        #expect(seen.count == reference.count)
    }

    @Test("rows span several chunks and removals keep them dense")
    func chunks() {
        let store = ProfileStore(featureCount: 2)
        let n = ProfileStore.chunkRows * 2 + 100
        for i in 0..<n { store.upsert(id: Int64(i), profile: [Float(i), -Float(i)]) }
        for i in stride(from: 0, to: n, by: 3) { store.remove(id: Int64(i)) }
        #expect(store.count == n - (n + 2) / 3)
        for i in 0..<n {
            let p = store.profile(of: Int64(i))
            if i % 3 == 0 { #expect(p == nil) } else { #expect(p == [Float(i), -Float(i)]) }
        }
    }

    @Test("a store of the catalogue's features costs under 200 bytes per subscriber")
    func memory() {
        let store = ProfileStore()
        let n = 1_000_000
        store.reserve(n)
        var p = [Float](repeating: 1, count: FeatureCatalogue.count)
        for i in 0..<n {
            p[0] = Float(i)
            store.upsert(id: Int64(i) * 31, profile: p)
        }
        let perSubscriber = Double(store.residentBytes) / Double(n)
        #expect(perSubscriber <= 200, "\(perSubscriber) bytes per subscriber")
    }
}

@Suite("Shard key")
struct ShardKeyTests {
    @Test("keys are 31-bit and shards partition the key space exactly", arguments: [1, 7, 1024, 4096])
    func ranges(shardCount: Int) {
        var next: Int64 = 0
        for s in 0..<shardCount {
            let r = ShardKey.keyRange(shard: s, shardCount: shardCount)
            #expect(r.lowerBound == next)
            next = r.upperBound
            #expect(ShardKey.shard(ofKey: Int32(r.lowerBound), shardCount: shardCount) == s)
            if r.upperBound - 1 >= r.lowerBound {
                #expect(ShardKey.shard(ofKey: Int32(r.upperBound - 1), shardCount: shardCount) == s)
            }
        }
        #expect(next == 1 << 31)
    }

    @Test("consecutive ids spread evenly over 1024 shards")
    func spread() {
        var counts = [Int](repeating: 0, count: 1024)
        for id in Int64(1_000_000_000)..<Int64(1_001_024_000) {
            let k = ShardKey.key(id)
            #expect(k >= 0)
            counts[ShardKey.shard(ofKey: k, shardCount: 1024)] += 1
        }
        // 1000 per shard expected; a uniform hash stays well within ±20%.
        #expect(counts.min()! > 800 && counts.max()! < 1200, "\(counts.min()!)…\(counts.max()!)")
    }

    @Test("negative and extreme ids have valid keys")
    func extremes() {
        for id in [Int64.min, -1, 0, 1, Int64.max] {
            let k = ShardKey.key(id)
            #expect(k >= 0)
        }
    }
}

@Suite("Synthetic base")
struct SyntheticBaseTests {
    private func draw(_ base: SyntheticBase, _ range: Range<Int>) -> [(Int64, [Float], Bool)] {
        var out: [(Int64, [Float], Bool)] = []
        base.generate(range) { id, p, label in out.append((id, Array(p), label)) }
        return out
    }

    private func same(_ a: [(Int64, [Float], Bool)], _ b: [(Int64, [Float], Bool)]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            x.0 == y.0 && x.2 == y.2 && zip(x.1, y.1).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
        }
    }

    @Test("the same seed gives the same subscribers however the range is split")
    func reproducible() {
        let base = SyntheticBase(seed: 42)
        let whole = draw(base, 0..<10_000)
        let parts = draw(base, 0..<4_100) + draw(base, 4_100..<10_000)
        #expect(same(whole, parts))
        #expect(same(Array(whole[5_000..<5_010]), draw(base, 5_000..<5_010)))
        #expect(!same(whole, draw(SyntheticBase(seed: 43), 0..<10_000)))
    }

    @Test("about 2–4% churn, a prepaid majority, missing values where documented")
    func looksLikeABase() {
        let rows = draw(SyntheticBase(seed: 7), 0..<200_000)
        let churn = Double(rows.filter(\.2).count) / Double(rows.count)
        #expect(churn >= 0.02 && churn <= 0.04, "churn \(churn)")
        let prepaid = FeatureCatalogue.index(of: "is_prepaid")!
        let contract = FeatureCatalogue.index(of: "days_to_contract_end")!
        let prepaidShare = Double(rows.filter { $0.1[prepaid] == 1 }.count) / Double(rows.count)
        #expect(prepaidShare > 0.55 && prepaidShare < 0.7)
        #expect(rows.allSatisfy { $0.1[prepaid] == 0 || $0.1[contract].isNaN })
        #expect(rows.allSatisfy { $0.1.count == FeatureCatalogue.count })
        // Heavy tail: the top 1% of bills is several times the median.
        let arpu = rows.map { $0.1[FeatureCatalogue.index(of: "arpu_30d")!] }.sorted()
        #expect(arpu[arpu.count * 99 / 100] > 4 * arpu[arpu.count / 2])
    }
}

@Suite("Feature catalogue")
struct FeatureCatalogueTests {
    @Test("names are unique snake_case and docs/features.md explains every one")
    func documented() throws {
        #expect(Set(FeatureCatalogue.names).count == FeatureCatalogue.count)
        #expect(FeatureCatalogue.count >= 30 && FeatureCatalogue.count <= 40)
        for name in FeatureCatalogue.names {
            #expect(name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "_" }, "\(name)")
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/features.md"), encoding: .utf8)
        for name in FeatureCatalogue.names { #expect(doc.contains("`\(name)`"), "docs/features.md lacks \(name)") }
        #expect(doc == FeatureSchema.catalogueDocumentation(), "docs/features.md is not the default schema's page: churngrid profiles schema --default --markdown > docs/features.md")
    }
}

@Suite("A shard's store in its travelling form")
struct ProfileStoreExportTests {
    @Test("exported and rebuilt, a store answers exactly as before, across chunk boundaries and after removals")
    func roundTrip() throws {
        let store = ProfileStore(featureCount: 3)
        let n = ProfileStore.chunkRows + 1_000
        for i in 0..<n { store.upsert(id: Int64(i) * 7 + 1, profile: [Float(i), i % 5 == 0 ? .nan : -Float(i), Float(i % 13)]) }
        for i in stride(from: 0, to: n, by: 97) { store.remove(id: Int64(i) * 7 + 1) }
        let (ids, values) = store.exported()
        let copy = try ProfileStore(featureCount: 3, ids: ids, values: values)
        #expect(copy.count == store.count)
        for i in 0..<n {
            let id = Int64(i) * 7 + 1
            let a = store.profile(of: id), b = copy.profile(of: id)
            #expect(a?.map(\.bitPattern) == b?.map(\.bitPattern), "subscriber \(id)")
        }
    }

    @Test("arrays that do not fit together, or a repeated id, are refused with what is wrong")
    func refusesBadInput() {
        #expect(throws: ProfileStoreError.self) { try ProfileStore(featureCount: 2, ids: [1, 2], values: [1, 2, 3]) }
        do {
            _ = try ProfileStore(featureCount: 1, ids: [5, 5], values: [1, 2])
            Issue.record("a repeated id was accepted")
        } catch {
            #expect(error.description.contains("subscriber 5 appears twice"))
        }
    }
}
