import SubscriberProfiles
import WireFormat

/// Erasing subscribers who asked to be forgotten (`churngrid subscribers erase`, docs/models.md,
/// "Erasure"): the request as checked, and what was done.
///
/// The order, and why (`CoordinatorActor.erase`): membership changes wait; every worker erases
/// the ids from every copy it holds (owner, standby, one still loading) and remembers them, so a
/// copy that arrives later is cleaned before it answers; only when every worker has confirmed
/// does one PostgreSQL transaction delete the rows (profiles, scores, events, triggers, actions,
/// contacts, consent, outcomes, the job summaries' top lists) and the shards' snapshots. A worker
/// that does not confirm stops the erasure before PostgreSQL is touched: it is run again, and
/// erasing twice is harmless.
public enum Erasure {
    /// Subscribers per request at most.
    public static let maxSubscribers = 10_000
    /// Ids a worker remembers at most (most recent kept): the window in which a copy loaded or
    /// streamed from a source that had not erased yet can still arrive.
    static let remembered = 1_000_000

    /// The ids of a request: any subscriber id (`ProfileStore.erasedID` is none), at most
    /// `maxSubscribers`, each once (in the order given).
    /// - Throws: `ClusterError` naming the first bad id.
    public static func validated(_ ids: [Int64]) throws(ClusterError) -> [Int64] {
        guard !ids.isEmpty else { throw ClusterError("no subscriber ids to erase") }
        var seen = Set<Int64>(), out: [Int64] = []
        for (k, id) in ids.enumerated() {
            guard id != ProfileStore.erasedID else { throw ClusterError("subscriber id \(id) (position \(k + 1)) is not a subscriber id: it marks erased rows") }
            if seen.insert(id).inserted { out.append(id) }
        }
        guard out.count <= maxSubscribers else {
            throw ClusterError("\(out.count) subscribers in one erasure; at most \(maxSubscribers): split the list")
        }
        return out
    }
}

/// An erasure refused because something else runs that it must not overlap (a job, a campaign
/// run, another erasure): try again when it has finished. A caller in the coordinator's process
/// (the HTTP API) answers 409; a remote caller sees the text.
public struct ErasureRefusal: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What an erasure did, for the caller (never stored: the audit log records only that it happened).
public struct ErasureReport: Sendable, Codable, WireCodable, Equatable {
    /// Distinct ids asked for.
    public var subscribers = 0
    /// Ids some shard held (the others were unknown to the cluster's memory).
    public var foundInMemory = 0
    /// In-memory copies erased (an owner and its standby are two).
    public var copies = 0
    /// Workers that confirmed.
    public var workers = 0
    /// Rows deleted per table, by table name.
    public var rows: [String: Int] = [:]
    /// Shard snapshots deleted (written again by the next `churngrid profiles snapshot`).
    public var snapshots = 0
    public var seconds = 0.0

    public init() {}

    public func encode(to w: inout WireWriter) {
        w.write(subscribers); w.write(foundInMemory); w.write(copies); w.write(workers)
        let tables = rows.keys.sorted()
        w.write(tables); w.write(tables.map { rows[$0] ?? 0 })
        w.write(snapshots); w.write(seconds)
    }

    public init(from r: inout WireReader) throws(WireError) {
        subscribers = try r.read(); foundInMemory = try r.read(); copies = try r.read(); workers = try r.read()
        let at = r.offset
        let tables: [String] = try r.read(), counts: [Int] = try r.read()
        guard tables.count == counts.count else { throw WireError(offset: at, expected: "one row count per table") }
        for (t, n) in zip(tables, counts) { rows[t] = n }
        snapshots = try r.read(); seconds = try r.read()
    }
}

/// One worker's part of an erasure.
public struct WorkerErasure: Sendable, WireCodable {
    /// Ids found in some copy here.
    public var found: BulkArray<Int64>
    /// Copies erased here.
    public var copies: Int

    public init(found: [Int64], copies: Int) {
        self.found = BulkArray(found)
        self.copies = copies
    }

    public func encode(to w: inout WireWriter) { w.write(found); w.write(copies) }
    public init(from r: inout WireReader) throws(WireError) { found = try r.read(); copies = try r.readCount("copies erased") }
}
