import ClusterSystem
import Distributed
import SubscriberProfiles
import TreeModel

/// The models a worker scores in jobs beside the served one (docs/models.md, "Several models").
extension WorkerActor {
    /// Serves `packages` as the models active beside the served one (coordinator only): those new
    /// here are compiled (the extra columns they and their segments read loaded on every held
    /// shard first), then every hosted shard scores them in its next job pass. All or nothing on
    /// this worker: one that does not load leaves what was served.
    /// - Returns: the versions served, in order.
    public distributed func serveActive(_ packages: [ActiveModelPackage], term: Int64) async throws -> [String] {
        try await serveActive(packages, challengers: [], term: term)
    }

    /// Serves `packages` as the active models, and `challengers` beside them (at most one per
    /// active model, another version of it): each answers the share of its model's live answers
    /// its hash names and is scored in shadow over its model's segment in every job. All or
    /// nothing on this worker, as `serveActive(_:term:)`, which serves no challenger.
    public distributed func serveActive(_ packages: [ActiveModelPackage], challengers: [ChallengerPackage], term: Int64) async throws -> [String] {
        try obey(term: term, epoch: nil, "serveActive")
        guard packages.count <= maxActiveModels, Set(packages.map(\.name)).count == packages.count else {
            throw ClusterError("serveActive: at most \(maxActiveModels) active models, each named once")
        }
        guard ActiveChallengers.fit(challengers, active: packages) else {
            throw ClusterError("serveActive: at most one challenger per active model, of another version than it")
        }
        var next = try await load(active: packages)
        for i in next.indices {
            next[i].challenger = try await loadChallenger(challengers.first { $0.name == next[i].name }, of: next[i])
        }
        activeModels = next
        await switchOthers()
        logger.notice("active models served", metadata: ["models": "\(next.map { "\($0.name)=\($0.model.version)" })",
                                                          "challengers": "\(next.compactMap { m in m.challenger.map { "\(m.name)=\($0.model.version)@\($0.basisPoints)bp" } })"])
        return next.map(\.model.version)
    }

    /// The challenger `package` of `active` as it will be served (nil: none): the one held
    /// already when it is the same version, else compiled (the extra columns it reads loaded first).
    private func loadChallenger(_ package: ChallengerPackage?, of active: ServedActiveModel) async throws -> ServedChallenger? {
        guard let package else { return nil }
        guard package.model.version != active.model.version else {
            throw ClusterError("\(actorSystem.node.name): model \(active.name) \(package.model.version) is the champion; it cannot also be its challenger")
        }
        let compiled: ScoringModel
        if let held = compiledHeld(package.model.version) {
            compiled = held
        } else {
            do {
                compiled = try await compile(bytes: package.model.bytes.elements, source: package.model.source)
            } catch {
                throw ClusterError("\(actorSystem.node.name) cannot load challenger \(package.model.version) of active model \(active.name): \(error)")
            }
            guard compiled.version == package.model.version else {
                throw ClusterError("the bytes sent as \(package.model.version) are model \(compiled.version)")
            }
        }
        return ServedChallenger(name: package.name, model: compiled, basisPoints: package.basisPoints)
    }

    /// Version `version` compiled here already: the served model, an active model or an active
    /// model's challenger.
    private func compiledHeld(_ version: String) -> ScoringModel? {
        if let m = model, m.version == version { return m }
        return activeModels.lazy.flatMap { [$0.model, $0.challenger?.model].compactMap { $0 } }.first { $0.version == version }
    }

    /// Takes an assignment's active models (loading those new here). One that does not load is
    /// logged and not scored here (jobs refuse this worker's shards, whose scores of it would be
    /// missing, until it is fixed or deactivated): the assignment itself goes on.
    func follow(active packages: [ActiveModelPackage], challengers: [ChallengerPackage]) async {
        let held = activeModels.compactMap { m in m.challenger.map { "\(m.name) \($0.model.version) \($0.basisPoints)" } }
        let wanted = challengers.map { "\($0.name) \($0.model.version) \($0.basisPoints)" }
        if packages.map(\.name) == activeModels.map(\.name), packages.map(\.model.version) == activeModels.map(\.model.version),
           packages.map(\.segment) == activeModels.map(\.segmentText), Set(held) == Set(wanted) { return }
        var next: [ServedActiveModel] = []
        for p in packages {
            do {
                next += try await load(active: [p])
            } catch {
                logger.error("an active model does not load here: not scored by this worker (jobs refuse its shards until it is fixed or deactivated)",
                             metadata: ["name": "\(p.name)", "version": "\(p.model.version)", "error": "\(error)"])
            }
        }
        for i in next.indices {
            do {
                next[i].challenger = try await loadChallenger(challengers.first { $0.name == next[i].name }, of: next[i])
            } catch {
                // Its model answers alone here; jobs refuse this worker's shards (their shadow scores would be missing).
                next[i].challenger = nil
                logger.error("an active model's challenger does not load here: not served by this worker (jobs refuse its shards until it loads or ends)",
                             metadata: ["name": "\(next[i].name)", "error": "\(error)"])
            }
        }
        activeModels = next
        await switchOthers()
    }

    private func load(active packages: [ActiveModelPackage]) async throws -> [ServedActiveModel] {
        var out: [ServedActiveModel] = []
        for p in packages {
            if let held = activeModels.first(where: { $0.name == p.name && $0.model.version == p.model.version && $0.segmentText == p.segment }) {
                out.append(held)
                continue
            }
            do {
                let segment = p.segment.isEmpty ? nil : try ModelSegment.parse(p.segment, features: nil)
                let compiled: ScoringModel
                if let held = compiledHeld(p.model.version) {
                    compiled = held  // e.g. its challenger promoted
                } else {
                    compiled = try await compile(bytes: p.model.bytes.elements, source: p.model.source)
                    guard compiled.version == p.model.version else {
                        throw ClusterError("the bytes sent as \(p.model.version) are model \(compiled.version)")
                    }
                }
                let catalogue = Set(FeatureCatalogue.names)
                let layout = try await holdExtras(adding: (segment?.features ?? []).filter { !catalogue.contains($0) })
                let bound = try segment?.bind { name in
                    FeatureCatalogue.index(of: name) ?? layout.firstIndex(of: name).map { FeatureCatalogue.count + $0 }
                }
                out.append(ServedActiveModel(name: p.name, model: compiled, segmentText: p.segment, segment: bound))
            } catch {
                throw ClusterError("\(actorSystem.node.name) cannot load active model \(p.name) \(p.model.version): \(error)")
            }
        }
        return out
    }

    /// Every hosted shard scores the active models held now from its next job pass.
    private func switchOthers() async {
        let others = activeModels
        for actor in owned.values { await actor.whenLocal { $0.use(others: others) } }
        for actor in standing.values { await actor.whenLocal { $0.use(others: others) } }
    }
}
