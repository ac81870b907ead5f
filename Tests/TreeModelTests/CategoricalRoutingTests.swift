import Testing
@testable import TreeModel

/// Categorical splits route category codes as each library does (the libraries' own answers are
/// checked in `Tests/Parity`, where `make_categorical_fixtures.py` also asserts these rules against
/// XGBoost and LightGBM); here on hand-made trees, through every path: the loaded tree, the
/// compiled forest (single row and blocks, one and two threads) and the explainer.
@Suite("Categorical split routing")
struct CategoricalRoutingTests {
    /// Every scoring path's margin for `row`, which must all agree.
    private func margins(_ model: TreeEnsemble, _ row: [Float]) throws -> [Double] {
        let forest = try CompiledForest(model)
        var walked = 0.0
        for tree in model.trees {
            var n = 0
            while !tree.isLeaf(n) { n = tree.next(n, value: row[Int(tree.feature[n])]) }
            walked += tree.leafValue[n]
        }
        let (block1, _) = try forest.score(columns: row.map { [Float](repeating: $0, count: 300) }, threads: 1)
        let (block2, _) = try forest.score(columns: row.map { [Float](repeating: $0, count: 300) }, threads: 2)
        let explainer = TreeExplainer(model)
        return [forest.margin(row: row), block1[0], block1[299], block2[299], walked + model.baseMargin,
                explainer.contributions(row: row).reduce(0, +), explainer.contributions(row: row, method: .approximate).reduce(0, +)]
    }

    // Root: plan ∈ {0, 3, 33} → right (0.3); otherwise left to node 1 (bill < -1 → -0.4, else 0.2); NaN left.
    @Test("XGBoost: categories in the set go right, all else left, NaN to default_left", arguments: [
        (Float(0), Float(-2), 0.3), (3, -2, 0.3), (33, -2, 0.3),
        (3.9, -2, 0.3),           // truncated to category 3
        (-0.0, -2, 0.3),          // −0.0 is category 0
        (0.99, -2, 0.3),          // category 0
        (-0.5, -2, -0.4),         // below 0: no category, left
        (1, -2, -0.4), (1, 5, 0.2), (34, -2, -0.4),
        (63, -2, -0.4), (64, -2, -0.4), (5000, -2, -0.4),   // beyond the bitset: left
        (16_777_216, -2, -0.4), (1e30, -2, -0.4), (.infinity, -2, -0.4), (-.infinity, -2, -0.4),
        (.nan, -2, -0.4), (.nan, 5, 0.2),
    ])
    func xgboost(plan: Float, bill: Float, leaf: Double) throws {
        let model = try ModelFiles.load(ModelFiles.xgboostCategorical())
        #expect(model.categoricalSplitCount == 1)
        for m in try margins(model, [plan, bill]) {
            #expect(abs(m - Double(Float(leaf))) < 1e-12, "plan \(plan): \(m)")
        }
    }

    @Test("XGBoost: default_left = 0 on a categorical split sends NaN right")
    func xgboostNaNRight() throws {
        let model = try ModelFiles.load(ModelFiles.xgboostCategorical(defaultLeft: "[0, 0, 0, 0, 0]"))
        for m in try margins(model, [.nan, -2]) { #expect(abs(m - Double(Float(0.3))) < 1e-12) }
    }

    // Root: plan ∈ {0, 3, 33} → left (-0.5); otherwise right to node 1 (bill <= 2 → 0.1, else 0.7).
    @Test("LightGBM: categories in the set go left; NaN, negatives and all else right, whatever decision_type says",
          arguments: ["9 10", "1 10", "3 10", "11 10", "5 10"], [
        (Float(0), Float(1), -0.5), (3, 1, -0.5), (33, 9, -0.5),
        (3.9, 1, -0.5),            // truncated to category 3
        (-0.5, 1, -0.5),           // truncated to 0: category 0
        (-0.99, 1, -0.5),
        (-1, 1, 0.1), (-3, 9, 0.7), (1, 1, 0.1), (34, 1, 0.1), (64, 1, 0.1), (5000, 9, 0.7),
        (2_147_483_648, 1, 0.1), (.infinity, 1, 0.1), (-.infinity, 1, 0.1),
        (.nan, 1, 0.1), (.nan, 9, 0.7),
    ])
    func lightgbm(decision: String, row: (plan: Float, bill: Float, leaf: Double)) throws {
        let (plan, bill, leaf) = row
        let expected = leaf == 0.1 ? 0.10000000000000001 : leaf == 0.7 ? 0.69999999999999996 : leaf
        let model = try ModelFiles.load(ModelFiles.lightgbmCategorical(decisionType: decision), file: "m.txt")
        #expect(model.categoricalSplitCount == 1)
        for m in try margins(model, [plan, bill]) {
            #expect(abs(m - expected) < 1e-12, "decision_type \(decision), plan \(plan): \(m)")
        }
    }

    @Test("the loaded category sets are the file's")
    func loadedSets() throws {
        let x = try ModelFiles.load(ModelFiles.xgboostCategorical(categories: "[5, 0, 3, 33, 7]", segments: "[1]", sizes: "[3]"))
        let xs = try #require(x.trees[0].categorySet(0))
        #expect(xs.categories == [0, 3, 33] && !xs.inSetGoesLeft && xs.reading == .xgboost)
        #expect(x.trees[0].categorySet(1) == nil)
        let l = try ModelFiles.load(ModelFiles.lightgbmCategorical(catThreshold: "9 2"), file: "m.txt")
        let ls = try #require(l.trees[0].categorySet(0))
        #expect(ls.categories == [0, 3, 33] && ls.inSetGoesLeft && ls.reading == .lightgbm && ls.words == [9, 2])
        #expect(l.trees[0].defaultLeft[0] == false && l.trees[0].missing[0] == .nanDefault)
    }

    @Test("XGBoost 3.x category names are read per feature")
    func categoryNames() throws {
        // "monthly", "annual", "prépayé" as XGBoost writes string categories: UTF-8 bytes as int8.
        let bytes = Array("monthlyannualprépayé".utf8).map { Int(Int8(bitPattern: $0)) }
        let cats = "\"cats\": {\"enc\": [{\"offsets\": [0, 7, 13, 22], \"values\": \(bytes)}, {\"offsets\": [], \"values\": []}], "
            + "\"feature_segments\": [0, 3, 3], \"sorted_idx\": [1, 0, 2]},"
        let model = try ModelFiles.load(ModelFiles.xgboostCategorical(categories: "[0, 2]", sizes: "[2]", extraModel: cats))
        #expect(model.categoryNames == [["monthly", "annual", "prépayé"], []])
        let numeric = "\"cats\": {\"enc\": [{\"type\": 4, \"values\": [10, 20, 30]}, {\"offsets\": [], \"values\": []}], \"feature_segments\": [0, 3, 3], \"sorted_idx\": [0, 1, 2]},"
        #expect(try ModelFiles.load(ModelFiles.xgboostCategorical(categories: "[0, 2]", sizes: "[2]", extraModel: numeric)).categoryNames == [["10", "20", "30"], []])
        #expect(try ModelFiles.load(ModelFiles.xgboostCategorical()).categoryNames == nil)
    }

    @Test("a forest with categorical splits is compiled to the mixed layout, a numeric one is not")
    func layouts() throws {
        let mixed = try CompiledForest(try ModelFiles.load(ModelFiles.xgboostCategorical()))
        #expect(mixed.mixedNodes != nil && mixed.nodes == nil)
        let numeric = try CompiledForest(try ModelFiles.load(ModelFiles.xgboost()))
        #expect(numeric.nodes != nil && numeric.mixedNodes == nil && numeric.categoryWords == nil)
    }
}
