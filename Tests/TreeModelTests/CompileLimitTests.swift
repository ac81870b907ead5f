import Testing
@testable import TreeModel

@Suite("Compiling")
struct CompileLimitTests {
    /// A complete tree of the given depth on feature 0, thresholds chosen so leaf k is reached by x = k.
    static func completeTree(depth: Int) -> DecisionTree {
        let n = (1 << (depth + 1)) - 1
        var t = DecisionTree(
            left: [Int32](repeating: -1, count: n), right: [Int32](repeating: -1, count: n),
            feature: [Int32](repeating: 0, count: n), threshold: [Float](repeating: 0, count: n),
            defaultLeft: [Bool](repeating: true, count: n),
            missing: [DecisionTree.MissingRule](repeating: .nanDefault, count: n),
            leafValue: [Double](repeating: 0, count: n), cover: [Double](repeating: 1, count: n))
        let inner = (1 << depth) - 1
        func fill(_ node: Int, _ low: Int, _ width: Int) {
            if node >= inner {
                t.leafValue[node] = Double(low)
                return
            }
            t.left[node] = Int32(2 * node + 1)
            t.right[node] = Int32(2 * node + 2)
            t.threshold[node] = Float(low + width / 2)
            fill(2 * node + 1, low, width / 2)
            fill(2 * node + 2, low + width / 2, width / 2)
        }
        fill(0, 0, 1 << depth)
        return t
    }

    static func model(_ trees: [DecisionTree]) -> TreeEnsemble {
        TreeEnsemble(source: "wide.json", library: .xgboost, libraryVersion: nil, objective: .squaredError,
                     featureNames: ["x"], featureTypes: nil, baseMargin: 0, baseScore: 0, trees: trees,
                     accumulation: .float64)
    }

    @Test("a deep complete tree reaches the right leaf for every value")
    func deepTree() throws {
        let forest = try CompiledForest(Self.model([Self.completeTree(depth: 14)]))
        for k in stride(from: 0, to: 1 << 14, by: 97) {
            #expect(forest.margin(row: [Float(k)]) == Double(k))
        }
    }

    @Test("a tree too wide for the compact layout is refused with an error naming the model")
    func tooWide() {
        #expect {
            _ = try CompiledForest(Self.model([Self.completeTree(depth: 17)]))
        } throws: { e in
            let e = e as! ModelError
            return e.code == .unsupported && e.file == "wide.json" && e.message.contains("too wide")
        }
    }
}
