/// One offer a candidate may receive in the global fill: its expected value and the contact
/// policy's verdict for its channel.
public struct FillOption: Sendable, Equatable {
    /// Index in `Campaign.offers`.
    public var offer: Int
    /// `p × acceptance × effect × CLV − cost` (`RankedOffer.expectedValue`).
    public var expectedValue: Double
    /// The policy's verdict for the offer's channel.
    public var verdict: PolicyVerdict

    public init(offer: Int, expectedValue: Double, verdict: PolicyVerdict) {
        self.offer = offer
        self.expectedValue = expectedValue
        self.verdict = verdict
    }
}

/// The candidates of a campaign run, as the shards send them to the coordinator: per subscriber
/// its cell, arm and ranked options. Flat (struct of arrays) so that ten million candidates are a
/// handful of arrays, and shards' parts are joined with `append(contentsOf:)`.
public struct FillCandidates: Sendable, Equatable {
    public private(set) var subscriberIDs: [Int64] = []
    /// Value tier of each candidate.
    public private(set) var tiers: [Int32] = []
    public private(set) var bands: [RiskBand] = []
    /// Whether each candidate is in the control group (`ControlGroup`).
    public private(set) var isControl: [Bool] = []
    /// `options[optionStart[i]..<optionStart[i + 1]]` are candidate `i`'s options.
    public private(set) var optionStart: [Int] = [0]
    public private(set) var options: [FillOption] = []

    public init() {}

    /// Number of candidates.
    public var count: Int { subscriberIDs.count }

    /// Candidate `i`'s options (empty outside `0..<count`).
    public func options(of i: Int) -> ArraySlice<FillOption> {
        guard i >= 0 && i < count else { return [] }
        return options[optionStart[i]..<optionStart[i + 1]]
    }

    /// Reserves room for `candidates` candidates with about `optionsEach` options each.
    public mutating func reserve(_ candidates: Int, optionsEach: Int = 2) {
        subscriberIDs.reserveCapacity(candidates)
        tiers.reserveCapacity(candidates)
        bands.reserveCapacity(candidates)
        isControl.reserveCapacity(candidates)
        optionStart.reserveCapacity(candidates + 1)
        options.reserveCapacity(candidates * optionsEach)
    }

    /// Adds a candidate with its options (in any order: the fill walks them by expected value).
    public mutating func append(subscriberID: Int64, tier: Int, band: RiskBand, isControl control: Bool, options o: some Sequence<FillOption>) {
        subscriberIDs.append(subscriberID)
        tiers.append(Int32(clamping: tier))
        bands.append(band)
        isControl.append(control)
        options.append(contentsOf: o)
        optionStart.append(options.count)
    }

    /// Adds a subscriber as `NextBestAction` ranked it, with its channels' policy verdicts.
    public mutating func append(_ facts: SubscriberFacts, ranked: RankedOffers, verdicts: ChannelVerdicts, offers: [Offer], isControl control: Bool) {
        append(subscriberID: facts.subscriberID, tier: facts.tier, band: facts.band, isControl: control,
               options: ranked.lazy.filter { offers.indices.contains($0.offer) }.map {
                   FillOption(offer: $0.offer, expectedValue: $0.expectedValue, verdict: verdicts[offers[$0.offer].channel])
               })
    }

    /// Adds another part's candidates (another shard's).
    public mutating func append(contentsOf other: FillCandidates) {
        let base = options.count
        subscriberIDs.append(contentsOf: other.subscriberIDs)
        tiers.append(contentsOf: other.tiers)
        bands.append(contentsOf: other.bands)
        isControl.append(contentsOf: other.isControl)
        options.append(contentsOf: other.options)
        optionStart.append(contentsOf: other.optionStart.dropFirst().map { $0 + base })
    }
}
