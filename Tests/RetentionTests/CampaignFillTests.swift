import Retention
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Campaign fill")
struct CampaignFillTests {
    static let offers = [
        Offer(id: "call", channel: .call, cost: 40, acceptance: 0.35, retentionEffect: 0.5),
        Offer(id: "sms", channel: .sms, cost: 60, acceptance: 0.15, retentionEffect: 0.3),
        Offer(id: "push", channel: .push, cost: 1, acceptance: 0.1, retentionEffect: 0.1),
    ]
    static let tierNames = ["low", "mid", "high"]

    /// `n` random candidates: 1–3 options each, some refused by the policy, a 10% holdout.
    static func random(_ n: Int, _ rng: inout SeededGenerator, suppressedShare: Double = 0.1) -> FillCandidates {
        let holdout = ControlGroup(campaign: "fill-test", fraction: 0.1)
        var c = FillCandidates()
        for i in 0..<n {
            let id = Int64(i * 7 + 3)
            let options = (0..<3).shuffled(using: &rng).prefix(Int.random(in: 1...3, using: &rng)).map { k in
                FillOption(offer: k, expectedValue: Double.random(in: 1...500, using: &rng),
                           verdict: Double.random(in: 0...1, using: &rng) < suppressedShare ? .suppressed(.channelCap) : .allowed)
            }
            c.append(subscriberID: id, tier: Int.random(in: 0...2, using: &rng), band: RiskBand.allCases.randomElement(using: &rng) ?? .low,
                     isControl: holdout.contains(id), options: options)
        }
        return c
    }

    static func treatedCost(_ r: CampaignFill.Result) -> Double {
        r.decisions.reduce(0) { if case .treatment(let k) = $1 { $0 + offers[k].cost } else { $0 } }
    }

    @Test("capacity and budget are never exceeded, and the budget used is the treated offers' cost", arguments: [
        (50, 1_000.0), (0, 100_000.0), (100_000, 500.0), (300, 1e9),
    ])
    func limits(_ callCapacity: Int, _ budget: Double) {
        var rng = SeededGenerator("fill limits")
        let c = Self.random(20_000, &rng)
        let r = CampaignFill.fill(c, offers: Self.offers, capacity: [.call: callCapacity, .sms: 2_000], budget: budget, tierNames: Self.tierNames)
        #expect((r.summary.perChannel[.call]?.treatment ?? 0) <= callCapacity)
        #expect((r.summary.perChannel[.sms]?.treatment ?? 0) <= 2_000)
        #expect(r.summary.budgetUsed <= budget)
        #expect(abs(r.summary.budgetUsed - Self.treatedCost(r)) < 1e-6)
        let counted = r.summary.treatment + r.summary.control + r.summary.suppressedByPolicy + r.summary.noCapacity
        #expect(counted == r.summary.eligible && r.summary.eligible == c.count)
        #expect(r.summary.perCell.values.reduce(0) { $0 + $1.treatment } == r.summary.treatment)
        #expect(Set(r.priority) == Set(0..<c.count))
    }

    @Test("the control arm consumes nothing: the treated get exactly what they get without the controls")
    func controlConsumesNothing() {
        var rng = SeededGenerator("fill control")
        let c = Self.random(20_000, &rng)
        let r = CampaignFill.fill(c, offers: Self.offers, capacity: [.call: 800, .sms: 1_500], budget: 50_000, tierNames: Self.tierNames)
        var withoutControls = FillCandidates()
        var kept: [Int] = []
        for i in 0..<c.count where !c.isControl[i] {
            withoutControls.append(subscriberID: c.subscriberIDs[i], tier: Int(c.tiers[i]), band: c.bands[i], isControl: false, options: c.options(of: i))
            kept.append(i)
        }
        let alone = CampaignFill.fill(withoutControls, offers: Self.offers, capacity: [.call: 800, .sms: 1_500], budget: 50_000, tierNames: Self.tierNames)
        #expect(kept.enumerated().allSatisfy { r.decisions[$0.element] == alone.decisions[$0.offset] })
        #expect(r.summary.budgetUsed == alone.summary.budgetUsed)
        // The holdout is about 10% of those selected (treated + control).
        let selected = Double(r.summary.treatment + r.summary.control)
        let share = Double(r.summary.control) / selected
        #expect(abs(share - 0.1) < 4.5 * (0.09 / selected).squareRoot(), "\(r.summary.control) of \(selected)")
    }

    @Test("controls share the treated's priority cut-off: held out above it, no capacity below it")
    func cutOff() {
        var c = FillCandidates()
        for i in 1...100 {
            c.append(subscriberID: Int64(i), tier: 2, band: .veryHigh, isControl: i % 10 == 3,
                     options: [FillOption(offer: 0, expectedValue: 1_000 - Double(i), verdict: .allowed)])
        }
        let r = CampaignFill.fill(c, offers: Self.offers, capacity: [.call: 20], budget: nil, tierNames: Self.tierNames)
        #expect(r.summary.treatment == 20 && r.summary.perChannel[.call] == .init(treatment: 20, control: 2))
        // Treated 1…22 minus the controls 3 and 13; 23 is the first beyond the cut.
        #expect(r.decisions[2] == .control(offer: 0) && r.decisions[12] == .control(offer: 0))
        #expect(r.decisions[21] == .treatment(offer: 0))
        #expect(r.decisions[22] == .noCapacity)  // id 23: a control, but beyond the cut-off
        #expect(r.decisions[23] == .noCapacity)
        #expect(r.summary.perCell == ["high/very_high": .init(treatment: 20, control: 2)])
        #expect(r.priority[0] == 0 && r.priority[99] == 99)
    }

    @Test("a subscriber over a cap is suppressed with the reason; one with another allowed channel gets it")
    func suppressed() {
        var c = FillCandidates()
        c.append(subscriberID: 1, tier: 0, band: .high, isControl: false, options: [
            FillOption(offer: 0, expectedValue: 300, verdict: .suppressed(.channelCap)),
            FillOption(offer: 1, expectedValue: 200, verdict: .suppressed(.noConsent)),
        ])
        c.append(subscriberID: 2, tier: 0, band: .high, isControl: false, options: [
            FillOption(offer: 0, expectedValue: 300, verdict: .suppressed(.globalCap)),
            FillOption(offer: 2, expectedValue: 10, verdict: .allowed),
        ])
        let r = CampaignFill.fill(c, offers: Self.offers, capacity: [:], budget: nil, tierNames: Self.tierNames)
        #expect(r.decisions == [.suppressed(.channelCap), .treatment(offer: 2)])
        #expect(r.summary.suppressedByPolicy == 1 && r.summary.treatment == 1)
    }

    @Test("a full channel or an empty budget falls to the next best offer that fits")
    func fallback() {
        var c = FillCandidates()
        for id in [5, 4] as [Int64] {
            c.append(subscriberID: id, tier: 1, band: .veryHigh, isControl: false, options: [
                FillOption(offer: 2, expectedValue: 9, verdict: .allowed),
                FillOption(offer: 0, expectedValue: 100, verdict: .allowed),
            ])
        }
        let r = CampaignFill.fill(c, offers: Self.offers, capacity: [.call: 1], budget: 41, tierNames: Self.tierNames)
        // Equal priority: id 4 first, gets the call; id 5 finds the call centre full and gets the push.
        #expect(r.decisions == [.treatment(offer: 2), .treatment(offer: 0)])
        #expect(r.summary.budgetUsed == 41)
        #expect(abs(r.summary.expectedSavedCLV - (100 + 40 + 9 + 1)) < 1e-9)
        let broke = CampaignFill.fill(c, offers: Self.offers, capacity: [:], budget: 0.5, tierNames: Self.tierNames)
        #expect(broke.decisions == [.noCapacity, .noCapacity] && broke.summary.noCapacity == 2)
    }

    @Test("shards' parts joined equal the whole; candidates without options are not eligible")
    func joinParts() {
        var rng = SeededGenerator("fill parts")
        let a = Self.random(500, &rng), b = Self.random(300, &rng)
        var joined = a
        joined.append(contentsOf: b)
        #expect(joined.count == 800)
        #expect(Array(joined.options(of: 650)) == Array(b.options(of: 150)))
        #expect(joined.options(of: 800).isEmpty && joined.options(of: -1).isEmpty)
        var empty = FillCandidates()
        empty.append(subscriberID: 1, tier: 0, band: .low, isControl: false, options: [])
        let r = CampaignFill.fill(empty, offers: Self.offers, capacity: [:], budget: nil, tierNames: Self.tierNames)
        #expect(r.decisions == [.noOffer] && r.summary.eligible == 0)
    }

    @Test("from a campaign: ranked offers and channel verdicts become options")
    func fromRanking() throws {
        let campaign = try CampaignTests.parse(CampaignTests.issueExample)
        let facts = SubscriberFacts(subscriberID: 9, probability: 0.6, clv: 5_000, valueIfRetained: 9_000, tier: 2,
                                    reasons: [FeatureCatalogue.index(of: "complaints_90d") ?? -1])
        let ranked = NextBestAction(campaign: campaign).rank(facts) { _ in 0 }
        var verdicts = ChannelVerdicts(all: .allowed)
        verdicts[.call] = .suppressed(.channelCap)
        var c = FillCandidates()
        c.append(facts, ranked: ranked, verdicts: verdicts, offers: campaign.offers, isControl: false)
        let r = CampaignFill.fill(c, campaign: campaign)
        #expect(ranked.map(\.offer) == [0])
        #expect(r.decisions == [.suppressed(.channelCap)])
    }
}
