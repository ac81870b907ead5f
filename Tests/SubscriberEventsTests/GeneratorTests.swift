import Foundation
import Testing
@testable import SubscriberEvents
import SubscriberProfiles

@Suite("Event stream generator")
struct EventGeneratorTests {
    static func stream(_ n: Int, _ e: Int, seed: UInt64) -> ([SubscriberEvent], EventGenerator) {
        var g = EventGenerator(.init(subscribers: n, events: e, seed: seed))
        var out: [SubscriberEvent] = []
        g.generate { out.append($0) }
        return (out, g)
    }

    @Test("deterministic for a seed, different for another; ids are the base's")
    func determinism() {
        let (a, _) = Self.stream(500, 20_000, seed: 7)
        let (b, _) = Self.stream(500, 20_000, seed: 7)
        let (c, _) = Self.stream(500, 20_000, seed: 8)
        #expect(a.count == 20_000 && a == b && a != c)
        #expect(a.allSatisfy { $0.subscriberID >= 1_000_000_000 && $0.subscriberID < 1_000_000_500 })
        // Every line is valid on the wire.
        let parser = EventParser()
        for (k, e) in a.enumerated() { #expect(parser.parse(e.ndjson, lineNumber: k + 1) == .event(e)) }
    }

    @Test("realistic: churners complain, inquire and browse more, their usage falls; bursts, duplicates and late events")
    func realism() {
        let n = 4_000
        let (events, g) = Self.stream(n, 300_000, seed: 11)
        let churners = g.churned.filter { $0 }.count
        #expect(churners > 40 && churners < 400)
        func perCapita(_ type: EventType, churned: Bool, part: ClosedRange<Double> = 0...1) -> Double {
            let start = Double(g.options.start), span = g.spanMillis
            var k = 0
            for e in events where e.type == type && g.churned[Int(e.subscriberID - g.options.firstID)] == churned {
                let p = (Double(e.at) - start) / span
                if part.contains(p) { k += 1 }
            }
            return Double(k) / Double(churned ? churners : n - churners)
        }
        for t in [EventType.complaint, .portOutInquiry, .tariffView, .supportCall] {
            let hi = perCapita(t, churned: true), lo = perCapita(t, churned: false)
            print("\(t.rawValue): \(hi) per churner, \(lo) per other subscriber")
            #expect(hi > 1.5 * lo, "\(t.rawValue)")
        }
        // Usage falls before churn: churners' calls in the last third vs the first third.
        let early = perCapita(.call, churned: true, part: 0...0.33), lateCalls = perCapita(.call, churned: true, part: 0.67...1)
        #expect(lateCalls < 0.75 * early, "\(early) → \(lateCalls)")
        // Timestamps increase, with jitter; a small share is late; a small share repeats.
        var maxAt: Int64 = 0, late = 0
        for e in events {
            if e.at < maxAt - 60_000 { late += 1 }
            maxAt = max(maxAt, e.at)
        }
        let keys = events.map { "\($0.source)/\($0.eventID)" }
        let duplicates = keys.count - Set(keys).count
        print("late \(late), duplicates \(duplicates), span \(g.spanMillis / 86_400_000) days")
        #expect(late > 300 && late < 6_000)
        #expect(duplicates > 300 && duplicates < 4_000)
        // Bursts: some subscriber has several care contacts within an hour.
        var bursts = 0
        var lastCare: [Int64: Int64] = [:]
        for e in events where e.type == .supportCall || e.type == .complaint {
            if let prev = lastCare[e.subscriberID], e.at - prev < 3_600_000 { bursts += 1 }
            lastCare[e.subscriberID] = e.at
        }
        #expect(bursts > 50)
        #expect(events.contains { $0.type == .ticketClosed })
    }
}
