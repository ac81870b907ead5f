/// The operator's subscriber features as data: the id column and, in order, every feature with
/// its type (docs/models.md, "The feature schema"). The schema in force is stored in PostgreSQL
/// (`churngrid_feature_schema`) and `subscriber_profiles` has one column per feature; the
/// synthetic base's catalogue is the default schema (`FeatureSchema.catalogue`,
/// `Deploy/schema/default.json`).
///
/// Every value is held in memory as a `Float32` (NaN = missing), whatever its type: a boolean as
/// 0 or 1, a category as its code (its position in `categories`), which is what tree models split on.
public struct FeatureSchema: Sendable, Equatable {
    /// A feature's type: how its values are written, checked and stored.
    public enum Kind: Sendable, Equatable {
        /// Any finite number (`real` in PostgreSQL).
        case number
        /// A whole number of at most 2^24 in magnitude, exact in a `Float32` (`integer`).
        case integer
        /// true/false, 1/0, yes/no, t/f (`boolean`; 1 or 0 in memory).
        case boolean
        /// One of the listed values, by name or by code = position in the list (`smallint`).
        case category([String])

        /// The type's name in a schema file.
        public var name: String {
            switch self {
            case .number: "number"
            case .integer: "integer"
            case .boolean: "boolean"
            case .category: "category"
            }
        }

        /// The column type in `subscriber_profiles`.
        public var sqlType: String {
            switch self {
            case .number: "real"
            case .integer: "integer"
            case .boolean: "boolean"
            case .category: "smallint"
            }
        }

        /// `column` read as the `real` a profile holds (a boolean as 0/1, a category as its code).
        public func asReal(_ column: String) -> String {
            switch self {
            case .number: column
            case .integer, .category: "\(column)::real"
            case .boolean: "\(column)::integer::real"
            }
        }

        /// A `real` (`value`, as `asReal` gives it) cast back to the column's type.
        public func fromReal(_ value: String) -> String {
            switch self {
            case .number: value
            case .boolean: "\(value)::integer::boolean"
            case .integer, .category: "\(value)::\(sqlType)"
            }
        }

        /// Every type name, in documentation order.
        public static let names = ["number", "integer", "boolean", "category"]
    }

    /// One feature.
    public struct Feature: Sendable, Equatable {
        /// Column name, also the name models read it by.
        public var name: String
        public var kind: Kind
        /// The import file's header for it, when that is not `name` (a warehouse export's
        /// `MonthlyCharges` for `monthly_charges`).
        public var column: String?
        /// Unit of the value (documentation only).
        public var unit: String?
        /// What the value means, and what missing means for it (documentation only).
        public var description: String?
        /// A heading to group it under (documentation only).
        public var group: String?

        public init(name: String, kind: Kind, column: String? = nil, unit: String? = nil, description: String? = nil, group: String? = nil) {
            self.name = name
            self.kind = kind
            self.column = column
            self.unit = unit
            self.description = description
            self.group = group
        }
    }

    /// The header of an import file's subscriber-id column (in PostgreSQL it is always
    /// `subscriber_profiles.subscriber_id`).
    public let id: String
    /// Every feature, in column order.
    public let features: [Feature]
    /// Position of each feature by name.
    private let positions: [String: Int]
    /// For each category feature, code by category name.
    private let codes: [Int: [String: Int]]

    /// Most features a schema can have: PostgreSQL's 1,600 columns a table, less the id, the
    /// shard key and `updated_at`.
    public static let maxFeatures = 1597
    /// Most categories a feature can have (codes are `smallint`).
    public static let maxCategories = Int(Int16.max)
    /// Largest schema file read.
    public static let maxFileBytes = 4 << 20
    /// Columns of `subscriber_profiles` that are not features.
    public static let tableColumns = ["subscriber_id", "shard_key", "updated_at"]

    /// A checked schema.
    /// - Throws: `FeatureSchemaError` for the first problem, as `parse` would report it.
    public init(id: String, features: [Feature], source: String = "schema") throws(FeatureSchemaError) {
        let top = SchemaPlace(source: source)
        try Self.checkHeader(id, top.key("id"))
        guard !features.isEmpty else {
            throw top.key("features").error(.missingKey, "the schema has no features", "list at least one feature")
        }
        guard features.count <= Self.maxFeatures else {
            throw top.key("features").error(.tooMany, "\(features.count) features; a schema holds at most \(Self.maxFeatures) (PostgreSQL's 1,600 columns a table)",
                                             "keep the features your models, triggers and campaigns read")
        }
        var positions: [String: Int] = [:], headers: [String: Int] = [:]
        var codes: [Int: [String: Int]] = [:]
        for (i, f) in features.enumerated() {
            let place = top.key("features").item(i)
            try Self.checkName(f.name, place.key("name"))
            if let earlier = positions.updateValue(i, forKey: f.name) {
                throw place.key("name").error(.duplicateName, "'\(f.name)' is also features[\(earlier)]", "give each feature its own name")
            }
            let header = f.column ?? f.name
            if let column = f.column { try Self.checkHeader(column, place.key("column")) }
            if header == id {
                throw place.key(f.column == nil ? "name" : "column").error(.duplicateName, "'\(header)' is the schema's id column", "give the feature another column")
            }
            if let earlier = headers.updateValue(i, forKey: header) {
                throw place.key(f.column == nil ? "name" : "column").error(.duplicateName, "column '\(header)' is also features[\(earlier)]'s", "give each feature its own column")
            }
            if case .category(let names) = f.kind {
                let list = place.key("categories")
                guard !names.isEmpty else {
                    throw list.error(.badCategories, "a category feature needs at least one category", "list its values in code order")
                }
                guard names.count <= Self.maxCategories else {
                    throw list.error(.tooMany, "\(names.count) categories; at most \(Self.maxCategories)", "group rare values into one category")
                }
                var byName: [String: Int] = [:]
                for (c, name) in names.enumerated() {
                    guard !name.isEmpty, name.utf8.count <= 256 else {
                        throw list.item(c).error(.badCategories, "a category is 1–256 bytes", "name the value")
                    }
                    guard name.first != " ", name.last != " ", !Self.missingWords.contains(name) else {
                        throw list.item(c).error(.badCategories, "'\(name)' could never be matched: cells are read without surrounding spaces, and an empty cell, NaN or nan is missing",
                                                 "name the value without surrounding spaces, and not NaN")
                    }
                    if let earlier = byName.updateValue(c, forKey: name) {
                        throw list.item(c).error(.duplicateName, "'\(name)' is also categories[\(earlier)]", "list each value once")
                    }
                }
                codes[i] = byName
            }
        }
        self.id = id
        self.features = features
        self.positions = positions
        self.codes = codes
    }

    public static func == (a: FeatureSchema, b: FeatureSchema) -> Bool {
        a.id == b.id && a.features == b.features
    }

    /// Feature names in column order.
    public var names: [String] { features.map(\.name) }

    /// Number of features.
    public var count: Int { features.count }

    /// Column position of the feature called `name`.
    public func index(of name: String) -> Int? { positions[name] }

    /// The code of category `value` of feature `j` (nil: not one of its categories).
    public func code(of value: String, feature j: Int) -> Int? { codes[j]?[value] }

    /// Words PostgreSQL reserves (as column names they would need quoting everywhere).
    static let reservedWords: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "binary", "both",
        "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint", "create", "cross",
        "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
        "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch",
        "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner",
        "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
        "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer",
        "overlaps", "placing", "primary", "references", "returning", "right", "select", "session_user", "similar",
        "some", "symmetric", "system_user", "table", "tablesample", "then", "to", "trailing", "true", "union",
        "unique", "user", "using", "variadic", "verbose", "when", "where", "window", "with",
    ]

    /// PostgreSQL's system columns: every table has them, so no feature can be called so.
    static let systemColumns: Set<String> = ["tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"]

    /// Cell texts that mean missing in every type.
    static let missingWords: Set<String> = ["NaN", "nan"]

    /// A name must be a column name ChurnGrid can write unquoted: 1–63 bytes of `a-z 0-9 _`,
    /// not starting with a digit, not a reserved word or system column, not one of the table's
    /// own columns.
    static func checkName(_ name: String, _ place: SchemaPlace) throws(FeatureSchemaError) {
        let bytes = Array(name.utf8)
        let valid = !bytes.isEmpty && bytes.count <= 63
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && !(bytes[0] >= 0x30 && bytes[0] <= 0x39)
        guard valid else {
            throw place.error(.badName, "'\(String(name.prefix(80)))' is not 1–63 characters of a-z, 0-9 and _ starting with a letter or _",
                              "use a lowercase snake_case name, e.g. \(suggestedName(name)) (and \"column\": \"\(String(name.prefix(80)))\" if the import file's header is that)")
        }
        guard !reservedWords.contains(name) else {
            throw place.error(.badName, "'\(name)' is a word PostgreSQL reserves", "name it more precisely, e.g. \(name)_value")
        }
        guard !systemColumns.contains(name) else {
            throw place.error(.badName, "'\(name)' is a system column of every PostgreSQL table", "name it more precisely, e.g. \(name)_value")
        }
        guard !tableColumns.contains(name) else {
            throw place.error(.badName, "'\(name)' is a column subscriber_profiles keeps for itself", "give the feature another name")
        }
    }

    /// An import file's header: 1–256 bytes, no control characters, no surrounding spaces (cells
    /// and headers are matched as written).
    static func checkHeader(_ header: String, _ place: SchemaPlace) throws(FeatureSchemaError) {
        guard !header.isEmpty, header.utf8.count <= 256, header.first != " ", header.last != " ",
              !header.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw place.error(.badName, "'\(String(header.prefix(80)))' is not a column header of 1–256 bytes without control characters or surrounding spaces",
                              "write the header as the import file has it")
        }
    }

    /// `name` lowercased with every other character replaced by `_`.
    static func suggestedName(_ name: String) -> String {
        var out = ""
        for u in name.lowercased().unicodeScalars.prefix(63) {
            out.unicodeScalars.append(("a"..."z").contains(u) || ("0"..."9").contains(u) ? u : "_")
        }
        if out.isEmpty { return "feature_1" }
        return out.first?.isNumber == true ? "f_" + out : out
    }
}
