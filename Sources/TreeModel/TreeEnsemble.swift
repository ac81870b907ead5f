/// A boosted tree ensemble as loaded from an XGBoost or LightGBM file, normalised to one
/// set of split semantics. It is the source of truth for explanation (TreeSHAP) and the
/// input to `CompiledForest`, which is what scores.
public struct TreeEnsemble: Sendable {
    /// Which library wrote the model.
    public enum Library: String, Sendable {
        case xgboost, lightgbm
    }

    /// How the raw margin becomes the model's output.
    public enum Objective: Sendable, Equatable, CustomStringConvertible {
        /// XGBoost `binary:logistic`: probability = sigmoid(margin), computed in `Float` as XGBoost does.
        case binaryLogistic
        /// XGBoost `reg:logistic`: same transform as `binary:logistic`.
        case regressionLogistic
        /// XGBoost `binary:logitraw`: the output is the margin itself.
        case binaryLogitRaw
        /// XGBoost `reg:squarederror`: the output is the margin itself.
        case squaredError
        /// LightGBM `binary`: probability = 1 / (1 + exp(-sigmoid·margin)), in `Double`.
        case lightgbmBinary(sigmoid: Double)

        /// The name the library uses for it.
        public var description: String {
            switch self {
            case .binaryLogistic: "binary:logistic"
            case .regressionLogistic: "reg:logistic"
            case .binaryLogitRaw: "binary:logitraw"
            case .squaredError: "reg:squarederror"
            case .lightgbmBinary(let s): s == 1 ? "binary" : "binary sigmoid:\(s)"
            }
        }

        /// Turns a margin into the output, with the library's own arithmetic.
        @inlinable
        public func transform(margin: Double) -> Double {
            switch self {
            case .binaryLogistic, .regressionLogistic:
                return Double(xgboostSigmoid(Float(margin)))
            case .binaryLogitRaw, .squaredError:
                return margin
            case .lightgbmBinary(let s):
                return 1.0 / (1.0 + exp(-s * margin))
            }
        }
    }

    /// The numeric type in which the library sums tree outputs; matching it makes our
    /// margins bit-identical to the library's rather than merely close.
    public enum Accumulation: Sendable {
        case float32, float64
    }

    /// Where the model was read from (a path, or a label such as "<memory>"), for error messages.
    public var source: String
    /// Which library wrote the model.
    public var library: Library
    /// The library version recorded in the file, when there is one.
    public var libraryVersion: String?
    /// How the margin becomes the output.
    public var objective: Objective
    /// Feature names in model column order (`f0`, `f1`, … when the file has none).
    public var featureNames: [String]
    /// XGBoost `feature_types` when present ("float", "int", "q", "c"…).
    public var featureTypes: [String]?
    /// Margin added before the first tree (XGBoost's base_score transformed to margin space; 0 for LightGBM).
    public var baseMargin: Double
    /// The base score as written in the file (probability space for logistic objectives).
    public var baseScore: Double
    /// Trees in summation order.
    public var trees: [DecisionTree]
    /// How the library accumulates tree outputs.
    public var accumulation: Accumulation
    /// Category names per feature, when the file stores them (XGBoost 3.x keeps the categories of a
    /// DataFrame it was trained on): code `c` of feature `j` is `categoryNames[j][c]`; empty for a
    /// numeric feature. nil when the file has none, as for a model trained on category codes.
    public var categoryNames: [[String]]? = nil

    /// Number of input features the model reads.
    public var featureCount: Int { featureNames.count }

    /// Depth of the deepest tree (a single leaf has depth 0).
    public var maxDepth: Int { trees.map(\.depth).max() ?? 0 }

    /// Total number of nodes, leaves included.
    public var nodeCount: Int { trees.reduce(0) { $0 + $1.nodeCount } }

    /// Number of categorical splits, all trees together.
    public var categoricalSplitCount: Int { trees.reduce(0) { $0 + $1.categoricalSplitCount } }

    /// Turns a margin into the model's output (probability for logistic objectives),
    /// with the library's own arithmetic.
    @inlinable
    public func transform(margin: Double) -> Double {
        objective.transform(margin: margin)
    }
}

/// XGBoost's `common::Sigmoid` in single precision, so probabilities match its `predict` bit for bit.
@inlinable
func xgboostSigmoid(_ x: Float) -> Float {
    let e = Float(1e-16)
    let z = min(-x, 88.7)
    return 1 / (expf(z) + 1 + e)
}

/// One decision tree, stored as parallel arrays indexed by node id (0 is the root).
///
/// Split semantics, whatever the source library: a row goes to `left` when its value is
/// **less than** `threshold` (a `Float`); LightGBM's `value <= t` on doubles is converted to the
/// equivalent `Float` bound when loading. How a missing value is routed is given by `missing`.
/// A categorical split (`categories[node]` not nil) ignores `threshold` and routes by its
/// `CategorySet` instead, NaN still by `missing` and `defaultLeft`.
public struct DecisionTree: Sendable {
    /// How a split routes a missing value (NaN).
    public enum MissingRule: UInt8, Sendable {
        /// NaN goes to the default side (`defaultLeft`); everything else is compared (XGBoost, LightGBM "NaN").
        case nanDefault
        /// NaN is treated as 0.0 and compared (LightGBM missing type "None").
        case nanAsZero
        /// NaN and values within ±1e-35 of zero go to the default side (LightGBM missing type "Zero").
        case zeroDefault
    }

    /// Left child id, or -1 for a leaf.
    public var left: [Int32]
    /// Right child id, or -1 for a leaf.
    public var right: [Int32]
    /// Feature index of the split (undefined for leaves).
    public var feature: [Int32]
    /// Go left when `value < threshold` (undefined for leaves).
    public var threshold: [Float]
    /// Where missing values go when `missing` routes them to a default side.
    public var defaultLeft: [Bool]
    /// Missing-value rule per node.
    public var missing: [MissingRule]
    /// Leaf output (already scaled by the learning rate); undefined for inner nodes.
    public var leafValue: [Double]
    /// Training cover (XGBoost: sum of hessians, LightGBM: sample count), used by TreeSHAP.
    public var cover: [Double]
    /// Per node, the category set of a categorical split; nil for a numeric split or a leaf.
    /// Empty when the tree has no categorical split.
    public var categories: [CategorySet?] = []

    /// Number of nodes, leaves included.
    public var nodeCount: Int { left.count }

    /// Whether `node` is a leaf.
    @inlinable public func isLeaf(_ node: Int) -> Bool { left[node] < 0 }

    /// The category set of `node` when it is a categorical split.
    @inlinable public func categorySet(_ node: Int) -> CategorySet? {
        categories.isEmpty ? nil : categories[node]
    }

    /// Number of categorical splits (inner nodes with a category set).
    public var categoricalSplitCount: Int {
        categories.indices.reduce(0) { $0 + (categories[$1] != nil && !isLeaf($1) ? 1 : 0) }
    }

    /// Depth of the tree (a single leaf has depth 0).
    public var depth: Int {
        var best = 0
        var stack: [(Int, Int)] = [(0, 0)]
        while let (n, d) = stack.popLast() {
            if isLeaf(n) {
                best = max(best, d)
            } else {
                stack.append((Int(left[n]), d + 1))
                stack.append((Int(right[n]), d + 1))
            }
        }
        return best
    }

    /// The child a value leads to from inner node `node`, with the library's missing-value rules.
    @inlinable
    public func next(_ node: Int, value: Float) -> Int {
        var x = value
        switch missing[node] {
        case .nanDefault:
            if x.isNaN { return Int(defaultLeft[node] ? left[node] : right[node]) }
        case .nanAsZero:
            if x.isNaN { x = 0 }
        case .zeroDefault:
            if x.isNaN || (x >= -1e-35 && x <= 1e-35) {
                return Int(defaultLeft[node] ? left[node] : right[node])
            }
        }
        if let set = categorySet(node) {
            return Int(set.goesLeft(x) ? left[node] : right[node])
        }
        return Int(x < threshold[node] ? left[node] : right[node])
    }

    /// Checks that the arrays describe one tree rooted at 0 whose children are in range and
    /// reached once, no deeper than `ModelLimits.maximumTreeDepth`, and whose nodes not reached
    /// from the root are leaves, so nothing downstream (compiling, scoring, TreeSHAP) can loop,
    /// index out of bounds or overflow.
    func validate(featureCount: Int, file: String, field: String) throws(ModelError) {
        let n = left.count
        guard n > 0 else { throw ModelError(.inconsistent, file: file, field: field, "tree has no nodes") }
        for a in [right.count, feature.count, threshold.count, defaultLeft.count, missing.count, leafValue.count, cover.count] where a != n {
            throw ModelError(.inconsistent, file: file, field: field, "node arrays have different lengths (\(n) vs \(a))")
        }
        guard categories.isEmpty || categories.count == n else {
            throw ModelError(.inconsistent, file: file, field: field, "node arrays have different lengths (\(n) vs \(categories.count) category sets)")
        }
        var seen = [Bool](repeating: false, count: n)
        seen[0] = true
        var stack = [(node: 0, depth: 0)]
        while let (node, depth) = stack.popLast() {
            guard depth <= ModelLimits.maximumTreeDepth else {
                throw ModelError(.unsupported, file: file, field: field,
                                 "tree is deeper than \(ModelLimits.maximumTreeDepth) levels (node \(node) is at depth \(depth)); at most \(ModelLimits.maximumTreeDepth) are supported")
            }
            let l = Int(left[node]), r = Int(right[node])
            if l < 0 && r < 0 {
                guard leafValue[node].isFinite else {
                    throw ModelError(.inconsistent, file: file, field: field, "leaf \(node) has a non-finite value \(leafValue[node])")
                }
                continue
            }
            guard l >= 0, r >= 0, l < n, r < n else {
                throw ModelError(.inconsistent, file: file, field: field, "node \(node) has children \(l) and \(r); expected both in 0..<\(n) or both -1")
            }
            guard !seen[l], !seen[r] else {
                throw ModelError(.inconsistent, file: file, field: field, "node \(node) points at a node already used elsewhere (not a tree)")
            }
            let f = Int(feature[node])
            guard f >= 0, f < featureCount else {
                throw ModelError(.inconsistent, file: file, field: field, "node \(node) splits on feature \(f); the model has \(featureCount) features")
            }
            if let set = categorySet(node) {
                guard missing[node] == .nanDefault else {
                    throw ModelError(.unsupported, file: file, field: field,
                                     "node \(node) is a categorical split with missing rule \(missing[node]); categorical splits route NaN by default side only")
                }
                guard set.words.count <= ModelLimits.maximumCategories / 32 else {
                    throw ModelError(.unsupported, file: file, field: field,
                                     "node \(node) has a category set of \(set.words.count * 32) bits; categories are 0 ..< \(ModelLimits.maximumCategories)")
                }
            } else {
                guard !threshold[node].isNaN else {
                    throw ModelError(.inconsistent, file: file, field: field, "node \(node) has a NaN threshold")
                }
            }
            seen[l] = true
            seen[r] = true
            stack.append((l, depth + 1))
            stack.append((r, depth + 1))
        }
        // A node no path reaches is never scored, but it must not look like a split: the compiler
        // and the explainer read every inner node's feature and children.
        if let node = seen.indices.first(where: { !seen[$0] && left[$0] >= 0 }) {
            throw ModelError(.inconsistent, file: file, field: field,
                             "node \(node) is not reachable from the root but has children \(left[node]) and \(right[node]); expected -1 (a leaf)")
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
