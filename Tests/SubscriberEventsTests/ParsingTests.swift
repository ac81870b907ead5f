import Foundation
import Testing
import TestSupport
@testable import SubscriberEvents

@Suite("Event wire form")
struct EventParsingTests {
    static let now = Timestamp.parse("2026-12-03T12:00:00Z")!
    let parser = EventParser(now: EventParsingTests.now)

    @Test("the issue's example line")
    func example() throws {
        let line = #"{"event_id": "…", "source": "billing", "subscriber_id": 1000000123, "type": "complaint", "at": "2026-12-03T10:15:00Z", "value": 1.0}"#
        guard case .event(let e) = parser.parse(line, lineNumber: 1) else { Issue.record("rejected"); return }
        #expect(e.eventID == "…" && e.source == "billing" && e.subscriberID == 1_000_000_123 && e.type == .complaint && e.value == 1)
        #expect(Timestamp.format(e.at) == "2026-12-03T10:15:00Z")
        // Source defaults; escapes, offsets and fractions are read.
        guard case .event(let f) = parser.parse(#"{"event_id":"a\"b\u00e9\ud83d\ude00","subscriber_id":7,"type":"call","at":"2026-12-03T11:15:00.250+01:00","value":3.5}"#, lineNumber: 2) else {
            Issue.record("rejected"); return
        }
        #expect(f.source == "default" && f.eventID == "a\"bé😀" && f.value == 3.5)
        #expect(Timestamp.format(f.at) == "2026-12-03T10:15:00.250Z")
        // What `ndjson` writes reads back the same.
        for e in [e, f] {
            #expect(parser.parse(e.ndjson, lineNumber: 1) == .event(e))
        }
        #expect(parser.parse("   ", lineNumber: 3) == .blank)
    }

    static let cases: [(String, RejectionReason)] = [
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z""#, .malformedJSON),
        (#"not json"#, .malformedJSON),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"} extra"#, .malformedJSON),
        (#"{"event_id":"x","subscriber_id":01,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .malformedJSON),
        ("{\"event_id\":\"\u{01}\",\"subscriber_id\":1}", .malformedJSON),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z","extra":true}"#, .unknownField),
        (#"{"event_id":"x","event_id":"y","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .duplicateField),
        (#"{"event_id":5,"subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .wrongFieldType),
        (#"{"event_id":"x","subscriber_id":"1","type":"sms","at":"2026-12-03T10:00:00Z"}"#, .wrongFieldType),
        (#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-12-03T10:00:00Z","value":"3"}"#, .wrongFieldType),
        (#"{"subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .missingField),
        (#"{"event_id":"x","type":"sms","at":"2026-12-03T10:00:00Z"}"#, .missingField),
        (#"{"event_id":"x","subscriber_id":1,"at":"2026-12-03T10:00:00Z"}"#, .missingField),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms"}"#, .missingField),
        (#"{"event_id":"x","subscriber_id":1,"type":"fax","at":"2026-12-03T10:00:00Z"}"#, .unknownType),
        (#"{"event_id":"x","subscriber_id":0,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badSubscriberID),
        (#"{"event_id":"x","subscriber_id":-4,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badSubscriberID),
        (#"{"event_id":"x","subscriber_id":1.5,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badSubscriberID),
        (#"{"event_id":"x","subscriber_id":9223372036854775808,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badSubscriberID),
        (#"{"event_id":"","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badEventID),
        (#"{"event_id":"a\nb","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"#, .badEventID),
        ("{\"event_id\":\"\(String(repeating: "x", count: 65))\",\"subscriber_id\":1,\"type\":\"sms\",\"at\":\"2026-12-03T10:00:00Z\"}", .oversizedEventID),
        ("{\"event_id\":\"x\",\"source\":\"\(String(repeating: "é", count: 33))\",\"subscriber_id\":1,\"type\":\"sms\",\"at\":\"2026-12-03T10:00:00Z\"}", .oversizedEventID),
        (#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-12-03T10:00:00Z"}"#, .missingValue),
        (#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-12-03T10:00:00Z","value":null}"#, .missingValue),
        (#"{"event_id":"x","subscriber_id":1,"type":"complaint","at":"2026-12-03T10:00:00Z","value":2}"#, .valueNotAllowed),
        (#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-12-03T10:00:00Z","value":1e999}"#, .nonFiniteValue),
        (#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-12-03T10:00:00Z","value":-1}"#, .valueOutOfRange),
        (#"{"event_id":"x","subscriber_id":1,"type":"contract_renewed","at":"2026-12-03T10:00:00Z","value":100}"#, .valueOutOfRange),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-03 10:00:00"}"#, .timestampUnparsable),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-02-29T10:00:00Z"}"#, .timestampUnparsable),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00"}"#, .timestampUnparsable),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-12-04T12:00:01Z"}"#, .inFuture),
        (#"{"event_id":"x","subscriber_id":1,"type":"sms","at":"2026-11-26T11:59:59Z"}"#, .tooLate),
        ("{\"event_id\":\"x\",\"pad\":\"\(String(repeating: " ", count: 5000))\"}", .lineTooLong),
    ]

    @Test("every rejection reason, with its line number, in one stream that goes on")
    func everyReason() {
        var text = ""
        for (line, _) in Self.cases { text += line + "\n" }
        text += #"{"event_id":"ok","subscriber_id":1,"type":"sms","at":"2026-12-03T10:00:00Z"}"# + "\r\n"
        let results = parser.parseAll(Array(text.utf8))
        #expect(results.count == Self.cases.count + 1)
        var seen = Set<RejectionReason>()
        for (k, (line, reason)) in Self.cases.enumerated() {
            guard case .rejected(let r) = results[k] else { Issue.record("line \(k + 1) accepted: \(line)"); continue }
            #expect(r.reason == reason, "line \(k + 1): \(r)")
            #expect(r.line == k + 1)
            seen.insert(r.reason)
        }
        // `unknown_subscriber` is the owning worker's answer, not the parser's (EventTests covers it).
        let parserReasons = Set(RejectionReason.allCases).subtracting([.unknownSubscriber])
        #expect(seen == parserReasons, "untested: \(parserReasons.subtracting(seen))")
        guard case .event = results.last! else { Issue.record("the good last line was rejected"); return }
        // Accepted values at the edges of their ranges.
        #expect(parser.parse(#"{"event_id":"x","subscriber_id":1,"type":"complaint","at":"2026-12-04T12:00:00Z"}"#, lineNumber: 1) != .blank)
        if case .rejected(let r) = parser.parse(#"{"event_id":"x","subscriber_id":1,"type":"call","at":"2026-11-26T12:00:00Z","value":0}"#, lineNumber: 1) {
            Issue.record("edge rejected: \(r)")
        }
    }

    @Test("random bytes, mutated and truncated lines never crash and always give a line-numbered answer")
    func robustness() {
        var rng = SeededGenerator("event parser robustness")
        let good = Array(#"{"event_id":"e-1","source":"billing","subscriber_id":1000000123,"type":"bill","at":"2026-12-03T10:15:00Z","value":42.5}"#.utf8)
        let alphabet = Array(#"{}[]":,.-+eE0123456789tfnul\ "#.utf8) + [0x00, 0xFF, 0xC3, 0x80, 0x0D]
        var accepted = 0
        for round in 0..<30_000 {
            var line: [UInt8]
            switch round % 4 {
            case 0: line = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1: line = Array(good.prefix(Int.random(in: 0...good.count, using: &rng)))
            case 2:
                line = good
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    line[Int.random(in: 0..<line.count, using: &rng)] = alphabet.randomElement(using: &rng)!
                }
            default:
                line = (0..<Int.random(in: 0..<120, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            }
            line.removeAll { $0 == 0x0A }
            switch parser.parse(line, lineNumber: round + 1) {
            case .rejected(let r): #expect(r.line == round + 1)
            case .event: accepted += 1
            case .blank: break
            }
        }
        // Deep nesting is bounded, not recursed into without end.
        let deep = "{\"x\":" + String(repeating: "[", count: 100_000)
        if case .rejected(let r) = parser.parse(deep, lineNumber: 9) { #expect(r.reason == .lineTooLong) } else { Issue.record("accepted") }
        let nested = "{\"x\":" + String(repeating: "[", count: 1000) + "}"
        if case .rejected(let r) = parser.parse(nested, lineNumber: 9) { #expect(r.reason == .malformedJSON) } else { Issue.record("accepted") }
        print("robustness: \(accepted) of 30000 mutated lines still valid events")
    }

    @Test("timestamps: calendar edges and round trips")
    func timestamps() {
        #expect(Timestamp.parse("1970-01-01T00:00:00Z") == 0)
        #expect(Timestamp.parse("2024-02-29T23:59:59.999Z") == 1_709_251_199_999)
        #expect(Timestamp.parse("2000-03-01T00:00:00+02:30") == Int64(951_859_800_000))
        #expect(Timestamp.parse("1969-12-31T23:59:59Z") == nil)
        #expect(Timestamp.parse("2026-13-01T00:00:00Z") == nil)
        #expect(Timestamp.parse("2026-12-01T24:00:00Z") == nil)
        #expect(Timestamp.parse("2026-12-01T00:00:00.Z") == nil)
        var rng = SeededGenerator("timestamp round trips")
        for _ in 0..<10_000 {
            let t = Int64.random(in: 0..<253_402_300_799_000, using: &rng)
            #expect(Timestamp.parse(Timestamp.format(t)) == t)
        }
        // A time from a peer or a row (a fired trigger's, an event's) outside the calendar: its
        // milliseconds, never an overflow.
        #expect(Timestamp.format(Timestamp.latestFormatted) == "9999-12-31T23:59:59.999Z")
        #expect(Timestamp.format(-62_167_219_200_000) == "0000-01-01T00:00:00Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
        for t in [Int64.min, Int64.min + 1, -62_167_219_200_001, Timestamp.latestFormatted + 1, Int64.max] {
            #expect(Timestamp.format(t) == "\(t) ms since 1970")
        }
    }

    @Test("throughput (printed, not asserted)")
    func throughput() {
        var generator = EventGenerator(.init(subscribers: 2_000, events: 200_000, seed: 3))
        var bytes: [UInt8] = []
        generator.generate { bytes.append(contentsOf: $0.ndjson.utf8); bytes.append(0x0A) }
        let clock = ContinuousClock()
        var events = 0
        let lax = EventParser()
        let elapsed = clock.measure {
            bytes.withUnsafeBufferPointer { b in lax.forEachLine(in: b) { if case .event = $0 { events += 1 } } }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        #expect(events == 200_000)
        print("event parser: \(events) lines, \(bytes.count / events) bytes/line, \(Int(Double(events) / seconds)) lines/s on one core")
    }
}
