extension TreeEnsemble {
    /// The category sets of one XGBoost tree (`enable_categorical=True`, XGBoost ≥ 1.6), one per node.
    ///
    /// XGBoost writes, per tree: `split_type` (1 for a categorical split), then for the categorical
    /// splits in ascending node order `categories_nodes` (the node ids), `categories_segments` and
    /// `categories_sizes` (where each node's categories start in `categories`, and how many), and
    /// `categories` (the categories that go **right**; every other value goes left, NaN to the
    /// `default_left` side; see `CategorySet`).
    /// - Parameters:
    ///   - names: category names per feature when the file stores them; a split naming a category
    ///     beyond a feature's names is refused.
    ///   - words: running count of bitset words in the model, checked against `ModelLimits`.
    /// - Returns: one entry per node (nil for numeric splits and leaves), or `[]` when no node is categorical.
    /// - Throws: `ModelError` naming the tree's field, the index in it and the node.
    static func xgboostCategorySets(
        _ tree: JSONField, nodeCount n: Int, left: [Int], splitIndex: [Int],
        names: [[String]]?, words: inout Int
    ) throws(ModelError) -> [CategorySet?] {
        guard let splitTypeField = try tree.optionalMember("split_type") else { return [] }
        let kinds = try splitTypeField.integers(count: n)
        if let bad = kinds.indices.first(where: { kinds[$0] != 0 && kinds[$0] != 1 }) {
            throw ModelError(.unsupported, file: tree.file, field: splitTypeField.path + "[\(bad)]",
                             "node \(bad) has split type \(kinds[bad]); expected 0 (numeric) or 1 (categorical)")
        }
        let categorical = kinds.indices.filter { kinds[$0] == 1 && left[$0] >= 0 }
        guard !categorical.isEmpty else { return [] }

        let nodesField = try tree.member("categories_nodes")
        let segmentsField = try tree.member("categories_segments")
        let sizesField = try tree.member("categories_sizes")
        let categoriesField = try tree.member("categories")
        let nodes = try nodesField.integers()
        let segments = try segmentsField.integers()
        let sizes = try sizesField.integers()
        for (field, values) in [(segmentsField, segments), (sizesField, sizes)] where values.count != nodes.count {
            throw field.error("expected \(nodes.count) values (one per entry of categories_nodes), found \(values.count)", code: .inconsistent)
        }
        let categories = try categoriesField.integers()

        var sets = [CategorySet?](repeating: nil, count: n)
        var previous = -1
        for k in nodes.indices {
            let node = nodes[k]
            let at = nodesField.path + "[\(k)]"
            guard node > previous, node < n else {
                throw ModelError(.inconsistent, file: tree.file, field: at,
                                 "categories_nodes lists node \(node); expected ascending node ids in 0..<\(n), as XGBoost writes them")
            }
            previous = node
            guard kinds[node] == 1 else {
                throw ModelError(.inconsistent, file: tree.file, field: at,
                                 "node \(node) has a category set but split_type[\(node)] is \(kinds[node]), not 1 (categorical)")
            }
            let begin = segments[k], size = sizes[k]
            guard size > 0 else {
                throw ModelError(.inconsistent, file: tree.file, field: sizesField.path + "[\(k)]",
                                 "node \(node) has an empty category set (size \(size)); XGBoost writes at least one category")
            }
            guard begin >= 0, begin <= categories.count, size <= categories.count - begin else {
                throw ModelError(.inconsistent, file: tree.file, field: segmentsField.path + "[\(k)]",
                                 "node \(node)'s category set is categories[\(begin) ..< \(begin) + \(size)], outside the \(categories.count) categories the tree has")
            }
            let members = categories[begin..<(begin + size)]
            let feature = splitIndex[node]
            var declared: Int? = nil
            if let names, feature >= 0, feature < names.count, !names[feature].isEmpty { declared = names[feature].count }
            for (j, c) in zip(begin..., members) {
                let at = categoriesField.path + "[\(j)]"
                guard c >= 0, c < ModelLimits.maximumCategories else {
                    throw ModelError(.unsupported, file: tree.file, field: at,
                                     "node \(node)'s category set has category \(c); categories are 0 ..< \(ModelLimits.maximumCategories)")
                }
                if let declared, c >= declared {
                    throw ModelError(.inconsistent, file: tree.file, field: at,
                                     "node \(node)'s category set has category \(c), but feature \(feature) declares \(declared) categories (gradient_booster.model.cats)")
                }
            }
            if left[node] < 0 { continue }  // a leaf never splits: its set would be unused
            let set = CategorySet(categories: Array(members), inSetGoesLeft: false, reading: .xgboost)
            words += set.words.count
            guard words <= ModelLimits.maximumCategoryWords else {
                throw ModelError(.unsupported, file: tree.file, field: categoriesField.path,
                                 "category sets up to node \(node) need more than \(ModelLimits.maximumCategoryWords) bitset words (a word per 32 categories up to each set's largest); at most that many are supported")
            }
            sets[node] = set
        }
        if let node = categorical.first(where: { sets[$0] == nil }) {
            throw ModelError(.inconsistent, file: tree.file, field: nodesField.path,
                             "node \(node) is a categorical split (split_type[\(node)] = 1) but categories_nodes does not list it")
        }
        return sets
    }

    /// The category names XGBoost 3.x stores with a model trained on a DataFrame with categorical
    /// columns (`gradient_booster.model.cats`): one entry per feature in `enc`, strings as UTF-8
    /// bytes cut by `offsets`, numbers as `values`; an empty entry for a numeric feature.
    /// - Returns: names per feature, or nil when the file has none (no `cats`, or an empty `enc`).
    /// - Throws: `ModelError` naming the field when the entry count or offsets are inconsistent.
    static func xgboostCategoryNames(_ model: JSONField, featureCount: Int) throws(ModelError) -> [[String]]? {
        guard let cats = try model.optionalMember("cats") else { return nil }
        let encField = try cats.member("enc")
        let columns = try encField.elements()
        guard !columns.isEmpty else { return nil }
        guard columns.count == featureCount else {
            throw encField.error("expected \(featureCount) entries (one per feature), found \(columns.count)", code: .inconsistent)
        }
        var names: [[String]] = []
        names.reserveCapacity(columns.count)
        for column in columns {
            if let offsetsField = try column.optionalMember("offsets") {
                let offsets = try offsetsField.integers()
                let valuesField = try column.member("values")
                let bytes = try valuesField.integers()
                if let bad = bytes.firstIndex(where: { $0 < -128 || $0 > 255 }) {
                    throw ModelError(.malformed, file: column.file, field: valuesField.path + "[\(bad)]",
                                     "expected a byte of a UTF-8 name, found \(bytes[bad])")
                }
                var column: [String] = []
                if offsets.count > 1 {
                    column.reserveCapacity(offsets.count - 1)
                    for i in 1..<offsets.count {
                        let a = offsets[i - 1], b = offsets[i]
                        guard a >= 0, a <= b, b <= bytes.count else {
                            throw ModelError(.inconsistent, file: offsetsField.file, field: offsetsField.path + "[\(i)]",
                                             "name \(i - 1) is bytes \(a) ..< \(b) of \(bytes.count); expected ascending offsets within the values")
                        }
                        column.append(String(decoding: bytes[a..<b].map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self))
                    }
                }
                names.append(column)
            } else if let valuesField = try column.optionalMember("values") {
                names.append(try valuesField.integers().map(String.init))
            } else {
                throw column.error("expected a column of category names (\"offsets\" and \"values\", or \"values\")")
            }
        }
        if let segmentsField = try cats.optionalMember("feature_segments") {
            let segments = try segmentsField.integers()
            var total = 0
            let expected = [0] + names.map { total += $0.count; return total }
            guard segments == expected else {
                throw segmentsField.error("expected the running category counts \(expected.prefix(8))\(expected.count > 8 ? "…" : ""), found \(segments.prefix(8))\(segments.count > 8 ? "…" : "")", code: .inconsistent)
            }
        }
        return names
    }
}
