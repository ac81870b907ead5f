import Foundation
import Testing
import Uplift

@Suite("Intervals for a difference of proportions")
struct ProportionDifferenceTests {
    /// Newcombe (1998), "Interval estimation for the difference between independent proportions",
    /// Statistics in Medicine 17:873–890, Table II, method 10 (hybrid score, no continuity
    /// correction): a/m − b/n and the published limits, to four decimals.
    static let published: [(a: Int, m: Int, b: Int, n: Int, low: Double, high: Double)] = [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
        (10, 10, 0, 10, 0.6075, 1.0000),
    ]

    @Test("Newcombe's hybrid score interval reproduces his published Table II")
    func publishedValues() throws {
        for c in Self.published {
            let ci = try #require(ProportionDifference.newcombeInterval(Proportion(subscribers: c.m, events: c.a),
                                                                        minus: Proportion(subscribers: c.n, events: c.b)))
            #expect(abs(ci.low - c.low) < 5e-5 && abs(ci.high - c.high) < 5e-5,
                    "\(c.a)/\(c.m) − \(c.b)/\(c.n): got [\(ci.low), \(ci.high)], published [\(c.low), \(c.high)]")
        }
    }

    @Test("the uplift report: 56/70 churned in control, 48/80 treated → 20 pp, CI (5.24, 33.39) pp")
    func headlineExample() throws {
        let report = UpliftReport(treatment: Proportion(subscribers: 80, events: 48),
                                  control: Proportion(subscribers: 70, events: 56))
        let uplift = try #require(report.upliftPP)
        #expect(abs(uplift - 20) < 1e-9)
        let ci = try #require(report.upliftCI95PP)
        #expect(abs(ci.low - 5.24) < 0.005 && abs(ci.high - 33.39) < 0.005, "\(ci)")
        #expect(abs((report.retained ?? 0) - 16) < 1e-9)  // 0.2 × 80 treated
    }

    /// The interval written out from the formulas, independently of the module's code.
    static func direct(_ x1: Int, _ n1: Int, _ x2: Int, _ n2: Int) -> (Double, Double, Double, Double) {
        let z = 1.959963984540054
        func wilson(_ x: Int, _ n: Int) -> (Double, Double) {
            let p = Double(x) / Double(n), nn = Double(n)
            let root = z * sqrt(z * z + 4 * nn * p * (1 - p))
            return ((2 * nn * p + z * z - root) / (2 * (nn + z * z)), (2 * nn * p + z * z + root) / (2 * (nn + z * z)))
        }
        let p1 = Double(x1) / Double(n1), p2 = Double(x2) / Double(n2)
        let (l1, u1) = wilson(x1, n1), (l2, u2) = wilson(x2, n2)
        let newcombe = (p1 - p2 - sqrt(pow(p1 - l1, 2) + pow(u2 - p2, 2)), p1 - p2 + sqrt(pow(u1 - p1, 2) + pow(p2 - l2, 2)))
        let se = sqrt(p1 * (1 - p1) / Double(n1) + p2 * (1 - p2) / Double(n2))
        return (newcombe.0, newcombe.1, p1 - p2 - z * se, p1 - p2 + z * se)
    }

    @Test("Newcombe and Wald against a direct computation, from tiny groups to a national base",
          arguments: [(3, 25, 1, 30), (0, 12, 2, 9), (100, 1000, 62, 9000), (480, 10_000, 420, 90_000),
                      (1_000_000, 10_000_000, 400_000, 10_000_000), (7, 7, 0, 1)])
    func againstDirect(_ c: (Int, Int, Int, Int)) throws {
        let control = Proportion(subscribers: c.1, events: c.0), treatment = Proportion(subscribers: c.3, events: c.2)
        let (nLow, nHigh, wLow, wHigh) = Self.direct(c.0, c.1, c.2, c.3)
        let n = try #require(ProportionDifference.newcombeInterval(control, minus: treatment))
        let w = try #require(ProportionDifference.waldInterval(control, minus: treatment))
        #expect(abs(n.low - nLow) < 1e-12 && abs(n.high - nHigh) < 1e-12)
        #expect(abs(w.low - wLow) < 1e-12 && abs(w.high - wHigh) < 1e-12)
        #expect(n.contains(control.rate - treatment.rate) && n.low >= -1 && n.high <= 1)
        let report = UpliftReport(treatment: treatment, control: control)
        let pp = try #require(report.upliftCI95PP)
        #expect(abs(pp.low - 100 * nLow) < 1e-9 && abs(pp.high - 100 * nHigh) < 1e-9)
    }

    @Test("where Wald claims certainty, Newcombe does not: 0 churned of 10 in both arms")
    func zeroEvents() throws {
        let none = Proportion(subscribers: 10, events: 0)
        let wald = try #require(ProportionDifference.waldInterval(none, minus: none))
        #expect(wald.low == 0 && wald.high == 0)
        let newcombe = try #require(ProportionDifference.newcombeInterval(none, minus: none))
        #expect(newcombe.low < -0.27 && newcombe.high > 0.27)
    }

    @Test("no interval when an arm is empty")
    func emptyArm() {
        let empty = Proportion(subscribers: 0, events: 0), some = Proportion(subscribers: 10, events: 2)
        #expect(ProportionDifference.newcombeInterval(some, minus: empty) == nil)
        #expect(ProportionDifference.waldInterval(empty, minus: some) == nil)
        let report = UpliftReport(treatment: some, control: empty)
        #expect(report.upliftPP == nil && report.upliftCI95PP == nil && report.retained == nil)
    }
}
