#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A parsed JSON document kept as a flat tape of tokens over the original bytes.
///
/// Model files are large (a 1000-tree XGBoost model is tens of megabytes), so values are
/// not materialised: numbers stay as byte ranges until asked for, which also lets a
/// `Float` field be parsed straight from its decimal text with no double rounding.
struct JSONTape {
    enum Kind: UInt8 {
        case null, `true`, `false`, number, string, array, object
    }

    struct Token {
        var kind: Kind
        /// Byte range of the value in `bytes` (for strings: without the quotes).
        var start: UInt32
        var end: UInt32
        /// Index of the token after this value's subtree.
        var next: UInt32
        /// Children of an array, members of an object; whether a string has escapes.
        var count: UInt32
    }

    /// The document bytes followed by a NUL, so C number parsers always stop in bounds.
    let bytes: [UInt8]
    private(set) var tokens: [Token] = []

    /// Parses `bytes` as one JSON value.
    /// - Throws: `JSONSyntaxError` with the byte offset and what was expected.
    init(bytes input: [UInt8]) throws(JSONSyntaxError) {
        guard input.count < Int(UInt32.max) - 1 else {
            throw JSONSyntaxError(offset: 0, message: "document larger than 4 GiB")
        }
        var b = input
        b.append(0)
        self.bytes = b
        tokens.reserveCapacity(input.count / 8)
        var parser = Parser(bytes: self.bytes, end: input.count)
        do {
            try parser.parseDocument(into: &tokens)
        } catch {
            var e = error
            e.path = Self.openPath(tokens, bytes)
            throw e
        }
    }

    /// Where parsing stopped, as a field path ("learner.gradient_booster.model.trees[3].split_conditions[7]"),
    /// recovered from the containers still open in a partial tape.
    static func openPath(_ tokens: [Token], _ bytes: [UInt8]) -> String {
        var path = ""
        var i = 0
        // Containers still open have no `end` yet; walk down through them.
        while i < tokens.count, tokens[i].kind == .array || tokens[i].kind == .object, tokens[i].end == 0 {
            let isObject = tokens[i].kind == .object
            var child = i + 1
            var n = 0
            var key = ""
            while child < tokens.count {
                if isObject {
                    key = String(decoding: bytes[Int(tokens[child].start)..<Int(tokens[child].end)], as: UTF8.self)
                    child += 1
                    if child >= tokens.count { break }
                }
                let t = tokens[child]
                if (t.kind == .array || t.kind == .object) && t.end == 0 { break }  // failed inside this child
                child = Int(t.next)
                n += 1  // this child is complete: the failure is at or after the next one
                if child >= tokens.count { break }
            }
            path += isObject ? (path.isEmpty ? key : "." + key) : "[\(n)]"
            guard child < tokens.count else { break }
            i = child
        }
        return path
    }

    /// The root value.
    var root: Int { 0 }
}

/// A JSON text that is not well formed.
struct JSONSyntaxError: Error {
    var offset: Int
    var message: String
    /// The field being read when parsing stopped.
    var path = ""
}

private struct Parser {
    let bytes: [UInt8]
    let end: Int
    var pos = 0
    var depth = 0

    init(bytes: [UInt8], end: Int) {
        self.bytes = bytes
        self.end = end
    }

    mutating func parseDocument(into tokens: inout [JSONTape.Token]) throws(JSONSyntaxError) {
        skipSpace()
        try parseValue(into: &tokens)
        skipSpace()
        if pos != end {
            throw JSONSyntaxError(offset: pos, message: "unexpected content after the JSON value")
        }
    }

    private mutating func skipSpace() {
        while pos < end {
            switch bytes[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    private func describe(_ offset: Int) -> String {
        guard offset < end else { return "end of file (truncated?)" }
        let c = bytes[offset]
        if c >= 0x20 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16))"
    }

    private mutating func parseValue(into tokens: inout [JSONTape.Token]) throws(JSONSyntaxError) {
        guard pos < end else {
            throw JSONSyntaxError(offset: pos, message: "expected a value, found \(describe(pos))")
        }
        switch bytes[pos] {
        case UInt8(ascii: "{"): try parseContainer(into: &tokens, object: true)
        case UInt8(ascii: "["): try parseContainer(into: &tokens, object: false)
        case UInt8(ascii: "\""): try parseString(into: &tokens)
        case UInt8(ascii: "t"): try literal("true", .true, into: &tokens)
        case UInt8(ascii: "f"): try literal("false", .false, into: &tokens)
        case UInt8(ascii: "n"): try literal("null", .null, into: &tokens)
        case UInt8(ascii: "N"): try literal("NaN", .number, into: &tokens)
        case UInt8(ascii: "I"): try literal("Infinity", .number, into: &tokens)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber(into: &tokens)
        default:
            throw JSONSyntaxError(offset: pos, message: "expected a value, found \(describe(pos))")
        }
    }

    private mutating func literal(_ word: StaticString, _ kind: JSONTape.Kind, into tokens: inout [JSONTape.Token]) throws(JSONSyntaxError) {
        let start = pos
        let n = word.utf8CodeUnitCount
        guard start + n <= end else {
            throw JSONSyntaxError(offset: pos, message: "expected '\(word)', found end of file (truncated?)")
        }
        let w = word.utf8Start
        for i in 0..<n where bytes[start + i] != w[i] {
            throw JSONSyntaxError(offset: start + i, message: "expected '\(word)', found \(describe(start + i))")
        }
        pos += n
        let t = UInt32(tokens.count + 1)
        tokens.append(.init(kind: kind, start: UInt32(start), end: UInt32(pos), next: t, count: 0))
    }

    private mutating func parseNumber(into tokens: inout [JSONTape.Token]) throws(JSONSyntaxError) {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") {
            pos += 1
            if pos < end, bytes[pos] == UInt8(ascii: "I") {
                try literal("Infinity", .number, into: &tokens)
                tokens[tokens.count - 1].start = UInt32(start)
                return
            }
        }
        func digits(_ p: inout Int) -> Int {
            let s = p
            while p < end, bytes[p] >= 0x30, bytes[p] <= 0x39 { p += 1 }
            return p - s
        }
        guard digits(&pos) > 0 else {
            throw JSONSyntaxError(offset: pos, message: "expected digits in a number, found \(describe(pos))")
        }
        if pos < end, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard digits(&pos) > 0 else {
                throw JSONSyntaxError(offset: pos, message: "expected digits after '.', found \(describe(pos))")
            }
        }
        if pos < end, bytes[pos] | 0x20 == UInt8(ascii: "e") {
            pos += 1
            if pos < end, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard digits(&pos) > 0 else {
                throw JSONSyntaxError(offset: pos, message: "expected exponent digits, found \(describe(pos))")
            }
        }
        let t = UInt32(tokens.count + 1)
        tokens.append(.init(kind: .number, start: UInt32(start), end: UInt32(pos), next: t, count: 0))
    }

    private mutating func parseString(into tokens: inout [JSONTape.Token]) throws(JSONSyntaxError) {
        let open = pos
        pos += 1
        let start = pos
        var escaped: UInt32 = 0
        while true {
            guard pos < end else {
                throw JSONSyntaxError(offset: open, message: "string starting here is not closed (truncated?)")
            }
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                escaped = 1
                pos += 2
                continue
            }
            if c < 0x20 {
                throw JSONSyntaxError(offset: pos, message: "control character inside a string")
            }
            pos += 1
        }
        let t = UInt32(tokens.count + 1)
        tokens.append(.init(kind: .string, start: UInt32(start), end: UInt32(pos), next: t, count: escaped))
        pos += 1
    }

    private mutating func parseContainer(into tokens: inout [JSONTape.Token], object: Bool) throws(JSONSyntaxError) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 512 else {
            throw JSONSyntaxError(offset: pos, message: "nesting deeper than 512 levels")
        }
        let open = pos
        let me = tokens.count
        tokens.append(.init(kind: object ? .object : .array, start: UInt32(open), end: 0, next: 0, count: 0))
        pos += 1
        let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
        var count: UInt32 = 0
        skipSpace()
        if pos < end, bytes[pos] == close {
            pos += 1
        } else {
            while true {
                skipSpace()
                if object {
                    guard pos < end, bytes[pos] == UInt8(ascii: "\"") else {
                        throw JSONSyntaxError(offset: pos, message: "expected a member name in quotes, found \(describe(pos))")
                    }
                    try parseString(into: &tokens)
                    skipSpace()
                    guard pos < end, bytes[pos] == UInt8(ascii: ":") else {
                        throw JSONSyntaxError(offset: pos, message: "expected ':' after a member name, found \(describe(pos))")
                    }
                    pos += 1
                    skipSpace()
                }
                try parseValue(into: &tokens)
                count += 1
                skipSpace()
                guard pos < end else {
                    throw JSONSyntaxError(offset: open, message: "\(object ? "object" : "array") starting here is not closed (truncated?)")
                }
                if bytes[pos] == UInt8(ascii: ",") {
                    pos += 1
                    continue
                }
                if bytes[pos] == close {
                    pos += 1
                    break
                }
                throw JSONSyntaxError(offset: pos, message: "expected ',' or '\(Character(Unicode.Scalar(close)))', found \(describe(pos))")
            }
        }
        tokens[me].end = UInt32(pos)
        tokens[me].next = UInt32(tokens.count)
        tokens[me].count = count
    }
}
