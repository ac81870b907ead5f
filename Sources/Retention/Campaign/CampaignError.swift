/// A campaign file that cannot be used: which file, which field (a path such as
/// `offers[1].cost`), what is wrong and what to do. Nothing of a refused file is used.
public struct CampaignError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem; its `description` is a stable snake_case name.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, CaseIterable {
            case fileTooLarge = "file_too_large", malformedJSON = "malformed_json", wrongType = "wrong_type"
            case unknownKey = "unknown_key", duplicateKey = "duplicate_key", missingKey = "missing_key"
            case outOfRange = "out_of_range", badName = "bad_name", emptyList = "empty_list", duplicateEntry = "duplicate_entry"
            case unknownChannel = "unknown_channel", unknownFeature = "unknown_feature", unknownOffer = "unknown_offer"
            case duplicateOffer = "duplicate_offer", unknownTier = "unknown_tier", unknownBand = "unknown_band"
            case badQuietHours = "bad_quiet_hours", notIncreasing = "not_increasing", inconsistent = "inconsistent"
        }
        let base: Base

        /// The file is larger than `Campaign.maxFileBytes`.
        public static let fileTooLarge = Code(base: .fileTooLarge)
        /// Not one JSON document (syntax, UTF-8, truncation, nesting too deep).
        public static let malformedJSON = Code(base: .malformedJSON)
        /// A value of the wrong JSON type.
        public static let wrongType = Code(base: .wrongType)
        /// A key the format does not have (a misspelling, usually).
        public static let unknownKey = Code(base: .unknownKey)
        /// A key given twice in one object.
        public static let duplicateKey = Code(base: .duplicateKey)
        /// A required key is absent.
        public static let missingKey = Code(base: .missingKey)
        /// A number outside its field's range (a negative cost, an acceptance above 1, …).
        public static let outOfRange = Code(base: .outOfRange)
        /// A campaign name or offer id that is not 1–64 characters of `A-Z a-z 0-9 _ - .`.
        public static let badName = Code(base: .badName)
        /// An empty list where one value at least is needed (an eligibility list).
        public static let emptyList = Code(base: .emptyList)
        /// A list entry given twice (an offer twice in a cell, a reason twice).
        public static let duplicateEntry = Code(base: .duplicateEntry)
        /// A channel other than sms, push, email, call, robot_call.
        public static let unknownChannel = Code(base: .unknownChannel)
        /// A reason or eligibility feature the catalogue does not have.
        public static let unknownFeature = Code(base: .unknownFeature)
        /// A matrix cell naming an offer the file does not define.
        public static let unknownOffer = Code(base: .unknownOffer)
        /// Two offers with one id.
        public static let duplicateOffer = Code(base: .duplicateOffer)
        /// A matrix tier that `value_tiers` does not define.
        public static let unknownTier = Code(base: .unknownTier)
        /// A band other than low, medium, high, very_high.
        public static let unknownBand = Code(base: .unknownBand)
        /// Quiet hours that are not `{"from": "HH:MM", "to": "HH:MM"}` with two different times.
        public static let badQuietHours = Code(base: .badQuietHours)
        /// `value_tiers` cut points not strictly increasing.
        public static let notIncreasing = Code(base: .notIncreasing)
        /// Two fields that contradict each other (a per-reason effect for a reason the offer does not address).
        public static let inconsistent = Code(base: .inconsistent)

        /// Every code, in documentation order.
        public static var all: [Code] { Base.allCases.map { Code(base: $0) } }
        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// The file, as given to `Campaign.parse(_:source:)`.
    public var source: String
    /// The offending field's path (`offers[1].cost`, `matrix.high.very_high[0]`); nil for the whole file.
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

    /// `FILE: FIELD: PROBLEM. FIX [code]`.
    public var description: String {
        var s = source + ": "
        if let field { s += field + ": " }
        s += problem
        if !fix.isEmpty { s += ". " + fix.prefix(1).uppercased() + fix.dropFirst() }
        return s + " [\(code)]"
    }
}
