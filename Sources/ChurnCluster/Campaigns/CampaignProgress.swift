import Synchronization

/// Where the campaign run in progress is, for `campaign run`'s progress lines
/// (`CoordinatorActor.campaignRunProgress()`): its stage and, in the passes over every shard, how
/// many shards have answered. Written by the run, read by any caller meanwhile.
final class CampaignProgress: Sendable {
    enum Stage: Sendable, Equatable {
        case idle
        /// A pass over every shard: the value distribution, then the candidates.
        case pass(String)
        /// The contact policy, the control group and the fill, over this many candidates.
        case fill(candidates: Int)
        /// The run, its actions and contacts written in one transaction.
        case writing(actions: Int)
    }

    private let state = Mutex<(stage: Stage, shards: Int)>((.idle, 0))
    private let answered = Atomic<Int>(0)

    func begin(_ stage: Stage, shards: Int = 0) {
        answered.store(0, ordering: .relaxed)  // first: never the last pass's count under this stage
        state.withLock { $0 = (stage, shards) }
    }

    func shardAnswered() { answered.add(1, ordering: .relaxed) }

    /// One line for the caller; "" when no run is deciding.
    var line: String {
        let (stage, shards) = state.withLock { ($0.stage, $0.shards) }
        switch stage {
        case .idle: return ""
        case .pass(let what): return "\(what): \(min(answered.load(ordering: .relaxed), shards)) of \(shards) shards answered"
        case .fill(let n): return "contact policy, control group and fill over \(n) candidates"
        case .writing(let n): return "writing the run: \(n) actions and their contacts"
        }
    }
}
