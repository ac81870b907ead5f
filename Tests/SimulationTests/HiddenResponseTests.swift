import Retention
import Simulation
import Testing

@Suite("The hidden response to a contact")
struct HiddenResponseTests {
    static let hazards = [0.001, 0.01, 0.03, 0.1, 0.3, 0.6]

    @Test("a contacted sleeping dog is more likely to leave, whatever the offer", arguments: hazards)
    func sleepingDogsGetWorse(h0: Double) {
        let dog = HiddenTraits(response: .sleepingDog, realReason: 27, noise: 0)
        for channel in Channel.allCases {
            for match in [HiddenResponse.Match.addressed, .missed, .generic] {
                #expect(HiddenResponse.treatedHazard(h0, traits: dog, channel: channel, accepted: false, match: match, effect: 0.5) > h0)
            }
        }
    }

    @Test("an accepted offer helps a persuadable, more when it addresses the real reason", arguments: hazards)
    func persuadables(h0: Double) {
        let p = HiddenTraits(response: .persuadable, realReason: 27, noise: 0)
        let addressed = HiddenResponse.treatedHazard(h0, traits: p, channel: .sms, accepted: true, match: .addressed, effect: 0.4)
        let generic = HiddenResponse.treatedHazard(h0, traits: p, channel: .sms, accepted: true, match: .generic, effect: 0.4)
        let missed = HiddenResponse.treatedHazard(h0, traits: p, channel: .sms, accepted: true, match: .missed, effect: 0.4)
        #expect(addressed < generic && generic < missed && missed < h0)
        #expect(HiddenResponse.treatedHazard(h0, traits: p, channel: .sms, accepted: false, match: .addressed, effect: 0.4) == h0)
    }

    @Test("sure things and lost causes do not respond; their hazards sit below and above the model's")
    func unmoved() {
        let sure = HiddenTraits(response: .sureThing, realReason: 27, noise: 0)
        let lost = HiddenTraits(response: .lostCause, realReason: 27, noise: 0)
        for h in Self.hazards {
            #expect(HiddenResponse.treatedHazard(h, traits: sure, channel: .call, accepted: true, match: .addressed, effect: 0.5) == h)
            #expect(HiddenResponse.treatedHazard(h, traits: lost, channel: .call, accepted: true, match: .addressed, effect: 0.5) == h)
            #expect(HiddenResponse.hazard(modelProbability: h, traits: sure) < h)
            #expect(HiddenResponse.hazard(modelProbability: h, traits: lost) > h)
        }
    }

    @Test("in the simulation, contacting sleeping dogs costs churners")
    func sleepingDogsInTheWorld() throws {
        // Random targeting contacts every type; its sleeping dogs churn more than untreated.
        let r = try #require(try Fixtures.run([.random], subscribers: 6_000, months: 2).first)
        let dogs = r.total.byResponse[Int(ResponseType.sleepingDog.rawValue)]
        #expect(dogs.treated > 0)
        #expect(dogs.expectedPrevented < 0)
        let persuadables = r.total.byResponse[Int(ResponseType.persuadable.rawValue)]
        #expect(persuadables.expectedPrevented > 0)
    }
}
