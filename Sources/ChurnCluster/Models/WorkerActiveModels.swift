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
        try obey(term: term, epoch: nil, "serveActive")
        guard packages.count <= maxActiveModels, Set(packages.map(\.name)).count == packages.count else {
            throw ClusterError("serveActive: at most \(maxActiveModels) active models, each named once")
        }
        let next = try await load(active: packages)
        activeModels = next
        await switchOthers()
        logger.notice("active models served", metadata: ["models": "\(next.map { "\($0.name)=\($0.model.version)" })"])
        return next.map(\.model.version)
    }

    /// Takes an assignment's active models (loading those new here). One that does not load is
    /// logged and not scored here (jobs refuse this worker's shards, whose scores of it would be
    /// missing, until it is fixed or deactivated): the assignment itself goes on.
    func follow(active packages: [ActiveModelPackage]) async {
        if packages.map(\.name) == activeModels.map(\.name), packages.map(\.model.version) == activeModels.map(\.model.version),
           packages.map(\.segment) == activeModels.map(\.segmentText) { return }
        var next: [ServedActiveModel] = []
        for p in packages {
            do {
                next += try await load(active: [p])
            } catch {
                logger.error("an active model does not load here: not scored by this worker (jobs refuse its shards until it is fixed or deactivated)",
                             metadata: ["name": "\(p.name)", "version": "\(p.model.version)", "error": "\(error)"])
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
                if let m = model, m.version == p.model.version {
                    compiled = m
                } else if let held = activeModels.first(where: { $0.model.version == p.model.version }) {
                    compiled = held.model
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
