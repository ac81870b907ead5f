import Foundation
import Testing
import Uplift

@Suite("Campaign outcomes: attribution, report, JSON")
struct CampaignOutcomeTests {
    static let runAt = ObservationTimeTests.december3 + 10 * 3_600_000  // 2026-12-03T10:00Z
    static let day: Int64 = 86_400_000

    static func action(_ actions: inout CampaignActions, _ id: Int64, _ arm: UpliftReport.Arm, offer: String = "discount20",
                       channel: String = "sms", reason: String = "competitor_price_gap", cell: String = "high/very_high",
                       expectedValue: Double = 10, cost: Double = 60, clv: Double = 1000) {
        actions.append(subscriberID: id, arm: arm, offer: offer, channel: channel, reason: reason, cell: cell,
                       expectedValue: expectedValue, cost: cost, clv: clv)
    }

    @Test("only outcomes in (run, run + 30 days] count; the rest of the run is unobserved")
    func window() throws {
        var actions = CampaignActions()
        for id in Int64(1)...6 { Self.action(&actions, id, id % 2 == 0 ? .control : .treatment) }
        var outcomes = Outcomes()
        outcomes.append(subscriberID: 1, churned: true, accepted: nil, observedAt: Self.runAt)                       // at the run: out
        outcomes.append(subscriberID: 2, churned: true, accepted: nil, observedAt: Self.runAt + 1)                   // in
        outcomes.append(subscriberID: 3, churned: true, accepted: nil, observedAt: Self.runAt + 30 * Self.day)       // last instant: in
        outcomes.append(subscriberID: 4, churned: true, accepted: nil, observedAt: Self.runAt + 30 * Self.day + 1)   // out
        outcomes.append(subscriberID: 5, churned: true, accepted: nil, observedAt: Self.runAt - Self.day)            // before: out
        outcomes.append(subscriberID: 99, churned: true, accepted: nil, observedAt: Self.runAt + Self.day)           // not in the run
        let report = try CampaignOutcome.report(runID: "r1", runAt: Self.runAt, actions: actions, outcomes: outcomes)
        #expect(report.overall.uplift.treatment == Proportion(subscribers: 1, events: 1))  // 3
        #expect(report.overall.uplift.control == Proportion(subscribers: 1, events: 1))    // 2
        #expect(report.unobserved == CampaignReport.Unobserved(treatment: 2, control: 2))  // 1, 5 and 4, 6

        let assumed = try CampaignOutcome.report(runID: "r1", runAt: Self.runAt, actions: actions, outcomes: outcomes,
                                                 options: .init(assumeRetainedWithoutOutcome: true))
        #expect(assumed.overall.uplift.treatment == Proportion(subscribers: 3, events: 1))
        #expect(assumed.overall.uplift.control == Proportion(subscribers: 3, events: 1))
        #expect(assumed.unobserved == CampaignReport.Unobserved(treatment: 0, control: 0))

        let week = try CampaignOutcome.report(runID: "r1", runAt: Self.runAt, actions: actions, outcomes: outcomes,
                                              options: .init(window: .seconds(7 * 86_400)))
        #expect(week.overall.uplift.treatment.subscribers == 0 && week.windowDays == 7)
    }

    @Test("with several outcomes in the window the latest counts")
    func latest() throws {
        var actions = CampaignActions()
        Self.action(&actions, 1, .treatment)
        var outcomes = Outcomes()
        outcomes.append(subscriberID: 1, churned: false, accepted: true, observedAt: Self.runAt + 20 * Self.day)
        outcomes.append(subscriberID: 1, churned: true, accepted: nil, observedAt: Self.runAt + 10 * Self.day)
        outcomes.append(subscriberID: 1, churned: true, accepted: nil, observedAt: Self.runAt + 40 * Self.day)
        let report = try CampaignOutcome.report(runID: "r", runAt: Self.runAt, actions: actions, outcomes: outcomes)
        #expect(report.overall.uplift.treatment == Proportion(subscribers: 1, events: 0))
    }

    /// A run of 3,000 subscribers over two offers, channels, reasons and cells, 80% of them with
    /// an outcome in the window.
    static func syntheticRun() -> (CampaignActions, Outcomes) {
        var rng = FixedGenerator(seed: 14)
        var actions = CampaignActions(), outcomes = Outcomes()
        for id in Int64(1)...3000 {
            let loyalty = rng.uniform() < 0.4
            let arm: UpliftReport.Arm = rng.uniform() < 0.2 ? .control : .treatment
            let u = rng.uniform()
            Self.action(&actions, id, arm, offer: loyalty ? "loyalty_call" : "discount20", channel: loyalty ? "call" : "sms",
                        reason: u < 0.5 ? "complaints_90d" : "arpu_trend_3m", cell: u < 0.3 ? "mid/very_high" : "high/very_high",
                        expectedValue: (u * 100).rounded(), cost: loyalty ? 40 : 60, clv: 500 + 1000 * rng.uniform())
            guard rng.uniform() < 0.8 else { continue }
            let churn = arm == .treatment ? 0.15 - 0.1 * u : 0.15
            outcomes.append(subscriberID: id, churned: rng.uniform() < churn,
                            accepted: arm == .treatment ? (rng.uniform() < 0.3 ? true : (rng.uniform() < 0.5 ? false : nil)) : nil,
                            observedAt: runAt + Int64(rng.uniform() * 29) * day + 1)
        }
        return (actions, outcomes)
    }

    @Test("the report's uplift, interval, retained, net value and per-group figures against a direct computation")
    func againstDirect() throws {
        let (actions, outcomes) = Self.syntheticRun()
        for basis in [CampaignOutcome.CostBasis.sent, .acceptedOrUnknown] {
            let report = try CampaignOutcome.report(runID: "run-7", runAt: Self.runAt, actions: actions, outcomes: outcomes,
                                                    options: .init(costBasis: basis))
            var outcomeOf: [Int64: (churned: Bool, accepted: Bool?)] = [:]
            for i in 0..<outcomes.count { outcomeOf[outcomes.subscriberIDs[i]] = (outcomes.churned[i], outcomes.accepted[i]) }
            for offer in ["", "loyalty_call", "discount20"] {
                var nT = 0, cT = 0, nC = 0, cC = 0, clv = 0.0, cost = 0.0
                var scores: [Double] = [], treated: [Bool] = [], retained: [Bool] = []
                for row in 0..<actions.count where offer.isEmpty || actions.offer(row) == offer {
                    guard let o = outcomeOf[actions.subscriberIDs[row]] else { continue }
                    if actions.arms[row] == .treatment {
                        nT += 1; cT += o.churned ? 1 : 0; clv += actions.clvs[row]
                        if basis == .sent || o.accepted != false { cost += actions.costs[row] }
                    } else {
                        nC += 1; cC += o.churned ? 1 : 0
                    }
                    scores.append(actions.expectedValues[row]); treated.append(actions.arms[row] == .treatment); retained.append(!o.churned)
                }
                let group = try #require(offer.isEmpty ? report.overall : report.perOffer[offer])
                #expect(group.uplift.treatment == Proportion(subscribers: nT, events: cT))
                #expect(group.uplift.control == Proportion(subscribers: nC, events: cC))
                let uplift = Double(cC) / Double(nC) - Double(cT) / Double(nT)
                #expect(abs(try #require(group.uplift.upliftPP) - 100 * uplift) < 1e-9)
                let (low, high, _, _) = ProportionDifferenceTests.direct(cC, nC, cT, nT)
                let ci = try #require(group.uplift.upliftCI95PP)
                #expect(abs(ci.low - 100 * low) < 1e-9 && abs(ci.high - 100 * high) < 1e-9)
                #expect(abs(try #require(group.uplift.retained) - uplift * Double(nT)) < 1e-9)
                #expect(abs(group.offerCost - cost) < 1e-6)
                let net = uplift * Double(nT) * (clv / Double(nT)) - cost
                #expect(abs(try #require(group.netValue) - net) < 1e-6)
                if offer.isEmpty {
                    let curve = try UpliftCurve(scores: scores, treated: treated, retained: retained)
                    #expect(report.qini == curve.qiniCoefficient && report.qini != nil)
                    #expect(report.upliftAt30Pct == curve.upliftAtK(0.3) && report.upliftAt30Pct != nil)
                }
            }
            let treatedOutside = (0..<actions.count).filter { actions.arms[$0] == .treatment && outcomeOf[actions.subscriberIDs[$0]] == nil }.count
            #expect(report.unobserved.treatment == treatedOutside)
            #expect(Set(report.perChannel.keys) == ["call", "sms"] && Set(report.perReason.keys) == ["complaints_90d", "arpu_trend_3m"])
            #expect(Set(report.perCell.keys) == ["mid/very_high", "high/very_high"])
            let cellTotal = report.perCell.values.reduce(0) { $0 + $1.uplift.treatment.subscribers + $1.uplift.control.subscribers }
            #expect(cellTotal == report.overall.uplift.treatment.subscribers + report.overall.uplift.control.subscribers)
        }
    }

    @Test("JSON has the issue's keys, snake_case, with per-group stats")
    func json() throws {
        let (actions, outcomes) = Self.syntheticRun()
        let report = try CampaignOutcome.report(runID: "run-7", runAt: Self.runAt, actions: actions, outcomes: outcomes)
        let text = try report.json()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let required: Set = ["run_id", "treatment", "control", "uplift_pp", "uplift_ci95_pp", "retained", "net_value",
                             "per_offer", "per_channel", "per_reason", "per_cell", "qini", "uplift_at_30pct"]
        #expect(required.isSubset(of: Set(object.keys)), "\(object.keys.sorted())")
        #expect(object["run_id"] as? String == "run-7")
        let treatment = try #require(object["treatment"] as? [String: Any])
        #expect(Set(treatment.keys) == ["subscribers", "churned", "churn_rate"])
        #expect((object["uplift_ci95_pp"] as? [Double])?.count == 2)
        let perOffer = try #require(object["per_offer"] as? [String: [String: Any]])
        let call = try #require(perOffer["loyalty_call"])
        #expect(Set(["treatment", "control", "uplift_pp", "uplift_ci95_pp", "retained", "net_value"]).isSubset(of: Set(call.keys)))
        #expect(text.hasPrefix("{\"control\":"))  // sorted keys: stable output
    }

    @Test("a report with nobody observed has nulls, not NaN")
    func nobody() throws {
        var actions = CampaignActions()
        Self.action(&actions, 1, .treatment)
        let report = try CampaignOutcome.report(runID: "empty", runAt: Self.runAt, actions: actions, outcomes: Outcomes())
        let object = try #require(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        #expect(object["uplift_pp"] is NSNull && object["net_value"] is NSNull && object["qini"] is NSNull)
        #expect(report.unobserved.treatment == 1)
    }

    @Test("bad runs are refused, naming the subscriber")
    func refused() {
        var twice = CampaignActions()
        Self.action(&twice, 5, .treatment)
        Self.action(&twice, 5, .control)
        var negative = CampaignActions()
        Self.action(&negative, 6, .treatment, cost: -1)
        var nan = CampaignActions()
        Self.action(&nan, 7, .control, clv: .nan)
        let cases: [(CampaignActions, CampaignOutcomeError.Code, Int64?)] = [(twice, .duplicateSubscriber, 5), (negative, .badValue, 6), (nan, .badValue, 7)]
        for (actions, code, id) in cases {
            do {
                _ = try CampaignOutcome.report(runID: "r", runAt: Self.runAt, actions: actions, outcomes: Outcomes())
                Issue.record("accepted a run with \(code)")
            } catch {
                #expect(error.code == code && error.subscriberID == id, "\(error)")
            }
        }
        #expect(throws: CampaignOutcomeError.self) {
            try CampaignOutcome.report(runID: "r", runAt: Self.runAt, actions: CampaignActions(), outcomes: Outcomes(),
                                       options: .init(window: .zero))
        }
    }
}
