import Testing
import Uplift

@Suite("Proportions")
struct ProportionTests {
    @Test("a rate is events over subscribers, 0 for nobody")
    func rate() {
        #expect(Proportion(subscribers: 200, events: 30).rate == 0.15)
        #expect(Proportion(subscribers: 0, events: 0).rate == 0)
    }
}
