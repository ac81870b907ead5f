import Retention

/// What to simulate: how many subscribers, for how long, from which seed, at what monthly
/// budget. Checked when made, so a run never starts with an argument it cannot honour.
public struct SimulationConfiguration: Sendable, Equatable {
    /// The most subscribers a simulated base may have (ids of joiners start at 2,000,000,000).
    public static let maxSubscribers = 100_000_000
    /// The most months.
    public static let maxMonths = 120

    /// Subscribers at month 0.
    public let subscribers: Int
    /// Months simulated (each is one campaign run and 30 days of outcomes).
    public let months: Int
    /// The world's seed: the base, the hidden traits and every outcome follow from it.
    public let seed: UInt64
    /// The spending limit per monthly run, overriding the campaign's; nil = the campaign's.
    public let budget: Double?
    /// Threads (and parts of the base); results do not depend on it.
    public let threads: Int
    /// The world's clock: month `m`'s run happens at `startTime + m × 30 days` (seconds since
    /// 1970, UTC). Injected — the simulation never reads the wall clock.
    public let startTime: Int64
    /// CLV and value-if-retained settings (the cluster's defaults).
    public let clv: CLVSettings

    /// 2026-01-05 10:00 UTC: a Monday morning, outside every quiet hour of the example campaign.
    public static let defaultStartTime: Int64 = 1_767_607_200

    /// A checked configuration.
    /// - Throws: `SimulationError` (`outOfRange`) naming the argument.
    public init(subscribers: Int, months: Int, seed: UInt64 = 1, budget: Double? = nil, threads: Int = 2,
                startTime: Int64 = SimulationConfiguration.defaultStartTime, clv: CLVSettings = .default) throws(SimulationError) {
        guard (1...Self.maxSubscribers).contains(subscribers) else {
            throw SimulationError(.outOfRange, field: "--subscribers", "must be from 1 to \(Self.maxSubscribers), got \(subscribers)", fix: "give a positive number of subscribers")
        }
        guard (1...Self.maxMonths).contains(months) else {
            throw SimulationError(.outOfRange, field: "--months", "must be from 1 to \(Self.maxMonths), got \(months)", fix: "simulate at least one month")
        }
        if let budget {
            guard budget.isFinite, budget >= 0 else {
                throw SimulationError(.outOfRange, field: "--budget", "must be a finite number ≥ 0, got \(budget)", fix: "give the spending limit per monthly run")
            }
        }
        guard (1...256).contains(threads) else {
            throw SimulationError(.outOfRange, field: "--threads", "must be from 1 to 256, got \(threads)", fix: "use the number of cores")
        }
        self.subscribers = subscribers
        self.months = months
        self.seed = seed
        self.budget = budget
        self.threads = threads
        self.startTime = startTime
        self.clv = clv
    }

    /// The monthly budget for `campaign`: `budget` when given, else the campaign's.
    /// - Throws: `SimulationError` (`noBudget`) when neither gives one.
    public func monthlyBudget(for campaign: Campaign) throws(SimulationError) -> Double {
        if let budget { return budget }
        if let b = campaign.budget { return b }
        throw SimulationError(.noBudget, field: "--budget", "campaign \(campaign.name) has no budget and none was given",
                              fix: "add \"budget\" to the campaign file or pass --budget B, so every strategy spends the same")
    }
}

extension Campaign {
    /// Reads and checks a campaign file for a simulation.
    /// - Throws: `SimulationError` (`unreadableCampaign`, or `badCampaign` with the file's `CampaignError`).
    public static func load(simulationFile path: String) throws(SimulationError) -> Campaign {
        guard let bytes = readFile(path) else {
            throw SimulationError(.unreadableCampaign, field: "--campaign", "cannot read \(path)",
                                  fix: "check the path (the default is Deploy/campaign.json, relative to the repository)")
        }
        do throws(CampaignError) {
            return try Campaign.parse(bytes, source: path)
        } catch {
            throw SimulationError(.badCampaign, field: "--campaign", "\(error)", fix: "fix the campaign file (docs/retention.md)")
        }
    }
}
