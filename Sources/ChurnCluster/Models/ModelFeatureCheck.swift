import SubscriberProfiles
import TreeModel

/// Why a model cannot read the profiles the cluster can hold, told against the feature schema in
/// force: a feature the schema lacks (with the schema's closest names), a built-in catalogue
/// feature the schema dropped, or a categorical split on a category code the schema's feature
/// does not have (docs/models.md, "What the cluster reads"). Pure: the schema comes from the caller.
enum ModelFeatureCheck {
    /// nil when the model reads only what the schema has (by name, or `f<i>` for an unnamed
    /// model's i-th catalogue column); else what is wrong with the first problem found, and what to do.
    static func problem(model: TreeEnsemble, schema: FeatureSchema, schemaVersion: Int) -> String? {
        if let problem = problem(modelFeatures: model.featureNames, schema: schema, schemaVersion: schemaVersion) { return problem }
        // Category codes beyond the schema's list: the split would compare values no profile holds.
        for tree in model.trees {
            for (node, set) in tree.categories.enumerated() {
                guard let set, node < tree.feature.count else { continue }
                let j = Int(tree.feature[node])
                guard j >= 0, j < model.featureNames.count, let f = schema.index(of: model.featureNames[j]),
                      case .category(let names) = schema.features[f].kind, let top = set.categories.last, top >= names.count else { continue }
                return "model feature '\(model.featureNames[j])' splits on category code \(top), but the feature schema in force (version \(schemaVersion)) gives it \(names.count) categories (codes 0–\(names.count - 1)): train the model on the schema's codes, or add the categories to the schema"
            }
        }
        return nil
    }

    /// The feature-name part of `problem(model:schema:schemaVersion:)`.
    static func problem(modelFeatures: [String], schema: FeatureSchema, schemaVersion: Int) -> String? {
        let catalogue = FeatureCatalogue.names
        for (i, name) in modelFeatures.enumerated() where schema.index(of: name) == nil {
            if name == "f\(i)", i < catalogue.count, schema.index(of: catalogue[i]) != nil { continue }
            let near = NameSuggestions.nearest(to: name, among: schema.names).map { "'\($0)'" }.joined(separator: ", ")
            if catalogue.contains(name) {
                return "model feature '\(name)' is a built-in catalogue feature that the feature schema in force (version \(schemaVersion)) does not have (dropped by a migration): every profile would read it as missing (closest in the schema: \(near.isEmpty ? "none" : near))"
            }
            if name == "f\(i)" {
                return "model feature '\(name)' is unnamed: an unnamed model reads the built-in catalogue's features in order, and the feature schema in force (version \(schemaVersion)) has no catalogue feature \(i) (train the model with feature names)"
            }
            return "model feature '\(name)' is not a subscriber profile feature: the feature schema in force (version \(schemaVersion)) does not have it (closest: \(near.isEmpty ? "none" : near); see docs/features.md, or extend the schema with churngrid profiles migrate --schema)"
        }
        return nil
    }
}
