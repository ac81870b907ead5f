import Foundation
import Retention
import Simulation
import Testing

@Suite("churngrid simulate: the synthetic world and the strategies")
struct SimulationTests {
    @Test("the same seed gives the same results, whatever the thread count")
    func deterministic() throws {
        let a = try Fixtures.run([.random, .nba], subscribers: 4_000, months: 2, threads: 2)
        let b = try Fixtures.run([.random, .nba], subscribers: 4_000, months: 2, threads: 2)
        #expect(a == b)
        let c = try Fixtures.run([.random, .nba], subscribers: 4_000, months: 2, threads: 1)
        for (x, y) in zip(a, c) {
            for (m, n) in zip(x.monthly, y.monthly) {
                #expect(m.treated == n.treated && m.control == n.control && m.churned == n.churned && m.joined == n.joined)
                #expect(abs(m.budgetUsed - n.budgetUsed) <= 1e-6 * max(1, m.budgetUsed))
            }
        }
        let other = try Fixtures.run([.nba], subscribers: 4_000, months: 2, seed: 8)
        #expect(other[0].monthly != a[1].monthly)
    }

    @Test("every strategy gets the same monthly budget and never spends more")
    func sameBudget() throws {
        let budget = 80.0
        let results = try Fixtures.run(TargetingStrategy.allCases, subscribers: 4_000, months: 2, budget: budget)
        #expect(results.map(\.strategy) == TargetingStrategy.allCases)
        for r in results {
            #expect(r.budgetPerMonth == budget)
            for m in r.monthly { #expect(m.budgetUsed <= budget, "\(r.strategy) spent \(m.budgetUsed) of \(budget)") }
            #expect(r.total.budgetUsed <= budget * Double(r.months))
        }
        // The budget binds for the baselines, which rank everybody.
        for r in results where [.random, .risk, .value].contains(r.strategy) {
            #expect(r.total.budgetUsed > 0.9 * budget * Double(r.months), "\(r.strategy) spent only \(r.total.budgetUsed)")
        }
    }

    @Test("none contacts nobody and has zero uplift")
    func noneIsUntouched() throws {
        let r = try #require(try Fixtures.run([.none], subscribers: 3_000, months: 2).first)
        #expect(r.total.treated == 0 && r.total.control == 0 && r.total.accepted == 0)
        #expect(r.total.budgetUsed == 0)
        #expect(r.upliftPP == 0)
        #expect(r.upliftCI95PP?.low == 0 && r.upliftCI95PP?.high == 0)
        #expect(r.retained == 0 && r.netValue == 0 && r.netValueExpected == 0)
        #expect(r.total.churned > 0 && r.total.joined == r.total.churned)
    }

    @Test("the base keeps its size: as many join as leave")
    func stableBase() throws {
        let r = try #require(try Fixtures.run([.nba], subscribers: 3_000, months: 3).first)
        #expect(r.subscribersAtEnd == 3_000)
        for m in r.monthly { #expect(m.subscribers == 3_000) }
        #expect(r.monthlyChurnRate > 0.01 && r.monthlyChurnRate < 0.08)
    }

    @Test("strategies other than none hold out a control group drawn among those they select")
    func controlGroups() throws {
        let results = try Fixtures.run([.random, .risk, .value, .nba], subscribers: 6_000, months: 2)
        for r in results {
            let t = r.total
            #expect(t.treated > 0 && t.control > 0, "\(r.strategy)")
            let share = Double(t.control) / Double(t.treated + t.control)
            #expect(share > 0.03 && share < 0.2, "\(r.strategy): control share \(share)")
        }
    }

    @Test("on a small base, next-best action keeps more net value than risk-only targeting at the same budget")
    func nbaBeatsRisk() throws {
        let results = try Fixtures.run([.risk, .nba], subscribers: 20_000, months: 3)
        let risk = results[0], nba = results[1]
        #expect(risk.total.budgetUsed > 0 && nba.total.budgetUsed <= risk.budgetPerMonth * 3)
        #expect(nba.netValueExpected >= risk.netValueExpected, "nba \(nba.netValueExpected) < risk \(risk.netValueExpected)")
    }

    @Test("--json has the issue's keys, a two-element interval and says it is synthetic")
    func jsonKeys() throws {
        let results = try Fixtures.run([.none, .nba], subscribers: 3_000, months: 1)
        for r in results {
            let data = try JSONEncoder().encode(r)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            for key in StrategyResult.requiredKeys { #expect(object.keys.contains(key), "missing \(key)") }
            #expect(Set(StrategyResult.requiredKeys) == ["strategy", "months", "subscribers", "retention_rate", "uplift_pp",
                                                         "uplift_ci95_pp", "retained", "net_value", "budget_used"])
            #expect(object["strategy"] as? String == r.strategy.rawValue)
            #expect(object["months"] as? Int == 1 && object["subscribers"] as? Int == 3_000)
            #expect(object["synthetic"] as? Bool == true)
            let ci = try #require(object["uplift_ci95_pp"] as? [Double])
            #expect(ci.count == 2 && ci[0] <= ci[1])
        }
        let array = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(results)) as? [[String: Any]]
        #expect(array?.count == 2)
    }

    @Test("the table says the results are on the synthetic base")
    func table() throws {
        let text = SimulationTable.render(try Fixtures.run([.none, .risk], subscribers: 2_000, months: 1))
        #expect(text.contains("results on the synthetic base, not a forecast for a real operator"))
        #expect(text.contains("none") && text.contains("risk"))
    }
}
