/// Categorical splits in the compiled layout.
///
/// A categorical feature's view holds, per row, a *code* stored as the bit pattern of a `Float`:
/// 0 for NaN, 1 for a value that is no category (`CategorySet.Reading`), c + 2 for category c.
/// Each categorical node owns a bitset over codes (bit k set = code k goes right) of the set's
/// words plus one, followed by one more word that holds the answer for every code beyond the set
/// (the "no category" side), so a lookup clamps its word index to that last word and never reads
/// past the node's bitset, whatever the input. Numeric nodes and leaves point at word 0, which is
/// 0, with a last index of 0, so the same lookup gives them a 0 bit at no risk; a categorical node's
/// NaN threshold makes its comparison false. One step therefore serves both kinds of split:
///
///     next = node + delta + ((x ≥ threshold) | bit(words[base + min(code >> 5, last)], code & 31))
extension CompiledForest {
    /// Words of the compiled bitset for `set`: its words, one for the two leading codes' shift, and
    /// the trailing "beyond the set" word.
    static func compiledWordCount(_ set: CategorySet) -> Int {
        set.words.count + 2
    }

    /// The compiled bitset of one categorical node (see the type's comment); `nanGoesRight` is the
    /// node's missing-value side.
    static func compiledWords(_ set: CategorySet, nanGoesRight: Bool) -> [UInt32] {
        let noneGoesRight = set.inSetGoesLeft
        let capacity = set.words.count * 32
        var out = [UInt32](repeating: 0, count: compiledWordCount(set))
        for code in 0..<((out.count - 1) * 32) {
            let right: Bool
            switch code {
            case 0: right = nanGoesRight
            case 1: right = noneGoesRight
            default:
                let c = code - 2
                right = c < capacity && set.contains(c) ? !set.inSetGoesLeft : noneGoesRight
            }
            if right { out[code >> 5] |= 1 << UInt32(code & 31) }
        }
        out[out.count - 1] = noneGoesRight ? .max : 0
        return out
    }

    /// A value's code in a categorical view, as a float's bit pattern (never NaN-compared: the
    /// node's threshold is NaN).
    @inline(__always)
    static func categoryCode(_ x: Float, _ reading: CategorySet.Reading) -> Float {
        let code: UInt32
        if x.isNaN {
            code = 0
        } else if let c = reading.category(of: x) {
            code = UInt32(truncatingIfNeeded: c) &+ 2
        } else {
            code = 1
        }
        return Float(bitPattern: code)
    }
}

/// One step down a tree, for the scoring kernels: which node a row at `p` goes to from node `i`.
/// A node is loaded once (`load`) and serves both the step (`next`) and the kernels' test whether
/// a walk has reached its leaf (`delta` is 0 only for leaves, which loop on themselves).
protocol ForestStep {
    associatedtype Loaded
    /// Node `i` of the layout.
    func load(_ i: Int) -> Loaded
    /// Distance from the node to its left child: 0 for a leaf, at least 1 for a split.
    func delta(_ n: Loaded) -> UInt16
    /// The child of node `i` (loaded as `n`) for the row whose view block starts at `p`
    /// (`p[offset]` is its value); `i` itself when `n` is a leaf.
    func next(_ i: Int, _ n: Loaded, _ p: UnsafePointer<Float>) -> Int
}

extension ForestStep {
    /// The child of node `i` for the row whose view block starts at `p`.
    @inline(__always)
    func next(_ i: Int, _ p: UnsafePointer<Float>) -> Int { next(i, load(i), p) }
}

/// Steps through the numeric layout (8-byte nodes).
struct NumericStep: ForestStep {
    let nodes: UnsafeMutablePointer<CompiledForest.Node>

    @inline(__always)
    func load(_ i: Int) -> CompiledForest.Node { nodes[i] }

    @inline(__always)
    func delta(_ n: CompiledForest.Node) -> UInt16 { n.delta }

    @inline(__always)
    func next(_ i: Int, _ n: CompiledForest.Node, _ p: UnsafePointer<Float>) -> Int {
        CompiledForest.step(i, n, p[Int(n.offset)])
    }
}

/// Steps through the mixed layout (16-byte nodes, numeric and categorical splits).
struct MixedStep: ForestStep {
    let nodes: UnsafeMutablePointer<CompiledForest.MixedNode>
    let words: UnsafeMutablePointer<UInt32>

    @inline(__always)
    func load(_ i: Int) -> CompiledForest.MixedNode { nodes[i] }

    @inline(__always)
    func delta(_ n: CompiledForest.MixedNode) -> UInt16 { n.delta }

    @inline(__always)
    func next(_ i: Int, _ n: CompiledForest.MixedNode, _ p: UnsafePointer<Float>) -> Int {
        let x = p[Int(n.offset)]
        let code = x.bitPattern
        let word = words[Int(n.words &+ min(code &>> 5, n.last))]
        let bit = UInt8(truncatingIfNeeded: (word &>> code) & 1)
        return i &+ Int(n.delta) &+ Int(unsafeBitCast(x >= n.threshold, to: UInt8.self) | bit)
    }
}
