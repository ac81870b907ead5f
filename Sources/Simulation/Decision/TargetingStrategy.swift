/// Who gets contacted, and with what, at the same budget. Every strategy but `none` draws its
/// control group with the campaign's `ControlGroup` among the subscribers it selects, and fills
/// channel capacity and budget with `CampaignFill` under the same contact policy; they differ only
/// in whom they rank first and which offer they make.
public enum TargetingStrategy: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    /// No contact at all: the world without a campaign.
    case none
    /// Subscribers in a random order, each with the campaign's first offer it is eligible for.
    case random
    /// Highest churn probability first, each with the campaign's first offer it is eligible for
    /// (risk-only targeting, what most operators start with).
    case risk
    /// Highest value if retained (`V`) first, each with the campaign's first eligible offer.
    case value
    /// The retention engine: value tier × risk band cells, offers chosen by the subscriber's top
    /// reasons and ranked by expected value `p × acceptance × effect × CLV − cost`
    /// (`NextBestAction`), contact policy, then capacity and budget by expected value (`CampaignFill`).
    case nba

    public var description: String { rawValue }

    /// The strategies a `--strategy` argument names: one of the five, or `all` for all five in order.
    /// - Throws: `SimulationError` (`unknownStrategy`) naming the accepted values.
    public static func parse(_ name: String) throws(SimulationError) -> [TargetingStrategy] {
        if name == "all" { return allCases }
        guard let s = TargetingStrategy(rawValue: name) else {
            throw SimulationError(.unknownStrategy, field: "--strategy", "unknown strategy '\(name)'",
                                  fix: "use one of none, random, risk, value, nba, or all")
        }
        return [s]
    }
}
