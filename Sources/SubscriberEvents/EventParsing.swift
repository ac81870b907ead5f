import SubscriberProfiles

/// The wire form of events: NDJSON, one JSON object a line,
///
///     {"event_id": "b-42", "source": "billing", "subscriber_id": 1000000123, "type": "complaint",
///      "at": "2026-12-03T10:15:00Z", "value": 1.0}
///
/// read by a strict, allocation-light byte scanner (no Foundation): every line gives either an
/// event or a typed rejection with its line number, never a crash, whatever the bytes.

/// One subscriber event, validated.
public struct SubscriberEvent: Sendable, Equatable, Hashable {
    /// Producer's id, unique per source (1–64 bytes of UTF-8).
    public var eventID: String
    /// Producer ("default" when the line has none). An event is known by (source, eventID, at): a
    /// resend must carry the same `at` to be recognised as a duplicate (docs/events.md); the same
    /// id with another time is another event.
    public var source: String
    public var subscriberID: Int64
    public var type: EventType
    /// When it happened: milliseconds since 1970-01-01T00:00:00Z.
    public var at: Int64
    /// The value, resolved: the line's, the type's default when optional and omitted, 1 for a type
    /// that carries none.
    public var value: Double

    public init(eventID: String, source: String = EventParser.defaultSource, subscriberID: Int64, type: EventType, at: Int64, value: Double? = nil) {
        self.eventID = eventID
        self.source = source
        self.subscriberID = subscriberID
        self.type = type
        self.at = at
        switch type.spec.value {
        case .required: self.value = value ?? .nan
        case .optional(let d): self.value = value ?? d
        case .forbidden: self.value = 1
        }
    }

    /// The day of `at` (days since 1970-01-01, UTC).
    public var day: Int32 { Int32(clamping: Timestamp.floorDiv(at, Timestamp.millisPerDay)) }

    /// The event as one NDJSON line (without the newline); `EventParser` reads it back exactly.
    public var ndjson: String {
        var s = "{\"event_id\":\(EventParser.jsonString(eventID))"
        if source != EventParser.defaultSource { s += ",\"source\":\(EventParser.jsonString(source))" }
        s += ",\"subscriber_id\":\(subscriberID),\"type\":\"\(type.rawValue)\",\"at\":\"\(Timestamp.format(at))\""
        switch type.spec.value {
        case .forbidden: break
        case .required, .optional: s += ",\"value\":\(EventParser.jsonNumber(value))"
        }
        return s + "}"
    }
}

/// Why a line was rejected. `code` is the stable name used in counts (`rejected_by_reason`).
public enum RejectionReason: String, Sendable, CaseIterable, Hashable, Codable {
    /// Not one JSON object: bad syntax, bad UTF-8, trailing bytes, nesting too deep.
    case malformedJSON = "malformed_json"
    /// The line is longer than `EventParser.maxLineBytes`.
    case lineTooLong = "line_too_long"
    /// A field outside the wire form.
    case unknownField = "unknown_field"
    /// A field given twice.
    case duplicateField = "duplicate_field"
    /// A field of the wrong JSON type (e.g. a number where a string belongs).
    case wrongFieldType = "wrong_field_type"
    /// `event_id`, `subscriber_id`, `type` or `at` is absent.
    case missingField = "missing_field"
    case unknownType = "unknown_type"
    /// `subscriber_id` is not a positive integer that fits in 64 bits.
    case badSubscriberID = "bad_subscriber_id"
    /// `event_id` or `source` is empty or has control characters.
    case badEventID = "bad_event_id"
    /// `event_id` or `source` is longer than 64 bytes.
    case oversizedEventID = "oversized_event_id"
    /// The type requires a value and the line has none (or `null`).
    case missingValue = "missing_value"
    /// The type carries no value and the line has one other than 1.
    case valueNotAllowed = "value_not_allowed"
    /// The value overflows to infinity.
    case nonFiniteValue = "non_finite_value"
    /// The value is outside the type's range (`docs/events.md`).
    case valueOutOfRange = "value_out_of_range"
    /// `at` is not an RFC 3339 timestamp with a zone (Z or ±HH:MM) between 1970 and 9999.
    case timestampUnparsable = "timestamp_unparsable"
    /// `at` is more than a day after now.
    case inFuture = "in_future"
    /// `at` is older than now − the allowed lateness (`WindowedState.allowedLatenessMillis`).
    case tooLate = "too_late"
    /// No profile of `subscriber_id` in the cluster (checked by the owning worker, not the parser).
    case unknownSubscriber = "unknown_subscriber"

    public var code: String { rawValue }
}

/// A rejected line: the reason, the line number (from 1) and a short detail for people.
public struct EventRejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: RejectionReason
    public var line: Int
    public var detail: String
    public var description: String { "line \(line): \(reason.code): \(detail)" }

    public init(reason: RejectionReason, line: Int, detail: String) {
        self.reason = reason
        self.line = line
        self.detail = detail
    }
}

/// What a line gave.
public enum ParsedLine: Sendable, Equatable {
    case event(SubscriberEvent)
    case rejected(EventRejection)
    /// An empty or all-whitespace line: skipped, counted as neither.
    case blank
}

/// The strict NDJSON event reader.
public struct EventParser: Sendable {
    public static let defaultSource = "default"
    public static let maxIDBytes = 64
    /// Lines longer than this are rejected without being read.
    public static let maxLineBytes = 4096
    /// Objects and arrays nested deeper than this (in no field of the wire form) are malformed.
    static let maxDepth = 16

    /// Now (ms since 1970): when set, lines more than `maxFutureMillis` ahead are rejected as in
    /// the future and lines older than now − `allowedLatenessMillis` as too late.
    public var now: Int64?
    public var allowedLatenessMillis: Int64
    public var maxFutureMillis: Int64

    public init(now: Int64? = nil, allowedLatenessMillis: Int64 = WindowedState.allowedLatenessMillis,
                maxFutureMillis: Int64 = WindowedState.maxFutureMillis) {
        self.now = now
        self.allowedLatenessMillis = allowedLatenessMillis
        self.maxFutureMillis = maxFutureMillis
    }

    /// Parses one line (without its newline; a trailing `\r` is ignored).
    public func parse(_ line: some Collection<UInt8>, lineNumber: Int) -> ParsedLine {
        if let r = line.withContiguousStorageIfAvailable({ parse(buffer: $0, lineNumber: lineNumber) }) { return r }
        let copy = Array(line)
        return copy.withUnsafeBufferPointer { parse(buffer: $0, lineNumber: lineNumber) }
    }

    public func parse(_ line: String, lineNumber: Int) -> ParsedLine {
        var s = line
        return s.withUTF8 { parse(buffer: $0, lineNumber: lineNumber) }
    }

    /// Splits `bytes` into lines (LF, or CRLF) and parses each, numbering from `firstLine`.
    public func forEachLine(in bytes: UnsafeBufferPointer<UInt8>, firstLine: Int = 1, _ body: (ParsedLine) throws -> Void) rethrows {
        var start = 0, number = firstLine
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            try body(parse(buffer: UnsafeBufferPointer(rebasing: bytes[start..<end]), lineNumber: number))
            number += 1
            start = end + 1
        }
    }

    /// Every line of `bytes`.
    public func parseAll(_ bytes: [UInt8]) -> [ParsedLine] {
        var out: [ParsedLine] = []
        bytes.withUnsafeBufferPointer { b in forEachLine(in: b) { out.append($0) } }
        return out
    }

    public func parse(buffer raw: UnsafeBufferPointer<UInt8>, lineNumber: Int) -> ParsedLine {
        var line = raw
        if let last = line.last, last == 0x0D { line = UnsafeBufferPointer(rebasing: line.dropLast()) }
        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return .blank }
        func reject(_ r: RejectionReason, _ detail: String) -> ParsedLine {
            .rejected(EventRejection(reason: r, line: lineNumber, detail: detail))
        }
        guard line.count <= Self.maxLineBytes else { return reject(.lineTooLong, "\(line.count) bytes, at most \(Self.maxLineBytes)") }

        // Pass 1: the JSON syntax, recording the wire form's fields. Syntax errors come first.
        var scanner = Scanner(bytes: line)
        var fields = Fields()
        if let problem = scanner.object(into: &fields) { return reject(problem.0, problem.1) }

        // Pass 2: the fields.
        if let f = fields.problem { return reject(f.0, f.1) }
        guard let idToken = fields.eventID else { return reject(.missingField, "no event_id") }
        guard let subscriberToken = fields.subscriberID else { return reject(.missingField, "no subscriber_id") }
        guard let typeToken = fields.type else { return reject(.missingField, "no type") }
        guard let atToken = fields.at else { return reject(.missingField, "no at") }

        guard case .string(let eventID) = idToken else { return reject(.wrongFieldType, "event_id must be a string") }
        if let r = Self.checkID(eventID, field: "event_id") { return reject(r.0, r.1) }
        var source = Self.defaultSource
        if let s = fields.source {
            guard case .string(let text) = s else { return reject(.wrongFieldType, "source must be a string") }
            if let r = Self.checkID(text, field: "source") { return reject(r.0, r.1) }
            source = text
        }
        guard case .number(let idRange) = subscriberToken else { return reject(.wrongFieldType, "subscriber_id must be a number") }
        guard let subscriberID = Self.positiveInteger(UnsafeBufferPointer(rebasing: line[idRange])) else {
            return reject(.badSubscriberID, "subscriber_id must be a positive integer below 2^63")
        }
        guard case .string(let typeName) = typeToken else { return reject(.wrongFieldType, "type must be a string") }
        guard let type = EventType(rawValue: typeName) else { return reject(.unknownType, "unknown type \(Self.quoted(typeName))") }
        guard case .string(let atText) = atToken else { return reject(.wrongFieldType, "at must be a string") }
        guard let at = Timestamp.parse(atText) else { return reject(.timestampUnparsable, "at \(Self.quoted(atText)) is not an RFC 3339 time with a zone") }

        var value: Double?
        switch fields.value {
        case nil, .null?: value = nil
        case .number(let r)?:
            guard let v = Double(Substring(decoding: UnsafeBufferPointer(rebasing: line[r]), as: UTF8.self)) else {
                return reject(.malformedJSON, "value is not a number")
            }
            guard v.isFinite else { return reject(.nonFiniteValue, "value is not finite") }
            value = v
        case .string?, .other?: return reject(.wrongFieldType, "value must be a number")
        }
        let spec = type.spec
        switch spec.value {
        case .required:
            guard let v = value else { return reject(.missingValue, "\(type.rawValue) needs a value (\(spec.unit))") }
            guard spec.range.contains(v) else { return reject(.valueOutOfRange, "value \(v) outside \(spec.range.lowerBound)…\(spec.range.upperBound) \(spec.unit)") }
        case .optional:
            if let v = value, !spec.range.contains(v) { return reject(.valueOutOfRange, "value \(v) outside \(spec.range.lowerBound)…\(spec.range.upperBound) \(spec.unit)") }
        case .forbidden:
            if let v = value, v != 1 { return reject(.valueNotAllowed, "\(type.rawValue) carries no value (omit it, or 1)") }
        }
        if let now {
            if at > now &+ maxFutureMillis { return reject(.inFuture, "at \(atText) is more than \(maxFutureMillis / 3_600_000) h after now") }
            if at < now &- allowedLatenessMillis { return reject(.tooLate, "at \(atText) is older than the allowed lateness (\(allowedLatenessMillis / 86_400_000) days)") }
        }
        return .event(SubscriberEvent(eventID: eventID, source: source, subscriberID: subscriberID, type: type, at: at, value: value))
    }

    static func checkID(_ s: String, field: String) -> (RejectionReason, String)? {
        if s.utf8.count > maxIDBytes { return (.oversizedEventID, "\(field) has \(s.utf8.count) bytes, at most \(maxIDBytes)") }
        if s.isEmpty || s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return (.badEventID, "\(field) is empty or has control characters") }
        return nil
    }

    static func positiveInteger(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !b.isEmpty, b.count <= 19 else { return nil }
        var x: Int64 = 0
        for c in b {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = x.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(c - 0x30))
            if o1 || o2 { return nil }
            x = a
        }
        return x > 0 ? x : nil
    }

    static func quoted(_ s: String) -> String {
        let short = s.utf8.count > 40 ? String(s.prefix(40)) + "…" : s
        return jsonString(short)
    }

    /// `s` as a JSON string literal.
    public static func jsonString(_ s: String) -> String { StrictJSONReader.literal(s) }

    /// A finite number as JSON (shortest form that reads back exactly).
    public static func jsonNumber(_ x: Double) -> String {
        if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) + ".0" }
        return "\(x)"
    }
}

// MARK: - The scanner

/// A field's raw value.
enum Token {
    case string(String)
    /// The number's bytes (validated JSON number syntax).
    case number(Range<Int>)
    case null
    /// true, false, an object or an array.
    case other
}

struct Fields {
    var eventID, source, subscriberID, type, at, value: Token?
    var problem: (RejectionReason, String)?

    mutating func set(_ key: Key, _ t: Token) {
        let isNew: Bool
        switch key {
        case .eventID: isNew = eventID == nil; if isNew { eventID = t }
        case .source: isNew = source == nil; if isNew { source = t }
        case .subscriberID: isNew = subscriberID == nil; if isNew { subscriberID = t }
        case .type: isNew = type == nil; if isNew { type = t }
        case .at: isNew = at == nil; if isNew { at = t }
        case .value: isNew = value == nil; if isNew { value = t }
        case .unknown(let name):
            note(.unknownField, "unknown field \(EventParser.quoted(name))")
            return
        }
        if !isNew { note(.duplicateField, "\(key.name) given twice") }
    }

    mutating func note(_ r: RejectionReason, _ d: String) {
        if problem == nil { problem = (r, d) }
    }

    enum Key {
        case eventID, source, subscriberID, type, at, value
        case unknown(String)
        var name: String {
            switch self {
            case .eventID: "event_id"
            case .source: "source"
            case .subscriberID: "subscriber_id"
            case .type: "type"
            case .at: "at"
            case .value: "value"
            case .unknown(let s): s
            }
        }
        init(_ s: String) {
            switch s {
            case "event_id": self = .eventID
            case "source": self = .source
            case "subscriber_id": self = .subscriberID
            case "type": self = .type
            case "at": self = .at
            case "value": self = .value
            default: self = .unknown(s)
            }
        }
    }
}

struct Scanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var i = 0

    typealias Problem = (RejectionReason, String)

    mutating func skipSpace() {
        while i < bytes.count {
            let c = bytes[i]
            guard c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D else { return }
            i += 1
        }
    }

    func fail(_ what: String) -> Problem { (.malformedJSON, "\(what) at byte \(i + 1)") }

    /// The whole line: one object, then only whitespace.
    mutating func object(into fields: inout Fields) -> Problem? {
        skipSpace()
        guard i < bytes.count, bytes[i] == 0x7B else { return fail("expected '{'") }
        i += 1
        skipSpace()
        if i < bytes.count && bytes[i] == 0x7D {
            i += 1
        } else {
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == 0x22 else { return fail("expected a field name") }
                let key: String
                switch string() { case .success(let s): key = s; case .failure(let p): return p.problem }
                skipSpace()
                guard i < bytes.count, bytes[i] == 0x3A else { return fail("expected ':'") }
                i += 1
                skipSpace()
                let token: Token
                switch value(depth: 1) { case .success(let t): token = t; case .failure(let p): return p.problem }
                fields.set(Fields.Key(key), token)
                skipSpace()
                guard i < bytes.count else { return fail("unterminated object") }
                if bytes[i] == 0x2C { i += 1; continue }
                if bytes[i] == 0x7D { i += 1; break }
                return fail("expected ',' or '}'")
            }
        }
        skipSpace()
        return i == bytes.count ? nil : fail("trailing bytes after the object")
    }

    struct Failure: Error { var problem: Problem }

    mutating func value(depth: Int) -> Result<Token, Failure> {
        guard i < bytes.count else { return .failure(Failure(problem: fail("expected a value"))) }
        switch bytes[i] {
        case 0x22:
            return string().map { .string($0) }
        case 0x2D, 0x30...0x39:
            return number().map { .number($0) }
        case 0x6E: return literal("null", .null)
        case 0x74: return literal("true", .other)
        case 0x66: return literal("false", .other)
        case 0x7B, 0x5B:
            if let p = skipContainer(depth: depth) { return .failure(Failure(problem: p)) }
            return .success(.other)
        default:
            return .failure(Failure(problem: fail("unexpected byte")))
        }
    }

    mutating func literal(_ word: StaticString, _ t: Token) -> Result<Token, Failure> {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { return .failure(Failure(problem: fail("bad literal"))) }
        let w = word.utf8Start
        for k in 0..<n where bytes[i + k] != w[k] { return .failure(Failure(problem: fail("bad literal"))) }
        i += n
        return .success(t)
    }

    /// Skips an object or array (validating its syntax) at most `maxDepth` deep.
    mutating func skipContainer(depth: Int) -> Problem? {
        guard depth <= EventParser.maxDepth else { return fail("nested too deep") }
        let isObject = bytes[i] == 0x7B
        let close: UInt8 = isObject ? 0x7D : 0x5D
        i += 1
        skipSpace()
        if i < bytes.count && bytes[i] == close { i += 1; return nil }
        while true {
            skipSpace()
            if isObject {
                guard i < bytes.count, bytes[i] == 0x22 else { return fail("expected a field name") }
                if case .failure(let f) = string() { return f.problem }
                skipSpace()
                guard i < bytes.count, bytes[i] == 0x3A else { return fail("expected ':'") }
                i += 1
                skipSpace()
            }
            if case .failure(let f) = value(depth: depth + 1) { return f.problem }
            skipSpace()
            guard i < bytes.count else { return fail("unterminated container") }
            if bytes[i] == 0x2C { i += 1; continue }
            if bytes[i] == close { i += 1; return nil }
            return fail("expected ',' or a closing bracket")
        }
    }

    /// A JSON number's bytes, by the grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    mutating func number() -> Result<Range<Int>, Failure> {
        let start = i
        func digits() -> Int {
            var k = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1; k += 1 }
            return k
        }
        if bytes[i] == 0x2D { i += 1 }
        guard i < bytes.count else { return .failure(Failure(problem: fail("bad number"))) }
        if bytes[i] == 0x30 { i += 1 } else if digits() == 0 { return .failure(Failure(problem: fail("bad number"))) }
        if i < bytes.count, bytes[i] == 0x2E {
            i += 1
            if digits() == 0 { return .failure(Failure(problem: fail("bad number"))) }
        }
        if i < bytes.count, bytes[i] == 0x65 || bytes[i] == 0x45 {
            i += 1
            if i < bytes.count, bytes[i] == 0x2B || bytes[i] == 0x2D { i += 1 }
            if digits() == 0 { return .failure(Failure(problem: fail("bad number"))) }
        }
        if i - start > 64 { return .failure(Failure(problem: fail("number too long"))) }
        return .success(start..<i)
    }

    /// A JSON string (at the opening quote), unescaped, as valid UTF-8.
    mutating func string() -> Result<String, Failure> {
        i += 1
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x22 {
                let s = UnsafeBufferPointer(rebasing: bytes[start..<i])
                i += 1
                guard let text = String(validating: s, as: UTF8.self) else { return .failure(Failure(problem: fail("invalid UTF-8"))) }
                return .success(text)
            }
            if c == 0x5C { break }
            if c < 0x20 { return .failure(Failure(problem: fail("control character in a string"))) }
            i += 1
        }
        var out = Array(bytes[start..<i])
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x22 {
                i += 1
                guard let text = String(validating: out, as: UTF8.self) else { return .failure(Failure(problem: fail("invalid UTF-8"))) }
                return .success(text)
            }
            if c < 0x20 { return .failure(Failure(problem: fail("control character in a string"))) }
            if c != 0x5C { out.append(c); i += 1; continue }
            i += 1
            guard i < bytes.count else { break }
            let e = bytes[i]
            i += 1
            switch e {
            case 0x22, 0x5C, 0x2F: out.append(e)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard var scalar = hex4() else { return .failure(Failure(problem: fail("bad \\u escape"))) }
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    guard i + 1 < bytes.count, bytes[i] == 0x5C, bytes[i + 1] == 0x75 else { return .failure(Failure(problem: fail("lone surrogate"))) }
                    i += 2
                    guard let low = hex4(), low >= 0xDC00 && low < 0xE000 else { return .failure(Failure(problem: fail("lone surrogate"))) }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    return .failure(Failure(problem: fail("lone surrogate")))
                }
                guard let u = Unicode.Scalar(scalar) else { return .failure(Failure(problem: fail("bad \\u escape"))) }
                out.append(contentsOf: UTF8.encode(u)!)
            default:
                return .failure(Failure(problem: fail("bad escape")))
            }
        }
        return .failure(Failure(problem: fail("unterminated string")))
    }

    mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var x: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: return nil
            }
            x = x << 4 | d
            i += 1
        }
        return x
    }
}

// MARK: - Timestamps

/// RFC 3339 timestamps ↔ milliseconds since 1970-01-01T00:00:00Z, without Foundation.
public enum Timestamp {
    public static let millisPerDay: Int64 = 86_400_000

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, years 1970–9999; fractions beyond
    /// milliseconds are truncated; a leap second (:60) counts as :59.999.
    public static func parse(_ s: String) -> Int64? {
        var copy = s
        return copy.withUTF8 { parse(bytes: $0) }
    }

    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard b.count >= 20, b.count <= 40 else { return nil }
        func num(_ at: Int, _ n: Int) -> Int? {
            var x = 0
            for k in at..<at + n {
                let c = b[k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                x = x * 10 + Int(c - 0x30)
            }
            return x
        }
        guard let year = num(0, 4), b[4] == 0x2D, let month = num(5, 2), b[7] == 0x2D, let day = num(8, 2),
              b[10] == 0x54 || b[10] == 0x74, let hour = num(11, 2), b[13] == 0x3A, let minute = num(14, 2),
              b[16] == 0x3A, var second = num(17, 2) else { return nil }
        guard year >= 1970, (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        var i = 19
        var millis = 0
        if b[i] == 0x2E {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 3 { millis = millis * 10 + Int(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits >= 1 else { return nil }
            for _ in digits..<max(digits, 3) { millis *= 10 }
        }
        if second == 60 { second = 59; millis = 999 }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            guard i + 6 == b.count, let oh = num(i + 1, 2), b[i + 3] == 0x3A, let om = num(i + 4, 2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = (oh * 60 + om) * (b[i] == 0x2D ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        let result = seconds * 1000 + Int64(millis)
        return result >= 0 ? result : nil
    }

    /// The latest time `format` writes as a date (9999-12-31T23:59:59.999Z).
    public static let latestFormatted: Int64 = 253_402_300_799_999

    /// `millis` as `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (from 0000-01-01 to 9999-12-31; a time outside
    /// that — a peer's or a row's — as its milliseconds, `…ms since 1970`, rather than a date
    /// whose arithmetic would overflow).
    public static func format(_ millis: Int64) -> String {
        guard millis >= -62_167_219_200_000, millis <= latestFormatted else { return "\(millis) ms since 1970" }
        let days = floorDiv(millis, millisPerDay)
        let inDay = millis - days * millisPerDay
        let (y, m, d) = civil(fromDays: Int(days))
        let s = Int(inDay / 1000), ms = Int(inDay % 1000)
        func two(_ x: Int) -> String { x < 10 ? "0\(x)" : "\(x)" }
        let year = String(y)
        var out = String(repeating: "0", count: max(0, 4 - year.count)) + year + "-\(two(m))-\(two(d))T\(two(s / 3600)):\(two(s / 60 % 60)):\(two(s % 60))"
        if ms != 0 { out += "." + String(String(ms + 1000).dropFirst()) }
        return out + "Z"
    }

    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
