/// When the coordinator may place shards for the first time (`coordinator --min-workers N`): a
/// pure state machine, events in, actions out; the coordinator actor only feeds it and obeys.
///
/// A cold start places nothing until N workers have registered, so every shard is loaded once,
/// on its final owner, instead of by the first worker and then handed over. The gate opens for
/// good (later losses do not close it) when
/// - N workers are registered (N ≤ 1 opens it at once: today's behaviour), or
/// - a registering worker already hosts shards: the cluster is serving (a restarted coordinator,
///   or a standby coordinator taking over the lease, adopts them) and waiting for N would only
///   hold placement up.
struct StartGate: Sendable, Equatable {
    /// What the gate tells the coordinator to do after an event.
    enum Action: Equatable, Sendable {
        /// Keep waiting; log `progress` (a worker came or went).
        case wait(progress: String)
        /// Place shards now (the gate has just opened, or was open).
        case place
        /// Nothing to do.
        case none
    }

    /// Why the gate opened.
    enum Opened: Equatable, Sendable {
        case minimumReached
        case workersAlreadyServing
        case notRequired
    }

    let minWorkers: Int
    private(set) var registered: Set<String> = []
    private(set) var opened: Opened?

    init(minWorkers: Int) {
        self.minWorkers = max(1, minWorkers)
        if self.minWorkers <= 1 { opened = .notRequired }
    }

    var isOpen: Bool { opened != nil }

    /// "waiting for 1 more worker (1 of 2)", or nil when open.
    var waiting: String? {
        guard opened == nil else { return nil }
        let more = minWorkers - registered.count
        return "waiting for \(more) more worker\(more == 1 ? "" : "s") (\(registered.count) of \(minWorkers))"
    }

    /// A worker registered (or registered again); `hostsShards`: it came with shards it still
    /// hosts (adopted by the coordinator).
    mutating func registered(_ name: String, hostsShards: Bool) -> Action {
        registered.insert(name)
        if opened != nil { return .place }
        if hostsShards {
            opened = .workersAlreadyServing
            return .place
        }
        if registered.count >= minWorkers {
            opened = .minimumReached
            return .place
        }
        return .wait(progress: waiting ?? "")
    }

    /// A worker left (lost, drained) before the gate opened: it no longer counts.
    mutating func left(_ name: String) -> Action {
        guard registered.remove(name) != nil else { return .none }
        guard opened == nil else { return .none }
        return .wait(progress: waiting ?? "")
    }

    /// The refusal for a query or a job while the gate is closed (nil when open).
    var refusal: String? {
        waiting.map { "the cluster is starting: \($0) before shards are placed (coordinator --min-workers \(minWorkers))" }
    }
}
