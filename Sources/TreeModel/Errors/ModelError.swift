/// A model file that cannot be used: unreadable, malformed, truncated or of a kind ChurnGrid
/// does not score. The description names the file, where in it (field path or line) and what
/// was expected, so the data scientist who exported it can fix the export.
public struct ModelError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreadable, malformed, unsupported, inconsistent, invalidInput
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file could not be opened or read.
        public static let unreadable = Code(.unreadable)
        /// The file is not valid JSON / LightGBM text, or is cut short.
        public static let malformed = Code(.malformed)
        /// Well formed, but uses something ChurnGrid does not score (objective, categorical split…).
        public static let unsupported = Code(.unsupported)
        /// Well formed, but the values contradict each other (a child index out of range…).
        public static let inconsistent = Code(.inconsistent)
        /// The model is fine but the input given to it is not (wrong feature count…).
        public static let invalidInput = Code(.invalidInput)

        public var description: String { base.rawValue }
    }

    /// What kind of problem this is.
    public var code: Code
    /// The model file (or a label such as "<memory>").
    public var file: String
    /// Where in the file: a JSON path such as `learner.gradient_booster.model.trees[3].split_conditions`,
    /// or a LightGBM key such as `Tree=12 threshold`.
    public var field: String?
    /// 1-based line in a text model, when known.
    public var line: Int?
    /// What was wrong and what was expected.
    public var message: String

    /// Creates an error; see the properties for the meaning of each part.
    public init(_ code: Code, file: String, field: String? = nil, line: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.field = field
        self.line = line
        self.message = message
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        if let field { s += ": \(field)" }
        return s + ": " + message
    }
}
