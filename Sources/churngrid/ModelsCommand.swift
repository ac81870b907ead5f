import ArgumentParser
import ChurnCluster
import ClusterSystem
import Foundation
import TreeModel
import WireFormat

/// `churngrid models …`: the model registry and deployments (docs/models.md, "Registry").
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "The model registry: add, list, show and remove model versions, and deploy one as the model the cluster serves.",
        subcommands: [AddModel.self, ListModels.self, ShowModel.self, RemoveModel.self, DeployModel.self, PromoteModel.self, CompareModels.self,
                      ActivateModel.self, DeactivateModel.self])
}

struct AddModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Register a model file (admin): an XGBoost JSON or LightGBM text model whose features are subscriber profile features. Deploy it with `models deploy`.")

    @OptionGroup var target: CoordinatorOptions

    @Option(help: "The model's name in the registry (a–z, 0–9, '_', '.', '-').")
    var name: String

    @Option(help: "The model file.")
    var file: String

    @Option(help: ArgumentHelp("A CSV of rows (a header naming the model's features) whose distribution is the model's drift reference, instead of the first job that scores it.",
                               valueName: "csv"))
    var reference: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        let bytes: [UInt8]
        do {
            bytes = try TreeEnsemble.bytes(ofFile: file)
            // A file that is no model is named here, before it is sent (the coordinator checks it
            // again, with the features against the cluster's schema).
            _ = try TreeEnsemble.parse(bytes, file: file)
        } catch {
            throw ValidationError("\(error)")
        }
        var upload: DriftReferenceUpload?
        if let reference {
            // Binned and scored here: only the bins cross the wire.
            let start = ContinuousClock.now
            logger.info("reading the drift reference", metadata: ["file": "\(reference)"])
            do {
                let model = try ScoringModel(bytes: bytes, source: file)
                upload = try DriftReferenceUpload.read(path: reference, model: model)
            } catch {
                throw ValidationError("\(error)")
            }
            logger.info("drift reference binned", metadata: ["file": "\(reference)", "rows": "\(upload?.rows ?? 0)",
                                                            "seconds": "\(String(format: "%.2f", (ContinuousClock.now - start) / .seconds(1)))"])
        }
        try await reportingClusterErrors {
            let entry = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(300)) {
                    let source = (file as NSString).lastPathComponent
                    if let upload { return try await client.coordinator.addModel(name: name, source: source, bytes: BulkArray(bytes), reference: upload) }
                    return try await client.coordinator.addModel(name: name, source: source, bytes: BulkArray(bytes))
                }
            }
            if let upload, !json { print("drift reference: \(upload.rows) rows of \(upload.source), \(upload.features.count) features and the score binned") }
            if json { try printJSON(entry) } else {
                print("model \(entry.name) version \(entry.version): \(entry.format), \(entry.features.count) features, \(entry.bytes) bytes"
                      + (entry.served ? " (served)" : "; deploy it with `churngrid models deploy \(entry.name) --version \(entry.version)`"))
            }
        }
    }
}

struct ListModels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Every registered model version; the one served is marked.")

    @OptionGroup var target: CoordinatorOptions

    @Flag(help: "Print a JSON array.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let (all, challengers, active) = try await withCoordinator(target, logger: logger) { client -> ([RegisteredModel], [ChallengerStatus], [ActiveModelStatus]) in
                // Every challenger (from a coordinator one version older: the served model's, from its status).
                var challengers: [ChallengerStatus]
                if let all = try? await client.coordinator.challengerList() { challengers = all } else {
                    challengers = ((try? await client.coordinator.status())?.challenger).map { [$0] } ?? []
                }
                let active: [ActiveModelStatus] = (try? await client.coordinator.activeModelList()) ?? []
                return (try await client.coordinator.models(), challengers, active)
            }
            if json { try printJSON(all) } else {
                if all.isEmpty { print("no models registered") }
                for m in all {
                    let mark = active.first { $0.name == m.name && $0.version == m.version }
                        .map { "  (active beside the served model, for " + ($0.segment.isEmpty ? "every subscriber" : "segment \($0.segment)") + ")" } ?? ""
                    print(modelLine(m, challengers: challengers) + mark)
                }
            }
        }
    }
}

struct ShowModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "A model's versions: features, file, who added them and when, and the drift of each version's last measured job.")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let (details, active) = try await withCoordinator(target, logger: logger) { client -> (ModelDetails, [ChallengerStatus]) in
                var details = try await client.coordinator.model(name: name)
                // Each version's last job (a coordinator one version older has no such method).
                if let jobs = try? await client.coordinator.modelLastJobs(name: name), jobs.count == details.versions.count {
                    details.lastJobs = jobs
                }
                return (details, (try? await client.coordinator.challengerList())?.filter { $0.name == name } ?? [])
            }
            if json { try printJSON(details) } else {
                for (k, (m, drift)) in zip(details.versions, details.drift).enumerated() {
                    print(modelLine(m, challengers: (details.challenger.map { [$0] } ?? []) + active))
                    print("  features (\(m.features.count)): \(m.features.joined(separator: ", "))")
                    print("  sha256 \(m.sha256)")
                    if k < details.lastJobs.count, let job = details.lastJobs[k] { print("  " + jobFiguresLine(job)) }
                    print("  " + (drift.map(driftSummary) ?? "drift: no job of this version measured yet"))
                }
            }
        }
    }
}

/// A version's last job in one line: which job, as what, over whom, its mean and its bands.
func jobFiguresLine(_ j: ModelJobFigures) -> String {
    let over = j.segment.isEmpty ? "everyone" : "segment \(j.segment)"
    let bands = zip(["low", "medium", "high", "very high"], j.perBand).map { "\($0) \($1)" }.joined(separator: ", ")
    return "last job \(j.job) (\(j.role), \(over)): \(j.subscribers) subscribers, mean probability \(String(format: "%.4f", j.meanProbability)); \(bands)"
}

struct RemoveModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a registered version (admin); the one served is refused.")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Option(help: "The version (or a unique prefix of at least 6 characters).")
    var version: String

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let removed = try await withCoordinator(target, logger: logger) { client in try await client.coordinator.removeModel(name: name, version: version) }
            print("removed model \(name) version \(removed)")
        }
    }
}

struct DeployModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "Serve a registered version (admin) as the champion, or as its challenger for a share of live answers: every worker loads it, then every shard switches between two answers; no query fails, no profile is reloaded.",
        discussion: """
            Refused while a job, a campaign run or an erasure runs. A restarted coordinator keeps serving it. As champion: rescore afterwards (the published \
            scores are the previous model's until the next job); a challenger ends with it. As challenger (--traffic PCT): it answers the live queries of a \
            deterministic PCT% of subscribers (a hash of the model's name and the subscriber id, docs/models.md); jobs, campaigns, drift and triggers stay on \
            the champion. `models promote NAME` makes it the champion; deploying the champion's own version again ends it.
            """)

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Option(help: "The version (or a unique prefix of at least 6 characters).")
    var version: String

    @Option(name: .customLong("as"), help: "champion or challenger.")
    var role: String = "champion"

    @Option(help: ArgumentHelp("A challenger's share of live answers, in percent (above 0, at most 100).", valueName: "pct"))
    var traffic: Double?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard role == "champion" || role == "challenger" else { throw ValidationError("--as \(role): champion or challenger") }
        if role == "challenger" {
            guard let traffic else { throw ValidationError("--as challenger needs --traffic PCT (its share of live answers)") }
            guard traffic.isFinite, traffic > 0, traffic <= 100 else { throw ValidationError("--traffic \(traffic): a percentage above 0 and at most 100") }
        } else if traffic != nil {
            throw ValidationError("--traffic is a challenger's share: use it with --as challenger")
        }
    }

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let report = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) {
                    if role == "challenger", let traffic {
                        return try await client.coordinator.deployChallenger(name: name, version: version, trafficPercent: traffic)
                    }
                    return try await client.coordinator.deployModel(name: name, version: version)
                }
            }
            try printDeployment(report, json: json)
        }
    }
}

/// Prints a deployment's report; exits 1 when some workers did not switch.
func printDeployment(_ report: ModelDeployment, json: Bool) throws {
    if json { try printJSON(report) } else if let percent = report.challengerPercent {
        print(String(format: "deployed model %@ %@ as challenger for %.2f%% of live answers%@ on %d workers: switched within %.3f s, %.2f s in all",
                     report.name, report.version, percent, report.previous.isEmpty ? "" : " (replacing challenger \(report.previous))",
                     report.workers, report.switchSeconds, report.seconds))
    } else if report.previous.isEmpty {
        print("model \(report.name) \(report.version) is already served: nothing changed")
    } else if report.previous == report.version {
        print(String(format: "model %@ %@ serves alone again (its challenger ended) on %d workers: switched within %.3f s", report.name, report.version,
                     report.workers, report.switchSeconds))
    } else {
        print(String(format: "deployed model %@ %@ (was %@) on %d workers: switched within %.3f s, %.2f s in all",
                     report.name, report.version, report.previous, report.workers, report.switchSeconds, report.seconds))
    }
    if !report.unconfirmed.isEmpty {
        FileHandle.standardError.write(Data("not switched (they answer as before until `models deploy` is run again): \(report.unconfirmed.joined(separator: "; "))\n".utf8))
        throw ExitCode(1)
    }
}

struct PromoteModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make the challenger of a model its champion (admin): every shard switches between two answers, and the challenger ends.",
        discussion: "Refused while a job, a campaign run or an erasure runs, and when the model has no challenger. Rescore afterwards: the published scores are the previous champion's until the next job.")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let report = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await client.coordinator.promoteChallenger(name: name) }
            }
            try printDeployment(report, json: json)
        }
    }
}

struct CompareModels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare the served model with another registered version over the live base, or a job's champion scores with its challenger's shadow scores (operator): score distributions, top-decile agreement, and AUC and lift against the outcomes imported.",
        discussion: "With --version, every shard's owner scores its subscribers with both versions (two passes). With --job, both sides are the job's stored scores (the job must have had a challenger). Labels are the latest outcome of each subscriber (`churngrid outcomes import`); without any, AUC and lift are absent.")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Option(help: "The version to compare with the served one over the live base (or a unique prefix of at least 6 characters); without it and --job, the challenger's.")
    var version: String?

    @Option(help: "A completed job whose champion and challenger (scored in shadow) to compare.")
    var job: Int64?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard version == nil || job == nil else { throw ValidationError("give either --version V (over the live base) or --job ID (a job's shadow scores), not both") }
    }

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let c = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(3600)) {
                    if let job { return try await client.coordinator.compareJob(name: name, job: job) }
                    if let version { return try await client.coordinator.compareModels(name: name, version: version) }
                    // Neither: the model (served, or active over its segment) against its challenger, over the live base.
                    var challengers = (try? await client.coordinator.challengerList()) ?? []
                    if challengers.isEmpty, let served = try await client.coordinator.status().challenger { challengers = [served] }
                    guard let challenger = challengers.first(where: { $0.name == name }) else {
                        throw ClusterError("model '\(name)' has no challenger: give --version V (any registered version) or --job ID")
                    }
                    return try await client.coordinator.compareModels(name: name, version: challenger.version)
                }
            }
            if json { try printJSON(c); return }
            func f(_ v: Double?, _ format: String = "%.4f") -> String { v.map { String(format: format, $0) } ?? "—" }
            print("model \(c.name) over \(c.subscribers) subscribers (\(c.labelled) with an outcome, \(c.churned) churned), \(String(format: "%.1f", c.seconds)) s")
            print("                      \(job == nil ? "served" : "champion") \(c.champion.version)   \(job == nil ? "other" : "challenger") \(c.challenger.version)")
            print("  mean probability    \(f(c.champion.meanProbability))               \(f(c.challenger.meanProbability))")
            print("  median              \(f(c.champion.deciles[4]))               \(f(c.challenger.deciles[4]))")
            print("  90th percentile     \(f(c.champion.deciles[8]))               \(f(c.challenger.deciles[8]))")
            print("  AUC                 \(f(c.champion.auc))               \(f(c.challenger.auc))")
            print("  lift, top decile    \(f(c.champion.liftTopDecile, "%.2f"))×                \(f(c.challenger.liftTopDecile, "%.2f"))×")
            print("  top decile          \(c.champion.topDecile)                   \(c.challenger.topDecile)")
            print(String(format: "  in both top deciles: %.1f%%", c.topDecileAgreement * 100))
        }
    }
}

/// One line per registered version.
func modelLine(_ m: RegisteredModel, challengers: [ChallengerStatus]) -> String {
    let added = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(m.addedAt) / 1000))
    let challenger = challengers.first { $0.version == m.version && $0.name == m.name }
    let isChallenger = m.served == false && challenger != nil
    let role = m.served ? "  (served)" : isChallenger ? String(format: "  (challenger, %.2f%% of live answers)", challenger?.percent ?? 0) : ""
    return "\(m.served ? "*" : isChallenger ? "~" : " ") \(m.name) \(m.version)  \(m.format), \(m.features.count) features, \(m.bytes) B, from \(m.source), added by \(m.addedBy) at \(added)\(role)"
}

struct ActivateModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activate",
        abstract: "Score a registered model beside the served one in every job (admin), for the subscribers of a segment or everyone.",
        discussion: """
            Every worker loads it first (the extra feature columns it and its segment read included); if one cannot, nothing changes. \
            From the next job on, every job scores it in the same pass over the profiles as the served model, and stores its scores \
            under its name (churn_scores.model_name; the view churn_scores_current). Activating an active model again changes its \
            version or segment. Refused for the served model's name, and while a job, campaign run, erasure or deployment runs.
            """)

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Option(help: "The version (or a unique prefix of at least 6 characters).")
    var version: String

    @Option(help: ArgumentHelp("The subscribers it scores: conditions on profile features joined by 'and', e.g. \"contract = 'Month-to-month' and tenure < 12\" or \"plan_type in (1, 2)\" (docs/models.md, \"Several models\"). Default: everyone.",
                               valueName: "condition"))
    var segment: String?

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let active = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) {
                    try await client.coordinator.activateModel(name: name, version: version, segment: segment ?? "")
                }
            }
            if json { try printJSON(active) } else {
                print("model \(active.name) version \(active.version) is active beside the served model, for "
                      + (active.segment.isEmpty ? "every subscriber" : "segment \(active.segment)") + ": every job from the next one scores it")
            }
        }
    }
}

struct DeactivateModel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deactivate",
        abstract: "Stop scoring an active model beside the served one (admin); its published scores stay until the next job.")

    @OptionGroup var target: CoordinatorOptions

    @Argument(help: "The model's name.")
    var name: String

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() async throws {
        let logger = makeLogger("churngrid.models")
        try await reportingClusterErrors {
            let ended = try await withCoordinator(target, logger: logger) { client in
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await client.coordinator.deactivateModel(name: name) }
            }
            if json { try printJSON(ended) } else { print("model \(ended.name) version \(ended.version) is no longer active") }
        }
    }
}
