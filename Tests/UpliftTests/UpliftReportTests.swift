import Foundation
import Testing
import Uplift

@Suite("Uplift reports and breakdowns")
struct UpliftReportTests {
    @Test("uplift is control churn − treatment churn, in points; retained is uplift × treated")
    func headline() throws {
        // The example: 10 of 100 leave without the offer, 4 of 100 with it.
        let report = UpliftReport(treatment: Proportion(subscribers: 1000, events: 40),
                                  control: Proportion(subscribers: 100, events: 10))
        #expect(abs(try #require(report.upliftPP) - 6) < 1e-12)
        #expect(abs(try #require(report.retained) - 60) < 1e-9)
        let ci = try #require(report.upliftCI95PP)
        #expect(ci.contains(6) && ci.low < 6 && ci.high > 6)
    }

    @Test("a breakdown gives each group its own arms")
    func breakdown() throws {
        let keys = ["a", "a", "a", "b", "b", "a"]
        let arms: [UpliftReport.Arm] = [.treatment, .control, .treatment, .treatment, .treatment, .control]
        let churned = [false, true, true, false, false, false]
        let reports = UpliftTally.reports(keys: keys, arms: arms, churned: churned)
        let a = try #require(reports["a"])
        #expect(a.treatment == Proportion(subscribers: 2, events: 1) && a.control == Proportion(subscribers: 2, events: 1))
        #expect(a.upliftPP == 0)
        let b = try #require(reports["b"])
        #expect(b.control.subscribers == 0 && b.upliftPP == nil)
    }

    @Test("JSON: snake_case keys, [low, high] intervals, null for what cannot be estimated")
    func json() throws {
        let report = UpliftReport(treatment: Proportion(subscribers: 80, events: 48),
                                  control: Proportion(subscribers: 0, events: 0))
        let data = try JSONEncoder().encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["treatment", "control", "uplift_pp", "uplift_ci95_pp", "uplift_wald_ci95_pp", "retained"])
        #expect(object["uplift_pp"] is NSNull)
        let treatment = try #require(object["treatment"] as? [String: Any])
        #expect(treatment["subscribers"] as? Int == 80 && treatment["churned"] as? Int == 48)
        #expect(treatment["churn_rate"] as? Double == 0.6)
        let ci = ConfidenceInterval(low: 1.5, high: 2.5)
        #expect(String(decoding: try JSONEncoder().encode(ci), as: UTF8.self) == "[1.5,2.5]")
        #expect(try JSONDecoder().decode(ConfidenceInterval.self, from: Data("[1.5,2.5]".utf8)) == ci)
    }
}
