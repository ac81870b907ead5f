import ClusterSystem
import Distributed
import SubscriberProfiles
import WireFormat

/// Erased ids a worker remembers (most recent kept, at most `Erasure.remembered`): a copy that
/// arrives after the erasure (streamed from a peer that exported it just before, loaded from a
/// table not yet cleaned) is cleaned of them before it answers. Touched only on the event thread.
struct RememberedErasures {
    private(set) var ids: Set<Int64> = []
    private var order: [Int64] = []
    private var head = 0

    var isEmpty: Bool { ids.isEmpty }

    mutating func remember(_ new: [Int64], limit: Int = Erasure.remembered) {
        for id in new where ids.insert(id).inserted { order.append(id) }
        while ids.count > limit, head < order.count {
            ids.remove(order[head])
            head += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

extension Confined {
    /// Erases `ids` from `stores` (every copy the worker holds) and from its shards' event state
    /// (windowed buckets, recent events, cool-downs, triggers waiting to be written), and
    /// remembers them; their triggers waiting for a live decision are dropped first (a decision
    /// under way is recorded before this returns, for the PostgreSQL phase to delete). Runs on the
    /// event thread: between two event groups, and the store's one writer.
    /// - Throws: when a live decision of theirs under way did not end in time (waiting for the
    ///   database): only their waiting triggers were dropped here, and the erasure must not go on
    ///   to PostgreSQL.
    func erase(_ ids: [Int64], stores: [Int: LoadedShard]) throws -> WorkerErasure {
        if let live, !live.forget(Set(ids)) {
            throw ClusterError("\(node): a live decision of these subscribers under way did not end within 20 s (PostgreSQL slow or away); their triggers waiting for a decision were dropped, nothing else was erased on this worker: run the erasure again")
        }
        erasures.remember(ids)
        var found = Set<Int64>(), copies = 0
        var cleaned = Set<ObjectIdentifier>()
        for loaded in stores.values {
            cleaned.insert(ObjectIdentifier(loaded.store))
            for id in ids where loaded.store.erase(id: id) {
                found.insert(id)
                copies += 1
            }
        }
        let erased = Set(ids)
        for slot in slots.values {
            if !cleaned.contains(ObjectIdentifier(slot.store.store)) {
                for id in ids where slot.store.store.erase(id: id) {
                    found.insert(id)
                    copies += 1
                }
            }
            forget(erased, in: slot.events)
            slot.firedAsStandby.removeAll { erased.contains($0.subscriberID) }
        }
        pendingTriggers.removeAll { erased.contains($0.subscriberID) }
        for (shard, triggers) in carried {
            let kept = triggers.filter { !erased.contains($0.subscriberID) }
            carried[shard] = kept.isEmpty ? nil : kept
        }
        return WorkerErasure(found: found.sorted(), copies: copies)
    }

    /// Cleans copies arriving on this worker of every id erased before (see `RememberedErasures`).
    /// - Returns: the rows erased.
    @discardableResult
    func cleanArriving(_ stores: [Int: LoadedShard]) -> Int {
        guard !erasures.isEmpty else { return 0 }
        var n = 0
        for loaded in stores.values {
            if loaded.store.count < erasures.ids.count {
                // Fewer subscribers than remembered ids: look each subscriber up instead.
                var found: [Int64] = []
                loaded.store.forEachRun { _, rows, ids, _ in
                    for r in 0..<rows where erasures.ids.contains(ids[r]) { found.append(ids[r]) }
                }
                for id in found where loaded.store.erase(id: id) { n += 1 }
            } else {
                for id in erasures.ids where loaded.store.erase(id: id) { n += 1 }
            }
        }
        return n
    }

    /// Drops erased subscribers' event state from a shard's events (a slot adopted from a snapshot).
    func forgetErased(in events: ShardEvents) {
        guard !erasures.isEmpty else { return }
        forget(erasures.ids, in: events)
    }

    private func forget(_ ids: Set<Int64>, in events: ShardEvents) {
        if events.subscribers.count < ids.count {
            for id in events.subscribers.keys where ids.contains(id) { events.subscribers[id] = nil }
        } else {
            for id in ids { events.subscribers[id] = nil }
        }
        events.cooldowns.forget(subscribers: ids)
    }
}

extension EventIngest {
    /// See `Confined.erase`: on the event thread, between two groups.
    func erase(_ ids: [Int64], stores: [Int: LoadedShard]) async throws -> WorkerErasure {
        let confined = confined
        return try await thread.run { try confined.erase(ids, stores: stores) }
    }

    /// See `Confined.cleanArriving`.
    func cleanArriving(_ stores: [Int: LoadedShard]) async throws -> Int {
        let confined = confined
        return try await thread.run { confined.cleanArriving(stores) }
    }
}

extension WorkerActor {
    /// Erases `ids` from every copy of a shard this worker holds (owner, standby, loading) and
    /// from their event state, and remembers them for copies that arrive later (coordinator only).
    public distributed func erase(_ ids: BulkArray<Int64>, term: Int64) async throws -> WorkerErasure {
        try obey(term: term, epoch: nil, "erase")
        let wanted = try Erasure.validated(ids.elements)
        let held = stores
        let result = try await events.erase(wanted, stores: held)
        // Counts only: the ids themselves stay out of the logs.
        logger.notice("erased subscribers", metadata: ["subscribers": "\(wanted.count)", "found": "\(result.found.elements.count)",
                                                        "copies": "\(result.copies)", "shards": "\(held.count)"])
        return result
    }

    /// The erasure's PostgreSQL transaction moved `subscriber_profiles` from generation `from` to
    /// `to`: copies that descended from `from` are, now erased here as there, those of `to` (so
    /// their snapshots can still be written).
    /// - Returns: the copies moved to `to`.
    public distributed func profilesErased(from: Int64, to: Int64, term: Int64) throws -> Int {
        try obey(term: term, epoch: nil, "profilesErased")
        guard from > 0, to > from else { return 0 }
        var moved = 0
        for (shard, loaded) in stores where loaded.generation == from {
            stores[shard]?.generation = to
            moved += 1
        }
        return moved
    }
}
