/// The decision for one fired trigger of the live campaign (docs/retention.md, "Real time"): the
/// same rules as a batch run's — cell, reason, expected value, eligibility (`NextBestAction`), the
/// contact policy (`ContactPolicy`), the control group (`ControlGroup`) — for one subscriber at a
/// time. Capacity and budget are the worker's leased quotas: `room` says whether the lease still
/// has room for an offer's channel and cost (the write that records the action checks again).
///
/// Pure: the history, the quotas and the time are passed in.
public struct LiveDecider: Sendable {
    public let campaign: Campaign
    public let tiers: ValueTiers
    public let clv: CLVSettings
    let nba: NextBestAction
    public let policy: ContactPolicy
    let control: ControlGroup

    /// What a trigger comes to.
    public enum Outcome: Sendable, Equatable {
        /// Contact with this offer (treatment) or hold out with it (control).
        case action(offer: Int, arm: Arm, expectedValue: Double, expectedSavedCLV: Double, sendAfter: Int64)
        /// The subscriber's cell (value tier × risk band) allows no offer.
        case noCell
        /// No allowed offer is worth making or the subscriber is not eligible for any.
        case noOffer
        /// Every offer worth making is on a channel the contact policy refuses now.
        case suppressed(PolicyReason)
        /// Offers the policy allows, but the lease has no room for any.
        case noCapacity
    }

    public enum Arm: String, Sendable {
        case treatment, control
    }

    /// A trigger's subscriber as the worker knows it when it decides.
    public struct Subject: Sendable {
        public var subscriberID: Int64
        /// The probability after the event (the trigger's).
        public var probability: Double
        /// Top reasons (`FeatureCatalogue` indices, positive contributions, largest first).
        public var reasons: TopReasons
        public var arpu: Double
        /// Home region code (NaN when unknown): quiet hours.
        public var region: Double

        public init(subscriberID: Int64, probability: Double, reasons: TopReasons, arpu: Double, region: Double) {
            self.subscriberID = subscriberID
            self.probability = probability
            self.reasons = reasons
            self.arpu = arpu
            self.region = region
        }
    }

    /// - Parameters:
    ///   - tiers: the value tiers' cut values, fixed when the campaign went live (from the whole base).
    public init(campaign: Campaign, tiers: ValueTiers, clv: CLVSettings) {
        self.campaign = campaign
        self.tiers = tiers
        self.clv = clv
        nba = NextBestAction(campaign: campaign)
        policy = ContactPolicy(campaign: campaign)
        control = ControlGroup(campaign: campaign.name, fraction: campaign.controlFraction)
    }

    /// The subscriber's facts (value, tier, band, CLV) as the decision uses them.
    public func facts(_ s: Subject) -> SubscriberFacts {
        let value = clv.valueIfRetained(arpu: s.arpu)
        return SubscriberFacts(subscriberID: s.subscriberID, probability: s.probability, clv: clv.clv(probability: s.probability, arpu: s.arpu),
                               valueIfRetained: value, tier: tiers.tier(of: value), reasons: s.reasons)
    }

    /// Decides for `subject` at `now` (seconds since 1970).
    /// - Parameters:
    ///   - feature: the subscriber's profile value of a catalogue column (eligibility, NaN when missing).
    ///   - history: its contacts and refusals; `permissions`: consent and do-not-contact.
    ///   - room: whether the lease has room for one contact on a channel at a cost.
    public func decide(_ subject: Subject, feature: (Int) -> Double, history: ContactHistory, permissions: ContactPermissions = ContactPermissions(),
                       now: Int64, room: (Channel, Double) -> Bool) -> Outcome {
        let f = facts(subject)
        guard f.tier < campaign.tierCount, !campaign.matrix.offers(tier: f.tier, band: f.band).isEmpty else { return .noCell }
        let ranked = nba.rank(f, feature: feature)
        guard !ranked.isEmpty else { return .noOffer }
        let verdicts = policy.verdicts(history: history, permissions: permissions, now: now)
        var anyAllowed = false
        for option in ranked {
            let offer = campaign.offers[option.offer]
            guard verdicts[offer.channel].isAllowed else { continue }
            anyAllowed = true
            guard room(offer.channel, offer.cost) else { continue }
            let arm: Arm = control.contains(subject.subscriberID) ? .control : .treatment
            return .action(offer: option.offer, arm: arm, expectedValue: option.expectedValue, expectedSavedCLV: option.expectedSavedCLV,
                           sendAfter: policy.earliestSend(offer.channel, region: subject.region, at: now))
        }
        if !anyAllowed, let best = ranked.best, case .suppressed(let why) = verdicts[campaign.offers[best.offer].channel] { return .suppressed(why) }
        return .noCapacity
    }
}
