import Uplift

/// What one strategy achieved over the whole simulation, on the synthetic base.
///
/// - **Retention rate**: the share of the month-0 base still subscribed after the last month.
/// - **Uplift**: control churn rate − treatment churn rate over all months' contacts
///   (subscriber-months), in percentage points, with Newcombe's 95% interval (`UpliftReport`).
/// - **Retained**: uplift × treated (`UpliftReport.retained`).
/// - **Net value**: saved CLV − offer costs, measured as a real report would: the CLV-weighted
///   churn rates of the two arms, `(r_control − r_treatment) × Σ_treatment CLV`, minus the budget used.
/// - **Net value expected**: the same with the world's knowledge — Σ over the treated of
///   (untreated − treated hazard) × CLV, minus costs — free of the control arm's sampling noise.
///   Only a simulation can know it.
public struct StrategyResult: Sendable, Equatable, Encodable {
    public var strategy: TargetingStrategy
    public var months: Int
    /// Subscribers at month 0.
    public var subscribers: Int
    public var seed: UInt64
    /// The budget of each monthly run (the same for every strategy).
    public var budgetPerMonth: Double
    /// Month by month.
    public var monthly: [MonthTally]

    public init(strategy: TargetingStrategy, months: Int, subscribers: Int, seed: UInt64, budgetPerMonth: Double, monthly: [MonthTally]) {
        self.strategy = strategy
        self.months = months
        self.subscribers = subscribers
        self.seed = seed
        self.budgetPerMonth = budgetPerMonth
        self.monthly = monthly
    }

    /// All months together.
    public var total: MonthTally {
        var t = MonthTally()
        for m in monthly { t.add(m) }
        return t
    }

    /// Subscribers at the end (after the last month's joiners).
    public var subscribersAtEnd: Int {
        guard let last = monthly.last else { return subscribers }
        return last.subscribers - last.churned + last.joined
    }

    /// The share of the month-0 base still there at the end.
    public var retentionRate: Double {
        subscribers > 0 ? 1 - Double(total.initialChurned) / Double(subscribers) : 0
    }

    /// Churners per subscriber-month over the whole base (joiners included).
    public var monthlyChurnRate: Double {
        let t = total
        return t.subscribers > 0 ? Double(t.churned) / Double(t.subscribers) : 0
    }

    /// Treatment and control churn over all months.
    public var uplift: UpliftReport {
        let t = total
        return UpliftReport(treatment: Proportion(subscribers: t.treated, events: t.treatedChurned),
                            control: Proportion(subscribers: t.control, events: t.controlChurned))
    }

    /// Whether the strategy contacted anyone (`none` never does; then the uplift is exactly 0).
    public var contactedAnyone: Bool { total.treated > 0 || total.control > 0 }

    /// Uplift in pp: 0 without contacts, nil when an arm is empty.
    public var upliftPP: Double? { contactedAnyone ? uplift.upliftPP : 0 }

    /// Newcombe's 95% interval in pp: [0, 0] without contacts, nil when an arm is empty.
    public var upliftCI95PP: ConfidenceInterval? { contactedAnyone ? uplift.upliftCI95PP : ConfidenceInterval(low: 0, high: 0) }

    /// Subscribers retained by the contacts (uplift × treated).
    public var retained: Double? { contactedAnyone ? uplift.retained : 0 }

    /// The measured saved CLV, before costs (see the type's notes).
    public var savedCLV: Double? {
        let t = total
        guard contactedAnyone else { return 0 }
        guard t.treatedCLV > 0, t.controlCLV > 0 else { return nil }
        return (t.controlChurnedCLV / t.controlCLV - t.treatedChurnedCLV / t.treatedCLV) * t.treatedCLV
    }

    /// Measured saved CLV − costs.
    public var netValue: Double? { savedCLV.map { $0 - total.budgetUsed } }

    /// The world's expected saved CLV − costs.
    public var netValueExpected: Double { total.expectedSavedCLV - total.budgetUsed }

    /// The JSON keys (`simulate --json`).
    enum Key: String, CodingKey {
        case strategy, months, subscribers, retentionRate = "retention_rate", upliftPP = "uplift_pp"
        case upliftCI95PP = "uplift_ci95_pp", retained, netValue = "net_value", budgetUsed = "budget_used"
        case synthetic, seed, budgetPerMonth = "budget_per_month", subscribersAtEnd = "subscribers_at_end"
        case monthlyChurnRate = "monthly_churn_rate", treated, control, treatedChurnRate = "treatment_churn_rate"
        case controlChurnRate = "control_churn_rate", accepted, savedCLV = "saved_clv", netValueExpected = "net_value_expected"
        case contactedByResponse = "contacted_by_response", addressedRealReason = "addressed_real_reason"
    }

    /// The keys every `--json` object has, as the issue specifies them.
    public static let requiredKeys = ["strategy", "months", "subscribers", "retention_rate", "uplift_pp", "uplift_ci95_pp",
                                      "retained", "net_value", "budget_used"]

    /// `{"strategy", "months", "subscribers", "retention_rate", "uplift_pp", "uplift_ci95_pp": [low, high],
    /// "retained", "net_value", "budget_used"}` and, beside them, `"synthetic": true`, the seed, the
    /// monthly budget, the arms, the expected net value and the contacts per hidden response type.
    /// A value that cannot be estimated is `null`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        let t = total
        try c.encode(strategy.rawValue, forKey: .strategy)
        try c.encode(months, forKey: .months)
        try c.encode(subscribers, forKey: .subscribers)
        try c.encode(retentionRate, forKey: .retentionRate)
        try c.encode(upliftPP, forKey: .upliftPP)
        try c.encode(upliftCI95PP, forKey: .upliftCI95PP)
        try c.encode(retained, forKey: .retained)
        try c.encode(netValue, forKey: .netValue)
        try c.encode(t.budgetUsed, forKey: .budgetUsed)
        try c.encode(true, forKey: .synthetic)
        try c.encode(seed, forKey: .seed)
        try c.encode(budgetPerMonth, forKey: .budgetPerMonth)
        try c.encode(subscribersAtEnd, forKey: .subscribersAtEnd)
        try c.encode(monthlyChurnRate, forKey: .monthlyChurnRate)
        try c.encode(t.treated, forKey: .treated)
        try c.encode(t.control, forKey: .control)
        try c.encode(uplift.treatment.isEstimable ? uplift.treatment.rate : nil, forKey: .treatedChurnRate)
        try c.encode(uplift.control.isEstimable ? uplift.control.rate : nil, forKey: .controlChurnRate)
        try c.encode(t.accepted, forKey: .accepted)
        try c.encode(savedCLV, forKey: .savedCLV)
        try c.encode(netValueExpected, forKey: .netValueExpected)
        var byType: [String: Int] = [:]
        for type in ResponseType.allCases { byType[type.wireName] = t.byResponse[Int(type.rawValue)].treated }
        try c.encode(byType, forKey: .contactedByResponse)
        try c.encode(t.addressedRealReason, forKey: .addressedRealReason)
    }
}
