#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Retention

/// The world's hidden response: the true monthly churn hazard of a subscriber and what a contact
/// does to it. Pure functions of the model's probability, the hidden traits and the offer.
///
/// - **Hazard.** `h₀ = σ(logit(p) + noise + shift)`, with `p` the model's probability for the
///   current profile (the model is informative), `noise` the subscriber's hidden log-odds shift
///   (so it is not perfect) and `shift` −0.7 for a sure thing, +1.2 for a lost cause, 0 otherwise.
/// - **Contact.** A sleeping dog's hazard gains `w`, whatever the offer (it never accepts):
///   `w` = 2 points for a voice contact (call, robot call), 0.5 for a written one (SMS, push,
///   email) — an unexpected retention call wakes a dormant subscriber more than a message, and
///   the harm does not shrink with a low hazard (dormant subscribers have low ones).
///   Anyone else accepts with the offer's `acceptance`. An accepting persuadable's hazard is
///   multiplied by `1 − min(0.95, f·e)`, `e` being the offer's effect for its real reason as the
///   campaign file states it (`retention_effect_by_reason`, else `retention_effect`) and `f`:
///   2 when the offer addresses the real reason (lists it in `reasons` or
///   `retention_effect_by_reason`), 0.25 when it lists reasons but not that one, 1 for a generic
///   offer (no reasons). About half of a targeted population is persuadable, so the file's effect
///   is right on average for a generic offer or one that addresses the real reason, and far too
///   high for one that misses it: the world, not the file, decides how much an offer works. Sure
///   things and lost causes may accept, and nothing changes.
/// - The effect lasts for the month of the contact (the report's observation window).
public enum HiddenResponse {
    /// Log-odds shift of a sure thing's hazard.
    public static let sureThingShift = -0.7
    /// Log-odds shift of a lost cause's hazard.
    public static let lostCauseShift = 1.2
    /// A persuadable's hazard reduction per unit of stated effect when the offer addresses its reason.
    public static let addressedFactor = 2.0
    /// … when the offer addresses other reasons only.
    public static let missedFactor = 0.25
    /// … when the offer addresses no reason in particular (a generic offer).
    public static let genericFactor = 1.0
    /// The largest reduction an offer achieves.
    public static let maxReduction = 0.95

    /// How much a contact through `channel` adds to a sleeping dog's hazard.
    @inlinable
    public static func wakeUp(_ channel: Channel) -> Double {
        switch channel {
        case .call, .robotCall: 0.02
        case .sms, .push, .email: 0.005
        }
    }

    /// How an offer relates to a subscriber's real reason.
    public enum Match: Sendable {
        /// The offer addresses the real reason.
        case addressed
        /// The offer addresses other reasons only.
        case missed
        /// The offer lists no reasons.
        case generic

        /// The reduction factor per unit of stated effect.
        @inlinable
        public var factor: Double {
            switch self {
            case .addressed: HiddenResponse.addressedFactor
            case .missed: HiddenResponse.missedFactor
            case .generic: HiddenResponse.genericFactor
            }
        }
    }

    /// The untreated monthly churn hazard.
    @inlinable
    public static func hazard(modelProbability p: Double, traits: HiddenTraits) -> Double {
        let q = p.isFinite ? min(max(p, 1e-6), 1 - 1e-6) : 0.5
        var z = log(q / (1 - q)) + Double(traits.noise)
        switch traits.response {
        case .sureThing: z += sureThingShift
        case .lostCause: z += lostCauseShift
        case .persuadable, .sleepingDog: break
        }
        return 1 / (1 + exp(-z))
    }

    /// The hazard after a contact.
    /// - Parameters:
    ///   - h0: the untreated hazard.
    ///   - channel: how the contact is made.
    ///   - accepted: whether the subscriber accepted the offer (a sleeping dog never does).
    ///   - match: how the offer relates to the real reason.
    ///   - effect: the offer's stated effect for the real reason.
    @inlinable
    public static func treatedHazard(_ h0: Double, traits: HiddenTraits, channel: Channel, accepted: Bool, match: Match,
                                     effect: Double) -> Double {
        switch traits.response {
        case .sleepingDog:
            return min(0.95, max(h0, h0 + wakeUp(channel)))
        case .sureThing, .lostCause:
            return h0
        case .persuadable:
            guard accepted else { return h0 }
            let e = min(max(effect, 0), 1)
            return h0 * (1 - min(maxReduction, match.factor * e))
        }
    }
}
