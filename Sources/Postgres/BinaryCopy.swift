/// Writes PostgreSQL's binary COPY format: a signature header, then per row a 16-bit field count
/// and each field as a 32-bit length (−1 for NULL) followed by its big-endian value, then a −1 trailer.
public struct BinaryCopyEncoder {
    /// Bytes produced so far and not yet taken.
    public private(set) var bytes: [UInt8] = []

    static let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]

    /// Starts a stream with the header.
    public init() {
        bytes.reserveCapacity(1 << 20)
        bytes.append(contentsOf: Self.signature)
        append32(0)  // flags
        append32(0)  // header extension length
    }

    @inline(__always) private mutating func append16(_ v: Int16) {
        let u = UInt16(bitPattern: v)
        bytes.append(UInt8(u >> 8)); bytes.append(UInt8(u & 0xFF))
    }

    @inline(__always) private mutating func append32(_ v: UInt32) {
        bytes.append(UInt8(v >> 24)); bytes.append(UInt8((v >> 16) & 0xFF))
        bytes.append(UInt8((v >> 8) & 0xFF)); bytes.append(UInt8(v & 0xFF))
    }

    /// Begins a row of `fields` fields.
    public mutating func beginRow(fields: Int) { append16(Int16(fields)) }

    /// A `bigint` field.
    public mutating func int64(_ v: Int64) {
        append32(8)
        let u = UInt64(bitPattern: v)
        append32(UInt32(u >> 32)); append32(UInt32(u & 0xFFFF_FFFF))
    }

    /// An `integer` field.
    public mutating func int32(_ v: Int32) {
        append32(4)
        append32(UInt32(bitPattern: v))
    }

    /// A `smallint` field.
    public mutating func int16(_ v: Int16) {
        append32(2)
        append16(v)
    }

    /// A `real` field; NaN is written as NULL (missing).
    public mutating func float32OrNull(_ v: Float) {
        if v.isNaN { null(); return }
        append32(4)
        append32(v.bitPattern)
    }

    /// A `double precision` field.
    public mutating func float64(_ v: Double) {
        append32(8)
        append32(UInt32(v.bitPattern >> 32)); append32(UInt32(v.bitPattern & 0xFFFF_FFFF))
    }

    /// A `text` field.
    public mutating func text(_ s: String) {
        append32(UInt32(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    /// A NULL field.
    public mutating func null() { append32(0xFFFF_FFFF) }

    /// A `bytea` field (at most 1 GB, PostgreSQL's limit for a field).
    public mutating func bytea(_ b: [UInt8]) {
        append32(UInt32(truncatingIfNeeded: b.count))
        bytes.append(contentsOf: b)
    }

    /// A `text[]` field (one dimension, no NULL elements; an empty array for none).
    public mutating func textArray(_ elements: [String]) {
        guard !elements.isEmpty else {
            append32(12); append32(0); append32(0); append32(25)  // ndim 0, no nulls, element type text
            return
        }
        let payload = elements.reduce(0) { $0 + 4 + $1.utf8.count }
        append32(UInt32(20 + payload))
        append32(1); append32(0); append32(25)  // one dimension, no nulls, element type text (OID 25)
        append32(UInt32(elements.count)); append32(1)  // its length and lower bound
        for e in elements {
            append32(UInt32(e.utf8.count))
            bytes.append(contentsOf: e.utf8)
        }
    }

    /// A `timestamptz` field from microseconds since 1970-01-01T00:00:00Z (PostgreSQL counts from 2000).
    public mutating func timestamp(microsecondsSince1970 us: Int64) {
        int64(us &- 946_684_800_000_000)
    }

    /// Ends the stream.
    public mutating func finish() { append16(-1) }

    /// Takes the bytes produced so far (to hand to `CopyInWriter`), keeping the buffer's capacity.
    public mutating func take() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }
}

/// Reads PostgreSQL's binary COPY format from the chunks `COPY … TO STDOUT (FORMAT binary)` sends,
/// whatever their boundaries.
public struct BinaryCopyDecoder {
    private var pending: [UInt8] = []
    private var sawHeader = false
    /// Set once the trailer has been read.
    public private(set) var finished = false
    /// Rows decoded so far.
    public private(set) var rows = 0

    public init() {}

    /// One row's fields, read in order. Valid only inside the `onRow` call that received it.
    public struct Row {
        let base: UnsafeRawPointer
        let end: Int
        var offset: Int
        /// Number of fields in the row.
        public let fieldCount: Int

        init(base: UnsafeRawPointer, offset: Int, end: Int, fieldCount: Int) {
            self.base = base
            self.offset = offset
            self.end = end
            self.fieldCount = fieldCount
        }

        @inline(__always) func be32(_ at: Int) -> UInt32 {
            UInt32(bigEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self))
        }

        /// The next field's bytes (nil for NULL).
        @inline(__always)
        public mutating func next() throws(PostgresError) -> UnsafeRawBufferPointer? {
            guard offset + 4 <= end else { throw Self.truncated }
            let n = Int32(bitPattern: be32(offset))
            offset += 4
            if n < 0 { return nil }
            guard offset + Int(n) <= end else { throw Self.truncated }
            defer { offset += Int(n) }
            return UnsafeRawBufferPointer(start: base + offset, count: Int(n))
        }

        /// The next field as `bigint`.
        public mutating func int64() throws(PostgresError) -> Int64? {
            guard let f = try next() else { return nil }
            guard f.count == 8 else { throw Self.wrongSize(f.count, "bigint", 8) }
            return Int64(bigEndian: f.loadUnaligned(as: Int64.self))
        }

        /// The next field as `real`; NULL reads as NaN (missing).
        public mutating func float32OrNaN() throws(PostgresError) -> Float {
            guard let f = try next() else { return .nan }
            guard f.count == 4 else { throw Self.wrongSize(f.count, "real", 4) }
            return Float(bitPattern: UInt32(bigEndian: f.loadUnaligned(as: UInt32.self)))
        }

        static let truncated = PostgresError(.protocolViolation, message: "binary COPY row ends inside a field", context: "decoding COPY data")

        static func wrongSize(_ n: Int, _ type: String, _ expected: Int) -> PostgresError {
            PostgresError(.protocolViolation, message: "field has \(n) bytes; a \(type) has \(expected) (is the column of that type?)", context: "decoding COPY data")
        }
    }

    /// Feeds a chunk; calls `onRow` for every complete row it completes.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, onRow: (inout Row) throws -> Void) throws {
        if pending.isEmpty {
            let used = try parse(chunk, onRow: onRow)
            if used < chunk.count { pending.append(contentsOf: chunk[used...]) }
        } else {
            pending.append(contentsOf: chunk)
            let buffer = pending
            let used = try buffer.withUnsafeBytes { try parse($0, onRow: onRow) }
            pending.removeFirst(used)
        }
    }

    /// Checks that the stream ended with its trailer.
    public func finish() throws(PostgresError) {
        guard finished && pending.isEmpty else {
            throw PostgresError(.protocolViolation, message: "binary COPY stream ended without its trailer (\(pending.count) bytes left)", context: "decoding COPY data")
        }
    }

    /// Parses as many whole rows as `buffer` holds; returns the bytes consumed.
    private mutating func parse(_ buffer: UnsafeRawBufferPointer, onRow: (inout Row) throws -> Void) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var at = 0
        let n = buffer.count
        if !sawHeader {
            guard n >= 19 else { return 0 }
            guard Array(buffer[0..<11]) == BinaryCopyEncoder.signature else {
                throw PostgresError(.protocolViolation, message: "COPY data does not start with the binary COPY signature", context: "decoding COPY data")
            }
            let ext = Int(UInt32(bigEndian: base.loadUnaligned(fromByteOffset: 15, as: UInt32.self)))
            guard n >= 19 + ext else { return 0 }
            at = 19 + ext
            sawHeader = true
        }
        while at + 2 <= n && !finished {
            let fields = Int(Int16(bitPattern: UInt16(bigEndian: base.loadUnaligned(fromByteOffset: at, as: UInt16.self))))
            if fields == -1 {
                finished = true
                at += 2
                break
            }
            guard fields >= 0 else {
                throw PostgresError(.protocolViolation, message: "binary COPY row declares \(fields) fields", context: "decoding COPY data")
            }
            // Find the row's end before handing it out, so a row split across chunks waits for the rest.
            var end = at + 2
            var complete = true
            for _ in 0..<fields {
                guard end + 4 <= n else { complete = false; break }
                let len = Int32(bitPattern: UInt32(bigEndian: base.loadUnaligned(fromByteOffset: end, as: UInt32.self)))
                end += 4 + max(0, Int(len))
                if end > n { complete = false; break }
            }
            if !complete { break }
            var row = Row(base: base, offset: at + 2, end: end, fieldCount: fields)
            try onRow(&row)
            rows += 1
            at = end
        }
        return at
    }
}
