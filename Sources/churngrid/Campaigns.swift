import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation
import Retention
import Uplift

struct CampaignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "campaign",
        abstract: "Retention campaigns: decide offers over the published scores, export them, report their uplift (docs/retention.md).",
        subcommands: [Run.self, Export.self, Report.self, LiveCampaignCommand.self]
    )

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide a campaign over the published job: offers by value tier × risk band and reason, the contact policy, a control group, capacity and budget.")

        @Option(help: "Campaign file (JSON, docs/retention.md; example: Deploy/campaign.json).")
        var config: String

        @Option(help: "The published job the run must decide over (refused if another job is published).")
        var job: Int64?

        @Option(help: "This request's name (1–128 letters, digits, '._:-'; e.g. nightly-2026-12-07): run again with the same token after a timeout or a cut connection, it answers with the run the first one wrote instead of contacting anyone twice. Without it the command makes one and prints it.")
        var requestToken: String?

        @Flag(help: "Print the run's summary as JSON.")
        var json = false

        @OptionGroup var target: CoordinatorOptions

        func validate() throws {
            if let requestToken, !CampaignRunRequest.validToken(requestToken) {
                throw ValidationError("--request-token: 1–128 letters, digits and '._:-'")
            }
        }

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                let data = try readOptionFile(config, option: "--config")
                // Named before the call, so that a caller cut off can ask again for the same run.
                let token = requestToken ?? "cli-" + UUID().uuidString.lowercased()
                FileHandle.standardError.write(Data("request token \(token) (if this command is cut off, run it again with --request-token \(token): the run is not repeated)\n".utf8))
                // Checked here first: a mistake in the file is named before anything is asked of the cluster.
                let campaign = try Campaign.check(data, source: config)
                if !json { FileHandle.standardError.write(Data("deciding campaign \(campaign.name) over the published job …\n".utf8)) }
                let summary = try await withCoordinator(target, logger: logger) { client in
                    // A run scores and explains the whole base: minutes on a large one, not the default call timeout.
                    // Its stage every 5 s on standard error (not with --json; nothing from a coordinator
                    // of an earlier release, which has no such call).
                    let unsupported = ProbeOff(json)
                    return try await withProgress({
                        guard !unsupported.isOff else { return nil }
                        do {
                            let line = try await ClusterActorSystem.$callTimeout.withValue(.seconds(5)) { try await client.coordinator.campaignRunProgress() }
                            return line.isEmpty ? nil : line
                        } catch let e as RemoteCallError where e.code == .invalidInvocation || e.code == .notAuthorized {
                            unsupported.turnOff()  // not asked again (each refusal is logged there)
                            return nil
                        } catch {
                            return nil
                        }
                    }) {
                        try await ClusterActorSystem.$callTimeout.withValue(.seconds(3600)) {
                            do {
                                return try await client.coordinator.runCampaign(CampaignRunRequest(config: data, source: config, job: job, requestToken: token))
                            } catch let e as RemoteCallError where e.code == .invalidInvocation && e.message.contains("bytes after the last argument") {
                                // A coordinator of the previous release (a rolling upgrade): it knows no tokens.
                                FileHandle.standardError.write(Data("the coordinator is of an earlier release and takes no request token: running without one (if this command is cut off, do not run it again before `campaign report` or campaign_runs shows whether it ran)\n".utf8))
                                return try await client.coordinator.runCampaign(CampaignRunRequest(config: data, source: config, job: job))
                            }
                        }
                    }
                }
                if json {
                    print(summary)
                } else {
                    print(Self.describe(summary))
                }
            }
        }

        static func describe(_ json: String) -> String {
            guard let o = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return json }
            var lines = ["campaign \(o["campaign"] ?? "?") run \(o["run_id"] ?? "?") over job \(o["job_id"] ?? "?"): "
                + "\(o["eligible"] ?? 0) eligible, \(o["treatment"] ?? 0) to contact, \(o["control"] ?? 0) held out as control, "
                + "\(o["suppressed_by_policy"] ?? 0) suppressed by the contact policy, \(o["no_capacity"] ?? 0) beyond capacity or budget"]
            if let channels = o["per_channel"] as? [String: [String: Int]] {
                for (c, n) in channels.sorted(by: { $0.key < $1.key }) { lines.append("  \(c): \(n["treatment"] ?? 0) treatment, \(n["control"] ?? 0) control") }
            }
            let budget = (o["budget_used"] as? Double) ?? 0, saved = (o["expected_saved_clv"] as? Double) ?? 0
            lines.append(String(format: "  budget used %.2f; expected saved CLV %.2f (before costs; on the model's estimates)", budget, saved))
            return lines.joined(separator: "\n")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a run's treatment actions on one channel as CSV, for the channel's system.")

        @Argument(help: "The run's id.")
        var run: Int64

        @Option(help: "Channel: sms, push, email, call or robot_call.")
        var channel: String

        @Option(help: "Output CSV file ('-' for standard output).")
        var out: String

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                guard Channel(rawValue: channel) != nil else {
                    throw ValidationError("--channel \(channel): one of \(Channel.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let csv = try await withCoordinator(target, logger: logger) { client in
                    try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await client.coordinator.exportCampaign(run: run, channel: channel) }
                }
                if out == "-" {
                    print(csv, terminator: "")
                } else {
                    do {
                        try Data(csv.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
                    } catch {
                        throw ValidationError("--out: cannot write \(out): \(error.localizedDescription)")
                    }
                    FileHandle.standardError.write(Data("\(max(0, csv.split(separator: "\n").count - 1)) actions written to \(out)\n".utf8))
                }
            }
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A run's measured result: churn in treatment vs control, uplift with its 95% interval, retained subscribers, net value, per offer, channel, reason and cell; Qini and uplift@30%.")

        @Argument(help: "The run's id.")
        var run: Int64

        @Option(help: "Days after the run in which an outcome counts.")
        var windowDays = 30

        @Flag(help: "Print the report as JSON.")
        var json = false

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.campaign")
            try await reportingClusterErrors {
                guard (1...365).contains(windowDays) else { throw ValidationError("--window-days: 1 to 365") }
                let report = try await withCoordinator(target, logger: logger) { client in
                    try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await client.coordinator.campaignReport(run: run, windowDays: windowDays) }
                }
                if json { print(report) } else { print(Self.describe(report)) }
            }
        }

        static func describe(_ json: String) -> String {
            guard let o = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return json }
            func arm(_ key: String) -> String {
                guard let a = o[key] as? [String: Any] else { return "?" }
                let rate = ((a["churn_rate"] as? Double) ?? 0) * 100
                return "\(a["churned"] ?? 0) of \(a["subscribers"] ?? 0) churned (\(String(format: "%.2f", rate))%)"
            }
            var lines = ["run \(o["run_id"] ?? "?"): treatment \(arm("treatment")); control \(arm("control"))"]
            if let u = o["uplift_pp"] as? Double {
                let ci = (o["uplift_ci95_pp"] as? [Double]) ?? []
                lines.append(String(format: "  uplift %.2f pp", u) + (ci.count == 2 ? String(format: " (95%% CI %.2f to %.2f)", ci[0], ci[1]) : ""))
            }
            lines.append("  retained \(o["retained"] ?? "?"), net value \(o["net_value"] ?? "?"), qini \(o["qini"] ?? "?"), uplift@30% \(o["uplift_at_30pct"] ?? "?")")
            return lines.joined(separator: "\n")
        }
    }
}

struct OutcomesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outcomes",
        abstract: "Observed outcomes (churned, accepted) that campaign reports attribute to runs.",
        subcommands: [Import.self]
    )

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import outcomes from CSV: subscriber_id, churned (0/1), accepted (0/1, optional), observed_at (ISO 8601). All or nothing.")

        @Option(help: "CSV file with a header.")
        var input: String

        @OptionGroup var target: CoordinatorOptions

        func run() async throws {
            let logger = makeLogger("churngrid.outcomes")
            try await reportingClusterErrors {
                let file = try OutcomesFile.read(path: input)
                let o = file.outcomes
                guard o.count <= CoordinatorActor.maxOutcomesPerImport else {
                    throw ValidationError("\(input): \(o.count) outcomes; split the file into parts of at most \(CoordinatorActor.maxOutcomesPerImport)")
                }
                let batch = OutcomeBatch(source: input, lines: file.lines, ids: o.subscriberIDs, churned: o.churned.map { $0 ? 1 : 0 },
                                         accepted: o.accepted.map { $0.map { $0 ? 1 : 0 } ?? -1 }, observedAtMillis: o.observedAt)
                let counts = try await withCoordinator(target, logger: logger) { client in
                    try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await client.coordinator.importOutcomes(OutcomeBatchWire(batch)) }
                }
                print("\(counts.first ?? 0) outcomes added, \(counts.dropFirst().first ?? 0) replaced")
            }
        }
    }
}
