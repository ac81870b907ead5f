import Postgres
import Testing

/// The decoder of PostgreSQL's binary COPY stream (profiles loaded by workers): a stream that is
/// not what the server sends — a hostile server or proxy, corrupted bytes — is an error naming
/// what is wrong, never a trap.
@Suite("Binary COPY decoding of hostile streams")
struct BinaryCopyDecoderTests {
    /// A valid stream's header and one row of two bigints, without the trailer.
    static func oneRow() -> [UInt8] {
        var e = BinaryCopyEncoder()
        e.beginRow(fields: 2)
        e.int64(1_000_000_001)
        e.int64(7)
        return e.take()
    }

    @Test("a row declaring a negative field count (other than the trailer's -1) is refused after the rows before it")
    func negativeFieldCount() throws {
        var decoder = BinaryCopyDecoder()
        var ids: [Int64] = []
        let stream = Self.oneRow() + [0xFF, 0xFE, 0, 0, 0, 8]
        do {
            try stream.withUnsafeBytes { chunk in
                try decoder.feed(chunk) { row in
                    if let id = try row.int64() { ids.append(id) }
                }
            }
            Issue.record("a field count of -2 was accepted")
        } catch let error as PostgresError {
            #expect("\(error)".contains("declares -2 fields"), "\(error)")
        }
        #expect(ids == [1_000_000_001])
    }

    @Test("a stream cut before its trailer is reported by finish")
    func cut() throws {
        var decoder = BinaryCopyDecoder()
        try Self.oneRow().withUnsafeBytes { chunk in try decoder.feed(chunk) { _ in } }
        #expect(decoder.rows == 1)
        #expect(throws: PostgresError.self) { try decoder.finish() }
    }
}
