import ArgumentParser
import ChurnCluster
import Foundation

/// `churngrid drift`: a job's population stability index per feature and for the score.
struct DriftCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drift",
        abstract: "A job's drift: the population stability index (PSI) of every feature the model reads and of the score against the model version's reference population; watch from 0.1, act from 0.25.",
        discussion: "The reference is the first job that scored the model version (docs/models.md, \"Drift\"). Exit status 0 whatever the drift; with --fail-on watch|act it is 3 when a feature or the score is at that level or worse.")

    @OptionGroup var target: CoordinatorOptions

    @Option(help: "The job (default: the last one whose drift was measured).")
    var job: Int64?

    @Option(name: .customLong("fail-on"), help: "Exit with status 3 when any PSI is at this level or worse: watch or act.")
    var failOn: String?

    @Flag(help: "Wait (up to 5 minutes) for the job's drift: it is measured just after the job is published.")
    var wait = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        if wait && job == nil { throw ValidationError("--wait needs --job (the job whose drift to wait for)") }
        if let job, job <= 0 { throw ValidationError("--job is a job id (a positive number)") }
        if let failOn, !["watch", "act"].contains(failOn) { throw ValidationError("--fail-on is watch or act, not '\(failOn)'") }
    }

    func run() async throws {
        let logger = makeLogger("churngrid.drift")
        try await reportingClusterErrors {
            let asked = job ?? 0
            let patient = wait
            let report: DriftReport? = try await withCoordinator(target, logger: logger) { client -> DriftReport? in
                let deadline = ContinuousClock.now + .seconds(300)
                while true {
                    if let found = try await client.coordinator.drift(job: asked) { return found }
                    guard patient, ContinuousClock.now < deadline else { return nil }
                    try await Task.sleep(for: .seconds(1))
                }
            }
            guard let report else {
                throw ClusterError(job.map { "job \($0) has no drift measured (it failed, or was scored before drift was measured)" }
                                   ?? "no job's drift has been measured yet: run `churngrid rescore --wait` (the first job of a model version takes its reference)")
            }
            if json {
                try printJSON(report)
            } else {
                print(driftSummary(report))
                for f in report.features {
                    let name = f.feature.count < 28 ? f.feature + String(repeating: " ", count: 28 - f.feature.count) : f.feature
                    print("  \(name) " + String(format: "%8.4f", f.psi) + "  \(f.level.rawValue)")
                }
            }
            if let failOn, let level = PopulationStability.Level(rawValue: failOn), report.worst >= level {
                throw ExitCode(3)
            }
        }
    }
}

/// One line on a job's drift (for `status` and `drift`).
func driftSummary(_ d: DriftReport) -> String {
    if d.isReference { return "drift: job \(d.job) took the reference of model \(d.modelVersion) (\(d.features.count) PSIs of 0 by definition)" }
    let act = d.at(.act).map(\.feature), watch = d.at(.watch).map(\.feature)
    let against = d.referenceJob == 0 ? "the reference file given to models add" : "job \(d.referenceJob)"
    return "drift of job \(d.job) against \(against) (model \(d.modelVersion)): "
        + (act.isEmpty && watch.isEmpty ? "stable (every PSI below 0.1)" : "act: \(act.isEmpty ? "none" : act.joined(separator: ", ")); watch: \(watch.isEmpty ? "none" : watch.joined(separator: ", "))")
}
