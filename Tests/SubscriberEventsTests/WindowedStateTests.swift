import Foundation
import Testing
import TestSupport
@testable import SubscriberEvents
import SubscriberProfiles

@Suite("Windowed per-subscriber state")
struct WindowedStateTests {
    static let day = Timestamp.millisPerDay
    static let t0 = Timestamp.parse("2026-01-01T00:00:00Z")!

    static func event(_ type: EventType, at: Int64, value: Double? = nil, id: Int = 0) -> SubscriberEvent {
        SubscriberEvent(eventID: "e\(id)", subscriberID: 1, type: type, at: at, value: value)
    }

    /// Every windowed feature, recomputed from the list of applied events.
    static func naive(_ applied: [SubscriberEvent], today: Int32) -> [String: Double] {
        func sum(_ series: Series, _ ages: Range<Int>) -> Double {
            if series == .activeDays || series == .roamingDays {
                var days = Set<Int32>()
                for e in applied where e.type.spec.feeds.contains(where: { $0.series == series }) && ages.contains(Int(today - e.day)) { days.insert(e.day) }
                return Double(days.count)
            }
            var s = 0.0
            for e in applied {
                for (fed, amount) in e.type.spec.feeds where fed == series && ages.contains(Int(today - e.day)) {
                    s += WindowedState.quantized(series, amount ?? e.value)
                }
            }
            return s
        }
        var out: [String: Double] = [:]
        for spec in EventCatalogue.specs {
            for u in spec.updates {
                switch u.kind {
                case .count(let s, let d), .sum(let s, let d), .distinctDays(let s, let d): out[u.feature] = sum(s, 0..<d)
                case .trend(let s):
                    let last = sum(s, 0..<30), before = sum(s, 30..<120) / 3
                    out[u.feature] = before > 0 ? last / before - 1 : 0
                case .daysSinceLast(let s):
                    let days = applied.filter { e in e.type.spec.feeds.contains { $0.series == s } }.map(\.day)
                    if let last = days.max() { out[u.feature] = Double(today - last) }
                case .ratio(let n, let d, let days):
                    let a = sum(n, 0..<days), b = max(sum(d, 0..<days), a)
                    out[u.feature] = b > 0 ? a / b : 0
                default: break
                }
            }
        }
        return out
    }

    static func randomEvent(_ rng: inout SeededGenerator, now: Int64, id: Int) -> SubscriberEvent {
        let type = EventType.allCases.randomElement(using: &rng)!
        // Mostly on time, some late (within and beyond the allowed lateness), some ahead.
        let offset: Int64
        switch Int.random(in: 0..<20, using: &rng) {
        case 0: offset = -Int64.random(in: 0...(9 * day), using: &rng)
        case 1: offset = Int64.random(in: 0...(day + day / 4), using: &rng)
        default: offset = -Int64.random(in: 0...(day / 2), using: &rng)
        }
        let spec = type.spec
        var value: Double? = nil
        if spec.value != .forbidden { value = (Double.random(in: spec.range, using: &rng) * 100).rounded() / 100 }
        if type == .call { value = Double.random(in: 0...30, using: &rng) }
        return SubscriberEvent(eventID: "r\(id)", subscriberID: 1, type: type, at: now + offset, value: value)
    }

    static func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-3 * max(1, abs(a), abs(b)) }

    @Test("windowed counts, sums, days, trends and ratios agree with a naive recomputation over a random history")
    func againstNaive() {
        var rng = SeededGenerator("windowed state vs naive recomputation")
        // Kept small: the naive recomputation is quadratic, and `make test` runs this beside the
        // multi-process fault tests, whose timing a long CPU-bound test disturbs.
        for _ in 0..<2 {
            var state = WindowedState()
            var applied: [SubscriberEvent] = []
            var now = Self.t0
            for k in 0..<500 {
                // Time moves on by minutes to days; rarely by months (everything expires).
                now += Int.random(in: 0..<200, using: &rng) == 0 ? Int64.random(in: 0...(200 * Self.day), using: &rng)
                                                                  : Int64.random(in: 0...(Self.day / 3), using: &rng)
                let e = Self.randomEvent(&rng, now: now, id: k)
                let outcome = state.apply(e, now: now)
                let expected: RejectionReason? = e.at > now + WindowedState.maxFutureMillis ? .inFuture
                    : e.at < now - WindowedState.allowedLatenessMillis ? .tooLate : nil
                #expect(outcome.rejection == expected)
                if outcome.applied { applied.append(e) }
                if k % 11 == 0 || !outcome.applied {
                    let reference = Self.naive(applied, today: state.today)
                    var got: [String: Double] = [:]
                    for w in state.windowedFeatures() { if case .set(let v) = w.operation { got[w.feature] = v } }
                    #expect(Set(got.keys) == Set(reference.keys))
                    for (name, v) in reference where !Self.close(v, got[name] ?? .nan) {
                        Issue.record("step \(k): \(name) = \(got[name] ?? .nan), naive \(v)")
                    }
                }
                // The writes of the event itself are the same values.
                if outcome.applied {
                    let reference = Self.naive(applied, today: state.today)
                    for w in outcome.writes {
                        if case .set(let v) = w.operation, let r = reference[w.feature] { #expect(Self.close(v, r), "\(w.feature)") }
                    }
                }
            }
        }
    }

    @Test("buckets expire at the end of their window, also across long jumps")
    func expiry() {
        var state = WindowedState()
        let start = Self.t0 + Self.day / 2
        _ = state.apply(Self.event(.complaint, at: start), now: start)
        _ = state.apply(Self.event(.tariffView, at: start), now: start)
        _ = state.apply(Self.event(.call, at: start, value: 4), now: start)
        _ = state.apply(Self.event(.retentionOfferMade, at: start), now: start)
        let day0 = state.today
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 1)
        state.advance(to: day0 + 29)
        #expect(state.windowedValue(.count(.tariffViews, days: 30)) == 1)
        #expect(state.windowedValue(.distinctDays(.activeDays, days: 30)) == 1)
        #expect(state.windowedValue(.daysSinceLast(.activeDays)) == 29)
        state.advance(to: day0 + 30)
        #expect(state.windowedValue(.count(.tariffViews, days: 30)) == 0)
        #expect(state.windowedValue(.sum(.callMinutes, days: 30)) == 0)
        #expect(state.windowedValue(.distinctDays(.activeDays, days: 30)) == 0)
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 1)
        // The call still counts in the trend's "months before" until day 120.
        #expect(state.windowedValue(.trend(.calls)) == -1)
        state.advance(to: day0 + 89)
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 1)
        state.advance(to: day0 + 90)
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 0)
        state.advance(to: day0 + 119)
        #expect(state.windowedValue(.trend(.calls)) == -1)
        state.advance(to: day0 + 120)
        #expect(state.windowedValue(.trend(.calls)) == 0)
        #expect(state.windowedValue(.count(.retentionOffers, days: 365)) == 1)
        state.advance(to: day0 + 5_000)
        #expect(state.windowedValue(.count(.retentionOffers, days: 365)) == 0)
        #expect(state.windowedValue(.daysSinceLast(.activeDays)) == 5_000)
        #expect(state.sparse.isEmpty)
        // Advancing backwards changes nothing.
        let copy = state
        state.advance(to: day0)
        #expect(state == copy)
    }

    @Test("allowed lateness: 7 days back and 1 day ahead, at the millisecond")
    func lateness() {
        let now = Self.t0 + 40 * Self.day + 12_345
        var state = WindowedState()
        #expect(state.apply(Self.event(.complaint, at: now - WindowedState.allowedLatenessMillis - 1), now: now).rejection == .tooLate)
        #expect(state == WindowedState())
        #expect(state.apply(Self.event(.complaint, at: now + WindowedState.maxFutureMillis + 1), now: now).rejection == .inFuture)
        #expect(state.apply(Self.event(.complaint, at: now - WindowedState.allowedLatenessMillis), now: now).applied)
        #expect(state.apply(Self.event(.complaint, at: now + WindowedState.maxFutureMillis), now: now).applied)
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 2)
        #expect(WindowedState.allowedLatenessDays == 7)
        // The parser applies the same bounds.
        let parser = EventParser(now: now)
        let late = SubscriberEvent(eventID: "l", subscriberID: 1, type: .sms, at: now - WindowedState.allowedLatenessMillis - 1)
        if case .rejected(let r) = parser.parse(late.ndjson, lineNumber: 4) { #expect(r.reason == .tooLate && r.line == 4) } else { Issue.record("accepted") }
    }

    @Test("a value that does not fit its type (NaN, infinite, out of range: a logged row altered in PostgreSQL and replayed) is rejected when applied, and nothing changes")
    func badValues() {
        let now = Self.t0 + 40 * Self.day
        var state = WindowedState()
        #expect(state.apply(Self.event(.call, at: now, value: .infinity), now: now).rejection == .nonFiniteValue)
        #expect(state.apply(Self.event(.call, at: now, value: 1e300), now: now).rejection == .valueOutOfRange)
        #expect(state.apply(Self.event(.dataSession, at: now, value: .nan), now: now).rejection == .missingValue)
        #expect(state.apply(Self.event(.dataSession, at: now, value: -.infinity), now: now).rejection == .nonFiniteValue)
        #expect(state == WindowedState())
        #expect(state.apply(Self.event(.call, at: now, value: 1_440), now: now).applied)
        #expect(state.windowedValue(.sum(.callMinutes, days: 30)) == 1_440)
    }

    @Test("replaying from a copy of the state at any split point gives the same outcomes and state")
    func splitReplay() {
        var rng = SeededGenerator("split replay")
        var stream: [(SubscriberEvent, Int64)] = []
        var now = Self.t0
        for k in 0..<1_500 {
            now += Int64.random(in: 0...(Self.day / 2), using: &rng)
            stream.append((Self.randomEvent(&rng, now: now, id: k), now))
        }
        var whole = WindowedState()
        let outcomes = stream.map { whole.apply($0.0, now: $0.1) }
        for _ in 0..<25 {
            let split = Int.random(in: 0...stream.count, using: &rng)
            var first = WindowedState()
            var got = stream[..<split].map { first.apply($0.0, now: $0.1) }
            var second = first  // the snapshot
            got += stream[split...].map { second.apply($0.0, now: $0.1) }
            #expect(got == outcomes, "split at \(split)")
            #expect(second == whole, "split at \(split)")
        }
    }

    @Test("a bill far above the usual is a bill shock")
    func billShock() {
        var state = WindowedState()
        var now = Self.t0
        for _ in 0..<4 {
            _ = state.apply(Self.event(.bill, at: now, value: 30), now: now)
            now += 30 * Self.day
        }
        let normal = state.apply(Self.event(.bill, at: now, value: 40), now: now)
        #expect(!normal.billShock && normal.usualMonthlyRevenue == 30)
        now += 30 * Self.day
        let shock = state.apply(Self.event(.bill, at: now, value: 95), now: now)
        #expect(shock.billShock)
        #expect(shock.writes.contains { $0.feature == "arpu_30d" })
    }

    @Test("non-windowed updates: balance, tickets, contract")
    func plainUpdates() {
        var state = WindowedState()
        let binding = ProfileSchemaBinding()
        var profile = [Float](repeating: .nan, count: FeatureCatalogue.count)
        let b = FeatureCatalogue.index(of: "balance")!, t = FeatureCatalogue.index(of: "open_tickets")!
        let c = FeatureCatalogue.index(of: "days_to_contract_end")!
        for (e, v) in [(EventType.balance, 12.5), (.topup, 10), (.ticketOpened, nil), (.ticketClosed, nil), (.ticketClosed, nil), (.contractRenewed, nil)] as [(EventType, Double?)] {
            let skipped = binding.apply(state.apply(Self.event(e, at: Self.t0, value: v), now: Self.t0).writes, to: &profile)
            #expect(skipped == (e == .topup ? 1 : 0))  // days_since_last_topup is not in the schema
        }
        #expect(profile[b] == 22.5 && profile[t] == 0 && profile[c] == Float((24 * EventCatalogue.daysPerMonth).rounded()))
    }

    @Test("bytes per subscriber")
    func bytes() {
        let empty = WindowedState.bytes(sparseEntries: 0), typical = WindowedState.bytes(sparseEntries: 8)
        print("windowed state: \(empty) bytes per subscriber without rare events, \(typical) with 8 sparse entries, \(MemoryLayout<WindowedState>.size) inline")
        #expect(WindowedState().bytes == empty)
        #expect(empty <= 1_200 && typical <= 1_300)
        var state = WindowedState()
        for k in 0..<8 { _ = state.apply(Self.event(.complaint, at: Self.t0 + Int64(k) * Self.day), now: Self.t0 + Int64(k) * Self.day) }
        #expect(state.sparse.count == 8)
        #expect(state.bytes >= typical)
    }
}
