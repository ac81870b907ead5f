/// A simulation that cannot run: what was wrong, which argument or file, and what to do.
public struct SimulationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem; its `description` is a stable snake_case name.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable {
            case unknownStrategy = "unknown_strategy", outOfRange = "out_of_range"
            case unreadableCampaign = "unreadable_campaign", badCampaign = "bad_campaign"
            case unreadableModel = "unreadable_model", badModel = "bad_model", noBudget = "no_budget"
        }
        let base: Base

        /// A strategy other than none, random, risk, value, nba (or all).
        public static let unknownStrategy = Code(base: .unknownStrategy)
        /// A number outside its range (months 0, a negative budget …).
        public static let outOfRange = Code(base: .outOfRange)
        /// The campaign file cannot be read.
        public static let unreadableCampaign = Code(base: .unreadableCampaign)
        /// The campaign file is not a valid campaign (the `CampaignError` is in the message).
        public static let badCampaign = Code(base: .badCampaign)
        /// The model file cannot be read.
        public static let unreadableModel = Code(base: .unreadableModel)
        /// The model file is not a model over profile features.
        public static let badModel = Code(base: .badModel)
        /// Neither the campaign nor the arguments give a budget: strategies could not be compared
        /// at the same spend.
        public static let noBudget = Code(base: .noBudget)

        public var description: String { base.rawValue }
    }

    /// The kind of problem.
    public var code: Code
    /// The argument or file concerned (`--months`, `Deploy/campaign.json`).
    public var field: String
    /// What is wrong.
    public var problem: String
    /// What to do about it.
    public var fix: String

    public init(_ code: Code, field: String, _ problem: String, fix: String) {
        self.code = code
        self.field = field
        self.problem = problem
        self.fix = fix
    }

    /// `FIELD: PROBLEM; FIX [code]`.
    public var description: String { "\(field): \(problem); \(fix) [\(code)]" }
}
