import SubscriberProfiles

/// The subscribers a model scores (docs/models.md, "Several models"): a conjunction of conditions
/// on profile features, e.g. `contract = 'Month-to-month' and tenure_months < 12` or
/// `plan_type in (1, 2)`. Pure: parsed and printed here, bound to a store's columns by the worker.
///
/// A clause is `feature OP value` (OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`), `feature in
/// (v, …)`, `feature is missing` or `feature is not missing`; clauses are joined by `and`. A value
/// is a number, `true`/`false`, or a category's name in single quotes (resolved to its code with
/// the feature schema). A subscriber whose feature is missing matches only `is missing`.
public struct ModelSegment: Sendable, Equatable, CustomStringConvertible {
    public enum Test: Sendable, Equatable {
        case equal(Float), notEqual(Float), less(Float), lessOrEqual(Float), greater(Float), greaterOrEqual(Float)
        case oneOf([Float])
        case missing, present
    }

    public struct Clause: Sendable, Equatable {
        public var feature: String
        public var test: Test

        /// Whether a value passes (NaN is missing).
        @inlinable
        public func admits(_ v: Float) -> Bool {
            switch test {
            case .missing: return v.isNaN
            case .present: return !v.isNaN
            default: break
            }
            guard !v.isNaN else { return false }
            switch test {
            case .equal(let x): return v == x
            case .notEqual(let x): return v != x
            case .less(let x): return v < x
            case .lessOrEqual(let x): return v <= x
            case .greater(let x): return v > x
            case .greaterOrEqual(let x): return v >= x
            case .oneOf(let xs): return xs.contains(v)
            case .missing, .present: return false
            }
        }
    }

    public var clauses: [Clause]

    /// The longest segment text taken.
    public static let maxBytes = 2_000
    /// The most clauses, and the most values in one `in` list.
    public static let maxClauses = 32, maxValues = 256

    /// The features it reads, each once, in clause order.
    public var features: [String] {
        var seen = Set<String>()
        return clauses.map(\.feature).filter { seen.insert($0).inserted }
    }

    /// The canonical text (numbers only; category names as their codes): what is stored and sent.
    public var description: String {
        clauses.map { c in
            switch c.test {
            case .equal(let x): "\(c.feature) = \(Self.number(x))"
            case .notEqual(let x): "\(c.feature) != \(Self.number(x))"
            case .less(let x): "\(c.feature) < \(Self.number(x))"
            case .lessOrEqual(let x): "\(c.feature) <= \(Self.number(x))"
            case .greater(let x): "\(c.feature) > \(Self.number(x))"
            case .greaterOrEqual(let x): "\(c.feature) >= \(Self.number(x))"
            case .oneOf(let xs): "\(c.feature) in (\(xs.map(Self.number).joined(separator: ", ")))"
            case .missing: "\(c.feature) is missing"
            case .present: "\(c.feature) is not missing"
            }
        }.joined(separator: " and ")
    }

    static func number(_ x: Float) -> String {
        x == x.rounded() && abs(x) < 1e7 ? String(Int(x)) : "\(x)"
    }

    /// Parses `text`. Each feature must be one of `features` (the schema's names; nil: any name,
    /// for a canonical text checked already); a quoted value is a category name of that feature
    /// in `schema`, when given.
    /// - Throws: `ModelSegmentError` naming the place and what was expected.
    public static func parse(_ text: String, features: [String]?, schema: FeatureSchema? = nil) throws(ModelSegmentError) -> ModelSegment {
        guard text.utf8.count <= maxBytes else { throw ModelSegmentError("the segment has \(text.utf8.count) bytes; at most \(maxBytes)") }
        var p = SegmentParser(tokens: try SegmentLexer.tokens(text), features: features, schema: schema)
        let segment = try p.segment()
        return segment
    }

    /// The segment bound to a store's columns: `column(name)` gives a feature's column (nil: not
    /// held, which is refused).
    public func bind(_ column: (String) -> Int?) throws(ModelSegmentError) -> BoundSegment {
        var bound: [(Int, Clause)] = []
        for c in clauses {
            guard let k = column(c.feature) else { throw ModelSegmentError("segment feature '\(c.feature)' is not held here") }
            bound.append((k, c))
        }
        return BoundSegment(clauses: bound)
    }
}

/// A segment with each clause's column in a store's run.
public struct BoundSegment: Sendable {
    let clauses: [(column: Int, clause: ModelSegment.Clause)]
    /// Whether a profile (its values in column order) is in the segment; a column beyond it is missing.
    public func contains(profile: [Float]) -> Bool {
        for (k, c) in clauses where !c.admits(k < profile.count ? profile[k] : .nan) { return false }
        return true
    }

    /// The highest column it reads (-1: none).
    var maxColumn: Int { clauses.map(\.column).max() ?? -1 }

    /// Whether row `i` of a run (its columns) is in the segment.
    public func contains(_ columns: [UnsafePointer<Float>], row i: Int) -> Bool {
        for (k, c) in clauses where !c.admits(columns[k][i]) { return false }
        return true
    }
}

public struct ModelSegmentError: Error, Sendable, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

enum SegmentToken: Equatable {
    case word(String), number(Float), quoted(String), op(String), open, close, comma
}

enum SegmentLexer {
    static func tokens(_ text: String) throws(ModelSegmentError) -> [(token: SegmentToken, at: Int)] {
        let b = Array(text.utf8)
        var out: [(SegmentToken, Int)] = []
        var i = 0
        while i < b.count {
            let c = b[i]
            if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { i += 1; continue }
            let start = i
            if c == 0x28 { out.append((.open, i)); i += 1; continue }
            if c == 0x29 { out.append((.close, i)); i += 1; continue }
            if c == 0x2c { out.append((.comma, i)); i += 1; continue }
            if c == 0x27 {  // 'name' ('' is a quote inside)
                var s: [UInt8] = []
                i += 1
                var closed = false
                while i < b.count {
                    if b[i] == 0x27 {
                        if i + 1 < b.count && b[i + 1] == 0x27 { s.append(0x27); i += 2; continue }
                        closed = true; i += 1; break
                    }
                    s.append(b[i]); i += 1
                }
                guard closed else { throw ModelSegmentError("segment: the quote at byte \(start + 1) is not closed") }
                out.append((.quoted(String(decoding: s, as: UTF8.self)), start)); continue
            }
            if c == 0x3d { out.append((.op("="), i)); i += 1; continue }
            if c == 0x21 || c == 0x3c || c == 0x3e {
                if i + 1 < b.count && b[i + 1] == 0x3d {
                    out.append((.op(String(decoding: b[i...(i + 1)], as: UTF8.self)), i)); i += 2; continue
                }
                guard c != 0x21 else { throw ModelSegmentError("segment: '!' at byte \(i + 1) must be '!='") }
                out.append((.op(c == 0x3c ? "<" : ">"), i)); i += 1; continue
            }
            if (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2b || c == 0x2e {
                while i < b.count, (b[i] >= 0x30 && b[i] <= 0x39) || [0x2d, 0x2b, 0x2e, 0x65, 0x45].contains(b[i]) { i += 1 }
                let word = String(decoding: b[start..<i], as: UTF8.self)
                guard let x = Double(word), x.isFinite, abs(x) <= Double(Float.greatestFiniteMagnitude) else {
                    throw ModelSegmentError("segment: '\(word.prefix(40))' at byte \(start + 1) is not a number")
                }
                out.append((.number(Float(x)), start)); continue
            }
            if (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f {
                while i < b.count, (b[i] >= 0x61 && b[i] <= 0x7a) || (b[i] >= 0x41 && b[i] <= 0x5a) || (b[i] >= 0x30 && b[i] <= 0x39) || b[i] == 0x5f { i += 1 }
                out.append((.word(String(decoding: b[start..<i], as: UTF8.self)), start)); continue
            }
            throw ModelSegmentError("segment: unexpected character at byte \(i + 1); write conditions such as \"tenure_months < 12 and plan_type in (1, 2)\"")
        }
        return out
    }
}

struct SegmentParser {
    let tokens: [(token: SegmentToken, at: Int)]
    let features: [String]?
    let schema: FeatureSchema?
    var i = 0

    init(tokens: [(token: SegmentToken, at: Int)], features: [String]?, schema: FeatureSchema?) {
        self.tokens = tokens
        self.features = features
        self.schema = schema
    }

    private func place() -> String { i < tokens.count ? "byte \(tokens[i].at + 1)" : "the end" }

    private mutating func next() -> SegmentToken? {
        guard i < tokens.count else { return nil }
        defer { i += 1 }
        return tokens[i].token
    }

    mutating func segment() throws(ModelSegmentError) -> ModelSegment {
        guard !tokens.isEmpty else { throw ModelSegmentError("the segment is empty; omit it to score every subscriber") }
        var clauses: [ModelSegment.Clause] = []
        while true {
            clauses.append(try clause())
            guard clauses.count <= ModelSegment.maxClauses else { throw ModelSegmentError("the segment has more than \(ModelSegment.maxClauses) conditions") }
            guard i < tokens.count else { break }
            let at = place()
            guard case .word(let w) = next(), w.lowercased() == "and" else {
                throw ModelSegmentError("segment: expected 'and' or the end at \(at) (conditions are joined by 'and')")
            }
        }
        return ModelSegment(clauses: clauses)
    }

    private mutating func clause() throws(ModelSegmentError) -> ModelSegment.Clause {
        let at = place()
        guard case .word(let name) = next() else { throw ModelSegmentError("segment: expected a feature name at \(at)") }
        guard name.utf8.count <= 63 else { throw ModelSegmentError("segment: the name at \(at) is longer than 63 bytes") }
        if let features, !features.contains(name) {
            let near = NameSuggestions.nearest(to: name, among: features)
            throw ModelSegmentError("segment: '\(name.prefix(63))' at \(at) is not a feature of the schema in force\(near.isEmpty ? "" : " (closest: \(near.joined(separator: ", ")))")")
        }
        let opAt = place()
        switch next() {
        case .op(let op):
            let x = try value(for: name)
            let test: ModelSegment.Test = switch op {
            case "=": .equal(x)
            case "!=": .notEqual(x)
            case "<": .less(x)
            case "<=": .lessOrEqual(x)
            case ">": .greater(x)
            default: .greaterOrEqual(x)
            }
            return ModelSegment.Clause(feature: name, test: test)
        case .word(let w) where w.lowercased() == "in":
            guard case .open = next() else { throw ModelSegmentError("segment: expected '(' after 'in' at \(place())") }
            var xs: [Float] = []
            while true {
                xs.append(try value(for: name))
                guard xs.count <= ModelSegment.maxValues else { throw ModelSegmentError("segment: more than \(ModelSegment.maxValues) values for '\(name)'") }
                let sepAt = place()
                switch next() {
                case .comma: continue
                case .close: return ModelSegment.Clause(feature: name, test: .oneOf(xs))
                default: throw ModelSegmentError("segment: expected ',' or ')' at \(sepAt)")
                }
            }
        case .word(let w) where w.lowercased() == "is":
            var negated = false
            let mAt = place()
            var word = next()
            if case .word(let n) = word, n.lowercased() == "not" { negated = true; word = next() }
            guard case .word(let m) = word, m.lowercased() == "missing" else { throw ModelSegmentError("segment: expected 'missing' or 'not missing' after 'is' at \(mAt)") }
            return ModelSegment.Clause(feature: name, test: negated ? .present : .missing)
        default:
            throw ModelSegmentError("segment: expected one of = != < <= > >= in is after '\(name)' at \(opAt)")
        }
    }

    private mutating func value(for feature: String) throws(ModelSegmentError) -> Float {
        let at = place()
        switch next() {
        case .number(let x): return x
        case .word(let w) where w.lowercased() == "true": return 1
        case .word(let w) where w.lowercased() == "false": return 0
        case .quoted(let s):
            guard let schema, let f = schema.index(of: feature), case .category(let names) = schema.features[f].kind else {
                throw ModelSegmentError("segment: '\(s.prefix(60))' at \(at): only a category feature's values are named; '\(feature)' takes a number")
            }
            guard let code = names.firstIndex(of: s) else {
                let near = NameSuggestions.nearest(to: s, among: names)
                throw ModelSegmentError("segment: '\(s.prefix(60))' at \(at) is not a category of '\(feature)'\(near.isEmpty ? "" : " (closest: \(near.joined(separator: ", ")))")")
            }
            return Float(code)
        default:
            throw ModelSegmentError("segment: expected a value (a number, true/false or a quoted category) at \(at)")
        }
    }
}
