/// A feature schema that cannot be used: which file, which field (a path such as
/// `features[3].type`), what is wrong and what to do. Nothing of a refused schema is applied.
public struct FeatureSchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem; `rawValue` is a stable snake_case name.
    public enum Code: String, Sendable, CaseIterable {
        /// The file is larger than `FeatureSchema.maxFileBytes`.
        case fileTooLarge = "file_too_large"
        /// Not one JSON document.
        case malformedJSON = "malformed_json"
        /// A value of the wrong JSON type.
        case wrongType = "wrong_type"
        /// A key the format does not have (a misspelling, usually).
        case unknownKey = "unknown_key"
        /// A key given twice in one object.
        case duplicateKey = "duplicate_key"
        /// A required key is absent.
        case missingKey = "missing_key"
        /// A feature or id name that is not a lowercase SQL identifier ChurnGrid can use as a column.
        case badName = "bad_name"
        /// Two features with one name, or a category listed twice.
        case duplicateName = "duplicate_name"
        /// A type other than number, integer, boolean, category.
        case unknownType = "unknown_type"
        /// A category feature without categories, or categories on another type.
        case badCategories = "bad_categories"
        /// More features or categories than PostgreSQL or the profile codes can hold.
        case tooMany = "too_many"
    }

    public var code: Code
    /// The file (or other source) the schema came from.
    public var source: String
    /// Path of the field concerned, when one is.
    public var field: String?
    /// What is wrong.
    public var problem: String
    /// What to do about it.
    public var fix: String

    public init(code: Code, source: String, field: String?, problem: String, fix: String) {
        self.code = code
        self.source = source
        self.field = field
        self.problem = problem
        self.fix = fix
    }

    public var description: String {
        "\(source)\(field.map { ": \($0)" } ?? ""): \(problem) (\(code.rawValue)); \(fix)"
    }
}

/// Where in a schema file a value is.
struct SchemaPlace {
    var source: String
    var field: String?

    func key(_ k: String) -> SchemaPlace {
        SchemaPlace(source: source, field: field.map { "\($0).\(k)" } ?? k)
    }

    func item(_ i: Int) -> SchemaPlace {
        SchemaPlace(source: source, field: (field ?? "") + "[\(i)]")
    }

    func error(_ code: FeatureSchemaError.Code, _ problem: String, _ fix: String) -> FeatureSchemaError {
        FeatureSchemaError(code: code, source: source, field: field, problem: problem, fix: fix)
    }
}
