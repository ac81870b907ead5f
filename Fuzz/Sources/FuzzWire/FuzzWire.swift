import WireFormat

/// A message shaped like a shard call: bulk arrays, scalars, text, optionals and nesting together.
struct Batch: WireCodable {
    var shard: Int32
    var ids: BulkArray<Int64>
    var scores: BulkArray<Float>
    var model: String
    var threshold: Double?
    var reasons: [[String]]
    var flags: [Bool]
    var complete: Bool

    func encode(to w: inout WireWriter) {
        w.write(shard); w.write(ids); w.write(scores); w.write(model)
        w.write(threshold); w.write(reasons); w.write(flags); w.write(complete)
    }

    init(from r: inout WireReader) throws(WireError) {
        shard = try r.read(); ids = try r.read(); scores = try r.read(); model = try r.read()
        threshold = try r.read(); reasons = try r.read(); flags = try r.read(); complete = try r.read()
    }

    static var minimumEncodedSize: Int { 4 + 1 + 1 + 1 + 1 + 1 + 1 + 1 }
}

/// A decoded value must encode to bytes that decode to a value encoding to the same bytes
/// (bytes, not `==`: NaN payloads are values too).
@inline(never)
func roundTrip<T: WireCodable>(_ value: T) {
    let once = value.wireBytes()
    do {
        let again = try T.decode(once).wireBytes()
        if again != once { fatalError("\(T.self) does not survive a round trip: \(once) → \(again)") }
    } catch {
        fatalError("\(T.self) re-encoded cannot be decoded: \(error)")
    }
}

@inline(__always)
func step<T: WireCodable>(_ r: inout WireReader, _: T.Type) throws(WireError) {
    roundTrip(try r.read(T.self))
}

/// One frame read as a program: a tag byte says which type comes next, then its encoding, until
/// the frame ends or fails to decode. The same bytes are then decoded whole as a few message types.
func run(_ bytes: UnsafeRawBufferPointer) {
    var r = WireReader(bytes)
    do throws(WireError) {
        var steps = 0
        while r.remaining > 0, steps < 256 {
            steps += 1
            switch try r.read(UInt8.self) % 24 {
            case 0: try step(&r, Int64.self)
            case 1: try step(&r, UInt32.self)
            case 2: try step(&r, UInt16.self)
            case 3: try step(&r, Int.self)
            case 4: try step(&r, Bool.self)
            case 5: try step(&r, Float.self)
            case 6: try step(&r, Double.self)
            case 7: try step(&r, String.self)
            case 8: try step(&r, String?.self)
            case 9: try step(&r, [String].self)
            case 10: try step(&r, [[String]].self)
            case 11: try step(&r, BulkArray<Float>.self)
            case 12: try step(&r, BulkArray<Int64>.self)
            case 13: try step(&r, BulkArray<Int16>.self)
            case 14: try step(&r, BulkArray<UInt8>.self)
            case 15: try step(&r, [Int64].self)
            case 16: try step(&r, [Int32?].self)
            case 17: try step(&r, [Double].self)
            case 18: try step(&r, Batch.self)
            case 19: try step(&r, [Batch].self)
            case 20: try step(&r, [Bool].self)
            case 21: _ = try r.readLength()
            case 22:
                let raw = try r.readBytes(unit: 3)
                if raw.count % 3 != 0 { fatalError("readBytes(unit: 3) returned \(raw.count) bytes") }
            default: try r.finish()
            }
        }
    } catch {
        _ = error.description
    }
    let whole = Array(bytes)
    if let v = try? Batch.decode(whole) { roundTrip(v) }
    if let v = try? [String].decode(whole) { roundTrip(v) }
    if let v = try? [Int64?].decode(whole) { roundTrip(v) }
    if let v = try? BulkArray<Double>.decode(whole) { roundTrip(v) }
}

/// libFuzzer entry.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
