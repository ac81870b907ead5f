#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which block walk each tree gets (`CompiledForest+Kernels.swift`), decided from the training
/// cover when the forest is compiled.
///
/// A group of `groupRows` rows walked until all stand on leaves costs about as many steps as the
/// deepest of them needs, plus a test per step and one mispredicted exit per group; walked for
/// the tree's full depth it costs exactly the depth, with neither. Taking each row's leaf as an
/// independent draw weighted by the leaves' cover, the expected deepest of the group is
/// Σ_{d < depth} (1 − F(d)^groupRows), F(d) the share of cover in leaves at depth ≤ d. A tree is
/// walked until leaves when that, with the test's and the exit's costs (`stepOverhead`,
/// `exitSteps`, measured on the 300×63 LightGBM benchmark model), is below its depth.
/// Balanced trees (every XGBoost depth-limited tree of the benchmark: expected deepest = depth)
/// keep the branch-free full-depth walk. A tree without usable cover (all zero, or not finite)
/// keeps it too: the choice only affects speed, never the result.
extension CompiledForest {
    /// Rows walked together by the block kernels.
    static let groupRows = 8
    /// Cost of a step with the leaf test, in full-depth steps.
    static let stepOverhead = 1.2
    /// Cost of a group's mispredicted exit, in full-depth steps.
    static let exitSteps = 1.5

    /// Whether `tree` is better walked until leaves than for its full depth.
    static func walksUntilLeaves(_ tree: DecisionTree) -> Bool {
        let depth = tree.depth
        guard depth > 1 else { return false }
        // Cover of the leaves at each depth.
        var coverAt = [Double](repeating: 0, count: depth + 1)
        var stack: [(node: Int, depth: Int)] = [(0, 0)]
        while let (n, d) = stack.popLast() {
            if tree.isLeaf(n) {
                let c = n < tree.cover.count ? tree.cover[n] : 0
                guard c.isFinite, c >= 0 else { return false }
                coverAt[d] += c
            } else {
                stack.append((Int(tree.left[n]), d + 1))
                stack.append((Int(tree.right[n]), d + 1))
            }
        }
        let total = coverAt.reduce(0, +)
        guard total > 0, total.isFinite else { return false }
        var below = 0.0
        var expectedDeepest = 0.0
        for d in 0..<depth {
            below += coverAt[d]
            expectedDeepest += 1 - pow(min(1, below / total), Double(groupRows))
        }
        return expectedDeepest * stepOverhead + exitSteps < Double(depth)
    }
}
