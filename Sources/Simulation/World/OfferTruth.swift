import Retention
import SubscriberProfiles

/// What each offer of a campaign really does for each possible real reason, as the world sees
/// it (`HiddenResponse`): whether it addresses the reason (listed in `reasons` or in
/// `retention_effect_by_reason`), misses it, or is generic (lists no reason), and the stated
/// effect for it. A flat offers × features table,
/// built once, so the monthly outcome loop does no searching.
struct OfferTruth: Sendable {
    private let features: Int
    private let addresses: [Bool]
    private let generic: [Bool]
    private let effects: [Double]

    init(campaign: Campaign) {
        features = FeatureCatalogue.count
        var a = [Bool](repeating: false, count: campaign.offers.count * features)
        var e = [Double](repeating: 0, count: campaign.offers.count * features)
        for (k, o) in campaign.offers.enumerated() {
            for f in 0..<features {
                let byReason = o.effectByReason.first { $0.feature == f }
                a[k * features + f] = o.reasons.contains(f) || byReason != nil
                e[k * features + f] = byReason?.effect ?? o.retentionEffect
            }
        }
        addresses = a
        effects = e
        generic = campaign.offers.map { $0.reasons.isEmpty && $0.effectByReason.isEmpty }
    }

    /// How offer `offer` relates to real reason `feature`.
    func match(_ offer: Int, _ feature: Int) -> HiddenResponse.Match {
        if generic.indices.contains(offer), generic[offer] { return .generic }
        return feature >= 0 && feature < features && addresses[offer * features + feature] ? .addressed : .missed
    }

    /// Offer `offer`'s stated effect for real reason `feature`.
    func effect(_ offer: Int, _ feature: Int) -> Double {
        feature >= 0 && feature < features ? effects[offer * features + feature] : 0
    }
}
