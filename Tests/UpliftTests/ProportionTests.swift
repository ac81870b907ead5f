import Testing
import Uplift

@Suite("Proportions")
struct ProportionTests {
    @Test("a rate is events over subscribers, 0 for nobody")
    func rate() {
        #expect(Proportion(subscribers: 200, events: 30).rate == 0.15)
        #expect(Proportion(subscribers: 0, events: 0).rate == 0)
    }

    @Test("Wilson's interval: Newcombe 1998's single-proportion values, inside [0, 1] at 0 and n events")
    func wilson() throws {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3.
        let cases: [(Int, Int, Double, Double)] = [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                                   (0, 20, 0, 0.1611), (1, 29, 0.0061, 0.1718)]
        for (events, n, low, high) in cases {
            let w = try #require(Proportion(subscribers: n, events: events).wilsonInterval())
            #expect(abs(w.low - low) < 5e-5 && abs(w.high - high) < 5e-5, "\(events)/\(n): \(w)")
        }
        let all = try #require(Proportion(subscribers: 10, events: 10).wilsonInterval())
        #expect(all.high == 1 && all.low > 0.69 && all.low < 0.73)
        #expect(Proportion(subscribers: 0, events: 0).wilsonInterval() == nil)
        #expect(Proportion(subscribers: 5, events: 6).wilsonInterval() == nil)
    }
}
