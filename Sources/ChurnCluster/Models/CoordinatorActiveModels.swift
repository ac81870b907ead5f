import ClusterSystem
import Distributed
import ProfileDatabase
import SubscriberProfiles
import TreeModel
import WireFormat

/// Several models at once (docs/models.md, "Several models"): registered models active beside
/// the served one, each over a segment, scored in every job in the same pass over the profiles.
extension CoordinatorActor {
    /// Activates a registered version of model `name` beside the served model, for the
    /// subscribers of `segment` (empty: everyone), or changes an active model's version or
    /// segment (admin). Every worker loads it first (the extra columns it and its segment read
    /// included); if one cannot, those that switched go back and nothing changes. Then it is
    /// recorded (a restart or takeover keeps it). From the next job on, every job scores it.
    /// Refused while a job, campaign run, erasure, comparison or deployment runs.
    public distributed func activateModel(name: String, version: String, segment: String) async throws -> ActiveModelStatus {
        let name = try ModelRegistry.validName(name)
        guard name != modelName else {
            throw ModelRefusal(.served, "model \(name) is the model the cluster serves: it is scored in every job already (activate models of other names beside it)")
        }
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        return try await changeActive(name: name, version: version, segment: segment, action: "models activate").status
    }

    /// What `changeActive` did.
    struct ActiveChange {
        var status: ActiveModelStatus
        /// The version active before ("" when it was not active).
        var previous: String
        var workers: Int
        var switchSeconds: Double
        var seconds: Double
        /// The challenger that ended with it (nil: none did).
        var endedChallenger: String?
    }

    /// Makes version `version` of model `name` active over `segment` (`deploying` set by the
    /// caller): every worker loads it (all or nothing), it is recorded, then it is served. Another
    /// version than the active one ends the model's challenger, and so does `endChallenger`.
    func changeActive(name: String, version: String, segment: String, action: String, endChallenger: Bool = false) async throws -> ActiveChange {
        let caller = ClusterActorSystem.caller
        let start = ContinuousClock.now
        let (entry, bytes) = try await database.registeredModel(name: name, version: version)
        let stored: FeatureSchemaStore.Stored
        do {
            stored = try await database.featureSchema()
        } catch {
            throw ClusterError("the feature schema in force cannot be read to check model \(name)'s features and segment: \(error)")
        }
        let package: ActiveModelPackage, compiled: ScoringModel
        do {
            (package, compiled) = try await Task.detached {
                try Self.checkedActive(name: name, version: entry.version, bytes: bytes, segment: segment, servedName: "", schema: stored, canonical: false)
            }.value
        } catch {
            await audit(caller, action: action, target: "\(name) \(entry.version)", outcome: "refused: \(error)")
            throw ModelRefusal(error is ModelSegmentError ? .invalidSegment : .unloadable, "model \(name) \(entry.version) not activated: \(error)")
        }
        guard activeModels.count < maxActiveModels || activeModels.contains(where: { $0.name == name }) else {
            throw ModelRefusal(.busy, "\(maxActiveModels) models are active already: deactivate one first")
        }
        let previous = activeModels.first { $0.name == name }?.model.version ?? ""
        var next = activeModels
        if let i = next.firstIndex(where: { $0.name == name }) { next[i] = package } else { next.append(package) }
        next.sort { $0.name < $1.name }  // the order a coordinator that starts sorts them in too
        var nextChallengers = ActiveChallengers.kept(activeChallengers, active: next, previous: activeModels)
        if endChallenger { nextChallengers.removeAll { $0.name == name } }
        let ended = activeChallengers.first { c in c.name == name && !nextChallengers.contains { $0.name == name } }?.model.version
        try checkCarried(active: next, challengers: nextChallengers, what: "model \(name) not activated")
        // No joins, moves or failovers until it is recorded and assignments carry it.
        await lockMembership()
        defer { unlockMembership() }
        let (workers, switchSeconds) = try await serveEverywhere(next, challengers: nextChallengers, action: action, target: "\(name) \(entry.version)", caller: caller)
        do {
            try await database.register(model: compiled)
            try await database.setActive(name: name, version: entry.version, segment: package.segment, by: Self.callerName(caller), endChallenger: ended != nil)
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing was activated")
        } catch {
            await serveBack(from: next)
            throw ClusterError("model \(name) \(entry.version) not activated: it could not be recorded (\(error)); the workers went back")
        }
        let unchanged = previous == entry.version && ended == nil && activeModels == next
        activeModels = next
        activeChallengers = nextChallengers
        await audit(caller, action: action, target: "\(name) \(entry.version)",
                    outcome: unchanged ? "unchanged (sent to every worker again)"
                        : "activated" + (package.segment.isEmpty ? " for every subscriber" : " for segment \(package.segment)")
                        + (previous.isEmpty || previous == entry.version ? "" : " (previous \(previous))") + (ended.map { "; challenger \($0) ended" } ?? ""))
        logger.notice("model activated", metadata: ["name": "\(name)", "version": "\(entry.version)", "segment": "\(package.segment)",
                                                     "active": "\(next.map(\.name))", "challenger_ended": "\(ended ?? "-")"])
        return ActiveChange(status: ActiveModelStatus(name: name, version: entry.version, segment: package.segment), previous: previous,
                            workers: workers, switchSeconds: switchSeconds, seconds: seconds(ContinuousClock.now - start), endedChallenger: ended)
    }

    /// Every assignment carries every model's file: they must fit in one message with room to spare.
    func checkCarried(active: [ActiveModelPackage], challengers: [ChallengerPackage], what: String) throws {
        let limit = actorSystem.configuration.options.maxMessageBytes / 2
        let carried = package.bytes.elements.count + (challenger?.model.bytes.elements.count ?? 0)
            + active.reduce(0) { $0 + $1.model.bytes.elements.count } + challengers.reduce(0) { $0 + $1.model.bytes.elements.count }
        guard carried <= limit else {
            throw ModelRefusal(.busy, "\(what): the served model, the active models and their challengers would take \(carried >> 20) MiB "
                               + "of every assignment, over half the largest message (\(limit >> 19) MiB, --max-message-mb): deactivate one first")
        }
    }

    /// Stops scoring model `name` beside the served one (admin): jobs from the next one on no
    /// longer score it; its published scores stay until a job replaces them.
    /// - Returns: what was active.
    public distributed func deactivateModel(name: String) async throws -> ActiveModelStatus {
        let caller = ClusterActorSystem.caller
        let name = try ModelRegistry.validName(name)
        guard let current = activeModels.first(where: { $0.name == name }) else {
            throw ModelRefusal(.notActive, "model \(name) is not active (active: \(activeModels.isEmpty ? "none" : activeModels.map(\.name).joined(separator: ", ")))")
        }
        try checkDeployable()
        deploying = true
        defer { deploying = false }
        let next = activeModels.filter { $0.name != name }
        let nextChallengers = activeChallengers.filter { $0.name != name }
        await lockMembership()
        defer { unlockMembership() }
        _ = try await serveEverywhere(next, challengers: nextChallengers, action: "models deactivate", target: "\(name) \(current.model.version)", caller: caller)
        do {
            try await database.setActive(name: name, version: nil, segment: "", by: Self.callerName(caller))
        } catch let error as LeaseLost {
            lease.lost(error)
            throw ClusterError("this coordinator has lost its lease and is stepping down; nothing was deactivated")
        } catch {
            await serveBack(from: next)
            throw ClusterError("model \(name) not deactivated: it could not be recorded (\(error)); the workers went back")
        }
        activeModels = next
        activeChallengers = nextChallengers
        await audit(caller, action: "models deactivate", target: "\(name) \(current.model.version)", outcome: "deactivated")
        logger.notice("model deactivated", metadata: ["name": "\(name)", "version": "\(current.model.version)"])
        return ActiveModelStatus(name: name, version: current.model.version, segment: current.segment)
    }

    /// The models active beside the served one (readers).
    public distributed func activeModelList() -> [ActiveModelStatus] {
        activeModels.map { ActiveModelStatus(name: $0.name, version: $0.model.version, segment: $0.segment) }
    }

    /// Every worker serves `next` (and `challengers` beside them); if one cannot, those that did
    /// go back to what is active now (the caller holds the membership lock).
    /// - Returns: the workers that serve it, and the window in which they switched.
    func serveEverywhere(_ next: [ActiveModelPackage], challengers: [ChallengerPackage], action: String, target: String,
                         caller: Caller?) async throws -> (workers: Int, seconds: Double) {
        let term = term
        let started = ContinuousClock.now
        let workers = memberWorkers()
        let served = await Self.onEveryWorker(workers, timeout: Self.prepareTimeout) { try await Self.serve($0, next, challengers: challengers, term: term) }
        let switchSeconds = seconds(ContinuousClock.now - started)
        let failed = served.compactMap { name, result -> String? in
            if case .failure(let error) = result { return "\(name) (\(error))" }
            return nil
        }
        guard failed.isEmpty else {
            let back = workers.filter { w in served.contains { $0.0 == w.name && (try? $0.1.get()) != nil } }
            let current = activeModels, currentChallengers = activeChallengers
            _ = await Self.onEveryWorker(back, timeout: Self.prepareTimeout) { try await Self.serve($0, current, challengers: currentChallengers, term: term) }
            await audit(caller, action: action, target: target, outcome: "failed: not every worker loaded it")
            throw ClusterError("\(target): \(failed.joined(separator: ", ")) could not load it; nothing changed")
        }
        return (workers.count, switchSeconds)
    }

    /// Tells `worker` to serve `active` and `challengers` — through the method a worker one
    /// version older answers too when there is no challenger of an active model.
    private static func serve(_ worker: WorkerActor, _ active: [ActiveModelPackage], challengers: [ChallengerPackage], term: Int64) async throws -> [String] {
        challengers.isEmpty ? try await worker.serveActive(active, term: term) : try await worker.serveActive(active, challengers: challengers, term: term)
    }

    /// Every worker goes back from `next` to what is active now (a change that was not recorded;
    /// the caller holds the membership lock).
    func serveBack(from next: [ActiveModelPackage]) async {
        let term = term, current = activeModels, currentChallengers = activeChallengers
        let back = await Self.onEveryWorker(memberWorkers(), timeout: Self.prepareTimeout) { try await Self.serve($0, current, challengers: currentChallengers, term: term) }
        for (worker, result) in back {
            if case .failure(let error) = result {
                logger.error("a worker could not go back to the active models recorded: it scores others until the next assignment",
                             metadata: ["worker": "\(worker)", "error": "\(error)"])
            }
        }
    }

    /// An active model checked on the coordinator: it loads, reads only features of the schema in
    /// force, and its segment (`canonical`: stored already) reads schema features; named apart
    /// from the served model.
    static func checkedActive(name: String, version: String, bytes: [UInt8], segment: String, servedName: String,
                              schema stored: FeatureSchemaStore.Stored, canonical: Bool = true) throws -> (ActiveModelPackage, ScoringModel) {
        guard name != servedName else { throw ClusterError("model \(name) is the model served") }
        let source = "registry:\(name)/\(version)"
        let tree = try TreeEnsemble.parse(bytes, file: source)
        if let problem = ModelFeatureCheck.problem(model: tree, schema: stored.schema, schemaVersion: stored.version) {
            throw ClusterError("\(source): \(problem)")
        }
        let loaded = try ScoringModel(bytes: bytes, source: source)
        guard loaded.version == version else { throw ClusterError("the bytes registered as \(version) are model \(loaded.version)") }
        let trimmed = segment.trimmingCharacters(in: .whitespacesAndNewlines)
        var text = ""
        if !trimmed.isEmpty {
            let names = WorkerActor.readableFeatures(schema: stored.schema.names)
            text = try ModelSegment.parse(trimmed, features: names, schema: canonical ? nil : stored.schema).description
        }
        return (ActiveModelPackage(name: name, model: ModelPackage(version: version, source: source, bytes: bytes), segment: text), loaded)
    }
}
