/// One row's walk of one tree for `LinearShapForest` (the formulas are documented there), with
/// one quadrature point per lane of `V`.
struct LinearShapWalk<V: SIMD> where V.Scalar == Double {
    let nodes: UnsafePointer<LinearShapNode>
    let explainNodes: UnsafeMutablePointer<ExplainNode>
    let row: UnsafeBufferPointer<Float>
    let phi: UnsafeMutableBufferPointer<Double>
    let t: V
    let oneMinusT: V
    /// Per depth k (the child of the k-th split on the current path): whether that element's
    /// one fraction is 1, its zero fraction, and what deeper splits on its feature took over.
    let hot: UnsafeMutablePointer<Bool>
    let zero: UnsafeMutablePointer<Double>
    let taken: UnsafeMutablePointer<V>

    /// Adds one tree's contributions (not its bias) to `phi`; `weights` starts the lane products.
    @inline(__always)
    func tree(root: Int, weights: V) {
        _ = inner(root, depth: 0, product: weights)
    }

    /// Walks inner node `n` at `depth` whose path product is `product`; returns H̃ of `n`.
    ///
    /// Both edges of a node split on its feature, so they share the earlier factor taken out
    /// (E = product / f_before) and credit the same feature; the hot edge keeps the element's one
    /// fraction (1 unless an earlier split on the feature went cold), the cold edge makes it 0.
    private func inner(_ n: Int, depth: Int, product: V) -> V {
        let node = nodes[n]
        let feature = Int(node.feature)
        let first = Int(node.firstChild)
        let left = node.goesLeft(row[feature], explainNodes)
        let hotNode = nodes[left ? first : first + 1]
        let coldNode = nodes[left ? first + 1 : first]
        let previous = Int(node.previous)
        var excluded = product
        var reciprocal = V(repeating: 1)
        var stillHot = true
        if previous != 0 {
            let zb = zero[previous]
            stillHot = hot[previous]
            reciprocal = 1 / (stillHot ? zb * oneMinusT + t : zb * oneMinusT)
            excluded = product * reciprocal
        }
        let zh = hotNode.zero, zc = coldNode.zero
        let hotFactor = stillHot ? zh * oneMinusT + t : zh * oneMinusT
        let coldFactor = zc * oneMinusT
        let hotCoefficient = stillHot ? 1 - zh : -zh
        // Credited: E·H̃ of each child less what deeper splits on the feature took over.
        var credited: V
        var below: V
        let childDepth = depth + 1
        if hotNode.firstChild < 0 {
            credited = hotCoefficient * hotNode.value * excluded
            below = hotNode.value * hotFactor
        } else {
            let h = descend(hotNode, at: left ? first : first + 1, depth: childDepth, isHot: stillHot,
                            product: excluded * hotFactor)
            credited = hotCoefficient * (excluded * h.value - h.taken)
            below = hotFactor * h.value
        }
        if coldNode.firstChild < 0 {
            credited -= zc * coldNode.value * excluded
            below += coldNode.value * coldFactor
        } else {
            let c = descend(coldNode, at: left ? first + 1 : first, depth: childDepth, isHot: false,
                            product: excluded * coldFactor)
            credited -= zc * (excluded * c.value - c.taken)
            below += coldFactor * c.value
        }
        phi[feature] += credited.sum()
        if previous == 0 { return below }
        below *= reciprocal
        // The earlier split on this feature credits only the leaves this one does not.
        taken[previous] += excluded * below
        return below
    }

    /// Walks inner child `child` (index `c`, at `depth`); returns its H̃ and, when a deeper split
    /// is on the same feature as the one above it, what those splits took over.
    @inline(__always)
    private func descend(_ child: LinearShapNode, at c: Int, depth: Int, isHot: Bool, product: V) -> (value: V, taken: V) {
        guard child.referenced else { return (inner(c, depth: depth, product: product), V()) }
        hot[depth] = isHot
        zero[depth] = child.zero
        taken[depth] = V()
        let value = inner(c, depth: depth, product: product)
        return (value, taken[depth])
    }
}
