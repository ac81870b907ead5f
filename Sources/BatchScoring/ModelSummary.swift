import TreeModel

/// What `churngrid model inspect` reports about a model file.
public struct ModelSummary: Sendable, Codable {
    public var file: String
    public var library: String
    public var libraryVersion: String?
    public var objective: String
    public var trees: Int
    public var maxDepth: Int
    public var nodes: Int
    public var leaves: Int
    /// Inner nodes that split on a category set rather than a threshold.
    public var categoricalSplits: Int
    public var features: Int
    public var featureNames: [String]
    public var featureTypes: [String]?
    /// Base score as written in the file (probability space for logistic objectives).
    public var baseScore: Double
    /// The same base score as a margin, the value summation starts from.
    public var baseMargin: Double
    /// How this process scores it: the kernels chosen (`CHURNGRID_SCORING_KERNEL`, else automatic),
    /// the instruction set they run on here ("avx512", "avx2" or "none") and the trees the
    /// leaf-bitvector walk takes (0: all walked portably). Nil when the summary was made without
    /// compiling the model.
    public var scoringKernel: String?
    public var instructionSet: String?
    public var exitLeafTrees: Int?

    enum CodingKeys: String, CodingKey {
        case file, library, objective, trees, nodes, leaves, features
        case libraryVersion = "library_version", maxDepth = "max_depth", categoricalSplits = "categorical_splits"
        case featureNames = "feature_names", featureTypes = "feature_types"
        case baseScore = "base_score", baseMargin = "base_margin"
        case scoringKernel = "scoring_kernel", instructionSet = "instruction_set", exitLeafTrees = "exit_leaf_trees"
    }

    /// Summarises `model`, loaded from `file`, and how `compiled` (when given) scores it.
    public init(_ model: TreeEnsemble, file: String, compiled: CompiledForest? = nil) {
        self.file = file
        self.library = model.library.rawValue
        self.libraryVersion = model.libraryVersion
        self.objective = model.objective.description
        self.trees = model.trees.count
        self.maxDepth = model.maxDepth
        self.nodes = model.nodeCount
        self.leaves = model.trees.reduce(0) { sum, t in sum + t.left.filter { $0 < 0 }.count }
        self.categoricalSplits = model.categoricalSplitCount
        self.features = model.featureCount
        self.featureNames = model.featureNames
        self.featureTypes = model.featureTypes
        self.baseScore = model.baseScore
        self.baseMargin = model.baseMargin
        if let compiled {
            scoringKernel = compiled.kernel.rawValue
            instructionSet = compiled.instructionSet
            exitLeafTrees = compiled.exitLeafTrees
        }
    }

    /// A human-readable report, one fact per line.
    public var text: String {
        var lines = [
            "file:        \(file)",
            "library:     \(library)\(libraryVersion.map { " \($0)" } ?? "")",
            "objective:   \(objective)",
            "trees:       \(trees)",
            "max depth:   \(maxDepth)",
            "nodes:       \(nodes) (\(leaves) leaves\(categoricalSplits > 0 ? ", \(categoricalSplits) categorical splits" : ""))",
            "base score:  \(baseScore) (margin \(baseMargin))",
        ]
        if let scoringKernel, let instructionSet, let exitLeafTrees {
            lines.append("scoring:     \(scoringKernel) kernels, \(instructionSet == "none" ? "portable walks" : "\(instructionSet) leaf-bitvector walk for \(exitLeafTrees) of \(trees) trees")")
        }
        lines.append("features:    \(features)")
        for (i, name) in featureNames.enumerated() {
            let type = featureTypes.flatMap { i < $0.count ? " (\($0[i]))" : nil } ?? ""
            lines.append("  \(String(i).leftPadded(to: 4)) \(name)\(type)")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
