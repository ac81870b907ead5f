import Foundation
import Testing
import TestSupport
import TreeModel

/// Models with native categorical splits, trained by the real XGBoost and LightGBM through
/// `make_categorical_fixtures.py` (which also checks, against the libraries, the code-reading rules
/// `CategorySet` implements), with the libraries' own predictions and contributions.
enum CategoricalFixtures {
    static let xgboostModels = [
        "xgbc_stumps_d1", "xgbc_mixed_d3", "xgbc_onehot_d4", "xgbc_d6_150", "xgbc_d8_80",
        "xgbc_logitraw_d5", "xgbc_sqerr_d4", "xgbc_edited",
    ]
    static let lightgbmModels = [
        "lgbc_stumps", "lgbc_mixed_15", "lgbc_63", "lgbc_depth8", "lgbc_no_missing", "lgbc_one_vs_rest", "lgbc_edited",
    ]
    static let allModels = xgboostModels + lightgbmModels

    /// The input files and the suffix of the library's outputs on them.
    /// `data`: training-like rows (8% NaN codes); `probe`: every awkward code (NaN, −0.0, −0.5, −1,
    /// 2.7, unseen, 2^24, 3e9, ±1e30, denormals) in every categorical column; `inf`: ±∞ codes.
    static let inputs = [("data.csv", "pred"), ("probe.csv", "probe.pred"), ("probe_inf.csv", "inf.pred")]

    private static let generation = Task { await Fixtures.generate(script: "make_categorical_fixtures.py") }

    static func path(_ name: String) async throws -> String {
        try await generation.value.get().appendingPathComponent(name).path
    }

    static func model(_ name: String) async throws -> TreeEnsemble {
        try TreeEnsemble.load(path: try await path(name + (name.hasPrefix("lgb") ? ".txt" : ".json")))
    }
}

// Serialized, each case on a thread of its own, for the same reasons as `ParityTests`.
@Suite("Categorical scores and reasons equal XGBoost's and LightGBM's own", .serialized)
struct CategoricalParityTests {
    @Test("every row's margin and probability equal the library's predict, awkward codes included",
          arguments: CategoricalFixtures.allModels)
    func predictions(name: String) async throws {
        try await onOwnThread {
            let model = try await CategoricalFixtures.model(name)
            #expect(model.categoricalSplitCount > 0)
            let forest = try CompiledForest(model)
            for (input, suffix) in CategoricalFixtures.inputs {
                let columns = try Fixtures.features(for: model, file: try await CategoricalFixtures.path(input))
                let reference = try Fixtures.matrix(try await CategoricalFixtures.path("\(name).\(suffix).csv"))
                let expectedMargin = reference.columns[0], expectedOutput = reference.columns[1]
                for threads in [1, 2] {
                    let (margins, outputs) = try forest.score(columns: columns, threads: threads)
                    #expect(margins.count == expectedMargin.count)
                    var worstMargin = 0.0, worstOutput = 0.0, worstRow = 0
                    for r in 0..<min(margins.count, expectedMargin.count) {
                        let dm = parityDifference(margins[r], expectedMargin[r]), dout = parityDifference(outputs[r], expectedOutput[r])
                        if dout > worstOutput || dm > worstMargin { worstRow = r }
                        worstMargin = max(worstMargin, dm)
                        worstOutput = max(worstOutput, dout)
                    }
                    #expect(worstOutput <= 1e-6, "\(name) \(input), \(threads) threads: output differs by \(worstOutput) at row \(worstRow)")
                    #expect(worstMargin <= 1e-6, "\(name) \(input), \(threads) threads: margin differs by \(worstMargin) at row \(worstRow)")
                    // The single-row path gives exactly the block path's margin.
                    if threads == 1 {
                        var row = [Float](repeating: 0, count: model.featureCount)
                        var mismatches = 0
                        for r in 0..<margins.count {
                            for j in 0..<row.count { row[j] = columns[j][r] }
                            if forest.margin(row: row) != margins[r] { mismatches += 1 }
                        }
                        #expect(mismatches == 0, "\(name) \(input): \(mismatches) rows score differently one at a time")
                    }
                }
            }
        }
    }

    @Test("exact TreeSHAP through categorical splits equals the library's pred_contribs",
          arguments: CategoricalFixtures.allModels)
    func exactContributions(name: String) async throws {
        try await compare(name: name, kind: "contribs", method: .exact)
    }

    @Test("the path attribution through categorical splits equals XGBoost's approx_contribs",
          arguments: CategoricalFixtures.xgboostModels)
    func approximateContributions(name: String) async throws {
        try await compare(name: name, kind: "approx", method: .approximate)
    }

    private func compare(name: String, kind: String, method: TreeExplainer.Method) async throws {
        try await onOwnThread {
            let model = try await CategoricalFixtures.model(name)
            let explainer = TreeExplainer(model)
            let forest = try CompiledForest(model)
            for (input, reference) in [("data.csv", "\(name).\(kind).csv"), ("probe.csv", "\(name).probe.\(kind).csv")] {
                let columns = try Fixtures.features(for: model, file: try await CategoricalFixtures.path(input))
                let expected = try Fixtures.matrix(try await CategoricalFixtures.path(reference))
                #expect(expected.columns.count == model.featureCount + 1)
                var worst = 0.0, worstRow = 0
                var row = [Float](repeating: 0, count: model.featureCount)
                for r in 0..<expected.columns[0].count {
                    for j in 0..<row.count { row[j] = columns[j][r] }
                    let phi = explainer.contributions(row: row, method: method)
                    for j in 0...model.featureCount {
                        let d = parityDifference(phi[j], expected.columns[j][r])
                        if d > worst { worst = d; worstRow = r }
                    }
                    let margin = forest.margin(row: row)
                    #expect(abs(phi.reduce(0, +) - margin) <= 1e-4 * max(1, abs(margin)), "\(name) \(input) row \(r)")
                }
                #expect(worst <= 1e-4, "\(name) \(input): largest contribution difference \(worst) at row \(worstRow)")
            }
        }
    }

    /// The trained models exercise what the parity claims cover; a fixture change that loses one
    /// of these fails here rather than silently testing less.
    @Test("the fixtures cover both libraries, 3 to 500 categories, mixed splits, depths 1 to 8, one-hot and NaN codes")
    func coverage() async throws {
        for models in [CategoricalFixtures.xgboostModels, CategoricalFixtures.lightgbmModels] {
            var depths: Set<Int> = [], largest = 0, mixed = false, features: Set<Int32> = []
            for name in models {
                let model = try await CategoricalFixtures.model(name)
                depths.insert(model.maxDepth)
                for tree in model.trees {
                    var numeric = false, categorical = false
                    for n in 0..<tree.nodeCount where !tree.isLeaf(n) {
                        if let set = tree.categorySet(n) {
                            categorical = true
                            features.insert(tree.feature[n])
                            largest = max(largest, set.categories.last ?? 0)
                        } else {
                            numeric = true
                        }
                    }
                    mixed = mixed || (numeric && categorical)
                }
            }
            // LightGBM's leaf-wise trees also go deeper (up to 18 levels here).
            #expect(depths.contains(1) && depths.contains(8), "\(models[0]): depths \(depths.sorted())")
            #expect(largest >= 100, "\(models[0]): largest category in a split \(largest)")
            #expect(features == [0, 1, 2, 3, 4], "\(models[0]): categorical splits on features \(features.sorted())")
            #expect(mixed, "\(models[0]): no tree mixes numeric and categorical splits")
        }
        // One-hot: XGBoost below max_cat_to_onehot and LightGBM's max_cat_to_onehot split one category off.
        for name in ["xgbc_onehot_d4", "lgbc_one_vs_rest"] {
            let model = try await CategoricalFixtures.model(name)
            let sizes = model.trees.flatMap { t in (0..<t.nodeCount).compactMap { t.categorySet($0)?.categories.count } }
            #expect(sizes.contains(1), "\(name): set sizes \(Set(sizes).sorted())")
        }
        // The data has NaN codes in every categorical column.
        let model = try await CategoricalFixtures.model("xgbc_mixed_d3")
        let columns = try Fixtures.features(for: model, file: try await CategoricalFixtures.path("data.csv"))
        for j in 0..<5 { #expect(columns[j].contains { $0.isNaN }, "column \(j)") }
    }

    @Test("the edited models put category 0 in every split, and XGBoost's stored category names are read")
    func editedModels() async throws {
        let x = try await CategoricalFixtures.model("xgbc_edited")
        let sets = x.trees.flatMap { t in (0..<t.nodeCount).compactMap { t.categorySet($0) } }
        #expect(!sets.isEmpty && sets.allSatisfy { $0.contains(0) })
        let names = try #require(x.categoryNames)
        #expect(names.map(\.count) == [3, 5, 12, 40, 500, 0, 0, 0, 0, 0])
        #expect(names[1][4] == "plan 4" && names[4][499] == "brand-499é")
        let l = try await CategoricalFixtures.model("lgbc_edited")
        let bitsets = l.trees.flatMap { t in (0..<t.nodeCount).compactMap { t.categorySet($0) } }
        #expect(!bitsets.isEmpty && bitsets.allSatisfy { $0.contains(0) })
    }
}
