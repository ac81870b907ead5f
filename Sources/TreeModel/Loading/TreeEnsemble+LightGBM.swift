extension TreeEnsemble {
    /// Reads a model written by LightGBM's `Booster.save_model("m.txt")` (format v3/v4).
    ///
    /// Supported: objective `binary`, numeric splits with every `decision_type` missing-value
    /// mode (None, Zero, NaN; default left or right), categorical splits (`decision_type` bit 0,
    /// category bitsets in `cat_boundaries` / `cat_threshold`).
    /// - Parameters:
    ///   - bytes: the file's contents.
    ///   - file: the name to use in error messages.
    /// - Throws: `ModelError` naming the line and key that is missing, malformed or unsupported.
    public static func lightgbm(text bytes: [UInt8], file: String) throws(ModelError) -> TreeEnsemble {
        var reader = LightGBMReader(bytes: bytes, file: file)
        let header = try reader.section()
        guard header.first?.key == "tree" else {
            throw ModelError(.malformed, file: file, line: 1, "expected the first line to be 'tree' (a LightGBM text model)")
        }
        let version = header.value("version")
        if let n = try header.optionalInt("num_class"), n != 1 {
            throw header.error("num_class", "multi-class models are not supported (num_class = \(n))", .unsupported)
        }
        if let n = try header.optionalInt("num_tree_per_iteration"), n != 1 {
            throw header.error("num_tree_per_iteration", "expected 1 tree per iteration, found \(n)", .unsupported)
        }
        if header.value("average_output") != nil {
            throw header.error("average_output", "random-forest mode (average_output) is not supported", .unsupported)
        }
        guard let objectiveText = header.value("objective") else {
            throw header.error("objective", "required key is missing", .malformed)
        }
        let objectiveParts = objectiveText.split(separator: " ")
        guard objectiveParts.first == "binary" else {
            throw header.error("objective", "objective '\(objectiveText)' is not supported; expected 'binary'", .unsupported)
        }
        var sigmoid = 1.0
        for part in objectiveParts.dropFirst() where part.hasPrefix("sigmoid:") {
            guard let s = Double(part.dropFirst("sigmoid:".count)), s > 0, s.isFinite else {
                throw header.error("objective", "expected 'sigmoid:<positive number>', found '\(part)'", .malformed)
            }
            sigmoid = s
        }
        let maxFeature = try header.int("max_feature_idx")
        guard maxFeature >= 0 else {
            throw header.error("max_feature_idx", "expected a non-negative index, found \(maxFeature)", .inconsistent)
        }
        guard maxFeature < ModelLimits.maximumFeatures else {
            throw header.error("max_feature_idx", "declares \(maxFeature) + 1 features; at most \(ModelLimits.maximumFeatures) are supported", .unsupported)
        }
        let featureCount = maxFeature + 1
        // LightGBM always writes the names (Column_0 … when it was given none): without them a
        // model's features could only be guessed by position, so a file without is refused.
        guard let line = header.value("feature_names") else {
            throw header.error("feature_names", "required key is missing (truncated?)", .malformed)
        }
        let names = line.split(separator: " ").map(String.init)
        if names.count != featureCount {
            throw header.error("feature_names", "expected \(featureCount) names (max_feature_idx + 1), found \(names.count)", .inconsistent)
        }

        let declaredCategories = try lightgbmDeclaredCategories(header, featureCount: featureCount)

        var trees: [DecisionTree] = []
        var nodes = 0
        var categoryWords = 0
        var sawEnd = false
        while let section = try reader.nextSection() {
            guard let first = section.first else { continue }
            if first.key == "end of trees" {
                sawEnd = true
                break
            }
            guard first.key.hasPrefix("Tree=") else {
                throw ModelError(.malformed, file: file, line: first.line, "expected 'Tree=<n>' or 'end of trees', found '\(first.key)'")
            }
            guard Int(first.key.dropFirst(5)) == trees.count else {
                throw ModelError(.malformed, file: file, line: first.line, "expected 'Tree=\(trees.count)', found '\(first.key)'")
            }
            let tree = try lightgbmTree(section, featureCount: featureCount, declaredCategories: declaredCategories,
                                        categoryWords: &categoryWords, file: file)
            nodes += tree.nodeCount
            guard nodes <= ModelLimits.maximumNodes else {
                throw ModelError(.unsupported, file: file, line: first.line,
                                 "the model has more than \(ModelLimits.maximumNodes) nodes up to \(first.key); at most that many are supported")
            }
            trees.append(tree)
        }
        guard sawEnd else {
            throw ModelError(.malformed, file: file, line: reader.line, "file ends before 'end of trees' after \(trees.count) trees (truncated?)")
        }
        guard !trees.isEmpty else {
            throw ModelError(.inconsistent, file: file, "model has no trees")
        }
        return TreeEnsemble(
            source: file,
            library: .lightgbm,
            libraryVersion: version,
            objective: .lightgbmBinary(sigmoid: sigmoid),
            featureNames: names,
            featureTypes: nil,
            baseMargin: 0,
            baseScore: 0,
            trees: trees,
            accumulation: .float64
        )
    }

    private static func lightgbmTree(
        _ s: LightGBMSection, featureCount: Int, declaredCategories: [Set<Int>?],
        categoryWords: inout Int, file: String
    ) throws(ModelError) -> DecisionTree {
        let leaves = try s.int("num_leaves")
        guard leaves >= 1 else { throw s.error("num_leaves", "expected at least 1, found \(leaves)", .inconsistent) }
        guard leaves <= ModelLimits.maximumLeaves else {
            throw s.error("num_leaves", "declares \(leaves) leaves; at most \(ModelLimits.maximumLeaves) are supported", .unsupported)
        }
        if let linear = try s.optionalInt("is_linear"), linear != 0 {
            throw s.error("is_linear", "linear trees are not supported", .unsupported)
        }
        let leafValue = try s.doubles("leaf_value", count: leaves)
        let leafCount = try s.optionalDoubles("leaf_count", count: leaves) ?? [Double](repeating: 1, count: leaves)
        let inner = leaves - 1
        if inner == 0 {
            return DecisionTree(left: [-1], right: [-1], feature: [0], threshold: [0], defaultLeft: [false],
                                missing: [.nanDefault], leafValue: leafValue, cover: leafCount)
        }
        let splitFeature = try s.ints("split_feature", count: inner)
        let threshold = try s.doubles("threshold", count: inner)
        let decision = try s.ints("decision_type", count: inner)
        let leftChild = try s.ints("left_child", count: inner)
        let rightChild = try s.ints("right_child", count: inner)
        let internalCount = try s.optionalDoubles("internal_count", count: inner) ?? [Double](repeating: 1, count: inner)
        let bitsets = try lightgbmCategoryBitsets(s, categoryWords: &categoryWords)

        // LightGBM numbers inner nodes 0..<inner and refers to leaf k as ~k; we put leaf k at inner + k.
        func node(_ child: Int) -> Int32 { Int32(clamping: child >= 0 ? child : inner + ~child) }
        let total = inner + leaves
        var tree = DecisionTree(
            left: [Int32](repeating: -1, count: total), right: [Int32](repeating: -1, count: total),
            feature: [Int32](repeating: 0, count: total), threshold: [Float](repeating: 0, count: total),
            defaultLeft: [Bool](repeating: false, count: total),
            missing: [DecisionTree.MissingRule](repeating: .nanDefault, count: total),
            leafValue: [Double](repeating: 0, count: total), cover: [Double](repeating: 0, count: total))
        var categories: [CategorySet?] = []
        for i in 0..<inner {
            let d = decision[i]
            for (key, c) in [("left_child", leftChild[i]), ("right_child", rightChild[i])] where c >= inner || c < -leaves {
                throw s.error(key, "node \(i) has child \(c); expected 0..<\(inner) or ~0..~\(leaves - 1)", .inconsistent)
            }
            tree.left[i] = node(leftChild[i])
            tree.right[i] = node(rightChild[i])
            tree.feature[i] = Int32(clamping: splitFeature[i])
            guard !threshold[i].isNaN else {
                throw s.error("threshold", "node \(i) has a NaN threshold", .inconsistent)
            }
            tree.cover[i] = internalCount[i]
            if d & 1 != 0 {
                // Categorical: `threshold` is the index of the node's bitset; NaN, negative codes and
                // categories outside the bitset go right whatever the missing type (CategoricalDecision).
                let k = threshold[i]
                guard k >= 0, k < Double(bitsets.count), k == k.rounded(.towardZero) else {
                    throw s.error("threshold", "node \(i) is a categorical split whose threshold \(k) is not the index of one of the tree's \(bitsets.count) category bitsets (num_cat)", .inconsistent)
                }
                let words = bitsets[Int(k)]
                let f = splitFeature[i]
                if f >= 0, f < declaredCategories.count, let declared = declaredCategories[f] {
                    let set = CategorySet(words: words, inSetGoesLeft: true, reading: .lightgbm)
                    if let c = set.categories.first(where: { !declared.contains($0) }) {
                        throw s.error("cat_threshold", "node \(i)'s category bitset \(Int(k)) has category \(c), which feature \(f) does not declare in feature_infos", .inconsistent)
                    }
                }
                if categories.isEmpty { categories = [CategorySet?](repeating: nil, count: total) }
                categories[i] = CategorySet(words: words, inSetGoesLeft: true, reading: .lightgbm)
                tree.missing[i] = .nanDefault
                tree.defaultLeft[i] = false
                continue
            }
            tree.threshold[i] = lessThanBound(forAtMost: threshold[i])
            tree.defaultLeft[i] = d & 2 != 0
            switch (d >> 2) & 3 {
            case 0: tree.missing[i] = .nanAsZero
            case 1: tree.missing[i] = .zeroDefault
            case 2: tree.missing[i] = .nanDefault
            default:
                throw s.error("decision_type", "node \(i) has unknown missing type \((d >> 2) & 3) in decision_type \(d)", .malformed)
            }
        }
        tree.categories = categories
        for k in 0..<leaves {
            tree.leafValue[inner + k] = leafValue[k]
            tree.cover[inner + k] = leafCount[k]
        }
        try tree.validate(featureCount: featureCount, file: s.file, field: s.name)
        return tree
    }

    /// A tree's category bitsets: `cat_boundaries` (num_cat + 1 ascending offsets from 0) cuts
    /// `cat_threshold` (32-bit words) into one bitset per categorical split; bit c set = category c
    /// goes left.
    /// - Throws: `ModelError` naming the key when the counts, offsets or words do not agree.
    private static func lightgbmCategoryBitsets(_ s: LightGBMSection, categoryWords: inout Int) throws(ModelError) -> [[UInt32]] {
        let count = try s.optionalInt("num_cat") ?? 0
        guard count > 0 else { return [] }
        guard count <= ModelLimits.maximumLeaves else {
            throw s.error("num_cat", "declares \(count) categorical splits; a tree has at most \(ModelLimits.maximumLeaves - 1) splits", .inconsistent)
        }
        guard s.value("cat_boundaries") != nil else {
            throw s.error("cat_boundaries", "required key is missing (num_cat = \(count) categorical splits need their bitsets' offsets)", .malformed)
        }
        let boundaries = try s.ints("cat_boundaries", count: count + 1)
        guard let text = s.value("cat_threshold") else { throw s.error("cat_threshold", "required key is missing (num_cat = \(count))", .malformed) }
        var words: [UInt32] = []
        words.reserveCapacity(LightGBMSection.capacity(boundaries.last ?? 0, text))
        for (i, part) in text.split(separator: " ").enumerated() {
            guard let w = UInt32(part) else { throw s.error("cat_threshold", "value \(i) '\(part)' is not a 32-bit unsigned integer", .malformed) }
            words.append(w)
        }
        guard boundaries[0] == 0 else {
            throw s.error("cat_boundaries", "expected the first offset to be 0, found \(boundaries[0])", .inconsistent)
        }
        for k in 0..<count where boundaries[k + 1] < boundaries[k] {
            throw s.error("cat_boundaries", "offsets must not decrease: bitset \(k) would be words \(boundaries[k]) ..< \(boundaries[k + 1])", .inconsistent)
        }
        guard boundaries[count] == words.count else {
            throw s.error("cat_threshold", "cat_boundaries ends at word \(boundaries[count]) but cat_threshold has \(words.count) words (a bitset of the wrong length)", .inconsistent)
        }
        var sets: [[UInt32]] = []
        sets.reserveCapacity(count)
        for k in 0..<count {
            let length = boundaries[k + 1] - boundaries[k]
            guard length <= ModelLimits.maximumCategories / 32 else {
                throw s.error("cat_boundaries", "bitset \(k) has \(length) words; categories are 0 ..< \(ModelLimits.maximumCategories) (\(ModelLimits.maximumCategories / 32) words)", .unsupported)
            }
            categoryWords += length
            guard categoryWords <= ModelLimits.maximumCategoryWords else {
                throw s.error("cat_threshold", "category bitsets up to this one need more than \(ModelLimits.maximumCategoryWords) words; at most that many are supported", .unsupported)
            }
            sets.append(Array(words[boundaries[k]..<boundaries[k + 1]]))
        }
        return sets
    }

    /// The categories LightGBM lists for each categorical feature in the header's `feature_infos`
    /// (`-1:0:3:7` — the categories it saw; numeric features have `[min:max]`, unused ones `none`).
    /// - Returns: per feature, its categories, or nil when not a categorical feature or when the
    ///   header has no usable `feature_infos`.
    private static func lightgbmDeclaredCategories(_ header: LightGBMSection, featureCount: Int) throws(ModelError) -> [Set<Int>?] {
        guard let text = header.value("feature_infos") else { return [] }
        let infos = text.split(separator: " ", omittingEmptySubsequences: true)
        guard infos.count == featureCount else {
            throw header.error("feature_infos", "expected \(featureCount) entries (max_feature_idx + 1), found \(infos.count)", .inconsistent)
        }
        return infos.map { info -> Set<Int>? in
            if info.hasPrefix("[") || info == "none" { return nil }
            var out = Set<Int>()
            for part in info.split(separator: ":") {
                guard let c = Int(part) else { return nil }
                out.insert(c)
            }
            return out
        }
    }

    /// The `Float` bound `b` such that, for every `Float` x, `Double(x) <= t` exactly when `x < b`.
    /// LightGBM compares the (float) feature, widened to double, with a double threshold.
    static func lessThanBound(forAtMost t: Double) -> Float {
        var f = Float(t)
        if Double(f) > t { f = f.nextDown }
        return f.nextUp
    }
}

/// One `key=value` block of a LightGBM model file.
struct LightGBMSection {
    struct Entry {
        var key: String
        var value: String
        var line: Int
    }

    var entries: [Entry]
    let file: String
    var first: Entry? { entries.first }
    var name: String { first?.key ?? "" }

    func entry(_ key: String) -> Entry? { entries.first { $0.key == key } }
    func value(_ key: String) -> String? { entry(key)?.value }

    func error(_ key: String, _ message: String, _ code: ModelError.Code) -> ModelError {
        let where_ = name == "tree" ? key : "\(name) \(key)"
        return ModelError(code, file: file, field: where_, line: entry(key)?.line ?? first?.line, message)
    }

    /// What to reserve for `count` space-separated values of `text`: never more than the line can
    /// hold (one digit and one space per value), whatever count the file declares.
    static func capacity(_ count: Int, _ text: String) -> Int {
        max(0, min(count, text.utf8.count / 2 + 1))
    }

    func int(_ key: String) throws(ModelError) -> Int {
        guard let v = try optionalInt(key) else { throw error(key, "required key is missing", .malformed) }
        return v
    }

    func optionalInt(_ key: String) throws(ModelError) -> Int? {
        guard let text = value(key) else { return nil }
        guard let v = Int(text) else { throw error(key, "expected an integer, found '\(text)'", .malformed) }
        return v
    }

    func ints(_ key: String, count: Int) throws(ModelError) -> [Int] {
        guard let text = value(key) else { throw error(key, "required key is missing (truncated?)", .malformed) }
        var out: [Int] = []
        out.reserveCapacity(Self.capacity(count, text))
        for (i, part) in text.split(separator: " ").enumerated() {
            guard let v = Int(part) else { throw error(key, "value \(i) '\(part)' is not an integer", .malformed) }
            out.append(v)
        }
        guard out.count == count else { throw error(key, "expected \(count) values, found \(out.count)", .inconsistent) }
        return out
    }

    func doubles(_ key: String, count: Int) throws(ModelError) -> [Double] {
        guard let v = try optionalDoubles(key, count: count) else { throw error(key, "required key is missing (truncated?)", .malformed) }
        return v
    }

    func optionalDoubles(_ key: String, count: Int) throws(ModelError) -> [Double]? {
        guard let text = value(key) else { return nil }
        var out: [Double] = []
        out.reserveCapacity(Self.capacity(count, text))
        for (i, part) in text.split(separator: " ").enumerated() {
            // LightGBM writes very large thresholds as 1.0000000180025095e-35 or 1e+300; Double(...) parses all of them.
            guard let v = Double(part) else { throw error(key, "value \(i) '\(part)' is not a number", .malformed) }
            out.append(v)
        }
        guard out.count == count else { throw error(key, "expected \(count) values, found \(out.count)", .inconsistent) }
        return out
    }
}

/// Splits a LightGBM text model into blank-line-separated sections.
struct LightGBMReader {
    let bytes: [UInt8]
    let file: String
    var pos = 0
    var line = 1

    init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// The first section (the header), which must exist.
    mutating func section() throws(ModelError) -> LightGBMSection {
        guard let s = try nextSection() else {
            throw ModelError(.malformed, file: file, line: 1, "file is empty; expected a LightGBM text model")
        }
        return s
    }

    /// The next non-empty section, or nil at end of file.
    mutating func nextSection() throws(ModelError) -> LightGBMSection? {
        var entries: [LightGBMSection.Entry] = []
        while pos < bytes.count {
            var end = pos
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > pos, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let text = String(decoding: bytes[pos..<lineEnd], as: UTF8.self)
            let lineNumber = line
            pos = end + 1
            line += 1
            if text.isEmpty {
                if entries.isEmpty { continue }
                break
            }
            if let eq = text.firstIndex(of: "=") {
                // "Tree=12" keeps its number in the key: it names the section.
                let key = String(text[..<eq])
                let value = String(text[text.index(after: eq)...])
                entries.append(.init(key: key == "Tree" ? text : key, value: value, line: lineNumber))
            } else {
                entries.append(.init(key: text, value: "", line: lineNumber))
            }
        }
        return entries.isEmpty ? nil : LightGBMSection(entries: entries, file: file)
    }
}
