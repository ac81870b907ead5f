/// One finished month of one strategy, for progress on standard error (structured, one line
/// each): long runs say where they are without the library printing anything itself.
public struct SimulationProgress: Sendable, Equatable, CustomStringConvertible {
    /// What is happening.
    public enum Stage: String, Sendable {
        /// The month-0 base has been generated.
        case baseGenerated = "base_generated"
        /// A month of a strategy is done.
        case monthDone = "month_done"
        /// A strategy is done.
        case strategyDone = "strategy_done"
    }

    public var stage: Stage
    /// nil for `baseGenerated`.
    public var strategy: TargetingStrategy?
    /// 1-based; 0 for `baseGenerated`.
    public var month: Int
    public var months: Int
    /// Subscribers at the start of the month (the base for `baseGenerated`).
    public var subscribers: Int
    public var treated: Int
    public var control: Int
    public var churned: Int
    public var budgetUsed: Double

    /// `stage=month_done strategy=nba month=3/6 subscribers=… treated=… control=… churned=… budget_used=…`.
    public var description: String {
        "stage=\(stage.rawValue) strategy=\(strategy?.rawValue ?? "-") month=\(month)/\(months) subscribers=\(subscribers) "
            + "treated=\(treated) control=\(control) churned=\(churned) budget_used=\(SimulationTable.number(budgetUsed, 2))"
    }
}
