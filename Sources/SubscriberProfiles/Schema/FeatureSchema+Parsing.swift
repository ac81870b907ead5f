extension FeatureSchema {
    /// Top-level keys, in documentation order.
    static let topKeys = ["id", "features"]
    /// A feature's keys, in documentation order.
    static let featureKeys = ["name", "type", "categories", "column", "unit", "description", "group"]

    /// Reads and checks a schema file:
    /// `{"id": "subscriber_id", "features": [{"name": "tenure", "type": "number", "unit": "months",
    /// "description": "…"}, {"name": "contract", "type": "category", "categories": ["month-to-month",
    /// "one_year", "two_year"]}]}`.
    ///
    /// `id` and `features` are required; in a feature `name` and `type` are, and `categories` for
    /// (and only for) a category. Unknown keys are refused (a misspelt `categroies` would otherwise
    /// pass silently).
    /// - Throws: `FeatureSchemaError` for the first problem in file order, naming the field's path.
    /// - Parameter limit: the largest file read (a document stored by the database, which
    ///   PostgreSQL prints with more spaces than it was given, is read with a larger one).
    public static func parse(_ bytes: [UInt8], source: String, limit: Int = maxFileBytes) throws(FeatureSchemaError) -> FeatureSchema {
        let top = SchemaPlace(source: source)
        guard bytes.count <= limit else {
            throw top.error(.fileTooLarge, "the file has \(bytes.count) bytes, at most \(limit) are read", "shorten the descriptions")
        }
        let root: StrictJSON
        switch StrictJSONReader.read(bytes) {
        case .success(let document): root = document
        case .failure(let error): throw top.error(.malformedJSON, "\(error)", "fix the JSON syntax there; the file must be one object")
        }
        let members = try object(root, top, keys: topKeys)
        guard let idValue = members["id"] else { throw top.error(.missingKey, "no 'id'", "add \"id\": \"subscriber_id\" (the import file's id column)") }
        let id = try string(idValue, top.key("id"))
        guard let list = members["features"] else { throw top.error(.missingKey, "no 'features'", "add \"features\": [{\"name\": …, \"type\": …}, …]") }
        guard case .array(let items) = list else {
            throw top.key("features").error(.wrongType, "is \(list.typeName), not an array", "list the features in column order")
        }
        var features: [Feature] = []
        features.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            features.append(try feature(item, top.key("features").item(i)))
        }
        return try FeatureSchema(id: id, features: features, source: source)
    }

    static func feature(_ value: StrictJSON, _ place: SchemaPlace) throws(FeatureSchemaError) -> Feature {
        let m = try object(value, place, keys: featureKeys)
        guard let nameValue = m["name"] else { throw place.error(.missingKey, "the feature has no 'name'", "add \"name\": its column name") }
        let name = try string(nameValue, place.key("name"))
        guard let typeValue = m["type"] else {
            throw place.error(.missingKey, "feature '\(name)' has no 'type'", "add \"type\": one of \(Kind.names.joined(separator: ", "))")
        }
        let type = try string(typeValue, place.key("type"))
        let kind: Kind
        switch type {
        case "number": kind = .number
        case "integer": kind = .integer
        case "boolean": kind = .boolean
        case "category":
            guard let list = m["categories"] else {
                throw place.error(.badCategories, "category feature '\(name)' has no 'categories'", "list its values in code order: \"categories\": [\"a\", \"b\"]")
            }
            guard case .array(let items) = list else {
                throw place.key("categories").error(.wrongType, "is \(list.typeName), not an array", "list the values in code order")
            }
            var names: [String] = []
            for (c, item) in items.enumerated() { names.append(try string(item, place.key("categories").item(c))) }
            kind = .category(names)
        default:
            let near = NameSuggestions.nearest(to: type, among: Kind.names)
            throw place.key("type").error(.unknownType, "'\(String(type.prefix(40)))' is not a feature type",
                                          "use one of \(Kind.names.joined(separator: ", "))\(near.isEmpty ? "" : " (closest: \(near.joined(separator: ", ")))")")
        }
        if m["categories"] != nil, kind.name != "category" {
            throw place.key("categories").error(.badCategories, "only a category feature has categories ('\(name)' is \(type))",
                                                "remove them, or make the type category")
        }
        func text(_ key: String) throws(FeatureSchemaError) -> String? {
            guard let v = m[key] else { return nil }
            if case .null = v { return nil }
            return try string(v, place.key(key))
        }
        return Feature(name: name, kind: kind, column: try text("column"), unit: try text("unit"), description: try text("description"), group: try text("group"))
    }

    /// The members of an object, refusing unknown and repeated keys.
    static func object(_ value: StrictJSON, _ place: SchemaPlace, keys: [String]) throws(FeatureSchemaError) -> [String: StrictJSON] {
        guard case .object(let members) = value else {
            throw place.error(.wrongType, "is \(value.typeName), not an object", "write it as {\"key\": value, …}")
        }
        var out: [String: StrictJSON] = [:]
        for (key, v) in members {
            guard keys.contains(key) else {
                let near = NameSuggestions.nearest(to: key, among: keys)
                throw place.key(key).error(.unknownKey, "'\(String(key.prefix(40)))' is not a key here",
                                           "the keys are \(keys.joined(separator: ", "))\(near.isEmpty ? "" : " (closest: \(near.joined(separator: ", ")))")")
            }
            guard out.updateValue(v, forKey: key) == nil else {
                throw place.key(key).error(.duplicateKey, "'\(key)' is given twice", "keep one")
            }
        }
        return out
    }

    static func string(_ value: StrictJSON, _ place: SchemaPlace) throws(FeatureSchemaError) -> String {
        guard case .string(let s) = value else { throw place.error(.wrongType, "is \(value.typeName), not a string", "write it in quotes") }
        // PostgreSQL's text and jsonb cannot hold U+0000.
        guard !s.unicodeScalars.contains("\u{0}") else { throw place.error(.wrongType, "holds the character U+0000", "remove it") }
        return s
    }
}
