import ClusterSystem

/// The one routing and failover policy of a live query, shared by the client (which routes with
/// its cached map) and the coordinator (which routes with its own): ask the shard's owner; when
/// the call fails, this says what to try next. Pure.
enum QueryRouting {
    /// Attempts per query after the first.
    static let maxRetries = 3

    enum Next: Equatable {
        /// The owner is gone and its loss not yet handled: its standby holds the same profiles;
        /// ask it, then look at the map again.
        case standbyThenMap
        /// The shard moved (its old owner released it, or refused the call): look at the map again
        /// and ask the owner it names.
        case map
        /// Nothing more to try: answer with the error (or "unavailable").
        case giveUp
    }

    /// What to do after attempt `attempt` (0 = the first) failed with `code`.
    static func next(after code: RemoteCallError.Code, attempt: Int) -> Next {
        guard attempt < maxRetries else { return .giveUp }
        switch code {
        case .unreachable, .nodeRestarted: return .standbyThenMap
        case .actorNotFound, .refused: return .map
        default: return .giveUp
        }
    }
}
