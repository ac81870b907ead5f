import SubscriberProfiles

/// A retention campaign, read from a campaign file (`Deploy/campaign.json` is a documented
/// example; `docs/campaign-file.md` describes every key):
///
///     {"name": "winter-retention",
///      "value_tiers": [0.3333, 0.6667],
///      "offers": [{"id": "loyalty_call", "channel": "call", "cost": 40, "acceptance": 0.35,
///                  "retention_effect": 0.5, "reasons": ["complaints_90d"], "eligible": {}}, …],
///      "matrix": {"high": {"very_high": ["loyalty_call"]}},
///      "contact_policy": {"channels": {"call": {"max": 1, "days": 30}}, "global": {"max": 2, "days": 30},
///                         "cooldown_after_refusal_days": 60,
///                         "quiet_hours": {"call": {"from": "21:00", "to": "09:00"}}},
///      "capacity": {"call": 5000}, "budget": 200000, "control_fraction": 0.1,
///      "region_utc_offsets_minutes": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]}
///
/// Everything is checked when the file is read (`parse(_:source:)`), and names are resolved to
/// offer indices, channels and catalogue features, so that deciding for millions of subscribers
/// does no string work.
public struct Campaign: Sendable, Equatable {
    /// The largest campaign file read.
    public static let maxFileBytes = 1 << 20
    /// The most offers a file may define.
    public static let maxOffers = 1_000
    /// The most value-tier cut points (so at most 10 tiers).
    public static let maxTierCuts = 9
    /// Home regions (codes 0–11, the `region` feature): `region_utc_offsets_minutes` has one entry each.
    public static let regionCount = 12

    /// The campaign's name: part of the control-group hash, so renaming a campaign draws a new holdout.
    public var name: String
    /// Quantile cut points of the value if retained (`value_tiers`), strictly increasing in (0, 1).
    public var valueTierCuts: [Double]
    /// The offers, in file order (ties in expected value go to the earlier offer).
    public var offers: [Offer]
    /// Which offers each value tier × risk band cell allows.
    public var matrix: StrategyMatrix
    /// The contact policy.
    public var contactPolicy: ContactPolicyRules
    /// Contacts per run per channel (`capacity`); absent = unlimited, 0 = closed.
    public var capacity: [Channel: Int]
    /// The run's spending limit on offer costs (`budget`); nil = unlimited.
    public var budget: Double?
    /// The share of selected subscribers held out as the control arm, in [0, 1).
    public var controlFraction: Double
    /// UTC offset in minutes of each home region (`region_utc_offsets_minutes`), for quiet hours.
    public var regionUTCOffsetsMinutes: [Int]

    public init(name: String, valueTierCuts: [Double], offers: [Offer], matrix: StrategyMatrix,
                contactPolicy: ContactPolicyRules = .init(), capacity: [Channel: Int] = [:], budget: Double? = nil,
                controlFraction: Double, regionUTCOffsetsMinutes: [Int] = Array(repeating: 0, count: Campaign.regionCount)) {
        self.name = name
        self.valueTierCuts = valueTierCuts
        self.offers = offers
        self.matrix = matrix
        self.contactPolicy = contactPolicy
        self.capacity = capacity
        self.budget = budget
        self.controlFraction = controlFraction
        self.regionUTCOffsetsMinutes = regionUTCOffsetsMinutes
    }

    /// Number of value tiers (`valueTierCuts.count + 1`).
    public var tierCount: Int { valueTierCuts.count + 1 }

    /// The tier names for `cuts` cut points: `low`, `mid`, `high` for two cut points (the usual
    /// terciles), otherwise `tier0` (lowest value) … `tierN`, since "mid" has no meaning for four tiers.
    public static func tierNames(cuts: Int) -> [String] {
        cuts == 2 ? ["low", "mid", "high"] : (0...max(0, cuts)).map { "tier\($0)" }
    }

    /// The names of this campaign's tiers, lowest value first.
    public var tierNames: [String] { Self.tierNames(cuts: valueTierCuts.count) }

    /// The name of `tier` (`tier7` style when out of range, never a trap).
    public func tierName(_ tier: Int) -> String {
        let names = tierNames
        return names.indices.contains(tier) ? names[tier] : "tier\(tier)"
    }

    /// A cell's name in reports: `high/very_high`.
    public func cellName(tier: Int, band: RiskBand) -> String { tierName(tier) + "/" + band.wireName }

    /// The index of the offer called `id`.
    public func offerIndex(id: String) -> Int? { offers.firstIndex { $0.id == id } }

    /// The UTC offset (minutes) of home region `region`; 0 for a code outside 0–11 or missing.
    public func utcOffsetMinutes(region: Double) -> Int {
        guard region.isFinite, region >= 0, region < Double(regionUTCOffsetsMinutes.count) else { return 0 }
        return regionUTCOffsetsMinutes[Int(region)]
    }
}
