import Testing
import WireFormat

/// A message shaped like a shard call: bulk ids and scores, scalars, text, optionals, nesting.
struct ScoreBatch: WireCodable, Equatable {
    var shard: Int32
    var ids: BulkArray<Int64>
    var scores: BulkArray<Float>
    var model: String
    var threshold: Double?
    var reasons: [[String]]
    var complete: Bool

    func encode(to w: inout WireWriter) {
        w.write(shard); w.write(ids); w.write(scores); w.write(model)
        w.write(threshold); w.write(reasons); w.write(complete)
    }

    init(from r: inout WireReader) throws(WireError) {
        shard = try r.read(); ids = try r.read(); scores = try r.read(); model = try r.read()
        threshold = try r.read(); reasons = try r.read(); complete = try r.read()
    }

    init(shard: Int32, ids: [Int64], scores: [Float], model: String, threshold: Double?, reasons: [[String]], complete: Bool) {
        self.shard = shard
        self.ids = BulkArray(ids)
        self.scores = BulkArray(scores)
        self.model = model
        self.threshold = threshold
        self.reasons = reasons
        self.complete = complete
    }
}

@Suite("Wire format")
struct WireFormatTests {
    static let sample = ScoreBatch(
        shard: 517, ids: [1_000_000_001, -5, .max], scores: [0.25, .nan, -0.0], model: "churn-default v3 ✓",
        threshold: 0.5, reasons: [["complaints_90d", "arpu_trend_3m"], []], complete: true)

    @Test("a message decodes to what was encoded")
    func roundTrip() throws {
        let bytes = Self.sample.wireBytes()
        let back = try ScoreBatch.decode(bytes)
        #expect(back.shard == 517 && back.ids == Self.sample.ids && back.model == Self.sample.model)
        #expect(back.scores.elements[0] == 0.25 && back.scores.elements[1].isNaN && back.scores.elements[2].sign == .minus)
        #expect(back.threshold == 0.5 && back.reasons == Self.sample.reasons && back.complete)
        var none = Self.sample
        none.threshold = nil
        #expect(try ScoreBatch.decode(none.wireBytes()).threshold == nil)
    }

    @Test("a million floats travel as one raw run")
    func bulk() throws {
        let values = (0..<1_000_000).map { Float($0) * 0.25 }
        let bytes = BulkArray(values).wireBytes()
        #expect(bytes.count == 4_000_000 + 3)  // LEB128 length of 1,000,000 takes 3 bytes
        #expect(try BulkArray<Float>.decode(bytes).elements == values)
    }

    @Test("every truncation of a valid frame is an error, never a crash")
    func truncations() {
        let bytes = Self.sample.wireBytes()
        for cut in 0..<bytes.count {
            #expect(throws: WireError.self) { _ = try ScoreBatch.decode(Array(bytes[0..<cut])) }
        }
    }

    @Test("random bytes and random corruption never crash the decoder")
    func garbage() {
        var rng = SystemRandomNumberGenerator()
        let valid = Self.sample.wireBytes()
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? ScoreBatch.decode(bytes)
            let noise = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? ScoreBatch.decode(noise)
        }
    }

    @Test("malformed input is reported with its offset and what was expected", arguments: [
        ([UInt8]([2]), "Bool", 0),                                // a Bool must be 0 or 1
        ([0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "at most 0 items", 0),   // a string length far beyond the frame
        ([2, 0xC3, 0x28], "UTF-8", 0),                            // invalid UTF-8
    ] as [([UInt8], String, Int)])
    func malformed(bytes: [UInt8], expected: String, offset: Int) {
        #expect {
            if expected == "Bool" { _ = try Bool.decode(bytes) } else { _ = try String.decode(bytes) }
        } throws: { e in
            let e = e as! WireError
            return e.offset == offset && e.description.contains(expected)
        }
    }

    @Test("bytes left over after a value are an error")
    func trailing() {
        #expect(throws: WireError.self) { _ = try Int64.decode(Int64(7).wireBytes() + [0]) }
    }

    @Test("a huge element count cannot make the decoder allocate beyond the frame")
    func hugeCount() {
        // Claims 2^62 strings in a 10-byte frame.
        let bytes: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0]
        #expect(throws: WireError.self) { _ = try [String].decode(bytes) }
    }
}
