#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value inside a `JSONTape`, with the path that led to it so that every error can say
/// exactly which field of which file was wrong.
struct JSONField {
    let tape: JSONTape
    let index: Int
    let path: String
    let file: String

    private var token: JSONTape.Token { tape.tokens[index] }
    var kind: JSONTape.Kind { token.kind }

    func error(_ message: String, code: ModelError.Code = .malformed) -> ModelError {
        ModelError(code, file: file, field: path.isEmpty ? "(root)" : path, message)
    }

    private var kindName: String {
        switch kind {
        case .null: "null"
        case .true, .false: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    private func child(_ index: Int, _ component: String) -> JSONField {
        JSONField(tape: tape, index: index, path: path.isEmpty ? component : path + component, file: file)
    }

    // MARK: Objects

    /// The member `name` of this object, or nil when absent.
    func optionalMember(_ name: String) throws(ModelError) -> JSONField? {
        guard kind == .object else { throw error("expected an object, found \(kindName)") }
        let component = path.isEmpty ? name : "." + name
        var key = index + 1
        for _ in 0..<Int(token.count) {
            let k = tape.tokens[key]
            if !keyEquals(k, name) {
                key = Int(tape.tokens[key + 1].next)
                continue
            }
            return child(key + 1, component)
        }
        return nil
    }

    /// The member `name` of this object.
    /// - Throws: `ModelError` naming the missing field.
    func member(_ name: String) throws(ModelError) -> JSONField {
        guard let m = try optionalMember(name) else {
            let p = path.isEmpty ? name : path + "." + name
            throw ModelError(.malformed, file: file, field: p, "required field is missing")
        }
        return m
    }

    private func keyEquals(_ k: JSONTape.Token, _ name: String) -> Bool {
        var utf8 = name.utf8.makeIterator()
        var i = Int(k.start)
        while i < Int(k.end) {
            guard let c = utf8.next(), c == tape.bytes[i] else { return false }
            i += 1
        }
        return utf8.next() == nil && k.count == 0
    }

    // MARK: Arrays

    /// The elements of this array.
    func elements() throws(ModelError) -> [JSONField] {
        guard kind == .array else { throw error("expected an array, found \(kindName)") }
        var out: [JSONField] = []
        out.reserveCapacity(Int(token.count))
        var i = index + 1
        for n in 0..<Int(token.count) {
            out.append(child(i, "[\(n)]"))
            i = Int(tape.tokens[i].next)
        }
        return out
    }

    /// An array of numbers parsed as `Float` straight from their decimal text (as XGBoost wrote them).
    func floats(count expected: Int? = nil) throws(ModelError) -> [Float] {
        try numbers(count: expected) { p, endp in strtof(p, endp) }
    }

    /// An array of numbers parsed as `Double`.
    func doubles(count expected: Int? = nil) throws(ModelError) -> [Double] {
        try numbers(count: expected) { p, endp in strtod(p, endp) }
    }

    /// An array of integers (booleans count as 0/1, as XGBoost has written both).
    func integers(count expected: Int? = nil) throws(ModelError) -> [Int] {
        guard kind == .array else { throw error("expected an array of integers, found \(kindName)") }
        let n = Int(token.count)
        if let expected, expected != n {
            throw error("expected \(expected) integers (one per node), found \(n)", code: .inconsistent)
        }
        var out = [Int]()
        out.reserveCapacity(n)
        var i = index + 1
        for k in 0..<n {
            let t = tape.tokens[i]
            switch t.kind {
            case .true: out.append(1)
            case .false: out.append(0)
            case .number:
                guard let v = parseInteger(t) else {
                    throw ModelError(.malformed, file: file, field: path + "[\(k)]", "expected an integer, found \(text(t))")
                }
                out.append(v)
            default:
                throw ModelError(.malformed, file: file, field: path + "[\(k)]", "expected an integer")
            }
            i = Int(t.next)
        }
        return out
    }

    private func numbers<T: BinaryFloatingPoint>(
        count expected: Int?,
        _ parse: (UnsafePointer<CChar>, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T
    ) throws(ModelError) -> [T] {
        guard kind == .array else { throw error("expected an array of numbers, found \(kindName)") }
        let n = Int(token.count)
        if let expected, expected != n {
            throw error("expected \(expected) numbers (one per node), found \(n)", code: .inconsistent)
        }
        var out = [T]()
        out.reserveCapacity(n)
        var i = index + 1
        var bad: Int? = nil
        tape.bytes.withUnsafeBufferPointer { buf in
            // The tape's bytes always end with a NUL, so there is a base address; without one there is nothing to read.
            guard let start = buf.baseAddress else { if n > 0 { bad = 0 }; return }
            start.withMemoryRebound(to: CChar.self, capacity: buf.count) { base in
                var endp: UnsafeMutablePointer<CChar>? = nil
                for k in 0..<n {
                    let t = tape.tokens[i]
                    guard t.kind == .number else { bad = k; return }
                    let v = parse(base + Int(t.start), &endp)
                    guard endp == UnsafeMutablePointer(mutating: base + Int(t.end)) else { bad = k; return }
                    out.append(v)
                    i = Int(t.next)
                }
            }
        }
        if let bad {
            throw ModelError(.malformed, file: file, field: path + "[\(bad)]", "expected a number")
        }
        return out
    }

    // MARK: Scalars

    /// This value as a string.
    func string() throws(ModelError) -> String {
        guard kind == .string else { throw error("expected a string, found \(kindName)") }
        return decodeString(token)
    }

    /// An integer written either as a JSON number or as a string ("300"), as XGBoost does for params.
    func integer() throws(ModelError) -> Int {
        let t = token
        if t.kind == .number, let v = parseInteger(t) { return v }
        if t.kind == .string, let v = Int(decodeString(t)) { return v }
        throw error("expected an integer, found \(t.kind == .string ? "\"\(decodeString(t))\"" : kindName)")
    }

    /// The raw text of a number token.
    private func text(_ t: JSONTape.Token) -> String {
        String(decoding: tape.bytes[Int(t.start)..<Int(t.end)], as: UTF8.self)
    }

    private func parseInteger(_ t: JSONTape.Token) -> Int? {
        Int(text(t))
    }

    private func decodeString(_ t: JSONTape.Token) -> String {
        let raw = tape.bytes[Int(t.start)..<Int(t.end)]
        if t.count == 0 { return String(decoding: raw, as: UTF8.self) }
        var out = [UInt8]()
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        var pendingHigh: UInt32? = nil
        func appendScalar(_ v: UInt32) {
            let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while i < raw.endIndex {
            let c = raw[i]
            guard c == UInt8(ascii: "\\"), i + 1 < raw.endIndex else {
                out.append(c)
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                guard i + 4 <= raw.endIndex,
                      let v = UInt32(String(decoding: raw[i..<i + 4], as: UTF8.self), radix: 16)
                else { out.append(contentsOf: Array("\u{FFFD}".utf8)); continue }
                i += 4
                if (0xD800..<0xDC00).contains(v) {
                    pendingHigh = v
                } else if (0xDC00..<0xE000).contains(v), let h = pendingHigh {
                    appendScalar(0x10000 + ((h - 0xD800) << 10) + (v - 0xDC00))
                    pendingHigh = nil
                } else {
                    appendScalar(v)
                }
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
