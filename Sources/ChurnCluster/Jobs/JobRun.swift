/// One rescoring job as a pure state machine: which shard to score where, which scores to write
/// on which connection, what to retry, when a straggler runs again elsewhere, and when the job
/// has completed or failed. Events in (answers, write outcomes, ticks), actions out; the time and
/// the cluster's placement are passed in. The coordinator's `execute` only carries the actions
/// out (calls and SQL) and feeds their outcomes back; tests drive it through faults without
/// sockets or a database.
///
/// Its promises:
/// - every shard is written exactly once: a shard's scores are accepted once (a second answer —
///   a straggler's late one — is dropped), and the database's per-shard claim drops a retried
///   write that had already committed;
/// - a shard's attempts are spent only on its own failures (a call that failed, a write refused);
///   a database that went away pauses the writes until it is back, up to `databaseDeadline`;
/// - a shard whose call makes no progress for `stragglerDeadline` runs again elsewhere (its
///   standby, or the worker it is moved to), and the first answer counts;
/// - shards without a ready owner wait up to `unownedShardDeadline`.
struct JobRun {
    struct Settings: Sendable {
        var attemptsPerShard = 5
        var shardsInFlightPerWorker = 2
        /// Scores waiting for a writer, at most (no new shard is dispatched beyond).
        var maxWaitingWrites = 128
        var writers = 2
        /// Rows per write transaction, about.
        var rowsPerWrite = 65_536
        var databaseDeadline: Duration = .seconds(120)
        var unownedShardDeadline: Duration = .seconds(600)
        var stragglerDeadline: Duration = .seconds(60)
        /// How long writes pause after the database was found away.
        var writePause: Duration = .milliseconds(500)
        /// How long a node that did not answer gets no call (its loss is being detected).
        var nodeCooldown: Duration = .seconds(1)
    }

    /// Where the job's shards can run now, from the coordinator's map and members.
    struct Placement: Sendable {
        /// The ready owner of each shard that is a member (nil: none now).
        var owners: [String?]
        /// The standby of each shard that is a member (nil: none).
        var standbys: [String?]
        /// Each member's scoring threads.
        var cores: [String: Int]
    }

    /// Scores accepted for writing.
    struct Entry: Sendable {
        let shard: Int
        let node: String
        let scores: ShardScores
    }

    enum Event: Sendable {
        case scored(shard: Int, node: String, ShardScores)
        /// `nodeFault`: the node did not answer at all (unreachable, restarted): the shard's
        /// attempts are not spent on it, and the node gets no call for `nodeCooldown`.
        case scoringFailed(shard: Int, node: String, error: String, nodeFault: Bool = false)
        /// A write committed: per entry, whether its shard was claimed now (false: it was written
        /// before — a retry's duplicate).
        case written(connection: Int, claimed: Set<Int>)
        case writeFailed(connection: Int, Failure)
        case tick
    }

    enum Failure: Sendable, Equatable {
        /// The database went away (the outcome of a cut-off COMMIT is unknown).
        case unavailable(String)
        /// The coordinator's lease was taken over: nothing more is written.
        case leaseLost(String)
        /// Anything else (counts against the shards' attempts).
        case other(String)
    }

    enum Action: Sendable {
        /// Call `rescore` on shard `shard` held by `node` in `role`.
        case score(shard: Int, node: String, role: ShardRole)
        /// Write `entries` on writer connection `connection` (one transaction).
        case write(connection: Int, entries: [Entry])
        /// Move shard `shard` away from `node`, which does not answer in time (no standby to ask).
        case relieve(shard: Int, from: String)
        /// Something worth a log line.
        case note(Note)
        /// The job has ended: completed when `failure` is nil (publish `summary`), else failed.
        case finished(failure: String?)
    }

    enum Note: Sendable, Equatable {
        case retrying(shard: Int, attempt: Int, what: String, error: String)
        case databaseAway(shards: Int, error: String)
        case straggler(shard: Int, node: String, to: String)
        case duplicateDropped(shard: Int)
        case cutOffCommitCounted(shard: Int)
    }

    let settings: Settings
    let shardCount: Int
    private(set) var summary = JobSummary()
    private(set) var retries = 0
    private(set) var stragglers = 0
    private(set) var failure: String?
    private(set) var ended = false

    private var pending: [Int]
    private var attempts: [Int: Int] = [:]
    private var busy: [String: Int] = [:]
    /// Calls in flight per shard: the node, the role and when it was sent.
    private var calls: [Int: [(node: String, role: ShardRole, at: ContinuousClock.Instant)]] = [:]
    private var toWrite: [Entry] = []
    private var writing: [Int: [Entry]] = [:]
    private var freeConnections: [Int]
    /// Shards whose scores were accepted (waiting, being written, or written).
    private var accepted = Set<Int>()
    /// Shards whose write has returned (claimed now, or found written before).
    private var settled = Set<Int>()
    /// Shards counted in the summary.
    private var counted = Set<Int>()
    /// Shards whose write was cut off by the database going away (its COMMIT may have happened: a
    /// later "already written" is then ours).
    private var outcomeUnknown = Set<Int>()
    /// Stragglers already run again (once each), and the slow node to keep away from.
    private var relieved: [Int: String] = [:]
    private var databaseDownSince: ContinuousClock.Instant?
    private var writesPausedUntil: ContinuousClock.Instant?
    private var stalledSince: ContinuousClock.Instant?
    /// Nodes that did not answer, and until when they get no call.
    private var cooling: [String: ContinuousClock.Instant] = [:]

    init(shardCount: Int, settings: Settings) {
        self.shardCount = shardCount
        self.settings = settings
        pending = Array(0..<shardCount)
        freeConnections = Array((0..<max(1, settings.writers)).reversed())
    }

    /// Shards written (claimed now or before).
    var shardsDone: Int { settled.count }

    /// Calls and writes in flight.
    var inFlight: Int { calls.values.reduce(0) { $0 + $1.count } + writing.count }

    /// The first actions.
    mutating func start(now: ContinuousClock.Instant, placement: Placement) -> [Action] {
        advance(now: now, placement: placement)
    }

    mutating func handle(_ event: Event, now: ContinuousClock.Instant, placement: Placement) -> [Action] {
        guard !ended else { return [] }
        var out: [Action] = []
        switch event {
        case .scored(let shard, let node, let scores):
            finishCall(shard, node)
            if accepted.contains(shard) {
                out.append(.note(.duplicateDropped(shard: shard)))  // a straggler's late answer
            } else {
                accepted.insert(shard)
                toWrite.append(Entry(shard: shard, node: node, scores: scores))
            }
        case .scoringFailed(let shard, let node, let error, let nodeFault):
            finishCall(shard, node)
            // Another call for it is still running, or it has been answered: nothing to retry.
            if !accepted.contains(shard) && (calls[shard] ?? []).isEmpty {
                if nodeFault {
                    // The node's fault, not the shard's: retried once the node answers again or
                    // the shard has moved, without spending its attempts.
                    cooling[node] = now + settings.nodeCooldown
                    retries += 1
                    out.append(.note(.retrying(shard: shard, attempt: attempts[shard] ?? 0, what: "rescoring (node not answering)", error: error)))
                } else {
                    out += retry(shard, "rescoring", error)
                }
                pending.append(shard)
            }
        case .written(let connection, let claimed):
            freeConnections.append(connection)
            databaseDownSince = nil
            for entry in writing.removeValue(forKey: connection) ?? [] {
                let shard = entry.shard
                let ours = !claimed.contains(shard) && outcomeUnknown.contains(shard) && !counted.contains(shard)
                outcomeUnknown.remove(shard)
                if claimed.contains(shard) || ours {
                    if ours { out.append(.note(.cutOffCommitCounted(shard: shard))) }
                    summary.add(entry.scores)
                    counted.insert(shard)
                } else {
                    out.append(.note(.duplicateDropped(shard: shard)))
                }
                settled.insert(shard)
            }
        case .writeFailed(let connection, let reason):
            freeConnections.append(connection)
            let entries = writing.removeValue(forKey: connection) ?? []
            switch reason {
            case .leaseLost(let error):
                failure = failure ?? error
            case .unavailable(let error):
                let since = databaseDownSince ?? now
                databaseDownSince = since
                writesPausedUntil = now + settings.writePause
                retries += entries.count
                for entry in entries { outcomeUnknown.insert(entry.shard) }
                toWrite.insert(contentsOf: entries, at: 0)
                out.append(.note(.databaseAway(shards: entries.count, error: error)))
                if now - since > settings.databaseDeadline {
                    failure = failure ?? "PostgreSQL was unavailable for more than \(settings.databaseDeadline): \(error)"
                }
            case .other(let error):
                for entry in entries {
                    out += retry(entry.shard, "write", error)
                    toWrite.append(entry)
                }
            }
        case .tick:
            out += stragglersToRelieve(now: now, placement: placement)
        }
        return out + advance(now: now, placement: placement)
    }

    private mutating func finishCall(_ shard: Int, _ node: String) {
        if var list = calls[shard], let i = list.firstIndex(where: { $0.node == node }) {
            list.remove(at: i)
            calls[shard] = list.isEmpty ? nil : list
            busy[node, default: 1] -= 1
        }
    }

    private mutating func retry(_ shard: Int, _ what: String, _ error: String) -> [Action] {
        attempts[shard, default: 0] += 1
        retries += 1
        let attempt = attempts[shard] ?? 1
        if attempt >= settings.attemptsPerShard {
            failure = failure ?? "shard \(shard) failed \(attempt) times; last error: \(error)"
        }
        return [.note(.retrying(shard: shard, attempt: attempt, what: what, error: error))]
    }

    /// Calls older than the straggler deadline: run once more on the shard's standby, or have the
    /// shard moved away from the slow node and run on its new owner.
    private mutating func stragglersToRelieve(now: ContinuousClock.Instant, placement: Placement) -> [Action] {
        var out: [Action] = []
        for (shard, list) in calls.sorted(by: { $0.key < $1.key }) where !accepted.contains(shard) && relieved[shard] == nil {
            guard let oldest = list.min(by: { $0.at < $1.at }), now - oldest.at > settings.stragglerDeadline else { continue }
            let slow = oldest.node
            if let standby = placement.standbys[safe: shard] ?? nil, standby != slow {
                relieved[shard] = slow
                stragglers += 1
                out.append(.note(.straggler(shard: shard, node: slow, to: standby)))
                out.append(dispatch(shard, to: standby, role: .standby, now: now))
            } else if placement.cores.keys.contains(where: { $0 != slow }) {
                relieved[shard] = slow
                stragglers += 1
                out.append(.note(.straggler(shard: shard, node: slow, to: "another worker")))
                out.append(.relieve(shard: shard, from: slow))
                pending.append(shard)  // dispatched to the new owner once the map has moved it
            }
        }
        return out
    }

    private mutating func dispatch(_ shard: Int, to node: String, role: ShardRole, now: ContinuousClock.Instant) -> Action {
        calls[shard, default: []].append((node, role, now))
        busy[node, default: 0] += 1
        return .score(shard: shard, node: node, role: role)
    }

    /// Dispatches what can run, starts writes, and ends the job when it is done or has failed.
    private mutating func advance(now: ContinuousClock.Instant, placement: Placement) -> [Action] {
        var out: [Action] = []
        if let failure {
            ended = true
            return [.finished(failure: failure)]
        }
        // Scoring, while the writers keep up.
        var waiting: [Int] = [], seen = Set<Int>()
        for shard in pending where !accepted.contains(shard) && seen.insert(shard).inserted {
            guard toWrite.count < settings.maxWaitingWrites, let node = placement.owners[safe: shard] ?? nil,
                  cooling[node].map({ now >= $0 }) ?? true,
                  busy[node, default: 0] < max(settings.shardsInFlightPerWorker, (placement.cores[node] ?? 1) + 1),
                  // A straggler waits for its move away from the slow node, unless nothing runs.
                  relieved[shard] != node || (calls[shard] ?? []).isEmpty,
                  !(calls[shard] ?? []).contains(where: { $0.node == node }) else {
                waiting.append(shard)
                continue
            }
            out.append(dispatch(shard, to: node, role: .owner, now: now))
        }
        pending = waiting
        // Writes, unless paused while the database is away.
        if writesPausedUntil.map({ now >= $0 }) ?? true {
            while !toWrite.isEmpty, let connection = freeConnections.popLast() {
                var batch: [Entry] = []
                var rows = 0
                while let next = toWrite.first, batch.isEmpty || rows + next.scores.count <= settings.rowsPerWrite {
                    batch.append(toWrite.removeFirst())
                    rows += next.scores.count
                }
                writing[connection] = batch
                out.append(.write(connection: connection, entries: batch))
            }
        }
        if settled.count == shardCount && writing.isEmpty {
            ended = true
            return out + [.finished(failure: nil)]
        }
        // Nothing can run: shards without a ready owner (a worker was lost, its shards are moving).
        if inFlight == 0 && toWrite.isEmpty && !pending.isEmpty {
            if placement.cores.isEmpty {
                failure = "no workers left"
            } else {
                let since = stalledSince ?? now
                stalledSince = since
                if now - since > settings.unownedShardDeadline {
                    failure = "\(pending.count) shards had no ready owner for \(settings.unownedShardDeadline) (first: shard \(pending.min() ?? -1))"
                }
            }
            if let failure {
                ended = true
                return out + [.finished(failure: failure)]
            }
        } else {
            stalledSince = nil
        }
        return out
    }
}

extension Array {
    subscript(safe index: Int) -> Element? {
        indices.contains(index) ? self[index] : nil
    }
}
