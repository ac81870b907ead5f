#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a subscriber got their score: per-feature contributions to the margin.
///
/// `exact` is path-dependent TreeSHAP (Lundberg et al. 2018), the algorithm behind XGBoost's
/// `predict(pred_contribs=True)` and LightGBM's `pred_contrib`; contributions plus the bias sum
/// to the margin, computed by one walk per tree (`LinearShapForest`) where the tree allows and by
/// Lundberg's path recurrences otherwise. `approximate` is the per-path attribution of XGBoost's `approx_contribs=True`
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
    /// Every tree's nodes, one after another; child indices are absolute.
    let nodes: UnsafeMutablePointer<ExplainNode>
    /// The category bitsets of every categorical split, one after another (`ExplainNode.categoryWords`).
    private let categoryWords: UnsafeMutablePointer<UInt32>
    let roots: [Int]
    let maxDepth: Int
    /// reciprocal[k] = 1/k for the path lengths TreeSHAP meets (k ≤ maxDepth + 2).
    private let reciprocal: UnsafeMutablePointer<Double>
    /// Gauss–Legendre nodes on [0, 1] and their weights, for trees deeper than
    /// `recurrenceDepthLimit` (empty otherwise); see `leafByQuadrature`.
    let quadratureNodes: [Double]
    private let quadratureWeights: [Double]
    /// The one-walk-per-tree layout exact TreeSHAP uses for the trees it accepts (see
    /// `LinearShapForest`); the others take the path recurrences or the quadrature above.
    let linear: LinearShapForest?

    /// The deepest tree for which exact TreeSHAP uses Lundberg's path recurrences (XGBoost's and
    /// LightGBM's own arithmetic). Their unwinding step divides by path fractions and loses about
    /// a digit every four levels of distinct features: measured on a chain with one feature per
    /// level, contributions summed to the margin within 1.5e-11 at depth 32, 1.4e-6 at 48, 0.1 at
    /// 64 and 1e285 at 1,024. Deeper models use Gauss–Legendre quadrature instead, which is exact
    /// to rounding at any depth.
    static let recurrenceDepthLimit = 32

    /// Prepares `model` for explanation (computes each node's expected value).
    ///
    /// `model` must be one that loads or compiles: trees that `CompiledForest` accepts, in
    /// particular no deeper than `ModelLimits.maximumTreeDepth`, which bounds exact TreeSHAP's
    /// recursion and its path buffer of (depth + 2)(depth + 3)/2 elements. The loaders refuse a
    /// deeper tree in a file, and `CompiledForest.init` one built in memory.
    public convenience init(_ model: TreeEnsemble) {
        self.init(model, quadrature: false, linear: true)
    }

    /// `quadrature: true` uses per-leaf quadrature at any depth and `linear: false` keeps every
    /// tree on the per-leaf algorithms (for tests comparing the methods).
    init(_ model: TreeEnsemble, quadrature: Bool = false, linear: Bool = false) {
        self.model = model
        self.maxDepth = model.maxDepth
        if quadrature || maxDepth > Self.recurrenceDepthLimit {
            // The integrand at a leaf is a polynomial of degree < maxDepth; n points are exact to 2n - 1.
            (quadratureNodes, quadratureWeights) = Self.gaussLegendre(count: maxDepth / 2 + 1)
        } else {
            (quadratureNodes, quadratureWeights) = ([], [])
        }
        nodes = .allocate(capacity: max(1, model.nodeCount))
        reciprocal = .allocate(capacity: model.maxDepth + 3)
        reciprocal[0] = 0
        for k in 1..<(model.maxDepth + 3) { reciprocal[k] = 1 / Double(k) }
        var wordCount = 0
        for tree in model.trees {
            for n in 0..<tree.nodeCount where !tree.isLeaf(n) { wordCount += tree.categorySet(n)?.words.count ?? 0 }
        }
        categoryWords = .allocate(capacity: max(1, wordCount))
        var roots: [Int] = []
        var base = 0
        var nextWord = 0
        for tree in model.trees {
            roots.append(base)
            let mean = Self.expectedValues(tree)
            for n in 0..<tree.nodeCount {
                let leaf = tree.isLeaf(n)
                var node = ExplainNode(
                    left: leaf ? -1 : Int32(base) + tree.left[n], right: leaf ? -1 : Int32(base) + tree.right[n],
                    feature: tree.feature[n], threshold: tree.threshold[n],
                    defaultLeft: tree.defaultLeft[n], missing: tree.missing[n],
                    value: tree.leafValue[n], cover: tree.cover[n], mean: mean[n])
                if !leaf, let set = tree.categorySet(n) {
                    (categoryWords + nextWord).initialize(from: set.words, count: set.words.count)
                    node.categoryWords = categoryWords + nextWord
                    node.categoryWordCount = Int32(set.words.count)
                    node.isCategorical = true
                    node.inSetGoesLeft = set.inSetGoesLeft
                    node.reading = set.reading
                    nextWord += set.words.count
                }
                (nodes + base + n).initialize(to: node)
            }
            base += tree.nodeCount
        }
        self.roots = roots
        self.linear = linear && !quadrature ? LinearShapForest(model, base: roots) : nil
    }

    deinit {
        nodes.deinitialize(count: model.nodeCount)
        nodes.deallocate()
        categoryWords.deallocate()
        reciprocal.deallocate()
    }

    /// Each node's expected value: the cover-weighted mean of the leaves below it.
    static func expectedValues(_ tree: DecisionTree) -> [Double] {
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
        return mean
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
            for root in roots { pathAttribution(root, row, phi) }
        case .exact where linear != nil:
            guard let p = phi.baseAddress else { return }
            Self.withRowPointer(row) { exactByWalk(rows: $0, phis: p, count: 1) }
        case .exact where !quadratureNodes.isEmpty:
            let pathCapacity = (maxDepth + 2) * (maxDepth + 3) / 2
            withUnsafeTemporaryAllocation(of: PathElement.self, capacity: pathCapacity) { path in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: quadratureNodes.count) { scratch in
                    guard let path = path.baseAddress, let scratch = scratch.baseAddress else { return }
                    for root in roots {
                        phi[f] += nodes[root].mean
                        if nodes[root].left < 0 { continue }
                        shapByQuadrature(node: root, row: row, phi: phi, path: path, depth: 0,
                                         zeroFraction: 1, oneFraction: 1, feature: -1, scratch: scratch)
                    }
                }
            }
        case .exact:
            let pathCapacity = (maxDepth + 2) * (maxDepth + 3) / 2
            withUnsafeTemporaryAllocation(of: PathElement.self, capacity: pathCapacity) { path in
                for root in roots {
                    phi[f] += nodes[root].mean
                    if nodes[root].left < 0 { continue }
                    shap(node: root, row: row, phi: phi, path: path.baseAddress!, depth: 0,
                         zeroFraction: 1, oneFraction: 1, feature: -1)
                }
            }
        }
    }

    /// `contributions(row:into:method:)` for `count` rows at once: `rows` holds them one after
    /// another (`model.featureCount` values each) and `phis` receives theirs (`contributionCount`
    /// slots each). Both methods walk each tree for a block of rows before the next tree, which
    /// reads a large model's nodes from memory once per block instead of once per row.
    public func contributions(rows: UnsafeBufferPointer<Float>, count: Int, into phis: UnsafeMutableBufferPointer<Double>,
                              method: Method = .exact) {
        let f = model.featureCount, stride = contributionCount
        precondition(count >= 0 && rows.count >= count * f && phis.count >= count * stride)
        guard count > 0, let p = phis.baseAddress else { return }
        Self.withRowPointer(rows) { r in
            guard method == .approximate || linear != nil else {
                for i in 0..<count {
                    contributions(row: UnsafeBufferPointer(start: r + i * f, count: f),
                                  into: UnsafeMutableBufferPointer(start: p + i * stride, count: stride), method: method)
                }
                return
            }
            for i in 0..<count {
                for j in 0..<f { p[i * stride + j] = 0 }
                p[i * stride + f] = model.baseMargin
            }
            if method == .exact {
                exactByWalk(rows: r, phis: p, count: count)
                return
            }
            // Path attribution, tree by tree over blocks of rows (the same additions per row, in the same order).
            for first in Swift.stride(from: 0, to: count, by: Self.walkBlock) {
                let block = first..<min(count, first + Self.walkBlock)
                for root in roots {
                    for i in block {
                        pathAttribution(root, UnsafeBufferPointer(start: r + i * f, count: f), UnsafeMutableBufferPointer(start: p + i * stride, count: stride))
                    }
                }
            }
        }
    }

    /// Calls `body` with the rows' first value; a model without features has none (an empty
    /// buffer has no address), and gets a pointer to a scratch value it never reads.
    private static func withRowPointer(_ rows: UnsafeBufferPointer<Float>, _ body: (UnsafePointer<Float>) -> Void) {
        if let r = rows.baseAddress { return body(r) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 1) { scratch in
            guard let s = scratch.baseAddress else { return }
            s.initialize(to: .nan)
            body(UnsafePointer(s))
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
        best.reserveCapacity(min(max(0, k), names.count) + 1)
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

/// A node as TreeSHAP reads it: routing, leaf value, cover and expected value together.
struct ExplainNode {
    var left: Int32
    var right: Int32
    var feature: Int32
    var threshold: Float
    var defaultLeft: Bool
    var missing: DecisionTree.MissingRule
    var value: Double
    var cover: Double
    var mean: Double
    /// A categorical split's set, as in `CategorySet`: its words (in the explainer's storage),
    /// which side the set goes to and how a value becomes a category.
    var isCategorical = false
    var inSetGoesLeft = false
    var reading = CategorySet.Reading.xgboost
    var categoryWordCount: Int32 = 0
    var categoryWords: UnsafeMutablePointer<UInt32>? = nil

    var isLeaf: Bool { left < 0 }

    /// The child `x` leads to, with the library's missing-value and category rules (as `DecisionTree.next`).
    @inline(__always)
    func next(_ value: Float) -> Int {
        var x = value
        switch missing {
        case .nanDefault:
            if x.isNaN { return Int(defaultLeft ? left : right) }
        case .nanAsZero:
            if x.isNaN { x = 0 }
        case .zeroDefault:
            if x.isNaN || (x >= -1e-35 && x <= 1e-35) { return Int(defaultLeft ? left : right) }
        }
        if isCategorical {
            var inSet = false
            if let c = reading.category(of: x), c >> 5 < Int(categoryWordCount), let words = categoryWords {
                inSet = (words[c >> 5] >> UInt32(c & 31)) & 1 != 0
            }
            return Int(inSet == inSetGoesLeft ? left : right)
        }
        return Int(x < threshold ? left : right)
    }
}

extension TreeExplainer {
    /// XGBoost's approx_contribs: each split's feature gets the change in expected value along the path.
    private func pathAttribution(_ root: Int, _ row: UnsafeBufferPointer<Float>, _ phi: UnsafeMutableBufferPointer<Double>) {
        let f = phi.count - 1
        var n = root
        var value = nodes[n].mean
        phi[f] += value
        while !nodes[n].isLeaf {
            let feature = Int(nodes[n].feature)
            n = nodes[n].next(row[feature])
            let v = nodes[n].mean
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

        let me = nodes[node]
        if me.isLeaf {
            if depth > 0 {
                for i in 1...depth {
                    let w = unwoundSum(path, depth, i)
                    let e = path[i]
                    phi[e.feature] += w * (e.oneFraction - e.zeroFraction) * me.value
                }
            }
            return
        }
        let split = Int(me.feature)
        let hot = me.next(row[split])
        let cold = hot == Int(me.left) ? Int(me.right) : Int(me.left)
        let hotZero = me.cover > 0 ? nodes[hot].cover / me.cover : 0
        let coldZero = me.cover > 0 ? nodes[cold].cover / me.cover : 0
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

    /// Exact TreeSHAP for deep trees: the same walk as `shap`, keeping each path element's feature
    /// and fractions (a feature met again is merged into one element) but no weights.
    func shapByQuadrature(
        node: Int, row: UnsafeBufferPointer<Float>, phi: UnsafeMutableBufferPointer<Double>,
        path parent: UnsafeMutablePointer<PathElement>, depth: Int,
        zeroFraction: Double, oneFraction: Double, feature: Int, scratch: UnsafeMutablePointer<Double>
    ) {
        let path = parent + depth
        if depth > 0 { path.update(from: parent, count: depth) }
        var depth = depth
        path[depth] = PathElement(feature: feature, zeroFraction: zeroFraction, oneFraction: oneFraction, weight: 0)

        let me = nodes[node]
        if me.isLeaf {
            if depth > 0 { leafByQuadrature(path, depth, me.value, phi, scratch) }
            return
        }
        let split = Int(me.feature)
        let hot = me.next(row[split])
        let cold = hot == Int(me.left) ? Int(me.right) : Int(me.left)
        let hotZero = me.cover > 0 ? nodes[hot].cover / me.cover : 0
        let coldZero = me.cover > 0 ? nodes[cold].cover / me.cover : 0
        var incomingZero = 1.0
        var incomingOne = 1.0
        var k = 0
        while k <= depth && path[k].feature != split { k += 1 }
        if k <= depth {
            incomingZero = path[k].zeroFraction
            incomingOne = path[k].oneFraction
            for j in k..<depth { path[j] = path[j + 1] }
            depth -= 1
        }
        shapByQuadrature(node: hot, row: row, phi: phi, path: path, depth: depth + 1,
                         zeroFraction: hotZero * incomingZero, oneFraction: incomingOne, feature: split, scratch: scratch)
        shapByQuadrature(node: cold, row: row, phi: phi, path: path, depth: depth + 1,
                         zeroFraction: coldZero * incomingZero, oneFraction: 0, feature: split, scratch: scratch)
    }

    /// A leaf's share for each path element k = 1…depth (0 is the root's placeholder):
    /// (o_k − z_k) · value · Σ over subsets S of the other elements of |S|!(d−|S|)!/(d+1)! ∏_S o ∏_rest z,
    /// which is (o_k − z_k) · value · ∫₀¹ ∏_{j≠k} (z_j + (o_j − z_j) s) ds since ∫₀¹ sᵃ(1−s)ᵇ ds = a!b!/(a+b+1)!.
    /// The integrand is a polynomial of degree depth − 1 with no negative factor for fractions in
    /// [0, 1], so Gauss–Legendre quadrature with enough points is exact up to rounding and stable.
    private func leafByQuadrature(
        _ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ value: Double,
        _ phi: UnsafeMutableBufferPointer<Double>, _ scratch: UnsafeMutablePointer<Double>
    ) {
        let n = quadratureNodes.count
        quadratureNodes.withUnsafeBufferPointer { s in
            quadratureWeights.withUnsafeBufferPointer { w in
                // scratch[q] = w_q · ∏_j f_j(s_q): every element's factor, divided out again below.
                for q in 0..<n {
                    var p = w[q]
                    for j in 1...depth {
                        let e = path[j]
                        p *= e.zeroFraction + (e.oneFraction - e.zeroFraction) * s[q]
                    }
                    scratch[q] = p
                }
                for k in 1...depth {
                    let z = path[k].zeroFraction
                    let d = path[k].oneFraction - z
                    if d == 0 { continue }
                    var total = 0.0
                    // Gauss nodes lie strictly inside (0, 1), where f_k(s) = z + d·s is 0 only when
                    // z = d = 0, skipped above (a hostile negative cover may still make it 0: IEEE, no trap).
                    for q in 0..<n { total += scratch[q] / (z + d * s[q]) }
                    phi[path[k].feature] += d * total * value
                }
            }
        }
    }

    /// Gauss–Legendre nodes and weights for ∫₀¹ (Newton's method on the Legendre polynomial, as in
    /// Numerical Recipes' `gauleg`).
    static func gaussLegendre(count n: Int) -> (nodes: [Double], weights: [Double]) {
        var nodes = [Double](repeating: 0, count: n)
        var weights = [Double](repeating: 0, count: n)
        let m = (n + 1) / 2
        for i in 0..<m {
            var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
            var derivative = 0.0
            for _ in 0..<100 {
                var p0 = 1.0, p1 = 0.0
                for j in 1...n {
                    let p2 = p1
                    p1 = p0
                    p0 = ((2 * Double(j) - 1) * x * p1 - (Double(j) - 1) * p2) / Double(j)
                }
                derivative = Double(n) * (x * p0 - p1) / (x * x - 1)
                let dx = p0 / derivative
                x -= dx
                if abs(dx) < 1e-15 { break }
            }
            let w = 2 / ((1 - x * x) * derivative * derivative)
            // Map [-1, 1] to [0, 1]: s = (1 ± x)/2, weight w/2.
            nodes[i] = (1 - x) / 2
            nodes[n - 1 - i] = (1 + x) / 2
            weights[i] = w / 2
            weights[n - 1 - i] = w / 2
        }
        return (nodes, weights)
    }

    // The path arithmetic below is Lundberg's, with every division by a small integer turned
    // into a multiplication by `reciprocal[k]` = 1/k and the test on the path fraction hoisted
    // out of the loops: the divisions were most of TreeSHAP's time.

    @inline(__always)
    private func extend(_ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ zero: Double, _ one: Double, _ feature: Int) {
        path[depth] = PathElement(feature: feature, zeroFraction: zero, oneFraction: one, weight: depth == 0 ? 1 : 0)
        let inv = reciprocal[depth + 1]
        let oneScaled = one * inv, zeroScaled = zero * inv
        var i = depth - 1
        while i >= 0 {
            path[i + 1].weight += oneScaled * path[i].weight * Double(i + 1)
            path[i].weight = zeroScaled * path[i].weight * Double(depth - i)
            i -= 1
        }
    }

    @inline(__always)
    private func unwind(_ path: UnsafeMutablePointer<PathElement>, _ depth: Int, _ index: Int) {
        let one = path[index].oneFraction
        let zero = path[index].zeroFraction
        let d1 = Double(depth + 1)
        let inv = reciprocal[depth + 1]
        var i = depth - 1
        if one != 0 {
            let scale = d1 / one
            var nextOne = path[depth].weight
            while i >= 0 {
                let tmp = path[i].weight
                path[i].weight = nextOne * scale * reciprocal[i + 1]
                nextOne = tmp - path[i].weight * zero * Double(depth - i) * inv
                i -= 1
            }
        } else {
            let scale = d1 / zero
            while i >= 0 {
                path[i].weight = path[i].weight * scale * reciprocal[depth - i]
                i -= 1
            }
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
        let d1 = Double(depth + 1)
        var total = 0.0
        var i = depth - 1
        if one != 0 {
            let scale = d1 / one
            let zeroScaled = zero * reciprocal[depth + 1]
            var nextOne = path[depth].weight
            while i >= 0 {
                let tmp = nextOne * scale * reciprocal[i + 1]
                total += tmp
                nextOne = path[i].weight - tmp * zeroScaled * Double(depth - i)
                i -= 1
            }
        } else if zero != 0 {
            let scale = d1 / zero
            while i >= 0 {
                total += path[i].weight * scale * reciprocal[depth - i]
                i -= 1
            }
        }
        return total
    }
}
