#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TreeEnsemble {
    /// Reads a model written by XGBoost's `Booster.save_model("m.json")` (XGBoost 1.6 to 3.x).
    ///
    /// Supported: `gbtree` boosters with one output, objectives `binary:logistic`,
    /// `binary:logitraw`, `reg:logistic` and `reg:squarederror`, numeric splits with
    /// `default_left` routing, categorical splits (`enable_categorical`, with the category names
    /// 3.x stores for a DataFrame), scalar and vector (3.x) `base_score`.
    /// - Parameters:
    ///   - bytes: the file's contents.
    ///   - file: the name to use in error messages.
    /// - Throws: `ModelError` naming the field that is missing, malformed or unsupported.
    public static func xgboost(json bytes: [UInt8], file: String) throws(ModelError) -> TreeEnsemble {
        let tape: JSONTape
        do {
            tape = try JSONTape(bytes: bytes)
        } catch {
            var message = "not valid JSON at byte \(error.offset): \(error.message)"
            if bytes.count > 1, bytes[0] == UInt8(ascii: "{"), [UInt8(ascii: "L"), UInt8(ascii: "i"), UInt8(ascii: "U"), UInt8(ascii: "l")].contains(bytes[1]) {
                message += " (this looks like UBJSON; save the model with a .json file name)"
            }
            throw ModelError(.malformed, file: file, field: error.path.isEmpty ? nil : error.path, message)
        }
        let root = JSONField(tape: tape, index: tape.root, path: "", file: file)
        let version = try root.optionalMember("version").map { v throws(ModelError) in
            try v.integers().map(String.init).joined(separator: ".")
        }
        let learner = try root.member("learner")

        // Objective
        let objectiveField = try learner.member("objective").member("name")
        let objectiveName = try objectiveField.string()
        let objective: Objective
        switch objectiveName {
        case "binary:logistic": objective = .binaryLogistic
        case "reg:logistic": objective = .regressionLogistic
        case "binary:logitraw": objective = .binaryLogitRaw
        case "reg:squarederror": objective = .squaredError
        default:
            throw objectiveField.error(
                "objective '\(objectiveName)' is not supported; expected binary:logistic, binary:logitraw, reg:logistic or reg:squarederror",
                code: .unsupported)
        }

        // Learner parameters
        let params = try learner.member("learner_model_param")
        let featureCount = try params.member("num_feature").integer()
        guard featureCount > 0 else {
            throw try params.member("num_feature").error("expected a positive feature count, found \(featureCount)", code: .inconsistent)
        }
        guard featureCount <= ModelLimits.maximumFeatures else {
            throw try params.member("num_feature").error(
                "declares \(featureCount) features; at most \(ModelLimits.maximumFeatures) are supported", code: .unsupported)
        }
        if let numClass = try params.optionalMember("num_class"), try numClass.integer() > 1 {
            throw numClass.error("multi-class models are not supported (num_class = \(try numClass.integer())); expected a binary or regression model", code: .unsupported)
        }
        if let numTarget = try params.optionalMember("num_target"), try numTarget.integer() > 1 {
            throw numTarget.error("multi-target models are not supported; expected num_target = 1", code: .unsupported)
        }
        let baseScoreField = try params.member("base_score")
        let baseScore = try parseBaseScore(baseScoreField)
        let baseMargin: Float
        switch objective {
        case .binaryLogistic, .regressionLogistic:
            guard baseScore > 0, baseScore < 1 else {
                throw baseScoreField.error("base_score \(baseScore) must lie strictly between 0 and 1 for \(objective)", code: .inconsistent)
            }
            baseMargin = -logf(1 / baseScore - 1)
        default:
            baseMargin = baseScore
        }

        // Feature names and types
        var names = try learner.optionalMember("feature_names").map { f throws(ModelError) in
            try f.elements().map { e throws(ModelError) in try e.string() }
        } ?? []
        if names.isEmpty {
            names = (0..<featureCount).map { "f\($0)" }
        } else if names.count != featureCount {
            throw try learner.member("feature_names").error("expected \(featureCount) names (num_feature), found \(names.count)", code: .inconsistent)
        }
        let types = try learner.optionalMember("feature_types").map { f throws(ModelError) in
            try f.elements().map { e throws(ModelError) in try e.string() }
        }
        if let types, !types.isEmpty, types.count != featureCount {
            throw try learner.member("feature_types").error("expected \(featureCount) types (num_feature), found \(types.count)", code: .inconsistent)
        }

        // Booster
        let booster = try learner.member("gradient_booster")
        let boosterName = try booster.member("name").string()
        guard boosterName == "gbtree" else {
            throw try booster.member("name").error("booster '\(boosterName)' is not supported; expected gbtree", code: .unsupported)
        }
        let model = try booster.member("model")
        let treeFields = try model.member("trees").elements()
        if let param = try model.optionalMember("gbtree_model_param"), let n = try param.optionalMember("num_trees") {
            let declared = try n.integer()
            guard declared == treeFields.count else {
                throw n.error("declares \(declared) trees but the trees array has \(treeFields.count) (truncated?)", code: .inconsistent)
            }
        }
        if let info = try model.optionalMember("tree_info") {
            let groups = try info.integers()
            if let bad = groups.firstIndex(where: { $0 != 0 }) {
                throw ModelError(.unsupported, file: file, field: info.path + "[\(bad)]", "tree belongs to output group \(groups[bad]); only single-output models are supported")
            }
        }

        let categoryNames = try xgboostCategoryNames(model, featureCount: featureCount)

        var trees: [DecisionTree] = []
        trees.reserveCapacity(treeFields.count)
        var nodes = 0
        var categoryWords = 0
        for field in treeFields {
            let tree = try xgboostTree(field, featureCount: featureCount, categoryNames: categoryNames, categoryWords: &categoryWords)
            nodes += tree.nodeCount
            guard nodes <= ModelLimits.maximumNodes else {
                throw field.error("the model has more than \(ModelLimits.maximumNodes) nodes up to this tree; at most that many are supported", code: .unsupported)
            }
            trees.append(tree)
        }

        return TreeEnsemble(
            source: file,
            library: .xgboost,
            libraryVersion: version,
            objective: objective,
            featureNames: names,
            featureTypes: (types?.isEmpty ?? true) ? nil : types,
            baseMargin: Double(baseMargin),
            baseScore: Double(baseScore),
            trees: trees,
            accumulation: .float32,
            categoryNames: categoryNames
        )
    }

    /// `base_score` is "5E-1" in XGBoost ≤ 2.x and "[5E-1]" (one value per target) in 3.x.
    private static func parseBaseScore(_ field: JSONField) throws(ModelError) -> Float {
        var text = try field.string().trimmingSpaces()
        if text.hasPrefix("[") && text.hasSuffix("]") {
            text = String(text.dropFirst().dropLast())
            let parts = text.split(separator: ",")
            guard parts.count == 1 else {
                throw field.error("expected one base score, found \(parts.count) (multi-target models are not supported)", code: .unsupported)
            }
            text = String(parts[0]).trimmingSpaces()
        }
        guard let v = Float(text), v.isFinite else {
            throw field.error("expected a finite number or [number], found \"\(text)\"")
        }
        return v
    }

    private static func xgboostTree(
        _ field: JSONField, featureCount: Int, categoryNames: [[String]]?, categoryWords: inout Int
    ) throws(ModelError) -> DecisionTree {
        let param = try field.member("tree_param")
        let n = try param.member("num_nodes").integer()
        guard n > 0 else { throw try param.member("num_nodes").error("expected at least one node, found \(n)", code: .inconsistent) }
        guard n <= ModelLimits.maximumNodes else {
            throw try param.member("num_nodes").error("declares \(n) nodes; at most \(ModelLimits.maximumNodes) are supported", code: .unsupported)
        }
        if let leafVector = try param.optionalMember("size_leaf_vector"), try leafVector.integer() > 1 {
            throw leafVector.error("vector leaves (multi-target trees) are not supported", code: .unsupported)
        }
        let left = try field.member("left_children").integers(count: n)
        let right = try field.member("right_children").integers(count: n)
        let splitIndex = try field.member("split_indices").integers(count: n)
        let conditions = try field.member("split_conditions").floats(count: n)
        let defaultLeft = try field.member("default_left").integers(count: n)
        let hessian = try field.member("sum_hessian").doubles(count: n)
        let categories = try xgboostCategorySets(field, nodeCount: n, left: left, splitIndex: splitIndex,
                                                 names: categoryNames, words: &categoryWords)
        for node in 0..<n where left[node] >= 0 && !conditions[node].isFinite && (categories.isEmpty || categories[node] == nil) {
            // XGBoost never writes such a split; an infinite threshold would break the routing we compile to.
            throw ModelError(.inconsistent, file: field.file, field: field.path + ".split_conditions[\(node)]",
                             "split threshold \(conditions[node]) is not finite")
        }
        let tree = DecisionTree(
            left: left.map { Int32(clamping: $0) },
            right: right.map { Int32(clamping: $0) },
            feature: splitIndex.map { Int32(clamping: $0) },
            threshold: conditions,
            defaultLeft: defaultLeft.map { $0 != 0 },
            missing: [DecisionTree.MissingRule](repeating: .nanDefault, count: n),
            leafValue: conditions.map(Double.init),
            cover: hessian,
            categories: categories
        )
        try tree.validate(featureCount: featureCount, file: field.file, field: field.path)
        return tree
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s = s.dropLast() }
        return String(s)
    }
}
