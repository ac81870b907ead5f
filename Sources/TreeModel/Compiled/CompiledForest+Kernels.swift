/// The block kernels: every tree walked for every row of a block, leaves added in tree order.
///
/// Two walks, chosen per tree when the forest is compiled (`CompiledForest+WalkPlan.swift`):
/// - **full depth**: each row takes exactly the tree's depth in steps (leaves loop on
///   themselves), with no test and no branch. Best for balanced trees (XGBoost's depth-limited
///   ones), where nearly every row goes that deep anyway.
/// - **until leaves**: a group of rows steps until all of them stand on leaves, so the group pays
///   for its deepest row, not for the tree's deepest leaf. Each step adds a test of the group's
///   nodes (the node is loaded once for the test and the step) and each group ends on one
///   mispredicted branch. Best for unbalanced trees (LightGBM's leaf-wise ones: 63 leaves up to
///   depth 24, while most rows stop within 4 levels).
///
/// Both walk eight rows at a time so that eight independent chains of loads are in flight.
/// Where a walk's leaf goes is the sink's business (`LeafSink`): scoring adds its value to the
/// row's margin, `LeafAttribution` also adds the leaf's path attribution to the row's reasons.
extension CompiledForest {
    /// Hands each row's leaf of every tree to `sink`, trees in model order.
    @inline(__always)
    func accumulate<S: ForestStep, K: LeafSink>(_ s: S, _ x: UnsafeMutablePointer<Float>, rows: Int, into sink: K) {
        // A block of a few rows (a live query's) is walked: the leaf-bitvector walk evaluates every
        // split for 16 (AVX2: 8) rows at once whether 1 or 16 are there.
        guard let exitLeaves, rows >= ExitLeafTables.minimumRows else {
            for t in 0..<treeCount { walk(s, tree: t, x, rows: rows, into: sink) }
            return
        }
        assert(rows <= blockRows, "a block holds at most \(blockRows) rows")
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * blockRows) { words in
            guard let low = words.baseAddress else { return }
            let high = low + blockRows
            for t in 0..<treeCount {
                if exitLeaves.first[t] >= 0 {
                    walkExitLeaves(exitLeaves, tree: t, x, rows: rows, low: low, high: high, into: sink)
                } else {
                    walk(s, tree: t, x, rows: rows, into: sink)
                }
            }
        }
    }

    /// Tree `t` for the block's rows by the portable walk chosen for it.
    @inline(__always)
    func walk<S: ForestStep, K: LeafSink>(_ s: S, tree t: Int, _ x: UnsafeMutablePointer<Float>, rows: Int, into sink: K) {
        let root = Int(treeRoot[t])
        if treeUntilLeaves[t] {
            walkUntilLeaves(s, root: root, x, rows: rows, into: sink)
        } else {
            walkFullDepth(s, root: root, depth: Int(treeDepth[t]), x, rows: rows, into: sink)
        }
    }

    /// One tree, every row for `depth` steps.
    @inline(__always)
    func walkFullDepth<S: ForestStep, K: LeafSink>(_ s: S, root: Int, depth: Int, _ x: UnsafeMutablePointer<Float>, rows: Int, into sink: K) {
        var r = 0
        while r &+ 8 <= rows {
            var i0 = root, i1 = root, i2 = root, i3 = root, i4 = root, i5 = root, i6 = root, i7 = root
            let p = x + r
            for _ in 0..<depth {
                i0 = s.next(i0, p)
                i1 = s.next(i1, p + 1)
                i2 = s.next(i2, p + 2)
                i3 = s.next(i3, p + 3)
                i4 = s.next(i4, p + 4)
                i5 = s.next(i5, p + 5)
                i6 = s.next(i6, p + 6)
                i7 = s.next(i7, p + 7)
            }
            sink.add8(r, i0, i1, i2, i3, i4, i5, i6, i7)
            r &+= 8
        }
        while r < rows {
            var i = root
            for _ in 0..<depth {
                i = s.next(i, x + r)
            }
            sink.add(r, i)
            r &+= 1
        }
    }

    /// One tree, each group of eight rows until all eight are on leaves. Ends: every split's
    /// children lie after it (`delta` ≥ 1), so a walk reaches a leaf within the tree's depth.
    @inline(__always)
    func walkUntilLeaves<S: ForestStep, K: LeafSink>(_ s: S, root: Int, _ x: UnsafeMutablePointer<Float>, rows: Int, into sink: K) {
        let top = s.load(root)
        var r = 0
        while r &+ 8 <= rows {
            var i0 = root, i1 = root, i2 = root, i3 = root, i4 = root, i5 = root, i6 = root, i7 = root
            var n0 = top, n1 = top, n2 = top, n3 = top, n4 = top, n5 = top, n6 = top, n7 = top
            let p = x + r
            while (s.delta(n0) | s.delta(n1) | s.delta(n2) | s.delta(n3) | s.delta(n4) | s.delta(n5) | s.delta(n6) | s.delta(n7)) != 0 {
                i0 = s.next(i0, n0, p)
                i1 = s.next(i1, n1, p + 1)
                i2 = s.next(i2, n2, p + 2)
                i3 = s.next(i3, n3, p + 3)
                i4 = s.next(i4, n4, p + 4)
                i5 = s.next(i5, n5, p + 5)
                i6 = s.next(i6, n6, p + 6)
                i7 = s.next(i7, n7, p + 7)
                n0 = s.load(i0)
                n1 = s.load(i1)
                n2 = s.load(i2)
                n3 = s.load(i3)
                n4 = s.load(i4)
                n5 = s.load(i5)
                n6 = s.load(i6)
                n7 = s.load(i7)
            }
            sink.add8(r, i0, i1, i2, i3, i4, i5, i6, i7)
            r &+= 8
        }
        while r < rows {
            var i = root
            var n = top
            while s.delta(n) != 0 {
                i = s.next(i, n, x + r)
                n = s.load(i)
            }
            sink.add(r, i)
            r &+= 1
        }
    }
}

/// What a block kernel does with the leaf each row's walk ended on (absolute node index).
protocol LeafSink {
    func add(_ row: Int, _ leaf: Int)
    /// Tree `t`'s exit leaves for the block's rows by a fused leaf-bitvector kernel of the sink's
    /// own, with the same results as `add` for each; false when the sink has none.
    func addExitLeaves(_ e: ExitLeafTables, tree t: Int, _ x: UnsafeMutablePointer<Float>, rows: Int) -> Bool
    /// The leaves of rows `row` to `row + 7`.
    func add8(_ row: Int, _ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int, _ i7: Int)
}

extension LeafSink {
    @inline(__always)
    func addExitLeaves(_ e: ExitLeafTables, tree t: Int, _ x: UnsafeMutablePointer<Float>, rows: Int) -> Bool { false }

    /// Eight rows one after the other (a sink with a faster way implements its own).
    @inline(__always)
    func add8(_ row: Int, _ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int, _ i7: Int) {
        add(row, i0)
        add(row &+ 1, i1)
        add(row &+ 2, i2)
        add(row &+ 3, i3)
        add(row &+ 4, i4)
        add(row &+ 5, i5)
        add(row &+ 6, i6)
        add(row &+ 7, i7)
    }
}

/// Scoring's sink: each leaf's value added to its row's accumulator.
struct AccumulateLeaves<Leaf: BinaryFloatingPoint>: LeafSink {
    let leaves: UnsafeMutablePointer<Leaf>
    let acc: UnsafeMutablePointer<Leaf>

    @inline(__always)
    func add(_ row: Int, _ leaf: Int) { acc[row] += leaves[leaf] }

    @inline(__always)
    func add8(_ row: Int, _ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int, _ i7: Int) {
        let a = acc + row
        a[0] += leaves[i0]
        a[1] += leaves[i1]
        a[2] += leaves[i2]
        a[3] += leaves[i3]
        a[4] += leaves[i4]
        a[5] += leaves[i5]
        a[6] += leaves[i6]
        a[7] += leaves[i7]
    }
}
