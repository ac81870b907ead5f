import WireFormat

/// When each trigger rule last fired for each subscriber, so that a rule fires at most once per
/// subscriber per cool-down. Pure: time is passed in (ms since 1970), and the answers are a
/// function of the calls made, so replaying the same sequence from a snapshot gives the same
/// answers. It travels with a shard snapshot (`WireCodable`, entries in a canonical order).
///
/// Entries are keyed by rule index: after the rules change (a new `TriggerRules.fingerprint`),
/// start from an empty table rather than carry one over.
public struct TriggerCooldowns: Sendable, Equatable {
    struct Key: Hashable, Sendable {
        var subscriber: Int64
        var rule: UInt8
    }

    /// Last firing time per (subscriber, rule).
    private var lastFired: [Key: Int64] = [:]

    /// An empty table.
    public init() {}

    /// Remembered (subscriber, rule) pairs.
    public var count: Int { lastFired.count }

    /// Decides whether rule `rule` may fire for `subscriber` at `millis`: true (and remembered) when
    /// it never fired for them or last fired at least `cooldownMillis` before; false while cooling
    /// down (nothing changes). An event older than the last firing counts as cooling down.
    /// - Parameter rule: a rule index from `TriggerRules.matching`, below `TriggerRules.maxRules`.
    public mutating func admit(subscriber: Int64, rule: Int, at millis: Int64, cooldownMillis: Int64) -> Bool {
        precondition(rule >= 0 && rule < TriggerRules.maxRules, "rule index \(rule) is not below \(TriggerRules.maxRules)")
        let key = Key(subscriber: subscriber, rule: UInt8(rule))
        if let last = lastFired[key] {
            let (elapsed, overflow) = millis.subtractingReportingOverflow(last)
            // An overflowing difference is beyond any cool-down when `millis` is the later one.
            let cooled = overflow ? millis > last : elapsed >= cooldownMillis && elapsed >= 0
            guard cooled else { return false }
        }
        lastFired[key] = millis
        return true
    }

    /// When `rule` last fired for `subscriber` (ms since 1970), if remembered.
    public func lastFired(subscriber: Int64, rule: Int) -> Int64? {
        guard rule >= 0 && rule < TriggerRules.maxRules else { return nil }
        return lastFired[Key(subscriber: subscriber, rule: UInt8(rule))]
    }

    /// Forgets firings before `millis`. Pass now − `TriggerRules.longestCooldownMillis`: a
    /// forgotten firing is past every cool-down, so no later answer changes.
    public mutating func expire(before millis: Int64) {
        guard lastFired.values.contains(where: { $0 < millis }) else { return }
        lastFired = lastFired.filter { $0.value >= millis }
    }

    /// Forgets every firing for `subscribers` (erased subscribers).
    public mutating func forget(subscribers: Set<Int64>) {
        guard !subscribers.isEmpty, lastFired.keys.contains(where: { subscribers.contains($0.subscriber) }) else { return }
        lastFired = lastFired.filter { !subscribers.contains($0.key.subscriber) }
    }

    /// Approximate bytes in memory: the struct, the hash table's header, its slots and occupancy bitmap.
    public var bytes: Int {
        let slots = lastFired.capacity
        let slotBytes = MemoryLayout<Key>.stride + MemoryLayout<Int64>.stride
        return MemoryLayout<Self>.size + (slots == 0 ? 0 : 64 + slots * slotBytes + (slots + 63) / 64 * 8)
    }
}

extension TriggerCooldowns: WireCodable {
    /// The encoding's version (its first byte).
    public static let wireVersion: UInt8 = 1
    /// Bytes of one entry: subscriber (Int64), rule (UInt8), last firing (Int64).
    static let entryBytes = 17

    /// Version, count, then the entries in ascending (subscriber, rule) order.
    public func encode(to w: inout WireWriter) {
        w.writeFixed(Self.wireVersion)
        w.reserve(lastFired.count * Self.entryBytes + 10)
        w.writeLength(lastFired.count)
        for (key, last) in lastFired.sorted(by: { Self.ascending($0.key, $1.key) }) {
            w.writeFixed(key.subscriber)
            w.writeFixed(key.rule)
            w.writeFixed(last)
        }
    }

    /// Reads a table.
    /// - Throws: `WireError` on an unknown version, a truncated frame or entries out of order
    ///   (including a pair given twice).
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let version = try r.readFixed(UInt8.self)
        guard version == Self.wireVersion else {
            throw WireError(offset: at, expected: "trigger cool-downs version \(Self.wireVersion), found \(version)")
        }
        let n = try r.readLength(unit: Self.entryBytes)
        var table: [Key: Int64] = Dictionary(minimumCapacity: n)
        var previous: Key?
        for _ in 0..<n {
            let entryAt = r.offset
            let key = Key(subscriber: try r.readFixed(Int64.self), rule: try r.readFixed(UInt8.self))
            let last = try r.readFixed(Int64.self)
            if let previous, !Self.ascending(previous, key) {
                throw WireError(offset: entryAt, expected: "cool-down entries in ascending (subscriber, rule) order, each once")
            }
            previous = key
            table[key] = last
        }
        lastFired = table
    }

    public static var minimumEncodedSize: Int { 2 }

    static func ascending(_ a: Key, _ b: Key) -> Bool {
        a.subscriber != b.subscriber ? a.subscriber < b.subscriber : a.rule < b.rule
    }
}
