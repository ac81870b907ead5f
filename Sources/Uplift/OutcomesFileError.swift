import FeatureTable

/// An outcomes file that cannot be imported: what is wrong, where (file, line, column) and what
/// was expected. Nothing of a file with an error is imported.
public struct OutcomesFileError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem; its `description` is a stable snake_case name.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable {
            case unreadable, malformedCSV = "malformed_csv", missingColumn = "missing_column"
            case unknownColumn = "unknown_column", malformedSubscriberID = "malformed_subscriber_id"
            case notBinary = "not_binary", malformedTime = "malformed_time"
            case duplicateSubscriber = "duplicate_subscriber"
        }
        let base: Base

        /// The file cannot be opened or read.
        public static let unreadable = Code(base: .unreadable)
        /// Not CSV as `CSVTable` reads it: an empty file, a line with the wrong number of fields,
        /// an unclosed quote, a column named twice.
        public static let malformedCSV = Code(base: .malformedCSV)
        /// The header lacks `subscriber_id`, `churned` or `observed_at`.
        public static let missingColumn = Code(base: .missingColumn)
        /// The header has a column the format does not have (a misspelt `accepted`, say).
        public static let unknownColumn = Code(base: .unknownColumn)
        /// A `subscriber_id` that is not an integer.
        public static let malformedSubscriberID = Code(base: .malformedSubscriberID)
        /// A `churned` that is not 0 or 1, or an `accepted` that is not 0, 1 or empty.
        public static let notBinary = Code(base: .notBinary)
        /// An `observed_at` that is not an ISO 8601 date or timestamp with a zone.
        public static let malformedTime = Code(base: .malformedTime)
        /// A subscriber on two lines of one file.
        public static let duplicateSubscriber = Code(base: .duplicateSubscriber)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// The file.
    public var file: String
    /// 1-based line (the header is line 1), when the problem is on a line.
    public var line: Int?
    /// The column's name, when the problem is in a column.
    public var column: String?
    /// What was wrong and what was expected.
    public var message: String

    /// Creates an error; see the properties for the meaning of each part.
    public init(_ code: Code, file: String, line: Int?, column: String?, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    /// A CSV-level error from `CSVTable`, with its file, line and column kept.
    init(_ error: TableError) {
        let unreadable = error.line == nil
        self.init(unreadable ? .unreadable : .malformedCSV, file: error.file, line: error.line,
                  column: error.column, error.message)
    }

    /// `file:line: column 'name': message`, as compilers print locations.
    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let column { s += ": column '\(column)'" }
        return s + ": " + message
    }
}
