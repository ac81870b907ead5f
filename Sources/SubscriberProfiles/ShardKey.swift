/// Where a subscriber lives: a stable 31-bit hash of the subscriber id (the *shard key*), and
/// the shard = ⌊key × shardCount / 2³¹⌋. PostgreSQL computes the same key with the SQL function
/// `churngrid_shard_key(bigint)` (see `ProfileSchema`), stored in `subscriber_profiles.shard_key`,
/// so a shard's subscribers are one contiguous range of keys: one index range scan loads them.
///
/// The hash, in 64-bit signed arithmetic that never overflows (so SQL's `bigint` can do it too):
///
///     a   = (id XOR (id >> 32)) AND 0xFFFFFFFF           -- fold to 32 bits (arithmetic shift)
///     b   = ((a XOR (a >> 32)) × 1540483477) AND 0xFFFFFFFF
///     c   = ((b XOR (b >> 15)) × 1540483477) AND 0xFFFFFFFF
///     key = (c XOR (c >> 13)) >> 1                        -- 0 ..< 2³¹
///
/// Never change it: shard placement and every stored `shard_key` depend on it.
public enum ShardKey {
    private static let mask: Int64 = 0xFFFF_FFFF
    private static let multiplier: Int64 = 1_540_483_477

    @inline(__always)
    private static func mix(_ x: Int64, _ shift: Int64) -> Int64 {
        ((x ^ (x >> shift)) &* multiplier) & mask
    }

    /// The shard key of `subscriberID`, in 0 ..< 2³¹.
    @inline(__always)
    public static func key(_ subscriberID: Int64) -> Int32 {
        let a = (subscriberID ^ (subscriberID >> 32)) & mask
        let c = mix(mix(a, 32), 15)
        return Int32(truncatingIfNeeded: (c ^ (c >> 13)) >> 1)
    }

    /// The shard of `subscriberID` among `shardCount` shards.
    @inline(__always)
    public static func shard(of subscriberID: Int64, shardCount: Int) -> Int {
        shard(ofKey: key(subscriberID), shardCount: shardCount)
    }

    /// The shard owning shard key `key`.
    @inline(__always)
    public static func shard(ofKey key: Int32, shardCount: Int) -> Int {
        (Int(key) * shardCount) >> 31
    }

    /// The keys of `shard`: `lowerBound ... upperBound - 1`.
    public static func keyRange(shard: Int, shardCount: Int) -> Range<Int64> {
        precondition(shardCount > 0 && shard >= 0 && shard < shardCount)
        // Smallest k with k × N ≥ s × 2³¹.
        func first(_ s: Int) -> Int64 { (Int64(s) << 31 + Int64(shardCount) - 1) / Int64(shardCount) }
        return first(shard)..<first(shard + 1)
    }
}
