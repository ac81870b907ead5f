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

    /// A rebalance failed at `now`.
    mutating func failed(now: ContinuousClock.Instant) -> Action {
        failures += 1
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
        guard retries > 0 else { return .none }
        return .settled(retries: retries)
    }
}
