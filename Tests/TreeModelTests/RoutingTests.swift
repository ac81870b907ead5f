import Testing
@testable import TreeModel

/// Split and missing-value semantics, checked on hand-made trees whose answers are known.
@Suite("Split routing")
struct RoutingTests {
    // XGBoost tree: root f0 < 0.5 → node 1 (f1 < -1 → -0.4 else 0.2), else 0.3; base margin 0.
    @Test("XGBoost routes by value < threshold and NaN by default_left", arguments: [
        ([Float(0.4), -2], -0.4), ([0.4, -1], 0.2), ([0.5, -5], 0.3), ([.nan, -2], -0.4), ([0.7, .nan], 0.3),
        ([0.2, .nan], 0.2),  // node 1 has default_left = 0: NaN goes right
    ])
    func xgboost(row: [Float], leaf: Double) throws {
        let forest = try CompiledForest(try ModelFiles.load(ModelFiles.xgboost()))
        #expect(forest.margin(row: row) == Double(Float(leaf)))
        let (block, _) = try forest.score(columns: row.map { [$0] })
        #expect(block[0] == Double(Float(leaf)))
    }

    @Test("XGBoost default_left = 0 at the root sends NaN right")
    func defaultRight() throws {
        let forest = try CompiledForest(try ModelFiles.load(ModelFiles.xgboost(defaultLeft: "[0, 0, 0, 0, 0]")))
        #expect(forest.margin(row: [.nan, -2]) == Double(Float(0.3)))
    }

    // LightGBM tree: root f0 <= 0.5 → leaf -0.5, else node 1: f1 <= 2 → 0.1 else 0.7.
    @Test("LightGBM decision_type: <= threshold, missing types NaN / Zero / None, default sides", arguments: [
        ("2 10", [Float(0.5), 0], -0.5),          // equal to threshold goes left
        ("2 10", [0.50000006, 0], 0.1),           // the next float up goes right
        ("10 10", [.nan, 0], -0.5),               // NaN type, default left
        ("8 8", [.nan, 0], 0.1),                  // NaN type, default right; f1 = 0 <= 2
        ("8 8", [0.9, .nan], 0.7),                // NaN type on node 1, default right
        ("0 0", [.nan, 3], -0.5),                 // None: NaN is 0.0 → 0 <= 0.5 left
        ("0 0", [0.9, .nan], 0.1),                // None: NaN is 0.0 → 0 <= 2 left
        ("4 4", [0, 3], 0.7),                     // Zero type, default right: 0 goes right
        ("4 4", [.nan, 3], 0.7),                  // Zero type: NaN is missing too
        ("4 4", [1e-36, 3], 0.7),                 // within ±1e-35 counts as zero
        ("4 4", [0.2, 3], -0.5),                  // a real value compares normally
        ("6 6", [0.9, 0], 0.1),                   // Zero type, default left: 0 on node 1 goes left
    ])
    func lightgbm(decision: String, row: [Float], expected: Double) throws {
        let expected = expected == 0.1 ? 0.10000000000000001 : expected == 0.7 ? 0.69999999999999996 : expected
        let model = try ModelFiles.load(ModelFiles.lightgbm(decisionType: decision), file: "m.txt")
        let forest = try CompiledForest(model)
        // The reference answer walks the loaded tree with LightGBM's rules written out directly.
        let reference = lightgbmReference(decision: decision, row: row)
        #expect(reference == expected)
        #expect(forest.margin(row: row) == reference)
        let (block, _) = try forest.score(columns: row.map { [$0] })
        #expect(block[0] == reference)
    }

    /// LightGBM's `NumericalDecision`, transcribed, over the test tree.
    private func lightgbmReference(decision: String, row: [Float]) -> Double {
        let types = decision.split(separator: " ").map { Int($0)! }
        let thresholds = [0.5, 2.0]
        func goesLeft(_ node: Int, _ value: Float) -> Bool {
            var f = Double(value)
            let missing = (types[node] >> 2) & 3
            let defaultLeft = types[node] & 2 != 0
            if f.isNaN && missing != 2 { f = 0 }
            if (missing == 1 && f >= -1e-35 && f <= 1e-35) || (missing == 2 && f.isNaN) { return defaultLeft }
            return f <= thresholds[node]
        }
        if goesLeft(0, row[0]) { return -0.5 }
        return goesLeft(1, row[1]) ? 0.10000000000000001 : 0.69999999999999996
    }

    @Test("the Float bound reproduces LightGBM's double comparison for every nearby float")
    func lessThanBound() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let t = Double.random(in: -1e6...1e6, using: &rng) * (Bool.random(using: &rng) ? 1 : 1e-30)
            let b = TreeEnsemble.lessThanBound(forAtMost: t)
            var x = Float(t)
            for _ in 0..<3 { x = x.nextDown }
            for _ in 0..<6 {
                #expect((Double(x) <= t) == (x < b), "t=\(t) x=\(x)")
                x = x.nextUp
            }
        }
    }

    @Test("the probability is XGBoost's single-precision sigmoid of the margin")
    func probability() throws {
        let model = try ModelFiles.load(ModelFiles.xgboost(baseScore: "[2.5E-1]"))
        let forest = try CompiledForest(model)
        let (margins, outputs) = try forest.score(columns: [[0.7], [0]])
        let margin = Float(-logf(1 / 0.25 - 1)) + Float(0.3)
        #expect(margins[0] == Double(margin))
        #expect(outputs[0] == Double(1 / (1 + expf(-margin))))
        #expect(outputs[0] > 0 && outputs[0] < 1)
    }

    @Test("block scoring rejects a wrong number of columns")
    func wrongColumns() throws {
        let forest = try CompiledForest(try ModelFiles.load(ModelFiles.xgboost()))
        #expect(throws: ModelError.self) { _ = try forest.score(columns: [[1]]) }
    }

    @Test("block scoring over many blocks and threads equals the single-row path")
    func manyBlocks() throws {
        let forest = try CompiledForest(try ModelFiles.load(ModelFiles.xgboost()))
        var rng = SystemRandomNumberGenerator()
        let n = 64 * 37 + 13
        let columns = (0..<2).map { _ in (0..<n).map { _ in Bool.random(using: &rng) && Bool.random(using: &rng) ? Float.nan : Float.random(in: -2...2, using: &rng) } }
        for threads in [1, 2, 3] {
            let (margins, _) = try forest.score(columns: columns, threads: threads)
            for r in 0..<n { #expect(margins[r] == forest.margin(row: [columns[0][r], columns[1][r]])) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
