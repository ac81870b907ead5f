import Foundation
import Testing
@testable import TreeModel

/// The mixed layout (categorical and numeric splits in one branch-free walk) scores exactly as
/// walking the loaded trees does, on random forests and on codes placed where the compiled bitsets
/// have their edges: word boundaries, the largest category of a set, beyond it, and values that are
/// no category at all.
@Suite("Compiling categorical splits")
struct CategoricalCompileTests {
    /// Values a categorical column may hold, chosen for the compiled bitsets' edges.
    static let awkward: [Float] = [
        .nan, -0.0, 0, -0.5, -0.99, -1, -1.5, -3, 0.5, 0.99, 1, 2.7, 29, 30, 31, 31.5, 32, 33, 61, 62, 63, 64, 65,
        95, 96, 97, 599, 600, 601, 1000, 16_777_215, 16_777_216, 2_147_483_520, 2_147_483_648, 1e30, -1e30,
        .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1e-36,
    ]

    /// A random tree over 4 features in which every inner node is, at random, a categorical split
    /// (a set of 1–20 categories below 3, 40 or 600, read as `library` reads them) or a numeric one
    /// (any missing rule the library has); a feature may carry both kinds. Covers add up.
    static func randomTree(_ library: TreeEnsemble.Library, depth: Int, _ rng: inout SplitMix) -> DecisionTree {
        var t = DecisionTree(left: [], right: [], feature: [], threshold: [], defaultLeft: [], missing: [],
                             leafValue: [], cover: [], categories: [])
        func add(_ d: Int) -> Int {
            let n = t.left.count
            t.left.append(-1); t.right.append(-1); t.feature.append(0); t.threshold.append(0)
            t.defaultLeft.append(false); t.missing.append(.nanDefault); t.leafValue.append(0); t.cover.append(0)
            t.categories.append(nil)
            if d == depth || (d > 0 && rng.next() % 6 == 0) {
                t.leafValue[n] = Double(Int(rng.next() % 2001) - 1000) / 1000
                t.cover[n] = Double(1 + rng.next() % 9)
                return n
            }
            t.feature[n] = Int32(rng.next() % 4)
            t.defaultLeft[n] = library == .xgboost && rng.next() % 2 == 0
            if rng.next() % 2 == 0 {
                let limit = [3, 40, 600][Int(rng.next() % 3)]
                let members = (0..<(1 + Int(rng.next() % 20))).map { _ in Int(rng.next() % UInt64(limit)) }
                t.categories[n] = CategorySet(categories: members, inSetGoesLeft: library == .lightgbm,
                                              reading: library == .xgboost ? .xgboost : .lightgbm)
                t.threshold[n] = .leastNonzeroMagnitude  // what XGBoost writes for a categorical split
            } else {
                t.threshold[n] = Float(Int(rng.next() % 1400) - 200) / 2
                if library == .lightgbm {
                    t.missing[n] = [.nanDefault, .nanAsZero, .zeroDefault][Int(rng.next() % 3)]
                    t.defaultLeft[n] = rng.next() % 2 == 0
                }
            }
            let l = add(d + 1), r = add(d + 1)
            t.left[n] = Int32(l)
            t.right[n] = Int32(r)
            t.cover[n] = t.cover[l] + t.cover[r]
            return n
        }
        _ = add(0)
        return t
    }

    /// What the library would sum for `row`: each tree walked by `DecisionTree.next`, in model order,
    /// in the model's accumulation type.
    static func walked(_ model: TreeEnsemble, _ row: [Float]) -> Double {
        var f = Float(model.baseMargin), d = model.baseMargin
        for tree in model.trees {
            var n = 0
            while !tree.isLeaf(n) { n = tree.next(n, value: row[Int(tree.feature[n])]) }
            f += Float(tree.leafValue[n])
            d += tree.leafValue[n]
        }
        return model.accumulation == .float32 ? Double(f) : d
    }

    @Test("random forests with mixed splits score as their trees walk, on every path", arguments: [TreeEnsemble.Library.xgboost, .lightgbm])
    func randomForests(library: TreeEnsemble.Library) throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CHURNGRID_TEST_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("random seed \(seed) for 'random forests with mixed splits' (CHURNGRID_TEST_SEED=\(seed) repeats it)")
        var rng = SplitMix(seed: seed)
        let trees = (0..<40).map { t in Self.randomTree(library, depth: 1 + t % 8, &rng) }
        let model = TreeEnsemble(
            source: "random", library: library, libraryVersion: nil,
            objective: library == .xgboost ? .binaryLogistic : .lightgbmBinary(sigmoid: 1),
            featureNames: ["a", "b", "c", "d"], featureTypes: nil, baseMargin: library == .xgboost ? 0.25 : 0,
            baseScore: 0, trees: trees, accumulation: library == .xgboost ? .float32 : .float64)
        let forest = try CompiledForest(model)
        #expect(forest.mixedNodes != nil)
        let explainer = TreeExplainer(model)

        let rows = 3000
        var columns = [[Float]](repeating: [], count: 4)
        for _ in 0..<rows {
            for j in 0..<4 {
                switch rng.next() % 3 {
                case 0: columns[j].append(Self.awkward[Int(rng.next() % UInt64(Self.awkward.count))])
                case 1: columns[j].append(Float(rng.next() % 620))
                default: columns[j].append(Float(Int(rng.next() % 14000) - 2000) / 20)
                }
            }
        }
        let (block1, _) = try forest.score(columns: columns, threads: 1)
        let (block2, _) = try forest.score(columns: columns, threads: 2)
        var mismatches: [String] = []
        for r in 0..<rows {
            let row = (0..<4).map { columns[$0][r] }
            let expected = Self.walked(model, row)
            let single = forest.margin(row: row)
            if single != expected || block1[r] != expected || block2[r] != expected {
                mismatches.append("row \(row): walked \(expected), single \(single), blocks \(block1[r]) / \(block2[r])")
            }
            if r % 10 == 0 {
                for method in [TreeExplainer.Method.exact, .approximate] {
                    let sum = explainer.contributions(row: row, method: method).reduce(0, +)
                    if abs(sum - expected) > 1e-5 { mismatches.append("row \(row): \(method) contributions sum to \(sum), margin \(expected)") }
                }
            }
        }
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.count) mismatches, first: \(mismatches.prefix(3))")
    }

    @Test("a numeric model keeps the 8-byte layout and scores as before alongside a categorical one")
    func numericUnchanged() throws {
        var rng = SplitMix(seed: 11)
        var numericTrees: [DecisionTree] = []
        for t in 0..<20 {
            var tree = Self.randomTree(.lightgbm, depth: 1 + t % 6, &rng)
            tree.categories = []  // the same shapes, every categorical node turned numeric
            numericTrees.append(tree)
        }
        let model = TreeEnsemble(source: "numeric", library: .lightgbm, libraryVersion: nil, objective: .lightgbmBinary(sigmoid: 1),
                                 featureNames: ["a", "b", "c", "d"], featureTypes: nil, baseMargin: 0, baseScore: 0,
                                 trees: numericTrees, accumulation: .float64)
        let forest = try CompiledForest(model)
        #expect(forest.nodes != nil && forest.mixedNodes == nil)
        for _ in 0..<500 {
            let row = (0..<4).map { _ in Self.awkward[Int(rng.next() % UInt64(Self.awkward.count))] }
            #expect(forest.margin(row: row) == Self.walked(model, row))
        }
    }
}
