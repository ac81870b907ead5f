import Logging
import Postgres
import Synchronization

/// Drives `CoordinatorLease` against PostgreSQL: waits as a standby until the lease is free,
/// renews it while leading, and tells the coordinator whether it may give orders. The decisions
/// are the state machine's; this only does the SQL, the sleeping and the logging.
public final class LeaseKeeper: Sendable {
    private let machine: Mutex<CoordinatorLease>
    private let database: ClusterDatabase
    private let endpoint: String
    private let logger: Logger
    private let steppedDown: AsyncStream<String>
    private let stepDown: AsyncStream<String>.Continuation

    init(name: String, endpoint: String, period: Duration, database: ClusterDatabase, logger: Logger) {
        machine = Mutex(CoordinatorLease(name: name, period: period))
        self.database = database
        self.endpoint = endpoint
        self.logger = logger
        (steppedDown, stepDown) = AsyncStream.makeStream(of: String.self)
    }

    /// The lease period.
    public var period: Duration { machine.withLock { $0.period } }

    /// The term held (nil while standing by).
    public var term: Int64? { machine.withLock { $0.term } }

    /// Whether this coordinator may give orders now (it leads and its last renewal is recent).
    public var isValid: Bool {
        let now = ContinuousClock.now
        return machine.withLock { $0.isValid(at: now) }
    }

    /// Waits as a standby until this coordinator takes the lease (cancellation ends the wait).
    /// - Returns: the term taken.
    func acquire() async throws -> Int64 {
        var announced: CoordinatorLease.Record?
        var databaseAway = false
        while true {
            try Task.checkCancellation()
            let now = ContinuousClock.now
            var action = machine.withLock { $0.tick(at: now) }
            while true {
                switch action {
                case .observe:
                    let sentAt = ContinuousClock.now
                    do {
                        let record = try await database.leaseRecord()
                        if databaseAway { logger.notice("PostgreSQL is back; watching the lease again") }
                        databaseAway = false
                        if let record, record != announced, record.holder != machine.withLock({ $0.name }), record.term != announced?.term {
                            announced = record
                            logger.notice("standing by: another coordinator holds the lease; taking over if it stops renewing it",
                                          metadata: ["holder": "\(record)", "period": "\(period)"])
                        }
                        let at = ContinuousClock.now
                        action = machine.withLock { $0.observed(record, sentAt: sentAt, at: at) }
                    } catch {
                        if !databaseAway { logger.warning("cannot read the coordinator lease; waiting for PostgreSQL", metadata: ["error": "\(error)"]) }
                        databaseAway = true
                        let at = ContinuousClock.now
                        action = machine.withLock { $0.observeFailed(at: at) }
                    }
                    continue
                case .acquire(let replacing):
                    let sentAt = ContinuousClock.now
                    do {
                        let (term, current) = try await database.acquireLease(replacing: replacing, holder: machine.withLock { $0.name }, endpoint: endpoint)
                        let at = ContinuousClock.now
                        if let term {
                            action = machine.withLock { $0.acquired(term: term, sentAt: sentAt) }
                            logger.notice("took the coordinator lease", metadata: ["term": "\(term)", "replacing": "\(replacing.map { "\($0)" } ?? "nobody")"])
                        } else {
                            action = machine.withLock { $0.acquireLost(current: current, at: at) }
                        }
                    } catch {
                        let at = ContinuousClock.now
                        action = machine.withLock { $0.observeFailed(at: at) }
                    }
                    continue
                case .lead(let term):
                    database.lead(term: term)
                    return term
                case .stepDown(let reason):
                    throw ClusterError(reason)
                case .wait, .renew:
                    break
                }
                break
            }
            try await Task.sleep(for: machine.withLock { $0.renewInterval })
        }
    }

    /// Renews the lease until another coordinator has it (or the task is cancelled).
    /// - Returns: why this coordinator stepped down.
    func keep() async -> String? {
        let renewals = Task { [weak self] in
            var away = false, lapsed = false
            while !Task.isCancelled {
                guard let self else { return }
                try? await Task.sleep(for: self.machine.withLock { $0.renewInterval })
                let sentAt = ContinuousClock.now
                guard case .renew(let term) = self.machine.withLock({ $0.tick(at: sentAt) }) else { return }
                do {
                    let outcome = try await self.database.renewLease(term: term)
                    if case .some(let current) = outcome {
                        let action = self.machine.withLock { $0.fenced(current) }
                        if case .stepDown(let reason) = action { self.stepDown.yield(reason) }
                        return
                    }
                    _ = self.machine.withLock { $0.renewed(sentAt: sentAt) }
                    if away { self.logger.notice("PostgreSQL is back; the lease is renewed in the same term", metadata: ["term": "\(term)"]) }
                    away = false
                    lapsed = false
                } catch {
                    let now = ContinuousClock.now
                    _ = self.machine.withLock { $0.renewFailed(at: now) }
                    if !away { self.logger.warning("cannot renew the coordinator lease; serving reads, and orders wait once it runs out", metadata: ["error": "\(error)"]) }
                    away = true
                    if !lapsed, !self.machine.withLock({ $0.isValid(at: now) }) {
                        lapsed = true
                        self.logger.warning("the coordinator lease ran out while PostgreSQL is away: no orders to workers until it is renewed", metadata: ["term": "\(term)"])
                    }
                }
            }
        }
        defer { renewals.cancel() }
        for await reason in steppedDown { return reason }
        return nil
    }

    /// Returns once this coordinator may give orders (its lease is valid); waits while it has run
    /// out (PostgreSQL away).
    /// - Throws: `LeaseLost` once another coordinator has taken over.
    func held() async throws {
        while true {
            let now = ContinuousClock.now
            let (valid, state) = machine.withLock { ($0.isValid(at: now), $0.state) }
            if valid { return }
            if case .steppedDown = state { throw LeaseLost(term: nil, current: nil) }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// A fenced write found the term gone: step down.
    func lost(_ error: LeaseLost) {
        let action = machine.withLock { $0.fenced(error.current, detail: "\(error)") }
        if case .stepDown(let reason) = action { stepDown.yield(reason) }
    }

    /// Ends `keep` (the coordinator is stopping).
    func stop() { stepDown.finish() }
}
