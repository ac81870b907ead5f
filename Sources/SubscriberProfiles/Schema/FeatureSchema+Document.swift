extension FeatureSchema {
    /// The schema as a schema file: one feature a line, keys in documentation order, absent
    /// optional keys left out. `parse(document())` gives the same schema, and equal schemas give
    /// equal documents (what the database stores and compares).
    public func document() -> String {
        var out = "{\n  \"id\": \(Self.quoted(id)),\n  \"features\": [\n"
        for (i, f) in features.enumerated() {
            var parts = ["\"name\": \(Self.quoted(f.name))", "\"type\": \(Self.quoted(f.kind.name))"]
            if case .category(let names) = f.kind {
                parts.append("\"categories\": [\(names.map(Self.quoted).joined(separator: ", "))]")
            }
            if let column = f.column { parts.append("\"column\": \(Self.quoted(column))") }
            if let unit = f.unit { parts.append("\"unit\": \(Self.quoted(unit))") }
            if let description = f.description { parts.append("\"description\": \(Self.quoted(description))") }
            if let group = f.group { parts.append("\"group\": \(Self.quoted(group))") }
            out += "    {" + parts.joined(separator: ", ") + "}" + (i == features.count - 1 ? "\n" : ",\n")
        }
        return out + "  ]\n}\n"
    }

    /// `s` as a JSON string.
    static func quoted(_ s: String) -> String { StrictJSONReader.literal(s) }
}

extension FeatureSchema {
    /// The synthetic base's catalogue as a schema: the default, which a new database starts with
    /// and `Deploy/schema/default.json` holds. Every feature is a `number` (their columns were
    /// created `real`).
    public static let catalogue: FeatureSchema = {
        let features = FeatureCatalogue.features.map {
            Feature(name: $0.name, kind: .number, unit: $0.unit, description: $0.meaning, group: $0.group.rawValue)
        }
        do {
            return try FeatureSchema(id: "subscriber_id", features: features, source: "FeatureCatalogue")
        } catch {
            // The catalogue is code; the schema tests check it is a valid schema.
            fatalError("the built-in catalogue is not a valid schema: \(error)")
        }
    }()
}
