/// ChurnGrid's binary wire format: what remote calls' arguments and results are encoded with
/// (the actor system's serialization requirement). Compact and explicit: little-endian fixed-width
/// numbers, LEB128 lengths, UTF-8 strings, and bulk arrays of numbers (ids, scores, profile
/// columns) as one length-prefixed run of raw bytes that is copied with a single `memcpy`.
/// Decoding never traps on bad input: a truncated or malformed frame throws `WireError` with the
/// offset and what was expected. It never allocates more than a small multiple of the frame: a
/// count is refused unless that many elements of at least `minimumEncodedSize` bytes fit in the
/// bytes left, and capacity reserved ahead of decoding never exceeds the bytes left.
public protocol WireCodable: Sendable {
    /// Appends this value.
    func encode(to writer: inout WireWriter)
    /// Reads a value.
    /// - Throws: `WireError` when the bytes are not a value of this type.
    init(from reader: inout WireReader) throws(WireError)
    /// The fewest bytes any value of this type encodes to (at least 1). An array's count is
    /// checked against the bytes left divided by this before anything is allocated; a type
    /// whose every value takes, say, 8 bytes should say so. Defaults to 1.
    static var minimumEncodedSize: Int { get }
}

extension WireCodable {
    public static var minimumEncodedSize: Int { 1 }
}

/// Input that is not a valid encoding.
public struct WireError: Error, Sendable, CustomStringConvertible {
    /// Byte offset in the frame where reading failed.
    public var offset: Int
    /// What was expected there.
    public var expected: String

    public init(offset: Int, expected: String) {
        self.offset = offset
        self.expected = expected
    }

    public var description: String { "malformed frame at byte \(offset): expected \(expected)" }
}

/// Builds an encoded frame.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) {
        bytes.reserveCapacity(capacity)
    }

    /// Makes room for `additional` more bytes (before a large write).
    public mutating func reserve(_ additional: Int) {
        bytes.reserveCapacity(bytes.count + additional)
    }

    /// Hands the bytes over, leaving the writer empty (no copy).
    public mutating func take() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }

    /// Appends a value.
    public mutating func write<T: WireCodable>(_ value: T) {
        value.encode(to: &self)
    }

    /// Appends a fixed-width integer, little-endian.
    public mutating func writeFixed<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends an unsigned LEB128 length or count.
    public mutating func writeLength(_ n: Int) {
        precondition(n >= 0)
        var v = UInt64(n)
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends raw bytes with their length.
    public mutating func writeBytes(_ raw: UnsafeRawBufferPointer) {
        writeLength(raw.count)
        bytes.append(contentsOf: raw)
    }
}

/// Reads an encoded frame from the front.
public struct WireReader {
    private let base: UnsafeRawBufferPointer
    /// Bytes consumed so far.
    public private(set) var offset = 0

    /// Reads from `bytes`, which must stay valid while the reader is used.
    public init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes
    }

    /// Bytes left.
    public var remaining: Int { base.count - offset }

    /// Reads a value.
    public mutating func read<T: WireCodable>(_: T.Type = T.self) throws(WireError) -> T {
        try T(from: &self)
    }

    /// The largest count a peer's answer may report (subscribers, copies, bytes written…): 2^40,
    /// so that the sum of the answers of every shard (at most 2^20) stays far inside `Int`.
    public static let maxCount = 1 << 40

    /// Reads a count a peer reports (`what` names it in the error): an `Int` in 0 ... `maxCount`.
    /// A receiver that adds up counts from many peers reads them with this, so that a hostile or
    /// broken answer is a malformed frame rather than an overflow.
    public mutating func readCount(_ what: String) throws(WireError) -> Int {
        let at = offset
        let v: Int = try read()
        guard v >= 0, v <= Self.maxCount else { throw WireError(offset: at, expected: "\(what): a count in 0...\(Self.maxCount), found \(v)") }
        return v
    }

    /// Reads a fixed-width little-endian integer.
    public mutating func readFixed<T: FixedWidthInteger>(_: T.Type = T.self) throws(WireError) -> T {
        let n = MemoryLayout<T>.size
        guard remaining >= n else { throw WireError(offset: offset, expected: "\(n) bytes of \(T.self), found \(remaining)") }
        let v = base.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += n
        return T(littleEndian: v)
    }

    /// Reads an unsigned LEB128 length or count, refusing one that cannot fit in what is left when
    /// each item takes at least `unit` bytes (values below 1 count as 1).
    public mutating func readLength(unit: Int = 1) throws(WireError) -> Int {
        let unit = max(unit, 1)
        let start = offset
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < base.count else { throw WireError(offset: start, expected: "a length, found end of frame") }
            let b = base[offset]
            offset += 1
            guard shift < 63 else { throw WireError(offset: start, expected: "a length of at most 9 bytes") }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { break }
            shift += 7
        }
        let fit = remaining / unit
        guard v <= UInt64(fit) else {
            let what = unit == 1 ? "items" : "items of at least \(unit) bytes"
            throw WireError(offset: start, expected: "at most \(fit) \(what) as the frame holds, found a length of \(v)")
        }
        return Int(v)
    }

    /// Reads length-prefixed raw bytes without copying (`unit` bytes per counted item, values
    /// below 1 count as 1); the buffer is valid as long as the input.
    public mutating func readBytes(unit: Int = 1) throws(WireError) -> UnsafeRawBufferPointer {
        let unit = max(unit, 1)
        let n = try readLength(unit: unit) * unit
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: base[offset..<(offset + n)])
    }

    /// Checks that the whole frame was read.
    public func finish() throws(WireError) {
        guard remaining == 0 else { throw WireError(offset: offset, expected: "end of frame, found \(remaining) more bytes") }
    }
}

// MARK: Conformances

/// Fixed-width integers travel as their little-endian bytes.
public protocol WireFixedWidthInteger: FixedWidthInteger, WireCodable {}

extension WireFixedWidthInteger {
    public func encode(to w: inout WireWriter) { w.writeFixed(self) }
    public init(from r: inout WireReader) throws(WireError) { self = try r.readFixed() }
    public static var minimumEncodedSize: Int { MemoryLayout<Self>.size }
}

extension Int64: WireFixedWidthInteger {}
extension UInt64: WireFixedWidthInteger {}
extension Int32: WireFixedWidthInteger {}
extension UInt32: WireFixedWidthInteger {}
extension Int16: WireFixedWidthInteger {}
extension UInt16: WireFixedWidthInteger {}
extension UInt8: WireFixedWidthInteger {}

extension Int: WireCodable {
    public func encode(to w: inout WireWriter) { w.writeFixed(Int64(self)) }
    public init(from r: inout WireReader) throws(WireError) { self = Int(try r.readFixed(Int64.self)) }
    public static var minimumEncodedSize: Int { 8 }
}

extension Bool: WireCodable {
    public func encode(to w: inout WireWriter) { w.writeFixed(UInt8(self ? 1 : 0)) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        switch try r.readFixed(UInt8.self) {
        case 0: self = false
        case 1: self = true
        case let b: throw WireError(offset: at, expected: "a Bool (0 or 1), found \(b)")
        }
    }
}

extension Float: WireCodable {
    public func encode(to w: inout WireWriter) { w.writeFixed(bitPattern) }
    public init(from r: inout WireReader) throws(WireError) { self = Float(bitPattern: try r.readFixed()) }
    public static var minimumEncodedSize: Int { 4 }
}

extension Double: WireCodable {
    public func encode(to w: inout WireWriter) { w.writeFixed(bitPattern) }
    public init(from r: inout WireReader) throws(WireError) { self = Double(bitPattern: try r.readFixed()) }
    public static var minimumEncodedSize: Int { 8 }
}

extension String: WireCodable {
    public func encode(to w: inout WireWriter) {
        var s = self
        s.withUTF8 { w.writeBytes(UnsafeRawBufferPointer($0)) }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let raw = try r.readBytes()
        guard let s = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw WireError(offset: at, expected: "UTF-8 text")
        }
        self = s
    }
}

extension Optional: WireCodable where Wrapped: WireCodable {
    public func encode(to w: inout WireWriter) {
        switch self {
        case .none: w.writeFixed(UInt8(0))
        case .some(let v): w.writeFixed(UInt8(1)); v.encode(to: &w)
        }
    }

    public init(from r: inout WireReader) throws(WireError) {
        self = try Bool(from: &r) ? .some(try Wrapped(from: &r)) : .none
    }
}

/// Element types whose arrays travel as raw bytes (bulk payloads: ids, scores, profile columns).
public protocol WireBulkElement: WireCodable, BitwiseCopyable {}
extension Float: WireBulkElement {}
extension Double: WireBulkElement {}
extension Int64: WireBulkElement {}
extension Int32: WireBulkElement {}
extension Int16: WireBulkElement {}
extension UInt8: WireBulkElement {}

/// An array of numbers sent as one raw run (little-endian platforms only, as every ChurnGrid node is).
public struct BulkArray<Element: WireBulkElement>: WireCodable, Equatable where Element: Equatable {
    public var elements: [Element]

    public init(_ elements: [Element]) {
        self.elements = elements
    }

    public func encode(to w: inout WireWriter) {
        w.reserve(elements.count * MemoryLayout<Element>.stride + 10)
        w.writeLength(elements.count)
        elements.withUnsafeBytes { w.append(contentsOf: $0) }
    }

    public init(from r: inout WireReader) throws(WireError) {
        let raw = try r.readBytes(unit: MemoryLayout<Element>.stride)
        elements = [Element](unsafeUninitializedCapacity: raw.count / MemoryLayout<Element>.stride) { buffer, count in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            count = raw.count / MemoryLayout<Element>.stride
        }
    }
}

extension WireWriter {
    fileprivate mutating func append(contentsOf raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }
}

extension Array: WireCodable where Element: WireCodable {
    public func encode(to w: inout WireWriter) {
        w.writeLength(count)
        for e in self { e.encode(to: &w) }
    }

    public init(from r: inout WireReader) throws(WireError) {
        // A count that cannot fit (each element takes at least `minimumEncodedSize` bytes) is refused
        // up front; what is reserved before decoding never exceeds the bytes left, so an element
        // type much larger in memory than on the wire (String: 16 bytes, 1 on the wire) grows only
        // with elements actually decoded.
        let n = try r.readLength(unit: Element.minimumEncodedSize)
        var out: [Element] = []
        out.reserveCapacity(Swift.min(n, r.remaining / Swift.max(MemoryLayout<Element>.stride, 1)))
        for _ in 0..<n { out.append(try Element(from: &r)) }
        self = out
    }
}

extension WireCodable {
    /// This value as a frame.
    public func wireBytes() -> [UInt8] {
        var w = WireWriter()
        encode(to: &w)
        return w.bytes
    }

    /// Decodes a whole frame as this type.
    /// - Throws: `WireError`, including when bytes are left over.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Self {
        let result: Result<Self, WireError> = bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            do throws(WireError) {
                let value = try Self(from: &r)
                try r.finish()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
