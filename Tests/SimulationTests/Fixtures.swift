import Foundation
import Retention
import Simulation
import TestSupport

/// The repository's example campaign and default model, loaded once for every test.
enum Fixtures {
    static let campaignPath = TestDatabase.packageRoot.appendingPathComponent("Deploy/campaign.json").path
    static let modelPath = TestDatabase.packageRoot.appendingPathComponent("models/churn-default.json").path

    static let campaign: Campaign = {
        do { return try Campaign.load(simulationFile: campaignPath) } catch { fatalError("\(error)") }
    }()

    static let model: ChurnModel = {
        do { return try ChurnModel.load(path: modelPath) } catch { fatalError("\(error)") }
    }()

    /// The campaign's budget scaled to a base of `subscribers` (it is sized for a million).
    static func budget(for subscribers: Int) -> Double {
        (campaign.budget ?? 20_000) * Double(subscribers) / 1_000_000
    }

    static func run(_ strategies: [TargetingStrategy], subscribers: Int, months: Int, seed: UInt64 = 7, threads: Int = 2,
                    budget: Double? = nil) throws -> [StrategyResult] {
        let configuration = try SimulationConfiguration(subscribers: subscribers, months: months, seed: seed,
                                                        budget: budget ?? Self.budget(for: subscribers), threads: threads)
        return try Simulation.run(strategies: strategies, configuration: configuration, campaign: campaign, model: model)
    }
}
