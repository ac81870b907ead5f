import SubscriberEvents
import SubscriberProfiles
import WireFormat

/// What one subscriber's events leave behind besides its profile: the windowed buckets that keep
/// its 30/90-day features right, the lowest probability of each of the last days (for "risen by
/// ≥ x within 7 days") and its last few events (`churngrid score ID`).
struct SubscriberEventState: Sendable, Equatable, WireCodable {
    var window: WindowedState
    /// (day, lowest probability that day), oldest first, at most `lowDays`.
    var lowDays: [Int32] = []
    var lows: [Float] = []
    /// Newest last, at most `recentCount`.
    var recent: [RecentEvent] = []

    static let lowDays = 8
    static let recentCount = 5

    init(window: WindowedState) { self.window = window }

    /// The lowest probability on the 7 days up to `day` (nil before any).
    func lowest7d(day: Int32) -> Float? {
        var best: Float?
        for (d, p) in zip(lowDays, lows) where Int(day) - Int(d) < 7 { best = min(best ?? p, p) }
        return best
    }

    /// Remembers probability `p` on `day`.
    mutating func note(_ p: Float, day: Int32) {
        if let last = lowDays.last, last == day {
            lows[lows.count - 1] = min(lows[lows.count - 1], p)
        } else if lowDays.last.map({ day > $0 }) ?? true {
            lowDays.append(day)
            lows.append(p)
            if lowDays.count > Self.lowDays {
                lowDays.removeFirst()
                lows.removeFirst()
            }
        } else if let k = lowDays.firstIndex(of: day) {
            lows[k] = min(lows[k], p)  // a late event's day is still kept
        }
    }

    mutating func remember(_ e: RecentEvent) {
        recent.append(e)
        if recent.count > Self.recentCount { recent.removeFirst() }
    }

    func encode(to w: inout WireWriter) {
        w.write(window); w.write(BulkArray(lowDays)); w.write(BulkArray(lows)); w.write(recent)
    }

    init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        window = try r.read()
        lowDays = try r.read(BulkArray<Int32>.self).elements
        lows = try r.read(BulkArray<Float>.self).elements
        recent = try r.read()
        guard lowDays.count == lows.count, lowDays.count <= Self.lowDays, recent.count <= Self.recentCount else {
            throw WireError(offset: at, expected: "a subscriber's event state with at most \(Self.lowDays) daily lows and \(Self.recentCount) recent events")
        }
    }
}


/// One shard's event state on its owner (or standby): the sequence number of the last event
/// applied, each touched subscriber's `SubscriberEventState`, and the triggers' cool-downs.
/// Touched only on the worker's event thread (`EventIngest`).
final class ShardEvents: @unchecked Sendable {
    // @unchecked: only the event thread reads or writes it (see `EventIngest`).
    let shard: Int
    var appliedSeq: Int64 = 0
    var subscribers: [Int64: SubscriberEventState] = [:]
    var cooldowns = TriggerCooldowns()
    /// The day the cool-downs were last expired (see `EventApplier`).
    var cooldownDay: Int32 = .min
    /// For a copy whose profiles came from PostgreSQL: events received up to this time (ms) are
    /// in its profiles already and are never applied to it (0: none).
    var receivedFloor: Int64 = 0
    /// For such a copy: its subscribers whose profile rows are older than `receivedFloor` (the last
    /// import did not carry them), with their rows' own `as_of` (ms). The log's events received
    /// after that are theirs to apply, including those before `receivedFloor`. Dropped once the
    /// copy has caught up with the log (`EventIngest.catchUp`).
    var olderProfiles: [Int64: Int64] = [:]
    /// Events applied here since the shard was hosted (live and replayed).
    var applied = 0

    init(shard: Int) { self.shard = shard }

    /// The log is read past this receive time (ms) to replay onto the copy: its profiles' snapshot,
    /// or an older row's own `as_of` when earlier; nil for a copy not loaded from the table.
    var replayFloor: Int64? {
        receivedFloor > 0 ? min(receivedFloor, olderProfiles.values.min() ?? .max) : nil
    }

    /// Whether the logged event `row` is not in the copy's profiles yet: received after the
    /// profiles' snapshot, or after the older row of its subscriber (`olderProfiles`).
    func holdsNot(_ row: LoggedEvent) -> Bool {
        guard receivedFloor > 0, row.receivedMillis <= receivedFloor else { return true }
        guard let own = olderProfiles[row.event.subscriberID] else { return false }
        return row.receivedMillis > own
    }

    /// The bytes the event state takes (the windowed buckets dominate).
    var bytes: Int {
        subscribers.values.reduce(0) { $0 + $1.window.bytes + 16 + $1.lows.count * 8 + $1.recent.count * 80 } + subscribers.count * 16 + cooldowns.bytes
    }

    /// The event state as it may travel (streamed, or written as a profile snapshot), or nil while
    /// older rows have not caught up with the log (`olderProfiles`): their floors do not travel,
    /// so the receiver loads the shard from the table instead, as for a copy with no event state.
    var travelling: ShardEventSnapshot? { olderProfiles.isEmpty ? snapshot : nil }

    var snapshot: ShardEventSnapshot {
        let ids = subscribers.keys.sorted()
        var s = ShardEventSnapshot(shard: shard, appliedSeq: appliedSeq, ids: ids, states: ids.compactMap { subscribers[$0] }, cooldowns: cooldowns)
        s.receivedFloor = receivedFloor
        return s
    }

    init(_ s: ShardEventSnapshot) {
        shard = s.shard
        appliedSeq = s.appliedSeq
        receivedFloor = s.receivedFloor
        cooldowns = s.cooldowns
        subscribers.reserveCapacity(s.ids.elements.count)
        for (id, state) in zip(s.ids.elements, s.states) { subscribers[id] = state }
    }
}

/// A shard's event state as it travels with its profiles to another worker.
struct ShardEventSnapshot: Sendable, WireCodable {
    var shard: Int
    var appliedSeq: Int64
    var ids: BulkArray<Int64>
    var states: [SubscriberEventState]
    var cooldowns: TriggerCooldowns
    var receivedFloor: Int64 = 0

    init(shard: Int, appliedSeq: Int64, ids: [Int64], states: [SubscriberEventState], cooldowns: TriggerCooldowns) {
        self.shard = shard
        self.appliedSeq = appliedSeq
        self.ids = BulkArray(ids)
        self.states = states
        self.cooldowns = cooldowns
    }

    func encode(to w: inout WireWriter) { w.write(shard); w.write(appliedSeq); w.write(ids); w.write(states); w.write(cooldowns); w.write(receivedFloor) }
    init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shard = try r.read(); appliedSeq = try r.read(); ids = try r.read(); states = try r.read(); cooldowns = try r.read()
        receivedFloor = try r.read()
        guard ids.elements.count == states.count, Set(ids.elements).count == ids.elements.count else {
            throw WireError(offset: at, expected: "one event state per distinct subscriber")
        }
    }
}
