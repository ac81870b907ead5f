import Foundation
import Retention
import Testing
import TestSupport

@Suite("CLV")
struct CLVSettingsTests {
    /// The formula, summed term by term.
    static func direct(p: Double, arpu: Double, _ s: CLVSettings) -> Double {
        let m = arpu * s.marginRate
        return (1...s.horizonMonths).reduce(0.0) { $0 + m * pow(1 - p, Double($1)) / pow(1 + s.monthlyDiscount, Double($1)) }
    }

    @Test("CLV and the value if retained equal the direct sum on sampled subscribers and settings")
    func againstDirectSum() throws {
        var rng = SeededGenerator("clv direct sum")
        for _ in 0..<2_000 {
            let s = try CLVSettings(marginRate: Double.random(in: 0.05...1, using: &rng),
                                    monthlyDiscount: Bool.random(using: &rng) ? 0 : Double.random(in: 0..<0.2, using: &rng),
                                    horizonMonths: Int.random(in: 1...120, using: &rng))
            let p = [0, 1, 1e-12, Double.random(in: 0...1, using: &rng)][Int.random(in: 0...3, using: &rng)]
            let arpu = Double.random(in: 0...2_000, using: &rng)
            let want = Self.direct(p: p, arpu: arpu, s)
            #expect(abs(s.clv(probability: p, arpu: arpu) - want) <= 1e-9 * max(1, want), "p \(p) arpu \(arpu) \(s)")
            let v = Self.direct(p: 0, arpu: arpu, s)
            #expect(abs(s.valueIfRetained(arpu: arpu) - v) <= 1e-9 * max(1, v))
        }
    }

    @Test("defaults are 35% margin, 1% a month, 24 months; a 300 ARPU, 3% churner is worth the formula")
    func defaults() {
        let s = CLVSettings.default
        #expect(s.marginRate == 0.35 && s.monthlyDiscount == 0.01 && s.horizonMonths == 24)
        let want = Self.direct(p: 0.03, arpu: 300, s)
        #expect(abs(s.clv(probability: 0.03, arpu: 300) - want) < 1e-9 * want)
    }

    @Test("at ratio 1 (p = 0, d = 0) the sum is H × m; at p = 1 nothing")
    func edges() throws {
        let s = try CLVSettings(marginRate: 0.5, monthlyDiscount: 0, horizonMonths: 12)
        #expect(s.clv(probability: 0, arpu: 100) == 600)
        #expect(s.valueIfRetained(arpu: 100) == 600)
        #expect(s.clv(probability: 1, arpu: 100) == 0)
    }

    @Test("probability is clamped, NaN counts as certain churn, missing or negative ARPU as 0")
    func outsideValues() {
        let s = CLVSettings.default
        #expect(s.clv(probability: -0.5, arpu: 100) == s.clv(probability: 0, arpu: 100))
        #expect(s.clv(probability: 3, arpu: 100) == 0)
        #expect(s.clv(probability: .nan, arpu: 100) == 0)
        #expect(s.clv(probability: 0.1, arpu: .nan) == 0)
        #expect(s.clv(probability: 0.1, arpu: -50) == 0)
        #expect(s.valueIfRetained(arpu: .infinity) == 0)
    }

    @Test("settings out of range are refused naming the option", arguments: [
        (0.0, 0.01, 24, "clv-margin-rate"), (1.5, 0.01, 24, "clv-margin-rate"), (Double.nan, 0.01, 24, "clv-margin-rate"),
        (0.35, -0.01, 24, "clv-monthly-discount"), (0.35, 1, 24, "clv-monthly-discount"),
        (0.35, 0.01, 0, "clv-horizon-months"), (0.35, 0.01, 601, "clv-horizon-months"),
    ])
    func invalid(_ m: Double, _ d: Double, _ h: Int, _ setting: String) {
        #expect(throws: CLVSettingsError.self) { try CLVSettings(marginRate: m, monthlyDiscount: d, horizonMonths: h) }
        do { _ = try CLVSettings(marginRate: m, monthlyDiscount: d, horizonMonths: h) } catch { #expect(error.setting == setting) }
        #expect((try? CLVSettings(marginRate: 1, monthlyDiscount: 0, horizonMonths: 600)) != nil)
    }
}
