import Dispatch
import Retention
import SubscriberProfiles

/// `churngrid simulate`: the retention engine proved in a synthetic world (issue 14, point 7).
///
/// **The world.** The month-0 base is `SyntheticBase(seed:)` (ids from 1,000,000,000). Every
/// subscriber has hidden traits drawn when it joins (`HiddenTraits`): a response type —
/// persuadable, sure thing, lost cause, sleeping dog — with shares that depend on the profile,
/// a real churn reason among the model's reason features, correlated with the profile, and a
/// personal log-odds noise. Its monthly churn hazard is the model's probability shifted by the
/// noise and the type (`HiddenResponse`), so the model is informative but not the truth. A contact
/// changes the hazard according to the type, the acceptance draw and whether the offer addresses
/// the real reason. Everything random is keyed by (seed, subscriber, month, purpose)
/// (`WorldDraw`), so all strategies meet the same world: common random numbers.
///
/// **A month.** Score everyone (probability, band, top-3 reasons), CLV and value if retained,
/// decide with the strategy at the monthly budget, draw outcomes, remove churners, age the
/// survivors' profiles, let as many new subscribers join as left (`SimulatedWorld`).
///
/// Results are on the synthetic base: they show the machinery and the direction of effects, not
/// a forecast for a real operator.
public enum Simulation {
    /// Runs `strategies` one after another on the same world (same seed, base and draws).
    /// - Parameters:
    ///   - progress: called on the calling thread after the base is generated and after each month.
    /// - Throws: `SimulationError` (`noBudget`) when no monthly budget is known.
    public static func run(strategies: [TargetingStrategy], configuration: SimulationConfiguration, campaign: Campaign,
                           model: ChurnModel, progress: (SimulationProgress) -> Void = { _ in }) throws(SimulationError) -> [StrategyResult] {
        let budget = try configuration.monthlyBudget(for: campaign)
        let base = makeBase(configuration)
        progress(SimulationProgress(stage: .baseGenerated, strategy: nil, month: 0, months: configuration.months,
                                    subscribers: configuration.subscribers, treated: 0, control: 0, churned: 0, budgetUsed: 0))
        var results: [StrategyResult] = []
        for strategy in strategies {
            let world = SimulatedWorld(strategy: strategy, campaign: campaign, model: model, configuration: configuration,
                                       budget: budget, base: base)
            var monthly: [MonthTally] = []
            for month in 0..<configuration.months {
                let t = world.advance(month: month)
                monthly.append(t)
                progress(SimulationProgress(stage: .monthDone, strategy: strategy, month: month + 1, months: configuration.months,
                                            subscribers: t.subscribers, treated: t.treated, control: t.control, churned: t.churned,
                                            budgetUsed: t.budgetUsed))
            }
            let result = StrategyResult(strategy: strategy, months: configuration.months, subscribers: configuration.subscribers,
                                        seed: configuration.seed, budgetPerMonth: budget, monthly: monthly)
            let total = result.total
            progress(SimulationProgress(stage: .strategyDone, strategy: strategy, month: configuration.months, months: configuration.months,
                                        subscribers: result.subscribersAtEnd, treated: total.treated, control: total.control,
                                        churned: total.churned, budgetUsed: total.budgetUsed))
            results.append(result)
        }
        return results
    }

    /// The month-0 base with its hidden traits, split in `threads` parts generated in parallel
    /// (contiguous ranges of the synthetic base; the split never changes a result).
    static func makeBase(_ configuration: SimulationConfiguration) -> [Population] {
        let n = configuration.subscribers
        let partCount = max(1, min(configuration.threads, n))
        let random = WorldDraw(seed: configuration.seed)
        let synthetic = SyntheticBase(seed: configuration.seed)
        // Room for the joiners a part receives before it has lost as many (about 3% a month).
        let parts = (0..<partCount).map { k in
            Population(capacity: (k + 1) * n / partCount - k * n / partCount + n / (20 * partCount) + 1024)
        }
        DispatchQueue.concurrentPerform(iterations: partCount) { k in
            let pop = parts[k]
            synthetic.generate((k * n / partCount)..<((k + 1) * n / partCount)) { id, profile, _ in
                let traits = HiddenTraits.draw(id: id, month: 0, profile: ProfileView { profile[$0] }, random)
                pop.append(id: id, profile: profile, traits: traits, initial: true)
            }
        }
        return parts
    }
}
