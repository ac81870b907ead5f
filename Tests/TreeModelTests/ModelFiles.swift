import TreeModel

/// Small hand-written model files for the loader and routing tests.
enum ModelFiles {
    /// One tree: root splits feature 0 at 0.5 (NaN → `defaultLeft`), left child splits feature 1 at -1.
    /// Leaves: 1 → -0.4 / 0.2 (from node 1's split), right of root → 0.3.
    static func xgboost(
        objective: String = "binary:logistic",
        baseScore: String = "[5E-1]",
        defaultLeft: String = "[1, 0, 0, 0, 0]",
        splitType: String = "[0, 0, 0, 0, 0]",
        left: String = "[1, 3, -1, -1, -1]",
        splitIndices: String = "[0, 1, 0, 0, 0]",
        conditions: String = "[0.5, -1.0, 0.3, -0.4, 0.2]",
        numNodes: String = "\"5\"",
        numTrees: String = "\"1\"",
        featureNames: String = "[\"tenure\", \"bill\"]",
        extraLearner: String = "",
        categories: String = "[]",
        categoriesNodes: String = "[]",
        categoriesSegments: String = "[]",
        categoriesSizes: String = "[]",
        extraModel: String = ""
    ) -> String {
        """
        {"learner": {
          "attributes": {}, "feature_names": \(featureNames), "feature_types": [],
          "gradient_booster": {"model": {\(extraModel)
            "gbtree_model_param": {"num_parallel_tree": "1", "num_trees": \(numTrees)},
            "iteration_indptr": [0, 1], "tree_info": [0],
            "trees": [{
              "base_weights": [0, 0, 0, 0, 0], "categories": \(categories), "categories_nodes": \(categoriesNodes),
              "categories_segments": \(categoriesSegments), "categories_sizes": \(categoriesSizes),
              "default_left": \(defaultLeft), "id": 0,
              "left_children": \(left), "loss_changes": [1, 1, 0, 0, 0],
              "parents": [2147483647, 0, 0, 1, 1], "right_children": [2, 4, -1, -1, -1],
              "split_conditions": \(conditions), "split_indices": \(splitIndices),
              "split_type": \(splitType), "sum_hessian": [10, 6, 4, 3, 3],
              "tree_param": {"num_deleted": "0", "num_feature": "2", "num_nodes": \(numNodes), "size_leaf_vector": "1"}
            }]
          }, "name": "gbtree"},
          "learner_model_param": {"base_score": "\(baseScore)", "boost_from_average": "1", "num_class": "0", "num_feature": "2", "num_target": "1"},
          "objective": {"name": "\(objective)", "reg_loss_param": {"scale_pos_weight": "1"}}\(extraLearner)
        }, "version": [3, 2, 0]}
        """
    }

    /// One LightGBM tree: node 0 splits feature 0 at `threshold` (≤ goes left) with `decisionType`;
    /// left → leaf 0 (-0.5), right → node 1 on feature 1 at 2.0 → leaves 1 (0.1) and 2 (0.7).
    static func lightgbm(
        objective: String = "binary sigmoid:1",
        threshold: String = "0.5 2",
        decisionType: String = "2 10",
        numCat: String = "0",
        leftChild: String = "-1 -2",
        catBoundaries: String? = nil,
        catThreshold: String? = nil,
        featureInfos: String = "[0:1] [0:5]",
        end: Bool = true
    ) -> String {
        var s = """
        tree
        version=v4
        num_class=1
        num_tree_per_iteration=1
        label_index=0
        max_feature_idx=1
        objective=\(objective)
        feature_names=tenure bill
        feature_infos=\(featureInfos)
        tree_sizes=400

        Tree=0
        num_leaves=3
        num_cat=\(numCat)
        split_feature=0 1
        split_gain=1 1
        threshold=\(threshold)
        decision_type=\(decisionType)
        left_child=\(leftChild)
        right_child=1 -3
        leaf_value=-0.5 0.10000000000000001 0.69999999999999996
        leaf_weight=1 1 1
        leaf_count=5 3 2
        internal_value=0 0
        internal_weight=0 0
        internal_count=10 5\(catBoundaries.map { "\ncat_boundaries=" + $0 } ?? "")\(catThreshold.map { "\ncat_threshold=" + $0 } ?? "")
        is_linear=0
        shrinkage=1


        """
        if end { s += "end of trees\n\nfeature_importances:\ntenure=1\n" }
        return s
    }

    static func load(_ text: String, file: String = "m.json") throws(ModelError) -> TreeEnsemble {
        try TreeEnsemble.parse(Array(text.utf8), file: file)
    }

    // MARK: Categorical

    /// The XGBoost tree of `xgboost()` with a categorical root: feature 0 (a plan code) in
    /// `categories` goes right (leaf 0.3), every other value left to node 1; NaN goes left.
    static func xgboostCategorical(
        categories: String = "[0, 3, 33]",
        segments: String = "[0]",
        sizes: String = "[3]",
        nodes: String = "[0]",
        splitType: String = "[1, 0, 0, 0, 0]",
        defaultLeft: String = "[1, 0, 0, 0, 0]",
        extraModel: String = ""
    ) -> String {
        xgboost(defaultLeft: defaultLeft, splitType: splitType, conditions: "[1E-45, -1.0, 0.3, -0.4, 0.2]",
                featureNames: "[\"plan\", \"bill\"]", categories: categories, categoriesNodes: nodes,
                categoriesSegments: segments, categoriesSizes: sizes, extraModel: extraModel)
    }

    /// The LightGBM tree of `lightgbm()` with a categorical root: feature 0 (a plan code) in the
    /// bitset goes left (leaf -0.5), every other value, NaN included, right to node 1.
    /// The default bitset holds categories 0, 3 and 33.
    static func lightgbmCategorical(
        decisionType: String = "9 10",
        threshold: String = "0 2",
        numCat: String = "1",
        catBoundaries: String = "0 2",
        catThreshold: String = "9 2",
        featureInfos: String = "-1:0:1:2:3:7:33:40 [0:5]"
    ) -> String {
        lightgbm(threshold: threshold, decisionType: decisionType, numCat: numCat,
                 catBoundaries: catBoundaries, catThreshold: catThreshold, featureInfos: featureInfos)
    }
}
