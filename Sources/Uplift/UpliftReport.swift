/// The measured effect of a campaign (or of one group of it) on churn: the churn rate of the
/// treated against the control group's, their difference with its 95% interval, and how many
/// subscribers that difference kept.
///
/// Uplift is `control churn rate − treatment churn rate`, so a positive uplift means the
/// treatment kept subscribers. The control group is a random holdout drawn among the same
/// selected subscribers, so the difference estimates the campaign's causal effect on those
/// treated.
public struct UpliftReport: Sendable, Equatable, Encodable {
    /// Which side of the holdout a subscriber is on. The raw value is the wire and database name.
    public enum Arm: String, Sendable, Hashable, Codable, CaseIterable {
        /// Contacted with the offer.
        case treatment
        /// Held out: never contacted, recorded with the offer it would have had.
        case control
    }

    /// Churned among the treated.
    public var treatment: Proportion
    /// Churned among the control group.
    public var control: Proportion

    /// Both arms' counts.
    public init(treatment: Proportion, control: Proportion) {
        self.treatment = treatment
        self.control = control
    }

    /// Whether both arms have subscribers (and consistent counts), so an uplift can be estimated.
    public var isEstimable: Bool { treatment.isEstimable && control.isEstimable }

    /// Control churn rate − treatment churn rate, as a fraction; nil when an arm is empty.
    public var uplift: Double? { isEstimable ? control.rate - treatment.rate : nil }

    /// `uplift` in percentage points (6 means 10% → 4% churn).
    public var upliftPP: Double? { uplift.map { $0 * 100 } }

    /// The 95% interval of the uplift in percentage points, Newcombe's hybrid score interval
    /// (`ProportionDifference.newcombeInterval`; why that one is explained there).
    public var upliftCI95PP: ConfidenceInterval? {
        ProportionDifference.newcombeInterval(control, minus: treatment)?.scaled(by: 100)
    }

    /// The Wald 95% interval in percentage points, for reference only (it undercovers at small
    /// counts and low churn rates).
    public var waldCI95PP: ConfidenceInterval? {
        ProportionDifference.waldInterval(control, minus: treatment)?.scaled(by: 100)
    }

    /// Subscribers kept by the treatment: uplift × the number treated. Fractional — it is an
    /// estimate (6 pp of 1,000 treated is 60 kept); negative when the contact made people leave.
    public var retained: Double? { uplift.map { $0 * Double(treatment.subscribers) } }

    /// `{"treatment": {"subscribers", "churned", "churn_rate"}, "control": {…}, "uplift_pp",
    /// "uplift_ci95_pp": [low, high], "uplift_wald_ci95_pp": [low, high], "retained"}`; a value that
    /// cannot be estimated is `null`, never absent, so readers always see the key.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ReportKey.self)
        try encodeFields(into: &c)
    }

    /// Writes the fields into a container the campaign report shares with its own fields (its JSON
    /// is flat: `run_id` beside `uplift_pp`).
    func encodeFields(into c: inout KeyedEncodingContainer<ReportKey>) throws {
        try c.encode(ArmSummary(treatment), forKey: .treatment)
        try c.encode(ArmSummary(control), forKey: .control)
        try c.encode(upliftPP, forKey: .upliftPP)
        try c.encode(upliftCI95PP, forKey: .upliftCI95PP)
        try c.encode(waldCI95PP, forKey: .waldCI95PP)
        try c.encode(retained, forKey: .retained)
    }
}

/// One arm as the report's JSON shows it: `{"subscribers", "churned", "churn_rate"}`.
struct ArmSummary: Encodable {
    var subscribers: Int
    var churned: Int
    var churnRate: Double?

    init(_ p: Proportion) {
        subscribers = p.subscribers
        churned = p.events
        churnRate = p.isEstimable ? p.rate : nil
    }

    enum CodingKeys: String, CodingKey {
        case subscribers, churned, churnRate = "churn_rate"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(subscribers, forKey: .subscribers)
        try c.encode(churned, forKey: .churned)
        try c.encode(churnRate, forKey: .churnRate)
    }
}
