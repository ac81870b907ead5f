import SubscriberProfiles

/// The compact binary form of one shard's profiles (one `bytea` of `churngrid_shard_snapshots`,
/// docs/profiles.md "Snapshots"): a fixed header, the ids, the features column by column — each
/// column packed as `UInt8` or `Int16` when every value is a small whole number (counts, days,
/// flags, codes), else raw `Float32` — the shard's event state as the worker encodes it (opaque
/// here), and a checksum over everything before it. Little-endian throughout.
///
/// A snapshot read back is outside input: `decode` checks every length against the bytes there
/// are, the checksum, the format version, the feature catalogue (count and a hash of the
/// names), the shard, and that every id hashes to that shard; it never traps.
public enum ProfileSnapshotFormat {
    /// "CGSNAP" + format 1.
    static let magic: [UInt8] = [0x43, 0x47, 0x53, 0x4E, 0x41, 0x50, 0x00, 0x01]
    public static let version: UInt32 = 1
    static let headerBytes = 64

    /// How a column is packed.
    enum Packing: UInt8 {
        /// Raw Float32 bits.
        case float32 = 0
        /// Whole numbers 0…254; 255 is missing (NaN).
        case uint8 = 1
        /// Whole numbers −32767…32767; −32768 is missing (NaN).
        case int16 = 2

        var width: Int {
            switch self {
            case .float32: 4
            case .uint8: 1
            case .int16: 2
            }
        }
    }

    /// What a snapshot holds besides the profiles.
    public struct Header: Sendable, Equatable {
        public var shard: Int
        public var shardCount: Int
        /// The `subscriber_profiles` generation the profiles descend from.
        public var generation: Int64
        /// The last event sequence number of the shard applied to these profiles.
        public var appliedSeq: Int64
        /// When the worker took it (ms since 1970).
        public var takenMillis: Int64

        public init(shard: Int, shardCount: Int, generation: Int64, appliedSeq: Int64, takenMillis: Int64) {
            self.shard = shard
            self.shardCount = shardCount
            self.generation = generation
            self.appliedSeq = appliedSeq
            self.takenMillis = takenMillis
        }
    }

    /// A decoded snapshot: feature-major values (feature j of row r at `j * ids.count + r`), as
    /// `ProfileStore(featureCount:ids:values:)` takes them.
    public struct Decoded: Sendable {
        public var header: Header
        public var ids: [Int64]
        public var values: [Float]
        public var eventState: [UInt8]
    }

    /// A snapshot that cannot be used, and why.
    public struct Invalid: Error, CustomStringConvertible, Sendable, Equatable {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// FNV-1a of the catalogue's feature names (joined by commas): a snapshot of another schema
    /// does not load.
    public static var featureHash: UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in FeatureCatalogue.names.joined(separator: ",").utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    // MARK: Encoding

    /// Encodes a shard's profiles (`values` feature-major, as `ProfileStore.exported()` gives them).
    public static func encode(header: Header, ids: [Int64], values: [Float], featureCount: Int, eventState: [UInt8]) -> [UInt8] {
        let n = ids.count
        precondition(values.count == n * featureCount, "values do not match ids × features")  // our own store's export, never outside input
        let packings = (0..<featureCount).map { j in packing(of: values[(j * n)..<((j + 1) * n)]) }
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + featureCount + n * 8 + packings.reduce(0) { $0 + $1.width * n } + eventState.count + 8)
        out += magic
        put(&out, UInt32(version))
        put(&out, UInt32(header.shard))
        put(&out, UInt32(header.shardCount))
        put(&out, UInt32(featureCount))
        put(&out, featureHash)
        put(&out, header.generation)
        put(&out, header.appliedSeq)
        put(&out, header.takenMillis)
        put(&out, UInt32(n))
        put(&out, UInt32(eventState.count))
        out += packings.map(\.rawValue)
        ids.withUnsafeBytes { raw in appendLittleEndian(&out, raw, width: 8) }
        for j in 0..<featureCount {
            let column = values[(j * n)..<((j + 1) * n)]
            switch packings[j] {
            case .float32:
                column.withUnsafeBytes { raw in appendLittleEndian(&out, raw, width: 4) }
            case .uint8:
                for v in column { out.append(v.isNaN ? 255 : UInt8(v)) }
            case .int16:
                for v in column {
                    let u = UInt16(bitPattern: v.isNaN ? Int16.min : Int16(v))
                    out.append(UInt8(truncatingIfNeeded: u)); out.append(UInt8(truncatingIfNeeded: u >> 8))
                }
            }
        }
        out += eventState
        put(&out, checksum(out))
        return out
    }

    /// The narrowest packing that keeps every value of `column` exactly.
    static func packing(of column: ArraySlice<Float>) -> Packing {
        var small = true, medium = true
        for v in column where !v.isNaN {
            guard v.rounded(.towardZero) == v, v.sign == .plus || v != 0 else { return .float32 }
            if !(v >= 0 && v <= 254) { small = false }
            if !(v >= -32767 && v <= 32767) { medium = false; break }
        }
        return small ? .uint8 : medium ? .int16 : .float32
    }

    // MARK: Decoding

    /// Decodes and checks a snapshot of `shard` (of `shardCount`).
    /// - Throws: `Invalid` naming what is wrong (truncated, checksum, format, schema, shard, ids).
    public static func decode(_ bytes: UnsafeRawBufferPointer, shard: Int, shardCount: Int) throws(Invalid) -> Decoded {
        let total = bytes.count
        guard total >= headerBytes + 8 else { throw Invalid("\(total) bytes: shorter than a snapshot's header") }
        guard (0..<8).allSatisfy({ bytes[$0] == magic[$0] }) else { throw Invalid("not a profile snapshot (or another format): wrong signature") }
        let stored: UInt64 = get(bytes, total - 8)
        guard checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<(total - 8)])) == stored else {
            throw Invalid("checksum mismatch: the snapshot is corrupt")
        }
        let version: UInt32 = get(bytes, 8)
        guard version == Self.version else { throw Invalid("format version \(version); this build reads \(Self.version)") }
        let header = Header(shard: Int(get(bytes, 12) as UInt32), shardCount: Int(get(bytes, 16) as UInt32),
                            generation: get(bytes, 32), appliedSeq: get(bytes, 40), takenMillis: get(bytes, 48))
        let featureCount = Int(get(bytes, 20) as UInt32)
        let hash: UInt64 = get(bytes, 24)
        guard featureCount == FeatureCatalogue.count, hash == featureHash else {
            throw Invalid("written for another profile schema (\(featureCount) features, hash \(hash); this build has \(FeatureCatalogue.count), hash \(featureHash))")
        }
        guard header.shard == shard, header.shardCount == shardCount else {
            throw Invalid("holds shard \(header.shard) of \(header.shardCount), stored as shard \(shard) of \(shardCount)")
        }
        guard header.appliedSeq >= 0 else { throw Invalid("negative event sequence \(header.appliedSeq)") }
        let n = Int(get(bytes, 56) as UInt32)
        let eventBytes = Int(get(bytes, 60) as UInt32)
        // Every length against what is there (each term is below 2^32 × 8: no overflow in Int).
        var at = headerBytes
        guard total - 8 - at >= featureCount else { throw Invalid("truncated in the column packings") }
        var packings: [Packing] = []
        for j in 0..<featureCount {
            guard let p = Packing(rawValue: bytes[at + j]) else { throw Invalid("column \(j) has unknown packing \(bytes[at + j])") }
            packings.append(p)
        }
        at += featureCount
        let needed = n * 8 + packings.reduce(0) { $0 + $1.width * n } + eventBytes
        guard total - 8 - at == needed else {
            throw Invalid("\(total) bytes for \(n) subscribers, \(featureCount) packed columns and \(eventBytes) bytes of event state (expected \(at + needed + 8))")
        }
        var ids = [Int64](repeating: 0, count: n)
        ids.withUnsafeMutableBytes { out in copyLittleEndian(from: bytes, at: at, to: out, width: 8) }
        at += n * 8
        for id in ids where ShardKey.shard(of: id, shardCount: shardCount) != shard {
            throw Invalid("subscriber \(id) belongs to shard \(ShardKey.shard(of: id, shardCount: shardCount)), not \(shard)")
        }
        var values = [Float](repeating: .nan, count: n * featureCount)
        values.withUnsafeMutableBufferPointer { out in
            for (j, p) in packings.enumerated() {
                let column = UnsafeMutableBufferPointer(rebasing: out[(j * n)..<((j + 1) * n)])
                switch p {
                case .float32:
                    copyLittleEndian(from: bytes, at: at, to: UnsafeMutableRawBufferPointer(column), width: 4)
                case .uint8:
                    for r in 0..<n {
                        let b = bytes[at + r]
                        column[r] = b == 255 ? .nan : Float(b)
                    }
                case .int16:
                    for r in 0..<n {
                        let v = Int16(bitPattern: UInt16(bytes[at + 2 * r]) | UInt16(bytes[at + 2 * r + 1]) << 8)
                        column[r] = v == .min ? .nan : Float(v)
                    }
                }
                at += p.width * n
            }
        }
        let eventState = Array(bytes[at..<(at + eventBytes)])
        return Decoded(header: header, ids: ids, values: values, eventState: eventState)
    }

    // MARK: Bytes

    /// A 64-bit checksum of `bytes` (four multiply–xor lanes over 8-byte words, then the tail):
    /// catches corruption, not an adversary (who could rewrite the table anyway).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let k: UInt64 = 0x9E37_79B9_7F4A_7C15
        var a: UInt64 = 1, b: UInt64 = 2, c: UInt64 = 3, d: UInt64 = 4
        let n = bytes.count
        var at = 0
        @inline(__always) func word(_ o: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        while at + 32 <= n {
            a = (a ^ word(at)) &* k; a ^= a >> 29
            b = (b ^ word(at + 8)) &* k; b ^= b >> 29
            c = (c ^ word(at + 16)) &* k; c ^= c >> 29
            d = (d ^ word(at + 24)) &* k; d ^= d >> 29
            at += 32
        }
        var h = a ^ (b &* 31) ^ (c &* 961) ^ (d &* 29791) ^ UInt64(n)
        while at < n {
            h = (h ^ UInt64(bytes[at])) &* k
            at += 1
        }
        h ^= h >> 31
        return h &* k
    }

    static func checksum(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { checksum($0) } }

    private static func put<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private static func get<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    /// Appends `raw` (values of `width` bytes in host order) in little-endian order.
    private static func appendLittleEndian(_ out: inout [UInt8], _ raw: UnsafeRawBufferPointer, width: Int) {
        #if _endian(little)
        out += raw
        #else
        for i in stride(from: 0, to: raw.count, by: width) { out += raw[i..<(i + width)].reversed() }
        #endif
    }

    /// Copies `out.count` bytes of little-endian values of `width` bytes from `bytes[at...]` into `out` (host order).
    private static func copyLittleEndian(from bytes: UnsafeRawBufferPointer, at: Int, to out: UnsafeMutableRawBufferPointer, width: Int) {
        guard out.count > 0, let base = bytes.baseAddress, let dest = out.baseAddress else { return }
        dest.copyMemory(from: base + at, byteCount: out.count)
        #if _endian(big)
        for i in stride(from: 0, to: out.count, by: width) {
            var lo = i, hi = i + width - 1
            while lo < hi { out.swapAt(lo, hi); lo += 1; hi -= 1 }
        }
        #endif
    }
}
