extension TreeExplainer {
    /// Rows walked together, tree by tree: a tree's nodes are read from memory once per block and
    /// stay in the first-level cache for its other rows (a 1000-tree depth-8 model's walk nodes,
    /// 9.6 MiB, do not fit the second level; one tree's, 16 KiB, fit the first).
    static let walkBlock = 128

    /// Exact TreeSHAP with one `LinearShapWalk` per tree the linear layout holds; the trees it
    /// left out (too deep, or covers it does not take) use the path recurrences or, deeper than
    /// `recurrenceDepthLimit`, the per-leaf quadrature. Each row's `phi` holds the base margin on entry.
    /// - Parameters:
    ///   - rows: `count` rows of `model.featureCount` values, one after another.
    ///   - phis: `count` runs of `contributionCount` slots, one after another.
    func exactByWalk(rows: UnsafePointer<Float>, phis: UnsafeMutablePointer<Double>, count: Int) {
        guard let linear else { return }
        let f = model.featureCount, stride = f + 1
        let slots = LinearShapForest.maximumDepth + 1
        let pathCapacity = (maxDepth + 2) * (maxDepth + 3) / 2
        withUnsafeTemporaryAllocation(of: PathElement.self, capacity: pathCapacity) { path in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: max(1, quadratureNodes.count)) { scratch in
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: slots) { hot in
        withUnsafeTemporaryAllocation(of: Double.self, capacity: slots) { zero in
        withUnsafeTemporaryAllocation(byteCount: slots * MemoryLayout<SIMD16<Double>>.stride,
                                      alignment: MemoryLayout<SIMD16<Double>>.alignment) { taken in
        linear.nodes.withUnsafeBufferPointer { linearNodes in
            guard let path = path.baseAddress, let scratch = scratch.baseAddress, let hot = hot.baseAddress,
                  let zero = zero.baseAddress, let raw = taken.baseAddress, let linearNodes = linearNodes.baseAddress
            else { return }
            func walk<V>(_ rule: LaneRule<V>, _ r: Int) -> LinearShapWalk<V> {
                LinearShapWalk(nodes: linearNodes, explainNodes: nodes, row: UnsafeBufferPointer(start: rows + r * f, count: f),
                               phi: UnsafeMutableBufferPointer(start: phis + r * stride, count: stride), t: rule.t,
                               oneMinusT: rule.oneMinusT, hot: hot, zero: zero,
                               taken: raw.bindMemory(to: V.self, capacity: slots))
            }
            for first in Swift.stride(from: 0, to: count, by: Self.walkBlock) {
                let block = first..<min(count, first + Self.walkBlock)
                for (t, root) in roots.enumerated() {
                    let mean = nodes[root].mean
                    for r in block { phis[r * stride + f] += mean }
                    if nodes[root].left < 0 { continue }
                    let start = linear.roots[t]
                    switch linear.lanes[t] {
                    case 2: for r in block { walk(linear.rule2, r).tree(root: start, weights: linear.rule2.weights) }
                    case 4: for r in block { walk(linear.rule4, r).tree(root: start, weights: linear.rule4.weights) }
                    case 8: for r in block { walk(linear.rule8, r).tree(root: start, weights: linear.rule8.weights) }
                    case 16: for r in block { walk(linear.rule16, r).tree(root: start, weights: linear.rule16.weights) }
                    default:
                        for r in block {
                            let row = UnsafeBufferPointer(start: rows + r * f, count: f)
                            let phi = UnsafeMutableBufferPointer(start: phis + r * stride, count: stride)
                            if quadratureNodes.isEmpty {
                                shap(node: root, row: row, phi: phi, path: path, depth: 0,
                                     zeroFraction: 1, oneFraction: 1, feature: -1)
                            } else {
                                shapByQuadrature(node: root, row: row, phi: phi, path: path, depth: 0,
                                                 zeroFraction: 1, oneFraction: 1, feature: -1, scratch: scratch)
                            }
                        }
                    }
                }
            }
        }
        }
        }
        }
        }
        }
    }
}
