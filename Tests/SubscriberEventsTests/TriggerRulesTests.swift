import Foundation
import Testing
import TestSupport
@testable import SubscriberEvents
import SubscriberProfiles
import WireFormat

@Suite("Trigger rules")
struct TriggerRulesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func parse(_ json: String, features: [String] = FeatureCatalogue.names) throws(TriggerRulesError) -> TriggerRules {
        try TriggerRules.parse(Array(json.utf8), file: "test.json", featureNames: features)
    }

    static func defaultRules() throws -> TriggerRules {
        let bytes = try [UInt8](Data(contentsOf: root.appendingPathComponent(TriggerRules.defaultFileName)))
        return try TriggerRules.parse(bytes, file: TriggerRules.defaultFileName, featureNames: FeatureCatalogue.names)
    }

    /// A profile in catalogue order, all missing except `values`.
    static func profile(_ values: [String: Float]) -> [Float] {
        var p = [Float](repeating: .nan, count: FeatureCatalogue.count)
        for (name, v) in values { if let k = FeatureCatalogue.index(of: name) { p[k] = v } }
        return p
    }

    /// The names of the rules that match.
    static func names(_ rules: TriggerRules, _ c: TriggerContext) -> [String] {
        rules.matching(c).map { rules.rules[$0].name }
    }

    // MARK: The default file

    @Test("Deploy/triggers.json parses against the feature catalogue, with the operators' rules and cool-downs")
    func defaultFile() throws {
        let rules = try Self.defaultRules()
        #expect(rules.rules.map(\.name) == ["band_rises_high", "probability_jump_7d", "port_out_at_risk", "bill_shock_at_risk",
                                            "third_complaint", "tariff_shopping_at_risk"])
        #expect(rules.rules.map(\.cooldownHours) == [24, 24, 24, 72, 168, 24])
        #expect(rules.longestCooldownMillis == 168 * 3_600_000)
        #expect(rules.rules[4].when.features == [TriggerFeatureCondition(feature: "complaints_90d", column: FeatureCatalogue.index(of: "complaints_90d")!, op: .greaterOrEqual, value: 3)])
        #expect(rules.rules[3].when == {
            var w = TriggerConditions()
            w.events = [.bill]; w.billShock = true; w.probabilityAtLeast = 0.15
            return w
        }())
        #expect(rules.fingerprint.count == 16)
    }

    @Test("the format's example parses, and the canonical form reads back to the same rules and fingerprint")
    func canonical() throws {
        let example = """
        {"cooldown_hours": 24,
         "rules": [
          {"name": "band_rises_high", "when": {"band_rises_into": ["high", "very_high"]}},
          {"name": "probability_jump_7d", "when": {"probability_rise_7d_at_least": 0.2}},
          {"name": "port_out_at_risk", "when": {"event": ["port_out_inquiry"], "probability_at_least": 0.35}},
          {"name": "bill_shock", "when": {"event": ["bill"], "bill_shock": true}, "cooldown_hours": 72},
          {"name": "prepaid_silent_complaint", "when": {"event": ["complaint"], "features": [{"feature": "is_prepaid", "op": "==", "value": 1}, {"feature": "complaints_90d", "op": ">=", "value": 3}]}}
         ]}
        """
        for rules in [try Self.parse(example), try Self.defaultRules()] {
            let again = try TriggerRules.parse(rules.canonicalBytes, file: "canonical", featureNames: FeatureCatalogue.names)
            #expect(again.rules == rules.rules)
            #expect(again.canonicalBytes == rules.canonicalBytes && again.fingerprint == rules.fingerprint)
        }
        // Layout, key order and the order of unordered lists do not change the fingerprint; a threshold does.
        let a = try Self.parse(#"{"rules":[{"name":"x","when":{"event":["sms","call"],"probability_at_least":0.5}}]}"#)
        let b = try Self.parse(#"{ "rules" : [ { "when" : { "probability_at_least" : 5e-1, "event" : ["call", "sms"] }, "name" : "x", "cooldown_hours": 24 } ] , "cooldown_hours": 24}"#)
        let c = try Self.parse(#"{"rules":[{"name":"x","when":{"event":["sms","call"],"probability_at_least":0.51}}]}"#)
        #expect(a.fingerprint == b.fingerprint && a.canonicalBytes == b.canonicalBytes)
        #expect(a.fingerprint != c.fingerprint)
        #expect(TriggerRules().fingerprint == (try Self.parse(#"{"rules": []}"#)).fingerprint)
        #expect(TriggerRules().matching(TriggerContext(eventType: .call, probabilityBefore: 0, probabilityAfter: 1)).isEmpty)
    }

    // MARK: Conditions

    @Test("bands: thresholds 0.05/0.15/0.35, names, order")
    func bands() {
        #expect(TriggerBand(probability: 0.049) == .low && TriggerBand(probability: 0.05) == .medium)
        #expect(TriggerBand(probability: 0.15) == .high && TriggerBand(probability: 0.35) == .veryHigh && TriggerBand(probability: .nan) == .low)
        #expect(TriggerBand.allCases.map(\.wireName) == ["low", "medium", "high", "very_high"])
        #expect(TriggerBand.allCases.allSatisfy { TriggerBand(wireName: $0.wireName) == $0 })
        #expect(TriggerBand.low < .medium && .high < .veryHigh && TriggerBand(wireName: "High") == nil)
        #expect(EventType.allCases.count <= 64, "CompiledRule keeps event types in a 64-bit mask")
        #expect(EventType.allCases.map(\.triggerBit) == EventType.allCases.map { UInt64(1) << UInt64($0.index) })
    }

    @Test("band_rises_into fires only on a real rise into a listed band")
    func bandRise() throws {
        let rules = try Self.defaultRules()
        func fires(_ before: Double, _ after: Double) -> Bool {
            Self.names(rules, TriggerContext(eventType: .call, probabilityBefore: before, probabilityAfter: after)).contains("band_rises_high")
        }
        #expect(fires(0.10, 0.16))   // medium → high
        #expect(fires(0.01, 0.50))   // low → very high
        #expect(fires(0.20, 0.36))   // high → very high
        #expect(!fires(0.16, 0.30))  // high → high: no rise
        #expect(!fires(0.40, 0.90))  // very high → very high
        #expect(!fires(0.01, 0.10))  // low → medium: not listed
        #expect(!fires(0.50, 0.20))  // a fall
        #expect(!fires(0.10, .nan))  // no score after
        let medium = try Self.parse(#"{"rules":[{"name":"m","when":{"band_rises_into":["medium"]}}]}"#)
        #expect(medium.matching(TriggerContext(eventType: .sms, probabilityBefore: 0.01, probabilityAfter: 0.06)) == [0])
        #expect(medium.matching(TriggerContext(eventType: .sms, probabilityBefore: 0.01, probabilityAfter: 0.2)).isEmpty)
    }

    @Test("probability_rise_7d_at_least reads the 7-day low; change and at-least read before and after")
    func probabilities() throws {
        let rules = try Self.defaultRules()
        func jump(before: Double, after: Double, low: Double?) -> Bool {
            Self.names(rules, TriggerContext(eventType: .sms, probabilityBefore: before, probabilityAfter: after, lowestProbability7d: low)).contains("probability_jump_7d")
        }
        #expect(jump(before: 0.28, after: 0.30, low: 0.05))   // small step, but 0.25 above the week's low
        #expect(!jump(before: 0.28, after: 0.30, low: 0.15))  // 0.15 above it
        #expect(!jump(before: 0.28, after: 0.30, low: nil))   // low defaults to before
        #expect(jump(before: 0.05, after: 0.30, low: nil))
        #expect(!jump(before: 0.05, after: 0.30, low: .nan))

        let change = try Self.parse(#"""
        {"rules":[{"name":"up","when":{"probability_change_at_least":0.1}},
                  {"name":"not_down_much","when":{"probability_change_at_least":-0.05}},
                  {"name":"at_least","when":{"probability_at_least":0.5}},
                  {"name":"band","when":{"band_at_least":"high"}}]}
        """#)
        func m(_ b: Double, _ a: Double) -> [String] { Self.names(change, TriggerContext(eventType: .call, probabilityBefore: b, probabilityAfter: a)) }
        #expect(m(0.20, 0.35) == ["up", "not_down_much", "band"])
        #expect(m(0.20, 0.17) == ["not_down_much", "band"])
        #expect(m(0.60, 0.50) == ["at_least", "band"])
        #expect(m(0.10, 0.14) == ["not_down_much"])
        #expect(m(.nan, 0.9) == ["at_least", "band"])
    }

    @Test("event and bill_shock filter; all conditions must hold")
    func eventFilter() throws {
        let rules = try Self.defaultRules()
        func m(_ t: EventType, _ p: Double, shock: Bool = false) -> [String] {
            Self.names(rules, TriggerContext(eventType: t, probabilityBefore: p, probabilityAfter: p, billShock: shock))
        }
        #expect(m(.portOutInquiry, 0.40) == ["port_out_at_risk"])
        #expect(m(.portOutInquiry, 0.30) == [])
        #expect(m(.complaint, 0.40) == [])
        #expect(m(.tariffView, 0.35) == ["tariff_shopping_at_risk"])
        #expect(m(.bill, 0.20, shock: true) == ["bill_shock_at_risk"])
        #expect(m(.bill, 0.20, shock: false) == [])
        #expect(m(.bill, 0.10, shock: true) == [])
        #expect(m(.topup, 0.90, shock: true) == [])
        let noShock = try Self.parse(#"{"rules":[{"name":"calm_bill","when":{"event":["bill","topup"],"bill_shock":false}}]}"#)
        #expect(noShock.matching(TriggerContext(eventType: .bill, probabilityBefore: 0, probabilityAfter: 0)) == [0])
        #expect(noShock.matching(TriggerContext(eventType: .topup, probabilityBefore: 0, probabilityAfter: 0)) == [0])
        #expect(noShock.matching(TriggerContext(eventType: .bill, probabilityBefore: 0, probabilityAfter: 0, billShock: true)) == [])
        #expect(noShock.matching(TriggerContext(eventType: .call, probabilityBefore: 0, probabilityAfter: 0)) == [])
    }

    @Test("features compare the profile after the event; a missing value (NaN, or no column) never compares true")
    func features() throws {
        let rules = try Self.defaultRules()
        func third(_ p: [Float], _ t: EventType = .complaint) -> Bool {
            Self.names(rules, TriggerContext(eventType: t, probabilityBefore: 0.01, probabilityAfter: 0.01, profile: p)).contains("third_complaint")
        }
        #expect(third(Self.profile(["complaints_90d": 3])))
        #expect(third(Self.profile(["complaints_90d": 5])))
        #expect(!third(Self.profile(["complaints_90d": 2])))
        #expect(!third(Self.profile([:])))
        #expect(!third([]))
        #expect(!third(Self.profile(["complaints_90d": 3]), .supportCall))

        // Every operator, with NaN; the example's prepaid rule needs both comparisons.
        let values: [Float] = [1, 2, 3, .nan]
        let expected: [TriggerComparison: [Bool]] = [
            .less: [true, false, false, false], .lessOrEqual: [true, true, false, false], .equal: [false, true, false, false],
            .notEqual: [true, false, true, false], .greaterOrEqual: [false, true, true, false], .greater: [false, false, true, false],
        ]
        for op in TriggerComparison.allCases {
            let r = try Self.parse(#"{"rules":[{"name":"r","when":{"features":[{"feature":"open_tickets","op":"\#(op.rawValue)","value":2}]}}]}"#)
            let got = values.map { !r.matching(TriggerContext(eventType: .ticketOpened, probabilityBefore: 0, probabilityAfter: 0, profile: Self.profile(["open_tickets": $0]))).isEmpty }
            #expect(got == expected[op], "\(op.rawValue)")
            #expect(values.map { r.rules[0].when.features![0].holds($0) } == expected[op])
        }
        let prepaid = try Self.parse(#"{"rules":[{"name":"p","when":{"event":["complaint"],"features":[{"feature":"is_prepaid","op":"==","value":1},{"feature":"complaints_90d","op":">=","value":3}]}}]}"#)
        func p(_ values: [String: Float]) -> Bool {
            !prepaid.matching(TriggerContext(eventType: .complaint, probabilityBefore: 0, probabilityAfter: 0, profile: Self.profile(values))).isEmpty
        }
        #expect(p(["is_prepaid": 1, "complaints_90d": 3]))
        #expect(!p(["is_prepaid": 0, "complaints_90d": 3]))
        #expect(!p(["is_prepaid": 1]))
        // Columns come from the schema given at parse time.
        let small = try Self.parse(#"{"rules":[{"name":"s","when":{"features":[{"feature":"b","op":">","value":0.5}]}}]}"#, features: ["a", "b"])
        #expect(small.rules[0].when.features?[0].column == 1)
        #expect(small.matching(TriggerContext(eventType: .sms, probabilityBefore: 0, probabilityAfter: 0, profile: [0, 0.75])) == [0])
        #expect(small.matching(TriggerContext(eventType: .sms, probabilityBefore: 0, probabilityAfter: 0, profile: [0.75])) == [])
    }

    @Test("matching(into:) gives the same indices, in file order, reusing the buffer")
    func intoBuffer() throws {
        let rules = try Self.parse(#"{"rules":[{"name":"a","when":{"probability_at_least":0.1}},{"name":"b","when":{"event":["sms"]}},{"name":"c","when":{"probability_at_least":0.3}}]}"#)
        var buffer: [Int] = [99]
        for (t, p, want) in [(EventType.sms, 0.5, [0, 1, 2]), (.call, 0.2, [0]), (.sms, 0.0, [1]), (.call, 0.0, [])] {
            let c = TriggerContext(eventType: t, probabilityBefore: p, probabilityAfter: p)
            rules.matching(c, into: &buffer)
            #expect(buffer == want && rules.matching(c) == want)
        }
    }

    // MARK: Errors

    struct BadCase: Sendable, CustomTestStringConvertible {
        var json: String
        var code: TriggerRulesError.Code
        var rule: Int?
        var name: String?
        var field: String?
        /// Words the message must contain (the suggestion, the value).
        var mentions: [String] = []
        var testDescription: String { "\(code)" + (field.map { " at \($0)" } ?? "") }
    }

    static func rule(_ when: String, name: String = "r", extra: String = "") -> String {
        #"{"rules":[{"name":"ok","when":{"event":["sms"]}},{"name":"\#(name)","when":\#(when)\#(extra)}]}"#
    }

    static let badCases: [BadCase] = [
        BadCase(json: rule(#"{"features":[{"feature":"complaint_90d","op":">=","value":3}]}"#), code: .unknownFeature, rule: 1, name: "r",
                field: "when.features[0].feature", mentions: ["complaint_90d", "\"complaints_90d\""]),
        BadCase(json: rule(#"{"event":["sms"]}"#, name: "ok"), code: .duplicateName, rule: 1, name: "ok", field: "name", mentions: ["rules[0]"]),
        BadCase(json: rule(#"{"band_rises_into":["high","very-high"]}"#), code: .unknownBand, rule: 1, name: "r",
                field: "when.band_rises_into[1]", mentions: ["\"very_high\""]),
        BadCase(json: rule(#"{"band_at_least":"extreme"}"#), code: .unknownBand, rule: 1, name: "r", field: "when.band_at_least"),
        BadCase(json: rule(#"{"probability_at_least":"0.3"}"#), code: .wrongType, rule: 1, name: "r", field: "when.probability_at_least", mentions: ["a string", "a number"]),
        BadCase(json: rule(#"{"bill_shock":1}"#), code: .wrongType, rule: 1, name: "r", field: "when.bill_shock", mentions: ["true or false"]),
        BadCase(json: rule(#"{"event":"sms"}"#), code: .wrongType, rule: 1, name: "r", field: "when.event"),
        BadCase(json: rule(#"["sms"]"#), code: .wrongType, rule: 1, name: "r", field: "when"),
        BadCase(json: #"{"rules":{"name":"r"}}"#, code: .wrongType, field: "rules"),
        BadCase(json: #"{"rules":[{"name":"ok","when":{"event":["sms"]}}, 7]}"#, code: .wrongType, rule: 1, mentions: ["a number"]),
        BadCase(json: #"{"rules":[{"name":5,"when":{"event":["sms"]}}]}"#, code: .wrongType, rule: 0, field: "name"),
        BadCase(json: #"[]"#, code: .wrongType, mentions: ["an array"]),
        BadCase(json: #"{"rules":[{"name":"r","when":{"event":["sms""#, code: .malformedJSON, mentions: ["line 1"]),
        BadCase(json: "{\"rules\": [\n  {\"name\": \"r\",\n   \"when\": {\"event\": [\"sms\"]}\n", code: .malformedJSON, mentions: ["line 4"]),
        BadCase(json: "", code: .malformedJSON),
        BadCase(json: #"{"rules":[]} {}"#, code: .malformedJSON, mentions: ["trailing"]),
        BadCase(json: rule(#"{"probability_at_least":NaN}"#), code: .malformedJSON),
        BadCase(json: rule(#"{"event":["sms\u00"]}"#), code: .malformedJSON),
        BadCase(json: String(repeating: "[", count: 40) + String(repeating: "]", count: 40), code: .malformedJSON, mentions: ["nested"]),
        BadCase(json: rule(#"{"probability_at_least":1e999}"#), code: .nonFiniteNumber, rule: 1, name: "r", field: "when.probability_at_least"),
        BadCase(json: #"{"cooldown_hours":-1e999,"rules":[]}"#, code: .nonFiniteNumber, field: "cooldown_hours"),
        BadCase(json: rule(#"{"probability_at_least":1.5}"#), code: .outOfRange, rule: 1, name: "r", field: "when.probability_at_least", mentions: ["0 to 1"]),
        BadCase(json: rule(#"{"features":[{"feature":"balance","op":">","value":1e300}]}"#), code: .outOfRange, rule: 1, name: "r", field: "when.features[0].value"),
        BadCase(json: rule(#"{"event":["sms"]}"#, extra: #","cooldown_hours":-2"#), code: .outOfRange, rule: 1, name: "r", field: "cooldown_hours"),
        BadCase(json: rule(#"{"event":["sms","bil"]}"#), code: .unknownEventType, rule: 1, name: "r", field: "when.event[1]", mentions: ["\"bill\""]),
        BadCase(json: rule(#"{"event":["sms","sms"]}"#), code: .duplicateEntry, rule: 1, name: "r", field: "when.event[1]"),
        BadCase(json: rule(#"{"event":[]}"#), code: .emptyList, rule: 1, name: "r", field: "when.event"),
        BadCase(json: rule(#"{"features":[]}"#), code: .emptyList, rule: 1, name: "r", field: "when.features"),
        BadCase(json: rule("{}"), code: .emptyWhen, rule: 1, name: "r", field: "when"),
        BadCase(json: rule(#"{"probablity_at_least":0.3}"#), code: .unknownKey, rule: 1, name: "r", field: "when.probablity_at_least",
                mentions: ["\"probability_at_least\""]),
        BadCase(json: #"{"rules":[{"name":"r","when":{"event":["sms"]},"cooldown":3}]}"#, code: .unknownKey, rule: 0, name: "r", field: "cooldown",
                mentions: ["\"cooldown_hours\""]),
        BadCase(json: #"{"rule":[]}"#, code: .unknownKey, field: "rule", mentions: ["\"rules\""]),
        BadCase(json: rule(#"{"event":["sms"],"event":["call"]}"#), code: .duplicateKey, rule: 1, name: "r", field: "when.event"),
        BadCase(json: #"{"rules":[{"name":"r"}]}"#, code: .missingKey, rule: 0, name: "r", mentions: ["when"]),
        BadCase(json: #"{"rules":[{"when":{"event":["sms"]}}]}"#, code: .missingKey, rule: 0, mentions: ["name"]),
        BadCase(json: #"{"cooldown_hours":24}"#, code: .missingKey, field: "rules"),
        BadCase(json: rule(#"{"features":[{"feature":"balance","value":1}]}"#), code: .missingKey, rule: 1, name: "r", field: "when.features[0]", mentions: ["op"]),
        BadCase(json: rule(#"{"features":[{"feature":"balance","op":"=","value":1}]}"#), code: .unknownOperator, rule: 1, name: "r", field: "when.features[0].op"),
        BadCase(json: rule(#"{"band_rises_into":["low"]}"#), code: .neverHolds, rule: 1, name: "r", field: "when.band_rises_into[0]"),
        BadCase(json: rule(#"{"event":["sms"]}"#, name: "Band Rises"), code: .badName, rule: 1, name: "Band Rises", field: "name"),
        BadCase(json: rule(#"{"event":["sms"]}"#, name: ""), code: .badName, rule: 1, name: "", field: "name"),
        BadCase(json: rule(#"{"event":["sms"]}"#, name: String(repeating: "a", count: 65)), code: .badName, rule: 1, name: String(repeating: "a", count: 65), field: "name"),
        BadCase(json: #"{"rules":["# + Array(repeating: #"{"name":"x","when":{"event":["sms"]}}"#, count: 257).joined(separator: ",") + "]}",
                code: .tooManyRules, field: "rules", mentions: ["257"]),
    ]

    @Test("a bad rules file gives an error naming the file, the rule, the field and what to do", arguments: badCases)
    func badInput(_ c: BadCase) {
        guard let e = #expect(throws: TriggerRulesError.self, performing: { try Self.parse(c.json) }) else { return }
        let text = e.description
        #expect(e.code == c.code, "\(text)")
        #expect(e.file == "test.json" && e.ruleIndex == c.rule && e.ruleName == c.name && e.field == c.field, "\(text)")
        #expect(text.hasPrefix("test.json") && text.hasSuffix("[\(c.code)]") && !e.fix.isEmpty, "\(text)")
        for word in c.mentions { #expect(text.contains(word), "\(text)") }
        if let rule = c.rule { #expect(text.contains("rules[\(rule)]"), "\(text)") }
        if let field = c.field { #expect(text.contains("field \(field)"), "\(text)") }
    }

    @Test("a file over 1 MiB is refused before it is read")
    func tooLarge() {
        let bytes = [UInt8](repeating: 0x20, count: TriggerRules.maxFileBytes + 1)
        let e = #expect(throws: TriggerRulesError.self) { try TriggerRules.parse(bytes, file: "big.json", featureNames: []) }
        #expect(e?.code == .fileTooLarge && e?.description.hasPrefix("big.json") == true)
    }

    @Test("no input crashes the parser: every prefix, and random corruptions of the default file")
    func neverCrashes() throws {
        let bytes = try [UInt8](Data(contentsOf: Self.root.appendingPathComponent(TriggerRules.defaultFileName)))
        // Every prefix that stops before the closing brace is truncated.
        for n in 0...(bytes.lastIndex(of: UInt8(ascii: "}")) ?? 0) {
            #expect(throws: TriggerRulesError.self) { try TriggerRules.parse(Array(bytes[..<n]), file: "prefix", featureNames: FeatureCatalogue.names) }
        }
        var rng = SeededGenerator("trigger rules: corrupted files")
        let alphabet = Array(#"{}[]":,0123456789.eE-+ truefalsnul\abc_"#.utf8) + [0x00, 0xFF, 0xC3, 0x0A]
        var parsed = 0
        for _ in 0..<3_000 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let k = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[k] = alphabet.randomElement(using: &rng)!
                case 1: b.remove(at: k)
                default: b.insert(alphabet.randomElement(using: &rng)!, at: k)
                }
            }
            if (try? TriggerRules.parse(b, file: "fuzz", featureNames: FeatureCatalogue.names)) != nil { parsed += 1 }
        }
        #expect(parsed < 3_000)
    }

    @Test("docs/triggers.md documents every condition and every error code")
    func documented() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/triggers.md"), encoding: .utf8)
        for key in TriggerRules.conditionKeys { #expect(doc.contains("`\(key)`"), "\(key)") }
        for code in TriggerRulesError.Code.all { #expect(doc.contains("`\(code)`"), "\(code)") }
        #expect(doc.contains(TriggerRules.defaultFileName))
    }
}

@Suite("Trigger rules: cool-downs")
struct TriggerRulesCooldownTests {
    static let hour: Int64 = 3_600_000
    static let t0: Int64 = 1_800_000_000_000

    @Test("a rule fires once per cool-down, again after it, per subscriber and per rule independently")
    func cooldown() {
        var c = TriggerCooldowns()
        let day = 24 * Self.hour
        func fire(_ s: Int64, _ r: Int, _ at: Int64, _ cd: Int64) -> Bool { c.admit(subscriber: s, rule: r, at: at, cooldownMillis: cd) }
        #expect(fire(1, 0, Self.t0, day))
        #expect(!fire(1, 0, Self.t0 + 1, day))
        #expect(!fire(1, 0, Self.t0 + day - 1, day))
        #expect(fire(2, 0, Self.t0 + 1, day))   // another subscriber
        #expect(fire(1, 1, Self.t0 + 1, day))   // another rule
        #expect(fire(1, 0, Self.t0 + day, day))  // cooled down
        #expect(c.lastFired(subscriber: 1, rule: 0) == Self.t0 + day)
        #expect(!fire(1, 0, Self.t0 + day + 5, day))
        // A late event, before the last firing, is still cooling down; a zero cool-down fires every time.
        #expect(!fire(2, 0, Self.t0 - 10 * day, day))
        #expect(fire(3, 5, Self.t0, 0) && fire(3, 5, Self.t0, 0))
        // Extreme times do not trap.
        #expect(fire(4, 255, .min, .max))
        #expect(fire(4, 255, .max, .max))
        #expect(!fire(4, 255, .min, 0))
        #expect(c.count == 5)
    }

    @Test("expire forgets firings past the longest cool-down without changing any later answer; bytes follow the entries")
    func expire() {
        var c = TriggerCooldowns()
        let empty = c.bytes
        for s in 0..<1_000 { _ = c.admit(subscriber: Int64(s), rule: s % 3, at: Self.t0 + Int64(s) * Self.hour, cooldownMillis: 24 * Self.hour) }
        #expect(c.count == 1_000 && c.bytes > empty + 1_000 * 24)
        let now = Self.t0 + 1_000 * Self.hour
        var kept = c
        kept.expire(before: now - 24 * Self.hour)
        #expect(kept.count == 24 && kept.bytes < c.bytes)
        for s in 0..<1_000 {
            var a = c, b = kept
            let fromAll = a.admit(subscriber: Int64(s), rule: s % 3, at: now, cooldownMillis: 24 * Self.hour)
            let fromKept = b.admit(subscriber: Int64(s), rule: s % 3, at: now, cooldownMillis: 24 * Self.hour)
            #expect(fromAll == fromKept)
        }
        kept.expire(before: .max)
        #expect(kept.count == 0)
    }

    static func randomRun(_ rng: inout SeededGenerator, steps: Int) -> [(Int64, Int, Int64, Int64)] {
        var at = Self.t0
        return (0..<steps).map { _ in
            at += Int64.random(in: -Self.hour...(6 * Self.hour), using: &rng)
            return (Int64.random(in: 1...20, using: &rng), Int.random(in: 0..<4, using: &rng), at, Int64.random(in: 1...48, using: &rng) * Self.hour)
        }
    }

    @Test("deterministic: replaying a sequence, whole or from a snapshot, gives the same answers and the same bytes")
    func deterministic() throws {
        var rng = SeededGenerator("trigger cool-downs replay")
        let run = Self.randomRun(&rng, steps: 2_000)
        func replay(_ steps: ArraySlice<(Int64, Int, Int64, Int64)>, from start: TriggerCooldowns) -> ([Bool], TriggerCooldowns) {
            var c = start
            var answers: [Bool] = []
            for (i, (s, r, at, cd)) in steps.enumerated() {
                answers.append(c.admit(subscriber: s, rule: r, at: at, cooldownMillis: cd))
                if i % 500 == 499 { c.expire(before: at - 48 * Self.hour) }
            }
            return (answers, c)
        }
        let (first, a) = replay(run[...], from: TriggerCooldowns())
        let (second, b) = replay(run[...], from: TriggerCooldowns())
        #expect(first == second && a == b && a.wireBytes() == b.wireBytes())
        #expect(first.contains(true) && first.contains(false))
        // Split at a snapshot that travels over the wire.
        let (head, mid) = replay(run[..<1_000], from: TriggerCooldowns())
        let restored = try TriggerCooldowns.decode(mid.wireBytes())
        let (tail, end) = replay(run[1_000...], from: restored)
        #expect(head + tail == first && end == a)
    }

    @Test("the wire form round-trips; truncated and hostile bytes throw")
    func wire() throws {
        var c = TriggerCooldowns()
        #expect(try TriggerCooldowns.decode(c.wireBytes()) == c)
        for s: Int64 in [5, -3, .max, 1] { for r in [0, 255, 7] { _ = c.admit(subscriber: s, rule: r, at: Self.t0 + s % 1000, cooldownMillis: Self.hour) } }
        let bytes = c.wireBytes()
        #expect(bytes.count == 2 + 12 * 17)
        #expect(try TriggerCooldowns.decode(bytes) == c)
        for n in 0..<bytes.count { #expect(throws: WireError.self) { try TriggerCooldowns.decode(Array(bytes[..<n])) } }
        #expect(throws: WireError.self) { try TriggerCooldowns.decode(bytes + [0]) }
        var badVersion = bytes; badVersion[0] = 2
        #expect(throws: WireError.self) { try TriggerCooldowns.decode(badVersion) }
        // Entries out of order, or one given twice.
        let entry1 = Array(bytes[2..<19]), entry2 = Array(bytes[19..<36])
        #expect(throws: WireError.self) { try TriggerCooldowns.decode([1, 2] + entry2 + entry1) }
        #expect(throws: WireError.self) { try TriggerCooldowns.decode([1, 2] + entry1 + entry1) }
        // A count far beyond the frame.
        #expect(throws: WireError.self) { try TriggerCooldowns.decode([1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F] + entry1) }
        var rng = SeededGenerator("trigger cool-downs hostile bytes")
        for _ in 0..<5_000 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            if Bool.random(using: &rng) { b = Array(b.prefix(Int.random(in: 0...b.count, using: &rng))) }
            _ = try? TriggerCooldowns.decode(b)
        }
    }
}
