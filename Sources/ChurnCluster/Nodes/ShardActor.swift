import ClusterSystem
import Distributed
import SubscriberProfiles
import TreeModel
import WireFormat

/// One subscriber shard on a worker: its profiles in memory and the cluster's model. Answers live
/// queries and rescores the whole shard for a job. Named `shard/N` on its worker.
public distributed actor ShardActor {
    public typealias ActorSystem = ClusterActorSystem

    let shard: Int
    private let store: ProfileStore
    private let model: ScoringModel
    private let threads: Int

    init(actorSystem: ClusterActorSystem, shard: Int, store: LoadedShard, model: ScoringModel, threads: Int) {
        self.actorSystem = actorSystem
        self.shard = shard
        self.store = store.store
        self.model = model
        self.threads = threads
    }

    /// The actor name of shard `shard`.
    public static func name(_ shard: Int) -> String { "shard/\(shard)" }

    /// One subscriber's score computed now from its in-memory profile.
    public distributed func lookup(_ subscriberID: Int64) -> ScoreLookup {
        guard let profile = store.profile(of: subscriberID) else {
            return .notFound(subscriberID: subscriberID, shard: shard)
        }
        let (p, band, reasons) = model.score(profile: profile)
        return .found(LiveScore(subscriberID: subscriberID, probability: p, riskBand: band.description, reasons: reasons,
                                modelVersion: model.version, shard: shard, node: actorSystem.node.name, epoch: 0))
    }

    /// Scores every subscriber of the shard (all the node's cores) with top-3 reasons.
    public distributed func rescore() throws -> ShardScores {
        try model.score(shard: shard, store: store, threads: threads)
    }
}

/// A shard's store handed from the loading thread to its actor.
struct LoadedShard: @unchecked Sendable {
    // @unchecked: ownership moves with the value; after the hand-off only the shard actor uses it.
    let store: ProfileStore
}
