import SubscriberProfiles
import WireFormat

/// Which node owns each shard. The shard count is fixed when the cluster is created; the epoch
/// increases on every change, so a holder of an old map can tell it is stale.
public struct ShardMap: Sendable, Equatable, WireCodable {
    /// Number of shards (fixed for the cluster's life).
    public let shardCount: Int
    /// The most shards a cluster may have (a decoded map or assignment claiming more is refused).
    public static let maxShardCount = 1 << 20
    /// Increases on every change of ownership.
    public private(set) var epoch: Int64
    /// Owner node name per shard; nil while a shard has no owner.
    public private(set) var owners: [String?]
    /// The node holding a warm copy of each shard (a standby), nil where there is none. A standby
    /// answers no job; it takes over the shard at once when the owner is lost.
    public private(set) var standbys: [String?]

    public init(shardCount: Int, epoch: Int64 = 0, owners: [String?]? = nil, standbys: [String?]? = nil) {
        precondition(shardCount > 0)
        self.shardCount = shardCount
        self.epoch = epoch
        self.owners = owners ?? Array(repeating: nil, count: shardCount)
        self.standbys = standbys ?? Array(repeating: nil, count: shardCount)
    }

    /// Shards for which `node` is the standby, ascending.
    public func standbyShards(of node: String) -> [Int] {
        standbys.indices.filter { standbys[$0] == node }
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
    /// - Parameter capacity: the shards each node has room for (its memory limit); a node
    ///   without an entry has room for any number. Shares are filled like water: a node with less
    ///   room than its fair share gets what it has room for, the rest is shared among the others;
    ///   shards nobody has room for stay without an owner.
    public func rebalanced(over nodes: [String], capacity: [String: Int] = [:]) -> (map: ShardMap, moves: [(shard: Int, to: String)]) {
        guard !nodes.isEmpty else {
            let changed = owners.contains { $0 != nil }
            return (ShardMap(shardCount: shardCount, epoch: epoch + (changed ? 1 : 0)), [])
        }
        let names = nodes.sorted()
        let alive = Set(names)
        let quota = Self.quotas(shardCount, over: names, capacity: capacity)
        var held: [String: Int] = [:]
        var next = owners
        var homeless: [Int] = []
        for shard in 0..<shardCount {
            if let owner = owners[shard], alive.contains(owner), held[owner, default: 0] < quota[owner, default: 0] {
                held[owner, default: 0] += 1
            } else {
                next[shard] = nil
                homeless.append(shard)
            }
        }
        var moves: [(shard: Int, to: String)] = []
        for shard in homeless {
            // The shard's standby takes it when it has room (it holds the profiles already).
            let standby = standbys[shard].flatMap { alive.contains($0) && held[$0, default: 0] < quota[$0, default: 0] ? $0 : nil }
            let roomy = names.filter { held[$0, default: 0] < quota[$0, default: 0] }
            guard let target = standby ?? roomy.min(by: { (held[$0, default: 0] - quota[$0, default: 0], $0) < (held[$1, default: 0] - quota[$1, default: 0], $1) }) else {
                continue  // no node has room: the shard stays without an owner
            }
            held[target, default: 0] += 1
            next[shard] = target
            moves.append((shard, target))
        }
        let changed = next != owners
        return (ShardMap(shardCount: shardCount, epoch: epoch + (changed ? 1 : 0), owners: next, standbys: standbys), moves)
    }

    /// Each node's share of `count` shards: even, except that no node gets more than its
    /// `capacity`; what a full node cannot take is shared among the others. The remainder of an
    /// even split goes to the first nodes by name. The shares add up to at most `count`.
    static func quotas(_ count: Int, over names: [String], capacity: [String: Int]) -> [String: Int] {
        var quota: [String: Int] = [:]
        var open = names, left = count
        // Water-filling: nodes whose room is below the even share of what is left are filled up.
        while !open.isEmpty {
            let share = left / open.count
            let full = open.filter { capacity[$0].map { $0 < share } ?? false }
            if full.isEmpty { break }
            for n in full {
                let room = max(0, capacity[n] ?? 0)
                quota[n] = room
                left -= room
            }
            open.removeAll { full.contains($0) }
        }
        guard !open.isEmpty else { return quota }
        let base = left / open.count, extra = left % open.count
        for (i, n) in open.enumerated() {
            quota[n] = min(base + (i < extra ? 1 : 0), capacity[n] ?? Int.max)
        }
        return quota
    }

    /// This map with a standby for every shard on a node of `nodes` other than its owner (none
    /// with fewer than two nodes), spread evenly and moving as few as possible: a standby stays
    /// where it is while its node is in `nodes`, is not the owner and is within its fair share.
    /// A shard without a standby prefers `previous`'s owner of it (which holds its profiles).
    /// The epoch is left as it is (the caller flips it when the change takes effect).
    public func withStandbys(over nodes: [String], previous: ShardMap? = nil) -> ShardMap {
        var next = [String?](repeating: nil, count: shardCount)
        let names = nodes.sorted()
        if names.count >= 2 {
            let quota = (shardCount + names.count - 1) / names.count
            var held: [String: Int] = [:]
            var homeless: [Int] = []
            for shard in 0..<shardCount {
                guard let owner = owners[shard] else { continue }
                if let s = standbys[shard], s != owner, names.contains(s), held[s, default: 0] < quota {
                    next[shard] = s
                    held[s, default: 0] += 1
                } else {
                    homeless.append(shard)
                }
            }
            for shard in homeless {
                let owner = owners[shard]!
                let holder = previous?.owners[shard].flatMap { $0 != owner && names.contains($0) && held[$0, default: 0] < quota ? $0 : nil }
                let target = holder ?? names.filter { $0 != owner }.min { (held[$0, default: 0], $0) < (held[$1, default: 0], $1) }!
                held[target, default: 0] += 1
                next[shard] = target
            }
        }
        return ShardMap(shardCount: shardCount, epoch: epoch, owners: owners, standbys: next)
    }

    /// This map with `target`'s owner and standby for `shards` and the epoch increased: one step
    /// of a change applied in bounded batches.
    public func adopting(_ target: ShardMap, shards: [Int]) -> ShardMap {
        var next = self
        for s in shards {
            next.owners[s] = target.owners[s]
            next.standbys[s] = target.standbys[s]
        }
        next.epoch = epoch + 1
        return next
    }

    /// This map with its epoch past `epoch` (used by a move that failed half-way: fences raised
    /// under it are taken back under a later one).
    public func superseding(_ epoch: Int64) -> ShardMap {
        var next = self
        next.epoch = max(self.epoch, epoch) + 1
        return next
    }

    /// Whether `shard` is one of this cluster's shards (0 ..< `shardCount`): a number a worker
    /// reports is checked before it indexes the map.
    public func contains(shard: Int) -> Bool { shard >= 0 && shard < shardCount }

    /// What a registering worker may keep of what it says it hosts (`Holdings`: the coordinator
    /// restarted, the worker did not): the shards nobody owns, as owner, and — with standbys — those
    /// with no standby that it does not own now, as standby. Each once, ascending. Numbers outside
    /// the map (a worker of another cluster, or of this database before it was created again with
    /// fewer shards) are never adopted: `stray` names them for release.
    public func adoptable(from holdings: Holdings, by node: String, standbys withStandbys: Bool) -> (owned: [Int], standby: [Int]) {
        let owned = Set(holdings.owned.filter { contains(shard: $0) && owners[$0] == nil }).sorted()
        guard withStandbys else { return (owned, []) }
        let taken = Set(owned)
        let standby = Set(holdings.standby.filter { contains(shard: $0) && standbys[$0] == nil && owners[$0] != node && !taken.contains($0) }).sorted()
        return (owned, standby)
    }

    /// What a worker hosts that is not its in this map (the map gives it to another, or it is not
    /// one of the map's shards at all): it drops them (fencing).
    public func stray(in holdings: Holdings, of node: String) -> (owned: [Int], standby: [Int]) {
        (Set(holdings.owned.filter { !contains(shard: $0) || owners[$0] != node }).sorted(),
         Set(holdings.standby.filter { !contains(shard: $0) || standbys[$0] != node }).sorted())
    }

    /// This map with `node` as the owner of `owned` and the standby of `standby`, epoch increased.
    public func giving(_ node: String, owned: [Int], standby: [Int]) -> ShardMap {
        var next = self
        for s in owned { next.owners[s] = node }
        for s in standby { next.standbys[s] = node }
        next.epoch = epoch + 1
        return next
    }

    /// This map with `shards` unowned (same epoch).
    public func withoutOwner(_ shards: [Int]) -> ShardMap {
        var next = self
        for s in shards { next.owners[s] = nil }
        return next
    }

    /// This map with `node` gone: its shards lose their owner, or their standby takes over; it is
    /// no shard's standby any more. The epoch increases.
    /// - Returns: the new map and the shards whose standby became the owner (by new owner).
    public func losing(_ node: String) -> (map: ShardMap, promoted: [String: [Int]]) {
        var next = self
        var promoted: [String: [Int]] = [:]
        for s in 0..<shardCount {
            if owners[s] == node {
                next.owners[s] = standbys[s]
                if let standby = standbys[s] { promoted[standby, default: []].append(s) }
                next.standbys[s] = nil
            } else if standbys[s] == node {
                next.standbys[s] = nil
            }
        }
        next.epoch = epoch + 1
        return (next, promoted)
    }

    public func encode(to w: inout WireWriter) {
        w.write(shardCount); w.write(epoch); w.write(owners); w.write(standbys)
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        shardCount = try r.read()
        epoch = try r.read()
        owners = try r.read()
        standbys = try r.read()
        guard (1...Self.maxShardCount).contains(shardCount), owners.count == shardCount, standbys.count == shardCount else {
            throw WireError(offset: at, expected: "a shard map with one owner and one standby slot per shard (\(shardCount) shards, \(owners.count) owners, \(standbys.count) standbys)")
        }
    }
}
