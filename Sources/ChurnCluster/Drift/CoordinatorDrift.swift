import Logging
import Metrics
import TreeModel

/// Drift of a published job against its model version's reference (docs/models.md, "Drift"):
/// measured after the job is published, so it never delays the scores.
extension CoordinatorActor {
    /// Measures job `id`'s drift after the measurements of earlier jobs (one at a time, in job
    /// order: the first job of a model version takes its reference, never a later one).
    /// With `active`, the drift of that model active beside the served one, over its segment.
    func queueDriftMeasurement(job id: Int64, scoreHistogram: [Int64], active: ActiveModelPackage? = nil) {
        let previous = driftTail
        driftTail = Task {
            await previous?.value
            await self.measureDrift(job: id, scoreHistogram: scoreHistogram, active: active)
        }
    }

    /// Measures job `id`'s drift (taking the model version's reference first when it has none),
    /// stores it and keeps it for `status`. A shard that cannot be reached (moving, its worker
    /// lost) is asked again after the cluster had time to settle, twice; a failure then is logged,
    /// and the job stays published.
    func measureDrift(job id: Int64, scoreHistogram: [Int64], active: ActiveModelPackage? = nil) async {
        let start = ContinuousClock.now
        for attempt in 0..<Self.driftAttempts.count {
            do {
                let target: DriftTarget
                if let active {
                    let names = try await Task.detached { try TreeEnsemble.parse(active.model.bytes.elements, file: active.model.source).featureNames }.value
                    target = DriftTarget(name: active.name, version: active.model.version, features: names, population: active.segment)
                } else {
                    target = DriftTarget(name: "", version: model.version, features: model.featureNames, population: "")
                }
                let report = try await drift(of: id, target: target, scoreHistogram: scoreHistogram, again: true)
                if active == nil, (lastDrift?.job ?? 0) <= report.job {
                    lastDrift = report
                    Gauge(label: "churngrid_model_drift_psi_max").record(report.features.first?.psi ?? 0)
                    for level in PopulationStability.Level.allCases {
                        Gauge(label: "churngrid_model_drift_features", dimensions: [("level", level.rawValue)]).record(report.at(level).count)
                    }
                }
                let flagged = report.features.filter { $0.level != .stable }
                logger.log(level: report.worst == .act ? .warning : .info, report.isReference ? "drift reference taken" : "drift measured", metadata: [
                    "job": "\(id)", "model": "\(report.modelVersion)", "active_model": "\(active?.name ?? "-")", "reference_job": "\(report.referenceJob)",
                    "act": "\(report.at(.act).map(\.feature))", "watch": "\(report.at(.watch).map(\.feature))",
                    "worst_psi": "\(report.features.first.map { String(format: "%.4f", $0.psi) } ?? "-")",
                    "flagged": "\(flagged.count)", "seconds": "\(seconds(ContinuousClock.now - start))"])
                return
            } catch {
                let wait = Self.driftAttempts[attempt]
                guard let wait, !Task.isCancelled else {
                    logger.warning("the job's drift was not measured (it stays published)", metadata: ["job": "\(id)", "active_model": "\(active?.name ?? "-")", "error": "\(error)"])
                    return
                }
                logger.notice("the job's drift could not be measured yet; trying again", metadata: ["job": "\(id)", "in": "\(wait)", "error": "\(error)"])
                try? await Task.sleep(for: wait)
            }
        }
    }

    /// The waits before the second and third attempt (nil: no further attempt).
    static let driftAttempts: [Duration?] = [.seconds(5), .seconds(20), nil]

    /// The last drift measured (or stored, after a restart).
    func latestDrift() async -> DriftReport? {
        guard !driftLoaded else { return lastDrift }
        do {
            let stored = try await database.drift(job: nil)
            // A measurement that ended meanwhile is newer than what the database had.
            if !driftLoaded, let stored, (lastDrift?.job ?? 0) <= stored.job { lastDrift = stored }
            driftLoaded = true
        } catch {
            // The database is away: asked again by the next status.
        }
        return lastDrift
    }

    /// Whose drift: the served model (`name` empty) or an active model, by version and features,
    /// over which population (its reference's: '' every subscriber, else the active model's segment).
    struct DriftTarget: Sendable {
        var name: String
        var version: String
        var features: [String]
        var population: String
    }

    private func drift(of id: Int64, target: DriftTarget, scoreHistogram: [Int64], again: Bool) async throws -> DriftReport {
        let version = target.version, names = target.features
        let stored = try await database.driftReference(modelVersion: version, population: target.population)
        let edges: [[Float]]
        if let stored {
            edges = try names.map { name in
                guard let bins = stored.bins[name] else { throw ClusterError("the drift reference of model \(version) has no bins for feature '\(name)'") }
                return bins.edges
            }
        } else {
            let request = DriftRequest(modelVersion: version, sampleRows: DriftAssembly.sampleRows(shardCount: shardCount), modelName: target.name)
            let samples = try await everyShardPass(what: "sample", of: "drift measurement", otherwise: Self.driftRetried) { try await $0.drift(request) }
            try Self.check(samples, version: version, edges: nil)
            // Sorting a few million sampled values is CPU work: off the coordinator's actor, which
            // keeps answering (status, job) meanwhile.
            let rows = samples.map { $0.1.sample.elements }, width = names.count
            edges = try await Task.detached { try DriftAssembly.edges(samples: rows, features: width) }.value
        }
        let request = DriftRequest(modelVersion: version, edges: edges, modelName: target.name)
        let answers = try await everyShardPass(what: "counts", of: "drift measurement", otherwise: Self.driftRetried) { try await $0.drift(request) }
        try Self.check(answers, version: version, edges: edges)
        let counted = answers.map { $0.1.counts.elements }
        let counts = try await Task.detached { [edges] in try DriftAssembly.counts(answers: counted, edges: edges) }.value
        var current: [String: [Int64]] = [:]
        for (j, name) in names.enumerated() { current[name] = counts[j] }
        current[DriftReport.scoreName] = scoreHistogram

        var reference: DriftReference
        if let stored {
            reference = stored
        } else {
            var bins: [String: (edges: [Float], counts: [Int64])] = [:]
            for (j, name) in names.enumerated() { bins[name] = (edges[j], counts[j]) }
            bins[DriftReport.scoreName] = (DriftAssembly.scoreEdges, scoreHistogram)
            reference = try await database.saveDriftReference(modelVersion: version, population: target.population, DriftReference(job: id, bins: bins))
            // Another coordinator stored its reference first (other bins): count again in those.
            if reference.job != id {
                guard again else { throw ClusterError("the drift reference of model \(version) changed while it was taken") }
                return try await drift(of: id, target: target, scoreHistogram: scoreHistogram, again: false)
            }
        }
        let features = try current.map { name, c -> FeatureDrift in
            guard let ref = reference.bins[name], let psi = PopulationStability.psi(reference: ref.counts, current: c) else {
                throw ClusterError("the drift reference of model \(version) has no bins like the job's for '\(name)'")
            }
            return FeatureDrift(feature: name, psi: psi)
        }
        let report = DriftReport(job: id, modelVersion: version, referenceJob: reference.job, features: features)
        try await database.save(drift: report, counts: current)
        return report
    }

    private static let driftRetried = "the job's drift is measured again shortly (or not at all: the log says)"

    /// Every answer is its own shard's, for the model asked about; counts are never negative and
    /// each feature's add up to the shard's subscribers (a sample has whole rows).
    private static func check(_ answers: [(Int, ShardDrift)], version: String, edges: [[Float]]?) throws(ClusterError) {
        for (shard, a) in answers {
            guard a.shard == shard, a.modelVersion == version else {
                throw ClusterError("shard \(shard) answered the drift request for shard \(a.shard), model \(a.modelVersion)")
            }
            guard let edges else { continue }
            var at = 0
            for (j, e) in edges.enumerated() {
                let n = PopulationStability.binCount(edges: e.count)
                guard at + n <= a.counts.elements.count else {
                    throw ClusterError("shard \(shard) answered \(a.counts.elements.count) drift counts; the bins are more")
                }
                let bins = a.counts.elements[at..<at + n]
                guard bins.allSatisfy({ $0 >= 0 }), bins.reduce(0, { $0 &+ $1 }) == Int64(a.subscribers) else {
                    throw ClusterError("shard \(shard)'s drift counts of feature \(j) are negative or do not add up to its \(a.subscribers) subscribers")
                }
                at += n
            }
        }
    }
}
