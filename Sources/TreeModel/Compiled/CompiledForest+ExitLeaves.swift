import CTreeKernels

/// The leaf-bitvector walk (QuickScorer, Lucchese et al. 2015), for trees of at most 64 leaves.
///
/// Number a tree's leaves 0…63 from left to right. A row that goes right at a split cannot end in
/// any leaf of that split's left subtree; starting from all leaves and removing, for every split
/// the row goes right at, its left subtree's leaves, the lowest leaf left is the row's exit leaf —
/// whether or not the split lies on the row's path (a split off the path only removes leaves the
/// path already excluded or lying to its right). So instead of walking a path, every split of the
/// tree is evaluated for 16 rows per vector compare, with no dependent loads and no branch
/// (`cg_exit_leaves_avx512`; 8 rows per compare on AVX2, `cg_exit_leaves_avx2`). The exit leaf is
/// the lowest set bit.
/// Each row's set is kept as two 32-bit halves, 16 rows to a register: a split whose left subtree
/// lies within one half (all but the few around leaf 31/32) changes that half alone, so it costs
/// one compare and one AND per 16 rows.
///
/// A LightGBM tree of 63 leaves has 62 splits: 62 compares of 16 rows against the walk's 4–6
/// dependent steps per row (`docs/tree-engine.md` has the measurements). Results are the walk's,
/// to the bit: the same leaf for every row, added in the same order by the same sink.
final class ExitLeafTables: @unchecked Sendable {
    // @unchecked: written only in `init`, freed in `deinit`, read by any number of threads.

    /// Most leaves a tree may have to be walked this way (one bit each in a 64-bit word).
    static let maximumLeaves = 64
    /// Fewest rows of a block for which the walk is used: it costs as much for 1 row as for 16,
    /// where the portable walks cost per row (a 63-leaf tree: ~62 compares and ANDs for the 16
    /// lanes, against 4–6 dependent steps per row).
    static let minimumRows = 8

    /// Every tree's splits, tree after tree.
    let splits: UnsafeMutablePointer<cg_leaf_split>
    /// Per tree, where its splits start in `splits`, or −1 for a tree walked by the portable kernels.
    let first: UnsafeMutablePointer<Int32>
    /// Per tree, how many of its splits change only leaves 0–31, only leaves 32–63, or both
    /// halves (stored in that order from `first`).
    let low: UnsafeMutablePointer<Int32>
    let high: UnsafeMutablePointer<Int32>
    let both: UnsafeMutablePointer<Int32>
    /// Per tree, 64 layout slots: leaf k's, and the last leaf's repeated to the end.
    let leafSlots: UnsafeMutablePointer<UInt32>
    /// Per tree, 64 leaf values by leaf number in the model's accumulation type (the last leaf's
    /// value repeated to the end), for scoring's fused kernel: the values `CompiledForest` keeps
    /// per leaf slot (`leafDouble` / `leafFloat`), converted the same way.
    let valuesDouble: UnsafeMutablePointer<Double>?
    let valuesFloat: UnsafeMutablePointer<Float>?
    /// Trees walked this way.
    let trees: Int

    /// The instruction sets the walk has kernels for.
    enum Instructions: Sendable {
        /// 16 rows per compare, leaves gathered and added in vectors.
        case avx512
        /// 8 rows per compare (no mask registers: a compare, an AND and an AND-NOT), leaves added
        /// one row at a time.
        case avx2

        /// Rows per vector compare: the block size must be a multiple.
        var laneRows: Int { self == .avx512 ? 16 : 8 }
        /// As reports name it ("avx512", "avx2").
        var name: String { self == .avx512 ? "avx512" : "avx2" }
    }

    /// What this processor runs (checked once).
    static let hasAVX512: Bool = cg_tree_kernels_avx512() != 0
    static let hasAVX2: Bool = cg_tree_kernels_avx2() != 0
    /// The fastest kernels this processor runs, nil when it has neither.
    static let best: Instructions? = hasAVX512 ? .avx512 : hasAVX2 ? .avx2 : nil

    /// The kernels these tables are walked with.
    let instructions: Instructions

    /// Tables for the trees of `model` that have 2…64 leaves, walked with `instructions`, or nil
    /// when the block size is not a multiple of its rows per compare or no tree qualifies.
    /// - Parameters:
    ///   - roots: each tree's root slot in the compiled layout; `slotNode[slot]` the tree node there.
    ///   - viewOffset: the scratch offset of node `n`'s view in tree `t` (view index × block rows).
    init?(model: TreeEnsemble, instructions: Instructions, roots: UnsafeMutablePointer<UInt32>, slotCount: Int, slotNode: [Int32], blockRows: Int,
          viewOffset: (_ tree: Int, _ node: Int) -> Int) {
        guard blockRows % instructions.laneRows == 0, !model.trees.isEmpty else { return nil }
        let treeCount = model.trees.count
        // Which trees qualify, and how many splits they bring.
        var leaves = [[Int]](repeating: [], count: treeCount)
        var total = 0
        for (t, tree) in model.trees.enumerated() {
            let order = Self.leavesInOrder(tree)
            guard order.count >= 2, order.count <= Self.maximumLeaves else { continue }
            leaves[t] = order
            total += order.count - 1  // a binary tree has one split fewer than leaves
        }
        guard total > 0 else { return nil }
        self.instructions = instructions
        splits = .allocate(capacity: total)
        first = .allocate(capacity: treeCount)
        low = .allocate(capacity: treeCount)
        high = .allocate(capacity: treeCount)
        both = .allocate(capacity: treeCount)
        leafSlots = .allocate(capacity: treeCount * Self.maximumLeaves)
        leafSlots.initialize(repeating: 0, count: treeCount * Self.maximumLeaves)
        valuesDouble = model.accumulation == .float64 ? .allocate(capacity: treeCount * Self.maximumLeaves) : nil
        valuesDouble?.initialize(repeating: 0, count: treeCount * Self.maximumLeaves)
        valuesFloat = model.accumulation == .float32 ? .allocate(capacity: treeCount * Self.maximumLeaves) : nil
        valuesFloat?.initialize(repeating: 0, count: treeCount * Self.maximumLeaves)
        var next = 0, walked = 0
        for (t, tree) in model.trees.enumerated() {
            let order = leaves[t]
            guard !order.isEmpty else {
                first[t] = -1
                low[t] = 0
                high[t] = 0
                both[t] = 0
                continue
            }
            walked += 1
            // The tree's slots: from its root to the next tree's root.
            let start = Int(roots[t]), end = t + 1 < treeCount ? Int(roots[t + 1]) : slotCount
            var slotOf = [Int](repeating: -1, count: tree.nodeCount)
            for slot in start..<end where slotNode[slot] >= 0 { slotOf[Int(slotNode[slot])] = slot }
            var bit = [Int](repeating: -1, count: tree.nodeCount)
            for (k, leaf) in order.enumerated() { bit[leaf] = k }
            for k in 0..<Self.maximumLeaves {
                let leaf = order[min(k, order.count - 1)]
                leafSlots[t * Self.maximumLeaves + k] = UInt32(slotOf[leaf])
                valuesDouble?[t * Self.maximumLeaves + k] = tree.leafValue[leaf]
                valuesFloat?[t * Self.maximumLeaves + k] = Float(tree.leafValue[leaf])
            }
            // Each split: the leaves of its left subtree are consecutive in the order. Grouped by
            // the halves of the set they change.
            var groups: [[cg_leaf_split]] = [[], [], []]
            for n in 0..<tree.nodeCount where !tree.isLeaf(n) {
                let (lo, hi) = Self.leafRange(tree, Int(tree.left[n]), bit)
                let width = hi - lo + 1  // ≤ 63: the right subtree has a leaf too
                let left = ((UInt64(1) << UInt64(width)) &- 1) << UInt64(lo)
                let split = cg_leaf_split(threshold: tree.threshold[n], offset: UInt32(viewOffset(t, n)), keep: ~left)
                groups[hi < 32 ? 0 : lo >= 32 ? 1 : 2].append(split)
            }
            first[t] = Int32(next)
            for group in groups {
                for split in group {
                    splits[next] = split
                    next += 1
                }
            }
            low[t] = Int32(groups[0].count)
            high[t] = Int32(groups[1].count)
            both[t] = Int32(groups[2].count)
        }
        trees = walked
    }

    deinit {
        splits.deallocate()
        first.deallocate()
        low.deallocate()
        high.deallocate()
        both.deallocate()
        leafSlots.deallocate()
        valuesDouble?.deallocate()
        valuesFloat?.deallocate()
    }

    /// The tree's leaves from left to right (empty when it has more than 64).
    private static func leavesInOrder(_ tree: DecisionTree) -> [Int] {
        var order: [Int] = []
        var stack = [0]
        while let n = stack.popLast() {
            if tree.isLeaf(n) {
                order.append(n)
                if order.count > maximumLeaves { return [] }
            } else {
                stack.append(Int(tree.right[n]))
                stack.append(Int(tree.left[n]))
            }
        }
        return order
    }

    /// The lowest and highest leaf numbers under `node`.
    private static func leafRange(_ tree: DecisionTree, _ node: Int, _ bit: [Int]) -> (Int, Int) {
        var lo = Int.max, hi = Int.min
        var stack = [node]
        while let n = stack.popLast() {
            if tree.isLeaf(n) {
                lo = min(lo, bit[n])
                hi = max(hi, bit[n])
            } else {
                stack.append(Int(tree.left[n]))
                stack.append(Int(tree.right[n]))
            }
        }
        return (lo, hi)
    }
}

extension CompiledForest {
    /// Tree `t` for the block's rows by the leaf-bitvector walk, each row's exit leaf handed to
    /// `sink`. `low` and `high` hold a block of rows each.
    @inline(__always)
    func walkExitLeaves<K: LeafSink>(_ e: ExitLeafTables, tree t: Int, _ x: UnsafeMutablePointer<Float>, rows: Int,
                                     low: UnsafeMutablePointer<UInt32>, high: UnsafeMutablePointer<UInt32>, into sink: K) {
        assert(rows <= blockRows, "a block holds at most \(blockRows) rows")
        if sink.addExitLeaves(e, tree: t, x, rows: rows) { return }
        let lanes = e.instructions.laneRows
        let chunks = (rows + lanes - 1) / lanes
        switch e.instructions {
        case .avx512: cg_exit_leaves_avx512(x, chunks, e.splits + Int(e.first[t]), Int(e.low[t]), Int(e.high[t]), Int(e.both[t]), low, high)
        case .avx2: cg_exit_leaves_avx2(x, chunks, e.splits + Int(e.first[t]), Int(e.low[t]), Int(e.high[t]), Int(e.both[t]), low, high)
        }
        let slots = e.leafSlots + t * ExitLeafTables.maximumLeaves
        @inline(__always) func leaf(_ r: Int) -> Int {
            Int(slots[(UInt64(low[r]) | UInt64(high[r]) << 32).trailingZeroBitCount & 63])
        }
        var r = 0
        while r &+ 8 <= rows {
            sink.add8(r, leaf(r), leaf(r &+ 1), leaf(r &+ 2), leaf(r &+ 3), leaf(r &+ 4), leaf(r &+ 5), leaf(r &+ 6), leaf(r &+ 7))
            r &+= 8
        }
        while r < rows {
            sink.add(r, leaf(r))
            r &+= 1
        }
    }
}

extension AccumulateLeaves {
    /// Scoring adds the leaf values in the fused kernel: the same additions, in the same order.
    @inline(__always)
    func addExitLeaves(_ e: ExitLeafTables, tree t: Int, _ x: UnsafeMutablePointer<Float>, rows: Int) -> Bool {
        let splits = e.splits + Int(e.first[t]), low = Int(e.low[t]), high = Int(e.high[t]), both = Int(e.both[t])
        let at = t * ExitLeafTables.maximumLeaves
        assert(rows <= 128, "the fused kernels take a block of at most 128 rows")
        if Leaf.self == Double.self, let values = e.valuesDouble {
            acc.withMemoryRebound(to: Double.self, capacity: rows) { a in
                switch e.instructions {
                case .avx512: cg_exit_leaves_add_f64(x, rows, splits, low, high, both, values + at, a)
                case .avx2: cg_exit_leaves_add_f64_avx2(x, rows, splits, low, high, both, values + at, a)
                }
            }
            return true
        } else if Leaf.self == Float.self, let values = e.valuesFloat {
            acc.withMemoryRebound(to: Float.self, capacity: rows) { a in
                switch e.instructions {
                case .avx512: cg_exit_leaves_add_f32(x, rows, splits, low, high, both, values + at, a)
                case .avx2: cg_exit_leaves_add_f32_avx2(x, rows, splits, low, high, both, values + at, a)
                }
            }
            return true
        }
        return false
    }
}
