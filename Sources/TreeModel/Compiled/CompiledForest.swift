/// A tree ensemble compiled once into a flat, branch-free layout for scoring.
///
/// Layout:
/// - Each split compares a *view* of a feature: the column with missing values already
///   replaced according to the split's missing rule (NaN → +∞ when missing goes right, −∞
///   when it goes left, 0 for LightGBM's "None"…). With that, every split is exactly
///   "go right iff view ≥ threshold", with no NaN test in the traversal.
/// - Nodes are 8 bytes, stored tree after tree in breadth-first order with the two children
///   of a node next to each other, so the next node is `node + delta + (x ≥ threshold)`.
/// - A leaf points at itself with a NaN threshold (the comparison is never true), so a tree is
///   walked for exactly its depth with no leaf test.
/// - Rows are scored in blocks of `blockRows` (views transposed into a small buffer that stays
///   in L1), tree by tree, several rows interleaved so their dependent loads overlap. Each row
///   sums its trees in model order, in the library's precision, so margins equal the library's.
/// - A model with categorical splits is laid out in 16-byte nodes (`MixedNode`) instead: a
///   categorical feature's view holds each row's *category code* (NaN → 0, no category → 1,
///   category c → c + 2) as a float's bit pattern, and each node carries a bitset over codes saying
///   which go right. Every step takes the same branch-free form, `node + delta + ((x ≥ threshold) |
///   bit)`: a numeric node's bitset is the shared all-zero word, a categorical node's threshold is
///   NaN. See `CompiledForest+Categories.swift`.
///
/// Instances are immutable and safe to share between threads.
public final class CompiledForest: @unchecked Sendable {
    // @unchecked: every stored property is written only in `init` and freed in `deinit`.

    /// Rows per scoring block: 128 (measured best on 300×d6 and 1000×d8 models), fewer when the
    /// model has so many feature views that offsets would not fit in 16 bits.
    let blockRows: Int

    /// The model this was compiled from (kept for metadata and explanations).
    public let model: TreeEnsemble

    /// How a view derives from its feature column.
    enum ViewKind: UInt8 {
        case nanHigh, nanLow, nanZero, zeroHigh, zeroLow
        /// Category codes as XGBoost / LightGBM read them (`CategorySet.Reading`), as bit patterns.
        case categoryXGBoost, categoryLightGBM
    }

    struct View: Hashable {
        var feature: Int
        var kind: ViewKind
    }

    struct Node {
        /// Go right iff view value ≥ threshold. NaN for leaves.
        var threshold: Float
        /// View index × blockRows: where the view's block column starts in the scratch buffer.
        var offset: UInt16
        /// Distance from this node to its left child; the right child follows it. 0 for leaves.
        var delta: UInt16
    }

    /// A node of the layout for models with categorical splits (16 bytes).
    struct MixedNode {
        /// Go right iff view value ≥ threshold. NaN for leaves and categorical splits.
        var threshold: Float
        /// View index × blockRows, as in `Node`.
        var offset: UInt16
        /// Distance from this node to its left child, as in `Node`.
        var delta: UInt16
        /// Where the node's code bitset starts in `categoryWords` (0, the all-zero word, for
        /// numeric splits and leaves).
        var words: UInt32
        /// Index of the bitset's last word, which is read for every code beyond it (0 for numeric
        /// splits and leaves).
        var last: UInt32
    }

    let views: [View]
    /// The numeric layout's nodes (nil when the model has categorical splits).
    let nodes: UnsafeMutablePointer<Node>?
    /// The mixed layout's nodes (nil when the model has no categorical split).
    let mixedNodes: UnsafeMutablePointer<MixedNode>?
    /// Code bitsets of the mixed layout's categorical splits; word 0 is 0.
    let categoryWords: UnsafeMutablePointer<UInt32>?
    let nodeCount: Int
    /// Leaf values by absolute node index (only leaves are meaningful), in the accumulation type.
    let leafFloat: UnsafeMutablePointer<Float>?
    let leafDouble: UnsafeMutablePointer<Double>?
    let treeRoot: UnsafeMutablePointer<UInt32>
    let treeDepth: UnsafeMutablePointer<Int32>
    /// Per tree, whether the block kernels walk it until leaves rather than for its full depth
    /// (`CompiledForest+WalkPlan.swift`).
    let treeUntilLeaves: UnsafeMutablePointer<Bool>
    let treeCount: Int
    /// For each slot of the layout, the node of its tree (`model.trees[t]` index) placed there
    /// (`LeafAttribution` tabulates per leaf slot).
    let slotNode: [Int32]
    /// The leaf-bitvector walk's tables for the trees of at most 64 leaves, when this processor
    /// runs it and the model is numeric (`CompiledForest+ExitLeaves.swift`); nil otherwise.
    let exitLeaves: ExitLeafTables?
    /// The kernels this forest was compiled for (`exitLeafTrees` says how many trees take the walk).
    public let kernel: ScoringKernel

    /// Compiles `model`.
    /// - Throws: `ModelError` if a tree is not a valid tree (children out of range, a feature the
    ///   model does not have, deeper than `ModelLimits.maximumTreeDepth`: a model built in memory
    ///   rather than loaded is checked here as the loaders check a file), a split cannot be
    ///   expressed (a non-finite threshold on a default-left split), or the model exceeds the
    ///   compact layout's limits (8,192 feature views, 65,535 nodes between a node and its
    ///   children, 2^31 nodes, `ModelLimits.maximumCategoryWords` words of category bitsets).
    ///   - kernel: `.portable` keeps to the portable walks (for comparisons); results are the same.
    ///     The default is the process's (`ScoringKernel.processDefault`: `CHURNGRID_SCORING_KERNEL`).
    public init(_ model: TreeEnsemble, kernel: ScoringKernel = .processDefault) throws(ModelError) {
        self.model = model
        let total = model.nodeCount
        guard total < Int(UInt32.max) / 2 else {
            throw ModelError(.unsupported, file: model.source, "model has \(total) nodes; at most 2^31 are supported")
        }
        var categoryWordCount = 1
        for (t, tree) in model.trees.enumerated() {
            try tree.validate(featureCount: model.featureCount, file: model.source, field: "tree \(t)")
            for n in 0..<tree.nodeCount where !tree.isLeaf(n) {
                guard let set = tree.categorySet(n) else { continue }
                categoryWordCount += Self.compiledWordCount(set)
                guard categoryWordCount <= ModelLimits.maximumCategoryWords else {
                    throw ModelError(.unsupported, file: model.source, field: "tree \(t) node \(n)",
                                     "category bitsets up to this split need more than \(ModelLimits.maximumCategoryWords) words; at most that many are supported")
                }
            }
        }
        let mixed = categoryWordCount > 1

        // Views in first-use order.
        var viewIndex: [View: Int] = [:]
        var views: [View] = []
        func view(for tree: DecisionTree, _ n: Int) -> Int {
            let kind: ViewKind
            if let set = tree.categorySet(n) {
                // NaN's side is in each node's bitset, so one view serves every node on the feature.
                kind = set.reading == .xgboost ? .categoryXGBoost : .categoryLightGBM
            } else {
                switch tree.missing[n] {
                case .nanDefault: kind = tree.defaultLeft[n] ? .nanLow : .nanHigh
                case .nanAsZero: kind = .nanZero
                case .zeroDefault: kind = tree.defaultLeft[n] ? .zeroLow : .zeroHigh
                }
            }
            let v = View(feature: Int(tree.feature[n]), kind: kind)
            if let i = viewIndex[v] { return i }
            viewIndex[v] = views.count
            views.append(v)
            return views.count - 1
        }

        // Views are known only after a pass over the splits; the block size depends on their number.
        for tree in model.trees { for n in 0..<tree.nodeCount where !tree.isLeaf(n) { _ = view(for: tree, n) } }
        guard views.count <= 8192 else {
            throw ModelError(.unsupported, file: model.source, "model uses \(views.count) feature views (features × missing-value rules); at most 8192 are supported")
        }
        var blockRows = 128
        while views.count * blockRows > 65536 { blockRows /= 2 }
        self.blockRows = blockRows

        let nodes: UnsafeMutablePointer<Node>? = mixed ? nil : .allocate(capacity: max(total, 1))
        let mixedNodes: UnsafeMutablePointer<MixedNode>? = mixed ? .allocate(capacity: max(total, 1)) : nil
        let categoryWords: UnsafeMutablePointer<UInt32>? = mixed ? .allocate(capacity: categoryWordCount) : nil
        categoryWords?[0] = 0
        var nextWord = 1
        let leafFloat: UnsafeMutablePointer<Float>? = model.accumulation == .float32 ? .allocate(capacity: max(total, 1)) : nil
        let leafDouble: UnsafeMutablePointer<Double>? = model.accumulation == .float64 ? .allocate(capacity: max(total, 1)) : nil
        let roots = UnsafeMutablePointer<UInt32>.allocate(capacity: max(model.trees.count, 1))
        let depths = UnsafeMutablePointer<Int32>.allocate(capacity: max(model.trees.count, 1))
        let untilLeaves = UnsafeMutablePointer<Bool>.allocate(capacity: max(model.trees.count, 1))
        func deallocateAll() {
            nodes?.deallocate(); mixedNodes?.deallocate(); categoryWords?.deallocate()
            leafFloat?.deallocate(); leafDouble?.deallocate(); roots.deallocate(); depths.deallocate()
            untilLeaves.deallocate()
        }
        func place(_ slot: Int, threshold: Float, offset: Int, delta: Int, words: Int = 0, last: Int = 0) {
            nodes?[slot] = Node(threshold: threshold, offset: UInt16(offset), delta: UInt16(delta))
            mixedNodes?[slot] = MixedNode(threshold: threshold, offset: UInt16(offset), delta: UInt16(delta),
                                          words: UInt32(words), last: UInt32(last))
        }

        var next = 0
        var slotNode = [Int32](repeating: -1, count: max(total, 1))
        for (t, tree) in model.trees.enumerated() {
            // Breadth-first placement: each inner node reserves two adjacent slots for its children.
            let root = next
            roots[t] = UInt32(root)
            depths[t] = Int32(tree.depth)
            untilLeaves[t] = Self.walksUntilLeaves(tree)
            var queue: [(source: Int, slot: Int)] = [(0, root)]
            next += 1
            var head = 0
            while head < queue.count {
                let (n, slot) = queue[head]
                head += 1
                slotNode[slot] = Int32(n)
                if tree.isLeaf(n) {
                    place(slot, threshold: .nan, offset: 0, delta: 0)
                    leafFloat?[slot] = Float(tree.leafValue[n])
                    leafDouble?[slot] = tree.leafValue[n]
                    continue
                }
                let v = view(for: tree, n)
                let threshold = tree.threshold[n]
                let kind = views[v].kind
                let set = tree.categorySet(n)
                if set == nil && threshold == -.infinity && (kind == .nanLow || kind == .zeroLow) {
                    // Missing would map to −∞ and compare equal to the threshold, going right instead of left.
                    deallocateAll()
                    throw ModelError(.unsupported, file: model.source, field: "tree \(t) node \(n)",
                                     "a split at −∞ that sends missing values left cannot be compiled")
                }
                let left = next
                next += 2
                guard left - slot <= Int(UInt16.max) else {
                    deallocateAll()
                    throw ModelError(.unsupported, file: model.source, field: "tree \(t)",
                                     "tree is too wide for the compact layout (\(left - slot) nodes between a node and its children; at most 65535)")
                }
                if let set, let categoryWords {
                    let bits = Self.compiledWords(set, nanGoesRight: !tree.defaultLeft[n])
                    for (k, w) in bits.enumerated() { categoryWords[nextWord + k] = w }
                    place(slot, threshold: .nan, offset: v * blockRows, delta: left - slot, words: nextWord, last: bits.count - 1)
                    nextWord += bits.count
                } else {
                    place(slot, threshold: threshold, offset: v * blockRows, delta: left - slot)
                }
                leafFloat?[slot] = 0
                leafDouble?[slot] = 0
                queue.append((Int(tree.left[n]), left))
                queue.append((Int(tree.right[n]), left + 1))
            }
        }
        self.views = views
        self.nodes = nodes
        self.mixedNodes = mixedNodes
        self.categoryWords = categoryWords
        self.nodeCount = next
        self.leafFloat = leafFloat
        self.leafDouble = leafDouble
        self.treeRoot = roots
        self.treeDepth = depths
        self.treeUntilLeaves = untilLeaves
        self.treeCount = model.trees.count
        self.slotNode = slotNode
        self.kernel = kernel
        exitLeaves = mixed ? nil : kernel.instructions.flatMap { instructions in
            ExitLeafTables(model: model, instructions: instructions, roots: roots, slotCount: next, slotNode: slotNode, blockRows: blockRows) { t, n in
                view(for: model.trees[t], n) * blockRows
            }
        }
    }

    /// Trees scored by the leaf-bitvector walk (0 when the processor or the model does not allow it).
    public var exitLeafTrees: Int { exitLeaves?.trees ?? 0 }

    /// The instruction set that walk runs on here: "avx512", "avx2" or "none" (portable walks only).
    public var instructionSet: String { exitLeaves?.instructions.name ?? "none" }

    deinit {
        nodes?.deallocate()
        mixedNodes?.deallocate()
        categoryWords?.deallocate()
        leafFloat?.deallocate()
        leafDouble?.deallocate()
        treeRoot.deallocate()
        treeDepth.deallocate()
        treeUntilLeaves.deallocate()
    }

    /// Number of input features (the length of a row, the number of columns).
    public var featureCount: Int { model.featureCount }

    /// Floats of scratch one scoring thread needs.
    var scratchFloats: Int { max(views.count, 1) * blockRows }

    /// Turns a margin into the model's output (a probability for logistic objectives).
    @inlinable
    public func transform(margin: Double) -> Double { model.transform(margin: margin) }
}
