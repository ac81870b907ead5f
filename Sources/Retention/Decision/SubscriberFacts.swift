/// What the next-best-action decision knows about one scored subscriber.
public struct SubscriberFacts: Sendable, Equatable {
    public var subscriberID: Int64
    /// The 30-day churn probability (clamped to [0, 1] when used; NaN: no action).
    public var probability: Double
    /// The risk band (the matrix's column).
    public var band: RiskBand
    /// The customer lifetime value (`CLVSettings.clv`).
    public var clv: Double
    /// The value if retained (`CLVSettings.valueIfRetained`), which set `tier`.
    public var valueIfRetained: Double
    /// The value tier (`ValueTiers.tier(of: valueIfRetained)`, the matrix's row).
    public var tier: Int
    /// The top churn reasons, largest first, positive contributions only.
    public var reasons: TopReasons

    /// Facts; `band` defaults to the probability's band.
    public init(subscriberID: Int64, probability: Double, band: RiskBand? = nil, clv: Double, valueIfRetained: Double,
                tier: Int, reasons: TopReasons) {
        self.subscriberID = subscriberID
        self.probability = probability
        self.band = band ?? RiskBand(probability: probability)
        self.clv = clv
        self.valueIfRetained = valueIfRetained
        self.tier = tier
        self.reasons = reasons
    }
}

/// One offer a subscriber may receive, with its worth.
public struct RankedOffer: Sendable, Equatable {
    /// The offer's index in `Campaign.offers`.
    public var offer: Int
    /// `p × acceptance × effect × CLV − cost`, > 0.
    public var expectedValue: Double
    /// `p × acceptance × effect × CLV`: the CLV the offer is expected to save (expected value plus cost).
    public var expectedSavedCLV: Double
    /// The retention effect used (per reason or the offer's own).
    public var effect: Double

    public init(offer: Int, expectedValue: Double, expectedSavedCLV: Double, effect: Double) {
        self.offer = offer
        self.expectedValue = expectedValue
        self.expectedSavedCLV = expectedSavedCLV
        self.effect = effect
    }
}

/// A subscriber's allowed offers, best expected value first (ties: earlier offer in the file).
/// Reusable: `NextBestAction.rank(_:feature:into:)` clears and refills it, keeping its storage.
public struct RankedOffers: Sendable, Equatable, RandomAccessCollection {
    public private(set) var elements: [RankedOffer] = []

    public init() {}

    public init(_ elements: [RankedOffer]) { self.elements = elements }

    public var startIndex: Int { 0 }
    public var endIndex: Int { elements.count }
    public subscript(i: Int) -> RankedOffer { elements[i] }

    /// The best offer, if any.
    public var best: RankedOffer? { elements.first }

    mutating func removeAll() { elements.removeAll(keepingCapacity: true) }

    /// Inserts keeping the order: expected value descending, then offer index ascending.
    mutating func insert(_ r: RankedOffer) {
        var i = elements.count
        elements.append(r)
        while i > 0, Self.before(r, elements[i - 1]) {
            elements[i] = elements[i - 1]
            i -= 1
        }
        elements[i] = r
    }

    static func before(_ a: RankedOffer, _ b: RankedOffer) -> Bool {
        a.expectedValue != b.expectedValue ? a.expectedValue > b.expectedValue : a.offer < b.offer
    }
}
