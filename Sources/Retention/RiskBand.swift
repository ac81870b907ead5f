/// A risk band of a churn probability: the matrix's second axis. The thresholds are the
/// cluster's (`RiskBand` in ChurnCluster, `TriggerBand` in SubscriberEvents): medium from 0.05,
/// high from 0.15, very high from 0.35 (the base churns about 3% a month).
public enum RiskBand: UInt8, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case low = 0, medium, high, veryHigh

    /// Lower probability bounds of medium, high and very high.
    public static let thresholds: [Double] = [0.05, 0.15, 0.35]

    /// The band of `p` (NaN is low: an unscored subscriber is never targeted as at risk).
    public init(probability p: Double) {
        if p >= 0.35 { self = .veryHigh } else if p >= 0.15 { self = .high } else if p >= 0.05 { self = .medium } else { self = .low }
    }

    /// The band called `name` in a campaign file (`low`, `medium`, `high`, `very_high`), or nil.
    public init?(wireName name: String) {
        guard let b = Self.allCases.first(where: { $0.wireName == name }) else { return nil }
        self = b
    }

    /// The band's name in campaign files, reports and the database.
    public var wireName: String {
        switch self {
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .veryHigh: "very_high"
        }
    }

    public var description: String { wireName }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}
