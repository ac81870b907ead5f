/// Observed outcomes of subscribers, as parallel columns: row i says that subscriber
/// `subscriberIDs[i]` had churned (or not) by `observedAt[i]`, and whether they accepted their
/// offer when that is known.
///
/// Columns rather than an array of structs: an outcomes import is the whole base (ten million rows),
/// and the report reads one column at a time. Rows are added with `append`, which keeps the columns
/// the same length.
public struct Outcomes: Sendable, Equatable {
    /// The subscriber of each row.
    public private(set) var subscriberIDs: [Int64] = []
    /// Whether the subscriber had churned.
    public private(set) var churned: [Bool] = []
    /// Whether the subscriber accepted the offer; nil when unknown (no `accepted` column, or an
    /// empty cell — control subscribers were never offered anything).
    public private(set) var accepted: [Bool?] = []
    /// When the outcome was observed: milliseconds since 1970 UTC (`ObservationTime`).
    public private(set) var observedAt: [Int64] = []

    /// No outcomes.
    public init() {}

    /// Number of rows.
    public var count: Int { subscriberIDs.count }

    /// Makes room for `n` rows.
    public mutating func reserveCapacity(_ n: Int) {
        subscriberIDs.reserveCapacity(n)
        churned.reserveCapacity(n)
        accepted.reserveCapacity(n)
        observedAt.reserveCapacity(n)
    }

    /// Adds one row.
    public mutating func append(subscriberID: Int64, churned: Bool, accepted: Bool?, observedAt: Int64) {
        subscriberIDs.append(subscriberID)
        self.churned.append(churned)
        self.accepted.append(accepted)
        self.observedAt.append(observedAt)
    }
}
