import Testing
import WireFormat

/// Three Int64s: every value takes 24 bytes on the wire, and says so.
struct Triple: WireCodable, Equatable {
    var a: Int64, b: Int64, c: Int64
    func encode(to w: inout WireWriter) { w.write(a); w.write(b); w.write(c) }
    init(a: Int64, b: Int64, c: Int64) { self.a = a; self.b = b; self.c = c }
    init(from r: inout WireReader) throws(WireError) { a = try r.read(); b = try r.read(); c = try r.read() }
    static var minimumEncodedSize: Int { 24 }
}

/// 32 KiB in memory, one byte on the wire (0; anything else is refused): the worst case of an
/// element type far larger in memory than in the frame.
struct Bulky: WireCodable {
    typealias L1 = (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64)
    typealias L2 = (L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1, L1)
    typealias L3 = (L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2)
    static let z1: L1 = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    static let z2: L2 = (z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1, z1)
    static let z3: L3 = (z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2, z2)
    var payload: L3

    func encode(to w: inout WireWriter) { w.write(UInt8(0)) }
    init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        guard try r.read(UInt8.self) == 0 else { throw WireError(offset: at, expected: "a Bulky (0)") }
        payload = Self.z3
    }
}

/// Decoding hostile frames: counts that cannot fit, allocations out of proportion to the frame,
/// trailing bytes, nonsense units. Each fails with a `WireError` saying where; none traps.
@Suite("Wire format: hostile input")
struct WireHostileInputTests {
    /// A LEB128 count followed by `filler` bytes of `byte`.
    static func frame(count: Int, filler: Int, byte: UInt8 = 0) -> [UInt8] {
        var w = WireWriter()
        w.writeLength(count)
        return w.take() + [UInt8](repeating: byte, count: filler)
    }

    @Test("a count is bounded by the bytes left over the element's minimum size, not by the bytes left")
    func countOverMinimumSize() throws {
        // 16 Int64s claimed in 16 bytes: only 2 can fit. The count itself (at byte 0) is refused,
        // where it used to be accepted and the frame ran out at byte 17.
        #expect {
            _ = try [Int64].decode(Self.frame(count: 16, filler: 16))
        } throws: { e in
            let e = e as! WireError
            return e.offset == 0 && e.expected.contains("at most 2 items of at least 8 bytes")
        }
        #expect {
            _ = try [Triple].decode(Self.frame(count: 100, filler: 100))
        } throws: { e in
            let e = e as! WireError
            return e.offset == 0 && e.expected.contains("at most 4 items of at least 24 bytes")
        }
        // Exactly what fits still decodes.
        let triples = [Triple(a: 1, b: -2, c: .max), Triple(a: 0, b: 0, c: .min)]
        #expect(try [Triple].decode(triples.wireBytes()) == triples)
        #expect(Int64.minimumEncodedSize == 8 && Double.minimumEncodedSize == 8 && Float.minimumEncodedSize == 4)
        #expect(Int.minimumEncodedSize == 8 && UInt8.minimumEncodedSize == 1 && String.minimumEncodedSize == 1)
        #expect([Int64].minimumEncodedSize == 1 && Int64?.minimumEncodedSize == 1)
    }

    @Test("nested counts are each bounded by what is left at their own position")
    func nestedCounts() {
        // An outer count of 2, then an inner [Double] claiming 3 elements with 16 bytes left.
        var w = WireWriter()
        w.writeLength(2)
        w.writeLength(3)
        let bytes = w.take() + [UInt8](repeating: 0, count: 16)
        #expect {
            _ = try [[Double]].decode(bytes)
        } throws: { e in
            let e = e as! WireError
            return e.offset == 1 && e.expected.contains("at most 2 items of at least 8 bytes")
        }
    }

    @Test("what is reserved before decoding never exceeds the frame, however large the element is in memory")
    func reserveBoundedByFrame() {
        // 4 Mi elements claimed in a 4 MiB frame whose second element is bad. The count fits (each
        // element takes one byte), but reserving it up front was 4 Mi × 32 KiB = 128 GiB: the
        // allocation failed and the process died. Now it reserves at most the frame's size.
        let n = 4 << 20
        var bytes = Self.frame(count: n, filler: n)
        bytes[bytes.count - n + 1] = 7
        #expect {
            _ = try [Bulky].decode(bytes)
        } throws: { e in
            let e = e as! WireError
            return e.offset == 4 + 1 && e.expected.contains("a Bulky")
        }
        #expect(MemoryLayout<Bulky>.stride == 32768)
    }

    @Test("a bulk array's count is checked against its element size")
    func bulkCount() throws {
        #expect {
            _ = try BulkArray<Double>.decode(Self.frame(count: 3, filler: 23))
        } throws: { e in (e as! WireError).offset == 0 }
        #expect(try BulkArray<Double>.decode(Self.frame(count: 3, filler: 24)).elements == [0, 0, 0])
    }

    @Test("trailing bytes after a whole value are an error at their offset")
    func trailingBytes() {
        let bytes = ["a", "bc"].wireBytes() + [9, 9]
        #expect {
            _ = try [String].decode(bytes)
        } throws: { e in
            let e = e as! WireError
            return e.offset == bytes.count - 2 && e.expected.contains("2 more bytes")
        }
        bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            #expect((try? r.read([String].self)) == ["a", "bc"])
            #expect(throws: WireError.self) { try r.finish() }
        }
    }

    @Test("a unit below 1 counts as 1 and never makes a negative range")
    func nonsenseUnit() throws {
        let bytes: [UInt8] = [3, 1, 2, 3]
        try bytes.withUnsafeBytes { raw in
            for unit in [0, -4, Int.min] {
                var r = WireReader(raw)
                let got = try r.readBytes(unit: unit)
                #expect(Array(got) == [1, 2, 3])
                #expect(r.remaining == 0)
            }
        }
    }

    @Test("a length of more than 9 LEB128 bytes is refused")
    func overlongLength() {
        let bytes = [UInt8](repeating: 0x80, count: 12) + [0]
        #expect {
            _ = try [UInt8].decode(bytes)
        } throws: { e in (e as! WireError).expected.contains("at most 9 bytes") }
    }
}
