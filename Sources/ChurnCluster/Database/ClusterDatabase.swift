import Foundation
import Synchronization
import Logging
import Metrics
import Postgres
import Retention
import ProfileDatabase
import SubscriberProfiles

/// The coordinator's state in PostgreSQL — cluster settings, shard map, models, jobs, scores.
/// Each connection is used only from a thread of its own (libpq blocks); the first serves
/// everything, the others only write job scores, so several shards are written at once. The
/// lease has a connection of its own: its renewals never wait behind a long statement (a
/// publication's index build over a large base, a slow COPY), or the lease would run out under
/// a leader that is alive and well, and a standby take over mid-job.
final class ClusterDatabase: @unchecked Sendable {
    // @unchecked: each connection is only used inside its own thread's `run`, which serialises it.
    private let connections: [Slot]
    /// Nil for a handle that never holds the lease (the HTTP API's store): the lease calls then
    /// use the first connection.
    private let leaseSlot: Slot?
    let url: String
    private let logger: Logger

    /// One connection and the thread that uses it. A connection the server dropped (a PostgreSQL
    /// restart, a failover) is opened again on its next use, so the coordinator recovers by itself.
    final class Slot: @unchecked Sendable {
        // @unchecked: `connection` is replaced only on `thread`, under `lock`; the watchdog reads it
        // under `lock` too.
        var connection: PostgresConnection
        let thread: BlockingThread
        /// Reconnections made (tests and logs: a fault test asserts the fault happened).
        var reconnects = 0
        /// When the next reconnection may be tried (only touched on `thread`).
        var backoff = ReconnectBackoff()
        /// The call running on `thread`, for the watchdog (nil when idle).
        private var running: UInt64?
        private var nextCall: UInt64 = 0
        private let lock = NSLock()

        init(connection: PostgresConnection, thread: BlockingThread) {
            self.connection = connection
            self.thread = thread
        }

        func begin() -> UInt64 {
            lock.withLock {
                nextCall += 1
                running = nextCall
                return nextCall
            }
        }

        func end() { lock.withLock { running = nil } }

        func replace(_ connection: PostgresConnection) { lock.withLock { self.connection = connection } }

        /// Breaks off call `call` if it is still running (the server stopped answering).
        func interrupt(_ call: UInt64) -> Bool {
            lock.withLock {
                guard running == call else { return false }
                connection.interrupt()
                return true
            }
        }
    }

    /// How long one call may wait for the server before its connection is cut (a stalled or
    /// frozen server); the call then fails as unavailable and is retried after a reconnect.
    let statementTimeout: Duration

    /// libpq's resilient defaults, the coordinator's name in `pg_stat_activity`, and a bound on a
    /// transaction left idle (a coordinator frozen inside one would otherwise hold its locks, and a
    /// standby's takeover would wait for them).
    static let connectionDefaults = PostgresConnection.resilientDefaults + [
        ("application_name", "churngrid-coordinator"),
        ("options", "-c idle_in_transaction_session_timeout=10000"),
    ]

    /// The term this coordinator holds the lease for (nil: none — it writes nothing).
    private let heldTerm = Mutex<Int64?>(nil)

    /// Every fenced write (map, job state, scores, publish) is made in this term from now on.
    func lead(term: Int64) { heldTerm.withLock { $0 = term } }

    var term: Int64? { heldTerm.withLock { $0 } }

    /// Whether the server answers, from every call's outcome (`churngrid status`).
    private let health = Mutex(DatabaseHealth())

    /// The server as the status shows it; `leaseValid`: whether this coordinator may give orders.
    func status(leaseValid: Bool) -> DatabaseStatus {
        let now = ContinuousClock.now
        return health.withLock { $0.report(now: now, leaseValid: leaseValid) }
    }

    /// Records a call's outcome: only a server that could not be reached counts as a failure.
    private func record(_ error: (any Error)?) {
        let now = ContinuousClock.now
        guard let error else {
            health.withLock { $0.answered(at: now) }
            return
        }
        // Another error (the caller's own check, a cancellation) says nothing about the server.
        guard let error = error as? PostgresError else { return }
        // A server that answers but cannot take writes counts as away too: read-only (a connection
        // that landed on a standby after a failover), out of resources (disk full, too many
        // connections), or a system error.
        let cannotWrite = error.sqlState.map { $0 == "25006" || $0.hasPrefix("53") || $0.hasPrefix("58") } ?? false
        if error.isUnavailable || cannotWrite {
            let text = "\(error)"
            health.withLock { $0.failed(at: now, error: text) }
        } else {
            health.withLock { $0.answered(at: now) }  // an SQL error is an answer
        }
    }

    /// Connections opened again after the server dropped them, over all slots.
    var reconnects: Int { connections.reduce(0) { $0 + $1.reconnects } }

    /// Connections that write scores (the first included).
    var writers: Int { connections.count }

    /// Connects `connections` times and brings the schema up to date.
    /// - Parameter lease: open the lease's own connection (a coordinator's handle; not the HTTP
    ///   API's, which never holds the lease).
    static func open(url: String, connections: Int = 2, statementTimeout: Duration = .seconds(300), lease: Bool = true,
                     logger: Logger) async throws -> ClusterDatabase {
        var opened: [Slot] = []
        for i in 0..<max(1, connections) {
            // Below normal priority: encoding COPY rows is bulk work; the coordinator's query
            // routing goes first.
            let thread = BlockingThread(name: "cg-db-\(i)", niceness: 5)
            let c = try await thread.run { () throws -> UncheckedConnection in
                let c = try PostgresConnection(url: url, defaults: Self.connectionDefaults)
                if i == 0 { _ = try ProfileSchema.migrate(c) }
                return UncheckedConnection(connection: c)
            }
            opened.append(Slot(connection: c.connection, thread: thread))
        }
        var leaseSlot: Slot?
        if lease {
            // Not niced: a renewal is small and must not wait.
            let thread = BlockingThread(name: "cg-db-lease")
            let c = try await thread.run { UncheckedConnection(connection: try PostgresConnection(url: url, defaults: Self.connectionDefaults)) }
            leaseSlot = Slot(connection: c.connection, thread: thread)
        }
        return ClusterDatabase(connections: opened, lease: leaseSlot, url: url, statementTimeout: statementTimeout, logger: logger)
    }

    private init(connections: [Slot], lease: Slot?, url: String, statementTimeout: Duration, logger: Logger) {
        self.logger = logger
        self.statementTimeout = statementTimeout
        self.connections = connections
        self.leaseSlot = lease
        self.url = url
    }

    func close() {
        for c in connections { c.thread.stop() }
        leaseSlot?.thread.stop()
    }

    func run<T: Sendable>(on index: Int = 0, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await run(slot: connections[index % connections.count], body)
    }

    /// `run` on the lease's own connection.
    private func runLease<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        try await run(slot: leaseSlot ?? connections[0], body)
    }

    private func run<T: Sendable>(slot: Slot, _ body: @escaping @Sendable (PostgresConnection) throws -> T) async throws -> T {
        let url = url, logger = logger, timeout = statementTimeout
        let call = Mutex<UInt64?>(nil)
        // The watchdog: a call still waiting for the server after the timeout has its socket cut.
        let watchdog = Task {
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled, let id = call.withLock({ $0 }), slot.interrupt(id) else { return }
            logger.warning("a PostgreSQL call waited longer than the statement timeout; its connection was cut", metadata: ["timeout": "\(timeout)"])
        }
        defer { watchdog.cancel() }
        do {
            let result = try await slot.thread.run {
                let id = slot.begin()
                call.withLock { $0 = id }
                defer { slot.end() }
                if !slot.connection.isOpen {
                    // Throws the connection error (naming the server, never the password) while the
                    // server is still away; a later call tries again, after the backoff.
                    if let notBefore = slot.backoff.notBefore, ContinuousClock.now < notBefore {
                        let wait = notBefore - ContinuousClock.now
                        usleep(UInt32(clamping: wait.components.seconds * 1_000_000 + wait.components.attoseconds / 1_000_000_000_000))
                    }
                    let now = ContinuousClock.now
                    do {
                        slot.replace(try PostgresConnection(url: url, defaults: Self.connectionDefaults))
                    } catch {
                        slot.backoff.failed(at: now, jitter: Double.random(in: 0...1))
                        throw error
                    }
                    slot.backoff.succeeded()
                    slot.reconnects += 1
                    logger.notice("reconnected to PostgreSQL", metadata: ["server": "\(slot.connection.endpoint)", "reconnects": "\(slot.reconnects)"])
                }
                return try body(slot.connection)
            }
            record(nil)
            return result
        } catch {
            record(error)
            throw error
        }
    }

    // MARK: Cluster and shard map

    /// The cluster's shard count (stored on first start and immutable after) and its shard map.
    func loadCluster(requestedShardCount: Int) async throws -> ShardMap {
        try await run { c in
            try c.query("INSERT INTO churngrid_cluster (shard_count) VALUES ($1) ON CONFLICT (singleton) DO NOTHING", [String(requestedShardCount)])
            guard let row = try c.query("SELECT shard_count, epoch FROM churngrid_cluster").rows.first,
                  let count = row[0].flatMap({ Int($0) }), (1...ShardMap.maxShardCount).contains(count),
                  let epoch = row[1].flatMap({ Int64($0) }), (0...(Int64.max / 2)).contains(epoch) else {
                // (An epoch near Int64.max could not advance: a value written by hand, refused here.)
                throw ClusterError("churngrid_cluster holds no valid shard count and epoch")
            }
            var owners = [String?](repeating: nil, count: count), standbys = owners
            for r in try c.query("SELECT shard, node, standby FROM churngrid_shard_map WHERE shard >= 0 AND shard < $1", [String(count)]).rows {
                guard let shard = r[0].flatMap({ Int($0) }), owners.indices.contains(shard) else { continue }
                owners[shard] = r[1]
                standbys[shard] = r[2]
            }
            return ShardMap(shardCount: count, epoch: epoch, owners: owners, standbys: standbys)
        }
    }

    /// Stores the shard map and its epoch in one transaction.
    func save(_ map: ShardMap) async throws {
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                try c.query("UPDATE churngrid_cluster SET epoch = $1", [String(map.epoch)])
                try c.query("""
                    INSERT INTO churngrid_shard_map (shard, node, standby, epoch)
                    SELECT s - 1, (($1)::text[])[s], (($4)::text[])[s], $2 FROM generate_series(1, $3) AS s
                    ON CONFLICT (shard) DO UPDATE SET node = EXCLUDED.node, standby = EXCLUDED.standby, epoch = EXCLUDED.epoch
                    """, [Self.textArray(map.owners), String(map.epoch), String(map.shardCount), Self.textArray(map.standbys)])
            }
        }
    }

    /// The number of subscriber profiles, estimated from the planner's statistics (counted when
    /// there are none yet).
    func estimatedSubscribers() async throws -> Int {
        try await run { c in
            let estimate = Int(try c.query("SELECT coalesce((SELECT reltuples::bigint FROM pg_class WHERE relname = 'subscriber_profiles' AND relkind = 'r'), 0)").scalar ?? "0") ?? 0
            if estimate > 0 { return estimate }
            return Int(try c.query("SELECT count(*) FROM subscriber_profiles").scalar ?? "0") ?? 0
        }
    }

    // MARK: Audit

    /// Records an action in `churngrid_audit_log`.
    func audit(actor: String, roles: String, credential: String, action: String, target: String, outcome: String) async throws {
        try await run { c in
            _ = try c.query("INSERT INTO churngrid_audit_log (actor, roles, credential, action, target, outcome) VALUES ($1, $2, $3, $4, $5, $6)",
                            [actor, roles, credential, action, target, outcome])
        }
    }

    // MARK: Jobs

    /// Records the model (once per version).
    func register(model: ScoringModel) async throws {
        let version = model.version, source = model.source, features = Self.textArray(model.featureNames)
        try await run { c in
            _ = try c.query("INSERT INTO scoring_models (version, source, features) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
                        [version, source, features])
        }
    }

    /// When jobs last completed and failed, and when the cluster was made (its first lead: now
    /// when this is it).
    func jobTimes() async throws -> JobTimes {
        try await run { c in
            let row = try c.query("""
                SELECT (SELECT extract(epoch FROM max(finished_at))::float8 FROM scoring_jobs WHERE state = 'completed'),
                       (SELECT extract(epoch FROM max(finished_at))::float8 FROM scoring_jobs WHERE state = 'failed'),
                       extract(epoch FROM coalesce((SELECT created_at FROM churngrid_cluster), now()))::float8
                """).rows.first
            func value(_ i: Int) -> Double? { row.flatMap { i < $0.count ? $0[i] : nil }.flatMap(Double.init) }
            return JobTimes(lastCompleted: value(0), lastFailed: value(1), created: value(2))
        }
    }

    /// Jobs left running by a previous coordinator (or an earlier term): marked failed; their
    /// partial scores are dropped by `dropFailedPartitions`.
    func failInterruptedJobs(reason: String) async throws -> [Int64] {
        let term = term
        let ids = try await run { c in
            try Self.transaction(c, fencedBy: term) {
                let ids = try c.query("""
                    UPDATE scoring_jobs SET state = 'failed', finished_at = now(), error = $1
                    WHERE state = 'running' AND (term IS NULL OR term < $2) RETURNING id
                    """, [reason, String(term ?? 0)]).rows.compactMap { $0[0].flatMap(Int64.init) }
                return ids
            }
        }
        await dropFailedPartitions()
        return ids
    }

    /// Fails the jobs of this coordinator's term still recorded running but not run by it (`except`:
    /// those it runs or still has to record failed): a start whose COMMIT was cut off after it was
    /// sent, which the server committed while the coordinator was told it failed. Called before a
    /// job starts (none runs then); their partitions are dropped.
    func failOrphanedJobs(except: [Int64]) async throws -> [Int64] {
        let term = term
        let ids = try await run { c in
            try Self.transaction(c, fencedBy: term) {
                try c.query("""
                    UPDATE scoring_jobs SET state = 'failed', finished_at = now(),
                        error = 'its start was cut off (the coordinator was told it failed): never run'
                    WHERE state = 'running' AND term = $1 AND NOT (id = ANY($2::bigint[])) RETURNING id
                    """, [String(term ?? 0), EventLog.intArray(except)]).rows.compactMap { $0[0].flatMap(Int64.init) }
            }
        }
        if !ids.isEmpty { await dropFailedPartitions() }
        return ids
    }

    /// Drops the partitions of failed jobs that still exist. Dropping a partition locks the
    /// scores' parent table, so each drop waits at most 2 s for its lock (a frozen writer of an
    /// earlier term may still hold one) and is otherwise left for the next call: a failed job's
    /// rows are never published, so leaving them a while harms nothing.
    func dropFailedPartitions() async {
        _ = try? await run { c in
            let ids = try c.query("""
                SELECT id FROM scoring_jobs WHERE state = 'failed' AND to_regclass('churn_scores_job_' || id) IS NOT NULL
                """).rows.compactMap { $0[0].flatMap(Int64.init) }
            for id in ids { try? Self.dropPartition(c, job: id) }
        }
    }

    /// Drops one job's partition, waiting at most 2 s for the lock (lock_not_available otherwise).
    static func dropPartition(_ c: PostgresConnection, job: Int64) throws {
        try Self.transaction(c) {
            try c.execute("SET LOCAL lock_timeout = '2s'")
            try c.execute("DROP TABLE IF EXISTS churn_scores_job_\(job)")
            try c.execute("DROP TABLE IF EXISTS churn_shadow_scores_job_\(job)")
        }
    }

    // MARK: Lease

    /// The coordinator lease's record (nil: no coordinator has held it yet).
    func leaseRecord() async throws -> CoordinatorLease.Record? {
        try await runLease { c in try Self.leaseRecord(c) }
    }

    private static func leaseRecord(_ c: PostgresConnection) throws -> CoordinatorLease.Record? {
        guard let r = try c.query("SELECT term, holder, endpoint, renewals FROM churngrid_lease").rows.first,
              let term = r[0].flatMap(Int64.init), let renewals = r[3].flatMap(Int64.init) else { return nil }
        return CoordinatorLease.Record(term: term, holder: r[1] ?? "", endpoint: r[2] ?? "", renewals: renewals)
    }

    /// Takes the lease if its record is still `replacing` (nil: there is none yet).
    /// - Returns: the new term, or nil and the record found when another coordinator got there first.
    func acquireLease(replacing: CoordinatorLease.Record?, holder: String, endpoint: String) async throws -> (term: Int64?, current: CoordinatorLease.Record?) {
        try await runLease { c in
            let taken: String?
            if let replacing {
                // Waits for the old holder's fenced writes in flight (they hold KEY SHARE on the row).
                taken = try c.query("""
                    UPDATE churngrid_lease SET term = term + 1, holder = $1, endpoint = $2, renewals = 0, acquired_at = now(), renewed_at = now()
                    WHERE term = $3 AND renewals = $4 RETURNING term
                    """, [holder, endpoint, String(replacing.term), String(replacing.renewals)]).scalar
            } else {
                taken = try c.query("""
                    INSERT INTO churngrid_lease (term, holder, endpoint) VALUES (1, $1, $2) ON CONFLICT (singleton) DO NOTHING RETURNING term
                    """, [holder, endpoint]).scalar
            }
            if let taken, let term = Int64(taken) { return (term, nil) }
            return (nil, try Self.leaseRecord(c))
        }
    }

    /// Renews the lease of `term`.
    /// - Returns: nil when renewed; otherwise the record that holds the lease now.
    func renewLease(term: Int64) async throws -> CoordinatorLease.Record?? {
        try await runLease { c in
            if try c.query("UPDATE churngrid_lease SET renewals = renewals + 1, renewed_at = now() WHERE term = $1 RETURNING term", [String(term)]).rows.count == 1 {
                return nil
            }
            return .some(try Self.leaseRecord(c))
        }
    }

    /// Runs `body` in one transaction: COMMIT when it returns (fenced: only while this coordinator
    /// still holds the lease in `term`, checked just before COMMIT), ROLLBACK when it throws.
    static func transaction<T>(_ c: PostgresConnection, fencedBy term: Int64?? = .none, _ body: () throws -> T) throws -> T {
        try c.execute("BEGIN")
        do {
            let result = try body()
            if case .some(let term) = term { try fence(c, term: term) }
            try c.execute("COMMIT")
            return result
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
    }

    /// Refuses the transaction unless this coordinator still holds the lease in `term`: called just
    /// before COMMIT, it takes a KEY SHARE lock on the lease row, so a takeover (which changes the
    /// term, a key) waits until this transaction has committed, and every transaction after a
    /// takeover finds the term gone.
    static func fence(_ c: PostgresConnection, term: Int64?) throws {
        guard let term else { throw LeaseLost(term: nil, current: nil) }
        if try c.query("SELECT 1 FROM churngrid_lease WHERE term = $1 FOR KEY SHARE", [String(term)]).rows.count != 1 {
            throw LeaseLost(term: term, current: try? leaseRecord(c))
        }
    }

    /// Creates a job and its empty partition (and its shadow scores' when it has a challenger),
    /// recording every model it scores: the served one (`modelName`) and `active` beside it.
    func startJob(modelVersion: String, shardCount: Int, clv: CLVSettings, challenger: String? = nil, modelName: String = "churn",
                  active: [(name: String, version: String, segment: String, challenger: String?)] = []) async throws -> Int64 {
        let term = term
        let settings = "{\"margin_rate\": \(clv.marginRate), \"monthly_discount\": \(clv.monthlyDiscount), \"horizon_months\": \(clv.horizonMonths)}"
        return try await run { c in
            try Self.transaction(c, fencedBy: term) {
                guard let inserted = try c.query("""
                    INSERT INTO scoring_jobs (model_version, state, shard_count, term, clv_settings, challenger_version)
                    VALUES ($1, 'running', $2, $3, $4::jsonb, $5) RETURNING id
                    """, [modelVersion, String(shardCount), term.map { String($0) }, settings, challenger]).scalar,
                      let id = Int64(inserted) else { throw ClusterError("PostgreSQL returned no job id") }
                // Each model with the challenger scored in shadow beside it (NULL: none).
                _ = try c.query("INSERT INTO scoring_job_models (job_id, model_name, model_version, role, challenger_version) VALUES ($1, $2, $3, 'served', $4)",
                                [String(id), modelName, modelVersion, challenger])
                for a in active {
                    _ = try c.query("""
                        INSERT INTO scoring_job_models (job_id, model_name, model_version, role, segment, challenger_version)
                        VALUES ($1, $2, $3, 'active', $4, $5)
                        """, [String(id), a.name, a.version, a.segment, a.challenger])
                }
                try c.execute("CREATE TABLE churn_scores_job_\(id) PARTITION OF churn_scores FOR VALUES IN (\(id))")
                if challenger != nil || active.contains(where: { $0.challenger != nil }) {
                    try c.execute("CREATE TABLE churn_shadow_scores_job_\(id) PARTITION OF churn_shadow_scores FOR VALUES IN (\(id))")
                }
                return id
            }
        }
    }

    /// Writes several shards' scores for a job in one transaction, skipping any shard already
    /// written (a retry's duplicate).
    /// - Returns: the shards written now.
    func write(job: Int64, batch: [(scores: ShardScores, node: String)], clv: CLVSettings, modelName: String = "churn", connection index: Int = 0) async throws -> Set<Int> {
        let term = term
        return try await run(on: index) { c in
            try Self.transaction(c, fencedBy: term) {
                let values = batch.enumerated().map { i, _ in "($1, $\(4 * i + 2)::integer, $\(4 * i + 3)::integer, $\(4 * i + 4), $\(4 * i + 5)::jsonb)" }
                let parameters = [String(job)] + batch.flatMap { entry -> [String?] in
                    // The rows of each active model, counted with the claim (checked when the job is published).
                    let models = entry.scores.others.isEmpty ? nil
                        : "{" + entry.scores.others.map { "\(Self.jsonString($0.name)): \($0.count)" }.joined(separator: ", ") + "}"
                    return [String(entry.scores.shard), String(entry.scores.count), entry.node, models]
                }
                let claimed = Set(try c.query("""
                    INSERT INTO scoring_job_shards (job_id, shard, subscribers, node, models) VALUES \(values.joined(separator: ", "))
                    ON CONFLICT DO NOTHING RETURNING shard
                    """, parameters).rows.compactMap { $0[0].flatMap(Int.init) })
                guard !claimed.isEmpty else {
                    return []
                }
                try c.copyIn("""
                    COPY churn_scores_job_\(job) (job_id, subscriber_id, probability, risk_band, region,
                        reason1, reason2, reason3, contribution1, contribution2, contribution3, clv, model_name) FROM STDIN (FORMAT binary)
                    """) { w in
                    var e = BinaryCopyEncoder()
                    for (scores, _) in batch where claimed.contains(scores.shard) {
                        let revenue = scores.arpu.elements
                        for i in 0..<scores.count {
                            // Unknown revenue (or a worker that did not send it): no CLV rather than a made-up one.
                            let value: Float? = i < revenue.count && revenue[i].isFinite
                                ? Float(clv.clv(probability: Double(scores.probabilities.elements[i]), arpu: Double(revenue[i]))) : nil
                            Self.scoreRow(&e, job: job, id: scores.ids.elements[i], probability: scores.probabilities.elements[i], band: scores.bands.elements[i],
                                          region: scores.regions.elements[i], reasons: scores.reasons.elements, contributions: scores.contributions.elements,
                                          at: 3 * i, clv: value, model: modelName)
                            if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                        }
                        // The models active beside it, each over its segment (no CLV: it is the served model's).
                        for other in scores.others {
                            for r in 0..<other.count {
                                let i = Int(other.rows.elements[r])
                                Self.scoreRow(&e, job: job, id: scores.ids.elements[i], probability: other.probabilities.elements[r], band: other.bands.elements[r],
                                              region: scores.regions.elements[i], reasons: other.reasons.elements, contributions: other.contributions.elements,
                                              at: 3 * r, clv: nil, model: other.name)
                                if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                            }
                        }
                    }
                    e.finish()
                    try w.write(e.take())
                }
                // The challengers' shadow scores (the served model's and the active models'), in the
                // same transaction: exactly once with the shard's, named by the active model they
                // challenge (NULL: the served model).
                let shadowed = batch.filter { claimed.contains($0.scores.shard) && (!$0.scores.shadow.elements.isEmpty || !$0.scores.otherShadows.isEmpty) }
                if !shadowed.isEmpty {
                    try c.copyIn("COPY churn_shadow_scores_job_\(job) (job_id, subscriber_id, probability, model_name) FROM STDIN (FORMAT binary)") { w in
                        var e = BinaryCopyEncoder()
                        for (scores, _) in shadowed {
                            for i in 0..<scores.shadow.elements.count {
                                e.beginRow(fields: 4)
                                e.int64(job)
                                e.int64(scores.ids.elements[i])
                                e.float32OrNull(scores.shadow.elements[i])
                                e.null()  // the served model's (NULL: narrower rows and index entries than its name)
                                if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                            }
                            for h in scores.otherShadows {
                                guard let other = scores.others.first(where: { $0.name == h.name }), other.count == h.probabilities.elements.count else {
                                    throw ClusterError("shard \(scores.shard): shadow scores of model \(h.name) without its scores")
                                }
                                for r in 0..<other.count {
                                    e.beginRow(fields: 4)
                                    e.int64(job)
                                    e.int64(scores.ids.elements[Int(other.rows.elements[r])])
                                    e.float32OrNull(h.probabilities.elements[r])
                                    e.text(h.name)
                                    if e.bytes.count > 1 << 20 { try w.write(e.take()) }
                                }
                            }
                        }
                        e.finish()
                        try w.write(e.take())
                    }
                }
                Counter(label: "churngrid_copy_rows_total").increment(by: batch.filter { claimed.contains($0.scores.shard) }.reduce(0) { $0 + $1.scores.count })
                return claimed
            }
        }
    }

    /// Completes a job: builds its unique index (proving one row per subscriber), stores its
    /// summary (accumulated by the coordinator from the scores it wrote; checked against the
    /// shards' claimed counts), marks it completed and makes it the published one — all in one
    /// transaction, so readers of `churn_scores_current` switch from the previous job to this one
    /// at once. Older jobs' partitions beyond the last `keep` completed ones are dropped afterwards.
    func publish(job: Int64, summary: JobSummary, featureNames: [String], modelName: String = "churn", keep: Int = 3) async throws {
        let bands = "{" + RiskBand.allCases.map { "\"\($0.description)\": \(summary.perBand[Int($0.rawValue)])" }.joined(separator: ", ") + "}"
        let regions = "{" + summary.perRegion.sorted { $0.key < $1.key }
            .map { "\"\($0.key < 0 ? "unknown" : String($0.key))\": \($0.value)" }.joined(separator: ", ") + "}"
        let regionBands = "{" + summary.perRegionBand.sorted { $0.key < $1.key }.map { region, counts in
            "\"\(region < 0 ? "unknown" : String(region))\": {" + RiskBand.allCases.map { "\"\($0.description)\": \(counts[Int($0.rawValue)])" }.joined(separator: ", ") + "}"
        }.joined(separator: ", ") + "}"
        let parameters = [String(job), String(summary.subscribers), String(summary.mean),
                          "{" + summary.deciles.map { String($0) }.joined(separator: ",") + "}",
                          "{" + summary.histogram.map { String($0) }.joined(separator: ",") + "}", bands, regions,
                          Self.topRiskJSON(summary.top, featureNames: featureNames), regionBands]
        let term = term
        try await run { c in
            try Self.transaction(c, fencedBy: term) {
                // One row per subscriber and model. The model name compares bytewise ("C"): the same
                // uniqueness as the database's collation (a deterministic one: equal only when the
                // bytes are), without a locale's string comparison for every tie of a subscriber's
                // rows (each subscriber has one per model: 10M of them for 10 models over 1M).
                try c.execute("CREATE UNIQUE INDEX churn_scores_job_\(job)_subscriber ON churn_scores_job_\(job) (subscriber_id, model_name COLLATE \"C\")")
                let claimed = try c.query("SELECT coalesce(sum(subscribers), 0) FROM scoring_job_shards WHERE job_id = $1", [String(job)]).scalar
                guard claimed == String(summary.subscribers) else {
                    throw ClusterError("job \(job): the shards claim \(claimed ?? "no") subscribers but \(summary.subscribers) scores were written")
                }
                // Every active model's rows: as many as the claims of the shards that wrote them count
                // (written in the same transactions) and as the coordinator tallied.
                var written: [String: Int] = [modelName: summary.subscribers]
                for row in try c.query("""
                    SELECT m.key, sum(m.value::bigint) FROM scoring_job_shards s, jsonb_each_text(s.models) m WHERE s.job_id = $1 GROUP BY 1
                    """, [String(job)]).rows {
                    if let name = row[0], let n = row[1].flatMap(Int.init) { written[name] = n }
                }
                let expected = summary.perModel.merging([modelName: summary.subscribers]) { _, served in served }
                let models = try c.query("SELECT model_name FROM scoring_job_models WHERE job_id = $1", [String(job)]).rows.compactMap { $0[0] }
                for name in Set(models).union(written.keys).union(expected.keys) {
                    let rows = written[name] ?? 0, scored = expected[name] ?? 0
                    guard rows == scored, models.contains(name) || rows == 0 else {
                        throw ClusterError("job \(job): the shards claim \(rows) scores of model \(name) but \(scored) were written\(models.contains(name) ? "" : " (not a model of the job)")")
                    }
                    // Each model's figures over the subscribers it scored (the served one's as the job's own).
                    let figures = name == modelName ? summary.served : (summary.models[name] ?? ModelTally()).figures
                    _ = try c.query("UPDATE scoring_job_models SET subscribers = $3, summary = $4::jsonb WHERE job_id = $1 AND model_name = $2",
                                    [String(job), name, String(rows), figures.json])
                }
                // The challengers' shadow scores: one per subscriber and model challenged, as many as
                // the model's own scores (its segment's), and none of a model without a challenger.
                if try c.query("SELECT to_regclass('churn_shadow_scores_job_\(job)') IS NOT NULL").scalar == "t" {
                    // NULL (the served model's rows) counts as one name: NULLS NOT DISTINCT from PostgreSQL 15 on,
                    // an expression (slower to build) before.
                    let v15 = (try c.query("SHOW server_version_num").scalar.flatMap(Int.init) ?? 0) >= 150_000
                    try c.execute("CREATE UNIQUE INDEX churn_shadow_scores_job_\(job)_subscriber ON churn_shadow_scores_job_\(job) "
                                  + (v15 ? "(model_name COLLATE \"C\", subscriber_id) NULLS NOT DISTINCT" : "((coalesce(model_name, '') COLLATE \"C\"), subscriber_id)"))
                    var shadowRows: [String: Int] = [:]
                    for row in try c.query("SELECT coalesce(model_name, ''), count(*) FROM churn_shadow_scores_job_\(job) GROUP BY 1").rows {
                        guard let name = row[0], let n = row[1].flatMap(Int.init) else { continue }
                        // The served model's rows are NULL: one naming it would escape the unique index's check.
                        guard name != modelName else { throw ClusterError("job \(job): shadow scores naming the served model \(modelName) (its rows have no name)") }
                        shadowRows[name.isEmpty ? modelName : name, default: 0] += n
                    }
                    let challenged = try c.query("SELECT model_name FROM scoring_job_models WHERE job_id = $1 AND challenger_version IS NOT NULL",
                                                 [String(job)]).rows.compactMap { $0[0] }
                    for name in Set(challenged).union(shadowRows.keys) {
                        let rows = shadowRows[name] ?? 0, scored = written[name] ?? 0
                        guard challenged.contains(name), rows == scored else {
                            throw ClusterError("job \(job): \(rows) shadow scores of model \(name)'s challenger for \(scored) scores of the model"
                                               + (challenged.contains(name) ? "" : " (it had no challenger in the job)"))
                        }
                    }
                }
                try c.query("""
                    INSERT INTO scoring_job_summaries (job_id, subscribers, mean_probability, deciles, histogram, per_band, per_region, top_risk, per_region_band)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb)
                    """, parameters)
                // Only a running job is published (never one that a restarted coordinator failed).
                let updated = try c.query("""
                    UPDATE scoring_jobs SET state = 'completed', finished_at = now(),
                        shards_done = (SELECT count(*) FROM scoring_job_shards WHERE job_id = \(job)),
                        subscribers = (SELECT coalesce(sum(subscribers), 0) FROM scoring_job_shards WHERE job_id = \(job))
                    WHERE id = \(job) AND state = 'running' RETURNING id
                    """).rows.count
                guard updated == 1 else { throw ClusterError("job \(job) is no longer running: not published") }
                try c.execute("""
                    INSERT INTO churngrid_published (job_id) VALUES (\(job))
                    ON CONFLICT (singleton) DO UPDATE SET job_id = EXCLUDED.job_id, published_at = now()
                    """)
            }
            // Retention: keep the newest completed jobs' scores (readers may still be on the previous one).
            let old = try c.query("""
                SELECT id FROM scoring_jobs WHERE state = 'completed' AND id <> $1
                ORDER BY id DESC OFFSET $2
                """, [String(job), String(keep - 1)]).rows.compactMap { $0[0].flatMap(Int64.init) }
            for id in old { try? Self.dropPartition(c, job: id) }  // left for the next publish if its lock is busy
        }
    }

    /// The riskiest subscribers as the summary's JSON array (snake_case keys, reasons by name).
    static func topRiskJSON(_ top: [JobSummary.TopRisk], featureNames: [String]) -> String {
        func quoted(_ s: String) -> String {
            "\"" + s.unicodeScalars.map { c -> String in
                switch c {
                case "\"": return "\\\""
                case "\\": return "\\\\"
                case _ where c.value < 0x20: return String(format: "\\u%04x", c.value)
                default: return String(c)
                }
            }.joined() + "\""
        }
        let rows = top.map { t -> String in
            let reasons = (0..<min(t.reasons.count, t.contributions.count)).compactMap { k -> String? in
                let f = Int(t.reasons[k])
                guard f >= 0, f < featureNames.count else { return nil }
                return "{\"feature\": \(quoted(featureNames[f])), \"contribution\": \(Double(t.contributions[k]))}"
            }
            let band = RiskBand(rawValue: t.band)?.description ?? "unknown"
            return "{\"subscriber_id\": \(t.id), \"probability\": \(Double(t.probability)), \"risk_band\": \(quoted(band)), "
                + "\"region\": \(t.region < 0 ? "null" : String(t.region)), \"reasons\": [\(reasons.joined(separator: ", "))]}"
        }
        return "[" + rows.joined(separator: ", ") + "]"
    }

    /// A job's recorded state (a job this coordinator did not run: an earlier term's, or one that
    /// ended before a restart); nil when there is no such job.
    func jobStatus(_ id: Int64) async throws -> JobStatus? {
        try await run { c in
            guard let r = try c.query("""
                SELECT state, model_version, shards_done, shard_count, subscribers,
                       extract(epoch FROM coalesce(finished_at, now()) - started_at), error
                FROM scoring_jobs WHERE id = $1
                """, [String(id)]).rows.first,
                  let state = r[0].flatMap({ JobState(rawValue: $0) }) else { return nil }
            return JobStatus(id: id, state: state, modelVersion: r[1] ?? "", shardsDone: r[2].flatMap { Int($0) } ?? 0,
                             shardCount: r[3].flatMap { Int($0) } ?? 0, subscribers: r[4].flatMap { Int($0) } ?? 0,
                             seconds: r[5].flatMap { Double($0) } ?? 0, retries: 0, error: r[6])
        }
    }

    /// Whether `job` is completed and the published one (a publish whose COMMIT was cut off).
    func isPublished(job: Int64) async throws -> Bool {
        try await run { c in
            try c.query("""
                SELECT 1 FROM scoring_jobs j JOIN churngrid_published p ON p.job_id = j.id
                WHERE j.id = $1 AND j.state = 'completed'
                """, [String(job)]).rows.count == 1
        }
    }

    /// Marks a running job failed and drops its partial scores, in one transaction: nothing of it
    /// is ever published. A job that is no longer running (published already, or failed) is left
    /// as it is — its partition too.
    /// - Returns: whether the job was still running.
    @discardableResult
    func fail(job: Int64, reason: String) async throws -> Bool {
        let term = term
        return try await run { c in
            let matched = try Self.transaction(c, fencedBy: term) {
                try c.query("UPDATE scoring_jobs SET state = 'failed', finished_at = now(), error = $2 WHERE id = $1 AND state = 'running' RETURNING id",
                            [String(job), reason]).rows.count == 1
            }
            if matched { try? Self.dropPartition(c, job: job) }  // else by the next dropFailedPartitions
            return matched
        }
    }

    /// A PostgreSQL text[] literal.
    static func textArray(_ values: [String?]) -> String {
        "{" + values.map { v in
            guard let v else { return "NULL" }
            return "\"" + v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }.joined(separator: ",") + "}"
    }

    static func textArray(_ values: [String]) -> String { textArray(values.map { Optional($0) }) }
}

/// A write refused because this coordinator no longer holds the lease in its term: another
/// coordinator has taken over (this one steps down).
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    public let term: Int64?
    public let current: CoordinatorLease.Record?
    /// Set when the error was carried as text (from a job's write task).
    public var reason: String?

    public init(term: Int64?, current: CoordinatorLease.Record?, reason: String? = nil) {
        self.term = term
        self.current = current
        self.reason = reason
    }

    public var description: String {
        if let reason { return reason }
        guard let term else { return "this coordinator holds no lease: it writes nothing" }
        return "this coordinator's lease (term \(term)) was taken over" + (current.map { " by \($0)" } ?? "") + ": the write was refused"
    }
}

/// Carries a connection to its thread. `@unchecked Sendable`: the connection is handed over, then
/// only that thread uses it.
struct UncheckedConnection: @unchecked Sendable {
    let connection: PostgresConnection
}

extension ClusterDatabase {
    /// One row of `churn_scores` in COPY's binary form: reasons and contributions from `at` in
    /// their arrays (a reason below 0 is none), a region below 0 unknown.
    @inline(__always)
    static func scoreRow(_ e: inout BinaryCopyEncoder, job: Int64, id: Int64, probability: Float, band: UInt8, region: Int16,
                         reasons: [Int16], contributions: [Float], at: Int, clv: Float?, model: String) {
        e.beginRow(fields: 13)
        e.int64(job)
        e.int64(id)
        e.float32OrNull(probability)
        e.int16(Int16(band))
        if region < 0 { e.null() } else { e.int16(region) }
        for k in 0..<3 {
            let r = reasons[at + k]
            if r < 0 { e.null() } else { e.int16(r) }
        }
        for k in 0..<3 {
            if reasons[at + k] < 0 { e.null() } else { e.float32OrNull(contributions[at + k]) }
        }
        if let clv { e.float32OrNull(clv) } else { e.null() }
        e.text(model)
    }

    /// `s` as a JSON string literal.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
