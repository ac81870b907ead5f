import Retention
import SubscriberProfiles
import Testing

@Suite("Call scripts")
struct CallScriptTests {
    static func f(_ name: String) -> Int { FeatureCatalogue.index(of: name) ?? -1 }
    static let offer = Offer(id: "loyalty_call", channel: .call, cost: 40, acceptance: 0.35, retentionEffect: 0.5,
                             description: "a free month and a technician visit")

    @Test("the agent reads the top reasons in plain words, with their values, then the offer")
    func script() {
        let values: [Int: Double] = [Self.f("complaints_90d"): 3, Self.f("dropped_call_rate"): 0.052, Self.f("days_to_contract_end"): -12]
        let s = CallScript.text(offer: Self.offer, reasons: [Self.f("complaints_90d"), Self.f("dropped_call_rate"), Self.f("days_to_contract_end")]) {
            values[$0] ?? .nan
        }
        #expect(s == "Retention call. Why the customer may leave: complained 3 times in the last 90 days; 5% of calls dropped in the last 30 days; "
                + "contract ended 12 days ago, so the customer is free to leave. Offer: a free month and a technician visit. "
                + "Listen first, acknowledge the problem, then make the offer.")
    }

    @Test("every catalogue feature has a phrase, with or without a value, and none shows a raw float")
    func everyFeature() {
        for i in 0..<FeatureCatalogue.count {
            for v in [Double.nan, 0, 1, 2.5, -3.25, 1e30] {
                let p = CallScript.phrase(feature: i, value: v)
                #expect(!p.isEmpty && p.count < 160, "\(FeatureCatalogue.names[i]) \(v): \(p)")
                #expect(!p.contains("e+") && !p.contains("nan") && !p.contains("inf"), "\(p)")
            }
        }
        #expect(CallScript.phrase(feature: Self.f("complaints_90d"), value: 1) == "complained once in the last 90 days")
        #expect(CallScript.phrase(feature: Self.f("arpu_trend_3m"), value: -0.35) == "spending is down 35% over the last 3 months")
        #expect(CallScript.phrase(feature: Self.f("competitor_price_gap"), value: 7.5) == "pays 7.5 a month more than the cheapest comparable competitor offer")
        #expect(CallScript.phrase(feature: 999, value: 1) == "an unknown reason")
    }

    @Test("at most 500 characters and deterministic, whatever the offer's words")
    func bounded() {
        var long = Self.offer
        long.description = String(repeating: "very generous ", count: 14)
        let reasons: TopReasons = [Self.f("port_out_inquiries_90d"), Self.f("competitor_price_gap"), Self.f("days_to_contract_end"), Self.f("outage_hours_30d")]
        let a = CallScript.text(offer: long, reasons: reasons) { _ in 123_456 }
        let b = CallScript.text(offer: long, reasons: reasons) { _ in 123_456 }
        #expect(a == b && a.count <= CallScript.maxLength)
        #expect(a.contains("Offer: very generous"))
        let noDescription = Offer(id: "x\n1", channel: .call, cost: 0, acceptance: 1, retentionEffect: 1)
        #expect(!CallScript.text(offer: noDescription, reasons: []) { _ in .nan }.contains("\n"))
    }
}
