import Testing
@testable import TreeModel

/// Model files written to hurt: declared sizes far beyond the content, trees too deep for exact
/// TreeSHAP, nodes no path reaches. Each is refused with a `ModelError` naming where, before
/// anything is allocated for it; none traps.
@Suite("Hostile model files")
struct HostileModelTests {
    private func failure(_ text: String, file: String = "m.json") -> ModelError? {
        do {
            _ = try ModelFiles.load(text, file: file)
            return nil
        } catch {
            return error
        }
    }

    private static func replacing(_ text: String, _ old: String, _ new: String) -> String {
        precondition(text.contains(old), "test fixture does not contain \(old)")
        return text.replacingOccurrences(of: old, with: new)
    }

    // MARK: Declared sizes

    @Test("XGBoost: a huge num_feature without names is refused before names are made for it")
    func hugeNumFeature() throws {
        // Used to build Int.max names "f0", "f1", … and die allocating them.
        let text = Self.replacing(ModelFiles.xgboost(featureNames: "[]"),
                                  "\"num_feature\": \"2\", \"num_target\"", "\"num_feature\": \"9223372036854775807\", \"num_target\"")
        let e = try #require(failure(text))
        #expect(e.code == .unsupported, "\(e)")
        #expect(e.field == "learner.learner_model_param.num_feature", "\(e)")
        #expect(e.message.contains("at most 1000000"), "\(e)")
    }

    @Test("XGBoost: feature_types of the wrong length is inconsistent")
    func featureTypesLength() throws {
        let text = Self.replacing(ModelFiles.xgboost(), "\"feature_types\": []", "\"feature_types\": [\"float\"]")
        let e = try #require(failure(text))
        #expect(e.code == .inconsistent && e.field == "learner.feature_types", "\(e)")
    }

    @Test("LightGBM: max_feature_idx = Int.max is refused (it used to overflow computing the feature count)")
    func hugeMaxFeatureIndex() throws {
        let text = Self.replacing(ModelFiles.lightgbm(), "max_feature_idx=1\n", "max_feature_idx=9223372036854775807\n")
        let e = try #require(failure(text, file: "m.txt"))
        #expect(e.code == .unsupported, "\(e)")
        #expect(e.field == "max_feature_idx" && e.line == 6, "\(e)")
    }

    @Test("LightGBM: a huge num_leaves is refused before its values are read (it used to reserve that many)")
    func hugeNumLeaves() throws {
        let text = Self.replacing(ModelFiles.lightgbm(), "num_leaves=3\n", "num_leaves=1000000000000000\n")
        let e = try #require(failure(text, file: "m.txt"))
        #expect(e.code == .unsupported, "\(e)")
        #expect(e.field == "Tree=0 num_leaves" && e.line == 13, "\(e)")
    }

    @Test("LightGBM: num_leaves within the limit but beyond the content is inconsistent, found cheaply")
    func numLeavesBeyondContent() throws {
        let text = Self.replacing(ModelFiles.lightgbm(), "num_leaves=3\n", "num_leaves=131072\n")
        let e = try #require(failure(text, file: "m.txt"))
        #expect(e.code == .inconsistent && e.field == "Tree=0 leaf_value", "\(e)")
        #expect(e.message.contains("expected 131072 values, found 3"), "\(e)")
    }

    @Test("LightGBM: a bad right child is reported under right_child")
    func badRightChild() throws {
        let text = Self.replacing(ModelFiles.lightgbm(), "right_child=1 -3\n", "right_child=5 -3\n")
        let e = try #require(failure(text, file: "m.txt"))
        #expect(e.code == .inconsistent && e.field == "Tree=0 right_child", "\(e)")
    }

    // MARK: Unreachable nodes

    @Test("XGBoost: a node no path reaches may not be a split (its feature was never checked)")
    func unreachableSplit() throws {
        // Nodes 5 and 6 hang off nothing; node 5 splits on feature 99 of a 2-feature model. It used
        // to load, then scoring read column 99 and the explainer added Int32.max to a node offset.
        let text = ModelFiles.xgboost(
            defaultLeft: "[1, 0, 0, 0, 0, 0, 0]", splitType: "[0, 0, 0, 0, 0, 0, 0]",
            left: "[1, 3, -1, -1, -1, 2147483647, -1]", splitIndices: "[0, 1, 0, 0, 0, 99, 0]",
            conditions: "[0.5, -1.0, 0.3, -0.4, 0.2, 1.0, 0.0]", numNodes: "\"7\"")
            .replacingOccurrences(of: "\"right_children\": [2, 4, -1, -1, -1]", with: "\"right_children\": [2, 4, -1, -1, -1, 6, -1]")
            .replacingOccurrences(of: "\"sum_hessian\": [10, 6, 4, 3, 3]", with: "\"sum_hessian\": [10, 6, 4, 3, 3, 1, 1]")
        let e = try #require(failure(text))
        #expect(e.code == .inconsistent, "\(e)")
        #expect(e.field == "learner.gradient_booster.model.trees[0]", "\(e)")
        #expect(e.message.contains("node 5 is not reachable"), "\(e)")
    }

    @Test("XGBoost: an unreachable leaf (a node pruned by XGBoost) is fine")
    func unreachableLeaf() throws {
        let text = ModelFiles.xgboost(
            defaultLeft: "[1, 0, 0, 0, 0, 0]", splitType: "[0, 0, 0, 0, 0, 0]",
            left: "[1, 3, -1, -1, -1, -1]", splitIndices: "[0, 1, 0, 0, 0, 2147483647]",
            conditions: "[0.5, -1.0, 0.3, -0.4, 0.2, 0.0]", numNodes: "\"6\"")
            .replacingOccurrences(of: "\"right_children\": [2, 4, -1, -1, -1]", with: "\"right_children\": [2, 4, -1, -1, -1, -1]")
            .replacingOccurrences(of: "\"sum_hessian\": [10, 6, 4, 3, 3]", with: "\"sum_hessian\": [10, 6, 4, 3, 3, 0]")
        let model = try ModelFiles.load(text)
        let forest = try CompiledForest(model)
        #expect(forest.margin(row: [0.7, 0]) == Double(Float(0.3)))
        let phi = TreeExplainer(model).contributions(row: [0.7, 0])
        #expect(abs(phi.reduce(0, +) - Double(Float(0.3))) < 1e-6)
    }

    // MARK: Depth

    /// A LightGBM model whose one tree is a chain `depth` levels deep, each level splitting on its own
    /// feature (so TreeSHAP's path really grows to `depth`): node i goes left to leaf i, right to node i+1.
    /// Covers are consistent (every leaf 1, a node the sum of its children), as TreeSHAP assumes.
    static func chain(depth: Int) -> String {
        let inner = depth, leaves = depth + 1
        func line(_ values: [String]) -> String { values.joined(separator: " ") }
        let left = line((0..<inner).map { String(~$0) })
        let right = line((0..<inner).map { $0 + 1 < inner ? String($0 + 1) : String(~inner) })
        return """
        tree
        version=v4
        num_class=1
        num_tree_per_iteration=1
        max_feature_idx=\(inner - 1)
        objective=binary sigmoid:1
        feature_names=\(line((0..<inner).map { "f\($0)" }))

        Tree=0
        num_leaves=\(leaves)
        num_cat=0
        split_feature=\(line((0..<inner).map(String.init)))
        threshold=\(line(Array(repeating: "0.5", count: inner)))
        decision_type=\(line(Array(repeating: "2", count: inner)))
        left_child=\(left)
        right_child=\(right)
        leaf_value=\(line((0..<leaves).map { String(Double($0 % 5) * 0.1 - 0.2) }))
        leaf_count=\(line(Array(repeating: "1", count: leaves)))
        internal_count=\(line((0..<inner).map { String(leaves - $0) }))


        end of trees

        """
    }

    @Test("a tree deeper than exact TreeSHAP can take is refused at load time, naming the tree")
    func tooDeep() throws {
        // It used to load; the explainer then recursed once per level and kept (d+2)(d+3)/2 path
        // elements per row: at LightGBM's own limit of 131,072 leaves, 275 GB and a blown stack.
        let e = try #require(failure(Self.chain(depth: ModelLimits.maximumTreeDepth + 1), file: "m.txt"))
        #expect(e.code == .unsupported, "\(e)")
        #expect(e.field == "Tree=0", "\(e)")
        #expect(e.message.contains("deeper than \(ModelLimits.maximumTreeDepth) levels"), "\(e)")
    }

    @Test("exact TreeSHAP adds up to the margin on deep trees, where the path recurrences lost every digit",
          arguments: [40, 64, 200, ModelLimits.maximumTreeDepth])
    func deepTrees(depth: Int) throws {
        // The recurrences summed to the margin within 1e-8 at depth 40, 0.1 at 64, 1e285 at 1,024.
        let model = try ModelFiles.load(Self.chain(depth: depth), file: "m.txt")
        #expect(model.maxDepth == depth)
        let forest = try CompiledForest(model)
        let explainer = TreeExplainer(model)
        // Every feature at 1 walks right to the bottom; 0 at feature depth/3 stops there.
        var row = [Float](repeating: 1, count: model.featureCount)
        for stop in [depth, depth / 3] {
            if stop < depth { row[stop] = 0 }
            let margin = forest.margin(row: row)
            #expect(margin == Double(stop % 5) * 0.1 - 0.2)
            for method in [TreeExplainer.Method.exact, .approximate] {
                let phi = explainer.contributions(row: row, method: method)
                #expect(phi.allSatisfy { $0.isFinite })
                #expect(abs(phi.reduce(0, +) - margin) < 1e-9, "\(method)")
            }
        }
    }

    @Test("quadrature and Lundberg's recurrences give the same contributions where both are exact")
    func quadratureMatchesRecurrences() throws {
        // A complete tree of depth 10 over 6 features (features repeat along paths), uneven covers.
        var tree = CompileLimitTests.completeTree(depth: 10)
        var rng = SplitMix(seed: 7)
        for n in 0..<tree.nodeCount where !tree.isLeaf(n) {
            tree.feature[n] = Int32(rng.next() % 6)
            tree.threshold[n] = Float(rng.next() % 100) / 100
            tree.defaultLeft[n] = rng.next() % 2 == 0
        }
        func cover(_ n: Int) -> Double {
            if tree.isLeaf(n) { tree.cover[n] = Double(1 + rng.next() % 9); tree.leafValue[n] = Double(rng.next() % 200) / 100 - 1 }
            else { tree.cover[n] = cover(Int(tree.left[n])) + cover(Int(tree.right[n])) }
            return tree.cover[n]
        }
        _ = cover(0)
        let model = TreeEnsemble(source: "m", library: .xgboost, libraryVersion: nil, objective: .squaredError,
                                 featureNames: (0..<6).map { "f\($0)" }, featureTypes: nil, baseMargin: 0, baseScore: 0,
                                 trees: [tree, CompileLimitTests.completeTree(depth: 3)], accumulation: .float64)
        let forest = try CompiledForest(model)
        let recurrences = TreeExplainer(model, linear: false)
        let quadrature = TreeExplainer(model, quadrature: true)
        for _ in 0..<20 {
            let row = (0..<6).map { _ in rng.next() % 10 == 0 ? Float.nan : Float(rng.next() % 120) / 100 }
            let a = recurrences.contributions(row: row), b = quadrature.contributions(row: row)
            for j in a.indices { #expect(abs(a[j] - b[j]) < 1e-12, "feature \(j): \(a[j]) vs \(b[j])") }
            #expect(abs(b.reduce(0, +) - forest.margin(row: row)) < 1e-9)
        }
    }

    @Test("a model built in memory with a bad tree is refused by the compiler, not trapped on")
    func compilerValidates() {
        var tree = CompileLimitTests.completeTree(depth: 2)
        tree.left[1] = 40  // out of range: the breadth-first layout used to index past the arrays
        #expect {
            _ = try CompiledForest(CompileLimitTests.model([tree]))
        } throws: { e in
            let e = e as! ModelError
            return e.code == .inconsistent && e.field == "tree 0" && e.message.contains("children 40")
        }
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
