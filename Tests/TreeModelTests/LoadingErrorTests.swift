import Foundation
import Testing
@testable import TreeModel

/// Bad model files fail with an error that names the file, the field and what was expected.
@Suite("Model loading errors")
struct LoadingErrorTests {
    private func failure(_ text: String, file: String = "m.json") -> ModelError? {
        do {
            _ = try ModelFiles.load(text, file: file)
            return nil
        } catch {
            return error
        }
    }

    @Test("a well-formed model loads")
    func loads() throws {
        let m = try ModelFiles.load(ModelFiles.xgboost())
        #expect(m.trees.count == 1)
        #expect(m.featureNames == ["tenure", "bill"])
        #expect(m.objective == .binaryLogistic)
        #expect(m.baseScore == 0.5)
        #expect(m.baseMargin == 0)
        let l = try ModelFiles.load(ModelFiles.lightgbm(), file: "m.txt")
        #expect(l.trees[0].nodeCount == 5)
        #expect(l.objective == .lightgbmBinary(sigmoid: 1))
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var code: ModelError.Code
        var field: String?
        var line: Int?
        var mentions: String
        var testDescription: String { label }
    }

    static let xgboostCases: [Case] = [
        Case(label: "empty", text: "", code: .malformed, mentions: "empty"),
        Case(label: "not a model", text: "hello", code: .malformed, mentions: "not an XGBoost JSON model"),
        Case(label: "truncated JSON", text: String(ModelFiles.xgboost().prefix(700)), code: .malformed, mentions: "truncated"),
        Case(label: "bad JSON", text: ModelFiles.xgboost(conditions: "[0.5, -1.0,, 0.3]"), code: .malformed,
             field: "learner.gradient_booster.model.trees[0].split_conditions[2]", mentions: "expected a value"),
        Case(label: "UBJSON", text: "{L\u{0}\u{0}", code: .malformed, mentions: "UBJSON"),
        Case(label: "unsupported objective", text: ModelFiles.xgboost(objective: "multi:softprob"), code: .unsupported,
             field: "learner.objective.name", mentions: "multi:softprob"),
        Case(label: "categorical split without its category set", text: ModelFiles.xgboost(splitType: "[1, 0, 0, 0, 0]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0].categories_nodes", mentions: "node 0 is a categorical split"),
        Case(label: "short array", text: ModelFiles.xgboost(conditions: "[0.5, -1.0, 0.3, -0.4]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0].split_conditions", mentions: "expected 5 numbers"),
        Case(label: "string in number array", text: ModelFiles.xgboost(conditions: "[0.5, \"x\", 0.3, -0.4, 0.2]"), code: .malformed,
             field: "learner.gradient_booster.model.trees[0].split_conditions[1]", mentions: "expected a number"),
        Case(label: "child out of range", text: ModelFiles.xgboost(left: "[1, 9, -1, -1, -1]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0]", mentions: "children 9"),
        Case(label: "cycle", text: ModelFiles.xgboost(left: "[1, 0, -1, -1, -1]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0]", mentions: "already used"),
        Case(label: "feature out of range", text: ModelFiles.xgboost(splitIndices: "[0, 7, 0, 0, 0]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0]", mentions: "feature 7"),
        Case(label: "tree count mismatch", text: ModelFiles.xgboost(numTrees: "\"2\""), code: .inconsistent,
             field: "learner.gradient_booster.model.gbtree_model_param.num_trees", mentions: "truncated"),
        Case(label: "bad base score", text: ModelFiles.xgboost(baseScore: "abc"), code: .malformed,
             field: "learner.learner_model_param.base_score", mentions: "abc"),
        Case(label: "base score outside (0,1)", text: ModelFiles.xgboost(baseScore: "[1.5E0]"), code: .inconsistent,
             field: "learner.learner_model_param.base_score", mentions: "between 0 and 1"),
        Case(label: "multi-target base score", text: ModelFiles.xgboost(baseScore: "[5E-1,5E-1]"), code: .unsupported,
             field: "learner.learner_model_param.base_score", mentions: "multi-target"),
        Case(label: "names vs num_feature", text: ModelFiles.xgboost(featureNames: "[\"a\"]"), code: .inconsistent,
             field: "learner.feature_names", mentions: "expected 2 names"),
        Case(label: "missing field", text: ModelFiles.xgboost().replacingOccurrences(of: "\"sum_hessian\"", with: "\"other\""),
             code: .malformed, field: "learner.gradient_booster.model.trees[0].sum_hessian", mentions: "missing"),
        Case(label: "infinite threshold", text: ModelFiles.xgboost(conditions: "[Infinity, -1.0, 0.3, -0.4, 0.2]"), code: .inconsistent,
             field: "learner.gradient_booster.model.trees[0].split_conditions[0]", mentions: "not finite"),
    ]

    @Test("XGBoost JSON errors name the field", arguments: xgboostCases)
    func xgboostErrors(_ c: Case) throws {
        let e = try #require(failure(c.text))
        #expect(e.code == c.code, "\(e)")
        #expect(e.file == "m.json")
        if let field = c.field { #expect(e.field == field, "\(e)") }
        #expect(e.description.contains(c.mentions), "\(e)")
    }

    static let lightgbmCases: [Case] = [
        Case(label: "truncated", text: ModelFiles.lightgbm(end: false), code: .malformed, line: 30, mentions: "end of trees"),
        Case(label: "cut mid-tree", text: String(ModelFiles.lightgbm().prefix(330)), code: .inconsistent, field: "Tree=0 leaf_value", mentions: "expected 3 values, found 2"),
        Case(label: "categorical without bitsets", text: ModelFiles.lightgbm(numCat: "1"), code: .malformed, field: "Tree=0 cat_boundaries", line: 12, mentions: "num_cat = 1"),
        Case(label: "categorical bit without bitsets", text: ModelFiles.lightgbm(decisionType: "3 10"), code: .inconsistent, field: "Tree=0 threshold", mentions: "categorical split"),
        Case(label: "objective", text: ModelFiles.lightgbm(objective: "multiclass num_class:3"), code: .unsupported, field: "objective", line: 7, mentions: "multiclass"),
        Case(label: "bad number", text: ModelFiles.lightgbm(threshold: "0.5 abc"), code: .malformed, field: "Tree=0 threshold", line: 17, mentions: "'abc' is not a number"),
        Case(label: "count", text: ModelFiles.lightgbm(threshold: "0.5"), code: .inconsistent, field: "Tree=0 threshold", mentions: "expected 2 values"),
        Case(label: "missing type", text: ModelFiles.lightgbm(decisionType: "12 10"), code: .malformed, field: "Tree=0 decision_type", mentions: "missing type 3"),
        Case(label: "child", text: ModelFiles.lightgbm(leftChild: "-1 5"), code: .inconsistent, field: "Tree=0 left_child", mentions: "child 5"),
        // Without its names a model's features could only be guessed by position (it was scored
        // with the catalogue's first features, silently).
        Case(label: "no feature names", text: ModelFiles.lightgbm().replacingOccurrences(of: "feature_names=tenure bill\n", with: ""), code: .malformed,
             field: "feature_names", mentions: "missing"),
    ]

    @Test("LightGBM text errors name the line and key", arguments: lightgbmCases)
    func lightgbmErrors(_ c: Case) throws {
        let e = try #require(failure(c.text, file: "m.txt"))
        #expect(e.code == c.code, "\(e)")
        #expect(e.file == "m.txt")
        if let field = c.field { #expect(e.field == field, "\(e)") }
        if let line = c.line { #expect(e.line == line, "\(e)") }
        #expect(e.description.contains(c.mentions), "\(e)")
    }

    @Test("a missing file is reported as unreadable with its path")
    func missingFile() {
        #expect {
            _ = try TreeEnsemble.load(path: "/nonexistent/model.json")
        } throws: { e in
            let e = e as! ModelError
            return e.code == .unreadable && e.description.hasPrefix("/nonexistent/model.json")
        }
    }

    @Test("every prefix of a model file fails cleanly or loads, never crashes")
    func truncations() {
        for text in [ModelFiles.xgboost(), ModelFiles.lightgbm()] {
            let bytes = Array(text.utf8)
            for cut in stride(from: 0, to: bytes.count, by: 7) {
                if let e = failure(String(decoding: bytes[0..<cut], as: UTF8.self)) {
                    #expect(!e.message.isEmpty)
                }
            }
        }
    }

    @Test("random byte corruption never crashes the loader")
    func corruption() {
        var rng = SystemRandomNumberGenerator()
        for text in [ModelFiles.xgboost(), ModelFiles.lightgbm()] {
            let bytes = Array(text.utf8)
            for _ in 0..<300 {
                var b = bytes
                for _ in 0..<3 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                if let model = try? TreeEnsemble.parse(b, file: "x"), let forest = try? CompiledForest(model) {
                    _ = forest.margin(row: [Float](repeating: 0.1, count: model.featureCount))
                }
            }
        }
    }
}
