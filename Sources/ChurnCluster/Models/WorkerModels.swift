import ClusterSystem
import Distributed
import SubscriberEvents
import SubscriberProfiles

extension WorkerActor {
    /// Loads (parses and compiles) a model ahead of a deployment's switch, so the switch itself
    /// is quick on every worker (coordinator only).
    /// - Returns: the model's version.
    public distributed func prepareModel(_ package: ModelPackage, term: Int64) async throws -> String {
        try obey(term: term, epoch: nil, "prepareModel")
        if model?.version == package.version || preparedModel?.version == package.version { return package.version }
        let bytes = package.bytes.elements, source = package.source
        let next: ScoringModel
        do {
            next = try await loader.run { try ScoringModel(bytes: bytes, source: source) }
        } catch {
            throw ClusterError("\(actorSystem.node.name) cannot load model \(package.version): \(error)")
        }
        guard next.version == package.version else {
            throw ClusterError("\(actorSystem.node.name) loaded model \(next.version) from bytes sent as \(package.version)")
        }
        preparedModel = next
        return next.version
    }

    /// Switches every shard held here (owner and standby) and the event path to the prepared
    /// model `version` (coordinator only). Each shard switches in one step between two answers.
    public distributed func switchModel(version: String, term: Int64) async throws {
        try obey(term: term, epoch: nil, "switchModel")
        if model?.version == version { return }
        guard let next = preparedModel, next.version == version else {
            throw ClusterError("\(actorSystem.node.name) has not loaded model \(version): prepare it first")
        }
        await switchShards(to: next)
        model = next
        preparedModel = nil
        try await events.replaceModel(next)
        eventsModel = next.version
        logger.notice("model deployed", metadata: ["model": "\(version)", "shards": "\(owned.count)", "standbys": "\(standing.count)"])
    }

    /// Every hosted shard answers with `next` from now on.
    func switchShards(to next: ScoringModel) async {
        for actor in owned.values { await actor.whenLocal { $0.use(next) } }
        for actor in standing.values { await actor.whenLocal { $0.use(next) } }
    }
}

extension EventIngest {
    /// Events are rescored with `model` from the next group on (rules and shard count kept).
    func replaceModel(_ model: ScoringModel) async throws {
        let confined = confined
        try await thread.run { confined.configure(model: model, rules: confined.applier?.rules, shardCount: confined.shardCount) }
    }
}
