import Foundation
import Retention
import SubscriberProfiles
import Testing
import TestSupport

@Suite("Campaign files")
struct CampaignTests {
    static func feature(_ name: String) -> Int { FeatureCatalogue.index(of: name) ?? -1 }

    /// The issue's example, verbatim.
    static let issueExample = """
    {"name": "winter-retention",
     "value_tiers": [0.3333, 0.6667],
     "offers": [
       {"id": "loyalty_call", "channel": "call", "cost": 40, "acceptance": 0.35, "retention_effect": 0.5,
        "reasons": ["complaints_90d", "support_calls_30d", "dropped_call_rate"], "eligible": {}},
       {"id": "discount20", "channel": "sms", "cost": 60, "acceptance": 0.15, "retention_effect": 0.3,
        "reasons": ["competitor_price_gap", "arpu_trend_3m"], "eligible": {"is_prepaid": [0]}}],
     "matrix": {"high": {"very_high": ["loyalty_call", "discount20"], "high": ["discount20"]},
                "mid": {"very_high": ["discount20"]}},
     "contact_policy": {"channels": {"sms": {"max": 1, "days": 7}, "call": {"max": 1, "days": 30}},
                        "global": {"max": 2, "days": 30}, "cooldown_after_refusal_days": 60},
     "capacity": {"call": 5000},
     "budget": 200000,
     "control_fraction": 0.1}
    """

    static func parse(_ text: String) throws(CampaignError) -> Campaign {
        try Campaign.parse(Array(text.utf8), source: "test.json")
    }

    /// The error for the issue's example with `old` replaced by `new` (which must occur).
    static func error(replacing old: String, with new: String) -> CampaignError? {
        #expect(issueExample.contains(old), "the test's replacement \(old) is not in the example")
        do {
            _ = try parse(issueExample.replacingOccurrences(of: old, with: new))
            return nil
        } catch { return error }
    }

    @Test("the issue's example parses into typed offers, matrix, policy and limits")
    func issueExampleParses() throws {
        let c = try Self.parse(Self.issueExample)
        #expect(c.name == "winter-retention")
        #expect(c.valueTierCuts == [0.3333, 0.6667])
        #expect(c.tierNames == ["low", "mid", "high"])
        #expect(c.offers.map(\.id) == ["loyalty_call", "discount20"])
        #expect(c.offers[0].channel == .call && c.offers[1].channel == .sms)
        #expect(c.offers[0].reasons == ["complaints_90d", "support_calls_30d", "dropped_call_rate"].map(Self.feature))
        #expect(c.offers[1].eligibility == [EligibilityRule(feature: Self.feature("is_prepaid"), allowed: [0])])
        #expect(c.matrix.offers(tier: 2, band: .veryHigh) == [0, 1])
        #expect(c.matrix.offers(tier: 2, band: .high) == [1])
        #expect(c.matrix.offers(tier: 1, band: .veryHigh) == [1])
        #expect(c.matrix.offers(tier: 0, band: .veryHigh) == [])
        #expect(c.matrix.offers(tier: 7, band: .veryHigh) == [])
        #expect(c.contactPolicy.channels[.sms] == .init(max: 1, days: 7))
        #expect(c.contactPolicy.global == .init(max: 2, days: 30))
        #expect(c.contactPolicy.cooldownAfterRefusalDays == 60)
        #expect(c.capacity == [.call: 5000])
        #expect(c.budget == 200_000)
        #expect(c.controlFraction == 0.1)
        #expect(c.regionUTCOffsetsMinutes == Array(repeating: 0, count: 12))
        #expect(c.cellName(tier: 2, band: .veryHigh) == "high/very_high")
    }

    @Test("Deploy/campaign.json parses, with per-reason effects, quiet hours and region offsets")
    func deployedExample() throws {
        let url = TestDatabase.packageRoot.appendingPathComponent("Deploy/campaign.json")
        let c = try Campaign.parse(Array(try Data(contentsOf: url)), source: url.path)
        #expect(c.offers.count == 6)
        #expect(Set(c.offers.map(\.channel)) == Set(Channel.allCases))
        let loyalty = try #require(c.offers.first { $0.id == "loyalty_call" })
        #expect(loyalty.effectByReason == [ReasonEffect(feature: Self.feature("complaints_90d"), effect: 0.6)])
        #expect(c.contactPolicy.quietHours[.call] == QuietHours(from: 20 * 60, to: 9 * 60))
        #expect(c.regionUTCOffsetsMinutes.count == Campaign.regionCount)
        #expect(!c.matrix.isEmpty)
    }

    @Test("optional sections default to no caps, unlimited capacity and budget, UTC everywhere")
    func minimalFile() throws {
        let c = try Self.parse("""
            {"name": "m", "value_tiers": [], "offers": [{"id": "a", "channel": "email", "cost": 0, "acceptance": 1, "retention_effect": 0}],
             "matrix": {"tier0": {"low": ["a"]}}, "control_fraction": 0}
            """)
        #expect(c.tierNames == ["tier0"])
        #expect(c.contactPolicy == ContactPolicyRules())
        #expect(c.capacity.isEmpty && c.budget == nil)
        #expect(c.offers[0].reasons.isEmpty && c.offers[0].eligibility.isEmpty)
        #expect(c.matrix.offers(tier: 0, band: .low) == [0])
    }

    @Test("tiers are low, mid, high for two cut points and tier0… otherwise")
    func tierNames() {
        #expect(Campaign.tierNames(cuts: 2) == ["low", "mid", "high"])
        #expect(Campaign.tierNames(cuts: 1) == ["tier0", "tier1"])
        #expect(Campaign.tierNames(cuts: 3) == ["tier0", "tier1", "tier2", "tier3"])
    }

    struct Case: Sendable, CustomStringConvertible {
        var old: String
        var new: String
        var code: CampaignError.Code
        var field: String
        var mentions: [String]
        var description: String { "\(code) at \(field)" }
    }

    static let badInputs: [Case] = [
        .init(old: "\"cost\": 60", new: "\"cost\": -5", code: .outOfRange, field: "offers[1].cost", mentions: ["must be ≥ 0, got -5"]),
        .init(old: "\"acceptance\": 0.35", new: "\"acceptance\": 1.2", code: .outOfRange, field: "offers[0].acceptance", mentions: ["≤ 1", "1.2"]),
        .init(old: "\"retention_effect\": 0.3", new: "\"retention_effect\": -0.1", code: .outOfRange, field: "offers[1].retention_effect", mentions: ["≥ 0"]),
        .init(old: "\"channel\": \"sms\"", new: "\"channel\": \"smss\"", code: .unknownChannel, field: "offers[1].channel",
              mentions: ["smss", "sms, push, email, call, robot_call"]),
        .init(old: "\"arpu_trend_3m\"]", new: "\"arpu_trend3m\"]", code: .unknownFeature, field: "offers[1].reasons[1]", mentions: ["\"arpu_trend_3m\""]),
        .init(old: "{\"is_prepaid\": [0]}", new: "{\"is_prepaidd\": [0]}", code: .unknownFeature, field: "offers[1].eligible.is_prepaidd", mentions: ["\"is_prepaid\""]),
        .init(old: "{\"is_prepaid\": [0]}", new: "{\"is_prepaid\": []}", code: .emptyList, field: "offers[1].eligible.is_prepaid", mentions: []),
        .init(old: "\"id\": \"discount20\"", new: "\"id\": \"loyalty_call\"", code: .duplicateOffer, field: "offers[1].id", mentions: ["offers[0]"]),
        .init(old: "\"control_fraction\": 0.1", new: "\"control_fraction\": 1", code: .outOfRange, field: "control_fraction", mentions: ["< 1"]),
        .init(old: "\"control_fraction\": 0.1", new: "\"control_fraction\": -0.1", code: .outOfRange, field: "control_fraction", mentions: ["≥ 0"]),
        .init(old: "[0.3333, 0.6667]", new: "[0.6667, 0.3333]", code: .notIncreasing, field: "value_tiers[1]", mentions: []),
        .init(old: "[0.3333, 0.6667]", new: "[0, 0.6667]", code: .outOfRange, field: "value_tiers[0]", mentions: ["> 0"]),
        .init(old: "[0.3333, 0.6667]", new: "[0.3333, 1]", code: .outOfRange, field: "value_tiers[1]", mentions: ["< 1"]),
        .init(old: "\"mid\": {", new: "\"middle\": {", code: .unknownTier, field: "matrix.middle", mentions: ["low, mid, high"]),
        .init(old: "\"high\": [\"discount20\"]", new: "\"veryhigh\": [\"discount20\"]", code: .unknownBand, field: "matrix.high.veryhigh",
              mentions: ["\"very_high\""]),
        .init(old: "\"mid\": {\"very_high\": [\"discount20\"]}", new: "\"mid\": {\"very_high\": [\"discount30\"]}", code: .unknownOffer,
              field: "matrix.mid.very_high[0]", mentions: ["discount30", "\"discount20\""]),
        .init(old: "\"capacity\": {\"call\": 5000}", new: "\"capacity\": {\"fax\": 5000}", code: .unknownChannel, field: "capacity.fax", mentions: []),
        .init(old: "\"capacity\": {\"call\": 5000}", new: "\"capacity\": {\"call\": -1}", code: .outOfRange, field: "capacity.call", mentions: ["≥ 0"]),
        .init(old: "\"capacity\": {\"call\": 5000}", new: "\"capacity\": {\"call\": 2.5}", code: .outOfRange, field: "capacity.call", mentions: ["whole number"]),
        .init(old: "\"budget\": 200000", new: "\"budget\": -1", code: .outOfRange, field: "budget", mentions: []),
        .init(old: "{\"max\": 1, \"days\": 7}", new: "{\"max\": 0, \"days\": 7}", code: .outOfRange, field: "contact_policy.channels.sms.max", mentions: ["≥ 1"]),
        .init(old: "\"global\": {\"max\": 2, \"days\": 30}", new: "\"global\": {\"max\": 2, \"days\": 0}", code: .outOfRange,
              field: "contact_policy.global.days", mentions: ["≥ 1"]),
        .init(old: "\"budget\": 200000", new: "\"budgett\": 200000", code: .unknownKey, field: "budgett", mentions: ["\"budget\""]),
        .init(old: "\"cost\": 40", new: "\"cost\": 40, \"costs\": 41", code: .unknownKey, field: "offers[0].costs", mentions: ["\"cost\""]),
        .init(old: "\"cost\": 40", new: "\"cost\": 40, \"cost\": 41", code: .duplicateKey, field: "offers[0].cost", mentions: []),
        .init(old: "\"cost\": 40", new: "\"cost\": \"40\"", code: .wrongType, field: "offers[0].cost", mentions: ["a string", "a number"]),
        .init(old: "\"cost\": 40, ", new: "", code: .missingKey, field: "offers[0].cost", mentions: []),
        .init(old: "\"cooldown_after_refusal_days\": 60", new: "\"cooldown_after_refusal_days\": 60, \"quiet_hours\": {\"call\": {\"from\": \"25:00\", \"to\": \"09:00\"}}",
              code: .badQuietHours, field: "contact_policy.quiet_hours.call.from", mentions: ["25:00"]),
        .init(old: "\"cooldown_after_refusal_days\": 60", new: "\"cooldown_after_refusal_days\": 60, \"quiet_hours\": {\"call\": {\"from\": \"09:00\", \"to\": \"09:00\"}}",
              code: .badQuietHours, field: "contact_policy.quiet_hours.call", mentions: []),
        .init(old: "\"cooldown_after_refusal_days\": 60", new: "\"cooldown_after_refusal_days\": 60, \"quiet_hours\": {\"cal\": {\"from\": \"21:00\", \"to\": \"09:00\"}}",
              code: .unknownChannel, field: "contact_policy.quiet_hours.cal", mentions: ["\"call\""]),
        .init(old: "\"budget\": 200000", new: "\"budget\": 200000, \"region_utc_offsets_minutes\": [0, 60]", code: .outOfRange,
              field: "region_utc_offsets_minutes", mentions: ["12"]),
        .init(old: "\"eligible\": {}}", new: "\"eligible\": {}, \"retention_effect_by_reason\": {\"competitor_price_gap\": 0.5}}", code: .inconsistent,
              field: "offers[0].retention_effect_by_reason.competitor_price_gap", mentions: ["reasons"]),
        .init(old: "\"eligible\": {}}", new: "\"eligible\": {}, \"retention_effect_by_reason\": {\"complaints_90d\": 1.5}}", code: .outOfRange,
              field: "offers[0].retention_effect_by_reason.complaints_90d", mentions: ["≤ 1"]),
        .init(old: "\"name\": \"winter-retention\"", new: "\"name\": \"winter retention\"", code: .badName, field: "name", mentions: []),
        .init(old: "\"high\": [\"discount20\"]", new: "\"high\": [\"discount20\", \"discount20\"]", code: .duplicateEntry, field: "matrix.high.high[1]", mentions: []),
    ]

    @Test("bad input is refused naming the field, the problem and the choices", arguments: badInputs)
    func badInput(_ c: Case) {
        guard let e = Self.error(replacing: c.old, with: c.new) else {
            Issue.record("accepted: \(c.new)")
            return
        }
        #expect(e.code == c.code, "\(e)")
        #expect(e.field == c.field, "\(e)")
        #expect(e.description.hasPrefix("test.json: \(c.field): "), "\(e)")
        for m in c.mentions { #expect(e.description.contains(m), "\(e) should mention \(m)") }
    }

    @Test("the issue's negative cost reads as the brief's message")
    func negativeCostMessage() {
        let e = Self.error(replacing: "\"cost\": 60", with: "\"cost\": -5")
        #expect(e?.description.hasPrefix("test.json: offers[1].cost: must be ≥ 0, got -5. ") == true, "\(String(describing: e))")
    }

    @Test("malformed JSON is refused with its line and column; nothing else is thrown", arguments: [
        ("{\"name\": \"x\",\n \"budget\": 1,}", "line 2"),
        ("{\"name\": \"x\"} trailing", "after the end"),
        ("", "ends"),
        ("[1, 2", "ends inside an array"),
        ("{\"a\": 01}", "leading zeros"),
        ("{\"a\": \"\\ud800\"}", "surrogate"),
        (String(repeating: "[", count: 100), "nested"),
    ])
    func malformed(_ text: String, _ mention: String) {
        do {
            _ = try Self.parse(text)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .malformedJSON, "\(error)")
            #expect(error.description.contains(mention), "\(error)")
        }
    }

    @Test("an over-large number is refused, not turned into infinity")
    func hugeNumber() {
        let e = Self.error(replacing: "\"budget\": 200000", with: "\"budget\": 1e999")
        #expect(e?.code == .outOfRange && e?.field == "budget")
    }

    @Test("random bytes and truncations never trap")
    func fuzz() {
        var rng = SeededGenerator("campaign fuzz")
        let bytes = Array(Self.issueExample.utf8)
        for _ in 0..<2_000 {
            var b = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            if !b.isEmpty, Bool.random(using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? Campaign.parse(b, source: "fuzz")
        }
    }
}
