/// The actions of one campaign run, as the report needs them: per subscriber, its arm, the keys it
/// is broken down by, the expected value that ranked it, the offer's cost and the subscriber's CLV.
///
/// Parallel columns, with the four breakdown keys stored as small integer codes into a table of
/// names: a run has up to ten million rows but a handful of offers, channels, reasons and cells.
/// A control row carries the offer (and so channel, cost, expected value) it would have had, which
/// is what makes per-offer comparisons possible.
public struct CampaignActions: Sendable {
    /// The subscriber of each row.
    public private(set) var subscriberIDs: [Int64] = []
    /// Treated or held out.
    public private(set) var arms: [UpliftReport.Arm] = []
    /// The score the run ranked by (`p × acceptance × retention_effect × CLV − cost`); the Qini
    /// curve ranks by it.
    public private(set) var expectedValues: [Double] = []
    /// The offer's cost. Only the treated rows' costs are spent.
    public private(set) var costs: [Double] = []
    /// The subscriber's CLV when the run decided.
    public private(set) var clvs: [Double] = []
    var offers = KeyColumn()
    var channels = KeyColumn()
    var reasons = KeyColumn()
    var cells = KeyColumn()

    /// No actions.
    public init() {}

    /// Number of rows.
    public var count: Int { subscriberIDs.count }

    /// Makes room for `n` rows.
    public mutating func reserveCapacity(_ n: Int) {
        subscriberIDs.reserveCapacity(n)
        arms.reserveCapacity(n)
        expectedValues.reserveCapacity(n)
        costs.reserveCapacity(n)
        clvs.reserveCapacity(n)
        offers.codes.reserveCapacity(n)
        channels.codes.reserveCapacity(n)
        reasons.codes.reserveCapacity(n)
        cells.codes.reserveCapacity(n)
    }

    /// Adds one action.
    /// - Parameters:
    ///   - reason: the churn reason the report groups the row under — the subscriber's top reason
    ///     (the one the offer addresses), so every subscriber is counted in exactly one reason.
    ///   - cell: the strategy-matrix cell, such as `high/very_high`.
    public mutating func append(subscriberID: Int64, arm: UpliftReport.Arm, offer: String, channel: String,
                                reason: String, cell: String, expectedValue: Double, cost: Double, clv: Double) {
        subscriberIDs.append(subscriberID)
        arms.append(arm)
        offers.append(offer)
        channels.append(channel)
        reasons.append(reason)
        cells.append(cell)
        expectedValues.append(expectedValue)
        costs.append(cost)
        clvs.append(clv)
    }

    /// The offer of row `row`.
    public func offer(_ row: Int) -> String { offers.name(row) }
    /// The channel of row `row`.
    public func channel(_ row: Int) -> String { channels.name(row) }
    /// The reason of row `row`.
    public func reason(_ row: Int) -> String { reasons.name(row) }
    /// The cell of row `row`.
    public func cell(_ row: Int) -> String { cells.name(row) }
}

/// A column of short strings with few distinct values: a code per row and the names once.
struct KeyColumn: Sendable {
    private(set) var names: [String] = []
    private var index: [String: Int32] = [:]
    var codes: [Int32] = []

    mutating func append(_ name: String) {
        if let code = index[name] {
            codes.append(code)
        } else {
            let code = Int32(truncatingIfNeeded: names.count)
            index[name] = code
            names.append(name)
            codes.append(code)
        }
    }

    func name(_ row: Int) -> String { names[Int(codes[row])] }
}
