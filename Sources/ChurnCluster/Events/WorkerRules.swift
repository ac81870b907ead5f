import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles

/// Trigger rules on a worker: a rule's `features` conditions may read any feature of the schema
/// in force (docs/triggers.md). Those the built-in catalogue lacks are held as extra columns
/// (docs/models.md, "What the cluster reads"), loaded on every held shard before the rules apply.
extension WorkerActor {
    /// Parses `package`'s rules against the profiles held here, loading the extra columns they
    /// read first.
    /// - Throws: `TriggerRulesError` for rules that do not parse (a feature the schema lacks named
    ///   with its closest names); `ClusterError` when their columns cannot be loaded.
    func parseRules(_ package: TriggerPackage) async throws -> TriggerRules {
        let bytes = package.bytes.elements, source = package.source
        let catalogue = FeatureCatalogue.names
        if case .success(let rules) = Self.parse(bytes, source, catalogue + extraLayout) { return rules }
        // A feature not held here yet: read against the whole schema in force (and the features
        // dropped from it since, held as missing: their conditions never hold), then held.
        let url = postgresURL
        let (schema, dropped) = try await loader.run {
            let c = try PostgresConnection(url: url)
            let stored = try FeatureSchemaStore.inForce(c)
            return (stored.schema.names, try FeatureSchemaStore.dropped(c, inForce: stored))
        }
        let known = Set(catalogue)
        let rules = try Self.parse(bytes, source, Self.readableFeatures(schema: schema, dropped: dropped)).get()
        let layout = try await holdExtras(adding: rules.featuresRead.filter { !known.contains($0) })
        return try Self.parse(bytes, source, catalogue + layout).get()
    }

    private static func parse(_ bytes: [UInt8], _ source: String, _ names: [String]) -> Result<TriggerRules, TriggerRulesError> {
        Result { () throws(TriggerRulesError) in try TriggerRules.parse(bytes, file: source, featureNames: names) }
    }

    /// The features trigger rules and campaign eligibility may read on a cluster whose schema in
    /// force has `schema`: the catalogue's (held always), then the schema's others, then those
    /// `dropped` from it since (held as missing).
    static func readableFeatures(schema: [String], dropped: [String] = []) -> [String] {
        var known = Set(FeatureCatalogue.names)
        var out = FeatureCatalogue.names
        for name in schema + dropped where known.insert(name).inserted { out.append(name) }
        return out
    }
}
