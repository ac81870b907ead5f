/// Exact path-dependent TreeSHAP in one walk per tree: O(nodes × q) per row with q = ⌈depth/2⌉
/// quadrature points, against O(leaves × depth²) for Lundberg's path recurrences.
///
/// The Shapley share a leaf l gives path element k (a feature, its splits on the path merged:
/// zero fraction z, one fraction o ∈ {0, 1}) is (o − z) · v_l · ∫₀¹ ∏_{j≠k} f_j(t) dt with
/// f_j(t) = z_j + (o_j − z_j)t (see `TreeExplainer.leafByQuadrature`). The integrand is a
/// polynomial of degree < depth, so q Gauss–Legendre points integrate it exactly, and each point
/// is one lane of a SIMD vector. Instead of evaluating that per leaf and element (Linear TreeSHAP,
/// Yu et al. 2022, organises the same sum by edges), the walk carries top-down the product
/// C(t) = w(t) ∏ f_j(t) of the elements above a node (w = the quadrature weights), returns
/// bottom-up H̃(t) = Σ_leaves v ∏ (edge multipliers below), and credits each edge with the leaves
/// whose deepest split on its feature it is:
///
///     E = C_parent / f_before          (the parent's product without this feature's element)
///     X = E · H̃_child − U              (U: what deeper splits on the same feature took over)
///     φ_feature += Σ_lanes (o − z) · X
///
/// A split on a feature already on the path changes that element's factor from f_before to f
/// (the one division, on about one edge in eight in the benchmark models); the deeper edge hands
/// its leaves' share E · H̃ · f / f_before up to the earlier edge's U. Every factor is positive
/// (positive covers, t strictly inside (0, 1)), so no step cancels or divides by a small
/// difference: the sums agree with the path recurrences to rounding.
///
/// Memory: one 32-byte `LinearShapNode` per node (children adjacent, in walk order); no
/// per-pattern tables, so nothing grows exponentially with depth and no cap is needed. A tree
/// deeper than `maximumDepth`, or with a cover that is not finite and positive, or whose path
/// products could leave the range of Double, is left to the recurrences (`walkable` is false).
struct LinearShapForest {
    /// The deepest tree walked here (16 quadrature lanes); deeper trees use the recurrences.
    static let maximumDepth = 32
    /// The product of a path's cover ratios below 1 (and the reciprocal of those above 1) must
    /// stay above this, so the lane products stay normal numbers: with 32 factors of at least
    /// (1 − t_max)·w_min ≈ 5e-3 · 1e-3, 1e-150 keeps them above 1e-300.
    static let smallestPathProduct = 1e-150

    /// Nodes of every walkable tree; a tree's root is at `roots[tree]`.
    let nodes: [LinearShapNode]
    /// Per tree: index of its root in `nodes`, or -1 when the tree is left to the recurrences.
    let roots: [Int]
    /// Per tree: the quadrature lanes it needs (2, 4, 8 or 16); 0 for a leaf-only or left-out tree.
    let lanes: [Int]
    /// Gauss–Legendre points for each lane count (as many points as lanes).
    let rule2 = LaneRule<SIMD2<Double>>()
    let rule4 = LaneRule<SIMD4<Double>>()
    let rule8 = LaneRule<SIMD8<Double>>()
    let rule16 = LaneRule<SIMD16<Double>>()

    /// - Parameters:
    ///   - model: a model that loads or compiles (trees validated).
    ///   - base: index of each tree's node 0 in the explainer's `ExplainNode` storage.
    init(_ model: TreeEnsemble, base: [Int]) {
        var nodes: [LinearShapNode] = []
        var roots: [Int] = []
        var lanes: [Int] = []
        for (t, tree) in model.trees.enumerated() {
            let depth = tree.depth
            guard depth > 0, depth <= Self.maximumDepth, Self.walkable(tree) else {
                roots.append(-1)
                lanes.append(0)
                continue
            }
            // q points integrate degree 2q − 1 ≥ depth − 1 exactly.
            let q = (depth + 1) / 2
            let width = q <= 2 ? 2 : q <= 4 ? 4 : q <= 8 ? 8 : 16
            roots.append(nodes.count)
            lanes.append(width)
            Self.append(tree, base: base[t], to: &nodes)
        }
        self.nodes = nodes
        self.roots = roots
        self.lanes = lanes
    }

    /// Whether every cover is finite and positive and every root-to-leaf product of cover ratios
    /// stays within [`smallestPathProduct`, 1/`smallestPathProduct`].
    static func walkable(_ tree: DecisionTree) -> Bool {
        for n in 0..<tree.nodeCount where !(tree.cover[n] > 0 && tree.cover[n].isFinite) { return false }
        var stack: [(node: Int, low: Double, high: Double)] = [(0, 1, 1)]
        while let (n, low, high) = stack.popLast() {
            if tree.isLeaf(n) { continue }
            for c in [Int(tree.left[n]), Int(tree.right[n])] {
                let r = tree.cover[c] / tree.cover[n]
                let l = low * min(1, r), h = high * max(1, r)
                guard l >= smallestPathProduct, h <= 1 / smallestPathProduct else { return false }
                stack.append((c, l, h))
            }
        }
        return true
    }

    /// Appends `tree` in walk order: each inner node's two children side by side, a subtree's
    /// pairs before its right sibling's.
    private static func append(_ tree: DecisionTree, base: Int, to nodes: inout [LinearShapNode]) {
        /// Per feature on the current path: its last split's child (index in `nodes`), that
        /// child's depth, and the element's merged zero fraction.
        var path: [(feature: Int32, node: Int, depth: Int, zero: Double)] = []
        nodes.append(LinearShapNode())
        fill(tree, 0, at: nodes.count - 1, depth: 0, base: base, path: &path, nodes: &nodes)
    }

    /// Fills `nodes[slot]` from node `n` of `tree` and appends its subtree (recursion depth ≤ `maximumDepth`).
    private static func fill(
        _ tree: DecisionTree, _ n: Int, at slot: Int, depth: Int, base: Int,
        path: inout [(feature: Int32, node: Int, depth: Int, zero: Double)], nodes: inout [LinearShapNode]
    ) {
        if tree.isLeaf(n) {
            nodes[slot].firstChild = -1
            nodes[slot].value = tree.leafValue[n]
            return
        }
        let feature = tree.feature[n]
        let first = nodes.count
        nodes.append(LinearShapNode())
        nodes.append(LinearShapNode())
        nodes[slot].firstChild = Int32(first)
        nodes[slot].feature = feature
        nodes[slot].missing = tree.missing[n]
        nodes[slot].defaultLeft = tree.defaultLeft[n]
        if tree.categorySet(n) != nil {
            nodes[slot].categorical = true
            nodes[slot].split = UInt32(base + n)
        } else {
            nodes[slot].split = tree.threshold[n].bitPattern
        }
        let earlier = path.lastIndex { $0.feature == feature }
        if let e = earlier {
            nodes[slot].previous = UInt8(path[e].depth)
            nodes[path[e].node].referenced = true
        }
        for (k, c) in [Int(tree.left[n]), Int(tree.right[n])].enumerated() {
            let ratio = tree.cover[c] / tree.cover[n]
            if let e = earlier {
                let saved = path[e]
                nodes[first + k].zero = saved.zero * ratio
                path[e] = (feature, first + k, depth + 1, saved.zero * ratio)
                fill(tree, c, at: first + k, depth: depth + 1, base: base, path: &path, nodes: &nodes)
                path[e] = saved
            } else {
                nodes[first + k].zero = ratio
                path.append((feature, first + k, depth + 1, ratio))
                fill(tree, c, at: first + k, depth: depth + 1, base: base, path: &path, nodes: &nodes)
                path.removeLast()
            }
        }
    }
}

/// A node as the linear walk reads it (32 bytes; the walk streams every node of every tree per row).
struct LinearShapNode {
    /// Index of the left child (the right one follows it), or -1 for a leaf.
    var firstChild: Int32 = -1
    var feature: Int32 = 0
    /// The threshold's bit pattern, or for a categorical split the index of its `ExplainNode`.
    var split: UInt32 = 0
    var missing = DecisionTree.MissingRule.nanDefault
    /// An inner node: the depth of the nearest ancestor that is the child of a split on this
    /// node's feature (0: none — the root is never a split's child); at most `maximumDepth`.
    var previous: UInt8 = 0
    /// Bit 0: missing values go left; bit 1: a categorical split; bit 2: `referenced`.
    private var flags: UInt8 = 0
    /// Zero fraction of the path element this node's incoming split ends: the product of the
    /// cover ratios of every split on that feature from the root down to this node.
    var zero: Double = 0
    /// A leaf's value.
    var value: Double = 0

    var defaultLeft: Bool {
        get { flags & 1 != 0 }
        set { flags = newValue ? flags | 1 : flags & ~1 }
    }
    var categorical: Bool {
        get { flags & 2 != 0 }
        set { flags = newValue ? flags | 2 : flags & ~2 }
    }
    /// Whether a split below this node is on the same feature as the split above it (so the walk
    /// must keep this depth's element for it).
    var referenced: Bool {
        get { flags & 4 != 0 }
        set { flags = newValue ? flags | 4 : flags & ~4 }
    }

    /// Whether `value` goes left, with the library's missing-value and category rules (as `ExplainNode.next`).
    @inline(__always)
    func goesLeft(_ value: Float, _ explainNodes: UnsafeMutablePointer<ExplainNode>) -> Bool {
        var x = value
        switch missing {
        case .nanDefault:
            if x.isNaN { return defaultLeft }
        case .nanAsZero:
            if x.isNaN { x = 0 }
        case .zeroDefault:
            if x.isNaN || (x >= -1e-35 && x <= 1e-35) { return defaultLeft }
        }
        if categorical {
            let node = explainNodes[Int(split)]
            return node.next(x) == Int(node.left)
        }
        return x < Float(bitPattern: split)
    }
}

/// Gauss–Legendre points on [0, 1], one per lane: the points, 1 − the points and the weights.
struct LaneRule<V: SIMD> where V.Scalar == Double {
    let t: V
    let oneMinusT: V
    let weights: V

    init() {
        let (s, w) = TreeExplainer.gaussLegendre(count: V.scalarCount)
        t = V(s)
        oneMinusT = V(s.map { 1 - $0 })
        weights = V(w)
    }
}
