import WireFormat

/// When the coordinator tries again to place shards after a placement failed (docs/cluster.md,
/// "When placing fails"): a pure state machine, events in, actions out, clock injected; the
/// coordinator actor only feeds it and obeys.
///
/// A rebalance fails when the workers that should take shards cannot load them — PostgreSQL is
/// away while a lost worker's shards (without a standby) must be reloaded, or a worker is
/// unreachable half-way through a move. Nothing else would move those shards again until the next
/// membership change, so they would stay without an owner after the database came back. Instead
/// the coordinator tries again after a delay that doubles from `first` up to `cap` (so a long
/// outage costs one failed attempt per `cap`), until a rebalance succeeds; then the count starts
/// over.
struct PlacementRetry: Sendable, Equatable {
    /// What the coordinator does after an event.
    enum Action: Equatable, Sendable {
        /// Try again at `at` (no retry is scheduled yet).
        case schedule(at: ContinuousClock.Instant, attempt: Int)
        /// A retry is already scheduled (at the earlier of the two times): nothing to do.
        case alreadyScheduled
        /// Placement succeeded after `retries` failed attempts (0: it never failed): say so once.
        case settled(retries: Int)
        /// Nothing to do.
        case none
    }

    let first: Duration
    let cap: Duration
    /// Failed attempts since the last success.
    private(set) var failures = 0
    /// When the scheduled retry is due (nil: none is).
    private(set) var due: ContinuousClock.Instant?
    /// Every retry run since the coordinator started (a metric).
    private(set) var retriesRun = 0
    /// Why the last attempt failed (nil: none failed since the last success).
    private(set) var lastFailure: String?

    /// The longest failure kept for the status (an error may quote a whole server message).
    static let failureLimit = 500

    init(first: Duration = .seconds(1), cap: Duration = .seconds(30)) {
        self.first = max(first, .milliseconds(1))
        self.cap = max(cap, self.first)
    }

    /// The delay before retry number `attempt` (1-based): `first` doubled each time, at most `cap`.
    func delay(attempt: Int) -> Duration {
        var d = first
        for _ in 1..<max(1, min(attempt, 32)) {
            d = d * 2
            if d >= cap { return cap }
        }
        return min(d, cap)
    }

    /// A rebalance failed at `now`, for `reason`.
    mutating func failed(now: ContinuousClock.Instant, reason: String = "") -> Action {
        failures += 1
        lastFailure = reason.count > Self.failureLimit ? String(reason.prefix(Self.failureLimit)) + "…" : reason
        if due != nil { return .alreadyScheduled }
        let at = now + delay(attempt: failures)
        due = at
        return .schedule(at: at, attempt: failures)
    }

    /// The scheduled retry is running (its timer fired and it holds the membership lock): a
    /// failure from here on schedules the next one.
    mutating func retrying() {
        due = nil
        retriesRun += 1
    }

    /// A rebalance succeeded (nothing left to move, or every move done): a scheduled retry is
    /// no longer due (the coordinator cancels its timer).
    mutating func succeeded() -> Action {
        let retries = failures
        failures = 0
        due = nil
        lastFailure = nil
        guard retries > 0 else { return .none }
        return .settled(retries: retries)
    }

    /// What `churngrid status` shows while placing shards fails (nil: the last placement
    /// succeeded): the failed attempts, the last one's reason, and when the next try is due
    /// (nil: it is running now).
    func pending(now: ContinuousClock.Instant) -> PlacementPending? {
        guard failures > 0 else { return nil }
        let next = due.map { max(0, ($0 - now) / .seconds(1)) }
        return PlacementPending(failures: failures, lastError: lastFailure ?? "", retryInSeconds: next)
    }
}

/// Placing shards failed and is tried again (`ClusterStatus.placement`): an operator sees it in
/// `churngrid status` rather than only in the coordinator's log, since the cluster otherwise
/// looks settled (nothing moving) while shards wait for an owner or a joined worker for its share.
public struct PlacementPending: Sendable, WireCodable, Codable, Equatable {
    /// Failed attempts since the last success.
    public var failures: Int
    /// Why the last one failed.
    public var lastError: String
    /// Seconds until the next try (nil: it is running now).
    public var retryInSeconds: Double?

    public init(failures: Int, lastError: String, retryInSeconds: Double?) {
        self.failures = failures
        self.lastError = lastError
        self.retryInSeconds = retryInSeconds
    }

    public func encode(to w: inout WireWriter) { w.write(failures); w.write(lastError); w.write(retryInSeconds) }
    public init(from r: inout WireReader) throws(WireError) { failures = try r.read(); lastError = try r.read(); retryInSeconds = try r.read() }

    /// One line for `churngrid status`.
    public var description: String {
        "placing shards failed \(failures) time\(failures == 1 ? "" : "s") (last: \(lastError)); "
            + (retryInSeconds.map { String(format: "next try in %.0f s", $0) } ?? "trying again now")
    }
}
