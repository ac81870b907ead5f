import ArgumentParser
import Foundation
import Retention
import Simulation

/// `churngrid simulate`: the retention strategies compared in the synthetic world (issue 14,
/// point 7; `Simulation` does the work, docs/retention.md describes the world).
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Compare retention strategies month after month in a synthetic world with hidden responses to offers (results on the synthetic base, not a forecast).")

    @Option(help: "Subscribers at month 0.")
    var subscribers: Int

    @Option(help: "Months to simulate (one campaign run each).")
    var months: Int

    @Option(help: "none, random, risk, value, nba, or all (the five on the same world).")
    var strategy: String

    @Option(help: "Seed of the world: the same seed gives the same base, hidden traits and outcomes.")
    var seed: UInt64 = 1

    @Option(help: "Budget per monthly run (default: the campaign's), the same for every strategy.")
    var budget: Double?

    @Option(help: "Campaign file (offers, matrix, contact policy, capacity, control fraction).")
    var campaign = "Deploy/campaign.json"

    @Option(help: "Churn model (XGBoost JSON or LightGBM text) used to score and as the world's hazard.")
    var model = "models/churn-default.json"

    @Option(help: "Threads (the base is split in as many parts; results do not depend on it).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print JSON (one object, or an array for --strategy all).")
    var json = false

    func run() throws {
        do {
            let strategies = try TargetingStrategy.parse(strategy)
            let configuration = try SimulationConfiguration(subscribers: subscribers, months: months, seed: seed, budget: budget,
                                                            threads: max(1, min(threads, 256)))
            let campaignFile = try Campaign.load(simulationFile: campaign)
            let churnModel = try ChurnModel.load(path: model)
            let clock = ContinuousClock()
            let start = clock.now
            let results = try Simulation.run(strategies: strategies, configuration: configuration, campaign: campaignFile, model: churnModel) { p in
                let elapsed = (clock.now - start).components
                let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
                FileHandle.standardError.write(Data("simulate: \(p) elapsed_s=\(String(format: "%.1f", seconds))\n".utf8))
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                let data = strategy == "all" ? try encoder.encode(results) : try encoder.encode(results[0])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(SimulationTable.render(results))
            }
        } catch let e as SimulationError {
            throw ValidationError(e.description)
        }
    }
}
