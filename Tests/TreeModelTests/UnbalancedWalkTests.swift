import Foundation
import Testing
@testable import TreeModel

/// The until-leaves walk (`CompiledForest+Kernels.swift`) that unbalanced trees get scores exactly
/// as walking the loaded trees does, beside the full-depth walk of balanced trees in one forest, in
/// both node layouts, on blocks, threads and the single-row path; and the plan gives each walk to
/// the trees it is meant for.
@Suite("Walking unbalanced trees")
struct UnbalancedWalkTests {
    /// A LightGBM binary model of `count` random leaf-wise trees of 20 leaves over features a…d.
    static func lightGBMModel(trees count: Int, categorical: Bool, seed: UInt64) -> TreeEnsemble {
        var rng = SplitMix(seed: seed)
        let trees = (0..<count).map { _ in leafWiseTree(.lightgbm, leaves: 20, categorical: categorical, &rng) }
        return TreeEnsemble(
            source: "random", library: .lightgbm, libraryVersion: nil, objective: .lightgbmBinary(sigmoid: 1),
            featureNames: ["a", "b", "c", "d"], featureTypes: nil, baseMargin: 0, baseScore: 0, trees: trees, accumulation: .float64)
    }

    /// A leaf-wise grown tree (as LightGBM grows them) over 4 features: `leaves` leaves, each split
    /// taken on the newest leaf most of the time so that long chains form, the cover split unevenly
    /// (2–98%) so that most of it ends in shallow leaves. Splits are numeric with any missing rule
    /// of `library`, or, when `categorical`, categorical half of the time.
    static func leafWiseTree(_ library: TreeEnsemble.Library, leaves: Int, categorical: Bool, _ rng: inout SplitMix) -> DecisionTree {
        var t = DecisionTree(left: [-1], right: [-1], feature: [0], threshold: [0], defaultLeft: [false], missing: [.nanDefault],
                             leafValue: [0.5], cover: [1000], categories: categorical ? [nil] : [])
        var open = [0]
        func newLeaf(cover: Double) -> Int {
            t.left.append(-1); t.right.append(-1); t.feature.append(0); t.threshold.append(0)
            t.defaultLeft.append(false); t.missing.append(.nanDefault); t.cover.append(cover)
            t.leafValue.append(Double(Int(rng.next() % 2001) - 1000) / 1000)
            if categorical { t.categories.append(nil) }
            return t.left.count - 1
        }
        while open.count < leaves {
            let k = rng.next() % 10 < 7 ? open.count - 1 - Int(rng.next() % 2) : Int(rng.next() % UInt64(open.count))
            let n = open.remove(at: max(0, k))
            let share = Double(2 + rng.next() % 97) / 100
            let l = newLeaf(cover: t.cover[n] * share), r = newLeaf(cover: t.cover[n] * (1 - share))
            t.left[n] = Int32(l); t.right[n] = Int32(r)
            t.feature[n] = Int32(rng.next() % 4)
            t.defaultLeft[n] = rng.next() % 2 == 0
            if categorical && rng.next() % 2 == 0 {
                let limit = [3, 40, 600][Int(rng.next() % 3)]
                let members = (0..<(1 + Int(rng.next() % 20))).map { _ in Int(rng.next() % UInt64(limit)) }
                t.categories[n] = CategorySet(categories: members, inSetGoesLeft: library == .lightgbm,
                                              reading: library == .xgboost ? .xgboost : .lightgbm)
                t.threshold[n] = .leastNonzeroMagnitude
            } else {
                t.threshold[n] = Float(Int(rng.next() % 1400) - 200) / 2
                if library == .lightgbm { t.missing[n] = [.nanDefault, .nanAsZero, .zeroDefault][Int(rng.next() % 3)] }
            }
            // The shallower child is opened first, so the newest leaf (split next) is the deeper one.
            if share > 0.5 { open.append(l); open.append(r) } else { open.append(r); open.append(l) }
        }
        return t
    }

    /// A complete tree of `depth` with equal covers (XGBoost's depth-limited shape).
    static func balancedTree(depth: Int, _ rng: inout SplitMix) -> DecisionTree {
        var t = DecisionTree(left: [], right: [], feature: [], threshold: [], defaultLeft: [], missing: [],
                             leafValue: [], cover: [])
        func add(_ d: Int) -> Int {
            let n = t.left.count
            t.left.append(-1); t.right.append(-1); t.feature.append(Int32(rng.next() % 4))
            t.threshold.append(Float(Int(rng.next() % 1400) - 200) / 2); t.defaultLeft.append(rng.next() % 2 == 0)
            t.missing.append(.nanDefault); t.leafValue.append(Double(Int(rng.next() % 2001) - 1000) / 1000)
            t.cover.append(Double(1 << (depth - d)))
            if d < depth {
                let l = add(d + 1), r = add(d + 1)
                t.left[n] = Int32(l); t.right[n] = Int32(r)
            }
            return n
        }
        _ = add(0)
        return t
    }

    /// Rows of 4 features: awkward values (NaN, ±0, ±∞, category edges) and ordinary ones.
    static func columns(_ rows: Int, _ rng: inout SplitMix) -> [[Float]] {
        var columns = [[Float]](repeating: [], count: 4)
        for _ in 0..<rows {
            for j in 0..<4 {
                switch rng.next() % 3 {
                case 0: columns[j].append(CategoricalCompileTests.awkward[Int(rng.next() % UInt64(CategoricalCompileTests.awkward.count))])
                case 1: columns[j].append(Float(rng.next() % 620))
                default: columns[j].append(Float(Int(rng.next() % 14000) - 2000) / 20)
                }
            }
        }
        return columns
    }

    @Test("unbalanced trees walked until leaves score as their trees walk, beside balanced ones",
          arguments: [(TreeEnsemble.Library.lightgbm, false), (.lightgbm, true), (.xgboost, false), (.xgboost, true)])
    func randomForests(library: TreeEnsemble.Library, categorical: Bool) throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CHURNGRID_TEST_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("random seed \(seed) for 'unbalanced trees walked until leaves' (CHURNGRID_TEST_SEED=\(seed) repeats it)")
        var rng = SplitMix(seed: seed)
        var trees: [DecisionTree] = []
        for t in 0..<30 {
            trees.append(t % 5 == 4 ? Self.balancedTree(depth: 1 + t % 7, &rng)
                                    : Self.leafWiseTree(library, leaves: 2 + Int(rng.next() % 70), categorical: categorical, &rng))
        }
        let model = TreeEnsemble(
            source: "random", library: library, libraryVersion: nil,
            objective: library == .xgboost ? .binaryLogistic : .lightgbmBinary(sigmoid: 1),
            featureNames: ["a", "b", "c", "d"], featureTypes: nil, baseMargin: library == .xgboost ? 0.25 : 0,
            baseScore: 0, trees: trees, accumulation: library == .xgboost ? .float32 : .float64)
        let forest = try CompiledForest(model)
        let plan = (0..<forest.treeCount).map { forest.treeUntilLeaves[$0] }
        #expect(plan.contains(true) && plan.contains(false), "both walks in one forest: \(plan)")
        #expect((forest.mixedNodes != nil) == (model.categoricalSplitCount > 0))

        // 1,003 rows: several blocks, and a last block that is not a multiple of the 8-row group.
        let rows = 1003
        let columns = Self.columns(rows, &rng)
        let (block1, _) = try forest.score(columns: columns, threads: 1)
        let (block2, _) = try forest.score(columns: columns, threads: 2)
        var mismatches: [String] = []
        for r in 0..<rows {
            let row = (0..<4).map { columns[$0][r] }
            let expected = CategoricalCompileTests.walked(model, row)
            let single = forest.margin(row: row)
            if single != expected || block1[r] != expected || block2[r] != expected {
                mismatches.append("row \(r) \(row): walked \(expected), single \(single), blocks \(block1[r]) / \(block2[r])")
            }
        }
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.count) mismatches, first: \(mismatches.prefix(3))")
    }

    @Test("the plan walks skewed deep trees until leaves and keeps balanced or coverless ones at full depth")
    func plan() {
        var rng = SplitMix(seed: 5)
        // A chain: 90% of what reaches each split stops at its leaf; one path goes 12 deep.
        let chain = Self.chain(depth: 12)
        #expect(CompiledForest.walksUntilLeaves(chain))
        var flat = chain
        for n in 0..<flat.nodeCount { flat.cover[n] = 0 }
        #expect(!CompiledForest.walksUntilLeaves(flat), "no cover: full depth")
        var broken = chain
        broken.cover[broken.nodeCount - 1] = .nan
        #expect(!CompiledForest.walksUntilLeaves(broken), "a NaN cover: full depth")
        #expect(!CompiledForest.walksUntilLeaves(Self.balancedTree(depth: 6, &rng)))
        #expect(!CompiledForest.walksUntilLeaves(Self.balancedTree(depth: 1, &rng)))
        // Even cover over the chain's leaves: rows go deep as often as not, so full depth.
        var even = Self.chain(depth: 3)
        for n in 0..<even.nodeCount where even.isLeaf(n) { even.cover[n] = 1 }
        #expect(!CompiledForest.walksUntilLeaves(even))
    }

    /// A chain of `depth` splits: split k sends 90% of what reaches it to a leaf, the rest on.
    static func chain(depth: Int) -> DecisionTree {
        var t = DecisionTree(left: [], right: [], feature: [], threshold: [], defaultLeft: [], missing: [],
                             leafValue: [], cover: [])
        var reach = 1000.0
        for d in 0..<depth {
            let split = t.left.count
            // split, then its leaf, then the next split (or the last leaf)
            t.left.append(Int32(split + 1)); t.right.append(Int32(split + 2))
            t.feature.append(0); t.threshold.append(Float(d)); t.defaultLeft.append(false)
            t.missing.append(.nanDefault); t.leafValue.append(0); t.cover.append(reach)
            t.left.append(-1); t.right.append(-1)
            t.feature.append(0); t.threshold.append(0); t.defaultLeft.append(false)
            t.missing.append(.nanDefault); t.leafValue.append(Double(d)); t.cover.append(reach * 0.9)
            reach *= 0.1
        }
        t.left.append(-1); t.right.append(-1)
        t.feature.append(0); t.threshold.append(0); t.defaultLeft.append(false)
        t.missing.append(.nanDefault); t.leafValue.append(-1); t.cover.append(reach)
        return t
    }
}
