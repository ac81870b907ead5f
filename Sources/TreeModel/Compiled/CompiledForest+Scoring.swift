import Dispatch
import Synchronization

/// Column-major input for block scoring: `columns[j]` points at `rowCount` values of model
/// feature j (the way a shard stores profiles). NaN means missing.
public struct FeatureColumns: @unchecked Sendable {
    // @unchecked: the pointers are only read; the caller keeps the memory alive and unchanged
    // for the duration of the scoring call, as documented on the scoring methods.

    /// One pointer per model feature, in model order.
    public var columns: [UnsafePointer<Float>]
    /// Number of rows every column holds.
    public var rowCount: Int

    /// Wraps column pointers; each must hold at least `rowCount` values.
    public init(columns: [UnsafePointer<Float>], rowCount: Int) {
        self.columns = columns
        self.rowCount = rowCount
    }
}

extension CompiledForest {
    /// Scores every row of `input`, writing margins (and, when given, the model's output such
    /// as probabilities) for rows `0..<input.rowCount`.
    ///
    /// Allocates only per-thread scratch (one block buffer per thread), never per row.
    /// - Parameters:
    ///   - input: one column per model feature; must stay alive and unchanged during the call.
    ///   - margins: receives `input.rowCount` raw margins.
    ///   - outputs: optionally receives `transform(margin:)` of each margin.
    ///   - threads: worker threads to use (1 scores on the calling thread).
    /// - Throws: `ModelError` with code `invalidInput` if the column count differs from the model's.
    public func score(
        _ input: FeatureColumns,
        margins: UnsafeMutablePointer<Double>,
        outputs: UnsafeMutablePointer<Double>? = nil,
        threads: Int = 1
    ) throws(ModelError) {
        guard input.columns.count == featureCount else {
            throw ModelError(.invalidInput, file: "<input>",
                             "got \(input.columns.count) feature columns; the model reads \(featureCount)")
        }
        let rows = input.rowCount
        guard rows > 0 else { return }
        let blocks = (rows + blockRows - 1) / blockRows
        let workers = max(1, min(threads, blocks))
        if workers == 1 {
            scoreBlocks(input, 0..<blocks, margins: margins, outputs: outputs)
            return
        }
        // Blocks are handed out in chunks from a shared counter so that a slow thread
        // (or a busy core) does not hold the others up at the end.
        let cursor = Atomic<Int>(0)
        let chunk = max(1, min(64, blocks / (workers * 8)))
        let out = SendablePointers(margins: margins, outputs: outputs)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let first = cursor.wrappingAdd(chunk, ordering: .relaxed).oldValue
                if first >= blocks { break }
                scoreBlocks(input, first..<min(blocks, first + chunk), margins: out.margins, outputs: out.outputs)
            }
        }
    }

    /// Scores rows given as arrays, one array per feature column. Convenience for tests and tools.
    public func score(columns: [[Float]], threads: Int = 1) throws(ModelError) -> (margins: [Double], outputs: [Double]) {
        let rows = columns.first?.count ?? 0
        for (j, c) in columns.enumerated() where c.count != rows {
            throw ModelError(.invalidInput, file: "<input>", "column \(j) has \(c.count) rows, column 0 has \(rows)")
        }
        var margins = [Double](repeating: 0, count: rows)
        var outputs = [Double](repeating: 0, count: rows)
        var pointers: [UnsafePointer<Float>] = []
        for c in columns {
            // Arrays of columns are kept alive by `columns` for the whole call.
            pointers.append(c.withUnsafeBufferPointer { $0.baseAddress ?? UnsafePointer(bitPattern: 8)! })
        }
        let input = FeatureColumns(columns: pointers, rowCount: rows)
        try withExtendedLifetime(columns) { () throws(ModelError) in
            try margins.withUnsafeMutableBufferPointer { m throws(ModelError) in
                try outputs.withUnsafeMutableBufferPointer { o throws(ModelError) in
                    try score(input, margins: m.baseAddress!, outputs: o.baseAddress!, threads: threads)
                }
            }
        }
        return (margins, outputs)
    }

    /// Margin of one row (`row[j]` = feature j, NaN = missing) with no batching overhead and no
    /// heap allocation.
    /// - Precondition: `row.count == featureCount`.
    public func margin(row: UnsafeBufferPointer<Float>) -> Double {
        precondition(row.count >= featureCount, "row has \(row.count) values; the model reads \(featureCount)")
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: scratchFloats) { scratch in
            let buf = scratch.baseAddress!
            for (v, view) in views.enumerated() {
                buf[v * blockRows] = Self.viewValue(row[view.feature], view.kind)
            }
            if let mixedNodes, let categoryWords {
                return walkAll(MixedStep(nodes: mixedNodes, words: categoryWords), buf)
            } else if let nodes {
                return walkAll(NumericStep(nodes: nodes), buf)
            }
            return 0
        }
    }

    /// The single-row walk over every tree, in the model's accumulation type.
    @inline(__always)
    private func walkAll<S: ForestStep>(_ s: S, _ buf: UnsafeMutablePointer<Float>) -> Double {
        if let leaves = leafFloat {
            return Double(walkAll(s, buf, leaves, start: Float(model.baseMargin)))
        } else if let leaves = leafDouble {
            return walkAll(s, buf, leaves, start: 0.0)
        }
        return 0
    }

    /// Margin of one row given as an array. Convenience for tools.
    public func margin(row: [Float]) -> Double {
        row.withUnsafeBufferPointer { margin(row: $0) }
    }

    // MARK: Kernels

    @inline(__always)
    static func viewValue(_ x: Float, _ kind: ViewKind) -> Float {
        switch kind {
        case .nanHigh: return x.isNaN ? .infinity : x
        case .nanLow: return x.isNaN ? -.infinity : x
        case .nanZero: return x.isNaN ? 0 : x
        case .zeroHigh: return (x.isNaN || (x >= -1e-35 && x <= 1e-35)) ? .infinity : x
        case .zeroLow: return (x.isNaN || (x >= -1e-35 && x <= 1e-35)) ? -.infinity : x
        case .categoryXGBoost: return categoryCode(x, .xgboost)
        case .categoryLightGBM: return categoryCode(x, .lightgbm)
        }
    }

    /// One step down a tree: the left child, plus one when the value is at or above the threshold.
    /// Written with a bit cast so the compiler emits a flag-to-register move, never a branch
    /// (the outcome is data dependent and would be mispredicted half the time).
    @inline(__always)
    static func step(_ i: Int, _ n: Node, _ x: Float) -> Int {
        i &+ Int(n.delta) &+ Int(unsafeBitCast(x >= n.threshold, to: UInt8.self))
    }

    /// Sum of all trees for the single row at offset 0 of `buf`, in tree order.
    @inline(__always)
    private func walkAll<S: ForestStep, Leaf: BinaryFloatingPoint>(_ s: S, _ buf: UnsafeMutablePointer<Float>, _ leaves: UnsafeMutablePointer<Leaf>, start: Leaf) -> Leaf {
        var acc = start
        var t = 0
        // Four trees at a time, walked to the deepest one's depth (a leaf loops on itself),
        // so that four independent chains of loads are in flight; leaves are added in tree order.
        while t &+ 4 <= treeCount {
            var i0 = Int(treeRoot[t]), i1 = Int(treeRoot[t &+ 1]), i2 = Int(treeRoot[t &+ 2]), i3 = Int(treeRoot[t &+ 3])
            if treeUntilLeaves[t] || treeUntilLeaves[t &+ 1] || treeUntilLeaves[t &+ 2] || treeUntilLeaves[t &+ 3] {
                // Unbalanced trees: until the four walks stand on leaves (see CompiledForest+Kernels.swift).
                var n0 = s.load(i0), n1 = s.load(i1), n2 = s.load(i2), n3 = s.load(i3)
                while (s.delta(n0) | s.delta(n1) | s.delta(n2) | s.delta(n3)) != 0 {
                    i0 = s.next(i0, n0, buf)
                    i1 = s.next(i1, n1, buf)
                    i2 = s.next(i2, n2, buf)
                    i3 = s.next(i3, n3, buf)
                    n0 = s.load(i0)
                    n1 = s.load(i1)
                    n2 = s.load(i2)
                    n3 = s.load(i3)
                }
            } else {
                let depth = max(max(treeDepth[t], treeDepth[t &+ 1]), max(treeDepth[t &+ 2], treeDepth[t &+ 3]))
                for _ in 0..<Int(depth) {
                    i0 = s.next(i0, buf)
                    i1 = s.next(i1, buf)
                    i2 = s.next(i2, buf)
                    i3 = s.next(i3, buf)
                }
            }
            acc += leaves[i0]
            acc += leaves[i1]
            acc += leaves[i2]
            acc += leaves[i3]
            t &+= 4
        }
        while t < treeCount {
            var i = Int(treeRoot[t])
            if treeUntilLeaves[t] {
                var n = s.load(i)
                while s.delta(n) != 0 {
                    i = s.next(i, n, buf)
                    n = s.load(i)
                }
            } else {
                for _ in 0..<Int(treeDepth[t]) {
                    i = s.next(i, buf)
                }
            }
            acc += leaves[i]
            t &+= 1
        }
        return acc
    }

    /// Scores blocks `range` of `input` on the calling thread, with one scratch buffer.
    private func scoreBlocks(_ input: FeatureColumns, _ range: Range<Int>, margins: UnsafeMutablePointer<Double>, outputs: UnsafeMutablePointer<Double>?) {
        let b = blockRows
        let objective = model.objective
        let baseMargin = model.baseMargin
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchFloats)
        // Zeroed once: the vector kernels read a part-filled block's lanes up to a multiple of 16
        // rows (and discard them), so nothing reads memory that was never written.
        scratch.initialize(repeating: 0, count: scratchFloats)
        defer { scratch.deallocate() }
        let accF = UnsafeMutablePointer<Float>.allocate(capacity: b)
        defer { accF.deallocate() }
        let accD = UnsafeMutablePointer<Double>.allocate(capacity: b)
        defer { accD.deallocate() }
        for block in range {
            let first = block * b
            let rows = min(b, input.rowCount - first)
            fillViews(input, first: first, rows: rows, into: scratch)
            if let leaves = leafFloat {
                accF.update(repeating: Float(baseMargin), count: rows)
                accumulate(scratch, rows: rows, leaves: leaves, acc: accF)
                for r in 0..<rows { margins[first + r] = Double(accF[r]) }
            } else if let leaves = leafDouble {
                accD.update(repeating: 0, count: rows)
                accumulate(scratch, rows: rows, leaves: leaves, acc: accD)
                for r in 0..<rows { margins[first + r] = accD[r] }
            }
            if let outputs {
                for r in first..<(first + rows) { outputs[r] = objective.transform(margin: margins[r]) }
            }
        }
    }

    /// Transposes the block's rows of every needed feature into the scratch views.
    @inline(__always)
    func fillViews(_ input: FeatureColumns, first: Int, rows: Int, into scratch: UnsafeMutablePointer<Float>) {
        let b = blockRows
        for (v, view) in views.enumerated() {
            let src = input.columns[view.feature] + first
            let dst = scratch + v * b
            switch view.kind {
            case .nanHigh: for r in 0..<rows { let x = src[r]; dst[r] = x.isNaN ? .infinity : x }
            case .nanLow: for r in 0..<rows { let x = src[r]; dst[r] = x.isNaN ? -.infinity : x }
            case .categoryXGBoost: for r in 0..<rows { dst[r] = Self.categoryCode(src[r], .xgboost) }
            case .categoryLightGBM: for r in 0..<rows { dst[r] = Self.categoryCode(src[r], .lightgbm) }
            default: for r in 0..<rows { dst[r] = Self.viewValue(src[r], view.kind) }
            }
        }
    }

    /// Adds every tree's leaf to `acc[r]` for the block's rows, trees in model order.
    @inline(__always)
    private func accumulate<Leaf: BinaryFloatingPoint>(_ x: UnsafeMutablePointer<Float>, rows: Int, leaves: UnsafeMutablePointer<Leaf>, acc: UnsafeMutablePointer<Leaf>) {
        walkBlock(x, rows: rows, into: AccumulateLeaves(leaves: leaves, acc: acc))
    }

    /// Walks every tree for the block's rows, trees in model order, through whichever node
    /// layout the model was compiled to, handing each row's leaf to `sink` (kernels:
    /// `CompiledForest+Kernels.swift`).
    @inline(__always)
    func walkBlock<K: LeafSink>(_ x: UnsafeMutablePointer<Float>, rows: Int, into sink: K) {
        if let mixedNodes, let categoryWords {
            accumulate(MixedStep(nodes: mixedNodes, words: categoryWords), x, rows: rows, into: sink)
        } else if let nodes {
            accumulate(NumericStep(nodes: nodes), x, rows: rows, into: sink)
        }
    }
}

/// Output pointers handed to scoring threads; each thread writes disjoint rows.
private struct SendablePointers: @unchecked Sendable {
    // @unchecked: threads write disjoint index ranges (one block each), never the same element.
    var margins: UnsafeMutablePointer<Double>
    var outputs: UnsafeMutablePointer<Double>?
}
