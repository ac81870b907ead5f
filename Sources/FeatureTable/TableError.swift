/// A CSV file that cannot be used, with where and why.
public struct TableError: Error, Sendable, CustomStringConvertible {
    /// The file.
    public var file: String
    /// 1-based line of the problem (the header is line 1), when it concerns a line.
    public var line: Int?
    /// The column concerned, when one is.
    public var column: String?
    /// What was wrong and what was expected.
    public var message: String

    /// Creates an error; see the properties for the meaning of each part.
    public init(file: String, line: Int? = nil, column: String? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let column { s += ": column '\(column)'" }
        return s + ": " + message
    }
}
