import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation
import Retention

/// `churngrid campaign live start|stop|status`: the campaign decided in real time on the workers
/// (docs/retention.md, "Real time").
struct LiveCampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "The campaign every fired trigger is decided with, on the worker that fired it (docs/retention.md, \"Real time\").",
        subcommands: [Start.self, Stop.self, Status.self]
    )

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a campaign live: value tiers cut now over the whole base; capacity and budget for as long as it is live; replaces the live one.")

        @Option(help: "Campaign file (JSON, docs/retention.md; example: Deploy/campaign.json).")
        var config: String

        @Option(help: "Triggers received longer ago than this many seconds are not decided (e.g. replayed after a long outage).")
        var maxTriggerAge = LiveCampaignRequest.defaultMaxTriggerAgeSeconds

        @Flag(help: "Print the result as JSON.")
        var json = false

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                guard (1...86_400).contains(maxTriggerAge) else { throw ValidationError("--max-trigger-age: 1 to 86400 seconds") }
                let data = try readOptionFile(config, option: "--config")
                let campaign = try Campaign.check(data, source: config)
                if !json { FileHandle.standardError.write(Data("cutting value tiers over the base and making \(campaign.name) live …\n".utf8)) }
                let out = try await withCoordinator(target, logger: logger) { client in
                    // The value tiers are cut over the whole base first: more than the default call timeout on a large one.
                    try await ClusterActorSystem.$callTimeout.withValue(.seconds(3600)) {
                        try await client.coordinator.startLiveCampaign(LiveCampaignRequest(config: data, source: config, maxTriggerAgeSeconds: maxTriggerAge))
                    }
                }
                if json {
                    print(out)
                } else if let o = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] {
                    let replaced = (o["replaced_run"] as? Int64).map { " (run \($0) ended)" } ?? ""
                    print("campaign \(o["campaign"] ?? "?") is live as run \(o["run_id"] ?? "?")\(replaced); value tier cuts \(o["tier_cuts"] ?? "?")")
                } else {
                    print(out)
                }
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End the live campaign: triggers are no longer decided; its run's summary is written.")

        @Flag(help: "Print the run's summary as JSON.")
        var json = false

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                let out = try await withCoordinator(target, logger: logger) { client in try await client.coordinator.stopLiveCampaign() }
                print(json ? out : LiveCampaignCommand.describe(out, verb: "ended"))
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The live campaign, its actions so far and the workers' leases of capacity and budget.")

        @Flag(help: "Print as JSON.")
        var json = false

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                let out = try await withCoordinator(target, logger: logger) { client in try await client.coordinator.liveCampaignStatus() }
                print(json ? out : LiveCampaignCommand.describe(out, verb: "live"))
            }
        }
    }

    static func describe(_ json: String, verb: String) -> String {
        guard let o = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return json }
        guard let run = o["run_id"], !(run is NSNull) else { return "no campaign is live" }
        var lines = ["run \(run)\(o["campaign"].map { " (\($0))" } ?? "") \(verb): \(o["treatment"] ?? 0) treatment, \(o["control"] ?? 0) control, "
            + String(format: "budget used %.2f", (o["budget_used"] as? Double) ?? 0)]
        if let channels = o["per_channel"] as? [String: [String: Int]] {
            for (c, n) in channels.sorted(by: { $0.key < $1.key }) { lines.append("  \(c): \(n["treatment"] ?? 0) treatment, \(n["control"] ?? 0) control") }
        }
        for lease in (o["leases"] as? [[String: Any]]) ?? [] {
            lines.append("  lease \(lease["node"] ?? "?") \(lease["resource"] ?? "?"): used \(lease["used"] ?? 0) of \(lease["granted"] ?? 0)")
        }
        return lines.joined(separator: "\n")
    }
}
