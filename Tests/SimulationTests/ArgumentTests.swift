import Foundation
import Retention
import Simulation
import Testing

@Suite("Bad simulate arguments give clear errors")
struct ArgumentTests {
    @Test("an unknown strategy names the accepted ones")
    func unknownStrategy() {
        #expect(throws: SimulationError.self) { try TargetingStrategy.parse("greedy") }
        do {
            _ = try TargetingStrategy.parse("greedy")
        } catch {
            #expect(error.code == .unknownStrategy && error.field == "--strategy")
            #expect(error.description.contains("'greedy'") && error.description.contains("none, random, risk, value, nba"))
        }
        #expect((try? TargetingStrategy.parse("all")) == TargetingStrategy.allCases)
        #expect((try? TargetingStrategy.parse("nba")) == [.nba])
    }

    @Test("months, subscribers and budget out of range are refused", arguments: [
        (1_000, 0, nil as Double?, "--months"), (0, 3, nil, "--subscribers"), (1_000, 3, -5, "--budget"), (1_000, 3, .nan, "--budget"),
        (1_000, 121, nil, "--months"),
    ])
    func outOfRange(subscribers: Int, months: Int, budget: Double?, field: String) {
        do {
            _ = try SimulationConfiguration(subscribers: subscribers, months: months, budget: budget)
            Issue.record("accepted \(field)")
        } catch {
            #expect(error.code == .outOfRange && error.field == field)
            #expect(error.description.hasPrefix(field + ": must be"))
        }
    }

    @Test("an unreadable campaign file is named")
    func unreadableCampaign() {
        do {
            _ = try Campaign.load(simulationFile: "/nonexistent/campaign.json")
            Issue.record("read a missing file")
        } catch {
            #expect(error.code == .unreadableCampaign && error.description.contains("/nonexistent/campaign.json"))
        }
    }

    @Test("a malformed campaign file carries the campaign's own error")
    func badCampaign() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sim-bad-campaign-\(getpid()).json").path
        try Data(#"{"name": "x", "value_tiers": [0.5], "offers": [{"id": "a", "channel": "fax"}]}"#.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Campaign.load(simulationFile: path)
            Issue.record("accepted a bad campaign")
        } catch {
            #expect(error.code == .badCampaign && error.description.contains(path))
        }
    }

    @Test("a campaign without a budget needs --budget")
    func noBudget() throws {
        var campaign = Fixtures.campaign
        campaign.budget = nil
        let configuration = try SimulationConfiguration(subscribers: 100, months: 1)
        #expect(throws: SimulationError.self) { try configuration.monthlyBudget(for: campaign) }
        #expect(try SimulationConfiguration(subscribers: 100, months: 1, budget: 50).monthlyBudget(for: campaign) == 50)
    }

    @Test("an unreadable model is named")
    func unreadableModel() {
        do {
            _ = try ChurnModel.load(path: "/nonexistent/model.json")
            Issue.record("read a missing model")
        } catch {
            #expect(error.code == .unreadableModel && error.description.contains("/nonexistent/model.json"))
        }
    }
}
