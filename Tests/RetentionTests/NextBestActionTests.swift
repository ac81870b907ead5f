import Foundation
import Retention
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Next-best action")
struct NextBestActionTests {
    static func f(_ name: String) -> Int { FeatureCatalogue.index(of: name) ?? -1 }

    static let campaign: Campaign = {
        let text = """
        {"name": "nba-test", "value_tiers": [0.3333, 0.6667],
         "offers": [
           {"id": "call_fix", "channel": "call", "cost": 40, "acceptance": 0.35, "retention_effect": 0.5,
            "reasons": ["complaints_90d", "support_calls_30d"], "retention_effect_by_reason": {"complaints_90d": 0.6}},
           {"id": "discount", "channel": "sms", "cost": 60, "acceptance": 0.15, "retention_effect": 0.3,
            "reasons": ["competitor_price_gap"], "eligible": {"is_prepaid": [0]}},
           {"id": "any_push", "channel": "push", "cost": 1, "acceptance": 0.1, "retention_effect": 0.1},
           {"id": "same_push", "channel": "push", "cost": 1, "acceptance": 0.1, "retention_effect": 0.1}],
         "matrix": {"high": {"very_high": ["same_push", "discount", "any_push", "call_fix"]}, "mid": {"very_high": ["any_push"]}, "low": {}},
         "control_fraction": 0.1}
        """
        do { return try Campaign.parse(Array(text.utf8), source: "nba") } catch { fatalError("\(error)") }
    }()

    static let nba = NextBestAction(campaign: campaign)

    static func facts(p: Double = 0.5, clv: Double = 2000, tier: Int = 2, reasons: TopReasons) -> SubscriberFacts {
        SubscriberFacts(subscriberID: 7, probability: p, clv: clv, valueIfRetained: clv * 2, tier: tier, reasons: reasons)
    }

    static func postpaid(_ i: Int) -> Double { i == f("is_prepaid") ? 0 : .nan }

    @Test("offers are ranked by p × acceptance × effect × CLV − cost, the per-reason effect winning, EV ≤ 0 dropped, ties by file order")
    func ranking() {
        let r = Self.nba.rank(Self.facts(reasons: [Self.f("complaints_90d"), Self.f("competitor_price_gap")]), feature: Self.postpaid)
        // call_fix 0.5 × 0.35 × 0.6 × 2000 − 40 = 170; discount 45 − 60 < 0; the pushes 10 − 1 = 9 each.
        #expect(r.map(\.offer) == [0, 2, 3])
        #expect(abs(r[0].expectedValue - 170) < 1e-9 && r[0].effect == 0.6)
        #expect(abs(r[0].expectedSavedCLV - 210) < 1e-9)
        #expect(abs(r[1].expectedValue - 9) < 1e-9)
        // A richer subscriber makes the discount worth it.
        let rich = Self.nba.rank(Self.facts(clv: 5000, reasons: [Self.f("complaints_90d"), Self.f("competitor_price_gap")]), feature: Self.postpaid)
        #expect(rich.map(\.offer) == [0, 1, 2, 3])
        #expect(abs(rich[1].expectedValue - 52.5) < 1e-9)
    }

    @Test("a reason without its own effect uses the offer's retention_effect")
    func baseEffect() {
        let r = Self.nba.rank(Self.facts(reasons: [Self.f("support_calls_30d")]), feature: Self.postpaid)
        #expect(r.best?.offer == 0 && r.best?.effect == 0.5)
        #expect(abs((r.best?.expectedValue ?? 0) - 135) < 1e-9)
    }

    @Test("an offer with reasons goes only to subscribers with one of them among their top reasons")
    func reasonsGate() {
        let r = Self.nba.rank(Self.facts(clv: 5000, reasons: [Self.f("dropped_call_rate")]), feature: Self.postpaid)
        #expect(r.map(\.offer) == [2, 3])
        #expect(Self.nba.rank(Self.facts(clv: 5000, reasons: []), feature: Self.postpaid).map(\.offer) == [2, 3])
    }

    @Test("eligibility: the value must be listed; a missing value is not eligible", arguments: [(0.0, true), (1.0, false), (Double.nan, false)])
    func eligibility(_ prepaid: Double, _ eligible: Bool) {
        let r = Self.nba.rank(Self.facts(clv: 5000, reasons: [Self.f("competitor_price_gap")])) { $0 == Self.f("is_prepaid") ? prepaid : 0 }
        #expect(r.contains { $0.offer == 1 } == eligible)
        var row = [Float](repeating: 0, count: FeatureCatalogue.count)
        row[Self.f("is_prepaid")] = Float(prepaid)
        #expect(Self.nba.rank(Self.facts(clv: 5000, reasons: [Self.f("competitor_price_gap")]), profile: row).contains { $0.offer == 1 } == eligible)
    }

    @Test("no action for an absent or empty cell, a tier out of range, an unscored subscriber or no CLV")
    func noAction() {
        let reasons: TopReasons = [Self.f("complaints_90d")]
        #expect(Self.nba.rank(Self.facts(tier: 0, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(tier: 3, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(tier: -1, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(p: .nan, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(clv: .nan, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(clv: 0, reasons: reasons), feature: Self.postpaid).isEmpty)
        // p = 0.2 is band high: the high row only has a very_high cell.
        #expect(Self.nba.rank(Self.facts(p: 0.2, reasons: reasons), feature: Self.postpaid).isEmpty)
        #expect(Self.nba.rank(Self.facts(p: 0.5, tier: 1, reasons: reasons), feature: Self.postpaid).map(\.offer) == [2])
    }

    @Test("bands follow the cluster's thresholds")
    func bands() {
        #expect([0, 0.049, 0.05, 0.149, 0.15, 0.349, 0.35, 1, .nan].map { RiskBand(probability: $0) }
                == [.low, .low, .medium, .medium, .high, .high, .veryHigh, .veryHigh, .low])
        #expect(RiskBand.allCases.map(\.wireName) == ["low", "medium", "high", "very_high"])
        #expect(RiskBand(wireName: "very_high") == .veryHigh && RiskBand(wireName: "VeryHigh") == nil)
    }

    @Test("the fast path matches a direct reading of the rules on random subscribers, reusing one buffer")
    func againstReference() throws {
        let url = TestDatabase.packageRoot.appendingPathComponent("Deploy/campaign.json")
        let c = try Campaign.parse(Array(try Data(contentsOf: url)), source: url.path)
        let nba = NextBestAction(campaign: c)
        var rng = SeededGenerator("nba reference")
        var buffer = RankedOffers()
        for _ in 0..<5_000 {
            let p = Double.random(in: 0...1, using: &rng)
            let reasons = TopReasons((0..<Int.random(in: 0...3, using: &rng)).map { _ in Int.random(in: 0..<FeatureCatalogue.count, using: &rng) })
            let facts = SubscriberFacts(subscriberID: 1, probability: p, clv: Double.random(in: 0...20_000, using: &rng),
                                        valueIfRetained: 0, tier: Int.random(in: 0...2, using: &rng), reasons: reasons)
            let row = (0..<FeatureCatalogue.count).map { _ in [Float(0), 1, .nan][Int.random(in: 0...2, using: &rng)] }
            nba.rank(facts, feature: { Double(row[$0]) }, into: &buffer)
            // Reference: the documented rules, straight from the Offer values.
            var want: [(Int, Double)] = []
            for k in c.matrix.offers(tier: facts.tier, band: facts.band) {
                let o = c.offers[k]
                guard o.reasons.isEmpty || o.reasons.contains(where: reasons.contains) else { continue }
                let byReason = o.effectByReason.filter { reasons.contains($0.feature) }.map(\.effect).max()
                let ev = p * o.acceptance * (byReason ?? o.retentionEffect) * facts.clv - o.cost
                guard ev > 0, o.eligibility.allSatisfy({ $0.admits(Double(row[$0.feature])) }) else { continue }
                want.append((k, ev))
            }
            want.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
            #expect(buffer.map(\.offer) == want.map(\.0))
            #expect(zip(buffer.map(\.expectedValue), want.map(\.1)).allSatisfy { abs($0 - $1) < 1e-9 })
        }
    }

    @Test("top reasons keep four, skip the cluster's −1 padding and never trap on an index")
    func topReasons() {
        let r = TopReasons([3, -1, 5, 7, 9, 11])
        #expect(Array(r) == [3, 5, 7, 9] && r.count == 4)
        #expect(r[10] == -1 && r[-1] == -1)
        #expect(Array(TopReasons(4, -1, -1)) == [4])
        #expect(r.contains(feature: 9) && !r.contains(feature: 11))
    }
}
