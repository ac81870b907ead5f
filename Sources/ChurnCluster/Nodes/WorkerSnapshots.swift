import ClusterSystem
import Distributed
import Foundation
import Logging
import ProfileDatabase
import SubscriberProfiles
import WireFormat

/// What one worker's snapshot write did.
public struct SnapshotWrite: Sendable, WireCodable, Codable {
    public var worker: String
    public var written = 0
    public var subscribers = 0
    public var bytes = 0
    /// Shards not written, with why ("profile generation unknown", "no event state yet", "stale: …").
    public var skipped: [String] = []
    public var seconds = 0.0

    public init(worker: String) { self.worker = worker }

    public func encode(to w: inout WireWriter) {
        w.write(worker); w.write(written); w.write(subscribers); w.write(bytes); w.write(skipped); w.write(seconds)
    }

    public init(from r: inout WireReader) throws(WireError) {
        worker = try r.read(); written = try r.readCount("shards written"); subscribers = try r.readCount("subscribers written"); bytes = try r.readCount("bytes written")
        skipped = try r.read(); seconds = try r.read()
    }
}

extension WorkerActor {
    /// Shards encoded and written per PostgreSQL transaction.
    static let snapshotBatch = 32
    /// Further tries, a second apart, for shards whose triggers wait for their decision.
    static let snapshotTriggerRounds = 5

    /// Writes a snapshot of each of `shards` this worker owns: its profiles and event state,
    /// taken together on the event thread (so the snapshot's sequence number says exactly which
    /// logged events its profiles hold), encoded and written on a thread of its own. A shard whose
    /// profiles' generation is unknown or no longer current is skipped, with the reason.
    public distributed func writeSnapshots(_ shards: [Int], shardCount: Int) async throws -> SnapshotWrite {
        guard (1...ShardMap.maxShardCount).contains(shardCount) else { throw ClusterError("shard count \(shardCount) out of range") }
        let start = ContinuousClock.now
        let name = actorSystem.node.name
        var report = SnapshotWrite(worker: name)
        let held = ownedStores(shards.map { Int32(truncatingIfNeeded: $0) })
        for s in Set(shards) where held[s] == nil { report.skipped.append("shard \(s): not owned here") }
        let thread = BlockingThread(name: "cg-snapshot", niceness: 5)
        defer { thread.stop() }
        var order = held.keys.sorted()
        var next = 0
        // Shards whose triggers wait for their decision are tried again a few times, a second
        // apart (a decision usually takes milliseconds; a dry lease waits up to 30 s).
        var waiting: [Int] = [], rounds = 0
        while next < order.count || !waiting.isEmpty {
            if next >= order.count {
                rounds += 1
                if rounds > Self.snapshotTriggerRounds {
                    for shard in waiting {
                        report.skipped.append("shard \(shard): triggers fired on it wait for their live decision or their row (a copy loaded from it would never fire them again; snapshot it again once they are decided)")
                    }
                    break
                }
                try await Task.sleep(for: .seconds(1))
                (order, waiting, next) = (waiting, [], 0)
            }
            var batch: [(shard: Int, ids: [Int64], values: [Float], featureCount: Int, events: ShardEventSnapshot, generation: Int64, taken: Int64)] = []
            while next < order.count && batch.count < Self.snapshotBatch {
                let shard = order[next]
                next += 1
                guard let loaded = held[shard] else { continue }
                guard loaded.generation > 0 else {
                    report.skipped.append("shard \(shard): profile generation unknown (streamed from a worker one version older; reload it)")
                    continue
                }
                let (ids, values, events, unsettled) = try await self.events.export(shard, store: loaded)
                guard let events else {
                    report.skipped.append("shard \(shard): its event state is not ready yet")
                    continue
                }
                guard !unsettled else {
                    // A copy loaded from this snapshot would not replay the events that fired them:
                    // tried again shortly; else the shard keeps its previous snapshot (or the table).
                    waiting.append(shard)
                    continue
                }
                batch.append((shard, ids, values, loaded.store.featureCount, events, loaded.generation,
                              Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))))
            }
            guard !batch.isEmpty else { continue }
            let url = postgresURL, count = shardCount
            let work = batch
            let (entries, written) = try await thread.run { () throws -> ([ProfileSnapshotStore.Entry], Set<Int>) in
                let entries = work.map { b in
                    let header = ProfileSnapshotFormat.Header(shard: b.shard, shardCount: count, generation: b.generation,
                                                              appliedSeq: b.events.appliedSeq, takenMillis: b.taken)
                    return ProfileSnapshotStore.Entry(header: header, subscribers: b.ids.count,
                                                      bytes: ProfileSnapshotFormat.encode(header: header, ids: b.ids, values: b.values,
                                                                                          featureCount: b.featureCount, eventState: ShardLoading.encode(b.events)))
                }
                return (entries, try ProfileSnapshotStore.write(url: url, node: name, entries: entries))
            }
            for e in entries {
                if written.contains(e.header.shard) {
                    report.written += 1
                    loadCounts.snapshotsWritten += 1  // as each batch commits (`profiles snapshot`'s progress)
                    report.subscribers += e.subscribers
                    report.bytes += e.bytes.count
                } else {
                    report.skipped.append("shard \(e.header.shard): stale (profile generation \(e.header.generation) is no longer current, or a newer snapshot is stored)")
                }
            }
        }
        report.seconds = seconds(ContinuousClock.now - start)
        logger.notice("profile snapshots written", metadata: ["shards": "\(report.written)", "subscribers": "\(report.subscribers)",
                                                             "bytes": "\(report.bytes)", "skipped": "\(report.skipped.count)",
                                                             "seconds": "\(report.seconds)"])
        return report
    }

    /// How the shards loaded here came (table, snapshot, stream) since the worker started.
    public distributed func shardLoads() -> ShardLoads {
        var counts = loadCounts
        counts.worker = actorSystem.node.name
        return counts
    }

    /// Counts and reports a load from snapshots and the table.
    func noteLoads(_ loaded: ShardLoading.Loaded) {
        loadCounts.fromSnapshot += loaded.events.count
        loadCounts.fromTable += loaded.fromTable.count
        loadCounts.snapshotsRejected += loaded.rejected.count
        if let last = loaded.rejected.last { loadCounts.lastRejection = "shard \(last.shard): \(last.reason)" }
        for (shard, reason) in loaded.rejected.prefix(20) {
            logger.error("profile snapshot not used; the shard is loaded from subscriber_profiles",
                         metadata: ["shard": "\(shard)", "reason": "\(reason)"])
        }
        if loaded.rejected.count > 20 {
            logger.error("more profile snapshots not used", metadata: ["shards": "\(loaded.rejected.count - 20)"])
        }
    }
}
