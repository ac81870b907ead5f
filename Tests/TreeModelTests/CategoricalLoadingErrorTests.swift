import Foundation
import Testing
@testable import TreeModel

/// A categorical split that cannot be right — a category set outside its segment, a bitset of the
/// wrong length, a category the model does not declare — is refused with an error naming the
/// tree, the node and the field, never trapped on.
@Suite("Categorical model errors")
struct CategoricalLoadingErrorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var code: ModelError.Code
        var field: String
        var mentions: [String]
        var testDescription: String { label }
    }

    private static let tree = "learner.gradient_booster.model.trees[0]"

    static let xgboostCases: [Case] = [
        Case(label: "segment past the categories", text: ModelFiles.xgboostCategorical(segments: "[1]"), code: .inconsistent,
             field: tree + ".categories_segments[0]", mentions: ["node 0", "outside the 3 categories"]),
        Case(label: "size past the categories", text: ModelFiles.xgboostCategorical(sizes: "[9]"), code: .inconsistent,
             field: tree + ".categories_segments[0]", mentions: ["node 0", "categories[0 ..< 0 + 9]"]),
        Case(label: "negative segment", text: ModelFiles.xgboostCategorical(segments: "[-1]"), code: .inconsistent,
             field: tree + ".categories_segments[0]", mentions: ["node 0"]),
        Case(label: "empty set", text: ModelFiles.xgboostCategorical(sizes: "[0]"), code: .inconsistent,
             field: tree + ".categories_sizes[0]", mentions: ["node 0", "empty"]),
        Case(label: "segments and nodes disagree", text: ModelFiles.xgboostCategorical(segments: "[0, 1]"), code: .inconsistent,
             field: tree + ".categories_segments", mentions: ["expected 1 values"]),
        Case(label: "negative category", text: ModelFiles.xgboostCategorical(categories: "[0, -3, 33]"), code: .unsupported,
             field: tree + ".categories[1]", mentions: ["node 0", "category -3"]),
        Case(label: "category beyond 2^24", text: ModelFiles.xgboostCategorical(categories: "[0, 3, 16777216]"), code: .unsupported,
             field: tree + ".categories[2]", mentions: ["node 0", "category 16777216"]),
        Case(label: "category beyond the declared names",
             text: ModelFiles.xgboostCategorical(extraModel: "\"cats\": {\"enc\": [{\"type\": 4, \"values\": [7, 8, 9, 10]}, {\"offsets\": [], \"values\": []}], \"feature_segments\": [0, 4, 4], \"sorted_idx\": [0, 1, 2, 3]},"),
             code: .inconsistent, field: tree + ".categories[2]", mentions: ["node 0", "category 33", "declares 4 categories"]),
        Case(label: "categorical node not listed", text: ModelFiles.xgboostCategorical(nodes: "[1]", splitType: "[1, 1, 0, 0, 0]"),
             code: .inconsistent, field: tree + ".categories_nodes", mentions: ["node 0", "does not list it"]),
        Case(label: "listed node is numeric", text: ModelFiles.xgboostCategorical(nodes: "[1]"), code: .inconsistent,
             field: tree + ".categories_nodes[0]", mentions: ["node 1", "split_type[1] is 0"]),
        Case(label: "listed node out of range", text: ModelFiles.xgboostCategorical(nodes: "[7]"), code: .inconsistent,
             field: tree + ".categories_nodes[0]", mentions: ["node 7"]),
        Case(label: "unknown split type", text: ModelFiles.xgboostCategorical(splitType: "[2, 0, 0, 0, 0]"), code: .unsupported,
             field: tree + ".split_type[0]", mentions: ["node 0", "split type 2"]),
        Case(label: "names of the wrong feature count",
             text: ModelFiles.xgboostCategorical(extraModel: "\"cats\": {\"enc\": [{\"type\": 4, \"values\": [7]}], \"feature_segments\": [0, 1], \"sorted_idx\": [0]},"),
             code: .inconsistent, field: "learner.gradient_booster.model.cats.enc", mentions: ["expected 2 entries"]),
        Case(label: "name offsets past the bytes",
             text: ModelFiles.xgboostCategorical(extraModel: "\"cats\": {\"enc\": [{\"offsets\": [0, 2, 9], \"values\": [97, 98, 99]}, {\"offsets\": [], \"values\": []}]},"),
             code: .inconsistent, field: "learner.gradient_booster.model.cats.enc[0].offsets[2]", mentions: ["name 1"]),
        Case(label: "name segments disagree",
             text: ModelFiles.xgboostCategorical(extraModel: "\"cats\": {\"enc\": [{\"type\": 4, \"values\": [7, 8]}, {\"offsets\": [], \"values\": []}], \"feature_segments\": [0, 3, 3]},"),
             code: .inconsistent, field: "learner.gradient_booster.model.cats.feature_segments", mentions: ["running category counts"]),
    ]

    @Test("XGBoost: a bad category set names the tree's field, the index and the node", arguments: xgboostCases)
    func xgboost(_ c: Case) throws {
        let e = try #require(failure(c.text, file: "m.json"))
        #expect(e.code == c.code, "\(e)")
        #expect(e.field == c.field, "\(e)")
        for m in c.mentions { #expect(e.message.contains(m), "\(e)") }
    }

    static let lightgbmCases: [Case] = [
        Case(label: "bitset of the wrong length", text: ModelFiles.lightgbmCategorical(catThreshold: "9 2 4"), code: .inconsistent,
             field: "Tree=0 cat_threshold", mentions: ["ends at word 2", "3 words", "wrong length"]),
        Case(label: "bitset cut short", text: ModelFiles.lightgbmCategorical(catBoundaries: "0 3"), code: .inconsistent,
             field: "Tree=0 cat_threshold", mentions: ["ends at word 3", "2 words"]),
        Case(label: "boundaries not from 0", text: ModelFiles.lightgbmCategorical(catBoundaries: "1 2"), code: .inconsistent,
             field: "Tree=0 cat_boundaries", mentions: ["first offset"]),
        Case(label: "boundaries count", text: ModelFiles.lightgbmCategorical(catBoundaries: "0 1 2"), code: .inconsistent,
             field: "Tree=0 cat_boundaries", mentions: ["expected 2 values"]),
        Case(label: "decreasing boundaries", text: ModelFiles.lightgbmCategorical(numCat: "2", catBoundaries: "0 2 1", catThreshold: "9"),
             code: .inconsistent, field: "Tree=0 cat_boundaries", mentions: ["bitset 1"]),
        Case(label: "bitsets missing", text: ModelFiles.lightgbm(decisionType: "9 10", numCat: "1"), code: .malformed,
             field: "Tree=0 cat_boundaries", mentions: ["missing"]),
        Case(label: "bitset index out of range", text: ModelFiles.lightgbmCategorical(threshold: "1 2"), code: .inconsistent,
             field: "Tree=0 threshold", mentions: ["node 0", "threshold 1.0", "1 category bitsets"]),
        Case(label: "fractional bitset index", text: ModelFiles.lightgbmCategorical(threshold: "0.5 2"), code: .inconsistent,
             field: "Tree=0 threshold", mentions: ["node 0"]),
        Case(label: "categorical bit without bitsets", text: ModelFiles.lightgbm(decisionType: "9 10"), code: .inconsistent,
             field: "Tree=0 threshold", mentions: ["node 0", "0 category bitsets"]),
        Case(label: "word not a UInt32", text: ModelFiles.lightgbmCategorical(catThreshold: "9 4294967296"), code: .malformed,
             field: "Tree=0 cat_threshold", mentions: ["value 1"]),
        Case(label: "category not declared", text: ModelFiles.lightgbmCategorical(featureInfos: "-1:0:1:2:3:7:40 [0:5]"), code: .inconsistent,
             field: "Tree=0 cat_threshold", mentions: ["node 0", "category 33", "feature_infos"]),
        Case(label: "feature_infos count", text: ModelFiles.lightgbmCategorical(featureInfos: "0:3:33"), code: .inconsistent,
             field: "feature_infos", mentions: ["expected 2 entries"]),
    ]

    @Test("LightGBM: a bad bitset names the tree, the key and the node", arguments: lightgbmCases)
    func lightgbm(_ c: Case) throws {
        let e = try #require(failure(c.text, file: "m.txt"))
        #expect(e.code == c.code, "\(e)")
        #expect(e.field == c.field, "\(e)")
        #expect(e.line != nil, "\(e)")
        for m in c.mentions { #expect(e.message.contains(m), "\(e)") }
    }

    @Test("XGBoost: category sets needing more than the bitset budget are refused before they are all allocated")
    func bitsetBudget() throws {
        // Each tree names category 2^24 - 1: 2^19 words for one number in the file.
        let one = ModelFiles.xgboostCategorical(categories: "[16777215]", sizes: "[1]")
        let start = try #require(one.range(of: "\"trees\": [")), end = try #require(one.range(of: "}]\n  }, \"name\""))
        let tree = String(one[start.upperBound..<one.index(after: end.lowerBound)])
        let count = ModelLimits.maximumCategoryWords / (ModelLimits.maximumCategories / 32) + 1
        let text = one.replacingCharacters(in: start.upperBound..<one.index(after: end.lowerBound),
                                           with: Array(repeating: tree, count: count).joined(separator: ", "))
            .replacingOccurrences(of: "\"num_trees\": \"1\"", with: "\"num_trees\": \"\(count)\"")
            .replacingOccurrences(of: "\"tree_info\": [0]", with: "\"tree_info\": [\(Array(repeating: "0", count: count).joined(separator: ", "))]")
        let e = try #require(failure(text, file: "m.json"))
        #expect(e.code == .unsupported, "\(e)")
        #expect(e.field == "learner.gradient_booster.model.trees[\(count - 1)].categories", "\(e)")
        #expect(e.message.contains("node 0") && e.message.contains("\(ModelLimits.maximumCategoryWords)"), "\(e)")
    }

    @Test("a categorical split built in memory with a missing rule other than NaN-to-default is refused by the compiler")
    func compilerValidates() throws {
        var model = try ModelFiles.load(ModelFiles.xgboostCategorical())
        model.trees[0].missing[0] = .zeroDefault
        #expect {
            _ = try CompiledForest(model)
        } throws: { e in
            let e = e as! ModelError
            return e.code == .unsupported && e.field == "tree 0" && e.message.contains("node 0 is a categorical split")
        }
    }

    @Test("every prefix of a categorical model file fails cleanly or loads, never crashes")
    func truncations() {
        for (text, file) in [(ModelFiles.xgboostCategorical(), "m.json"), (ModelFiles.lightgbmCategorical(), "m.txt")] {
            let bytes = Array(text.utf8)
            for cut in stride(from: 0, to: bytes.count, by: 5) {
                if let e = failure(String(decoding: bytes[0..<cut], as: UTF8.self), file: file) {
                    #expect(!e.message.isEmpty)
                }
            }
        }
    }

    @Test("random byte corruption of a categorical model never crashes the loader, compiler or explainer")
    func corruption() {
        var rng = SplitMix(seed: UInt64(ProcessInfo.processInfo.environment["CHURNGRID_TEST_SEED"] ?? "") ?? 20261203)
        print("categorical corruption: seed \(rng.state) (CHURNGRID_TEST_SEED repeats it)")
        let rows: [[Float]] = [[0, 1], [3.5, -2], [.nan, .nan], [-0.5, 9], [1e30, 0], [-.infinity, .infinity], [33, 2]]
        for text in [ModelFiles.xgboostCategorical(), ModelFiles.lightgbmCategorical()] {
            let bytes = Array(text.utf8)
            for _ in 0..<400 {
                var b = bytes
                for _ in 0..<3 { b[Int(rng.next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: rng.next()) }
                guard let model = try? TreeEnsemble.parse(b, file: "x"), let forest = try? CompiledForest(model) else { continue }
                let explainer = TreeExplainer(model)
                for row in rows where row.count >= model.featureCount {
                    _ = forest.margin(row: row)
                    _ = explainer.contributions(row: row)
                }
            }
        }
    }

    private func failure(_ text: String, file: String) -> ModelError? {
        do {
            _ = try ModelFiles.load(text, file: file)
            return nil
        } catch {
            return error
        }
    }
}
