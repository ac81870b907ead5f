import SubscriberEvents
import WireFormat

/// Events sent to one worker at once (`WorkerActor.ingest(_:)`), column by column, each with the
/// shard the sender's map puts it in.
public struct EventBatch: Sendable, WireCodable {
    public var sources: [String]
    public var eventIDs: [String]
    public var subscriberIDs: BulkArray<Int64>
    /// `EventType.index` of each.
    public var types: BulkArray<UInt8>
    /// ms since 1970.
    public var at: BulkArray<Int64>
    public var values: BulkArray<Double>
    public var shards: BulkArray<Int32>

    /// The most events one batch may carry.
    public static let maxCount = 10_000

    public init(_ events: [SubscriberEvent], shards: [Int32]) {
        sources = events.map(\.source)
        eventIDs = events.map(\.eventID)
        subscriberIDs = BulkArray(events.map(\.subscriberID))
        types = BulkArray(events.map { UInt8($0.type.index) })
        at = BulkArray(events.map(\.at))
        values = BulkArray(events.map(\.value))
        self.shards = BulkArray(shards)
    }

    public var count: Int { eventIDs.count }

    /// Event `i` (the type index is checked at decoding).
    public func event(_ i: Int) -> SubscriberEvent {
        var e = SubscriberEvent(eventID: eventIDs[i], source: sources[i], subscriberID: subscriberIDs.elements[i],
                                type: EventType.byIndex[Int(types.elements[i])], at: at.elements[i])
        e.value = values.elements[i]
        return e
    }

    public func encode(to w: inout WireWriter) {
        w.write(sources); w.write(eventIDs); w.write(subscriberIDs); w.write(types); w.write(at); w.write(values); w.write(shards)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let start = r.offset
        sources = try r.read(); eventIDs = try r.read(); subscriberIDs = try r.read(); types = try r.read()
        at = try r.read(); values = try r.read(); shards = try r.read()
        let n = eventIDs.count
        guard n <= Self.maxCount else { throw WireError(offset: start, expected: "at most \(Self.maxCount) events in a batch, found \(n)") }
        guard sources.count == n, subscriberIDs.elements.count == n, types.elements.count == n, at.elements.count == n,
              values.elements.count == n, shards.elements.count == n else {
            throw WireError(offset: start, expected: "an event batch with every column of the same length (\(n) event ids)")
        }
        let typeCount = EventType.allCases.count
        if let bad = types.elements.first(where: { Int($0) >= typeCount }) {
            throw WireError(offset: start, expected: "event type codes below \(typeCount), found \(bad)")
        }
    }
}

/// What became of one event sent to a worker.
public enum EventAckStatus: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Logged durably and applied (its `seq` is the shard's number for it).
    case accepted = 0
    /// The same (source, event_id, at) was logged before: not applied again.
    case duplicate = 1
    /// Not applied, for `reason` (never retried: the event itself is wrong).
    case rejected = 2
    /// This worker does not own the event's shard (under the current term and epoch): resend with
    /// a fresh shard map.
    case notOwner = 3
    /// The worker's queue is full: resend after `retryAfterMillis`.
    case busy = 4
    /// The outcome is not known (the database went away mid-write): resend; a resent event that
    /// was logged comes back as a duplicate.
    case retry = 5

    public var description: String {
        switch self {
        case .accepted: "accepted"
        case .duplicate: "duplicate"
        case .rejected: "rejected"
        case .notOwner: "not_owner"
        case .busy: "busy"
        case .retry: "retry"
        }
    }

    /// The event is settled (nothing to resend).
    public var isFinal: Bool { self == .accepted || self == .duplicate || self == .rejected }
}

/// A worker's answer to an `EventBatch`, in the batch's order.
public struct EventAcks: Sendable, WireCodable {
    public var statuses: BulkArray<UInt8>
    /// Per event: the shard's sequence number when accepted, else 0.
    public var seqs: BulkArray<Int64>
    /// Per event: the `RejectionReason` index when rejected, else 0.
    public var reasons: BulkArray<UInt8>
    /// When some are `busy`: how long to wait before resending them.
    public var retryAfterMillis: Int64

    public init(count: Int) {
        statuses = BulkArray([UInt8](repeating: EventAckStatus.retry.rawValue, count: count))
        seqs = BulkArray([Int64](repeating: 0, count: count))
        reasons = BulkArray([UInt8](repeating: 0, count: count))
        retryAfterMillis = 0
    }

    public var count: Int { statuses.elements.count }

    public func status(_ i: Int) -> EventAckStatus { EventAckStatus(rawValue: statuses.elements[i]) ?? .retry }

    public func reason(_ i: Int) -> RejectionReason? {
        guard status(i) == .rejected else { return nil }
        let k = Int(reasons.elements[i])
        return k < RejectionReason.allCases.count ? RejectionReason.allCases[k] : nil
    }

    mutating func set(_ i: Int, _ status: EventAckStatus, seq: Int64 = 0, reason: RejectionReason? = nil) {
        statuses.elements[i] = status.rawValue
        seqs.elements[i] = seq
        reasons.elements[i] = reason.flatMap { r in RejectionReason.allCases.firstIndex(of: r).map { UInt8($0) } } ?? 0
    }

    public func encode(to w: inout WireWriter) { w.write(statuses); w.write(seqs); w.write(reasons); w.write(retryAfterMillis) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        statuses = try r.read(); seqs = try r.read(); reasons = try r.read(); retryAfterMillis = try r.read()
        let n = statuses.elements.count
        guard seqs.elements.count == n, reasons.elements.count == n else { throw WireError(offset: at, expected: "an ack per event in every column") }
    }
}

/// The trigger rules the coordinator runs with (`coordinator --triggers FILE`), sent to every
/// worker with its assignments; empty bytes: no triggers.
public struct TriggerPackage: Sendable, WireCodable, Equatable {
    public var source: String
    public var bytes: BulkArray<UInt8>
    public init(source: String, bytes: [UInt8]) {
        self.source = source
        self.bytes = BulkArray(bytes)
    }
    public static let none = TriggerPackage(source: "", bytes: [])
    public func encode(to w: inout WireWriter) { w.write(source); w.write(bytes) }
    public init(from r: inout WireReader) throws(WireError) { source = try r.read(); bytes = try r.read() }
}

/// One fired trigger: what `retention_triggers` holds and the workers publish.
public struct FiredTrigger: Sendable, WireCodable, Codable, Equatable {
    /// Derived from the rule and the event (the same on a replay).
    public var triggerID: String
    public var rule: String
    public var subscriberID: Int64
    public var source: String
    public var eventID: String
    public var eventType: String
    /// ms since 1970.
    public var eventAt: Int64
    public var probabilityBefore: Double
    public var probabilityAfter: Double
    public var band: String
    public var reasons: [Reason]
    public var modelVersion: String
    public var node: String
    /// ms since 1970: when the worker fired it.
    public var firedAt: Int64

    public func encode(to w: inout WireWriter) {
        w.write(triggerID); w.write(rule); w.write(subscriberID); w.write(source); w.write(eventID); w.write(eventType); w.write(eventAt)
        w.write(probabilityBefore); w.write(probabilityAfter); w.write(band); w.write(reasons); w.write(modelVersion); w.write(node); w.write(firedAt)
    }

    public init(from r: inout WireReader) throws(WireError) {
        triggerID = try r.read(); rule = try r.read(); subscriberID = try r.read(); source = try r.read(); eventID = try r.read()
        eventType = try r.read(); eventAt = try r.read(); probabilityBefore = try r.read(); probabilityAfter = try r.read(); band = try r.read()
        reasons = try r.read(); modelVersion = try r.read(); node = try r.read(); firedAt = try r.read()
    }

    public init(triggerID: String, rule: String, subscriberID: Int64, source: String, eventID: String, eventType: String, eventAt: Int64,
                probabilityBefore: Double, probabilityAfter: Double, band: String, reasons: [Reason], modelVersion: String, node: String, firedAt: Int64) {
        self.triggerID = triggerID
        self.rule = rule
        self.subscriberID = subscriberID
        self.source = source
        self.eventID = eventID
        self.eventType = eventType
        self.eventAt = eventAt
        self.probabilityBefore = probabilityBefore
        self.probabilityAfter = probabilityAfter
        self.band = band
        self.reasons = reasons
        self.modelVersion = modelVersion
        self.node = node
        self.firedAt = firedAt
    }

    /// The id of `rule` firing on the event (source, event_id, at): a 128-bit FNV-1a in hex.
    public static func id(rule: String, source: String, eventID: String, at: Int64) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x6c62_272e_07bb_0142
        func mix(_ byte: UInt8) {
            a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x100_0000_01b3 &+ 0x9E37_79B9
        }
        for part in [rule, source, eventID, String(at)] {
            for byte in part.utf8 { mix(byte) }
            mix(0)
        }
        func hex(_ x: UInt64) -> String {
            let s = String(x, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return "t-" + hex(a) + hex(b)
    }
}

/// An event as applied to a subscriber, for `churngrid score ID`.
public struct RecentEvent: Sendable, WireCodable, Codable, Equatable {
    public var source: String
    public var eventID: String
    public var type: String
    public var at: Int64
    public var value: Double
    public var seq: Int64
    public var probabilityAfter: Double

    public init(source: String, eventID: String, type: String, at: Int64, value: Double, seq: Int64, probabilityAfter: Double) {
        self.source = source
        self.eventID = eventID
        self.type = type
        self.at = at
        self.value = value
        self.seq = seq
        self.probabilityAfter = probabilityAfter
    }

    public func encode(to w: inout WireWriter) {
        w.write(source); w.write(eventID); w.write(type); w.write(at); w.write(value); w.write(seq); w.write(probabilityAfter)
    }
    public init(from r: inout WireReader) throws(WireError) {
        source = try r.read(); eventID = try r.read(); type = try r.read(); at = try r.read(); value = try r.read(); seq = try r.read()
        probabilityAfter = try r.read()
    }
}

/// A worker's event figures and trigger feed (`churngrid status`, `churngrid triggers tail`).
public struct WorkerEventStatus: Sendable, WireCodable, Codable {
    public var name: String
    public var stats: EventStats
    /// The PUB endpoint of its triggers ("" when it publishes none).
    public var triggerFeed: String
    /// Its CURVE public key (what a subscriber of the feed connects with; "" without CURVE).
    public var publicKey: String

    public init(name: String, stats: EventStats, triggerFeed: String, publicKey: String) {
        self.name = name
        self.stats = stats
        self.triggerFeed = triggerFeed
        self.publicKey = publicKey
    }

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(triggerFeed); w.write(publicKey)
        w.write(stats.applied); w.write(stats.duplicates); w.write(stats.rejected); w.write(stats.triggers); w.write(stats.lagMillis)
        w.write(stats.subscribersWithState); w.write(stats.stateBytes); w.write(stats.groups); w.write(stats.writeMicros)
        w.write(stats.eventsPerSecond); w.write(stats.triggersPerSecond)
        w.write(stats.liveRun); w.write(stats.liveDecided); w.write(stats.liveSkipped)
        w.write(stats.shardsReplaying); w.write(stats.shardsWaiting); w.write(stats.shardsLost)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); triggerFeed = try r.read(); publicKey = try r.read()
        stats = EventStats()
        stats.applied = try r.read(); stats.duplicates = try r.read(); stats.rejected = try r.read(); stats.triggers = try r.read()
        stats.lagMillis = try r.read(); stats.subscribersWithState = try r.read(); stats.stateBytes = try r.read()
        stats.groups = try r.read(); stats.writeMicros = try r.read()
        stats.eventsPerSecond = try r.read(); stats.triggersPerSecond = try r.read()
        if r.remaining > 0 {  // from a worker one version older: no live campaign figures
            stats.liveRun = try r.read(); stats.liveDecided = try r.read(); stats.liveSkipped = try r.read()
        }
        if r.remaining > 0 {  // from a worker one version older: no blocked shards reported
            stats.shardsReplaying = try r.read(); stats.shardsWaiting = try r.read(); stats.shardsLost = try r.read()
        }
    }
}
