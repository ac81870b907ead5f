import SubscriberProfiles

/// One retention offer of a campaign: what it costs, through which channel it goes, whom it may
/// go to, which churn reasons it addresses and how likely it is to work. Features are held as
/// `FeatureCatalogue` indices, resolved once when the file is read.
public struct Offer: Sendable, Equatable {
    /// The offer's id in the file, the actions table and exports.
    public var id: String
    /// How it reaches the subscriber.
    public var channel: Channel
    /// What one contact with this offer costs (currency), ≥ 0.
    public var cost: Double
    /// The probability that a contacted subscriber accepts it, in [0, 1].
    public var acceptance: Double
    /// The share of an accepting at-risk subscriber's churn that it prevents, in [0, 1], when no
    /// per-reason effect applies.
    public var retentionEffect: Double
    /// The reasons (features) it addresses. Empty: it addresses any reason and goes to any
    /// subscriber of its cells; otherwise only to subscribers with one of these among their top reasons.
    public var reasons: [Int]
    /// Effects for particular reasons (`retention_effect_by_reason`), each also in `reasons` when
    /// `reasons` is not empty: a discount works better on a price reason than on a network one.
    public var effectByReason: [ReasonEffect]
    /// Who may receive it: every rule must hold (`eligible` in the file).
    public var eligibility: [EligibilityRule]
    /// Plain words for the call script (`description`, optional); the id when absent.
    public var description: String?

    public init(id: String, channel: Channel, cost: Double, acceptance: Double, retentionEffect: Double,
                reasons: [Int] = [], effectByReason: [ReasonEffect] = [], eligibility: [EligibilityRule] = [],
                description: String? = nil) {
        self.id = id
        self.channel = channel
        self.cost = cost
        self.acceptance = acceptance
        self.retentionEffect = retentionEffect
        self.reasons = reasons
        self.effectByReason = effectByReason
        self.eligibility = eligibility
        self.description = description
    }

    /// The names of `reasons`.
    public var reasonNames: [String] { reasons.map { FeatureCatalogue.names.indices.contains($0) ? FeatureCatalogue.names[$0] : "#\($0)" } }
}

/// An offer's retention effect when a given reason is among the subscriber's top reasons.
public struct ReasonEffect: Sendable, Equatable {
    /// The reason (`FeatureCatalogue` index).
    public var feature: Int
    /// The effect in [0, 1].
    public var effect: Double

    public init(feature: Int, effect: Double) {
        self.feature = feature
        self.effect = effect
    }
}

/// An eligibility rule: the profile feature's value must be one of `allowed` (`"is_prepaid": [0]`).
/// A missing value (NaN) is never allowed: an offer for postpaid lines does not go to a line whose
/// kind is unknown.
public struct EligibilityRule: Sendable, Equatable {
    /// The feature (`FeatureCatalogue` index).
    public var feature: Int
    /// The allowed values, compared at the profile's `Float` precision.
    public var allowed: [Float]

    public init(feature: Int, allowed: [Float]) {
        self.feature = feature
        self.allowed = allowed
    }

    /// Whether `value` satisfies the rule.
    @inlinable
    public func admits(_ value: Double) -> Bool {
        let v = Float(value)
        guard !v.isNaN else { return false }
        for a in allowed where a == v { return true }
        return false
    }
}
