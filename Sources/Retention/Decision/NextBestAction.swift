/// The next-best action: for one subscriber, the offers of a campaign it may receive, ranked by
/// expected value. Contact policy, capacity and budget come after (`ContactPolicy`, `CampaignFill`).
///
/// Rules, in the order they are applied:
/// 1. **Cell.** `matrix[tier][band]` lists the offers that may be used; an absent or empty cell,
///    or a tier out of range, means no action.
/// 2. **Reason.** An offer with non-empty `reasons` is considered only when it addresses at least
///    one of the subscriber's top reasons; an offer without reasons addresses any.
/// 3. **Effect.** The effect is the largest `retention_effect_by_reason` among the subscriber's top
///    reasons that the offer lists there, otherwise the offer's `retention_effect`.
/// 4. **Expected value.** `EV = p × acceptance × effect × CLV − cost`, with `p` the churn
///    probability clamped to [0, 1]. Offers with `EV ≤ 0` are dropped: they cost more than they
///    are expected to save. A subscriber with a NaN probability or a CLV that is not a positive
///    number gets nothing.
/// 5. **Eligibility.** Every `eligible` feature's profile value must be one of its allowed values;
///    a missing value (NaN) is not eligible.
/// 6. **Order.** Expected value descending, ties by offer order in the file.
///
/// Runs per subscriber over the whole base (ten million in seconds): the campaign's offers and
/// cells are flattened once into contiguous tables here, so ranking does no hashing, no string
/// work and — with `rank(_:feature:into:)` and a reused `RankedOffers` — no allocation.
public struct NextBestAction: Sendable {
    /// The campaign decided for.
    public let campaign: Campaign

    /// One offer's numbers and the ranges of its reason and eligibility tables.
    struct OfferRow: Sendable {
        var acceptance: Double
        var cost: Double
        var effect: Double
        /// True when the offer lists no reasons (it addresses any).
        var addressesAny: Bool
        var reasons: Range<Int>
        var rules: Range<Int>
    }

    private let rows: ContiguousArray<OfferRow>
    /// Per offer, the features of its reasons and by-reason effects; `reasonEffect` is −1 where
    /// the reason has no effect of its own.
    private let reasonFeature: ContiguousArray<Int>
    private let reasonEffect: ContiguousArray<Double>
    /// Eligibility rules: the feature and the range of allowed values in `ruleValues`.
    private let ruleFeature: ContiguousArray<Int>
    private let ruleValues: ContiguousArray<Range<Int>>
    private let allowedValues: ContiguousArray<Float>
    /// `cellOffers[cellStart[c]..<cellStart[c + 1]]`: the offers of cell `c = tier × 4 + band`.
    private let cellStart: ContiguousArray<Int>
    private let cellOffers: ContiguousArray<Int>

    /// Flattens `campaign` for ranking.
    public init(campaign: Campaign) {
        self.campaign = campaign
        var rows = ContiguousArray<OfferRow>()
        var rf = ContiguousArray<Int>(), re = ContiguousArray<Double>()
        var uf = ContiguousArray<Int>(), uv = ContiguousArray<Range<Int>>(), av = ContiguousArray<Float>()
        for o in campaign.offers {
            let r0 = rf.count
            for f in o.reasons {
                rf.append(f)
                re.append(o.effectByReason.first { $0.feature == f }?.effect ?? -1)
            }
            for e in o.effectByReason where !o.reasons.contains(e.feature) {
                rf.append(e.feature)
                re.append(e.effect)
            }
            let u0 = uf.count
            for rule in o.eligibility {
                uf.append(rule.feature)
                uv.append(av.count..<(av.count + rule.allowed.count))
                av.append(contentsOf: rule.allowed)
            }
            rows.append(OfferRow(acceptance: o.acceptance, cost: o.cost, effect: o.retentionEffect, addressesAny: o.reasons.isEmpty,
                                 reasons: r0..<rf.count, rules: u0..<uf.count))
        }
        var start = ContiguousArray<Int>([0]), offers = ContiguousArray<Int>()
        for tier in 0..<campaign.matrix.tierCount {
            for band in RiskBand.allCases {
                offers.append(contentsOf: campaign.matrix.offers(tier: tier, band: band).filter { rows.indices.contains($0) })
                start.append(offers.count)
            }
        }
        self.rows = rows
        reasonFeature = rf
        reasonEffect = re
        ruleFeature = uf
        ruleValues = uv
        allowedValues = av
        cellStart = start
        cellOffers = offers
    }

    /// The subscriber's allowed offers, ranked.
    /// - Parameters:
    ///   - facts: the subscriber.
    ///   - feature: the subscriber's profile value of a `FeatureCatalogue` column (NaN when missing);
    ///     called only for eligibility features of offers that pass the other rules.
    public func rank(_ facts: SubscriberFacts, feature: (Int) -> Double) -> RankedOffers {
        var out = RankedOffers()
        rank(facts, feature: feature, into: &out)
        return out
    }

    /// The subscriber's allowed offers, ranked, given its profile row (catalogue order; a column
    /// past the row's end counts as missing).
    public func rank(_ facts: SubscriberFacts, profile: [Float]) -> RankedOffers {
        rank(facts) { profile.indices.contains($0) ? Double(profile[$0]) : .nan }
    }

    /// Ranks into `out`, replacing its contents and reusing its storage: the allocation-free form
    /// for a loop over a shard.
    public func rank(_ facts: SubscriberFacts, feature: (Int) -> Double, into out: inout RankedOffers) {
        out.removeAll()
        let p = facts.probability
        guard !p.isNaN, facts.clv.isFinite, facts.clv > 0, facts.tier >= 0, facts.tier < campaign.matrix.tierCount else { return }
        let pc = min(max(p, 0), 1)
        let cell = facts.tier * RiskBand.allCases.count + Int(facts.band.rawValue)
        guard cell + 1 < cellStart.count else { return }
        let reasons = facts.reasons
        for k in cellOffers[cellStart[cell]..<cellStart[cell + 1]] {
            let row = rows[k]
            var addressed = row.addressesAny
            var byReason = -1.0
            for j in row.reasons where reasons.contains(feature: reasonFeature[j]) {
                addressed = true
                byReason = max(byReason, reasonEffect[j])
            }
            guard addressed else { continue }
            let effect = byReason >= 0 ? byReason : row.effect
            let saved = pc * row.acceptance * effect * facts.clv
            let ev = saved - row.cost
            guard ev > 0 else { continue }
            guard eligible(row, feature) else { continue }
            out.insert(RankedOffer(offer: k, expectedValue: ev, expectedSavedCLV: saved, effect: effect))
        }
    }

    private func eligible(_ row: OfferRow, _ feature: (Int) -> Double) -> Bool {
        for j in row.rules {
            let v = Float(feature(ruleFeature[j]))
            guard !v.isNaN else { return false }
            var found = false
            for a in allowedValues[ruleValues[j]] where a == v {
                found = true
                break
            }
            guard found else { return false }
        }
        return true
    }
}
