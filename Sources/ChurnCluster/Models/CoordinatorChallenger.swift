import ClusterSystem
import Distributed
import ProfileDatabase
import TreeModel

extension CoordinatorActor {
    /// Deploys a registered version of the served model as its challenger (admin): it answers
    /// the live queries of a deterministic share of subscribers (`ChallengerSplit`, by a hash of
    /// the model's name and the subscriber), every answer naming its version; jobs, campaigns,
    /// drift and event triggers stay on the champion. Every worker loads it first (all or
    /// nothing), the choice is recorded (a restart or a takeover keeps it), then every worker
    /// switches, each shard in one step between two answers. Deploying it again at another share
    /// changes only the share; a challenger already served at another version is replaced.
    public distributed func deployChallenger(name: String, version: String, trafficPercent: Double) async throws -> ModelDeployment {
        let caller = ClusterActorSystem.caller
        let name = try ModelRegistry.validName(name)
        let basisPoints = try ChallengerSplit.basisPoints(percent: trafficPercent)
        if activeModels.contains(where: { $0.name == name }) {
            return try await deployActiveChallenger(name: name, version: version, basisPoints: basisPoints)
        }
        guard name == modelName else {
            throw ModelRefusal(.unknownModel, "a challenger challenges the served model (\(modelName)) or an active model "
                               + "(\(activeModels.isEmpty ? "none" : activeModels.map(\.name).joined(separator: ", "))); model '\(name)' is neither")
        }
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        let start = ContinuousClock.now
        let (entry, bytes) = try await database.registeredModel(name: name, version: version)
        guard entry.version != package.version else {
            throw ModelRefusal(.served, "model \(name) version \(entry.version) is the champion; a challenger is another version")
        }
        let source = "registry:\(name)/\(entry.version)"
        let loaded: ScoringModel
        do {
            loaded = try await Task.detached { try ScoringModel(bytes: bytes, source: source) }.value
        } catch {
            throw ModelRefusal(.unloadable, "model \(name) \(entry.version) does not load here: \(error)")
        }
        let previous = challenger?.model.version ?? ""
        let next = ChallengerPackage(name: name, model: ModelPackage(version: loaded.version, source: source, bytes: bytes), basisPoints: basisPoints)
        await lockMembership()
        defer { unlockMembership() }
        let workers = memberWorkers()
        let term = term

        // 1. Every worker loads it (all or nothing).
        let prepared = await Self.onEveryWorker(workers, timeout: Self.prepareTimeout) { try await $0.prepareModel(next.model, term: term) }
        let failed = prepared.compactMap { name, result -> String? in
            if case .failure(let error) = result { return "\(name) (\(error))" }
            return nil
        }
        guard failed.isEmpty else {
            await audit(caller, action: "models deploy", target: "\(name) \(entry.version) as challenger", outcome: "failed: not every worker loaded it")
            throw ClusterError("model \(name) \(entry.version) not deployed as challenger: \(failed.joined(separator: ", ")) could not load it; nothing changed")
        }
        // 2. Recorded.
        do {
            try await database.register(model: loaded)
            try await database.setChallenger(name: name, version: loaded.version, basisPoints: basisPoints, by: Self.callerName(caller))
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing was deployed")
        }
        // 3. The switch (new assignments carry it from here on).
        challenger = next
        let order = ChallengerOrder(name: name, version: loaded.version, basisPoints: basisPoints)
        let (count, switchSeconds, unconfirmed) = await switchChallengerEverywhere(order, package: next.model, workers: workers, term: term)
        var report = ModelDeployment(name: name, version: loaded.version, previous: previous, workers: count, switchSeconds: switchSeconds,
                                     seconds: seconds(ContinuousClock.now - start))
        report.unconfirmed = unconfirmed
        report.challengerPercent = Double(basisPoints) / 100
        await audit(caller, action: "models deploy", target: "\(name) \(loaded.version) as challenger at \(report.challengerPercent ?? 0)%",
                    outcome: unconfirmed.isEmpty ? "deployed" : "deployed; not switched: \(unconfirmed.count) workers")
        logger.notice("challenger deployed", metadata: ["name": "\(name)", "version": "\(loaded.version)", "champion": "\(package.version)",
                                                         "basis_points": "\(basisPoints)", "workers": "\(count)", "switchSeconds": "\(switchSeconds)"])
        return report
    }

    /// Makes the challenger of model `name` its champion (admin): a champion deployment of the
    /// challenger's version (already loaded on every worker), which ends the challenger.
    public distributed func promoteChallenger(name: String) async throws -> ModelDeployment {
        let name = try ModelRegistry.validName(name)
        if let c = activeChallengers.first(where: { $0.name == name }), let active = activeModels.first(where: { $0.name == name }) {
            // An active model's: its challenger's version becomes the active one, over the same segment.
            try checkDeployable()
            deploying = true
            defer { deploying = false }
            let change = try await changeActive(name: name, version: c.model.version, segment: active.segment, action: "models promote")
            return ModelDeployment(name: name, version: change.status.version, previous: change.previous, workers: change.workers,
                                   switchSeconds: change.switchSeconds, seconds: change.seconds)
        }
        guard let challenger, challenger.name == name else {
            throw ModelRefusal(.noChallenger, "model '\(name)' has no challenger to promote (churngrid models deploy \(name) --version V --as challenger)")
        }
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        return try await deployChampion(name: name, version: challenger.model.version, action: "models promote")
    }

    /// Every challenger served (readers): the served model's first, then the active models', each
    /// with the model it challenges, its version and its share of live answers.
    public distributed func challengerList() -> [ChallengerStatus] {
        (challenger.map { [ChallengerStatus($0)] } ?? []) + activeChallengers.map { ChallengerStatus($0) }
    }

    /// Deploys version `version` of the active model `name` as its challenger at `basisPoints`
    /// (`deploying` not yet set): it answers that share of the model's live answers (single and
    /// batch lookups with the active models), and every job scores it in shadow over the model's
    /// segment. All or nothing on the workers, recorded in `model_active`, carried by assignments.
    private func deployActiveChallenger(name: String, version: String, basisPoints: Int) async throws -> ModelDeployment {
        let caller = ClusterActorSystem.caller
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        let start = ContinuousClock.now
        guard let active = activeModels.first(where: { $0.name == name }) else {
            throw ModelRefusal(.notActive, "model \(name) is no longer active")
        }
        let (entry, bytes) = try await database.registeredModel(name: name, version: version)
        guard entry.version != active.model.version else {
            throw ModelRefusal(.served, "model \(name) version \(entry.version) is the active one; a challenger is another version")
        }
        let stored: FeatureSchemaStore.Stored
        do {
            stored = try await database.featureSchema()
        } catch {
            throw ClusterError("the feature schema in force cannot be read to check model \(name) \(entry.version)'s features: \(error)")
        }
        let checked: ActiveModelPackage, compiled: ScoringModel
        do {
            let segment = active.segment
            (checked, compiled) = try await Task.detached {
                try Self.checkedActive(name: name, version: entry.version, bytes: bytes, segment: segment, servedName: "", schema: stored)
            }.value
        } catch {
            await audit(caller, action: "models deploy", target: "\(name) \(entry.version) as challenger", outcome: "refused: \(error)")
            throw ModelRefusal(.unloadable, "model \(name) \(entry.version) not deployed as challenger: \(error)")
        }
        let previous = activeChallengers.first { $0.name == name }?.model.version ?? ""
        let next = ChallengerPackage(name: name, model: checked.model, basisPoints: basisPoints)
        var nextChallengers = activeChallengers.filter { $0.name != name }
        nextChallengers.append(next)
        nextChallengers.sort { $0.name < $1.name }
        try checkCarried(active: activeModels, challengers: nextChallengers, what: "model \(name) \(entry.version) not deployed as challenger")
        await lockMembership()
        defer { unlockMembership() }
        let target = "\(name) \(entry.version) as challenger"
        let (workers, switchSeconds) = try await serveEverywhere(activeModels, challengers: nextChallengers, action: "models deploy", target: target, caller: caller)
        do {
            try await database.register(model: compiled)
            try await database.setActiveChallenger(name: name, version: entry.version, basisPoints: basisPoints, by: Self.callerName(caller))
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing was deployed")
        } catch {
            await serveBack(from: activeModels)
            throw ClusterError("model \(name) \(entry.version) not deployed as challenger: it could not be recorded (\(error)); the workers went back")
        }
        activeChallengers = nextChallengers
        var report = ModelDeployment(name: name, version: entry.version, previous: previous, workers: workers, switchSeconds: switchSeconds,
                                     seconds: seconds(ContinuousClock.now - start))
        report.challengerPercent = Double(basisPoints) / 100
        await audit(caller, action: "models deploy", target: "\(name) \(entry.version) as challenger at \(report.challengerPercent ?? 0)%", outcome: "deployed")
        logger.notice("active model's challenger deployed", metadata: ["name": "\(name)", "version": "\(entry.version)", "champion": "\(active.model.version)",
                                                                        "basis_points": "\(basisPoints)", "workers": "\(workers)", "switchSeconds": "\(switchSeconds)"])
        return report
    }

    /// Compares a job's champion scores with its challenger's shadow scores (operators): both
    /// read back from PostgreSQL (the job's own partitions), as `compareModels` compares over
    /// the live base — distributions, top-decile agreement, and AUC and lift against the latest
    /// outcome of each subscriber.
    public distributed func compareJob(name: String, job: Int64) async throws -> ModelComparison {
        let name = try ModelRegistry.validName(name)
        let start = ContinuousClock.now
        let (champion, shadow, subscribers, histograms, top) = try await database.shadowComparison(job: job, name: name)
        let report = ModelComparison.make(name: name, versions: (champion, shadow), subscribers: subscribers, histograms: histograms, top: top,
                                          seconds: seconds(ContinuousClock.now - start))
        logger.info("job's champion and shadow scores compared", metadata: ["job": "\(job)", "champion": "\(champion)", "challenger": "\(shadow)",
                                                                             "subscribers": "\(subscribers)", "agreement": "\(report.topDecileAgreement)"])
        return report
    }

    /// Tells every worker to serve `order`, asking again once (loading it again) those that did
    /// not confirm. - Returns: workers switched, the switch window, and the workers that still
    /// did not (they are told again by their next assignment or deployment).
    private func switchChallengerEverywhere(_ order: ChallengerOrder, package: ModelPackage, workers: [(name: String, worker: WorkerActor)],
                                            term: Int64) async -> (Int, Double, [String]) {
        let switchStart = ContinuousClock.now
        let switched = await Self.onEveryWorker(workers, timeout: Self.switchTimeout) { try await $0.switchChallenger(order, term: term) }
        let switchSeconds = seconds(ContinuousClock.now - switchStart)
        var count = 0, missed: [(name: String, worker: WorkerActor)] = []
        for (worker, result) in switched {
            switch result {
            case .success: count += 1
            case .failure(let error):
                logger.warning("a worker did not confirm the challenger; asking it again", metadata: ["worker": "\(worker)", "error": "\(error)"])
                if let w = workers.first(where: { $0.name == worker }) { missed.append(w) }
            }
        }
        var unconfirmed: [String] = []
        if !missed.isEmpty {
            let again = await Self.onEveryWorker(missed, timeout: Self.switchTimeout) { w in
                _ = try await w.prepareModel(package, term: term)
                try await w.switchChallenger(order, term: term)
            }
            for (worker, result) in again {
                switch result {
                case .success: count += 1
                case .failure(let error): unconfirmed.append("\(worker) (\(error))")
                }
            }
        }
        if !unconfirmed.isEmpty {
            logger.error("workers did not switch to the challenger: they answer with the champion alone until `models deploy` is run again",
                         metadata: ["workers": "\(unconfirmed)"])
        }
        return (count, switchSeconds, unconfirmed)
    }
}
