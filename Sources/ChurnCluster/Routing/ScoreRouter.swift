import ClusterSystem
import Metrics
import Synchronization

/// Live queries, routed to the worker owning the subscriber's shard with a cached shard map:
/// what `ClusterClient` (a separate process) and the coordinator's HTTP API share. One hop to
/// the owner; on failure `QueryRouting` says what to try next (the standby, a fresh map), and
/// when nothing is left the coordinator answers (`unavailable`, or it routes itself).
public final class ScoreRouter: Sendable {
    let system: ClusterActorSystem
    let coordinator: CoordinatorActor
    private let cache = Mutex<Routing?>(nil)
    /// Whether single queries are coalesced into batch calls per worker (see `LookupCoalescing`).
    let coalesce: Bool
    /// Batch calls kept in flight per worker (the coalescer's pipelining depth).
    let batchesInFlight: Int
    private let coalescing = Mutex<[CoalesceKey: LookupCoalescing<Waiting>]>([:])
    /// Coalesced batch calls sent and the queries they carried (tests, benchmarks).
    private let batchCalls = Atomic<Int>(0), batchedQueries = Atomic<Int>(0)

    struct CoalesceKey: Hashable {
        let node: NodeID
        let explain: ExplainMode
    }

    /// A query waiting in a batch; `deliver` gets its row of the answer, or nil: the query goes
    /// the single-query way (the call failed, or the worker no longer owns the shard).
    struct Waiting: Sendable {
        let id: Int64
        let shard: Int32
        let epoch: Int64
        let deliver: @Sendable (AnsweredRow?) -> Void
    }

    /// One query's row of a batch answer (the batch is shared by its queries, not copied).
    struct AnsweredRow: Sendable {
        let scores: SharedBatchScores
        let row: Int
    }

    final class SharedBatchScores: Sendable {
        let scores: BatchScores
        init(_ scores: BatchScores) { self.scores = scores }
    }

    /// How a query submitted with `submit` ended.
    public enum Outcome: Sendable, Equatable {
        case found
        case notFound
        /// The shard had no ready owner.
        case unavailable
        /// The query threw (the coordinator could not be asked either).
        case failed
        /// Not answered because the client is overloaded: refused at once because too many
        /// queries were already waiting for its worker, or — after its batch call failed or its
        /// shard moved — because 4,096 others were already going the single-query way. An
        /// overloaded client sheds load instead of piling it up.
        case shed
    }

    /// Queries `submit` sends the single-query way at most at once (their calls failed in a
    /// batch, or the batch could not take them); more are shed.
    static let maxSingleQueries = 4_096
    private let singleQueries = Atomic<Int>(0)
    private let shedQueries = Counter(label: "churngrid_queries_shed_total")

    /// - Parameters:
    ///   - coalesce: send concurrent single queries for one worker in shared batch calls.
    ///   - batchesInFlight: batch calls on the wire per worker before further queries wait for
    ///     the next one (the pipelining depth).
    public init(system: ClusterActorSystem, coordinator: CoordinatorActor, coalesce: Bool = false, batchesInFlight: Int = 4) {
        self.system = system
        self.coordinator = coordinator
        self.coalesce = coalesce
        self.batchesInFlight = max(1, batchesInFlight)
    }

    /// Coalesced batch calls sent so far, and the queries they carried.
    public var coalescingCounts: (calls: Int, queries: Int) {
        (batchCalls.load(ordering: .relaxed), batchedQueries.load(ordering: .relaxed))
    }

    /// The cached routing table (fetched on first use or when `refresh`).
    public func routing(refresh: Bool = false) async throws -> Routing {
        if !refresh, let cached = cache.withLock({ $0 }) { return cached }
        let fresh = try await coordinator.routing()
        cache.withLock { current in
            if current.map({ $0.map.epoch <= fresh.map.epoch }) ?? true { current = fresh }
        }
        return fresh
    }

    /// Drops the cached table if it is still the one of `epoch`.
    private func invalidate(epoch: Int64) {
        cache.withLock { if $0?.map.epoch == epoch { $0 = nil } }
    }

    /// One subscriber's live score.
    public func score(_ subscriberID: Int64, explain: ExplainMode = .approx) async throws -> ScoreLookup {
        if coalesce, let table = try? await routing() {
            let shard = table.map.shard(of: subscriberID)
            if let node = table.node(serving: shard),
               let answer = await coalesced(subscriberID, shard: shard, node: node, explain: explain, epoch: table.map.epoch) {
                return answer
            }
        }
        var attempt = 0
        while true {
            let table = try await routing(refresh: attempt > 0)
            let shard = table.map.shard(of: subscriberID)
            guard let node = table.node(serving: shard) else { break }
            do {
                let actor = try ShardActor.resolve(shard: shard, on: node, using: system)
                return try await ask(actor, subscriberID, explain).stamped(epoch: table.map.epoch)
            } catch let error as RemoteCallError {
                let next = QueryRouting.next(after: error.code, attempt: attempt)
                attempt += 1
                guard next != .giveUp else { break }
                invalidate(epoch: table.map.epoch)  // the next query asks for the map again
                if next == .standbyThenMap, let standby = table.standby(of: shard),
                   let actor = try? ShardActor.resolve(shard: shard, role: .standby, on: standby, using: system),
                   let answer = try? await ask(actor, subscriberID, explain) {
                    return answer.stamped(epoch: table.map.epoch)
                }
            }
        }
        return try await coordinator.score(subscriberID)
    }

    /// The live answers of the models active beside the served one whose segment holds the
    /// subscriber, from the shard's owner (a fresh map once if the cached one is stale).
    public func activeModelScores(of subscriberID: Int64) async throws -> [ActiveModelAnswer] {
        var refresh = false
        while true {
            let table = try await routing(refresh: refresh)
            let shard = table.map.shard(of: subscriberID)
            guard let node = table.node(serving: shard) else {
                // A move in progress: a fresh map once, then the answer that there is no owner.
                if !refresh { refresh = true; continue }
                throw ClusterError("shard \(shard) has no ready owner")
            }
            do {
                return try await ShardActor.resolve(shard: shard, on: node, using: system).lookupActive(subscriberID)
            } catch is RemoteCallError where !refresh {
                refresh = true
            }
        }
    }

    /// One query through its worker's coalesced batch calls; nil when that did not answer it (the
    /// call failed, or the worker no longer owns the shard): the caller goes the single way.
    private func coalesced(_ id: Int64, shard: Int, node: NodeID, explain: ExplainMode, epoch: Int64) async -> ScoreLookup? {
        await withCheckedContinuation { continuation in
            // A caller that awaits its answer bounds its own queries: when the queue is full, it
            // goes the single way.
            let queued = enqueue(id, shard: shard, node: node, explain: explain, epoch: epoch) { row in
                continuation.resume(returning: row.map { Self.lookup($0, id: id, shard: shard, epoch: epoch) })
            }
            if !queued { continuation.resume(returning: nil) }
        }
    }

    /// Puts a query in its worker's coalescing queue (sending a batch if a call is free).
    /// - Returns: false when the queue is full: `deliver` is never called.
    private func enqueue(_ id: Int64, shard: Int, node: NodeID, explain: ExplainMode, epoch: Int64,
                         _ deliver: @escaping @Sendable (AnsweredRow?) -> Void) -> Bool {
        let key = CoalesceKey(node: node, explain: explain)
        let waiting = Waiting(id: id, shard: Int32(shard), epoch: epoch, deliver: deliver)
        let inFlight = batchesInFlight
        switch coalescing.withLock({ $0[key, default: LookupCoalescing(maxInFlight: inFlight)].enqueue(waiting) }) {
        case .send(let batch): send(batch, key)
        case .queued: break
        case .full: return false
        }
        return true
    }

    /// Row `row` of a batch answer as the single query's answer.
    private static func lookup(_ answer: AnsweredRow, id: Int64, shard: Int, epoch: Int64) -> ScoreLookup {
        let scores = answer.scores.scores, row = answer.row
        guard scores.outcome(row) == .found else { return .notFound(subscriberID: id, shard: shard) }
        let reasons = (0..<3).compactMap { scores.reason(row, $0) }.map { Reason(feature: $0.feature, contribution: $0.contribution) }
        let p = scores.probabilities.elements[row]
        return .found(LiveScore(subscriberID: id, probability: p, riskBand: RiskBand(probability: p).description, reasons: reasons,
                                modelVersion: scores.modelVersion(row), shard: shard, node: scores.node, epoch: epoch))
    }

    /// Starts one live query without waiting for it (an open-loop load generator, a server with
    /// many callers): with coalescing and a cached map it joins its worker's next batch call
    /// without a task of its own; otherwise, or when the batch could not answer it, it goes the
    /// single-query way on a task. `done` is called exactly once.
    /// An open-loop caller never waits, so the queries it has under way are bounded here: at most
    /// `LookupCoalescing.maxWaiting` wait per worker and `maxSingleQueries` go the single way at
    /// once; beyond that a query is `shed` at once (a client asked for more than the cluster
    /// answers keeps its memory and its latency bounded, and says so).
    public func submit(_ subscriberID: Int64, explain: ExplainMode = .approx, _ done: @escaping @Sendable (Outcome) -> Void) {
        let single: @Sendable () -> Void = { [self] in
            guard singleQueries.add(1, ordering: .relaxed).newValue <= Self.maxSingleQueries else {
                singleQueries.subtract(1, ordering: .relaxed)
                shedQueries.increment()
                return done(.shed)
            }
            Task {
                defer { singleQueries.subtract(1, ordering: .relaxed) }
                do {
                    switch try await score(subscriberID, explain: explain) {
                    case .found: done(.found)
                    case .notFound: done(.notFound)
                    case .unavailable: done(.unavailable)
                    }
                } catch {
                    done(.failed)
                }
            }
        }
        guard coalesce, let table = cache.withLock({ $0 }) else { return single() }
        let shard = table.map.shard(of: subscriberID)
        guard let node = table.node(serving: shard) else { return single() }
        let queued = enqueue(subscriberID, shard: shard, node: node, explain: explain, epoch: table.map.epoch) { answer in
            guard let answer else { return single() }
            done(answer.scores.scores.outcome(answer.row) == .found ? .found : .notFound)
        }
        if !queued {
            shedQueries.increment()
            done(.shed)
        }
    }

    /// Sends a coalesced batch on a task of its own; when it is answered, the batch that waited
    /// meanwhile leaves at once, then this one's queries are answered.
    private func send(_ items: [Waiting], _ key: CoalesceKey) {
        let system = system
        batchCalls.add(1, ordering: .relaxed)
        batchedQueries.add(items.count, ordering: .relaxed)
        Task {
            let request = LookupBatch(ids: items.map(\.id), shards: items.map(\.shard), explain: key.explain)
            var scores: SharedBatchScores?
            do {
                let answer = try await WorkerActor.resolve(id: ActorID(node: key.node, name: WorkerActor.name), using: system).lookup(batch: request)
                if answer.count == items.count { scores = SharedBatchScores(answer) }
            } catch {
                Counter(label: "churngrid_query_fallbacks_total").increment(by: items.count)
                system.configuration.logger.debug("a coalesced batch call failed; its queries go one by one", metadata: ["node": "\(key.node)", "error": "\(error)"])
            }
            // Answering runs the callers' code: the wire slot goes to the next batch first.
            if let next = coalescing.withLock({ $0[key]?.completed() }) { send(next, key) }
            for (row, item) in items.enumerated() {
                guard let scores else {
                    item.deliver(nil)
                    continue
                }
                if scores.scores.outcome(row) == .notHere {
                    invalidate(epoch: item.epoch)
                    item.deliver(nil)
                } else {
                    item.deliver(AnsweredRow(scores: scores, row: row))
                }
            }
        }
    }

    private func ask(_ actor: ShardActor, _ id: Int64, _ explain: ExplainMode) async throws -> ScoreLookup {
        // The default mode goes through the method every node version has (rolling upgrades).
        explain == .approx ? try await actor.lookup(id) : try await actor.lookup(id, explain: explain)
    }

    /// Many subscribers' live scores: one call per worker with the ids of its shards, all workers
    /// at once; ids whose worker could not answer (or no longer owns the shard) go the way of a
    /// single query.
    /// With `models`, each answer also carries the models active beside the served one whose
    /// segment holds the subscriber (`BatchScores.active`).
    public func scores(_ ids: [Int64], explain: ExplainMode = .approx, models: Bool = false) async throws -> BatchAnswer {
        var table = try await routing()
        var answer = BatchAnswer(count: ids.count, epoch: table.map.epoch)
        var pending = Array(ids.indices)
        // Two rounds at most: the ids a worker could not answer (it failed, or no longer owns the
        // shard) are asked once more with a fresh map, each worker in one call again; what is
        // still unanswered is reported unavailable, id by id (never 10,000 single queries).
        for round in 0..<2 {
            if round > 0 {
                guard !pending.isEmpty else { break }
                Counter(label: "churngrid_query_fallbacks_total").increment(by: pending.count)
                invalidate(epoch: table.map.epoch)
                table = try await routing(refresh: true)
                answer.epoch = table.map.epoch
            }
            var perNode: [NodeID: (indices: [Int], ids: [Int64], shards: [Int32])] = [:]
            var unowned: [Int] = []
            for i in pending {
                let shard = table.map.shard(of: ids[i])
                answer.shards[i] = Int32(shard)
                if let node = table.node(serving: shard) {
                    perNode[node, default: ([], [], [])].indices.append(i)
                    perNode[node, default: ([], [], [])].ids.append(ids[i])
                    perNode[node, default: ([], [], [])].shards.append(Int32(shard))
                } else {
                    unowned.append(i)
                    answer.entries[i] = .unavailable("shard \(shard) has no ready worker")
                }
            }
            let system = system
            let replies = await withTaskGroup(of: (NodeID, Result<BatchScores, any Error>).self) { group in
                for (node, part) in perNode {
                    group.addTask {
                        do {
                            let worker = try WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system)
                            return (node, .success(try await worker.lookup(batch: LookupBatch(ids: part.ids, shards: part.shards, explain: explain,
                                                                                                   models: models))))
                        } catch {
                            return (node, .failure(error))
                        }
                    }
                }
                var out: [(NodeID, Result<BatchScores, any Error>)] = []
                for await reply in group { out.append(reply) }
                return out
            }
            var again: [Int] = []
            for (node, result) in replies {
                guard let part = perNode[node] else { continue }
                switch result {
                case .success(let scores) where scores.count == part.indices.count:
                    let p = Int32(answer.parts.count)
                    answer.parts.append(scores)
                    for (row, i) in part.indices.enumerated() {
                        switch scores.outcome(row) {
                        case .found: answer.entries[i] = .scored(part: p, row: Int32(row))
                        case .notFound: answer.entries[i] = .notFound
                        case .notHere:
                            again.append(i)
                            answer.entries[i] = .unavailable("shard \(part.shards[row]) moved while the batch was asked")
                        }
                    }
                case .success:
                    again += part.indices
                    for i in part.indices { answer.entries[i] = .unavailable("worker \(node.name) answered a malformed batch") }
                case .failure(let error):
                    again += part.indices
                    let reason = (error as? RemoteCallError).map { "worker \(node.name) did not answer (\($0.code))" } ?? "worker \(node.name) did not answer"
                    for i in part.indices { answer.entries[i] = .unavailable(reason) }
                }
            }
            pending = again + unowned
        }
        return answer
    }
}

/// The answer to a batch of live queries, in the order of the ids asked.
public struct BatchAnswer: Sendable {
    public enum Entry: Sendable {
        /// Row `row` of `parts[part]`.
        case scored(part: Int32, row: Int32)
        /// Answered by the single-query path (a moved shard, a worker that failed).
        case live(LiveScore)
        case notFound
        case unavailable(String)
    }

    /// The workers' answers.
    public var parts: [BatchScores] = []
    public var entries: [Entry]
    /// The shard of each id.
    public var shards: [Int32]
    /// The shard map's epoch the batch was routed with.
    public var epoch: Int64

    init(count: Int, epoch: Int64) {
        entries = Array(repeating: .unavailable("not asked"), count: count)
        shards = Array(repeating: 0, count: count)
        self.epoch = epoch
    }
}
