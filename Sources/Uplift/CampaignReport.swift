import Foundation

/// What `churngrid campaign report RUN --json` prints: a run measured against its control group
/// (`CampaignOutcome.report`). Made from real outcomes of real subscribers — but when the outcomes
/// come from `churngrid simulate`, every figure is a result on the synthetic base.
///
/// JSON (keys sorted; a value that cannot be estimated is `null`, never absent):
/// ```
/// {"run_id", "window_days",
///  "treatment": {"subscribers", "churned", "churn_rate"}, "control": {same},
///  "uplift_pp", "uplift_ci95_pp": [low, high], "uplift_wald_ci95_pp": [low, high],
///  "retained", "saved_clv", "offer_cost", "net_value",
///  "unobserved": {"treatment", "control"},
///  "per_offer": {offer: {treatment, control, uplift_pp, …, net_value}}, "per_channel", "per_reason", "per_cell",
///  "qini", "uplift_at_30pct"}
/// ```
public struct CampaignReport: Sendable, Equatable, Encodable {
    /// The measurement of one group of subscribers (the whole run, or one offer's): uplift and the
    /// money it made.
    ///
    /// Net value: `retained × mean CLV of the treated − offer cost`, where `retained` = uplift ×
    /// treated (`UpliftReport.retained`), so `retained × mean CLV` is the value the treatment kept
    /// (the CLV the run scored, which already discounts each subscriber's churn risk), and the
    /// offer cost is the sum over the treated of their offer's cost (`CampaignOutcome.CostBasis`
    /// says which offers count). Both sides are over the same subscribers: those whose outcome was
    /// observed. Control rows cost nothing — they were never contacted.
    public struct Group: Sendable, Equatable, Encodable {
        /// Churn per arm, uplift, interval, retained.
        public var uplift: UpliftReport
        /// Mean CLV of the treated; nil when nobody was treated.
        public var meanTreatedCLV: Double?
        /// Cost of the treated subscribers' offers.
        public var offerCost: Double

        public init(uplift: UpliftReport, meanTreatedCLV: Double?, offerCost: Double) {
            self.uplift = uplift
            self.meanTreatedCLV = meanTreatedCLV
            self.offerCost = offerCost
        }

        /// `retained × meanTreatedCLV`; nil when the uplift cannot be estimated.
        public var savedCLV: Double? {
            guard let retained = uplift.retained, let clv = meanTreatedCLV else { return nil }
            return retained * clv
        }

        /// `savedCLV − offerCost`; nil when the uplift cannot be estimated.
        public var netValue: Double? { savedCLV.map { $0 - offerCost } }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: ReportKey.self)
            try encodeFields(into: &c)
        }

        func encodeFields(into c: inout KeyedEncodingContainer<ReportKey>) throws {
            try uplift.encodeFields(into: &c)
            try c.encode(savedCLV, forKey: .savedCLV)
            try c.encode(offerCost, forKey: .offerCost)
            try c.encode(netValue, forKey: .netValue)
        }
    }

    /// Subscribers of the run left out for want of an outcome in the window, per arm.
    public struct Unobserved: Sendable, Equatable, Encodable {
        /// Treated subscribers without an outcome.
        public var treatment: Int
        /// Control subscribers without an outcome.
        public var control: Int

        public init(treatment: Int, control: Int) {
            self.treatment = treatment
            self.control = control
        }
    }

    /// The run, as the caller names it.
    public var runID: String
    /// The observation window, in days.
    public var windowDays: Double
    /// The whole run.
    public var overall: Group
    /// Subscribers without an outcome, not counted in `overall` or the groups.
    public var unobserved: Unobserved
    /// Per offer id (a control subscriber counts under the offer it would have had).
    public var perOffer: [String: Group]
    /// Per channel.
    public var perChannel: [String: Group]
    /// Per churn reason (the subscriber's top reason).
    public var perReason: [String: Group]
    /// Per strategy-matrix cell.
    public var perCell: [String: Group]
    /// The Qini coefficient of the run's ranking by expected value (`UpliftCurve.qiniCoefficient`),
    /// over the observed subscribers; nil where it is undefined.
    public var qini: Double?
    /// Uplift among the top 30% by expected value (`UpliftCurve.upliftAtK`), as scikit-uplift gives
    /// it: a fraction of retention (treated − control), not percentage points.
    public var upliftAt30Pct: Double?

    public init(runID: String, windowDays: Double, overall: Group, unobserved: Unobserved,
                perOffer: [String: Group], perChannel: [String: Group], perReason: [String: Group],
                perCell: [String: Group], qini: Double?, upliftAt30Pct: Double?) {
        self.runID = runID
        self.windowDays = windowDays
        self.overall = overall
        self.unobserved = unobserved
        self.perOffer = perOffer
        self.perChannel = perChannel
        self.perReason = perReason
        self.perCell = perCell
        self.qini = qini
        self.upliftAt30Pct = upliftAt30Pct
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: ReportKey.self)
        try c.encode(runID, forKey: .runID)
        try c.encode(windowDays, forKey: .windowDays)
        try overall.encodeFields(into: &c)
        try c.encode(unobserved, forKey: .unobserved)
        try c.encode(perOffer, forKey: .perOffer)
        try c.encode(perChannel, forKey: .perChannel)
        try c.encode(perReason, forKey: .perReason)
        try c.encode(perCell, forKey: .perCell)
        try c.encode(qini, forKey: .qini)
        try c.encode(upliftAt30Pct, forKey: .upliftAt30Pct)
    }

    /// The report as one line of JSON with sorted keys.
    /// - Throws: `EncodingError` only for a non-finite number, which validated actions cannot
    ///   produce (a CLV of 1e300 times a large uplift could overflow to infinity).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
