import SubscriberProfiles

/// Trigger rules: which real-time events are worth telling an operator about. A rules file is JSON
/// (`Deploy/triggers.json` by default; `docs/triggers.md` describes it fully):
///
///     {"cooldown_hours": 24,
///      "rules": [
///       {"name": "band_rises_high", "when": {"band_rises_into": ["high", "very_high"]}},
///       {"name": "probability_jump_7d", "when": {"probability_rise_7d_at_least": 0.2}},
///       {"name": "port_out_at_risk", "when": {"event": ["port_out_inquiry"], "probability_at_least": 0.35}},
///       {"name": "bill_shock", "when": {"event": ["bill"], "bill_shock": true}, "cooldown_hours": 72},
///       {"name": "prepaid_silent_complaint", "when": {"event": ["complaint"], "features": [
///         {"feature": "is_prepaid", "op": "==", "value": 1}, {"feature": "complaints_90d", "op": ">=", "value": 3}]}}
///      ]}
///
/// Every condition of a rule's `when` must hold: `event` (the event's type is one of these),
/// `probability_at_least` (the churn probability after the event), `probability_change_at_least`
/// (after − before), `probability_rise_7d_at_least` (after − the lowest of the last 7 days),
/// `band_rises_into` (the band after is listed and above the band before), `band_at_least`,
/// `bill_shock` (the event was, or was not, a bill shock) and `features` (comparisons on the
/// profile after the event; a missing value never compares true). A rule fires at most once per
/// subscriber per cool-down (`cooldown_hours`, per rule or for the file, default 24; see
/// `TriggerCooldowns`).
///
/// Parsing is strict and never traps: everything is checked once, names are resolved to typed
/// values and column indices, and an error names the file, the rule, the field and what to do.
/// Matching then does no string work and allocates nothing beyond its result.
public struct TriggerRules: Sendable {
    /// Where a deployment keeps its rules, relative to the working directory.
    public static let defaultFileName = "Deploy/triggers.json"
    /// The most rules a file may hold (a rule index fits a byte in `TriggerCooldowns`).
    public static let maxRules = 256
    /// The largest rules file read.
    public static let maxFileBytes = 1 << 20
    /// The cool-down of a rule when neither it nor the file gives one.
    public static let defaultCooldownHours = 24.0
    /// The longest cool-down accepted (a year): it bounds how long `TriggerCooldowns` remembers.
    public static let maxCooldownHours = 8_760.0

    /// The rules, in file order; a rule's index here is its identity in `matching` and `TriggerCooldowns`.
    public private(set) var rules: [TriggerRule]
    /// The rules in a canonical JSON form (fixed key order, lists sorted where order means
    /// nothing, every cool-down explicit): equal bytes mean equal rules. It parses back to the same rules.
    public let canonicalBytes: [UInt8]
    /// A 64-bit FNV-1a of `canonicalBytes` in hex: nodes compare it to know they hold the same rules.
    public let fingerprint: String
    /// The rules' conditions, flattened for matching.
    private let compiled: ContiguousArray<CompiledRule>
    private let featureChecks: ContiguousArray<FeatureCheck>

    /// No rules: nothing ever matches.
    public init() {
        self.init(rules: [])
    }

    init(rules: [TriggerRule]) {
        self.rules = rules
        var checks = ContiguousArray<FeatureCheck>()
        compiled = ContiguousArray(rules.map { CompiledRule($0.when, appendingTo: &checks) })
        featureChecks = checks
        canonicalBytes = Array(Self.canonicalJSON(rules).utf8)
        fingerprint = Self.fnv1a(canonicalBytes)
    }

    /// The profile features the rules' conditions read, in first-use order.
    public var featuresRead: [String] {
        var out: [String] = [], seen = Set<String>()
        for rule in rules {
            for f in rule.when.features ?? [] where seen.insert(f.feature).inserted { out.append(f.feature) }
        }
        return out
    }

    /// The longest cool-down of any rule, in milliseconds (0 without rules): cool-downs older than
    /// that can be forgotten (`TriggerCooldowns.expire(before: now - longestCooldownMillis)`).
    public var longestCooldownMillis: Int64 { rules.map(\.cooldownMillis).max() ?? 0 }

    // MARK: Matching

    /// The indices of the rules whose every condition holds for `context`, in file order.
    public func matching(_ context: TriggerContext) -> [Int] {
        var out: [Int] = []
        matching(context, into: &out)
        return out
    }

    /// Like `matching(_:)`, into `result` (emptied first, its capacity kept): no allocation once
    /// `result` has grown to the number of rules that match at once.
    public func matching(_ context: TriggerContext, into result: inout [Int]) {
        result.removeAll(keepingCapacity: true)
        let eventBit = context.eventType.triggerBit
        let after = context.probabilityAfter
        let bandBefore = TriggerBand(probability: context.probabilityBefore)
        let bandAfter = TriggerBand(probability: after)
        let risen = bandAfter > bandBefore
        let change = after - context.probabilityBefore
        let rise7d = after - context.lowestProbability7d
        for k in compiled.indices {
            let r = compiled[k]
            if r.eventMask != 0 && r.eventMask & eventBit == 0 { continue }
            if let t = r.probabilityAtLeast, !(after >= t) { continue }
            if let t = r.changeAtLeast, !(change >= t) { continue }
            if let t = r.rise7dAtLeast, !(rise7d >= t) { continue }
            if r.riseMask != 0 && (!risen || r.riseMask & (1 << UInt8(bandAfter.rawValue)) == 0) { continue }
            if let b = r.bandAtLeast, bandAfter < b { continue }
            if let s = r.billShock, s != context.billShock { continue }
            var holds = true
            for f in r.features where !featureChecks[f].holds(context.feature(featureChecks[f].column)) {
                holds = false
                break
            }
            if holds { result.append(k) }
        }
    }

    // MARK: Canonical form

    static func canonicalJSON(_ rules: [TriggerRule]) -> String {
        func list(_ items: [String]) -> String { "[" + items.map { EventParser.jsonString($0) }.joined(separator: ",") + "]" }
        func number(_ x: Double) -> String { EventParser.jsonNumber(x) }
        var s = "{\"rules\":["
        for (i, rule) in rules.enumerated() {
            let w = rule.when
            var parts: [String] = []
            if let e = w.events { parts.append("\"event\":" + list(e.map(\.rawValue))) }
            if let t = w.probabilityAtLeast { parts.append("\"probability_at_least\":" + number(t)) }
            if let t = w.probabilityChangeAtLeast { parts.append("\"probability_change_at_least\":" + number(t)) }
            if let t = w.probabilityRise7dAtLeast { parts.append("\"probability_rise_7d_at_least\":" + number(t)) }
            if let b = w.bandRisesInto { parts.append("\"band_rises_into\":" + list(b.map(\.wireName))) }
            if let b = w.bandAtLeast { parts.append("\"band_at_least\":" + EventParser.jsonString(b.wireName)) }
            if let b = w.billShock { parts.append("\"bill_shock\":\(b)") }
            if let f = w.features {
                parts.append("\"features\":[" + f.map {
                    "{\"feature\":\(EventParser.jsonString($0.feature)),\"op\":\"\($0.op.rawValue)\",\"value\":\(number($0.value))}"
                }.joined(separator: ",") + "]")
            }
            s += (i == 0 ? "" : ",") + "{\"name\":\(EventParser.jsonString(rule.name)),\"cooldown_hours\":\(number(rule.cooldownHours)),"
            s += "\"when\":{" + parts.joined(separator: ",") + "}}"
        }
        return s + "]}"
    }

    static func fnv1a(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// A risk band of a churn probability, as rules name it. The thresholds are the cluster's
/// (`RiskBand` in ChurnCluster): medium from 0.05, high from 0.15, very high from 0.35.
public enum TriggerBand: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case low = 0, medium, high, veryHigh

    /// Lower probability bounds of medium, high and very high.
    public static let thresholds: [Double] = [0.05, 0.15, 0.35]

    /// The band of `p` (NaN is low).
    public init(probability p: Double) {
        if p >= Self.thresholds[2] { self = .veryHigh } else if p >= Self.thresholds[1] { self = .high } else if p >= Self.thresholds[0] { self = .medium } else { self = .low }
    }

    /// The band called `name` in a rules file (`low`, `medium`, `high`, `very_high`), or nil.
    public init?(wireName name: String) {
        guard let b = Self.allCases.first(where: { $0.wireName == name }) else { return nil }
        self = b
    }

    /// The band's name in a rules file.
    public var wireName: String {
        switch self {
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .veryHigh: "very_high"
        }
    }

    public var description: String { wireName }

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// One rule of a rules file.
public struct TriggerRule: Sendable, Equatable {
    /// Unique in the file: 1–64 characters of `a-z`, `0-9`, `_`, `-`.
    public var name: String
    /// How long after firing for a subscriber the rule stays quiet for that subscriber.
    public var cooldownHours: Double
    /// What must hold for the rule to fire (all of it).
    public var when: TriggerConditions

    /// `cooldownHours` in milliseconds.
    public var cooldownMillis: Int64 { Int64((cooldownHours * 3_600_000).rounded()) }
}

/// A rule's conditions; nil (absent) conditions always hold, the others must all hold.
public struct TriggerConditions: Sendable, Equatable {
    /// `event`: the event's type is one of these (catalogue order).
    public var events: [EventType]?
    /// `probability_at_least`: the probability after the event is at least this.
    public var probabilityAtLeast: Double?
    /// `probability_change_at_least`: after − before is at least this (negative: a fall of at most).
    public var probabilityChangeAtLeast: Double?
    /// `probability_rise_7d_at_least`: after − the lowest probability of the last 7 days is at least this.
    public var probabilityRise7dAtLeast: Double?
    /// `band_rises_into`: the band after is one of these (ascending) and above the band before.
    public var bandRisesInto: [TriggerBand]?
    /// `band_at_least`: the band after is at least this.
    public var bandAtLeast: TriggerBand?
    /// `bill_shock`: whether the event must (true) or must not (false) be a bill shock.
    public var billShock: Bool?
    /// `features`: comparisons on the profile after the event, in file order.
    public var features: [TriggerFeatureCondition]?

    public init() {}
}

/// A comparison of one profile feature with a constant.
public struct TriggerFeatureCondition: Sendable, Equatable {
    /// The feature's name in the schema the rules were parsed against.
    public var feature: String
    /// Its column in that schema (resolved once, at parse time).
    public var column: Int
    public var op: TriggerComparison
    /// The constant; compared at the profile's precision (`Float`).
    public var value: Double

    /// Whether `x` compares true (never when `x` is NaN, the profile's missing value).
    public func holds(_ x: Float) -> Bool { FeatureCheck(column: column, op: op, value: Float(value)).holds(x) }
}

/// A comparison operator of a feature condition, by its rules-file spelling.
public enum TriggerComparison: String, Sendable, CaseIterable {
    case less = "<", lessOrEqual = "<=", equal = "==", notEqual = "!=", greaterOrEqual = ">=", greater = ">"
}

/// What `TriggerRules.matching` judges one event by.
public struct TriggerContext: Sendable {
    public var eventType: EventType
    /// The churn probability before the event (NaN: none, and no probability condition holds).
    public var probabilityBefore: Double
    /// The churn probability after the event.
    public var probabilityAfter: Double
    /// The lowest churn probability the subscriber had in the last 7 days, before this event.
    public var lowestProbability7d: Double
    /// Whether the event was a bill shock (`EventOutcome.billShock`).
    public var billShock: Bool
    /// The profile after the event, in the column order of the schema the rules were parsed
    /// against; NaN is missing, and so is a column beyond the end.
    public var profile: [Float]

    /// A context; `lowestProbability7d` defaults to `probabilityBefore` (no older score in the window).
    public init(eventType: EventType, probabilityBefore: Double, probabilityAfter: Double,
                lowestProbability7d: Double? = nil, billShock: Bool = false, profile: [Float] = []) {
        self.eventType = eventType
        self.probabilityBefore = probabilityBefore
        self.probabilityAfter = probabilityAfter
        self.lowestProbability7d = lowestProbability7d ?? probabilityBefore
        self.billShock = billShock
        self.profile = profile
    }

    /// The value of profile column `column` (NaN when missing or out of range).
    public func feature(_ column: Int) -> Float {
        column >= 0 && column < profile.count ? profile[column] : .nan
    }
}

// MARK: - Compiled form

/// A rule's conditions as flat numbers: what `matching` reads per event.
struct CompiledRule: Sendable {
    /// `EventType.triggerBit` per listed type; 0 = any type.
    var eventMask: UInt64 = 0
    var probabilityAtLeast, changeAtLeast, rise7dAtLeast: Double?
    /// Bit `TriggerBand.rawValue` per listed band; 0 = no band-rise condition.
    var riseMask: UInt8 = 0
    var bandAtLeast: TriggerBand?
    var billShock: Bool?
    /// Its checks in `TriggerRules.featureChecks`.
    var features: Range<Int> = 0..<0

    init(_ w: TriggerConditions, appendingTo checks: inout ContiguousArray<FeatureCheck>) {
        for e in w.events ?? [] { eventMask |= e.triggerBit }
        probabilityAtLeast = w.probabilityAtLeast
        changeAtLeast = w.probabilityChangeAtLeast
        rise7dAtLeast = w.probabilityRise7dAtLeast
        for b in w.bandRisesInto ?? [] { riseMask |= 1 << UInt8(b.rawValue) }
        bandAtLeast = w.bandAtLeast
        billShock = w.billShock
        let start = checks.count
        for f in w.features ?? [] { checks.append(FeatureCheck(column: f.column, op: f.op, value: Float(f.value))) }
        features = start..<checks.count
    }
}

extension EventType {
    /// The type's bit in `CompiledRule.eventMask`: bit `index`, by a switch the compiler makes a
    /// table lookup (`index` hashes the raw string, ~60 ns — too slow per event). A test checks
    /// that it agrees with `index`.
    var triggerBit: UInt64 {
        let ordinal: UInt64
        switch self {
        case .call: ordinal = 0
        case .sms: ordinal = 1
        case .dataSession: ordinal = 2
        case .topup: ordinal = 3
        case .balance: ordinal = 4
        case .bill: ordinal = 5
        case .paymentLate: ordinal = 6
        case .supportCall: ordinal = 7
        case .complaint: ordinal = 8
        case .ticketOpened: ordinal = 9
        case .ticketClosed: ordinal = 10
        case .droppedCall: ordinal = 11
        case .tariffView: ordinal = 12
        case .portOutInquiry: ordinal = 13
        case .roamingDay: ordinal = 14
        case .contractRenewed: ordinal = 15
        case .retentionOfferMade: ordinal = 16
        case .networkOutage: ordinal = 17
        }
        return 1 << ordinal
    }
}

struct FeatureCheck: Sendable {
    var column: Int
    var op: TriggerComparison
    var value: Float

    @inline(__always)
    func holds(_ x: Float) -> Bool {
        if x.isNaN { return false }
        switch op {
        case .less: return x < value
        case .lessOrEqual: return x <= value
        case .equal: return x == value
        case .notEqual: return x != value
        case .greaterOrEqual: return x >= value
        case .greater: return x > value
        }
    }
}

// MARK: - Errors

/// A rules file that cannot be used: what is wrong, where (file, rule, field) and what to do.
public struct TriggerRulesError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem; its `description` is a stable snake_case name.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, CaseIterable {
            case fileTooLarge = "file_too_large", malformedJSON = "malformed_json", wrongType = "wrong_type"
            case unknownKey = "unknown_key", duplicateKey = "duplicate_key", missingKey = "missing_key"
            case tooManyRules = "too_many_rules", badName = "bad_name", duplicateName = "duplicate_name"
            case emptyWhen = "empty_when", emptyList = "empty_list", duplicateEntry = "duplicate_entry"
            case unknownEventType = "unknown_event_type", unknownBand = "unknown_band", unknownFeature = "unknown_feature"
            case unknownOperator = "unknown_operator", nonFiniteNumber = "non_finite_number", outOfRange = "out_of_range"
            case neverHolds = "never_holds"
        }
        let base: Base

        /// The file is larger than `TriggerRules.maxFileBytes`.
        public static let fileTooLarge = Code(base: .fileTooLarge)
        /// Not one JSON document (syntax, UTF-8, truncation, nesting deeper than 16).
        public static let malformedJSON = Code(base: .malformedJSON)
        /// A value of the wrong JSON type.
        public static let wrongType = Code(base: .wrongType)
        /// A key the format does not have (a misspelt condition, say).
        public static let unknownKey = Code(base: .unknownKey)
        /// A key given twice in one object.
        public static let duplicateKey = Code(base: .duplicateKey)
        /// A required key (`rules`, `name`, `when`, a feature's `feature`/`op`/`value`) is absent.
        public static let missingKey = Code(base: .missingKey)
        /// More than `TriggerRules.maxRules` rules.
        public static let tooManyRules = Code(base: .tooManyRules)
        /// A rule name that is not 1–64 characters of `a-z`, `0-9`, `_`, `-`.
        public static let badName = Code(base: .badName)
        /// Two rules with one name.
        public static let duplicateName = Code(base: .duplicateName)
        /// A `when` without conditions.
        public static let emptyWhen = Code(base: .emptyWhen)
        /// An empty list (`event`, `band_rises_into`, `features`).
        public static let emptyList = Code(base: .emptyList)
        /// A list entry given twice.
        public static let duplicateEntry = Code(base: .duplicateEntry)
        /// An event type the catalogue does not have.
        public static let unknownEventType = Code(base: .unknownEventType)
        /// A band other than low, medium, high, very_high.
        public static let unknownBand = Code(base: .unknownBand)
        /// A feature the profile schema does not have.
        public static let unknownFeature = Code(base: .unknownFeature)
        /// A comparison other than <, <=, ==, !=, >=, >.
        public static let unknownOperator = Code(base: .unknownOperator)
        /// A number too large to be finite (1e999).
        public static let nonFiniteNumber = Code(base: .nonFiniteNumber)
        /// A number outside its condition's range.
        public static let outOfRange = Code(base: .outOfRange)
        /// A condition no event can meet (rising into `low`).
        public static let neverHolds = Code(base: .neverHolds)

        /// Every code, in documentation order.
        public static var all: [Code] { Base.allCases.map { Code(base: $0) } }
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The rules file, as given to `parse`.
    public var file: String
    /// The rule's position in `rules` (from 0), when the problem is inside a rule.
    public var ruleIndex: Int?
    /// The rule's name, when it has one.
    public var ruleName: String?
    /// The offending field: within the rule (`when.features[1].feature`) or the file (`cooldown_hours`).
    public var field: String?
    /// What is wrong.
    public var problem: String
    /// What to do about it.
    public var fix: String

    public var description: String {
        var s = file
        if let ruleIndex {
            s += ", rules[\(ruleIndex)]"
            if let ruleName { s += " " + EventParser.quoted(ruleName) }
        }
        if let field { s += ", field " + field }
        return s + ": \(problem). " + fix.prefix(1).uppercased() + fix.dropFirst() + " [\(code)]"
    }
}

// MARK: - Parsing

extension TriggerRules {
    /// The condition keys of `when`, in the order they are checked and written canonically.
    static let conditionKeys = ["event", "probability_at_least", "probability_change_at_least", "probability_rise_7d_at_least",
                                "band_rises_into", "band_at_least", "bill_shock", "features"]

    /// Reads a rules file.
    /// - Parameters:
    ///   - bytes: the file's contents (UTF-8 JSON, at most `maxFileBytes`).
    ///   - file: its name, for errors.
    ///   - featureNames: the profile schema, in column order: `features` conditions name these
    ///     and are bound to their columns.
    /// - Throws: `TriggerRulesError` naming the file, the rule, the field and what to do.
    public static func parse(_ bytes: [UInt8], file: String, featureNames: [String]) throws(TriggerRulesError) -> TriggerRules {
        let top = RulesPlace(file: file)
        guard bytes.count <= maxFileBytes else {
            throw top.error(.fileTooLarge, "the file has \(bytes.count) bytes, at most \(maxFileBytes) are read", "split or shorten the rules")
        }
        let read: Result<RulesJSON, TriggerRulesError> = bytes.withUnsafeBufferPointer { buffer in
            var reader = RulesJSONReader(scanner: Scanner(bytes: buffer))
            do throws(Scanner.Failure) {
                return .success(try reader.document())
            } catch {
                let (line, column) = RulesJSONReader.lineAndColumn(buffer, reader.scanner.i)
                return .failure(top.error(.malformedJSON, "not valid JSON: \(error.problem.1) (line \(line), column \(column))",
                                          "fix the JSON syntax there; the whole file must be one object"))
            }
        }
        var columns: [String: Int] = [:]
        for (i, n) in featureNames.enumerated() where columns[n] == nil { columns[n] = i }
        let reader = RulesFileReader(featureNames: featureNames, columns: columns)
        return TriggerRules(rules: try reader.file(try read.get(), top))
    }
}

/// Where in a rules file a value is, and how to report a problem there.
struct RulesPlace {
    var file: String
    var rule: Int?
    var name: String?
    var field: String?

    func key(_ k: String) -> RulesPlace {
        var p = self
        p.field = field.map { "\($0).\(k)" } ?? k
        return p
    }

    func item(_ i: Int) -> RulesPlace {
        var p = self
        p.field = (field ?? "") + "[\(i)]"
        return p
    }

    func error(_ code: TriggerRulesError.Code, _ problem: String, _ fix: String) -> TriggerRulesError {
        TriggerRulesError(code: code, file: file, ruleIndex: rule, ruleName: name, field: field, problem: problem, fix: fix)
    }
}

/// Checks a parsed JSON document against the rules format and builds the typed rules.
struct RulesFileReader {
    let featureNames: [String]
    let columns: [String: Int]

    func file(_ root: RulesJSON, _ place: RulesPlace) throws(TriggerRulesError) -> [TriggerRule] {
        let top = try fields(root, place, allowed: ["cooldown_hours", "rules"], what: "the file")
        var cooldown = TriggerRules.defaultCooldownHours
        if let c = top["cooldown_hours"] { cooldown = try number(c, place.key("cooldown_hours"), 0...TriggerRules.maxCooldownHours) }
        guard let list = top["rules"] else {
            throw place.key("rules").error(.missingKey, "the file has no rules list", "add \"rules\": [ … ] (an empty list turns triggers off)")
        }
        guard case .array(let items) = list else { throw wrongType(list, place.key("rules"), "an array of rules") }
        guard items.count <= TriggerRules.maxRules else {
            throw place.key("rules").error(.tooManyRules, "\(items.count) rules, at most \(TriggerRules.maxRules)", "merge or remove rules")
        }
        var names: [String: Int] = [:]
        var rules: [TriggerRule] = []
        for (i, item) in items.enumerated() {
            rules.append(try rule(item, RulesPlace(file: place.file, rule: i), defaultCooldown: cooldown, names: &names))
        }
        return rules
    }

    func rule(_ value: RulesJSON, _ at: RulesPlace, defaultCooldown: Double, names: inout [String: Int]) throws(TriggerRulesError) -> TriggerRule {
        var place = at
        // The name first, so that every later problem can say which rule it is in.
        if case .object(let pairs) = value, let n = pairs.first(where: { $0.key == "name" }), case .string(let s) = n.value { place.name = s }
        let f = try fields(value, place, allowed: ["name", "when", "cooldown_hours"], what: "a rule")
        guard let nameValue = f["name"] else {
            throw place.error(.missingKey, "the rule has no name", "add \"name\": a unique name of 1–64 characters a-z, 0-9, _ or -")
        }
        guard case .string(let name) = nameValue else { throw wrongType(nameValue, place.key("name"), "a string") }
        guard (1...64).contains(name.utf8.count),
              name.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D }) else {
            throw place.key("name").error(.badName, "the name \(EventParser.quoted(name)) is not 1–64 characters of a-z, 0-9, _ or -",
                                          "rename the rule (lower case, digits, _ and - only)")
        }
        if let other = names[name] {
            throw place.key("name").error(.duplicateName, "rules[\(other)] has the same name", "give each rule a name of its own")
        }
        names[name] = place.rule ?? 0
        var cooldown = defaultCooldown
        if let c = f["cooldown_hours"] { cooldown = try number(c, place.key("cooldown_hours"), 0...TriggerRules.maxCooldownHours) }
        guard let when = f["when"] else {
            throw place.error(.missingKey, "the rule has no conditions", "add \"when\": {…} with at least one condition")
        }
        return TriggerRule(name: name, cooldownHours: cooldown, when: try conditions(when, place.key("when")))
    }

    func conditions(_ value: RulesJSON, _ place: RulesPlace) throws(TriggerRulesError) -> TriggerConditions {
        let f = try fields(value, place, allowed: TriggerRules.conditionKeys, what: "when")
        guard !f.isEmpty else {
            throw place.error(.emptyWhen, "no conditions (it would fire on every event)", "add a condition: \(TriggerRules.conditionKeys.joined(separator: ", "))")
        }
        var w = TriggerConditions()
        if let v = f["event"] {
            var types: [EventType] = []
            for (name, at) in try strings(v, place.key("event")) {
                guard let t = EventType(wireName: name) else {
                    throw at.error(.unknownEventType, "unknown event type \(EventParser.quoted(name))",
                                   "use a type of docs/events.md; closest: \(closest(name, EventType.allCases.map(\.rawValue)))")
                }
                guard !types.contains(t) else { throw at.error(.duplicateEntry, "\(name) is listed twice", "list it once") }
                types.append(t)
            }
            w.events = types.sorted { $0.index < $1.index }
        }
        if let v = f["probability_at_least"] { w.probabilityAtLeast = try number(v, place.key("probability_at_least"), 0...1) }
        if let v = f["probability_change_at_least"] { w.probabilityChangeAtLeast = try number(v, place.key("probability_change_at_least"), -1...1) }
        if let v = f["probability_rise_7d_at_least"] { w.probabilityRise7dAtLeast = try number(v, place.key("probability_rise_7d_at_least"), -1...1) }
        if let v = f["band_rises_into"] {
            var bands: [TriggerBand] = []
            for (name, at) in try strings(v, place.key("band_rises_into")) {
                let b = try band(name, at)
                guard b != .low else { throw at.error(.neverHolds, "no band is below low, so none rises into it", "list medium, high or very_high") }
                guard !bands.contains(b) else { throw at.error(.duplicateEntry, "\(name) is listed twice", "list it once") }
                bands.append(b)
            }
            w.bandRisesInto = bands.sorted()
        }
        if let v = f["band_at_least"] {
            guard case .string(let name) = v else { throw wrongType(v, place.key("band_at_least"), "a band name") }
            w.bandAtLeast = try band(name, place.key("band_at_least"))
        }
        if let v = f["bill_shock"] {
            guard case .bool(let b) = v else { throw wrongType(v, place.key("bill_shock"), "true or false") }
            w.billShock = b
        }
        if let v = f["features"] {
            let at = place.key("features")
            guard case .array(let items) = v else { throw wrongType(v, at, "an array of {\"feature\", \"op\", \"value\"}") }
            guard !items.isEmpty else { throw at.error(.emptyList, "the list is empty", "add a comparison or remove the condition") }
            var out: [TriggerFeatureCondition] = []
            for (i, item) in items.enumerated() { out.append(try feature(item, at.item(i))) }
            w.features = out
        }
        return w
    }

    func feature(_ value: RulesJSON, _ place: RulesPlace) throws(TriggerRulesError) -> TriggerFeatureCondition {
        let f = try fields(value, place, allowed: ["feature", "op", "value"], what: "a feature comparison")
        guard let nameValue = f["feature"], let opValue = f["op"], let v = f["value"] else {
            let missing = ["feature", "op", "value"].filter { f[$0] == nil }.joined(separator: ", ")
            throw place.error(.missingKey, "the comparison lacks \(missing)", "write it as {\"feature\": NAME, \"op\": \">=\", \"value\": NUMBER}")
        }
        guard case .string(let name) = nameValue else { throw wrongType(nameValue, place.key("feature"), "a feature name") }
        guard let column = columns[name] else {
            throw place.key("feature").error(.unknownFeature, "the profile schema has no feature \(EventParser.quoted(name))",
                                             "use a feature of docs/features.md; closest: \(closest(name, featureNames))")
        }
        guard case .string(let opName) = opValue else { throw wrongType(opValue, place.key("op"), "an operator string") }
        guard let op = TriggerComparison(rawValue: opName) else {
            throw place.key("op").error(.unknownOperator, "unknown operator \(EventParser.quoted(opName))",
                                        "use one of \(TriggerComparison.allCases.map(\.rawValue).joined(separator: " "))")
        }
        let limit = Double(Float.greatestFiniteMagnitude)
        return TriggerFeatureCondition(feature: name, column: column, op: op, value: try number(v, place.key("value"), -limit...limit))
    }

    // MARK: Values

    /// An object's members by key, refusing keys outside `allowed` and keys given twice.
    func fields(_ value: RulesJSON, _ place: RulesPlace, allowed: [String], what: String) throws(TriggerRulesError) -> [String: RulesJSON] {
        guard case .object(let pairs) = value else { throw wrongType(value, place, "an object {…}") }
        var out: [String: RulesJSON] = [:]
        for (k, v) in pairs {
            guard allowed.contains(k) else {
                throw place.key(k).error(.unknownKey, "unknown key \(EventParser.quoted(k)) in \(what)",
                                         "remove it or use one of \(allowed.joined(separator: ", ")); closest: \(closest(k, allowed))")
            }
            guard out.updateValue(v, forKey: k) == nil else {
                throw place.key(k).error(.duplicateKey, "\(EventParser.quoted(k)) is given twice", "keep one of them")
            }
        }
        return out
    }

    func number(_ value: RulesJSON, _ place: RulesPlace, _ range: ClosedRange<Double>) throws(TriggerRulesError) -> Double {
        guard case .number(let x) = value else { throw wrongType(value, place, "a number") }
        func plain(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)" }
        let bounds = "\(plain(range.lowerBound)) to \(plain(range.upperBound))"
        guard x.isFinite else { throw place.error(.nonFiniteNumber, "the number is too large to be finite", "give a number from \(bounds)") }
        guard range.contains(x) else { throw place.error(.outOfRange, "\(plain(x)) is out of range", "give a number from \(bounds)") }
        return x
    }

    /// A non-empty array of strings, each with its place.
    func strings(_ value: RulesJSON, _ place: RulesPlace) throws(TriggerRulesError) -> [(String, RulesPlace)] {
        guard case .array(let items) = value else { throw wrongType(value, place, "an array of strings") }
        guard !items.isEmpty else { throw place.error(.emptyList, "the list is empty", "list at least one name or remove the condition") }
        var out: [(String, RulesPlace)] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else { throw wrongType(item, place.item(i), "a string") }
            out.append((s, place.item(i)))
        }
        return out
    }

    func band(_ name: String, _ place: RulesPlace) throws(TriggerRulesError) -> TriggerBand {
        guard let b = TriggerBand(wireName: name) else {
            throw place.error(.unknownBand, "unknown band \(EventParser.quoted(name))",
                              "use low, medium, high or very_high; closest: \(closest(name, TriggerBand.allCases.map(\.wireName)))")
        }
        return b
    }

    func wrongType(_ value: RulesJSON, _ place: RulesPlace, _ expected: String) -> TriggerRulesError {
        place.error(.wrongType, "found \(value.typeName), expected \(expected)", "write \(expected) there")
    }

    /// The candidates nearest to `word` by edit distance (at most three, none more than one edit
    /// farther than the nearest), quoted.
    func closest(_ word: String, _ candidates: [String]) -> String {
        let names = NameSuggestions.nearest(to: word, among: candidates)
        return names.isEmpty ? "(none)" : names.map { EventParser.quoted($0) }.joined(separator: ", ")
    }
}

// MARK: - JSON

/// A JSON value of a rules file. Objects keep their members in order, duplicates included, so
/// that the format check can refuse them.
indirect enum RulesJSON {
    case object([(key: String, value: RulesJSON)])
    case array([RulesJSON])
    case string(String)
    /// Possibly infinite (1e999): the format check refuses it with the rule and field.
    case number(Double)
    case bool(Bool)
    case null

    var typeName: String {
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

/// A strict JSON reader over the event parser's `Scanner` (the same string, number and literal
/// grammar): one document, nothing after it, at most `maxDepth` levels.
struct RulesJSONReader {
    var scanner: Scanner
    static let maxDepth = 16

    mutating func document() throws(Scanner.Failure) -> RulesJSON {
        scanner.skipSpace()
        let v = try value(depth: 1)
        scanner.skipSpace()
        guard scanner.i == scanner.bytes.count else { throw failure("trailing bytes after the document") }
        return v
    }

    mutating func value(depth: Int) throws(Scanner.Failure) -> RulesJSON {
        let b = scanner.bytes
        guard scanner.i < b.count else { throw failure("expected a value, found the end of the file") }
        switch b[scanner.i] {
        case 0x22:
            return .string(try scanner.string().get())
        case 0x2D, 0x30...0x39:
            let r = try scanner.number().get()
            guard let x = Double(Substring(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self)) else { throw failure("bad number") }
            return .number(x)
        case 0x74:
            _ = try scanner.literal("true", .other).get()
            return .bool(true)
        case 0x66:
            _ = try scanner.literal("false", .other).get()
            return .bool(false)
        case 0x6E:
            _ = try scanner.literal("null", .null).get()
            return .null
        case 0x7B, 0x5B:
            guard depth <= Self.maxDepth else { throw failure("nested deeper than \(Self.maxDepth) levels") }
            let isObject = b[scanner.i] == 0x7B
            let close: UInt8 = isObject ? 0x7D : 0x5D
            scanner.i += 1
            var pairs: [(key: String, value: RulesJSON)] = [], items: [RulesJSON] = []
            scanner.skipSpace()
            if scanner.i < b.count && b[scanner.i] == close {
                scanner.i += 1
                return isObject ? .object([]) : .array([])
            }
            while true {
                scanner.skipSpace()
                var key = ""
                if isObject {
                    guard scanner.i < b.count, b[scanner.i] == 0x22 else { throw failure("expected a key in quotes") }
                    key = try scanner.string().get()
                    scanner.skipSpace()
                    guard scanner.i < b.count, b[scanner.i] == 0x3A else { throw failure("expected ':'") }
                    scanner.i += 1
                    scanner.skipSpace()
                }
                let v = try value(depth: depth + 1)
                if isObject { pairs.append((key, v)) } else { items.append(v) }
                scanner.skipSpace()
                guard scanner.i < b.count else { throw failure(isObject ? "unterminated object" : "unterminated array") }
                if b[scanner.i] == 0x2C { scanner.i += 1; continue }
                if b[scanner.i] == close { scanner.i += 1; break }
                throw failure(isObject ? "expected ',' or '}'" : "expected ',' or ']'")
            }
            return isObject ? .object(pairs) : .array(items)
        default:
            throw failure("unexpected byte")
        }
    }

    func failure(_ what: String) -> Scanner.Failure { Scanner.Failure(problem: scanner.fail(what)) }

    /// The 1-based line and column (in bytes) of `offset`.
    static func lineAndColumn(_ bytes: UnsafeBufferPointer<UInt8>, _ offset: Int) -> (Int, Int) {
        var line = 1, column = 1
        for k in 0..<min(max(offset, 0), bytes.count) {
            if bytes[k] == 0x0A { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }
}
