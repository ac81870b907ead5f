import Foundation

/// How a subscriber's future is valued: the cluster's CLV settings, used by every job
/// (`coordinator --clv-margin-rate 0.35 --clv-monthly-discount 0.01 --clv-horizon-months 24`).
///
/// With `p` the 30-day churn probability taken as the monthly rate, `m = arpu_30d × marginRate`
/// the monthly margin, `d` the monthly discount rate and `H` the horizon:
///
///     CLV = m × Σ_{t=1..H} (1 − p)^t / (1 + d)^t      (what the subscriber is worth as they are)
///     V   = m × Σ_{t=1..H} 1 / (1 + d)^t              (what they are worth if retained)
///
/// Tiers use `V`, not CLV, so that value and risk are independent axes of the strategy matrix
/// (CLV already discounts risk, so tiering by it would empty the high-value, high-risk cell).
/// CLV drives an action's expected value.
public struct CLVSettings: Sendable, Equatable {
    /// The share of revenue that is margin, in (0, 1].
    public let marginRate: Double
    /// The monthly discount rate, in [0, 1).
    public let monthlyDiscount: Double
    /// The horizon in months, 1…600.
    public let horizonMonths: Int
    /// `log1p(d)`, kept so that the per-subscriber sum is one `log1p` and one `expm1`.
    private let logDiscount: Double
    /// `Σ_{t=1..H} (1 + d)^−t`, the same for every subscriber.
    private let retainedFactor: Double

    /// The cluster's defaults: 35% margin, 1% a month, 24 months.
    public static let `default` = CLVSettings(checked: 0.35, 0.01, 24)

    /// Settings after checking them.
    /// - Throws: `CLVSettingsError` naming the setting out of range.
    public init(marginRate: Double = 0.35, monthlyDiscount: Double = 0.01, horizonMonths: Int = 24) throws(CLVSettingsError) {
        guard marginRate.isFinite, marginRate > 0, marginRate <= 1 else {
            throw CLVSettingsError(setting: "clv-margin-rate", problem: "must be in (0, 1], got \(marginRate)")
        }
        guard monthlyDiscount.isFinite, monthlyDiscount >= 0, monthlyDiscount < 1 else {
            throw CLVSettingsError(setting: "clv-monthly-discount", problem: "must be in [0, 1), got \(monthlyDiscount)")
        }
        guard (1...600).contains(horizonMonths) else {
            throw CLVSettingsError(setting: "clv-horizon-months", problem: "must be from 1 to 600, got \(horizonMonths)")
        }
        self.init(checked: marginRate, monthlyDiscount, horizonMonths)
    }

    private init(checked m: Double, _ d: Double, _ h: Int) {
        marginRate = m
        monthlyDiscount = d
        horizonMonths = h
        logDiscount = log1p(d)
        retainedFactor = Self.survivalSum(p: 0, d: d, logDiscount: log1p(d), h: h)
    }

    /// The customer lifetime value of a subscriber with churn probability `probability` (clamped
    /// to [0, 1]; NaN counts as 1, an unscored subscriber being worth nothing to act on) and
    /// revenue `arpu` (NaN, infinite or negative counts as 0).
    @inlinable
    public func clv(probability: Double, arpu: Double) -> Double {
        let m = Self.margin(arpu) * marginRate
        guard m > 0 else { return 0 }
        let p = probability.isNaN ? 1 : min(max(probability, 0), 1)
        return m * factor(probability: p)
    }

    /// The value if retained, `V` (the tiers' axis), for revenue `arpu` (NaN, infinite or negative counts as 0).
    @inlinable
    public func valueIfRetained(arpu: Double) -> Double {
        let m = Self.margin(arpu) * marginRate
        return m > 0 ? m * retainedSum : 0
    }

    @usableFromInline
    var retainedSum: Double { retainedFactor }

    @usableFromInline
    static func margin(_ arpu: Double) -> Double { arpu.isFinite && arpu > 0 ? arpu : 0 }

    @usableFromInline
    func factor(probability p: Double) -> Double {
        Self.survivalSum(p: p, d: monthlyDiscount, logDiscount: logDiscount, h: horizonMonths)
    }

    /// `Σ_{t=1..H} r^t` with `r = (1 − p)/(1 + d)`, in closed form `r (1 − r^H)/(1 − r)`. The two
    /// differences are computed without cancellation: `1 − r = (p + d)/(1 + d)` exactly and
    /// `1 − r^H = −expm1(H (log1p(−p) − log1p(d)))`, so the result stays accurate as `r` nears 1;
    /// at `r = 1` (p = d = 0) the sum is `H`.
    static func survivalSum(p: Double, d: Double, logDiscount: Double, h: Int) -> Double {
        if p >= 1 { return 0 }
        let oneMinusR = (p + d) / (1 + d)
        if oneMinusR == 0 { return Double(h) }
        let r = (1 - p) / (1 + d)
        let oneMinusRH = -expm1(Double(h) * (log1p(-p) - logDiscount))
        return r * oneMinusRH / oneMinusR
    }
}

/// A CLV setting out of range.
public struct CLVSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The setting, as the coordinator's option names it (`clv-margin-rate`).
    public var setting: String
    /// What is wrong with it.
    public var problem: String

    public var description: String { "--\(setting): \(problem)" }
}
