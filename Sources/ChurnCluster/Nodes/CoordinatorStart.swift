import ClusterSystem
import Distributed
import Logging
import WireFormat

/// What `churngrid profiles snapshot` did, over all workers.
public struct SnapshotReport: Sendable, WireCodable, Codable {
    public var shardCount: Int
    public var written: Int
    public var subscribers: Int
    public var bytes: Int
    /// Shards without a ready owner (not snapshotted).
    public var unowned: Int
    public var seconds: Double
    public var workers: [SnapshotWrite]

    public func encode(to w: inout WireWriter) {
        w.write(shardCount); w.write(written); w.write(subscribers); w.write(bytes); w.write(unowned); w.write(seconds); w.write(workers)
    }

    public init(from r: inout WireReader) throws(WireError) {
        shardCount = try r.read(); written = try r.read(); subscribers = try r.read(); bytes = try r.read(); unowned = try r.read()
        seconds = try r.read(); workers = try r.read()
    }

    init(shardCount: Int) {
        self.shardCount = shardCount
        written = 0; subscribers = 0; bytes = 0; unowned = 0; seconds = 0; workers = []
    }
}

extension CoordinatorActor {
    // MARK: Start gate (--min-workers)

    /// Feeds a registration to the start gate and logs what it says.
    func gateRegistered(_ name: String, holdings: Holdings) -> StartGate.Action {
        let wasOpen = startGate.isOpen
        let action = startGate.registered(name, hostsShards: !holdings.owned.isEmpty || !holdings.standby.isEmpty)
        switch action {
        case .wait(let progress):
            logger.notice("start: \(progress) before placing shards", metadata: ["worker": "\(name)", "registered": "\(startGate.registered.count)",
                                                                               "minWorkers": "\(startGate.minWorkers)"])
        case .place where !wasOpen:
            let why = startGate.opened == .workersAlreadyServing ? "a worker already hosts shards (the cluster is serving)" : "enough workers registered"
            logger.notice("start: placing shards", metadata: ["reason": "\(why)", "registered": "\(startGate.registered.count)",
                                                             "minWorkers": "\(startGate.minWorkers)"])
        case .place, .none:
            break
        }
        return action
    }

    /// A worker left (lost, drained): before the gate opens it no longer counts.
    func gateLeft(_ name: String) {
        if case .wait(let progress) = startGate.left(name) {
            logger.notice("start: a worker left before shards were placed; \(progress)", metadata: ["worker": "\(name)"])
        }
    }

    /// Each member's load counters (a worker that does not answer within a second is left out).
    func shardLoads() async -> [ShardLoads] {
        let nodes = routing().nodes
        let system = actorSystem
        return await withTaskGroup(of: ShardLoads?.self) { group in
            for node in nodes {
                group.addTask {
                    guard let worker = try? WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system) else { return nil }
                    return try? await ClusterActorSystem.$callTimeout.withValue(.seconds(1)) { try await worker.shardLoads() }
                }
            }
            var all: [ShardLoads] = []
            for await loads in group { if let loads { all.append(loads) } }
            return all.sorted { $0.worker < $1.worker }
        }
    }

    // MARK: Profile snapshots

    /// Has every ready owner write a snapshot of its shards (`churngrid profiles snapshot`): a
    /// later load of those shards reads them instead of `subscriber_profiles` and replays only the
    /// events logged after each snapshot.
    public distributed func snapshotProfiles() async throws -> SnapshotReport {
        let caller = ClusterActorSystem.caller
        if let refusal = startGate.refusal { throw ClusterError(refusal) }
        let start = ContinuousClock.now
        let (owners, missing) = readyOwners()
        var byNode: [NodeID: [Int]] = [:]
        for (shard, node) in owners { byNode[node, default: []].append(shard) }
        var report = SnapshotReport(shardCount: shardCount)
        report.unowned = missing.count
        let system = actorSystem, count = shardCount, timeout = settings.assignTimeout
        let results = await withTaskGroup(of: Result<SnapshotWrite, Error>.self) { group in
            for (node, shards) in byNode {
                group.addTask {
                    do {
                        let worker = try WorkerActor.resolve(id: ActorID(node: node, name: WorkerActor.name), using: system)
                        return .success(try await ClusterActorSystem.$callTimeout.withValue(timeout) { try await worker.writeSnapshots(shards, shardCount: count) })
                    } catch {
                        var failed = SnapshotWrite(worker: node.name)
                        failed.skipped = ["\(shards.count) shards: the worker failed: \(error)"]
                        return .success(failed)
                    }
                }
            }
            var all: [SnapshotWrite] = []
            for await r in group { if case .success(let w) = r { all.append(w) } }
            return all
        }
        report.workers = results.sorted { $0.worker < $1.worker }
        for w in results {
            report.written += w.written
            report.subscribers += w.subscribers
            report.bytes += w.bytes
        }
        report.seconds = seconds(ContinuousClock.now - start)
        logger.notice("profile snapshots taken", metadata: ["written": "\(report.written)", "of": "\(count)", "unowned": "\(report.unowned)",
                                                           "bytes": "\(report.bytes)", "seconds": "\(report.seconds)"])
        await audit(caller, action: "profiles snapshot", target: "\(count) shards",
                    outcome: "\(report.written) written, \(report.subscribers) subscribers, \(report.bytes) bytes")
        return report
    }
}
