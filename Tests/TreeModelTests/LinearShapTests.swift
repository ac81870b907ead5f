import Testing
@testable import TreeModel

/// The one-walk-per-tree exact TreeSHAP (`LinearShapForest`) against the per-leaf algorithms
/// (quadrature at every depth, Lundberg's path recurrences on shallow trees) on random models: unbalanced trees, features repeated along paths, every missing-value rule,
/// categorical splits of both libraries, depth 1 up to 32, uneven and inconsistent covers.
@Suite("Exact TreeSHAP by one walk per tree equals the per-leaf algorithms")
struct LinearShapTests {
    /// A random tree no deeper than `depth` (exactly `depth` along its first path) over `features`.
    static func randomTree(depth: Int, features: Int, rng: inout SplitMix, categorical: Bool, consistentCovers: Bool) -> DecisionTree {
        var t = DecisionTree(left: [], right: [], feature: [], threshold: [], defaultLeft: [], missing: [],
                             leafValue: [], cover: [], categories: [])
        func add() -> Int {
            t.left.append(-1); t.right.append(-1); t.feature.append(0); t.threshold.append(0)
            t.defaultLeft.append(false); t.missing.append(.nanDefault); t.leafValue.append(0); t.cover.append(1)
            t.categories.append(nil)
            return t.left.count - 1
        }
        func grow(_ n: Int, _ level: Int, spine: Bool) -> Double {
            let split = level < depth && (spine || rng.next() % 4 < (level < 8 ? 3 : 1))
            if !split {
                t.leafValue[n] = Double(Int(rng.next() % 2001) - 1000) / 1000
                // Mostly counts, some tiny hessian-like covers.
                t.cover[n] = rng.next() % 5 == 0 ? Double(1 + rng.next() % 100) / 1000 : Double(1 + rng.next() % 50)
                return t.cover[n]
            }
            t.feature[n] = Int32(rng.next() % UInt64(features))
            t.threshold[n] = Float(Int(rng.next() % 9) - 2)
            t.defaultLeft[n] = rng.next() % 2 == 0
            t.missing[n] = [.nanDefault, .nanAsZero, .zeroDefault][Int(rng.next() % 3)]
            if categorical && rng.next() % 3 == 0 {
                let categories = (0..<8).filter { _ in rng.next() % 2 == 0 }
                t.categories[n] = CategorySet(categories: categories, inSetGoesLeft: rng.next() % 2 == 0,
                                              reading: rng.next() % 2 == 0 ? .xgboost : .lightgbm)
                t.missing[n] = .nanDefault  // categorical splits route NaN by the default side only
            }
            let l = add(), r = add()
            t.left[n] = Int32(l); t.right[n] = Int32(r)
            let goDeep = rng.next() % 2 == 0
            let covers = grow(l, level + 1, spine: spine && goDeep) + grow(r, level + 1, spine: spine && !goDeep)
            t.cover[n] = consistentCovers ? covers : Double(1 + rng.next() % 60)
            return t.cover[n]
        }
        _ = grow(add(), 0, spine: true)
        if !categorical { t.categories = [] }
        return t
    }

    static func model(_ trees: [DecisionTree], features: Int, library: TreeEnsemble.Library) -> TreeEnsemble {
        TreeEnsemble(source: "random", library: library, libraryVersion: nil,
                     objective: library == .lightgbm ? .lightgbmBinary(sigmoid: 1) : .squaredError,
                     featureNames: (0..<features).map { "f\($0)" }, featureTypes: nil, baseMargin: 0, baseScore: 0,
                     trees: trees, accumulation: .float64)
    }

    static func randomRow(features: Int, rng: inout SplitMix) -> [Float] {
        (0..<features).map { _ in
            switch rng.next() % 8 {
            case 0: .nan
            case 1: 0
            case 2: -1.5
            default: Float(Int(rng.next() % 100) - 20) / 10
            }
        }
    }

    /// Largest difference (relative above 1) between the walk and a per-leaf reference over
    /// `rows` random rows: the per-leaf quadrature (exact to rounding at any depth) or, with
    /// `recurrences`, Lundberg's recurrences (which lose digits on deep paths with small fractions).
    static func worstDifference(_ model: TreeEnsemble, rows: Int, rng: inout SplitMix, recurrences: Bool = false) -> Double {
        let reference = recurrences ? TreeExplainer(model, linear: false) : TreeExplainer(model, quadrature: true)
        let walked = TreeExplainer(model)
        var worst = 0.0
        for _ in 0..<rows {
            let row = randomRow(features: model.featureCount, rng: &rng)
            let a = reference.contributions(row: row), b = walked.contributions(row: row)
            for j in a.indices { worst = max(worst, abs(a[j] - b[j]) / max(1, abs(a[j]))) }
        }
        return worst
    }

    @Test("random models of each depth, with repeated features, missing values and categories",
          arguments: [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17, 24, 32])
    func randomModels(depth: Int) throws {
        var rng = SplitMix(seed: UInt64(depth) * 7919)
        for library in [TreeEnsemble.Library.xgboost, .lightgbm] {
            for (features, consistent) in [(3, true), (12, true), (5, false)] {
                let trees = (0..<6).map { k in
                    Self.randomTree(depth: depth, features: features, rng: &rng, categorical: k % 2 == 1, consistentCovers: consistent)
                }
                let model = Self.model(trees, features: features, library: library)
                let walked = TreeExplainer(model)
                // Every tree is walked (none left to the recurrences), with the lanes its depth needs.
                let lanes = walked.linear?.lanes ?? []
                #expect(lanes.count == trees.count)
                for (t, tree) in trees.enumerated() {
                    let q = (tree.depth + 1) / 2
                    #expect(lanes[t] == (q <= 2 ? 2 : q <= 4 ? 4 : q <= 8 ? 8 : 16), "depth \(tree.depth)")
                }
                let worst = Self.worstDifference(model, rows: 40, rng: &rng)
                #expect(worst < 1e-11, "depth \(depth), \(features) features, \(library): \(worst)")
                if depth <= 4 {
                    let againstRecurrences = Self.worstDifference(model, rows: 20, rng: &rng, recurrences: true)
                    #expect(againstRecurrences < 1e-9, "recurrences, depth \(depth): \(againstRecurrences)")
                }
                // And the contributions explain the margin.
                let forest = try CompiledForest(model)
                for _ in 0..<10 {
                    let row = Self.randomRow(features: features, rng: &rng)
                    let phi = walked.contributions(row: row)
                    #expect(abs(phi.reduce(0, +) - forest.margin(row: row)) < 1e-9)
                }
            }
        }
    }

    @Test("a tree with a zero or non-finite cover is left to the recurrences, with the same results")
    func zeroCover() {
        var rng = SplitMix(seed: 99)
        var zeroCover = Self.randomTree(depth: 6, features: 4, rng: &rng, categorical: false, consistentCovers: true)
        zeroCover.cover[Int(zeroCover.left[0])] = 0
        var tinyRatio = Self.randomTree(depth: 6, features: 4, rng: &rng, categorical: false, consistentCovers: true)
        tinyRatio.cover[Int(tinyRatio.right[0])] = 1e-200
        let fine = Self.randomTree(depth: 6, features: 4, rng: &rng, categorical: true, consistentCovers: true)
        let stump = Self.randomTree(depth: 0, features: 4, rng: &rng, categorical: false, consistentCovers: true)
        let model = Self.model([zeroCover, fine, tinyRatio, stump], features: 4, library: .xgboost)
        #expect(TreeExplainer(model).linear?.lanes == [0, 4, 0, 0])
        #expect(Self.worstDifference(model, rows: 50, rng: &rng, recurrences: true) < 1e-11)
    }

    @Test("a model deeper than the walk takes keeps the per-leaf quadrature for that tree only")
    func deeperThanWalk() {
        var rng = SplitMix(seed: 5)
        let deep = Self.randomTree(depth: 40, features: 30, rng: &rng, categorical: false, consistentCovers: true)
        let shallow = Self.randomTree(depth: 5, features: 30, rng: &rng, categorical: true, consistentCovers: true)
        let model = Self.model([deep, shallow], features: 30, library: .lightgbm)
        let walked = TreeExplainer(model)
        #expect(walked.linear?.lanes == [0, 4])
        let quadrature = TreeExplainer(model, quadrature: true)
        for _ in 0..<20 {
            let row = Self.randomRow(features: 30, rng: &rng)
            let a = quadrature.contributions(row: row), b = walked.contributions(row: row)
            for j in a.indices { #expect(abs(a[j] - b[j]) < 1e-10 * max(1, abs(a[j]))) }
        }
    }

    @Test("rows explained as a batch, tree by tree over blocks of rows, equal each row explained alone",
          arguments: [TreeExplainer.Method.exact, .approximate])
    func batchEqualsRowByRow(method: TreeExplainer.Method) {
        var rng = SplitMix(seed: 2026)
        // Walked trees of several lane widths, one left to the recurrences (a zero cover), a stump,
        // and a tree deeper than the walk takes (quadrature): every branch of the batch.
        var zeroCover = Self.randomTree(depth: 6, features: 9, rng: &rng, categorical: false, consistentCovers: true)
        zeroCover.cover[Int(zeroCover.left[0])] = 0
        let trees = [Self.randomTree(depth: 3, features: 9, rng: &rng, categorical: false, consistentCovers: true),
                     Self.randomTree(depth: 8, features: 9, rng: &rng, categorical: true, consistentCovers: true),
                     zeroCover,
                     Self.randomTree(depth: 0, features: 9, rng: &rng, categorical: false, consistentCovers: true),
                     Self.randomTree(depth: 40, features: 9, rng: &rng, categorical: false, consistentCovers: true),
                     Self.randomTree(depth: 17, features: 9, rng: &rng, categorical: true, consistentCovers: false)]
        let model = Self.model(trees, features: 9, library: .xgboost)
        #expect(TreeExplainer(model).linear?.lanes == [2, 4, 0, 0, 0, 16])
        // Without the deep tree the zero-cover tree takes the path recurrences instead of the quadrature.
        let shallow = Self.model(trees.enumerated().filter { $0.offset != 4 }.map(\.element), features: 9, library: .lightgbm)
        #expect(TreeExplainer(shallow).linear?.lanes == [2, 4, 0, 0, 16] && TreeExplainer(shallow).quadratureNodes.isEmpty)
        // More rows than one block, and not a multiple of it.
        let count = TreeExplainer.walkBlock * 2 + 37
        let rows = (0..<count).map { _ in Self.randomRow(features: 9, rng: &rng) }
        let flat = rows.flatMap { $0 }
        // The linear walk (with either fallback), and explainers without it (recurrences or quadrature everywhere).
        for (label, explainer) in [("deep", TreeExplainer(model)), ("shallow", TreeExplainer(shallow)),
                                   ("no walk", TreeExplainer(shallow, linear: false)), ("quadrature", TreeExplainer(model, quadrature: true))] {
            var phis = [Double](repeating: .nan, count: count * explainer.contributionCount)
            flat.withUnsafeBufferPointer { x in
                phis.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: count, into: $0, method: method) }
            }
            for (r, row) in rows.enumerated() {
                let alone = explainer.contributions(row: row, method: method)
                let batched = Array(phis[r * explainer.contributionCount..<(r + 1) * explainer.contributionCount])
                // The same additions in the same order: equal to the bit.
                #expect(batched == alone, "\(label), row \(r)")
            }
            // No rows: nothing written.
            var untouched = [Double](repeating: 7, count: explainer.contributionCount)
            flat.withUnsafeBufferPointer { x in
                untouched.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: 0, into: $0, method: method) }
            }
            #expect(untouched.allSatisfy { $0 == 7 })
        }
    }

    @Test("a model without features: every row's contribution is its trees' mean, alone or in a batch")
    func noFeatures() {
        var rng = SplitMix(seed: 3)
        let stumps = (0..<3).map { _ in Self.randomTree(depth: 0, features: 1, rng: &rng, categorical: false, consistentCovers: true) }
        let model = Self.model(stumps, features: 0, library: .xgboost)
        let explainer = TreeExplainer(model)
        let expected = stumps.reduce(model.baseMargin) { $0 + $1.leafValue[0] }
        for method in [TreeExplainer.Method.exact, .approximate] {
            #expect(explainer.contributions(row: [], method: method) == [expected])
            var phis = [Double](repeating: .nan, count: 5)
            [Float]().withUnsafeBufferPointer { x in
                phis.withUnsafeMutableBufferPointer { explainer.contributions(rows: x, count: 5, into: $0, method: method) }
            }
            #expect(phis == [Double](repeating: expected, count: 5))
        }
    }
}
