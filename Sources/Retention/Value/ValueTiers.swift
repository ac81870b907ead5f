/// Value tiers: the strategy matrix's first axis. Cut values are the value-if-retained quantiles
/// at the campaign's cut points (`value_tiers`), read from the merged `ValueHistogram` of the
/// whole population, so a shard tiers its subscribers exactly as the others do.
public struct ValueTiers: Sendable, Equatable {
    /// Cut values, non-decreasing.
    public let cuts: [Double]

    /// Tiers from explicit cut values (sorted here, NaN dropped).
    public init(cuts: [Double]) { self.cuts = cuts.filter { !$0.isNaN }.sorted() }

    /// Tiers whose cuts are `histogram`'s quantiles at `quantiles` (a campaign's `valueTierCuts`).
    public init(histogram: ValueHistogram, quantiles: [Double]) {
        self.init(cuts: quantiles.map { histogram.quantile($0) })
    }

    /// The tier of value `v`: the number of cuts strictly below it (0 = lowest value). A value
    /// equal to a cut stays in the lower tier, so a tier at quantile q holds at least a share q,
    /// and subscribers without revenue (V = 0) all stay in the lowest tier even when they are many.
    /// NaN is tier 0.
    @inlinable
    public func tier(of v: Double) -> Int {
        var t = 0
        for c in cuts where v > c { t += 1 }
        return t
    }

    /// Number of tiers.
    public var count: Int { cuts.count + 1 }
}
