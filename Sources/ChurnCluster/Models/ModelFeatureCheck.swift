import SubscriberProfiles

/// Why a model's features are not all in the profiles the cluster holds, told against the
/// feature schema in force: a feature the schema lacks (with the schema's closest names), or one
/// the schema has but the workers do not hold in memory yet (docs/models.md, "What the cluster
/// reads"). Pure: the schema comes from the caller.
enum ModelFeatureCheck {
    /// nil when every feature is held (by name, or `f<i>` for an unnamed model's i-th column);
    /// else what is wrong with the first feature that is not, and what to do.
    static func problem(modelFeatures: [String], held: [String], schema: FeatureSchema, schemaVersion: Int) -> String? {
        let heldSet = Set(held)
        for (i, name) in modelFeatures.enumerated() where !heldSet.contains(name) && !(name == "f\(i)" && i < held.count) {
            // Suggest only what a model can read today: the features the workers hold.
            let near = NameSuggestions.nearest(to: name, among: held).map { "'\($0)'" }.joined(separator: ", ")
            if schema.index(of: name) != nil {
                return "model feature '\(name)' is in the feature schema (version \(schemaVersion)) but not held in memory: in this release the workers hold and models read the built-in catalogue's \(held.count) features only (docs/models.md, \"What the cluster reads\"; closest held: \(near.isEmpty ? "none" : near))"
            }
            return "model feature '\(name)' is not a subscriber profile feature: neither the feature schema in force (version \(schemaVersion)) nor the profiles the workers hold have it (closest: \(near.isEmpty ? "none" : near))"
        }
        return nil
    }
}
