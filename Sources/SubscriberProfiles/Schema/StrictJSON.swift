/// A JSON value of a file an operator writes by hand (a campaign file, a feature schema).
/// Objects keep their members in file order, duplicates included, so that validation can refuse a
/// key given twice and report problems in file order (Foundation's `JSONSerialization` loses both,
/// and cannot tell `true` from `1`).
package indirect enum StrictJSON {
    case object([(key: String, value: StrictJSON)])
    case array([StrictJSON])
    case string(String)
    /// Possibly infinite (`1e999`): validation refuses it with the field's path.
    case number(Double)
    case bool(Bool)
    case null

    package var typeName: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// A strict RFC 8259 reader: one document, nothing after it, at most `maxDepth` levels. Errors
/// carry the line and column (from 1) of the offending byte.
package struct StrictJSONReader {
    package struct Failure: Error {
        package var offset: Int
        package var problem: String
    }

    package static let maxDepth = 32
    let bytes: [UInt8]
    var i = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A document that is not valid JSON: what is wrong, and where (from 1).
    package struct SyntaxError: Error, CustomStringConvertible {
        package var problem: String
        package var line: Int
        package var column: Int
        package var description: String { "not valid JSON: \(problem) (line \(line), column \(column))" }
    }

    /// Reads `bytes` as one document.
    package static func read(_ bytes: [UInt8]) -> Result<StrictJSON, SyntaxError> {
        var reader = StrictJSONReader(bytes)
        do throws(Failure) {
            return .success(try reader.document())
        } catch {
            let (line, column) = reader.lineAndColumn(error.offset)
            return .failure(SyntaxError(problem: error.problem, line: line, column: column))
        }
    }

    /// `s` as a JSON string literal (control characters escaped).
    package static func literal(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    package mutating func document() throws(Failure) -> StrictJSON {
        // A UTF-8 byte-order mark is tolerated: editors on some systems write one.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        skipSpace()
        let v = try value(depth: 1)
        skipSpace()
        guard i == bytes.count else { throw fail("unexpected bytes after the end of the document") }
        return v
    }

    /// Line and column (from 1) of byte `offset`.
    package func lineAndColumn(_ offset: Int) -> (Int, Int) {
        var line = 1, column = 1
        for b in bytes.prefix(offset) {
            if b == 0x0A { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
        }
        return (line, column)
    }

    private func fail(_ problem: String) -> Failure { Failure(offset: i, problem: problem) }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func value(depth: Int) throws(Failure) -> StrictJSON {
        guard depth <= Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth) levels") }
        guard i < bytes.count else { throw fail("the document ends where a value was expected") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: String, value: StrictJSON)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key in double quotes") }
                let key = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after the key") }
                i += 1
                skipSpace()
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw fail("the document ends inside an object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw fail("expected ',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [StrictJSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("the document ends inside an array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw fail("expected ',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try number())
        default:
            throw fail("unexpected character where a value was expected")
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        let w = Array(word.utf8), n = w.count
        guard i + n <= bytes.count else { throw fail("unknown literal (expected true, false or null)") }
        for k in 0..<n where bytes[i + k] != w[k] {
            throw fail("unknown literal (expected true, false or null)")
        }
        i += n
    }

    private mutating func number() throws(Failure) -> Double {
        let start = i
        func digits(_ r: inout Self) -> Int {
            let s = r.i
            while r.i < r.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.i]) { r.i += 1 }
            return r.i - s
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        guard digits(&self) > 0 else { throw fail("a number needs digits") }
        if bytes[intStart] == UInt8(ascii: "0") && i - intStart > 1 { throw Failure(offset: intStart, problem: "a number may not have leading zeros") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw fail("a decimal point needs digits after it") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("an exponent needs digits") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let x = Double(text) else { throw Failure(offset: start, problem: "unreadable number") }
        return x
    }

    private mutating func string() throws(Failure) -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("the document ends inside a string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b < 0x20 { throw fail("a control character inside a string (escape it)") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("the document ends inside an escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("a lone UTF-16 surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("a lone UTF-16 surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw fail("a lone UTF-16 surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("an invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw fail("an unknown escape in a string")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("a string that is not valid UTF-8") }
        return s
    }

    private mutating func hex4() throws(Failure) -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("a \\u escape needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[i]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw fail("a \\u escape needs four hex digits")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }
}
