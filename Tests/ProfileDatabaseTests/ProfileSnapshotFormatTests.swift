@testable import ProfileDatabase
import SubscriberProfiles
import Testing

/// The compact snapshot form of a shard (`ProfileSnapshotFormat`): it round-trips exactly, packs
/// whole-number columns narrow, and refuses anything damaged without trapping.
@Suite("Profile snapshot format")
struct ProfileSnapshotFormatTests {
    static let shardCount = 64

    /// A shard's worth of ids and feature-major values, with missing values, negatives, −0 and fractions.
    static func sample(shard: Int, rows: Int) -> (ids: [Int64], values: [Float]) {
        var ids: [Int64] = []
        var id: Int64 = 1_000_000
        while ids.count < rows {
            if ShardKey.shard(of: id, shardCount: shardCount) == shard { ids.append(id) }
            id += 1
        }
        let f = FeatureCatalogue.count
        var values = [Float](repeating: 0, count: rows * f)
        for j in 0..<f {
            for r in 0..<rows {
                let v: Float
                switch j % 5 {
                case 0: v = Float(r % 200)                             // uint8
                case 1: v = Float(r % 3000) - 1500                     // int16
                case 2: v = Float(r) * 0.37                            // float32
                case 3: v = r % 7 == 0 ? .nan : Float(r % 40)          // uint8 with missing
                default: v = r == 5 ? -0.0 : Float(r % 9)              // −0 keeps float32
                }
                values[j * rows + r] = v
            }
        }
        return (ids, values)
    }

    static func encoded(shard: Int = 5, rows: Int = 500, events: [UInt8] = [1, 2, 3]) -> [UInt8] {
        let (ids, values) = sample(shard: shard, rows: rows)
        let header = ProfileSnapshotFormat.Header(shard: shard, shardCount: shardCount, generation: 7, appliedSeq: 42, takenMillis: 1_700_000_000_000)
        return ProfileSnapshotFormat.encode(header: header, ids: ids, values: values, featureCount: FeatureCatalogue.count, eventState: events)
    }

    @Test("round trip: ids, every value bit for bit (NaN as missing), header and event state")
    func roundTrip() throws {
        let (ids, values) = Self.sample(shard: 5, rows: 500)
        let bytes = Self.encoded()
        let d = try bytes.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: Self.shardCount) }
        #expect(d.ids == ids)
        #expect(d.header == ProfileSnapshotFormat.Header(shard: 5, shardCount: Self.shardCount, generation: 7, appliedSeq: 42, takenMillis: 1_700_000_000_000))
        #expect(d.eventState == [1, 2, 3])
        #expect(zip(d.values, values).allSatisfy { $0.isNaN ? $1.isNaN : $0.bitPattern == $1.bitPattern })
        // Packed: smaller than ids + Float32 columns.
        #expect(bytes.count < 500 * (8 + 4 * FeatureCatalogue.count))
    }

    @Test("packing: whole numbers narrow, fractions and −0 as Float32")
    func packing() {
        #expect(ProfileSnapshotFormat.packing(of: [0, 1, 254, .nan]) == .uint8)
        #expect(ProfileSnapshotFormat.packing(of: [0, 255]) == .int16)
        #expect(ProfileSnapshotFormat.packing(of: [-32767, 32767]) == .int16)
        #expect(ProfileSnapshotFormat.packing(of: [40000]) == .float32)
        #expect(ProfileSnapshotFormat.packing(of: [0.5]) == .float32)
        #expect(ProfileSnapshotFormat.packing(of: [-0.0]) == .float32)
        #expect(ProfileSnapshotFormat.packing(of: [.infinity]) == .float32)
    }

    @Test("every flipped byte, truncation and extension is refused with a reason, never a trap")
    func damaged() {
        let bytes = Self.encoded(rows: 40)
        for at in stride(from: 0, to: bytes.count, by: 7) {
            var b = bytes
            b[at] ^= 0x5A
            #expect(throws: ProfileSnapshotFormat.Invalid.self) { try b.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: Self.shardCount) } }
        }
        for n in [0, 10, 63, 64, 72, bytes.count / 2, bytes.count - 1] {
            let b = Array(bytes.prefix(n))
            #expect(throws: ProfileSnapshotFormat.Invalid.self) { try b.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: Self.shardCount) } }
        }
        let longer = bytes + [0]
        #expect(throws: ProfileSnapshotFormat.Invalid.self) { try longer.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: Self.shardCount) } }
    }

    @Test("a snapshot of another shard, shard count or schema is refused, naming why")
    func mismatched() throws {
        let bytes = Self.encoded()
        do {
            _ = try bytes.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 6, shardCount: Self.shardCount) }
            Issue.record("another shard was accepted")
        } catch {
            #expect("\(error)".contains("holds shard 5"))
        }
        #expect(throws: ProfileSnapshotFormat.Invalid.self) { try bytes.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: 128) } }
        // Another feature count, with a valid checksum: refused as another schema.
        var other = Array(bytes.dropLast(8))
        other[20] = UInt8(FeatureCatalogue.count + 1)
        other += withUnsafeBytes(of: ProfileSnapshotFormat.checksum(other).littleEndian) { Array($0) }
        do {
            _ = try other.withUnsafeBytes { try ProfileSnapshotFormat.decode($0, shard: 5, shardCount: Self.shardCount) }
            Issue.record("another schema was accepted")
        } catch {
            #expect("\(error)".contains("another profile schema"))
        }
    }
}
