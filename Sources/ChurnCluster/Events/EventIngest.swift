import Foundation
import Logging
import Metrics
import Postgres
import SubscriberEvents
import SubscriberProfiles
import Synchronization
import ZeroMQ

/// A worker's event path: batches sent to it (`WorkerActor.ingest`) wait in one bounded queue; one
/// thread takes everything waiting (up to `maxGroupEvents`), checks each event (owned shard, known
/// subscriber, valid, not too late), numbers it in its shard, logs the group in one PostgreSQL
/// transaction under the shards' fences (duplicates refused there), applies what was logged,
/// publishes the triggers it fired, and acknowledges. A full queue answers `busy` with a delay:
/// producers slow down, nothing piles up. The same thread replays the log for shards this worker
/// takes over and keeps its standby copies current from the log, so a shard's state only ever
/// changes on it.
final class EventIngest: Sendable {
    struct Settings: Sendable {
        /// Events waiting at most; a batch that does not fit is answered `busy`.
        var maxQueuedEvents = 200_000
        /// How long the oldest waiting batch may have waited: beyond it, new batches are answered
        /// `busy` even when there is room (an acknowledgement never waits behind seconds of
        /// backlog while PostgreSQL is slow; producers back off instead).
        var maxQueueWait: Duration = .milliseconds(500)
        /// Events logged in one transaction at most.
        var maxGroupEvents = 8_192
        /// The delay a `busy` answer asks for.
        var retryAfterMillis: Int64 = 20
        /// How often standby copies read the events their owners logged.
        var standbyRefresh: Duration = .seconds(2)
    }

    private struct Waiting {
        let batch: EventBatch
        let answer: CheckedContinuation<EventAcks, Never>
        let since: ContinuousClock.Instant
    }

    private struct Queue {
        var waiting: [Waiting] = []
        var events = 0
        var draining = false
    }

    let settings: Settings
    let thread = BlockingThread(name: "cg-events")
    private let queue = Mutex(Queue())
    let confined: Confined
    private let logger: Logger

    init(postgresURL: String, node: String, settings: Settings = Settings(), logger: Logger) {
        self.settings = settings
        self.logger = logger
        confined = Confined(postgresURL: postgresURL, node: node, logger: logger)
        confined.live = LiveDecisions(postgresURL: postgresURL, node: node, logger: logger)
    }

    /// The live campaign's decisions (fed by this path's triggers).
    var live: LiveDecisions? { confined.live }

    // MARK: Ingest

    /// Logs, applies and acknowledges `batch` (or answers `busy` when the queue is full).
    func ingest(_ batch: EventBatch) async -> EventAcks {
        guard batch.count > 0 else { return EventAcks(count: 0) }
        return await withCheckedContinuation { continuation in
            let now = ContinuousClock.now
            let start: Bool? = queue.withLock { q in
                guard Self.admits(batch.count, queued: q.events, oldestWait: q.waiting.first.map { now - $0.since } ?? .zero, settings) else { return nil }
                q.waiting.append(Waiting(batch: batch, answer: continuation, since: now))
                q.events += batch.count
                if q.draining { return false }
                q.draining = true
                return true
            }
            switch start {
            case nil:
                var acks = EventAcks(count: batch.count)
                for i in 0..<batch.count { acks.set(i, .busy) }
                acks.retryAfterMillis = settings.retryAfterMillis
                Counter(label: "churngrid_events_busy_total").increment(by: batch.count)
                continuation.resume(returning: acks)
            case true?:
                Task { await self.drain() }
            case false?:
                break
            }
        }
    }

    /// Whether a batch of `count` events is queued (else answered `busy`): it fits within
    /// `maxQueuedEvents` beside the `queued` ones, and the oldest waiting batch has not waited
    /// longer than `maxQueueWait`.
    static func admits(_ count: Int, queued: Int, oldestWait: Duration, _ settings: Settings) -> Bool {
        if queued == 0 { return count <= settings.maxQueuedEvents }
        return queued + count <= settings.maxQueuedEvents && oldestWait <= settings.maxQueueWait
    }

    /// Processes groups until the queue is empty.
    private func drain() async {
        while true {
            let group: [Waiting] = queue.withLock { q in
                var taken = 0, n = 0
                while n < q.waiting.count, taken == 0 || taken + q.waiting[n].batch.count <= settings.maxGroupEvents {
                    taken += q.waiting[n].batch.count
                    n += 1
                }
                let group = Array(q.waiting.prefix(n))
                q.waiting.removeFirst(n)
                q.events -= taken
                if group.isEmpty { q.draining = false }
                return group
            }
            if group.isEmpty { return }
            let batches = group.map(\.batch), confined = confined
            let acks = (try? await thread.run { confined.process(batches) })
                ?? batches.map { b in
                    var a = EventAcks(count: b.count)
                    for i in 0..<b.count { a.set(i, .retry) }
                    return a
                }
            for (w, a) in zip(group, acks) { w.answer.resume(returning: a) }
        }
    }

    // MARK: Shards

    /// The model and trigger rules events are applied with (a new model or rule set applies to
    /// the events after it).
    func configure(model: ScoringModel, rules: TriggerRules?, shardCount: Int) async throws {
        let confined = confined
        try await thread.run { confined.configure(model: model, rules: rules, shardCount: shardCount) }
    }

    /// This worker owns `shards` from now on under (term, epoch): raises their fences in the log
    /// (waiting for a previous owner's write in progress) and replays what the log holds beyond
    /// each copy (all events received after the profiles' `as_of` for a copy loaded from
    /// PostgreSQL; those after its sequence number for one streamed or already held).
    /// - Throws: when a shard's fence is held by a newer owner, or PostgreSQL cannot be reached.
    func own(_ shards: [(shard: Int, store: LoadedShard, snapshot: ShardEventSnapshot?, fromDatabase: Bool)], term: Int64, epoch: Int64) async throws {
        guard !shards.isEmpty else { return }
        let confined = confined
        let items = shards.map { OwnItem(shard: $0.shard, store: $0.store, snapshot: $0.snapshot, fromDatabase: $0.fromDatabase) }
        try await thread.run { try confined.ownOrDefer(items, term: term, epoch: epoch) }
    }

    /// Holds `shards` as standby copies (kept current from the log every `standbyRefresh`).
    func standBy(_ shards: [(shard: Int, store: LoadedShard, snapshot: ShardEventSnapshot?, fromDatabase: Bool)]) async throws {
        guard !shards.isEmpty else { return }
        let confined = confined
        let items = shards.map { OwnItem(shard: $0.shard, store: $0.store, snapshot: $0.snapshot, fromDatabase: $0.fromDatabase) }
        try await thread.run { try confined.standBy(items) }
    }

    /// Whether the event thread holds `shard`'s event state.
    func holds(_ shard: Int) async -> Bool {
        let confined = confined
        return (try? await thread.run { confined.holds(shard) }) ?? false
    }

    /// Drops the event state of `shards`.
    func release(_ shards: [Int]) async {
        let confined = confined
        _ = try? await thread.run { confined.release(shards) }
    }

    /// A shard's event state, taken between two groups (consistent with its profiles), and the
    /// profiles themselves; `unsettled` when a trigger its events fired is not recorded yet (its
    /// `retention_triggers` row or its live decision): a copy loaded from a snapshot of this
    /// state would never fire it again.
    func export(_ shard: Int, store: LoadedShard) async throws -> (ids: [Int64], values: [Float], events: ShardEventSnapshot?, unsettled: Bool) {
        let confined = confined
        return try await thread.run {
            let (ids, values) = store.store.exported()
            return (ids, values, confined.slots[shard]?.events.travelling, confined.unsettledTriggers(shard))
        }
    }

    /// A shard's state for a worker taking it over by stream: as `export`, with the triggers its
    /// events fired whose live decision is not recorded yet (the receiver decides them).
    func exportForHandoff(_ shard: Int, store: LoadedShard) async throws -> (ids: [Int64], values: [Float], events: ShardEventSnapshot?, undecided: [FiredTrigger]) {
        let confined = confined
        return try await thread.run {
            let (ids, values) = store.store.exported()
            return (ids, values, confined.slots[shard]?.events.travelling, confined.handoffTriggers(shard))
        }
    }

    /// Triggers streamed with shards (`ShardState.undecided`): kept with each shard's copy when it
    /// is adopted, and decided when this worker owns it (`own`), as a standby's own.
    func carry(_ triggers: [Int: [FiredTrigger]]) async {
        guard !triggers.isEmpty else { return }
        let confined = confined
        _ = try? await thread.run { confined.carried.merge(triggers) { $0 + $1 } }
    }

    /// The last events applied to `subscriber` (newest last).
    func recent(_ subscriber: Int64, shard: Int) async -> [RecentEvent] {
        let confined = confined
        return (try? await thread.run { confined.slots[shard]?.events.subscribers[subscriber]?.recent ?? [] }) ?? []
    }

    /// Counters for `status` and `/metrics`. The event thread may be busy for long (a takeover's
    /// replay, a lock, PostgreSQL away): after a second the last figures it computed are
    /// answered, with the blocked shards as they are now (kept current by the thread itself).
    func stats() async -> EventStats {
        let confined = confined, thread = thread
        let fresh: EventStats? = await withCheckedContinuation { continuation in
            let once = ResumeOnce(continuation)
            Task { let s = try? await thread.run { confined.stats() }; once.resume(s) }
            Task { try? await Task.sleep(for: .seconds(1)); once.resume(nil) }
        }
        if let fresh { return fresh }
        var s = confined.lastStats.withLock { $0 }
        (s.shardsReplaying, s.shardsWaiting, s.shardsLost) = confined.blocked.withLock { $0 }
        return s
    }

    /// Publishes fired triggers on `endpoint` (a ZeroMQ PUB socket bound on the event thread).
    /// - Returns: the bound endpoint.
    func publish(on endpoint: String, socket: @escaping @Sendable () throws -> ZMQSocket) async throws -> String {
        let confined = confined
        return try await thread.run { try confined.bindPublisher(endpoint, socket) }
    }

    /// Refreshes standby copies from the log, forever (until the task is cancelled).
    func refreshStandbys() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.standbyRefresh)
            let confined = confined
            _ = try? await thread.run { confined.refreshStandbys() }
        }
    }

    func stop() async {
        let confined = confined
        _ = try? await thread.run { confined.close() }
        thread.stop()
        confined.live?.stop()
    }
}

/// A continuation resumed by the first of several racing tasks.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>
    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Mutex(continuation) }
    func resume(_ value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
}

/// Event figures of one worker (`churngrid status`).
public struct EventStats: Sendable, Codable {
    public var applied = 0
    public var duplicates = 0
    public var rejected = 0
    public var triggers = 0
    /// ms from the newest event of the last group (its `at`) to its application: how far behind
    /// the stream the worker is (0 when events arrive as they happen).
    public var lagMillis: Int64 = 0
    /// Subscribers with event state, and its bytes.
    public var subscribersWithState = 0
    public var stateBytes = 0
    /// Events applied and triggers fired per second over the last 10 seconds.
    public var eventsPerSecond = 0.0
    public var triggersPerSecond = 0.0
    /// Groups written (one PostgreSQL transaction each) and the µs spent logging and applying them.
    public var groups = 0
    public var writeMicros = 0
    /// The live campaign's run this worker decides triggers for (0: none), the triggers it
    /// recorded an action for, and those it decided no action for (or could not act on).
    public var liveRun: Int64 = 0
    public var liveDecided = 0
    public var liveSkipped = 0
    /// Owned shards whose events are not taken now: replaying the log first (their last write's
    /// outcome is unknown, or their takeover's replay did not finish: answered `retry`), waiting
    /// for a takeover deferred while PostgreSQL was away or busy (answered `not_owner`, or `retry`
    /// when the shard was owned here already), and held by a newer owner (answered `not_owner`
    /// until the shard is released here).
    public var shardsReplaying = 0
    public var shardsWaiting = 0
    public var shardsLost = 0
    public init() {}
}

struct OwnItem: @unchecked Sendable {
    // @unchecked: the store is handed to the event thread, which from then on is the only writer.
    let shard: Int
    let store: LoadedShard
    let snapshot: ShardEventSnapshot?
    let fromDatabase: Bool
}

/// What the event thread alone touches.
final class Confined: @unchecked Sendable {
    // @unchecked: every member is read and written only on `EventIngest`'s thread, but the two
    // mutexes, which any thread may read.
    enum Role { case owner(term: Int64, epoch: Int64), standby }

    /// The figures `stats()` last computed, and the blocked shards (replaying, waiting, lost) as of
    /// the thread's last change to them: what `status` shows while the thread is busy.
    let lastStats = Mutex(EventStats())
    let blocked = Mutex((0, 0, 0))

    final class Slot {
        let store: LoadedShard
        let events: ShardEvents
        var role: Role
        /// Another owner holds the fence now: events for it are refused until it is released.
        var lost = false
        /// The last write's outcome is unknown: replay the log before taking more events.
        var unsynced = false
        /// The generation of the shard's fence as this copy last raised it (owned copies only): its
        /// writes are logged only under it (`EventLog.heldFences`).
        var generation: Int64 = 0
        /// Triggers this copy fired while it stood by (its owner fired them too): decided here if
        /// it becomes the owner, since its owner may have died before recording their decisions.
        var firedAsStandby: [FiredTrigger] = []
        init(store: LoadedShard, events: ShardEvents, role: Role) {
            self.store = store
            self.events = events
            self.role = role
        }
    }

    let postgresURL: String
    let node: String
    let logger: Logger
    var connection: PostgresConnection?
    var slots: [Int: Slot] = [:]
    var applier: EventApplier?
    var shardCount = 0
    var publisher: ZMQSocket?
    /// Triggers fired whose row could not be written yet (the database was away).
    var pendingTriggers: [FiredTrigger] = []
    var counts = EventStats()
    /// A group made a shard unsynced or lost (`blocked` is counted again after it).
    var blockedChanged = false
    /// Triggers streamed with shards not adopted yet (see `EventIngest.carry`).
    var carried: [Int: [FiredTrigger]] = [:]
    /// Ownerships waiting for PostgreSQL (see `ownOrDefer`).
    var pendingOwn: [([OwnItem], Int64, Int64)] = []
    /// (when, events applied, triggers fired) about once a second over the last minute: the rates.
    var samples: [(at: ContinuousClock.Instant, applied: Int, triggers: Int)] = []
    var partitionsDay: Int32 = .min
    /// Subscribers erased here (see `RememberedErasures`).
    var erasures = RememberedErasures()
    /// Where triggers fired on owned shards go to be decided (set once, at start).
    var live: LiveDecisions?

    init(postgresURL: String, node: String, logger: Logger) {
        self.postgresURL = postgresURL
        self.node = node
        self.logger = logger
    }

    /// How long a statement of the log's connection waits for a lock (a replay before a group
    /// waits `resyncLockTimeout` only: every shard's events wait behind it on this thread).
    static let lockTimeout = "10s"
    static let resyncLockTimeout: Duration = .milliseconds(200)

    static func nowMillis() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
    /// What a standby copy remembers of the triggers it fired (`Slot.firedAsStandby`): the longest
    /// trigger age a live campaign may decide (a day), at most this many per shard.
    static let standbyTriggerMemoryMillis: Int64 = 86_400_000
    static let standbyTriggerMemory = 10_000

    func db() throws -> PostgresConnection {
        if let c = connection, c.isOpen { return c }
        connection = nil
        let c = try PostgresConnection(url: postgresURL)
        try c.execute("SET synchronous_commit TO on")
        try c.execute("SET client_min_messages TO warning")
        // A write stuck behind a lock, or a session left in a transaction by a cut connection,
        // must not hold a shard's fence or keys for long.
        try c.execute("SET lock_timeout TO '\(Self.lockTimeout)'; SET idle_in_transaction_session_timeout TO '30s'; SET statement_timeout TO '60s'")
        // A transaction whose client is gone (a cut connection) is rolled back within a second of
        // the server noticing, not left holding a fence the shard's next write waits for
        // (PostgreSQL 14 and later, on systems that can tell; elsewhere the lock and idle timeouts
        // above bound it).
        _ = try? c.execute("SET client_connection_check_interval TO '1s'")
        // The log's statements are prepared once per connection and planned once: planning an insert
        // into the partitioned log costs more than the insert of a small group.
        try c.execute("SET plan_cache_mode TO force_generic_plan")
        try EventLog.prepare(c)
        connection = c
        partitionsDay = .min
        return c
    }

    func close() {
        publisher?.close()
        publisher = nil
        // Trigger rows still unwritten: tried once more (with those streamed here whose shard was
        // never taken over: PostgreSQL away). Those of shards streamed away before were carried to
        // their new owner, which writes them; the others are lost with this process unless the
        // shard's next owner replays the events that fired them.
        pendingTriggers += carried.values.flatMap { $0 }
        carried = [:]
        if !pendingTriggers.isEmpty {
            writePendingTriggers()
            if !pendingTriggers.isEmpty {
                logger.error("trigger rows not written at stop", metadata: ["triggers": "\(pendingTriggers.count)"])
            }
        }
        connection = nil
    }

    func configure(model: ScoringModel, rules: TriggerRules?, shardCount: Int) {
        // Cool-downs are kept per rule index: a different rule set starts them afresh.
        if let previous = applier?.rules?.fingerprint, previous != rules?.fingerprint {
            for slot in slots.values { slot.events.cooldowns = TriggerCooldowns() }
        }
        applier = EventApplier(model: model, binding: ProfileSchemaBinding(featureNames: FeatureCatalogue.names), rules: rules, node: node)
        self.shardCount = shardCount
        live?.shardCount = shardCount
    }

    func bindPublisher(_ endpoint: String, _ make: () throws -> ZMQSocket) throws -> String {
        let socket = try make()
        try socket.set(.sendHighWaterMark, 100_000)
        try socket.set(.linger, 0)
        let bound = try socket.bind(endpoint)
        publisher = socket
        return bound
    }

    // MARK: Groups

    private struct Candidate {
        let batch: Int
        let index: Int
        let event: SubscriberEvent
        let shard: Int
        let seq: Int64
    }

    /// A copy of an event later in the same group than its first copy.
    private struct Copy {
        let batch: Int, index: Int
        let first: (batch: Int, index: Int)
    }

    func process(_ batches: [EventBatch]) -> [EventAcks] {
        // Counted again only when a shard may have become, or still is, blocked (not per group).
        defer {
            if blockedChanged || blocked.withLock({ $0 != (0, 0, 0) }) { publishBlocked() }
            blockedChanged = false
        }
        var copies: [Copy] = []
        var acks = processGroup(batches, copies: &copies)
        // A copy is settled with its first: a duplicate once that is logged, else as it is.
        for c in copies {
            let status = acks[c.first.batch].status(c.first.index)
            let logged = status == .accepted || status == .duplicate
            acks[c.batch].set(c.index, logged ? .duplicate : status, reason: acks[c.first.batch].reason(c.first.index))
            if logged { counts.duplicates += 1 }
        }
        return acks
    }

    private func processGroup(_ batches: [EventBatch], copies: inout [Copy]) -> [EventAcks] {
        var acks = batches.map { EventAcks(count: $0.count) }
        guard let applier else {
            for b in acks.indices { for i in 0..<acks[b].count { acks[b].set(i, .notOwner) } }
            return acks
        }
        let now = Self.nowMillis()
        // Shards whose last write had an unknown outcome (or whose takeover's replay failed)
        // replay the log first.
        let unsynced = slots.filter { $0.value.unsynced }.map(\.key)
        if !unsynced.isEmpty { resync(unsynced, now: now) }

        var candidates: [Candidate] = []
        var nextSeq: [Int: Int64] = [:]
        var firstCopy: [EventKey: (batch: Int, index: Int)] = [:]
        var newest: Int64 = .min
        for (b, batch) in batches.enumerated() {
            for i in 0..<batch.count {
                let event = batch.event(i)
                let shard = Int(batch.shards.elements[i])
                guard let slot = slots[shard], case .owner = slot.role, !slot.lost,
                      ShardKey.shard(of: event.subscriberID, shardCount: shardCount) == shard else {
                    acks[b].set(i, .notOwner)
                    continue
                }
                guard !slot.unsynced else {
                    acks[b].set(i, .retry)  // the log could not be read back yet (PostgreSQL away)
                    continue
                }
                if let reason = event.rejection(now: now) {
                    acks[b].set(i, .rejected, reason: reason)
                    counts.rejected += 1
                    continue
                }
                guard slot.store.store.row(of: event.subscriberID) != nil else {
                    acks[b].set(i, .rejected, reason: .unknownSubscriber)
                    counts.rejected += 1
                    continue
                }
                if let first = firstCopy[EventKey(event)] {
                    // Settled with its first copy: a duplicate once that is logged, else as it.
                    copies.append(Copy(batch: b, index: i, first: first))
                    continue
                }
                firstCopy[EventKey(event)] = (b, i)
                let seq = (nextSeq[shard] ?? slot.events.appliedSeq) + 1
                nextSeq[shard] = seq
                candidates.append(Candidate(batch: b, index: i, event: event, shard: shard, seq: seq))
                newest = max(newest, event.at)
            }
        }
        guard !candidates.isEmpty else { return acks }

        // Log them.
        let fences: [EventLog.Fence] = nextSeq.keys.sorted().compactMap { s in
            guard let slot = slots[s], case .owner(let term, let epoch) = slot.role else { return nil }
            return EventLog.Fence(shard: s, term: term, epoch: epoch, generation: slot.generation)
        }
        let logged: Set<ShardSeq>, lost: Set<Int>
        let writeStart = ContinuousClock.now
        defer {
            counts.groups += 1
            counts.writeMicros += Int((ContinuousClock.now - writeStart) / .microseconds(1))
        }
        do {
            let c = try db()
            try ensurePartitions(c, now: now)
            (logged, lost) = try EventLog.append(c, candidates.map { LoggedEvent(event: $0.event, shard: $0.shard, seq: $0.seq, receivedMillis: now) },
                                                  fences: fences, node: node, receivedMillis: now)
        } catch {
            // The transaction may or may not have committed: these shards replay the log before
            // their next events, and the senders resend (what was logged comes back a duplicate).
            logger.warning("logging events failed; the senders resend them", metadata: ["events": "\(candidates.count)", "error": "\(error)"])
            if (error as? PostgresError)?.isUnavailable ?? true { connection = nil }
            for s in nextSeq.keys { slots[s]?.unsynced = true }
            blockedChanged = true
            for c in candidates { acks[c.batch].set(c.index, .retry) }
            Counter(label: "churngrid_events_retried_total").increment(by: candidates.count)
            return acks
        }
        for s in lost {
            blockedChanged = true
            slots[s]?.lost = true
            logger.warning("another owner holds the shard's event fence now; its events go there", metadata: ["shard": "\(s)"])
        }

        // Apply what was logged, in sequence order.
        var fired: [FiredTrigger] = []
        var applied = 0
        for c in candidates {
            if lost.contains(c.shard) {
                acks[c.batch].set(c.index, .notOwner)
                continue
            }
            guard logged.contains(ShardSeq(shard: c.shard, seq: c.seq)), let slot = slots[c.shard] else {
                acks[c.batch].set(c.index, .duplicate)
                counts.duplicates += 1
                continue
            }
            switch applier.apply(c.event, seq: c.seq, now: now, events: slot.events, store: slot.store.store) {
            case .applied(_, _, let triggers):
                acks[c.batch].set(c.index, .accepted, seq: c.seq)
                fired += triggers
                applied += 1
            case .rejected(let reason):
                // Logged, but the subscriber's own state refuses it (e.g. later than its newest day
                // allows): a replay refuses it the same way.
                acks[c.batch].set(c.index, .rejected, reason: reason)
                counts.rejected += 1
                slot.events.appliedSeq = max(slot.events.appliedSeq, c.seq)
            }
        }
        counts.applied += applied
        sample()
        counts.lagMillis = newest == .min ? 0 : max(0, now - newest)
        Counter(label: "churngrid_events_applied_total").increment(by: applied)
        if !fired.isEmpty {
            publish(fired)
            counts.triggers += fired.count
            Counter(label: "churngrid_triggers_fired_total").increment(by: fired.count)
        }
        writeTriggers(fired)
        decideLive(fired)
        return acks
    }

    /// Hands triggers fired on owned shards to the live campaign's decisions, with their profiles.
    /// Whether a trigger fired on `shard` waits for its row or its live decision to be recorded.
    func unsettledTriggers(_ shard: Int) -> Bool {
        if live?.undecided(shard: shard) == true { return true }
        // A copy whose takeover is not done yet holds what its predecessor fired undecided.
        if slots[shard]?.firedAsStandby.isEmpty == false || carried[shard] != nil { return true }
        return pendingTriggers.contains { ShardKey.shard(of: $0.subscriberID, shardCount: shardCount) == shard }
    }

    /// What a worker taking `shard` over by stream settles: the triggers not decided here yet,
    /// those a standby copy (streamed from when its owner is gone) fired for its owner, and those
    /// whose `retention_triggers` row is not written yet (PostgreSQL away), with those streamed here
    /// whose shard was not taken over yet: the receiver writes
    /// every one's row again (idempotently) and decides them, so none is lost when this worker
    /// exits before the database is back. Each trigger once.
    func handoffTriggers(_ shard: Int) -> [FiredTrigger] {
        let unwritten = pendingTriggers.filter { ShardKey.shard(of: $0.subscriberID, shardCount: shardCount) == shard }
        var seen = Set<String>()
        return ((live?.undecidedTriggers(shard: shard) ?? []) + (slots[shard]?.firedAsStandby ?? []) + (carried[shard] ?? []) + unwritten)
            .filter { seen.insert($0.triggerID).inserted }
    }

    /// Triggers a peer streamed with `shard`, kept only when they are the shard's (a subscriber of
    /// `ids`), recent enough to be decided, and at most as many as a standby remembers.
    static func received(_ triggers: [FiredTrigger], shard: Int, shardCount: Int, ids: Set<Int64>, now: Int64) -> [FiredTrigger] {
        let oldest = now - standbyTriggerMemoryMillis
        let kept = triggers.filter {
            $0.firedAt >= oldest && ids.contains($0.subscriberID) && ShardKey.shard(of: $0.subscriberID, shardCount: shardCount) == shard
        }
        return Array(kept.suffix(standbyTriggerMemory))
    }

    private func decideLive(_ fired: [FiredTrigger]) {
        guard let live, !fired.isEmpty else { return }
        var inputs: [LiveInput] = []
        inputs.reserveCapacity(fired.count)
        for t in fired {
            let shard = ShardKey.shard(of: t.subscriberID, shardCount: shardCount)
            guard let slot = slots[shard], case .owner = slot.role, !slot.lost, let profile = slot.store.store.profile(of: t.subscriberID) else { continue }
            inputs.append(LiveInput(trigger: t, shard: shard, profile: profile))
        }
        guard !inputs.isEmpty else { return }
        let owned = Set(slots.compactMap { s, slot -> Int? in if case .owner = slot.role, !slot.lost { return s } else { return nil } })
        live.submit(inputs, owned: owned)
    }

    /// Publishes triggers on the PUB socket, best-effort (a slow subscriber loses messages, never
    /// slows the events).
    private func publish(_ triggers: [FiredTrigger]) {
        guard let publisher else { return }
        for t in triggers {
            _ = try? publisher.send([Array("trigger".utf8), t.wireBytes()], wait: false)
        }
    }

    /// Writes fired triggers (and those waiting from before); keeps them when the database is away.
    private func writeTriggers(_ triggers: [FiredTrigger]) {
        pendingTriggers += triggers
        guard !pendingTriggers.isEmpty else { return }
        do {
            try EventLog.insert(try db(), triggers: pendingTriggers)
            pendingTriggers.removeAll(keepingCapacity: true)
        } catch {
            if (error as? PostgresError)?.isUnavailable ?? true { connection = nil }
            // Said at most every 10 s (tried with every group and standby refresh while it lasts).
            let now = ContinuousClock.now
            if triggersWarned.map({ now - $0 > .seconds(10) }) ?? true {
                triggersWarned = now
                logger.warning("trigger rows could not be written yet; kept in memory and written again",
                               metadata: ["waiting": "\(pendingTriggers.count)", "error": "\(error)"])
            }
            if pendingTriggers.count > 1_000_000 {
                // Bounded: the oldest are dropped from memory (they were published; their rows are
                // written again only if the shard's log is replayed, e.g. by its next owner).
                logger.error("too many triggers wait for the database; the oldest are dropped from memory",
                             metadata: ["waiting": "\(pendingTriggers.count)"])
                pendingTriggers.removeFirst(pendingTriggers.count - 1_000_000)
            }
        }
    }

    /// Writes the trigger rows left unwritten, waiting `resyncLockTimeout` at most for a lock
    /// (every shard's events wait behind this on the event thread).
    private func writePendingTriggers() {
        guard !pendingTriggers.isEmpty, let c = try? db() else { return }
        let short = (try? c.execute("SET lock_timeout TO '\(max(1, Int(Self.resyncLockTimeout / .milliseconds(1))))ms'")) != nil
        writeTriggers([])
        // A session left with the short wait would fail the next group's write: replaced instead.
        if short, c.isOpen, (try? c.execute("SET lock_timeout TO '\(Self.lockTimeout)'")) == nil { connection = nil }
    }

    /// When `writeTriggers` last said it failed.
    private var triggersWarned: ContinuousClock.Instant?

    private func ensurePartitions(_ c: PostgresConnection, now: Int64) throws {
        let day = Int32(clamping: Timestamp.floorDiv(now, Timestamp.millisPerDay))
        guard day != partitionsDay else { return }
        try EventLog.ensurePartitions(c, around: day)
        partitionsDay = day
    }

    // MARK: Replay

    /// Applies what the log holds for `shards` beyond their copies (no publishing: what was fired
    /// then was published then; trigger rows are written again, idempotently).
    func catchUp(_ shards: [Int], now: Int64, fenced: Bool = false, lockTimeout: Duration? = nil) throws {
        guard let applier else { return }
        let c = try db()
        if let lockTimeout {
            try c.execute("SET lock_timeout TO '\(max(1, Int(lockTimeout / .milliseconds(1))))ms'")
        }
        defer {
            // A session left with the short wait would fail the next group's write: replaced instead.
            if lockTimeout != nil, c.isOpen, (try? c.execute("SET lock_timeout TO '\(Self.lockTimeout)'")) == nil { connection = nil }
        }
        for s in shards {
            guard let slot = slots[s] else { continue }
            var total = 0
            // A copy loaded from PostgreSQL never applies what was received before its profiles'
            // snapshot (`receivedFloor`): its profiles hold those already — but a subscriber whose
            // row is older (the last import did not carry it) gets what was received after its own.
            let floor = slot.events.replayFloor
            while true {
                let rows = try EventLog.events(c, shard: s, afterSeq: slot.events.appliedSeq, receivedAfter: floor)
                if rows.isEmpty {
                    slot.events.olderProfiles = [:]  // caught up: what comes next was received after every floor
                    break
                }
                var fired: [FiredTrigger] = []
                for row in rows {
                    guard slot.events.holdsNot(row) else {
                        slot.events.appliedSeq = max(slot.events.appliedSeq, row.seq)
                        continue
                    }
                    if case .applied(_, _, let t) = applier.apply(row.event, seq: row.seq, now: row.receivedMillis, events: slot.events, store: slot.store.store) {
                        fired += t
                    }
                    slot.events.appliedSeq = max(slot.events.appliedSeq, row.seq)
                }
                total += rows.count
                writeTriggers(fired)
                // An owner taking the shard over decides what its previous owner fired but may not
                // have recorded (recorded ones come back 'already'); a standby never decides.
                if fenced {
                    decideLive(fired)
                } else if let live, live.runID.load(ordering: .relaxed) != 0, !fired.isEmpty {
                    slot.firedAsStandby += fired
                    let oldest = Self.nowMillis() - Self.standbyTriggerMemoryMillis
                    slot.firedAsStandby.removeAll { $0.firedAt < oldest }
                    if slot.firedAsStandby.count > Self.standbyTriggerMemory { slot.firedAsStandby.removeFirst(slot.firedAsStandby.count - Self.standbyTriggerMemory) }
                }
            }
            // An owner numbers its next events past the log's last number (held under its fence:
            // nobody else writes the shard). A standby never jumps: its owner is writing meanwhile.
            if fenced, let last = try EventLog.lastSeqs(c, shards: [s])[s] { slot.events.appliedSeq = max(slot.events.appliedSeq, last) }
            slot.unsynced = false
            if total > 0 { logger.info("replayed the shard's events from the log", metadata: ["shard": "\(s)", "events": "\(total)"]) }
        }
    }

    /// Owned `shards` whose log this copy may not have read to its end: their fences are raised
    /// again first — which waits until a write of an earlier connection still holding one has
    /// committed or rolled back, so its outcome is in the log the replay reads — then the log
    /// is replayed. A shard whose fence a newer owner holds is lost. Left unsynced (its events
    /// answered `retry`) while PostgreSQL cannot be reached.
    private func resync(_ shards: [Int], now: Int64) {
        struct Fence: Hashable { var term: Int64, epoch: Int64 }
        var byFence: [Fence: [Int]] = [:]
        for s in shards {
            if case .owner(let term, let epoch)? = slots[s]?.role, slots[s]?.lost == false { byFence[Fence(term: term, epoch: epoch), default: []].append(s) }
        }
        guard !byFence.isEmpty else { return }
        do {
            let c = try db()
            var ready: [Int] = []
            for (fence, group) in byFence {
                // A short wait: this runs on the event thread, before every shard's events.
                // All or none: the shards another owner holds are marked lost, and the others raised
                // again without them.
                var remaining = group
                while !remaining.isEmpty {
                    let (raised, refused) = try EventLog.fence(c, shards: remaining, node: node, term: fence.term, epoch: fence.epoch,
                                                               lockTimeout: Self.resyncLockTimeout)
                    for s in refused.sorted() {
                        slots[s]?.lost = true
                        logger.warning("another owner holds the shard's event fence now; its events go there", metadata: ["shard": "\(s)"])
                    }
                    for (s, generation) in raised {
                        slots[s]?.generation = generation
                        ready.append(s)
                    }
                    remaining = refused.isEmpty ? [] : remaining.filter { !refused.contains($0) }
                }
            }
            // One shard whose log is locked stays unsynced; the others replay.
            var blocked: PostgresError?
            for s in ready {
                do {
                    try catchUp([s], now: now, fenced: true, lockTimeout: Self.resyncLockTimeout)
                } catch let error as PostgresError where error.sqlState == "55P03" {
                    blocked = error
                }
            }
            if let blocked { throw blocked }
        } catch {
            if (error as? PostgresError)?.isUnavailable ?? true { connection = nil }
            // Said at most every 10 s (this is tried before every group while it lasts).
            let now = ContinuousClock.now
            if resyncWarned.map({ now - $0 > .seconds(10) }) ?? true {
                resyncWarned = now
                logger.warning("the log of shards whose last write is unknown could not be replayed yet; their events are answered retry",
                               metadata: ["shards": "\(shards.sorted().prefix(16))", "error": "\(error)"])
            }
        }
    }

    /// When `resync` last said it failed.
    private var resyncWarned: ContinuousClock.Instant?

    func own(_ items: [OwnItem], term: Int64, epoch: Int64) throws {
        // An earlier takeover of these shards still waiting is superseded by this one.
        forgetPending(Set(items.map(\.shard)))
        let c = try db()
        try ensurePartitions(c, now: Self.nowMillis())
        let floor = try EventLog.profilesAsOf(c) ?? 0
        // Every slot first (a copy with no event state cannot be owned: it is refused before any
        // fence moves), then the fences, all or none.
        var prepared: [(OwnItem, Slot)] = []
        for item in items {
            guard let slot = adopt(item, role: slots[item.shard]?.role ?? .standby, floor: floor) else {
                throw ClusterError("\(node) holds shard \(item.shard) without its event state; it must be loaded again")
            }
            prepared.append((item, slot))
        }
        let (held, refused) = try EventLog.fence(c, shards: items.map(\.shard), node: node, term: term, epoch: epoch)
        guard refused.isEmpty else {
            throw ClusterError("\(node) cannot own shards \(refused.sorted().prefix(8)) under term \(term) epoch \(epoch): a newer owner holds their event fence")
        }
        var firedAsStandby: [FiredTrigger] = []
        for (item, slot) in prepared {
            slot.role = .owner(term: term, epoch: epoch)
            slot.generation = held[item.shard] ?? 0
            slot.lost = false
            // Not synced until the replay below has read the log to its end: should it fail half-way
            // (PostgreSQL away), the shard's events are answered `retry` and the next group replays
            // first, instead of numbering new events from a copy that misses the previous owner's.
            slot.unsynced = true
            firedAsStandby += slot.firedAsStandby
            slot.firedAsStandby = []
        }
        decideLive(firedAsStandby)
        publishBlocked()  // replaying from now until the replay below has read the log to its end
        try catchUp(items.map(\.shard), now: Self.nowMillis(), fenced: true)
    }

    /// Owns `items`, or, while PostgreSQL cannot be reached, takes them over later (every standby
    /// refresh): the shards move and answer queries meanwhile; their events are refused until the
    /// fences are raised and the log replayed.
    func ownOrDefer(_ items: [OwnItem], term: Int64, epoch: Int64) throws {
        defer { publishBlocked() }
        do {
            try own(items, term: term, epoch: epoch)
        } catch let error as PostgresError where Self.deferrable(error) {
            if error.isUnavailable { connection = nil }
            logger.warning("PostgreSQL is away or busy: the shards' events wait until their fences can be raised", metadata: ["shards": "\(items.count)", "error": "\(error)"])
            pendingOwn.append((items, term, epoch))
        }
    }

    /// An error a takeover is tried again after (every standby refresh): PostgreSQL away, or a
    /// lock or statement timeout, a deadlock, a server short of resources. A refusal (a newer
    /// owner's fence, a copy without event state) is final.
    static func deferrable(_ error: PostgresError) -> Bool {
        error.isUnavailable || LiveDecisions.isTransient(error)
    }

    /// Drops the deferred takeovers of `shards` (released, demoted to standby, or taken over again).
    private func forgetPending(_ shards: Set<Int>) {
        guard !pendingOwn.isEmpty else { return }
        pendingOwn = pendingOwn.compactMap { items, term, epoch in
            let kept = items.filter { !shards.contains($0.shard) }
            return kept.isEmpty ? nil : (kept, term, epoch)
        }
    }

    func standBy(_ items: [OwnItem]) throws {
        // A shard demoted to standby is not taken over later by a takeover still waiting.
        forgetPending(Set(items.map(\.shard)))
        defer { publishBlocked() }
        // The copies are adopted even while PostgreSQL is away (a copy loaded from the table carries
        // the as_of read with it; the one in force only serves a copy without): they follow the log
        // once it is back, and a promotion finds their event state.
        let floor = (try? EventLog.profilesAsOf(try db())) ?? 0
        for item in items {
            guard adopt(item, role: .standby, floor: floor) != nil else {
                throw ClusterError("\(node) holds shard \(item.shard) without its event state; it must be loaded again")
            }
        }
        try catchUp(items.map(\.shard), now: Self.nowMillis())
    }

    /// Whether this worker has the event state of `shard` (a copy without it must be loaded again).
    func holds(_ shard: Int) -> Bool { slots[shard] != nil }

    /// The slot of `item`'s shard: the one held (same profiles), one from the snapshot streamed
    /// with the profiles, or a new one for profiles fresh from PostgreSQL (which never apply events
    /// received before `floor`, the profiles' snapshot). Nil for profiles that came with no event
    /// state from anywhere: replaying the log onto them could apply events twice.
    private func adopt(_ item: OwnItem, role: Role, floor: Int64) -> Slot? {
        if let slot = slots[item.shard], slot.store.store === item.store.store {
            slot.role = role
            return slot
        }
        let events: ShardEvents
        if let snapshot = item.snapshot {
            events = ShardEvents(snapshot)
        } else if item.fromDatabase {
            events = ShardEvents(shard: item.shard)
            // The `as_of` read with the profiles; the one read now only for a copy loaded without it.
            events.receivedFloor = item.store.generation > 0 ? (item.store.asOf ?? 0) : floor
            if item.store.generation > 0 { events.olderProfiles = item.store.older }
        } else {
            return nil
        }
        // Event state that arrives after an erasure (with a streamed copy or a snapshot) loses the
        // erased subscribers; the profiles were cleaned by `WorkerActor.assign` before hosting.
        forgetErased(in: events)
        // The older rows' floors live in the event state until it has caught up, not with the store.
        var kept = item.store
        kept.older = [:]
        let slot = Slot(store: kept, events: events, role: role)
        // A copy replacing an owned one keeps the fence generation raised for it (until `own`
        // raises it again), not 0, which would make its next write find the fence lost.
        slot.generation = slots[item.shard]?.generation ?? 0
        // What the sender had not settled of the triggers its events fired (a streamed copy):
        // decided when this copy is owned; their rows written (again: `ON CONFLICT DO NOTHING`)
        // with the next write, as the sender may have exited without writing them.
        if var triggers = carried.removeValue(forKey: item.shard), !item.fromDatabase {
            if !erasures.isEmpty { triggers.removeAll { erasures.ids.contains($0.subscriberID) } }
            slot.firedAsStandby = triggers
            pendingTriggers += triggers
        }
        slots[item.shard] = slot
        return slot
    }

    func release(_ shards: [Int]) {
        for s in shards { slots[s] = nil; carried[s] = nil }
        // A takeover still waiting for PostgreSQL no longer applies to shards that went: taken
        // later, it would adopt a copy this worker no longer hosts.
        forgetPending(Set(shards))
        publishBlocked()
    }

    func refreshStandbys() {
        defer { publishBlocked() }
        // Trigger rows left unwritten (PostgreSQL was away) are written once it answers, not only
        // with the next group's: no events may come for a while.
        writePendingTriggers()
        if !pendingOwn.isEmpty {
            let waiting = pendingOwn
            pendingOwn = []
            for (items, term, epoch) in waiting {
                do { try own(items, term: term, epoch: epoch) } catch {
                    if let e = error as? PostgresError, Self.deferrable(e) { pendingOwn.append((items, term, epoch)) }
                    logger.warning("taking over the shards' events failed", metadata: ["error": "\(error)"])
                }
            }
        }
        // Owned shards left unsynced replay now, not only before their next events (which are
        // answered `retry` until they have).
        let unsynced = slots.filter { $0.value.unsynced }.map(\.key)
        if !unsynced.isEmpty { resync(unsynced, now: Self.nowMillis()) }
        let standbys = slots.filter { if case .standby = $0.value.role { return true } else { return false } }.map(\.key)
        guard !standbys.isEmpty else { return }
        do {
            try catchUp(standbys, now: Self.nowMillis())
        } catch {
            logger.debug("standby copies could not read the log", metadata: ["error": "\(error)"])
            if (error as? PostgresError)?.isUnavailable ?? true { connection = nil }
        }
    }

    /// Notes the counters at most once a second (the rates read them).
    func sample() {
        let now = ContinuousClock.now
        if let last = samples.last, now - last.at < .seconds(1) { return }
        samples.append((now, counts.applied, counts.triggers))
        if samples.count > 61 { samples.removeFirst(samples.count - 61) }
    }

    /// Counts the owned shards not taking events (those waiting for a deferred takeover once)
    /// and publishes them in `blocked`.
    @discardableResult
    func publishBlocked() -> (replaying: Int, waiting: Int, lost: Int) {
        let waiting = Set(pendingOwn.flatMap { $0.0.map(\.shard) })
        var replaying = 0, lost = 0
        for (shard, slot) in slots where !waiting.contains(shard) {
            guard case .owner = slot.role else { continue }
            if slot.lost { lost += 1 } else if slot.unsynced { replaying += 1 }
        }
        blocked.withLock { $0 = (replaying, waiting.count, lost) }
        return (replaying, waiting.count, lost)
    }

    func stats() -> EventStats {
        sample()
        var s = counts
        // Over the last 10 seconds (or what there is of them).
        let now = ContinuousClock.now
        if let base = samples.first(where: { now - $0.at <= .seconds(11) }), let last = samples.last, last.at > base.at {
            let seconds = Double((last.at - base.at) / .milliseconds(1)) / 1000
            s.eventsPerSecond = Double(last.applied - base.applied) / seconds
            s.triggersPerSecond = Double(last.triggers - base.triggers) / seconds
        }
        s.subscribersWithState = slots.values.reduce(0) { $0 + $1.events.subscribers.count }
        s.stateBytes = slots.values.reduce(0) { $0 + $1.events.bytes }
        (s.shardsReplaying, s.shardsWaiting, s.shardsLost) = publishBlocked()
        if let live {
            s.liveRun = live.runID.load(ordering: .relaxed)
            s.liveDecided = live.decided.load(ordering: .relaxed)
            s.liveSkipped = live.skipped.load(ordering: .relaxed)
        }
        lastStats.withLock { $0 = s }
        return s
    }
}

/// An event's identity within a group.
struct EventKey: Hashable {
    let source: String
    let eventID: String
    let at: Int64
    init(_ e: SubscriberEvent) {
        source = e.source
        eventID = e.eventID
        at = e.at
    }
}
