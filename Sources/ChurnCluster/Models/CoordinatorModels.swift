import ClusterSystem
import ProfileDatabase
import Distributed
import SubscriberProfiles
import TreeModel
import WireFormat

extension CoordinatorActor {
    /// How long a worker may take to load a model ahead of a deployment.
    static let prepareTimeout: Duration = .seconds(120)
    /// How long a worker may take to switch.
    static let switchTimeout: Duration = .seconds(10)

    /// Registers a model file under `name` (admin). It is parsed and compiled here first: a file
    /// that does not load, or reads a feature the profiles lack, is refused with the reason.
    /// - Returns: the entry (the same entry when that name already has that version).
    public distributed func addModel(name: String, source: String, bytes: BulkArray<UInt8>) async throws -> RegisteredModel {
        try await registerModel(name: name, source: source, bytes: bytes, reference: nil)
    }

    /// Registers a model file with its drift reference taken from a file of rows (admin; `churngrid
    /// models add --reference CSV`): the reference is checked against the model (every feature
    /// binned, counts adding up) and stored with it in one transaction; a version that already has
    /// a reference keeps it and the call is refused.
    public distributed func addModel(name: String, source: String, bytes: BulkArray<UInt8>, reference: DriftReferenceUpload) async throws -> RegisteredModel {
        try await registerModel(name: name, source: source, bytes: bytes, reference: reference)
    }

    private func registerModel(name: String, source: String, bytes: BulkArray<UInt8>, reference upload: DriftReferenceUpload?) async throws -> RegisteredModel {
        let caller = ClusterActorSystem.caller
        let name = try ModelRegistry.validName(name)
        let data = bytes.elements
        guard !data.isEmpty, data.count <= ModelRegistry.maxBytes else {
            throw ClusterError("model file \(source.prefix(200)) has \(data.count) bytes; a model is 1 byte to \(ModelRegistry.maxBytes >> 20) MiB")
        }
        let file = String(source.prefix(400))
        let loaded: ScoringModel
        do {
            loaded = try await Task.detached { try ScoringModel(bytes: data, source: file) }.value
        } catch {
            throw ClusterError("model \(name) not added: \(error)")
        }
        if let problem = try await featureProblem(data, source: file) { throw ClusterError("model \(name) not added: \(problem)") }
        let reference: DriftReference?
        do {
            reference = try upload?.validated(modelFeatures: loaded.featureNames)
        } catch {
            throw ClusterError("model \(name) not added: \(error)")
        }
        let entry: RegisteredModel, inserted: Bool
        do {
            (entry, inserted) = try await database.addModel(name: name, version: loaded.version, source: file, features: loaded.featureNames,
                                                            bytes: data, by: Self.callerName(caller), reference: reference)
        } catch let refusal as ModelRefusal {
            await audit(caller, action: "models add", target: "\(name) \(loaded.version)", outcome: "refused: a drift reference exists")
            throw refusal
        }
        let withReference = upload.map { " with the drift reference of \($0.source.prefix(200)) (\($0.rows) rows)" } ?? ""
        await audit(caller, action: "models add", target: "\(name) \(loaded.version)", outcome: (inserted ? "added" : "already registered") + withReference)
        logger.notice("model registered", metadata: ["name": "\(name)", "version": "\(loaded.version)", "features": "\(loaded.featureNames.count)",
                                                      "new": "\(inserted)", "drift_reference": "\(upload.map { "\($0.source.prefix(200)), \($0.rows) rows" } ?? "first job")"])
        return entry
    }

    /// What in model bytes the profiles cannot give it (a feature the schema in force lacks, a
    /// category code beyond the schema's), nil when nothing.
    /// - Throws: when the schema in force cannot be read (the model is then not added).
    func featureProblem(_ bytes: [UInt8], source: String) async throws -> String? {
        let model = try await Task.detached(operation: { try TreeEnsemble.parse(bytes, file: source) }).value
        let stored: FeatureSchemaStore.Stored
        do {
            stored = try await database.featureSchema()
        } catch {
            throw ClusterError("the feature schema in force cannot be read to check \(source)'s features: \(error)")
        }
        return ModelFeatureCheck.problem(model: model, schema: stored.schema, schemaVersion: stored.version).map { "\(source): \($0)" }
    }

    /// Every registered model version (readers).
    public distributed func models() async throws -> [RegisteredModel] {
        try await database.registeredModels()
    }

    /// One model's versions, newest first, each with the drift of its last measured job (readers).
    public distributed func model(name: String) async throws -> ModelDetails {
        let versions = try await database.registeredModels(name: try ModelRegistry.validName(name))
        guard !versions.isEmpty else { throw ModelRefusal(.unknownModel, "no model named '\(name)' is registered (churngrid models list)") }
        var drift: [DriftReport?] = []
        for v in versions { drift.append(try await database.lastDrift(modelVersion: v.version)) }
        var details = ModelDetails(name: name, versions: versions, drift: drift)
        if let challenger, challenger.name == name {
            details.challenger = ChallengerStatus(challenger)
        }
        return details
    }

    /// Each version of model `name` (newest first, as `model(name:)` lists them): the last completed
    /// job that scored it, with its figures over the subscribers it scored (readers). Nil for a
    /// version no job scored since the figures are kept.
    public distributed func modelLastJobs(name: String) async throws -> [ModelJobFigures?] {
        let versions = try await database.registeredModels(name: try ModelRegistry.validName(name))
        guard !versions.isEmpty else { throw ModelRefusal(.unknownModel, "no model named '\(name)' is registered (churngrid models list)") }
        var out: [ModelJobFigures?] = []
        for v in versions { out.append(try await database.lastJobFigures(name: name, version: v.version)) }
        return out
    }

    /// Removes a registered version (admin); the one served is refused.
    /// - Returns: the version removed.
    public distributed func removeModel(name: String, version: String) async throws -> String {
        let caller = ClusterActorSystem.caller
        let name = try ModelRegistry.validName(name)
        guard !deploying else { throw ModelRefusal(.busy, "a model is being deployed: remove versions when it has finished") }
        let removed = try await database.removeModel(name: name, version: version)
        await audit(caller, action: "models remove", target: "\(name) \(removed)", outcome: "removed")
        return removed
    }

    /// Deploys a registered version as the model the cluster serves (admin): every worker loads it
    /// first (all or nothing: one that cannot and nothing changes), the choice is recorded (a
    /// restart keeps it), then every worker switches, each shard in one step between two answers:
    /// no query fails, every answer names the version it came from, no profile is reloaded.
    /// Refused while a job, a campaign run, an erasure or another deployment runs (a job never
    /// mixes versions).
    ///
    /// A challenger served beside the model ends with any champion deployment: deploying the
    /// version served already ends it, and `promoteChallenger` deploys the challenger's version.
    public distributed func deployModel(name: String, version: String) async throws -> ModelDeployment {
        let name = try ModelRegistry.validName(name)
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        if let active = activeModels.first(where: { $0.name == name }) {
            // An active model's champion: that version over the same segment (its challenger ends).
            let change = try await changeActive(name: name, version: version, segment: active.segment, action: "models deploy", endChallenger: true)
            let same = change.previous == change.status.version
            // The same version: nothing changed (it was sent to every worker again, setting right one
            // that missed a change), unless its challenger ended.
            return ModelDeployment(name: name, version: change.status.version, previous: same && change.endedChallenger == nil ? "" : change.previous,
                                   workers: change.workers, switchSeconds: change.switchSeconds, seconds: change.seconds)
        }
        return try await deployChampion(name: name, version: version, action: "models deploy")
    }

    /// Refuses a deployment while anything that must not see two versions runs.
    func checkDeployable() throws {
        guard !deploying else { throw ModelRefusal(.busy, "another deployment is running; deploy when it has finished") }
        if let job = job(), job.state == .running {
            throw ModelRefusal(.busy, "job \(job.id) is running (\(job.shardsDone)/\(job.shardCount) shards): deploy when it has finished (a job never mixes model versions)")
        }
        guard !campaignBusy else { throw ModelRefusal(.busy, "a campaign run is deciding: deploy when it has finished") }
        guard !erasing else { throw ModelRefusal(.busy, "subscribers are being erased: deploy when the erasure has finished") }
        guard !jobStarting else { throw ModelRefusal(.busy, "a job is being started: deploy when it has finished (a job never mixes model versions)") }
        guard !comparing else { throw ModelRefusal(.busy, "a model comparison is running: deploy when it has finished") }
    }

    /// The deployment of a champion (`deploying` set by the caller).
    func deployChampion(name: String, version: String, action: String) async throws -> ModelDeployment {
        let caller = ClusterActorSystem.caller
        let start = ContinuousClock.now
        let (entry, bytes) = try await database.registeredModel(name: name, version: version)
        let previous = package.version
        if entry.version == previous && name == modelName && challenger == nil {
            // Served already: done, unless a worker missed the switch (then it is pushed again).
            let statuses = await Self.onEveryWorker(memberWorkers(), timeout: .seconds(5)) { try await $0.status() }
            let behind = statuses.filter { if case .success(let s) = $0.1 { return s.modelVersion != previous } else { return true } }
            if behind.isEmpty {
                // A worker that missed the end of a challenger still serves it (its status does not
                // say): the switch to the served version ends it there, and is nothing elsewhere.
                let term = term
                let ended = await Self.onEveryWorker(memberWorkers(), timeout: Self.switchTimeout) { try await $0.switchModel(version: previous, term: term) }
                let unconfirmed = ended.compactMap { name, result -> String? in
                    if case .failure(let error) = result { return "\(name) (\(error))" }
                    return nil
                }
                var report = ModelDeployment(name: name, version: entry.version, previous: "", workers: 0, switchSeconds: 0, seconds: seconds(ContinuousClock.now - start))
                report.unconfirmed = unconfirmed
                return report
            }
            logger.notice("workers not on the served model: pushing it again", metadata: ["workers": "\(behind.map(\.0))", "model": "\(previous)"])
        }
        let source = "registry:\(name)/\(entry.version)"
        let next: ScoringModel
        do {
            next = try await Task.detached { try ScoringModel(bytes: bytes, source: source) }.value
        } catch {
            throw ModelRefusal(.unloadable, "model \(name) \(entry.version) does not load here: \(error)")
        }
        let nextPackage = ModelPackage(version: next.version, source: source, bytes: bytes)
        // No joins, moves or failovers meanwhile: every worker asked below is every worker there is.
        await lockMembership()
        defer { unlockMembership() }
        let workers = memberWorkers()
        let term = term

        // 1. Every worker loads it (all or nothing).
        let prepared = await Self.onEveryWorker(workers, timeout: Self.prepareTimeout) { try await $0.prepareModel(nextPackage, term: term) }
        let failed = prepared.compactMap { name, result -> String? in
            if case .failure(let error) = result { return "\(name) (\(error))" }
            return nil
        }
        guard failed.isEmpty else {
            await audit(caller, action: action, target: "\(name) \(entry.version)", outcome: "failed: not every worker loaded it")
            throw ClusterError("model \(name) \(entry.version) not deployed: \(failed.joined(separator: ", ")) could not load it; the cluster still serves \(previous)")
        }
        // 2. Recorded: a coordinator that starts or takes over from now on serves it. Written again
        // while PostgreSQL is unavailable (up to the database deadline): a write cut off at COMMIT
        // may have been carried out all the same, and writing the same model and version again is
        // harmless (it waits for the cut one, then sets what it set) — so the cluster never goes on
        // serving the old model while the database names the new one.
        do {
            let by = Self.callerName(caller)
            try await writingAgainWhileUnavailable(
                "recording the deployment waits for it (written again, the same model and version)",
                metadata: ["model": "\(name)", "version": "\(next.version)"],
                givingUp: { e in
                    await audit(caller, action: action, target: "\(name) \(entry.version)", outcome: "failed: PostgreSQL did not take the record")
                    return ClusterError("model \(name) \(entry.version) not deployed: PostgreSQL did not take its record within \(settings.databaseDeadline); "
                                        + "a cut-off try may yet land — run `models deploy` again once PostgreSQL answers: \(e)")
                }) {
                try await database.register(model: next)
                try await database.setServed(name: name, version: next.version, by: by)
            }
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing was deployed")
        }
        // 3. The switch: from here on new assignments carry the new model too (and no challenger).
        let endedChallenger = challenger?.model.version
        model = next
        package = nextPackage
        modelName = name
        challenger = nil
        let switchStart = ContinuousClock.now
        let switched = await Self.onEveryWorker(workers, timeout: Self.switchTimeout) { try await $0.switchModel(version: next.version, term: term) }
        let switchSeconds = seconds(ContinuousClock.now - switchStart)
        var count = 0
        var missed: [(name: String, worker: WorkerActor)] = []
        for (worker, result) in switched {
            switch result {
            case .success: count += 1
            case .failure(let error):
                logger.warning("a worker did not confirm the switch; asking it again", metadata: ["worker": "\(worker)", "model": "\(next.version)", "error": "\(error)"])
                if let w = workers.first(where: { $0.name == worker }) { missed.append(w) }
            }
        }
        // Asked again (loading it again if it lost the prepared copy); still not: reported, and
        // `models deploy` again pushes it (a served version is pushed to workers not on it).
        var unconfirmed: [String] = []
        if !missed.isEmpty {
            // Briefly (the membership lock is held: a worker that is gone must not delay its failover).
            let again = await Self.onEveryWorker(missed, timeout: Self.switchTimeout) { w in
                _ = try await w.prepareModel(nextPackage, term: term)
                try await w.switchModel(version: next.version, term: term)
            }
            for (worker, result) in again {
                switch result {
                case .success: count += 1
                case .failure(let error): unconfirmed.append("\(worker) (\(error))")
                }
            }
        }
        var report = ModelDeployment(name: name, version: next.version, previous: previous, workers: count, switchSeconds: switchSeconds,
                                     seconds: seconds(ContinuousClock.now - start))
        report.unconfirmed = unconfirmed
        if !unconfirmed.isEmpty {
            logger.error("workers did not switch to the deployed model: they answer with the old one until `models deploy` is run again",
                         metadata: ["workers": "\(unconfirmed)", "model": "\(next.version)"])
        }
        let ended = endedChallenger.map { "; challenger \($0) ended" } ?? ""
        await audit(caller, action: action, target: "\(name) \(next.version)",
                    outcome: (unconfirmed.isEmpty ? "deployed (previous \(previous))" : "deployed (previous \(previous)); not switched: \(unconfirmed.count) workers") + ended)
        logger.notice("model deployed", metadata: ["name": "\(name)", "version": "\(next.version)", "previous": "\(previous)",
                                                    "workers": "\(count)", "switchSeconds": "\(switchSeconds)", "seconds": "\(report.seconds)",
                                                    "challenger_ended": "\(endedChallenger ?? "-")"])
        return report
    }

    /// Calls `body` on every worker at once, each under `timeout`.
    static func onEveryWorker<T: Sendable>(_ workers: [(name: String, worker: WorkerActor)], timeout: Duration,
                                           _ body: @escaping @Sendable (WorkerActor) async throws -> T) async -> [(String, Result<T, any Error>)] {
        await withTaskGroup(of: (String, Result<T, any Error>).self) { group in
            for (name, worker) in workers {
                group.addTask {
                    do {
                        return (name, .success(try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await body(worker) }))
                    } catch {
                        return (name, .failure(error))
                    }
                }
            }
            var all: [(String, Result<T, any Error>)] = []
            for await a in group { all.append(a) }
            return all.sorted { $0.0 < $1.0 }
        }
    }
}

extension CoordinatorActor {
    /// Compares the served model with another registered version over the live base (operators):
    /// every shard's owner scores its subscribers with both (two passes: histograms, then the
    /// top-decile counts); the outcomes imported (`outcomes import`, the latest per subscriber)
    /// label subscribers for AUC and lift. See `ModelComparison`.
    public distributed func compareModels(name: String, version: String) async throws -> ModelComparison {
        let name = try ModelRegistry.validName(name)
        guard !deploying, !erasing, !comparing else { throw ModelRefusal(.busy, "a deployment, an erasure or another comparison is running: compare when it has finished") }
        comparing = true
        defer { comparing = false }
        let start = ContinuousClock.now
        // An active model over its segment; else the served model (against a version of any
        // name: one of another name may be about to replace it).
        let active = name == modelName ? nil : activeModels.first { $0.name == name }
        let activeName = active?.name ?? "", segment = active?.segment ?? ""
        let served = active?.model.version ?? package.version
        let (entry, bytes) = try await database.registeredModel(name: name, version: version)
        let other = ModelPackage(version: entry.version, source: "registry:\(name)/\(entry.version)", bytes: bytes)
        let (owners, missing) = readyOwners()
        guard missing.isEmpty else {
            throw ClusterError("shards \(missing.prefix(8).map(String.init).joined(separator: ", ")) have no ready owner: compare when the cluster has settled")
        }
        var shardsOf: [String: Set<Int>] = [:]
        for (shard, node) in owners { shardsOf[node.name, default: []].insert(shard) }
        let workers = memberWorkers().filter { shardsOf[$0.name] != nil }
        // The labels, sent to the worker owning each subscriber's shard.
        let (churnedIDs, retainedIDs) = try await database.latestOutcomes()
        var ownerOfShard = [String?](repeating: nil, count: shardCount)
        for (shard, node) in owners where shard < shardCount { ownerOfShard[shard] = node.name }
        var labels: [String: (churned: [Int64], retained: [Int64])] = [:]
        for (ids, churned) in [(churnedIDs, true), (retainedIDs, false)] {
            for id in ids {
                guard let owner = ownerOfShard[ShardKey.shard(of: id, shardCount: shardCount)] else { continue }
                if churned { labels[owner, default: ([], [])].churned.append(id) } else { labels[owner, default: ([], [])].retained.append(id) }
            }
        }
        let term = term, version = entry.version
        let prepared = await Self.onEveryWorker(workers, timeout: Self.prepareTimeout) { try await $0.prepareComparison(other, term: term) }
        if let failed = prepared.first(where: { if case .failure = $0.1 { true } else { false } }), case .failure(let error) = failed.1 {
            throw ClusterError("\(failed.0) could not load model \(name) \(version): \(error)")
        }
        let requests = Dictionary(uniqueKeysWithValues: workers.map { w in
            (w.name, CompareRequest(version: version, shards: (shardsOf[w.name] ?? []).sorted(), churned: labels[w.name]?.churned ?? [],
                                    retained: labels[w.name]?.retained ?? [], thresholds: []))
        })
        let first = await Self.onEveryWorker(workers, timeout: settings.rescoreTimeout) { w in
            guard let r = requests[w.id.node.name] else { throw ClusterError("no request for \(w.id.node.name)") }
            return activeName.isEmpty ? try await w.compareModels(r, term: term) : try await w.compareModels(r, activeModel: activeName, segment: segment, term: term)
        }
        var histograms = [Int64](repeating: 0, count: 6 * ComparisonHistograms.bins)
        var subscribers = 0
        for (worker, result) in first {
            let part: ComparisonPart
            switch result {
            case .success(let p): part = p
            case .failure(let error): throw ClusterError("\(worker) could not compare: \(error)")
            }
            guard part.histograms.elements.count == histograms.count else { throw ClusterError("\(worker) answered a comparison without its histograms") }
            guard part.version == served else { throw ClusterError("\(worker) scored with model \(part.version), not the served \(served): compare when every worker serves it") }
            subscribers += part.subscribers
            for (i, c) in part.histograms.elements.enumerated() { histograms[i] += Int64(c) }
        }
        let b = ComparisonHistograms.bins
        guard subscribers > 0 else { throw ClusterError(activeName.isEmpty ? "the cluster holds no subscribers to compare" : "model \(name)'s segment holds no subscribers to compare") }
        let cuts = [ComparisonHistograms.topCut(Array(histograms[0..<b]), share: 0.1), ComparisonHistograms.topCut(Array(histograms[b..<(2 * b)]), share: 0.1)]
        let second = await Self.onEveryWorker(workers, timeout: settings.rescoreTimeout) { w in
            guard let first = requests[w.id.node.name] else { throw ClusterError("no request for \(w.id.node.name)") }
            let second = CompareRequest(version: version, shards: first.shards, churned: [], retained: [], thresholds: cuts)
            return activeName.isEmpty ? try await w.compareModels(second, term: term)
                : try await w.compareModels(second, activeModel: activeName, segment: segment, term: term)
        }
        var top = [0, 0, 0], counted = 0
        for (worker, result) in second {
            switch result {
            case .success(let p) where p.top.count == 3 && p.version == served:
                counted += p.subscribers
                for k in 0..<3 { top[k] += p.top[k] }
            case .success: throw ClusterError("\(worker) answered the second pass without its counts, or with another model than the served \(served)")
            case .failure(let error): throw ClusterError("\(worker) could not compare: \(error)")
            }
        }
        guard counted == subscribers else {
            throw ClusterError("the shards moved during the comparison (\(subscribers) subscribers, then \(counted)): run it again")
        }
        let report = ModelComparison.make(name: name, versions: (served, version), subscribers: subscribers, histograms: histograms, top: top,
                                          seconds: seconds(ContinuousClock.now - start))
        logger.info("models compared", metadata: ["name": "\(name)", "served": "\(served)", "other": "\(version)", "subscribers": "\(subscribers)",
                                                   "agreement": "\(report.topDecileAgreement)", "seconds": "\(report.seconds)"])
        return report
    }
}
