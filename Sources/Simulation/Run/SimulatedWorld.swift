import Dispatch
import Retention
import SubscriberProfiles

/// The simulated world under one strategy: the base, split in parts, advanced one month at a
/// time. Each month (`advance(month:)`):
/// 1. **Score** every subscriber with the model; CLV and value if retained (`CLVSettings`);
///    value tiers from the merged `ValueHistogram`.
/// 2. **Decide** with the strategy at the monthly budget (`MonthDecision`).
/// 3. **Outcomes** from the hidden response (`HiddenResponse`): acceptance, the month's hazard,
///    churn; contacts and refusals go into the contact history.
/// 4. Churners **leave**; survivors' profiles **age** and some start a new episode
///    (`ProfileDrift`, `EpisodePool`); as many **new
///    subscribers join** as left (fresh draws of `SyntheticBase` with ids from 2,000,000,000),
///    so the base stays about the same size.
///
/// Phases 1, 3 and 4 run on the parts' threads; the fill, which is global (one budget), runs on
/// the caller's.
final class SimulatedWorld {
    let strategy: TargetingStrategy
    let campaign: Campaign
    let model: ChurnModel
    let configuration: SimulationConfiguration
    let budget: Double
    let parts: [Part]
    let random: WorldDraw
    let truth: OfferTruth
    let decision: MonthDecision
    private let joiners: SyntheticBase
    private var joinedSoFar = 0

    /// Seconds in the world's month.
    static let monthSeconds: Int64 = 30 * 86_400
    /// Ids of subscribers who join during the simulation start here.
    static let firstJoinerID: Int64 = 2_000_000_000

    init(strategy: TargetingStrategy, campaign: Campaign, model: ChurnModel, configuration: SimulationConfiguration,
         budget: Double, base: [Population]) {
        self.strategy = strategy
        self.campaign = campaign
        self.model = model
        self.configuration = configuration
        self.budget = budget
        parts = base.enumerated().map { Part(index: $0.offset, Population(copying: $0.element)) }
        random = WorldDraw(seed: configuration.seed)
        truth = OfferTruth(campaign: campaign)
        decision = MonthDecision(strategy: strategy, campaign: campaign, budget: budget, model: model, random: random)
        joiners = SyntheticBase(seed: configuration.seed &+ 0x6A6F_696E, firstID: Self.firstJoinerID)
    }

    /// Runs `body` for every part, each on its own thread.
    func forEachPart(_ body: @Sendable (Part) -> Void) {
        let parts = self.parts
        if parts.count == 1 { body(parts[0]); return }
        DispatchQueue.concurrentPerform(iterations: parts.count) { body(parts[$0]) }
    }

    /// Advances the world by month `month` (0-based) and returns what it produced.
    func advance(month: Int) -> MonthTally {
        let now = configuration.startTime + Int64(month) * Self.monthSeconds
        let model = self.model, clvSettings = configuration.clv

        // 1. Score.
        forEachPart { part in
            model.score(part.population, into: &part.probabilities, margins: &part.margins)
            let n = part.population.count
            part.clv = [Double](repeating: 0, count: n)
            part.valueIfRetained = [Double](repeating: 0, count: n)
            part.histogram = ValueHistogram()
            for r in 0..<n {
                let arpu = Double(part.population.value(r, Column.arpu))
                part.clv[r] = clvSettings.clv(probability: part.probabilities[r], arpu: arpu)
                let v = clvSettings.valueIfRetained(arpu: arpu)
                part.valueIfRetained[r] = v
                part.histogram.add(v)
            }
        }
        var histogram = ValueHistogram()
        for p in parts { histogram.merge(p.histogram) }
        let tiers = ValueTiers(histogram: histogram, quantiles: campaign.valueTierCuts)

        // 2. Decide.
        let budgetUsed = decision.decide(parts: parts, month: month, now: now, tiers: tiers, run: forEachPart)

        // 3–4. Outcomes, leaving, ageing.
        let random = self.random, truth = self.truth, offers = campaign.offers
        let historySeconds = Int64(ContactPolicy(campaign: campaign).historyDays) * 86_400
        let episodes = EpisodePool(seed: configuration.seed, month: month)
        forEachPart { part in
            Self.outcomes(part, month: month, now: now, historySeconds: historySeconds, offers: offers, truth: truth,
                          episodes: episodes, random: random)
        }
        var tally = MonthTally()
        for p in parts { tally.add(p.tally) }
        tally.budgetUsed = budgetUsed
        tally.joined = join(tally.churned)
        return tally
    }

    /// Draws the month's outcomes of one part, removes its churners and ages its survivors.
    static func outcomes(_ part: Part, month: Int, now: Int64, historySeconds: Int64, offers: [Offer], truth: OfferTruth,
                         episodes: EpisodePool, random: WorldDraw) {
        let pop = part.population
        var t = MonthTally()
        t.subscribers = pop.count
        // Backwards, so that the row moved into a churner's place has already been visited.
        var r = pop.count - 1
        while r >= 0 {
            defer { r -= 1 }
            let id = pop.ids[r]
            let traits = pop.traits[r]
            let h0 = HiddenResponse.hazard(modelProbability: part.probabilities[r], traits: traits)
            var h = h0
            let arm = part.arm.indices.contains(r) ? part.arm[r] : .untouched
            let k = part.offer.indices.contains(r) ? Int(part.offer[r]) : -1
            let contacted = arm == .treatment && offers.indices.contains(k)
            if (arm == .treatment || arm == .control) && offers.indices.contains(k) {
                let offer = offers[k]
                let accepts = traits.response != .sleepingDog && random.uniform(id, month: month, .acceptance) < offer.acceptance
                if contacted {
                    let reason = Int(traits.realReason)
                    let match = truth.match(k, reason)
                    h = HiddenResponse.treatedHazard(h0, traits: traits, channel: offer.channel, accepted: accepts,
                                                     match: match, effect: truth.effect(k, reason))
                    if match == .addressed { t.addressedRealReason += 1 }
                    if accepts { t.accepted += 1 }
                }
                // A control subscriber is never contacted, but its history records the contact it
                // would have had (and the refusal it would have made): caps and cool-downs then
                // select the two arms alike in later months. Without this the holdout, never in a
                // cool-down, is selected again and again, and later months' arms stop being comparable.
                if !pop.histories[r].contacts.isEmpty || !pop.histories[r].refusals.isEmpty {
                    pop.histories[r].prune(before: now - historySeconds)
                }
                pop.histories[r].record(offer.channel, at: now)
                if !accepts { pop.histories[r].recordRefusal(at: now) }
            }
            let churned = random.uniform(id, month: month, .churn) < h
            let clv = part.clv[r]
            let type = Int(traits.response.rawValue)
            switch arm {
            case .treatment where contacted:
                t.treated += 1
                t.treatedCLV += clv
                t.expectedSavedCLV += (h0 - h) * clv
                t.byResponse[type].treated += 1
                t.byResponse[type].expectedPrevented += h0 - h
                if churned {
                    t.treatedChurned += 1
                    t.treatedChurnedCLV += clv
                    t.byResponse[type].treatedChurned += 1
                }
            case .control:
                t.control += 1
                t.controlCLV += clv
                t.byResponse[type].control += 1
                if churned {
                    t.controlChurned += 1
                    t.controlChurnedCLV += clv
                    t.byResponse[type].controlChurned += 1
                }
            default:
                break
            }
            if churned {
                t.churned += 1
                if pop.initial[r] { t.initialChurned += 1 }
                pop.remove(r)
            } else {
                ProfileDrift.age(pop, row: r, month: month, contacted: contacted, episodes: episodes, random)
            }
        }
        part.tally = t
        part.arm = []
        part.offer = []
    }

    /// Adds `count` new subscribers, each to the part its id falls in; returns `count`.
    private func join(_ count: Int) -> Int {
        guard count > 0 else { return 0 }
        let random = self.random, parts = self.parts
        joiners.generate(joinedSoFar..<(joinedSoFar + count)) { id, profile, _ in
            let traits = HiddenTraits.draw(id: id, month: 0, profile: ProfileView { profile[$0] }, random)
            parts[Int(id % Int64(parts.count))].population.append(id: id, profile: profile, traits: traits, initial: false)
        }
        joinedSoFar += count
        return count
    }
}
