import Foundation
import Retention
import SubscriberProfiles
import Testing

/// The live campaign's decision for one trigger: the batch run's rules, one subscriber at a time.
@Suite("Live decision")
struct LiveDeciderTests {
    static func f(_ name: String) -> Int { FeatureCatalogue.index(of: name) ?? -1 }

    static let campaign: Campaign = {
        let text = """
        {"name": "live-unit", "value_tiers": [0.5],
         "offers": [
           {"id": "call_fix", "channel": "call", "cost": 1, "acceptance": 0.5, "retention_effect": 0.5, "reasons": ["complaints_90d"]},
           {"id": "sms_deal", "channel": "sms", "cost": 0.5, "acceptance": 0.3, "retention_effect": 0.3},
           {"id": "prepaid_only", "channel": "push", "cost": 0.1, "acceptance": 0.1, "retention_effect": 0.1, "eligible": {"is_prepaid": [1]}}],
         "matrix": {"tier1": {"very_high": ["call_fix", "sms_deal", "prepaid_only"], "high": ["sms_deal"]}, "tier0": {}},
         "contact_policy": {"channels": {"sms": {"max": 1, "days": 7}}, "global": {"max": 2, "days": 30}, "cooldown_after_refusal_days": 60,
                            "quiet_hours": {"call": {"from": "20:00", "to": "09:00"}}},
         "control_fraction": 0.5}
        """
        do { return try Campaign.parse(Array(text.utf8), source: "live") } catch { fatalError("\(error)") }
    }()

    /// Tier 1 from a value of 10 up; an ARPU of 300 with the default CLV settings is far above.
    static let decider = LiveDecider(campaign: campaign, tiers: ValueTiers(cuts: [10]), clv: .default)
    /// 2026-12-03 12:00 UTC.
    static let noon: Int64 = 1_796_299_200

    static func subject(_ id: Int64 = 1, p: Double = 0.6, reasons: TopReasons = [f("complaints_90d")], arpu: Double = 300) -> LiveDecider.Subject {
        LiveDecider.Subject(subscriberID: id, probability: p, reasons: reasons, arpu: arpu, region: 0)
    }

    static func postpaid(_ c: Int) -> Double { c == f("is_prepaid") ? 0 : .nan }

    static func id(control: Bool) -> Int64 {
        let group = ControlGroup(campaign: campaign.name, fraction: campaign.controlFraction)
        return (1...1000).first { group.contains($0) == control } ?? 0
    }

    @Test("the best offer of the cell that the policy and the lease allow; the arm by the campaign's control hash")
    func bestAllowedOffer() {
        let treated = Self.id(control: false)
        let d = Self.decider.decide(Self.subject(treated), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in true }
        guard case .action(let offer, let arm, let ev, _, let sendAfter) = d else { Issue.record("\(d)"); return }
        #expect(offer == 0 && arm == .treatment && ev > 0 && sendAfter == Self.noon)
        let held = Self.id(control: true)
        let c = Self.decider.decide(Self.subject(held), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in true }
        guard case .action(0, .control, _, _, _) = c else { Issue.record("\(c)"); return }
    }

    @Test("no room on the call lease: the next offer; a channel capped: the next; everything refused: the policy's reason; no room anywhere: no capacity")
    func fallsThrough() {
        let id = Self.id(control: false)
        let noCalls = Self.decider.decide(Self.subject(id), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { c, _ in c != .call }
        guard case .action(1, .treatment, _, _, _) = noCalls else { Issue.record("\(noCalls)"); return }
        var twice = ContactHistory()
        twice.record(.sms, at: Self.noon - 86_400)
        twice.record(.call, at: Self.noon - 86_400)
        let capped = Self.decider.decide(Self.subject(id), feature: Self.postpaid, history: twice, now: Self.noon) { _, _ in true }
        #expect(capped == .suppressed(.globalCap))
        var refused = ContactHistory()
        refused.recordRefusal(at: Self.noon - 3 * 86_400)
        #expect(Self.decider.decide(Self.subject(id), feature: Self.postpaid, history: refused, now: Self.noon) { _, _ in true } == .suppressed(.refusalCooldown))
        #expect(Self.decider.decide(Self.subject(id), feature: Self.postpaid, history: ContactHistory(),
                                    permissions: ContactPermissions(doNotContact: true), now: Self.noon) { _, _ in true } == .suppressed(.doNotContact))
        #expect(Self.decider.decide(Self.subject(id), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in false } == .noCapacity)
    }

    @Test("out of every cell, nothing worth offering, not eligible; a call in quiet hours is sent when they end")
    func noActionAndQuietHours() {
        // Low risk: the cell (tier1, low) allows nothing.
        #expect(Self.decider.decide(Self.subject(p: 0.01), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in true } == .noCell)
        // No revenue: tier 0, whose cells are empty.
        #expect(Self.decider.decide(Self.subject(arpu: 0), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in true } == .noCell)
        // High band allows only the sms deal; a tiny CLV makes it worth nothing.
        let high = LiveDecider(campaign: Self.campaign, tiers: ValueTiers(cuts: [0.0001]), clv: .default)
        #expect(high.decide(Self.subject(p: 0.2, arpu: 0.001), feature: Self.postpaid, history: ContactHistory(), now: Self.noon) { _, _ in true } == .noOffer)
        // 21:00 UTC in region 0 (UTC+0 here): the call waits until 09:00 the next day.
        let evening = Self.noon + 9 * 3600
        let d = Self.decider.decide(Self.subject(Self.id(control: false)), feature: Self.postpaid, history: ContactHistory(), now: evening) { _, _ in true }
        guard case .action(0, _, _, _, let sendAfter) = d else { Issue.record("\(d)"); return }
        #expect(sendAfter == Self.noon + 86_400 - 3 * 3600)
    }
}
