import Foundation
import Testing
@testable import TreeModel

/// The leaf-bitvector walk (`CompiledForest+ExitLeaves.swift`, AVX-512 and AVX2) scores and attributes
/// exactly as the portable walks do, and as walking the loaded trees does: trees of 1 to 80 leaves
/// (those beyond 64 keep the portable walk), leaves on either half of the 64-bit set and splits
/// across both, left and right chains, awkward values, blocks that end part-way through a group of
/// 16 rows, one and two threads, both accumulation types, each instruction set this processor has.
@Suite("The leaf-bitvector walk")
struct ExitLeafTests {
    /// A chain of `splits` splits whose continuing child is on the `right` or left side. On `ordered`
    /// chains every split reads feature 0 with thresholds in the order that lets rows go all the
    /// way (integers from −100 to 600, so the inputs' integers tie with them): every leaf, the
    /// deepest included, is some row's exit. Otherwise features and thresholds are random.
    static func chain(splits: Int, right: Bool, ordered: Bool = false, _ rng: inout SplitMix) -> DecisionTree {
        var t = DecisionTree(left: [], right: [], feature: [], threshold: [], defaultLeft: [], missing: [],
                             leafValue: [], cover: [])
        for k in 0..<splits {
            let split = t.left.count
            // the split, its leaf, then the next split (or the last leaf)
            t.left.append(Int32(right ? split + 1 : split + 2)); t.right.append(Int32(right ? split + 2 : split + 1))
            let step = Float(-100 + 700 * (k + 1) / (splits + 1))
            t.feature.append(ordered ? 0 : Int32(rng.next() % 4))
            t.threshold.append(ordered ? (right ? step : 500 - step) : Float(Int(rng.next() % 1400) - 200) / 2)
            t.defaultLeft.append(rng.next() % 2 == 0); t.missing.append(.nanDefault)
            t.leafValue.append(0); t.cover.append(1)
            t.left.append(-1); t.right.append(-1); t.feature.append(0); t.threshold.append(0); t.defaultLeft.append(false)
            t.missing.append(.nanDefault); t.leafValue.append(Double(Int(rng.next() % 2001) - 1000) / 1000); t.cover.append(1)
        }
        t.left.append(-1); t.right.append(-1); t.feature.append(0); t.threshold.append(0); t.defaultLeft.append(false)
        t.missing.append(.nanDefault); t.leafValue.append(0.125); t.cover.append(1)
        return t
    }

    /// Trees of every shape the walk must get right, and a few it must leave to the portable walks.
    static func trees(_ library: TreeEnsemble.Library, _ rng: inout SplitMix) -> [DecisionTree] {
        var trees: [DecisionTree] = []
        // Exactly at the edges: 32 | 33 leaves (a half's edge), 63 and 64 (full), 65 (too many).
        for leaves in [2, 3, 31, 32, 33, 34, 63, 64, 65, 80] {
            trees.append(UnbalancedWalkTests.leafWiseTree(library, leaves: leaves, categorical: false, &rng))
        }
        for splits in [1, 31, 32, 63, 64] {
            for ordered in [false, true] {
                trees.append(Self.chain(splits: splits, right: true, ordered: ordered, &rng))
                trees.append(Self.chain(splits: splits, right: false, ordered: ordered, &rng))
            }
        }
        trees.append(UnbalancedWalkTests.balancedTree(depth: 6, &rng))  // 64 leaves, XGBoost's shape
        trees.append(UnbalancedWalkTests.balancedTree(depth: 7, &rng))  // 128: portable
        for _ in 0..<20 {
            trees.append(UnbalancedWalkTests.leafWiseTree(library, leaves: 2 + Int(rng.next() % 70), categorical: false, &rng))
        }
        // A single leaf.
        trees.append(DecisionTree(left: [-1], right: [-1], feature: [0], threshold: [0], defaultLeft: [false],
                                  missing: [.nanDefault], leafValue: [0.75], cover: [1]))
        return trees
    }

    @Test("scores and reasons equal the portable walks' and the trees', to the bit",
          // The AVX2 kernels where this processor runs them (the automatic choice is AVX-512 where it can be).
          arguments: [TreeEnsemble.Library.lightgbm, .xgboost], [ScoringKernel.automatic] + (ScoringKernel.avx2.isAvailable ? [.avx2] : []))
    func sameAsPortable(library: TreeEnsemble.Library, kernel: ScoringKernel) throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["CHURNGRID_TEST_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        print("random seed \(seed) for 'the leaf-bitvector walk' (CHURNGRID_TEST_SEED=\(seed) repeats it)")
        var rng = SplitMix(seed: seed)
        let trees = Self.trees(library, &rng)
        let model = TreeEnsemble(
            source: "random", library: library, libraryVersion: nil,
            objective: library == .xgboost ? .binaryLogistic : .lightgbmBinary(sigmoid: 1),
            featureNames: ["a", "b", "c", "d"], featureTypes: nil, baseMargin: library == .xgboost ? 0.25 : 0,
            baseScore: 0, trees: trees, accumulation: library == .xgboost ? .float32 : .float64)
        let fast = try CompiledForest(model, kernel: kernel)
        let portable = try CompiledForest(model, kernel: .portable)
        #expect(portable.exitLeafTrees == 0)
        let eligible = trees.filter { t in (0..<t.nodeCount).filter { t.isLeaf($0) }.count >= 2 && (0..<t.nodeCount).filter { t.isLeaf($0) }.count <= 64 }.count
        if let instructions = kernel.instructions {
            #expect(fast.exitLeafTrees == eligible, "every tree of 2…64 leaves, no other")
            #expect(fast.exitLeaves?.instructions == instructions)
            if kernel == .automatic { #expect(instructions == (ExitLeafTables.hasAVX512 ? .avx512 : .avx2)) }
        } else {
            print("this processor has neither AVX-512 F and CD nor AVX2: the leaf-bitvector walk is not used here (both forests walk portably)")
            #expect(fast.exitLeafTrees == 0)
        }

        // 1,003 rows: seven full blocks and one of 107 (six groups of 16 and 11 rows).
        let rows = 1003
        let columns = UnbalancedWalkTests.columns(rows, &rng)
        let (fast1, _) = try fast.score(columns: columns, threads: 1)
        let (fast2, _) = try fast.score(columns: columns, threads: 2)
        let (slow, _) = try portable.score(columns: columns, threads: 1)
        var mismatches: [String] = []
        for r in 0..<rows {
            let row = (0..<4).map { columns[$0][r] }
            let expected = CategoricalCompileTests.walked(model, row)
            if fast1[r] != expected || fast2[r] != expected || slow[r] != expected {
                mismatches.append("row \(r) \(row): walked \(expected), fast \(fast1[r]) / \(fast2[r]), portable \(slow[r])")
            }
        }
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.count) mismatches, first: \(mismatches.prefix(3))")

        // Blocks of every size around the 16-row lanes and the 8 rows below which blocks are walked,
        // through the fused scoring kernel (a part-filled group of 16, an end of 8 rows or fewer).
        for count in [1, 7, 8, 9, 15, 16, 17, 24, 104, 127, 128, 129, 250] {
            let part = columns.map { Array($0.prefix(count)) }
            let (a, _) = try fast.score(columns: part, threads: 1)
            #expect(Array(a) == Array(slow.prefix(count)), "seed \(seed): \(count) rows scored alone")
        }

        // The path attribution's sink takes each exit leaf from the same walk.
        let fastReasons = try #require(LeafAttribution(fast)), slowReasons = try #require(LeafAttribution(portable))
        var differ: [String] = []
        for r in stride(from: 0, to: rows, by: 7) {
            let row = (0..<4).map { columns[$0][r] }
            let a = try fastReasons.explain(row: row), b = try slowReasons.explain(row: row)
            if a.margin != b.margin || a.contributions != b.contributions { differ.append("row \(r): \(a) vs \(b)") }
        }
        let k = 3
        var features = [[Int16]](repeating: [Int16](repeating: 0, count: k * rows), count: 2)
        var values = [[Float]](repeating: [Float](repeating: 0, count: k * rows), count: 2)
        var margins = [[Double]](repeating: [Double](repeating: 0, count: rows), count: 2)
        for (i, explainer) in [fastReasons, slowReasons].enumerated() {
            let pointers = columns.map { c in c.withUnsafeBufferPointer { $0.baseAddress! } }
            try withExtendedLifetime(columns) {
                try explainer.score(FeatureColumns(columns: pointers, rowCount: rows), margins: &margins[i], outputs: nil,
                                    top: k, features: &features[i], values: &values[i])
            }
        }
        #expect(differ.isEmpty, "seed \(seed): \(differ.prefix(3))")
        #expect(margins[0] == margins[1] && margins[0] == slow, "block margins with reasons")
        #expect(features[0] == features[1] && values[0] == values[1], "block top-\(k) reasons")
    }
}

extension ExitLeafTests {
    @Test("a model with a categorical split keeps the portable walks")
    func categoricalModelsWalk() throws {
        let model = UnbalancedWalkTests.lightGBMModel(trees: 4, categorical: true, seed: 11)
        try #require(model.categoricalSplitCount > 0)
        #expect(try CompiledForest(model).exitLeafTrees == 0)
    }
}
