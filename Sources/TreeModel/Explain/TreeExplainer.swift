/// Why a subscriber got their score: per-feature contributions to the margin.
///
/// `exact` is path-dependent TreeSHAP (Lundberg et al. 2018), the algorithm behind XGBoost's
/// `predict(pred_contribs=True)` and LightGBM's `pred_contrib`; contributions plus the bias sum
/// to the margin. `approximate` is the per-path attribution of XGBoost's `approx_contribs=True`
/// (Saabas): one walk per tree, cheap enough for a full-base rescoring.
public final class TreeExplainer: @unchecked Sendable {
    // @unchecked: all storage is written in `init` and only read afterwards.

    /// Which attribution to compute.
    public enum Method: Sendable {
        /// Exact path-dependent TreeSHAP.
        case exact
        /// Per-path attribution (XGBoost's `approx_contribs`).
        case approximate
    }

    /// The explained model.
    public let model: TreeEnsemble
    private let trees: [FlatTree]
    private let maxDepth: Int

    /// Prepares `model` for explanation (computes each node's expected value).
    public init(_ model: TreeEnsemble) {
        self.model = model
        self.trees = model.trees.map(FlatTree.init)
        self.maxDepth = model.maxDepth
    }

    /// Number of contribution slots: one per feature, then the bias (expected margin).
    public var contributionCount: Int { model.featureCount + 1 }

    /// Writes each feature's contribution to this row's margin into `phi[0..<featureCount]`
    /// and the bias into `phi[featureCount]`; their sum is the row's margin.
    /// - Parameters:
    ///   - row: feature values in model order, NaN = missing.
    ///   - phi: at least `contributionCount` slots; overwritten.
    ///   - method: exact TreeSHAP or the cheap path attribution.
    public func contributions(row: UnsafeBufferPointer<Float>, into phi: UnsafeMutableBufferPointer<Double>, method: Method = .exact) {
        precondition(row.count >= model.featureCount && phi.count >= contributionCount)
        let f = model.featureCount
        for i in 0...f { phi[i] = 0 }
        phi[f] = model.baseMargin
        switch method {
        case .approximate:
            for tree in trees { tree.pathAttribution(row, phi) }
        case .exact:
            let pathCapacity = (maxDepth + 2) * (maxDepth + 3) / 2
            withUnsafeTemporaryAllocation(of: PathElement.self, capacity: pathCapacity) { path in
                for tree in trees {
                    phi[f] += tree.mean[0]
                    if tree.left[0] < 0 { continue }
                    tree.shap(node: 0, row: row, phi: phi, path: path.baseAddress!, depth: 0,
                              zeroFraction: 1, oneFraction: 1, feature: -1)
                }
            }
        }
    }

    /// Contributions of one row as an array (`featureCount` contributions, then the bias).
    public func contributions(row: [Float], method: Method = .exact) -> [Double] {
        var phi = [Double](repeating: 0, count: contributionCount)
        row.withUnsafeBufferPointer { r in
            phi.withUnsafeMutableBufferPointer { contributions(row: r, into: $0, method: method) }
        }
        return phi
    }

    /// The `k` features that push this row's churn margin up the most (largest positive
    /// contributions, biggest first); fewer when fewer features contribute positively.
    public func reasons(row: [Float], k: Int, method: Method = .exact) -> [ReasonCode] {
        let phi = contributions(row: row, method: method)
        return Self.topReasons(phi: phi, k: k, names: model.featureNames)
    }

    /// The `k` largest positive contributions among `phi[0..<names.count]`, biggest first.
    public static func topReasons<C: RandomAccessCollection>(phi: C, k: Int, names: [String]) -> [ReasonCode]
    where C.Element == Double, C.Index == Int {
        var best: [ReasonCode] = []
        best.reserveCapacity(k + 1)
        for j in 0..<names.count {
            let c = phi[phi.startIndex + j]
            guard c > 0, k > 0 else { continue }
            if best.count == k, let last = best.last, last.contribution >= c { continue }
            let at = best.firstIndex { $0.contribution < c } ?? best.count
            best.insert(ReasonCode(feature: j, name: names[j], contribution: c), at: at)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}

/// One reason a subscriber is at risk: a feature and how much it raises the churn margin.
public struct ReasonCode: Sendable, Equatable {
    /// Feature index in the model.
    public var feature: Int
    /// Feature name, as in the model.
    public var name: String
    /// Contribution to the margin (log-odds for logistic models).
    public var contribution: Double
}

struct PathElement {
    var feature: Int
    var zeroFraction: Double
    var oneFraction: Double
    var weight: Double
}

/// A tree with its nodes' expected values, in the arrays TreeSHAP walks.
private struct FlatTree {
    let tree: DecisionTree
    let left: [Int32]
    let mean: [Double]

    init(_ tree: DecisionTree) {
        self.tree = tree
        self.left = tree.left
        var mean = [Double](repeating: 0, count: tree.nodeCount)
        // Node ids need not put parents before children: walk pre-order, then fill bottom-up.
        var order: [Int] = []
        var stack = [0]
        while let n = stack.popLast() {
            order.append(n)
            if !tree.isLeaf(n) {
                stack.append(Int(tree.left[n]))
                stack.append(Int(tree.right[n]))
            }
        }
        for n in order.reversed() {
            if tree.isLeaf(n) {
                mean[n] = tree.leafValue[n]
            } else {
                let l = Int(tree.left[n]), r = Int(tree.right[n])
                let c = tree.cover[n]
                mean[n] = c > 0 ? (mean[l] * tree.cover[l] + mean[r] * tree.cover[r]) / c : 0.5 * (mean[l] + mean[r])
            }
        }
        self.mean = mean
    }

    /// XGBoost's approx_contribs: each split's feature gets the change in expected value along the path.
    func pathAttribution(_ row: UnsafeBufferPointer<Float>, _ phi: UnsafeMutableBufferPointer<Double>) {
        let f = phi.count - 1
        var n = 0
        var value = mean[0]
        phi[f] += value
        while !tree.isLeaf(n) {
            let feature = Int(tree.feature[n])
            n = tree.next(n, value: row[feature])
            let v = mean[n]
            phi[feature] += v - value
            value = v
        }
    }

    func shap(
        node: Int, row: UnsafeBufferPointer<Float>, phi: UnsafeMutableBufferPointer<Double>,
        path parent: UnsafeMutablePointer<PathElement>, depth: Int,
        zeroFraction: Double, oneFraction: Double, feature: Int
    ) {
        // Each level works on its own copy of the path, placed after the parent's.
        let path = parent + depth
        if depth > 0 { path.update(from: parent, count: depth) }
        var depth = depth
        extend(path, depth, zeroFraction, oneFraction, feature)

        if tree.isLeaf(node) {
            let value = tree.leafValue[node]
            if depth > 0 {
                for i in 1...depth {
                    let w = unwoundSum(path, depth, i)
                    let e = path[i]
                    phi[e.feature] += w * (e.oneFraction - e.zeroFraction) * value
                }
            }
            return
        }
        let split = Int(tree.feature[node])
        let hot = tree.next(node, value: row[split])
        let cold = hot == Int(tree.left[node]) ? Int(tree.right[node]) : Int(tree.left[node])
        let cover = tree.cover[node]
        let hotZero = cover > 0 ? tree.cover[hot] / cover : 0
        let coldZero = cover > 0 ? tree.cover[cold] / cover : 0
        var incomingZero = 1.0
        var incomingOne = 1.0
        // A feature split on again higher up: undo its earlier entry and carry its fractions.
        var k = 0
        while k <= depth && path[k].feature != split { k += 1 }
        if k <= depth {
            incomingZero = path[k].zeroFraction
            incomingOne = path[k].oneFraction
            unwind(path, depth, k)
            depth -= 1
        }
        shap(node: hot, row: row, phi: phi, path: path, depth: depth + 1,
             zeroFraction: hotZero * incomingZero, oneFraction: incomingOne, feature: split)
        shap(node: cold, row: row, phi: phi, path: path, depth: depth + 1,
             zeroFraction: coldZero * incomingZero, oneFraction: 0, feature: split)
    }

    @inline(__always)
    private func extend(_ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ zero: Double, _ one: Double, _ feature: Int) {
        path[depth] = PathElement(feature: feature, zeroFraction: zero, oneFraction: one, weight: depth == 0 ? 1 : 0)
        let d1 = Double(depth + 1)
        var i = depth - 1
        while i >= 0 {
            path[i + 1].weight += one * path[i].weight * Double(i + 1) / d1
            path[i].weight = zero * path[i].weight * Double(depth - i) / d1
            i -= 1
        }
    }

    @inline(__always)
    private func unwind(_ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ index: Int) {
        let one = path[index].oneFraction
        let zero = path[index].zeroFraction
        var nextOne = path[depth].weight
        let d1 = Double(depth + 1)
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let tmp = path[i].weight
                path[i].weight = nextOne * d1 / (Double(i + 1) * one)
                nextOne = tmp - path[i].weight * zero * Double(depth - i) / d1
            } else {
                path[i].weight = path[i].weight * d1 / (zero * Double(depth - i))
            }
            i -= 1
        }
        for j in index..<depth {
            path[j].feature = path[j + 1].feature
            path[j].zeroFraction = path[j + 1].zeroFraction
            path[j].oneFraction = path[j + 1].oneFraction
        }
    }

    @inline(__always)
    private func unwoundSum(_ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ index: Int) -> Double {
        let one = path[index].oneFraction
        let zero = path[index].zeroFraction
        var nextOne = path[depth].weight
        var total = 0.0
        let d1 = Double(depth + 1)
        var i = depth - 1
        while i >= 0 {
            if one != 0 {
                let tmp = nextOne * d1 / (Double(i + 1) * one)
                total += tmp
                nextOne = path[i].weight - tmp * zero * Double(depth - i) / d1
            } else if zero != 0 {
                total += path[i].weight / zero / (Double(depth - i) / d1)
            }
            i -= 1
        }
        return total
    }
}
