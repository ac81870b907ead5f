import SubscriberProfiles

/// The behaviour a subscriber may switch to in a month: profiles of freshly drawn synthetic
/// subscribers, from which a survivor starting a new episode takes its behaviour signals
/// (`ProfileDrift`). One pool per (seed, month), the same for every strategy.
///
/// Why: without new episodes the base only calms down — the unhappy leave, complaints are
/// forgotten — and its churn rate falls month after month. Taking a fresh subscriber's whole
/// block of behaviour signals (trends, contacts with customer care, intent) keeps their joint
/// distribution, which the generator ties together through a latent dissatisfaction, and keeps
/// the base's churn about where the generator puts it.
struct EpisodePool: Sendable {
    /// Profiles in the pool.
    static let size = 16_384
    /// Row-major: profile `d` at `values[d * featureCount ..< (d + 1) * featureCount]`.
    private let values: [Float]
    private let featureCount = FeatureCatalogue.count

    init(seed: UInt64, month: Int) {
        let base = SyntheticBase(seed: WorldDraw.mix(seed ^ 0x6570_6973_6F64_6573 &+ UInt64(month)), firstID: 0)
        var v: [Float] = []
        v.reserveCapacity(Self.size * FeatureCatalogue.count)
        base.generate(0..<Self.size) { _, profile, _ in v.append(contentsOf: profile) }
        values = v
    }

    /// Feature `feature` of donor `donor` (NaN for an unknown column).
    func value(_ donor: Int, _ feature: Int) -> Float {
        feature >= 0 && feature < featureCount && donor >= 0 && donor < Self.size ? values[donor * featureCount + feature] : .nan
    }
}
