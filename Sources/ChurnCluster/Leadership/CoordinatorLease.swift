/// One coordinator's view of the coordinator lease kept in PostgreSQL (`churngrid_lease`): which
/// coordinator may place shards, run jobs and write, by term. Pure: events in, actions out, the
/// time passed in — `LeaseKeeper` does the SQL and the waiting, tests drive this without a
/// database.
///
/// The rules, after Kubernetes' leader election and Chubby's sequencers:
/// - A standby takes the lease over (term + 1, compare-and-set on the record it saw) only after it
///   has seen the *same* record — same term, same renewal count — for a whole lease period on its
///   own clock. No clock is compared across machines; a holder that renews in time is never
///   displaced, and after a database outage the standby's watch starts again, so the holder,
///   renewing every `renewInterval`, gets back in first.
/// - The holder counts its lease valid until the start of its last successful renewal plus
///   `validity` (a fraction of the lease period): its own view ends before any standby can have
///   seen the renewed record for a lease period. While it is not valid (the database is away) the
///   holder serves reads but gives no orders; a renewal that succeeds again (same term) makes it
///   valid again, one that finds another term steps it down.
/// - A process that finds the record in its own name takes it at once: its previous incarnation
///   has stopped (coordinators have distinct names; with CURVE a name is bound to a key).
/// - Every write of the holder is fenced by its term in the database (`ClusterDatabase`), so a
///   holder that was frozen past its lease cannot write after a takeover, whatever its clock says.
public struct CoordinatorLease: Sendable {
    /// The lease row as read from the database.
    public struct Record: Sendable, Equatable, CustomStringConvertible {
        public var term: Int64
        public var holder: String
        public var endpoint: String
        /// Renewals within the term: a record that stops changing belongs to a holder that stopped.
        public var renewals: Int64

        public init(term: Int64, holder: String, endpoint: String, renewals: Int64) {
            self.term = term
            self.holder = holder
            self.endpoint = endpoint
            self.renewals = renewals
        }

        public var description: String { "\(holder) (term \(term), \(endpoint))" }
    }

    public enum State: Sendable, Equatable {
        /// Watching the holder's record: `record` unchanged since `since` (nil: nothing seen yet, or
        /// the database was away).
        case standby(record: Record?, since: ContinuousClock.Instant?)
        /// Holding the lease for `term`, valid (on this clock) until `validUntil`.
        case leading(term: Int64, validUntil: ContinuousClock.Instant)
        /// Another coordinator took the lease: this one stops.
        case steppedDown(reason: String)
    }

    public enum Action: Sendable, Equatable {
        /// Nothing to do until the next tick.
        case wait
        /// Read the lease record.
        case observe
        /// Take the lease: compare-and-set on `replacing` (nil: create the first record).
        case acquire(replacing: Record?)
        /// This coordinator now leads in `term`: load the cluster and serve.
        case lead(term: Int64)
        /// Renew the lease of `term`.
        case renew(term: Int64)
        /// Stop: the lease belongs to someone else.
        case stepDown(reason: String)
    }

    /// This coordinator's name (the lease's holder when it leads).
    public let name: String
    /// How long a standby watches an unchanged record before it takes over.
    public let period: Duration
    public private(set) var state: State = .standby(record: nil, since: nil)

    public init(name: String, period: Duration) {
        self.name = name
        self.period = period
    }

    /// How often the holder renews and a standby looks.
    public var renewInterval: Duration { min(.seconds(1), period / 5) }

    /// How long after a renewal was sent the holder counts on its lease.
    public var validity: Duration { period * 4 / 5 }

    /// The term held, if any.
    public var term: Int64? {
        if case .leading(let term, _) = state { return term }
        return nil
    }

    /// Whether this coordinator may give orders and write at `now`.
    public func isValid(at now: ContinuousClock.Instant) -> Bool {
        if case .leading(_, let until) = state { return now < until }
        return false
    }

    /// Time passed: what to do now.
    public func tick(at now: ContinuousClock.Instant) -> Action {
        switch state {
        case .standby: return .observe
        case .leading(let term, _): return .renew(term: term)
        case .steppedDown: return .wait
        }
    }

    /// The record read at `now` (nil: there is none yet), by a read sent at `sentAt`. A read that
    /// took longer than `renewInterval` means the database was stalled meanwhile — the holder
    /// could not renew either — so, like an outage, it restarts the watch.
    public mutating func observed(_ record: Record?, sentAt: ContinuousClock.Instant? = nil, at now: ContinuousClock.Instant) -> Action {
        switch state {
        case .standby(let seen, let since):
            guard let record else { return .acquire(replacing: nil) }
            if record.holder == name { return .acquire(replacing: record) }
            if let sentAt, now - sentAt > renewInterval {
                state = .standby(record: record, since: now)
                return .wait
            }
            if record == seen, let since {
                return now - since >= period ? .acquire(replacing: record) : .wait
            }
            state = .standby(record: record, since: now)
            return .wait
        case .leading(let term, _):
            // Only a standby observes; a leader that sees another term has lost the lease.
            if let record, record.term != term { return stepDown("\(record) holds the lease now; this coordinator held term \(term)") }
            return .wait
        case .steppedDown(let reason):
            return .stepDown(reason: reason)
        }
    }

    /// Reading the record failed (the database is away): a standby starts its watch again.
    public mutating func observeFailed(at now: ContinuousClock.Instant) -> Action {
        if case .standby = state { state = .standby(record: nil, since: nil) }
        return .wait
    }

    /// The compare-and-set sent at `sentAt` took the lease: term `term`.
    public mutating func acquired(term: Int64, sentAt: ContinuousClock.Instant) -> Action {
        guard case .standby = state else { return .wait }
        state = .leading(term: term, validUntil: sentAt + validity)
        return .lead(term: term)
    }

    /// The compare-and-set lost (the record changed meanwhile): watch the new record.
    public mutating func acquireLost(current: Record?, at now: ContinuousClock.Instant) -> Action {
        guard case .standby = state else { return .wait }
        state = .standby(record: nil, since: nil)
        return observed(current, at: now)
    }

    /// The renewal sent at `sentAt` succeeded (the term is still ours).
    public mutating func renewed(sentAt: ContinuousClock.Instant) -> Action {
        guard case .leading(let term, let until) = state else { return .wait }
        state = .leading(term: term, validUntil: max(until, sentAt + validity))
        return .wait
    }

    /// The renewal could not reach the database: the lease stays valid until it runs out, then
    /// this coordinator waits (serving reads) for the database to come back.
    public mutating func renewFailed(at now: ContinuousClock.Instant) -> Action { .wait }

    /// The database says the term is no longer ours (a renewal matched nothing, or a fenced write
    /// found another term).
    public mutating func fenced(_ current: Record?, detail: String? = nil) -> Action {
        let held = term.map { "term \($0)" } ?? "no term"
        return stepDown(current.map { "\($0) holds the lease now; this coordinator held \(held)" }
                        ?? detail.map { "\($0) (this coordinator held \(held))" }
                        ?? "another coordinator's term holds the lease now; this coordinator held \(held)")
    }

    private mutating func stepDown(_ reason: String) -> Action {
        state = .steppedDown(reason: reason)
        return .stepDown(reason: reason)
    }
}
