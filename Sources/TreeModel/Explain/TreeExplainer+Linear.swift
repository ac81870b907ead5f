extension TreeExplainer {
    /// Exact TreeSHAP with one `LinearShapWalk` per tree the linear layout holds; the trees it
    /// left out (too deep, or covers it does not take) use the path recurrences or, deeper than
    /// `recurrenceDepthLimit`, the per-leaf quadrature. `phi` holds the base margin on entry.
    func exactByWalk(row: UnsafeBufferPointer<Float>, phi: UnsafeMutableBufferPointer<Double>) {
        guard let linear else { return }
        let f = model.featureCount
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
            func walk<V>(_ rule: LaneRule<V>) -> LinearShapWalk<V> {
                LinearShapWalk(nodes: linearNodes, explainNodes: nodes, row: row, phi: phi, t: rule.t,
                               oneMinusT: rule.oneMinusT, hot: hot, zero: zero,
                               taken: raw.bindMemory(to: V.self, capacity: slots))
            }
            for (t, root) in roots.enumerated() {
                phi[f] += nodes[root].mean
                if nodes[root].left < 0 { continue }
                let start = linear.roots[t]
                switch linear.lanes[t] {
                case 2: walk(linear.rule2).tree(root: start, weights: linear.rule2.weights)
                case 4: walk(linear.rule4).tree(root: start, weights: linear.rule4.weights)
                case 8: walk(linear.rule8).tree(root: start, weights: linear.rule8.weights)
                case 16: walk(linear.rule16).tree(root: start, weights: linear.rule16.weights)
                default:
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
