/// Path attribution (XGBoost's `approx_contribs=True`, Saabas) tabulated per leaf of the compiled
/// layout, so that reasons cost the block kernels' walk plus a few additions per tree.
///
/// Path attribution gives each split on a row's path the change in expected value (the
/// cover-weighted mean of the leaves below, `TreeExplainer.expectedValues`) from the node to the
/// child the row takes, credited to the split's feature; the bias is the model's base margin plus
/// every tree's root mean. What a row gets from a tree depends only on the leaf it ends on, so each
/// leaf's sum, merged by feature, is computed once here. Scoring a block then walks every tree
/// once (the same kernels as `CompiledForest.score`, `CompiledForest+Kernels.swift`) and hands
/// each leaf to a sink that adds its value to the margin and its entries to the row's
/// contributions: margins equal `CompiledForest.score`'s bit for bit, contributions equal
/// `TreeExplainer`'s `.approximate` up to float rounding (they are summed in `Float`).
///
/// Memory: one 8-byte entry per (leaf, distinct feature on its path), at most leaves × depth;
/// with trees up to 8 deep every leaf is padded to the depth (300 trees of depth 6: 115,200
/// entries, 0.9 MB). `init` declines a model that would need
/// more than `maximumEntries`; callers then fall back to `TreeExplainer`.
public final class LeafAttribution: @unchecked Sendable {
    // @unchecked: the tables are written only in `init` and freed in `deinit`.

    struct Entry {
        var feature: UInt32
        var value: Float
    }

    /// The compiled model whose layout the tables follow.
    public let forest: CompiledForest
    /// Base margin plus every tree's expected value: what the contributions add up from.
    public let bias: Double
    /// For slot s, its entries are `entries[start[s]..<start[s + 1]]` (empty for inner nodes).
    let start: UnsafeMutablePointer<UInt32>
    let entries: UnsafeMutablePointer<Entry>
    let entryCount: Int
    /// When every tree is at most `fixedWidthLimit` deep: every leaf has exactly this many
    /// entries (padded with additions of 0 to a spare column), so the additions run a loop of a
    /// constant count the branch predictor learns, rather than one whose end is mispredicted at
    /// most leaves. 0: leaves have as many entries as distinct features on their path.
    let width: Int

    /// Deepest trees whose leaves are padded to a fixed width.
    static let fixedWidthLimit = 8

    /// Largest table built by default: 16M entries (128 MB).
    public static let defaultMaximumEntries = 1 << 24

    /// Tabulates `forest`'s leaves; nil when the tables would exceed `maximumEntries` entries or
    /// the model has more features than a reason index (`Int16`) can name.
    public init?(_ forest: CompiledForest, maximumEntries: Int = LeafAttribution.defaultMaximumEntries) {
        let model = forest.model
        guard model.featureCount <= Int(Int16.max) else { return nil }
        let slots = forest.nodeCount
        // Per tree: expected values and parents in the tree's own node ids.
        var means: [[Double]] = []
        var parents: [[Int32]] = []
        var count = 0
        var bias = model.baseMargin
        for tree in model.trees {
            let mean = TreeExplainer.expectedValues(tree)
            var parent = [Int32](repeating: -1, count: tree.nodeCount)
            for n in 0..<tree.nodeCount where !tree.isLeaf(n) {
                parent[Int(tree.left[n])] = Int32(n)
                parent[Int(tree.right[n])] = Int32(n)
            }
            bias += mean.first ?? 0
            means.append(mean)
            parents.append(parent)
        }
        let width = model.maxDepth <= Self.fixedWidthLimit ? model.maxDepth : 0
        // First pass: size the table (an upper bound: path length, before merging by feature;
        // exactly `width` a leaf when padded).
        for t in 0..<forest.treeCount {
            let tree = model.trees[t]
            let end = t + 1 < forest.treeCount ? Int(forest.treeRoot[t + 1]) : slots
            for s in Int(forest.treeRoot[t])..<end {
                let n = Int(forest.slotNode[s])
                guard n >= 0, tree.isLeaf(n) else { continue }
                if width > 0 { count += width; continue }
                var m = n
                while parents[t][m] >= 0 { count += 1; m = Int(parents[t][m]) }
            }
            guard count <= maximumEntries else { return nil }
        }
        self.forest = forest
        self.bias = bias
        self.width = width
        start = .allocate(capacity: slots + 1)
        entries = .allocate(capacity: max(count, 1))
        var next = 0
        var merged: [(feature: Int32, value: Double)] = []
        for t in 0..<forest.treeCount {
            let tree = model.trees[t]
            let mean = means[t], parent = parents[t]
            let end = t + 1 < forest.treeCount ? Int(forest.treeRoot[t + 1]) : slots
            for s in Int(forest.treeRoot[t])..<end {
                start[s] = UInt32(next)
                let n = Int(forest.slotNode[s])
                guard n >= 0, tree.isLeaf(n) else { continue }
                merged.removeAll(keepingCapacity: true)
                var child = n
                while parent[child] >= 0 {
                    let p = Int(parent[child])
                    let feature = tree.feature[p]
                    let delta = mean[child] - mean[p]
                    if let k = merged.firstIndex(where: { $0.feature == feature }) {
                        merged[k].value += delta
                    } else {
                        merged.append((feature, delta))
                    }
                    child = p
                }
                merged.sort { $0.feature < $1.feature }
                for (feature, value) in merged {
                    entries[next] = Entry(feature: UInt32(feature), value: Float(value))
                    next += 1
                }
                // Padding: zeros added to the spare column after the features.
                for _ in merged.count..<max(width, merged.count) {
                    entries[next] = Entry(feature: UInt32(model.featureCount), value: 0)
                    next += 1
                }
            }
        }
        start[slots] = UInt32(next)
        entryCount = next
    }

    deinit {
        start.deallocate()
        entries.deallocate()
    }

    /// Bytes the tables take.
    public var bytes: Int { (forest.nodeCount + 1) * MemoryLayout<UInt32>.stride + entryCount * MemoryLayout<Entry>.stride }

    /// Scores every row of `input` on the calling thread and writes each row's `k` largest
    /// positive contributions, biggest first (ties: the lower feature index first): model feature
    /// index into `features[k·row + i]` (-1 when fewer features contribute positively) and the
    /// contribution into `values[k·row + i]` (0 for none).
    /// - Throws: `ModelError` with code `invalidInput` if the column count differs from the model's.
    public func score(
        _ input: FeatureColumns, margins: UnsafeMutablePointer<Double>, outputs: UnsafeMutablePointer<Double>?,
        top k: Int, features: UnsafeMutablePointer<Int16>, values: UnsafeMutablePointer<Float>
    ) throws(ModelError) {
        let f = forest.featureCount
        try blocks(input, margins: margins, outputs: outputs) { first, rows, phi, stride in
            for r in 0..<rows {
                Self.top(k, of: phi + r * stride, count: f, features: features + k * (first + r), values: values + k * (first + r))
            }
        }
    }

    /// Every contribution of one row (model order, NaN = missing): `featureCount` values, then the
    /// bias; they add up to the row's margin (up to float rounding).
    public func contributions(row: [Float]) throws(ModelError) -> [Double] {
        try explain(row: row).contributions
    }

    /// One row's margin (bit for bit `CompiledForest`'s) and contributions (as `contributions(row:)`)
    /// from one walk of the trees.
    public func explain(row: [Float]) throws(ModelError) -> (margin: Double, contributions: [Double]) {
        let f = forest.featureCount
        guard row.count == f else {
            throw ModelError(.invalidInput, file: "<input>", "got \(row.count) feature values; the model reads \(f)")
        }
        var phi = [Double](repeating: 0, count: f + 1)
        phi[f] = bias
        var margin = 0.0
        try row.withUnsafeBufferPointer { (r: UnsafeBufferPointer<Float>) throws(ModelError) in
            guard let base = r.baseAddress else { return }
            let columns = (0..<f).map { base + $0 }
            try blocks(FeatureColumns(columns: columns, rowCount: 1), margins: &margin, outputs: nil) { _, _, p, _ in
                for j in 0..<f { phi[j] = Double(p[j]) }
            }
        }
        return (margin, phi)
    }

    /// Scores `input` block by block; after each block, `visit(first, rows, phi, stride)` reads
    /// row r's contributions at `phi[r·stride + j]`, j < feature count (stride = feature count + 1).
    private func blocks(
        _ input: FeatureColumns, margins: UnsafeMutablePointer<Double>, outputs: UnsafeMutablePointer<Double>?,
        visit: (Int, Int, UnsafeMutablePointer<Float>, Int) throws(ModelError) -> Void
    ) throws(ModelError) {
        let f = forest.featureCount
        guard input.columns.count == f else {
            throw ModelError(.invalidInput, file: "<input>", "got \(input.columns.count) feature columns; the model reads \(f)")
        }
        let b = forest.blockRows
        let stride = f + 1  // the features, then the spare column padding adds to
        // The views keep the block layout (nodes address them by view × blockRows); the per-row
        // buffers only need the rows there are (one for a live query).
        let rowsAtMost = max(1, min(b, input.rowCount))
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: forest.scratchFloats)
        scratch.initialize(repeating: 0, count: forest.scratchFloats)  // as in CompiledForest.scoreBlocks
        defer { scratch.deallocate() }
        let phi = UnsafeMutablePointer<Float>.allocate(capacity: rowsAtMost * stride)
        defer { phi.deallocate() }
        let accF = UnsafeMutablePointer<Float>.allocate(capacity: rowsAtMost)
        defer { accF.deallocate() }
        let accD = UnsafeMutablePointer<Double>.allocate(capacity: rowsAtMost)
        defer { accD.deallocate() }
        let objective = forest.model.objective
        var first = 0
        while first < input.rowCount {
            let rows = min(b, input.rowCount - first)
            forest.fillViews(input, first: first, rows: rows, into: scratch)
            phi.update(repeating: 0, count: rows * stride)
            // The same accumulation as `CompiledForest.score`, so margins agree bit for bit.
            if let leaves = forest.leafFloat {
                accF.update(repeating: Float(forest.model.baseMargin), count: rows)
                walk(scratch, rows: rows, leaves: leaves, acc: accF, phi: phi, stride: stride)
                for r in 0..<rows { margins[first + r] = Double(accF[r]) }
            } else if let leaves = forest.leafDouble {
                accD.update(repeating: 0, count: rows)
                walk(scratch, rows: rows, leaves: leaves, acc: accD, phi: phi, stride: stride)
                for r in 0..<rows { margins[first + r] = accD[r] }
            }
            if let outputs {
                for r in first..<(first + rows) { outputs[r] = objective.transform(margin: margins[r]) }
            }
            try visit(first, rows, phi, stride)
            first += rows
        }
    }

    @inline(__always)
    private func walk<Leaf: BinaryFloatingPoint>(_ x: UnsafeMutablePointer<Float>, rows: Int, leaves: UnsafeMutablePointer<Leaf>, acc: UnsafeMutablePointer<Leaf>, phi: UnsafeMutablePointer<Float>, stride: Int) {
        // The width as a type, so each kernel's additions are an unrolled run of constant length.
        func fixed<W: LeafWidth>(_: W.Type) {
            forest.walkBlock(x, rows: rows, into: AttributeFixedLeaves<Leaf, W>(leaves: leaves, acc: acc, start: start, entries: entries, phi: phi, stride: stride))
        }
        switch width {
        case 1: fixed(Width1.self)
        case 2: fixed(Width2.self)
        case 3: fixed(Width3.self)
        case 4: fixed(Width4.self)
        case 5: fixed(Width5.self)
        case 6: fixed(Width6.self)
        case 7: fixed(Width7.self)
        case 8: fixed(Width8.self)
        default: forest.walkBlock(x, rows: rows, into: AttributeLeaves(leaves: leaves, acc: acc, start: start, entries: entries, phi: phi, stride: stride))
        }
    }

    /// The `k` largest positive values of `phi[0..<count]`, biggest first, into `features`/`values`.
    @inline(__always)
    static func top(_ k: Int, of phi: UnsafePointer<Float>, count: Int, features: UnsafeMutablePointer<Int16>, values: UnsafeMutablePointer<Float>) {
        if k == 3 {
            // The common case in registers: (f0, v0) ≥ (f1, v1) ≥ (f2, v2); v = 0 for none.
            var f0: Int16 = -1, f1: Int16 = -1, f2: Int16 = -1
            var v0: Float = 0, v1: Float = 0, v2: Float = 0
            for j in 0..<count {
                let v = phi[j]
                guard v > v2 else { continue }  // also skips NaN and everything ≤ 0 until three are found
                if v > v1 {
                    f2 = f1; v2 = v1
                    if v > v0 {
                        f1 = f0; v1 = v0
                        f0 = Int16(truncatingIfNeeded: j); v0 = v
                    } else {
                        f1 = Int16(truncatingIfNeeded: j); v1 = v
                    }
                } else {
                    f2 = Int16(truncatingIfNeeded: j); v2 = v
                }
            }
            features[0] = f0; features[1] = f1; features[2] = f2
            values[0] = v0; values[1] = v1; values[2] = v2
            return
        }
        for i in 0..<k {
            features[i] = -1
            values[i] = 0
        }
        guard k > 0 else { return }
        for j in 0..<count {
            let v = phi[j]
            guard v > 0, v > values[k - 1] || features[k - 1] < 0 else { continue }
            var i = k - 1
            while i > 0, features[i - 1] < 0 || values[i - 1] < v {
                features[i] = features[i - 1]
                values[i] = values[i - 1]
                i -= 1
            }
            features[i] = Int16(j)
            values[i] = v
        }
    }
}

/// `LeafAttribution`'s sink: the leaf's value to the row's margin, its entries to the row's
/// contributions.
struct AttributeLeaves<Leaf: BinaryFloatingPoint>: LeafSink {
    let leaves: UnsafeMutablePointer<Leaf>
    let acc: UnsafeMutablePointer<Leaf>
    let start: UnsafeMutablePointer<UInt32>
    let entries: UnsafeMutablePointer<LeafAttribution.Entry>
    let phi: UnsafeMutablePointer<Float>
    let stride: Int

    @inline(__always)
    func add(_ row: Int, _ leaf: Int) {
        acc[row] += leaves[leaf]
        let p = phi + row &* stride
        var e = Int(start[leaf])
        let end = Int(start[leaf &+ 1])
        while e < end {
            let entry = entries[e]
            p[Int(entry.feature)] += entry.value
            e &+= 1
        }
    }
}

/// A padded table's entries per leaf, as a type (`LeafAttribution.fixedWidthLimit` at most).
protocol LeafWidth { static var count: Int { get } }
enum Width1: LeafWidth { static var count: Int { 1 } }
enum Width2: LeafWidth { static var count: Int { 2 } }
enum Width3: LeafWidth { static var count: Int { 3 } }
enum Width4: LeafWidth { static var count: Int { 4 } }
enum Width5: LeafWidth { static var count: Int { 5 } }
enum Width6: LeafWidth { static var count: Int { 6 } }
enum Width7: LeafWidth { static var count: Int { 7 } }
enum Width8: LeafWidth { static var count: Int { 8 } }

/// `AttributeLeaves` for padded tables: every leaf has exactly `W.count` entries.
struct AttributeFixedLeaves<Leaf: BinaryFloatingPoint, W: LeafWidth>: LeafSink {
    let leaves: UnsafeMutablePointer<Leaf>
    let acc: UnsafeMutablePointer<Leaf>
    let start: UnsafeMutablePointer<UInt32>
    let entries: UnsafeMutablePointer<LeafAttribution.Entry>
    let phi: UnsafeMutablePointer<Float>
    let stride: Int

    @inline(__always)
    func add(_ row: Int, _ leaf: Int) {
        acc[row] += leaves[leaf]
        let p = phi + row &* stride
        let e = entries + Int(start[leaf])
        for k in 0..<W.count {
            let entry = e[k]
            p[Int(entry.feature)] += entry.value
        }
    }
}
