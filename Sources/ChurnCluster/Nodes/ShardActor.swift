import ClusterSystem
import Distributed
import Retention
import SubscriberProfiles
import TreeModel
import WireFormat

/// One subscriber shard on a worker: its profiles in memory and the cluster's model. Answers live
/// queries and rescores the whole shard for a job. Named `shard/N` on its worker.
public distributed actor ShardActor {
    public typealias ActorSystem = ClusterActorSystem

    let shard: Int
    private let loaded: LoadedShard
    private var model: ScoringModel
    /// Answers live queries for its share of subscribers (never jobs, campaigns or drift).
    private var challenger: ServedChallenger?
    /// The models active beside the served one: scored in jobs, over their segments.
    private var others: [ServedActiveModel]
    private let scoring: ScoringThreads

    init(actorSystem: ClusterActorSystem, shard: Int, store: LoadedShard, model: ScoringModel, challenger: ServedChallenger?,
         others: [ServedActiveModel], scoring: ScoringThreads) {
        self.actorSystem = actorSystem
        self.shard = shard
        loaded = store
        self.model = model
        self.challenger = challenger
        self.others = others
        self.scoring = scoring
    }

    /// The actor name of shard `shard` in `role`: `shard/N` for the owner, `standby/N` for the standby.
    public static func name(_ shard: Int, role: ShardRole = .owner) -> String {
        switch role {
        case .owner: "shard/\(shard)"
        case .standby: "standby/\(shard)"
        }
    }

    /// Shard `shard`'s actor in `role` on `node`.
    public static func resolve(shard: Int, role: ShardRole = .owner, on node: NodeID, using system: ClusterActorSystem) throws -> ShardActor {
        try resolve(id: ActorID(node: node, name: name(shard, role: role)), using: system)
    }

    /// Answers with `next` from now on (a deployment, or an assignment with another model): the
    /// switch is one step of this actor, so each answer comes wholly from one version. A job pass
    /// already running keeps the model it started with.
    func use(_ next: ScoringModel, challenger: ServedChallenger?) {
        model = next
        self.challenger = challenger
    }

    /// Scores `next` beside the served model in jobs from now on (one step: a job pass already
    /// running keeps the models it started with).
    func use(others next: [ServedActiveModel]) {
        others = next
    }

    /// The version that answers a live query for `subscriberID`.
    private func answering(_ subscriberID: Int64) -> ScoringModel {
        challenger?.model(for: subscriberID, champion: model) ?? model
    }

    /// One subscriber's score computed now from its in-memory profile.
    public distributed func lookup(_ subscriberID: Int64) -> ScoreLookup {
        guard let profile = loaded.store.profile(of: subscriberID) else {
            return .notFound(subscriberID: subscriberID, shard: shard)
        }
        let model = answering(subscriberID)
        let (p, band, reasons) = model.score(profile: profile)
        return .found(LiveScore(subscriberID: subscriberID, probability: p, riskBand: band.description, reasons: reasons,
                                modelVersion: model.version, shard: shard, node: actorSystem.node.name, epoch: 0))
    }

    /// The live answers of the models active beside the served one whose segment holds the
    /// subscriber (empty when none does, or the subscriber is not here).
    public distributed func lookupActive(_ subscriberID: Int64) -> [ActiveModelAnswer] {
        guard !others.isEmpty, let profile = loaded.store.profile(of: subscriberID) else { return [] }
        return others.compactMap { other in
            guard other.segment?.contains(profile: profile) ?? true else { return nil }
            let model = other.answering(subscriberID)  // its challenger within its share
            let (p, band, reasons) = model.score(profile: profile)
            return ActiveModelAnswer(name: other.name, modelVersion: model.version, probability: p, riskBand: band.description, reasons: reasons)
        }
    }

    /// One subscriber's score, explained the way the caller asks.
    public distributed func lookup(_ subscriberID: Int64, explain: ExplainMode) -> ScoreLookup {
        guard let profile = loaded.store.profile(of: subscriberID) else {
            return .notFound(subscriberID: subscriberID, shard: shard)
        }
        let model = answering(subscriberID)
        let (p, band, reasons) = model.score(profile: profile, explain: explain)
        return .found(LiveScore(subscriberID: subscriberID, probability: p, riskBand: band.description, reasons: reasons,
                                modelVersion: model.version, shard: shard, node: actorSystem.node.name, epoch: 0))
    }

    /// Scores every subscriber of the shard with top-3 reasons for everyone (path attribution),
    /// on one of the worker's scoring threads: the actor answers lookups meanwhile (the store is
    /// only read).
    public distributed func rescore() async throws -> ShardScores {
        try await rescore(.standard)
    }

    /// Scores every subscriber of the shard with the reasons `options` asks for. (A job with the
    /// standard options calls `rescore()`, which a worker one version older also answers.)
    public distributed func rescore(_ options: RescoreOptions) async throws -> ShardScores {
        // The challenger, if any, is scored in shadow in the same walk (it answers no job).
        // So are the models active beside it, each over its segment.
        let (model, shard, loaded, shadow, others) = (model, shard, loaded, challenger?.model, others)
        return try await scoring.run { try model.score(shard: shard, store: loaded.store, options: options, shadow: shadow, others: others) }
    }

    /// Drift for a job: a sample of the model's features (a new reference) or their counts in
    /// the reference's bins, on a scoring thread (lookups are answered meanwhile).
    public distributed func drift(_ request: DriftRequest) async throws -> ShardDrift {
        if !request.modelName.isEmpty {
            // An active model's drift, over its segment.
            guard let other = others.first(where: { $0.name == request.modelName }), other.model.version == request.modelVersion else {
                throw ClusterError("shard \(shard) does not score model \(request.modelName) \(request.modelVersion) beside the served one")
            }
            let (shard, loaded) = (shard, loaded)
            return try await scoring.run { try other.model.drift(shard: shard, store: loaded.store, request: request, segment: other.segment) }
        }
        guard request.modelVersion == model.version else {
            throw ClusterError("shard \(shard) serves model \(model.version); the drift request is for \(request.modelVersion)")
        }
        let (model, shard, loaded) = (model, shard, loaded)
        return try await scoring.run { try model.drift(shard: shard, store: loaded.store, request: request) }
    }

    /// A campaign run's first pass: the distribution of the shard's values if retained.
    public distributed func campaignValues(_ clv: CLVWire) async throws -> BulkArray<UInt8> {
        let settings = try clv.settings()
        let (model, loaded) = (model, loaded)
        return try await scoring.run { BulkArray(model.campaignValues(store: loaded.store, clv: settings).encodedBytes) }
    }

    /// A campaign run's second pass: the shard's subscribers with an offer worth making, ranked
    /// (on a scoring thread; lookups are answered meanwhile).
    public distributed func campaignCandidates(_ request: CampaignDecisionRequest) async throws -> ShardCandidates {
        let campaign: Campaign
        do {
            // Eligibility on the schema's own features reads the extra columns the coordinator
            // had this worker hold before the run.
            campaign = try Campaign.parse(request.campaign.elements, source: request.source,
                                          eligibilityFeatures: FeatureCatalogue.names + (loaded.store.extras?.names ?? []))
        } catch {
            throw ClusterError("\(error)")
        }
        let settings = try request.clv.settings()
        let tiers = ValueTiers(cuts: request.cuts)
        let (model, shard, loaded) = (model, shard, loaded)
        let nba = NextBestAction(campaign: campaign)
        return try await scoring.run { try model.campaignCandidates(shard: shard, store: loaded.store, decide: nba, clv: settings, tiers: tiers) }
    }
}

extension ShardActor: AccessControlled {
    /// Anyone who may read scores asks a shard directly; only the coordinator runs jobs on it.
    public static let access: [String: Set<Role>] = [
        "lookup(_:)": Role.readers,
        "lookup(_:explain:)": Role.readers,
        "lookupActive(_:)": Role.readers,
        "rescore()": [.coordinator],
        "rescore(_:)": [.coordinator],
        "campaignValues(_:)": [.coordinator],
        "drift(_:)": [.coordinator],
        "campaignCandidates(_:)": [.coordinator],
    ]
}

/// A shard's store handed from the loading thread to its actor, and from the actor to a scoring
/// thread.
struct LoadedShard: @unchecked Sendable {
    // @unchecked: a store's rows (ids, index, chunks) never change after loading; the loading
    // thread hands it over, and from then on only the worker's event thread (`EventIngest`) writes
    // to it, and only feature values of existing rows, one aligned Float at a time. The shard
    // actor and the scoring threads read it meanwhile: a lookup or a job reading a subscriber
    // while an event updates it may see some features from before the event and others from
    // after (the event's own rescoring, and every read after it, see the whole update).
    let store: ProfileStore
    /// The `subscriber_profiles` generation the profiles descend from (0: unknown, e.g. streamed
    /// from a peer one version older): a snapshot of them is written only while it is current.
    var generation: Int64 = 0
    /// For profiles loaded from `subscriber_profiles`: the `as_of` of the import they come from,
    /// read with them (no import committed between; nil: none on record, or not loaded from the
    /// table). The copy replays the events received after it.
    var asOf: Int64? = nil
    /// Its subscribers whose rows are older than `asOf` (a later import did not carry them), with
    /// their own rows' `as_of`: the events received after that are replayed onto them too.
    var older: [Int64: Int64] = [:]
}
