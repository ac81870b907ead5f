import SubscriberProfiles
import WireFormat

/// Which node owns each shard. The shard count is fixed when the cluster is created; the epoch
/// increases on every change, so a holder of an old map can tell it is stale.
public struct ShardMap: Sendable, Equatable, WireCodable {
    /// Number of shards (fixed for the cluster's life).
    public let shardCount: Int
    /// Increases on every change of ownership.
    public private(set) var epoch: Int64
    /// Owner node name per shard; nil while a shard has no owner.
    public private(set) var owners: [String?]

    public init(shardCount: Int, epoch: Int64 = 0, owners: [String?]? = nil) {
        precondition(shardCount > 0)
        self.shardCount = shardCount
        self.epoch = epoch
        self.owners = owners ?? Array(repeating: nil, count: shardCount)
    }

    /// The shard a subscriber belongs to.
    public func shard(of subscriberID: Int64) -> Int {
        ShardKey.shard(of: subscriberID, shardCount: shardCount)
    }

    /// Shards owned by `node`, ascending.
    public func shards(of node: String) -> [Int] {
        owners.indices.filter { owners[$0] == node }
    }

    /// A map spreading the shards evenly over `nodes` while moving as few as possible: a node
    /// keeps its shards up to its fair share (⌊shards/nodes⌋ or one more); shards of departed
    /// nodes and the excess of overloaded ones go to the least loaded nodes. The epoch increases
    /// if anything changed.
    /// - Returns: the new map and the shards that changed owner (with their new owner).
    public func rebalanced(over nodes: [String]) -> (map: ShardMap, moves: [(shard: Int, to: String)]) {
        guard !nodes.isEmpty else {
            let changed = owners.contains { $0 != nil }
            return (ShardMap(shardCount: shardCount, epoch: epoch + (changed ? 1 : 0)), [])
        }
        let names = nodes.sorted()
        let alive = Set(names)
        // Fair shares: the first `extra` nodes (by name) may hold one more.
        let base = shardCount / names.count, extra = shardCount % names.count
        var quota: [String: Int] = [:]
        for (i, n) in names.enumerated() { quota[n] = base + (i < extra ? 1 : 0) }
        var held: [String: Int] = [:]
        var next = owners
        var homeless: [Int] = []
        for shard in 0..<shardCount {
            if let owner = owners[shard], alive.contains(owner), held[owner, default: 0] < quota[owner]! {
                held[owner, default: 0] += 1
            } else {
                next[shard] = nil
                homeless.append(shard)
            }
        }
        var moves: [(shard: Int, to: String)] = []
        for shard in homeless {
            let target = names.min { (held[$0, default: 0] - quota[$0]!, $0) < (held[$1, default: 0] - quota[$1]!, $1) }!
            held[target, default: 0] += 1
            next[shard] = target
            moves.append((shard, target))
        }
        let changed = next != owners
        return (ShardMap(shardCount: shardCount, epoch: epoch + (changed ? 1 : 0), owners: next), moves)
    }

    /// This map with `moves` applied and the epoch increased: one step of a rebalance that moves
    /// shards in bounded batches.
    public func moving(_ moves: [(shard: Int, to: String)]) -> ShardMap {
        var next = owners
        for m in moves { next[m.shard] = m.to }
        return ShardMap(shardCount: shardCount, epoch: epoch + 1, owners: next)
    }

    public func encode(to w: inout WireWriter) {
        w.write(shardCount); w.write(epoch); w.write(owners)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shardCount = try r.read()
        epoch = try r.read()
        owners = try r.read()
        guard shardCount > 0, owners.count == shardCount else {
            throw WireError(offset: at, expected: "a shard map with one owner per shard (\(shardCount) shards, \(owners.count) owners)")
        }
    }
}
