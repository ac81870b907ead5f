import Foundation
import Testing
import TestSupport
@testable import SubscriberEvents
import SubscriberProfiles

/// The windowed state a subscriber starts from, seeded from their imported profile.
@Suite("Windowed state seeding")
struct WindowedStateSeedingTests {
    /// 2026-12-01, the event generator's first day.
    static let day: Int32 = 20_788
    /// The default schema with the top-up recency it lacks, so that it is seeded too.
    static let names = FeatureCatalogue.names + ["days_since_last_topup"]

    /// `n` profiles of the synthetic base (seed 5), each with a days-since-last-top-up appended.
    static func profiles(_ n: Int) -> [[Float]] {
        var out: [[Float]] = []
        SyntheticBase(seed: 5).generate(0..<n) { id, p, _ in out.append(Array(p) + [Float(id % 45)]) }
        return out
    }

    static func features(_ state: WindowedState) -> [String: Double] {
        var out: [String: Double] = [:]
        for w in state.windowedFeatures() { if case .set(let v) = w.operation { out[w.feature] = v } }
        return out
    }

    /// Every windowed update of the catalogue, one per feature.
    static let windowed: [EventCatalogue.Update] = {
        var seen = Set<String>(), out: [EventCatalogue.Update] = []
        for spec in EventCatalogue.specs {
            for u in spec.updates where WindowedState().windowedValue(u.kind) != nil || { if case .daysSinceLast = u.kind { true } else { false } }() {
                if seen.insert(u.feature).inserted { out.append(u) }
            }
        }
        return out
    }()

    /// The 30-day feature of each series (what its trend divides).
    static let monthly: [Series: String] = {
        var out: [Series: String] = [:]
        for u in windowed {
            switch u.kind {
            case .count(let s, 30), .sum(let s, 30): out[s] = u.feature
            default: break
            }
        }
        return out
    }()

    /// How far a seeded feature may read from the imported value `v` (the documented rounding):
    /// returns nil when it reads within it, else what went wrong.
    static func check(_ u: EventCatalogue.Update, imported v: Double?, profile: [String: Double], state: WindowedState) -> String? {
        let read = state.windowedValue(u.kind)
        func within(_ expected: Double, _ tolerance: Double) -> String? {
            guard let read, abs(read - expected) <= tolerance else { return "\(u.feature) reads \(read ?? .nan), imported \(v ?? .nan), expected \(expected) ± \(tolerance)" }
            return nil
        }
        switch u.kind {
        case .daysSinceLast:
            guard let v else { return read == nil ? nil : "\(u.feature) reads \(read!) for a missing value" }
            return within(max(0, v.rounded()), 0)
        case .count:
            return within(max(0, (v ?? 0).rounded()), 0)
        case .sum(let s, _):
            // Tenths rings round to a tenth; Float entries to a Float rounding.
            let v = max(0, v ?? 0)
            return WindowedState.isRing(s) ? within(v, 0.05 + 1e-6 * v) : within(v, 1e-6 * max(1, v))
        case .distinctDays(_, let d):
            return within(min(Double(d), max(0, (v ?? 0).rounded())), 0)
        case .trend(let s):
            guard let v, let monthly = monthly[s], profile[monthly] != nil else { return within(0, 0) }
            let q = WindowedState.quantaPerUnit(s)
            let last = (state.sum(s, ages: 0..<30) * q).rounded(), before = (state.sum(s, ages: 30..<120) * q).rounded()
            if last == 0 { return within(v <= -0.5 ? -1 : 0, 0) }
            if s == .revenue { return within(max(v, -0.99), 1e-5 * (1 + abs(v))) }
            return within(max(v, -0.99), 1.5 * last / (before * max(before - 0.5, 0.5)) + 1e-9)
        case .ratio(_, let d, let days):
            let calls = state.sum(d, ages: 0..<days)
            return calls == 0 ? within(0, 0) : within(min(1, max(0, v ?? 0)), 0.5 / calls + 1e-9)
        default:
            return "\(u.feature) is not windowed"
        }
    }

    @Test("seeded from the synthetic base, every windowed feature reads back within its rounding")
    func reproducesProfiles() {
        #expect(Self.windowed.count == 23)
        var failures = 0
        for p in Self.profiles(1_500) {
            let state = WindowedState.seeded(from: p, featureNames: Self.names, day: Self.day)
            #expect(state.today == Self.day)
            var profile: [String: Double] = [:]
            for (k, name) in Self.names.enumerated() where !p[k].isNaN { profile[name] = Double(p[k]) }
            for u in Self.windowed {
                if let problem = Self.check(u, imported: profile[u.feature], profile: profile, state: state) {
                    failures += 1
                    if failures <= 20 { Issue.record(Comment(rawValue: problem)) }
                }
            }
        }
        #expect(failures == 0)
    }

    @Test("the brief's example: 45 calls with a trend of −0.25 are 45 calls in 30 days and 180 in the 90 before")
    func callsExample() {
        var p = [Float](repeating: .nan, count: FeatureCatalogue.count)
        p[FeatureCatalogue.index(of: "calls_out_30d")!] = 45
        p[FeatureCatalogue.index(of: "calls_trend_3m")!] = -0.25
        p[FeatureCatalogue.index(of: "active_days_30d")!] = 12
        p[FeatureCatalogue.index(of: "days_since_last_activity")!] = 3
        p[FeatureCatalogue.index(of: "complaints_90d")!] = 1
        let state = WindowedState.seeded(from: p, day: Self.day)
        #expect(state.sum(.calls, ages: 0..<30) == 45 && state.sum(.calls, ages: 30..<120) == 180)
        // 45 = 30·1 + 15: every day has one call, every other day (the midpoints) two.
        #expect((0..<30).map { state.ringValue(.calls, age: $0) }.allSatisfy { $0 == 1 || $0 == 2 })
        #expect((30..<120).allSatisfy { state.ringValue(.calls, age: $0) == 2 })
        #expect(state.windowedValue(.trend(.calls)) == -0.25)
        // The most recent active day is the last activity, 3 days ago.
        #expect(state.activeMask.trailingZeroBitCount == 3 && state.activeMask.nonzeroBitCount == 12)
        #expect(state.windowedValue(.daysSinceLast(.activeDays)) == 3)
        // One complaint in 90 days sits at the window's midpoint; nothing else is seeded.
        #expect(state.sparse == [.init(day: Self.day - 45, series: .complaints, amount: 1)])
        #expect(state.windowedValue(.sum(.dataMB, days: 30)) == 0 && state.windowedValue(.daysSinceLast(.topupDays)) == nil)
    }

    static let eventValues: [EventType: Double] = [.call: 3.5, .dataSession: 120.25, .topup: 10, .balance: 5, .bill: 35.5, .networkOutage: 2]

    @Test("the first event changes only the features it declares, counts by exactly its amount", arguments: EventType.allCases)
    func firstEvent(type: EventType) {
        let now = Int64(Self.day) * Timestamp.millisPerDay + Timestamp.millisPerDay / 2
        let spec = type.spec
        let declared = Set(spec.updates.map(\.feature))
        for p in Self.profiles(200) {
            var state = WindowedState.seeded(from: p, featureNames: Self.names, day: Self.day)
            let before = Self.features(state)
            let event = SubscriberEvent(eventID: "first", subscriberID: 1, type: type, at: now, value: Self.eventValues[type])
            let outcome = state.apply(event, now: now)
            #expect(outcome.applied && state.today == Self.day)
            let after = Self.features(state)
            for u in Self.windowed {
                let b = before[u.feature], a = after[u.feature]
                guard declared.contains(u.feature) else {
                    #expect(a == b, "\(type.rawValue) changed \(u.feature) from \(b ?? .nan) to \(a ?? .nan)")
                    continue
                }
                let fed = spec.feeds.first { f in
                    switch u.kind {
                    case .count(let s, _), .sum(let s, _), .distinctDays(let s, _), .daysSinceLast(let s): f.series == s
                    default: false
                    }
                }
                switch u.kind {
                case .count, .sum:
                    let added = WindowedState.quantized(fed!.series, fed!.amount ?? event.value)
                    #expect(abs((a ?? .nan) - (b ?? 0) - added) <= 1e-6 * max(1, b ?? 0), "\(type.rawValue): \(u.feature) \(b ?? .nan) → \(a ?? .nan)")
                case .distinctDays:
                    #expect(a! - b! == 0 || a! - b! == 1, "\(u.feature)")
                case .daysSinceLast:
                    #expect(a == 0, "\(u.feature)")
                default:
                    break
                }
            }
        }
    }

    @Test("a complaint adds exactly one to complaints_90d and leaves the calls alone")
    func complaint() {
        let profiles = Self.profiles(50)
        let k = FeatureCatalogue.index(of: "complaints_90d")!, c = FeatureCatalogue.index(of: "calls_out_30d")!
        for p in profiles where !p[c].isNaN {
            var state = WindowedState.seeded(from: p, featureNames: Self.names, day: Self.day)
            let now = Int64(Self.day) * Timestamp.millisPerDay + 1
            _ = state.apply(SubscriberEvent(eventID: "c", subscriberID: 1, type: .complaint, at: now), now: now)
            let f = Self.features(state)
            #expect(f["complaints_90d"] == Double(p[k]) + 1 && f["calls_out_30d"] == Double(p[c]))
        }
    }

    @Test("deterministic: the same profile and day give the same state")
    func determinism() {
        for p in Self.profiles(100) {
            let a = WindowedState.seeded(from: p, featureNames: Self.names, day: Self.day)
            let b = WindowedState.seeded(from: p, featureNames: Self.names, day: Self.day)
            let c = WindowedState.seeded(from: p, binding: ProfileSchemaBinding(featureNames: Self.names), day: Self.day)
            #expect(a == b && a == c)
        }
    }

    @Test("missing or absent features seed nothing")
    func missing() {
        let empty = [Float](repeating: .nan, count: FeatureCatalogue.count)
        let state = WindowedState.seeded(from: empty, day: Self.day)
        #expect(state == WindowedState(today: Self.day, lastActivityDay: .min, lastTopupDay: .min))
        #expect(Self.features(state).values.allSatisfy { $0 == 0 })
        #expect(Self.features(state)["days_since_last_activity"] == nil)
        // A schema without the usage columns, and a profile shorter than its schema.
        let p = Self.profiles(1)[0]
        let partial = WindowedState.seeded(from: Array(p[..<15]), featureNames: Self.names, day: Self.day)
        #expect(partial.sum(.calls, ages: 0..<120) == 0 && partial.windowedValue(.sum(.revenue, days: 30))! > 0)
        #expect(WindowedState.seeded(from: p, featureNames: ["x"], day: Self.day) == state)
        // A trend without its 30-day count seeds nothing.
        var trendOnly = empty
        trendOnly[FeatureCatalogue.index(of: "data_trend_3m")!] = -0.9
        #expect(WindowedState.seeded(from: trendOnly, day: Self.day) == state)
    }

    @Test("hostile values (NaN, −1, 1e30, ±∞, odd days) are clamped, never crash, and give a valid state")
    func hostile() throws {
        var rng = SeededGenerator("hostile seeding")
        let values: [Float] = [.nan, -1, 1e30, .infinity, -.infinity, 0, .greatestFiniteMagnitude, -0.0, 1e-30, 0.5, 7, 29.6, -1e30]
        let days: [Int32] = [Self.day, .min, .min + 1, .min + 200, .max, 0, -5]
        for k in 0..<300 {
            let p = (0..<Self.names.count).map { _ in k < values.count ? values[k] : values.randomElement(using: &rng)! }
            let day = days[k % days.count]
            let state = WindowedState.seeded(from: p, featureNames: Self.names, day: day)
            #expect(state.today == day)
            #expect(Self.features(state).values.allSatisfy { $0.isFinite })
            #expect(try WindowedState.decode(state.wireBytes()) == state)
            // An event on that day applies.
            var after = state
            let at = Int64(day) * Timestamp.millisPerDay
            _ = after.apply(SubscriberEvent(eventID: "h", subscriberID: 1, type: .call, at: at, value: 1), now: at)
        }
        // Huge counts fill each day to the rings' limit; a huge trend keeps one quantum before.
        let huge = [Float](repeating: 1e30, count: Self.names.count)
        let state = WindowedState.seeded(from: huge, featureNames: Self.names, day: Self.day)
        #expect(state.windowedValue(.count(.calls, days: 30)) == Double(30 * 65_535))
        #expect(state.windowedValue(.count(.complaints, days: 90)) == Double(90 * 65_535))
        #expect(state.windowedValue(.distinctDays(.activeDays, days: 30)) == 30)
        #expect(state.windowedValue(.sum(.revenue, days: 30)) == 1e9)
        #expect(state.sum(.calls, ages: 30..<120) == 1)
        #expect(state.windowedValue(.daysSinceLast(.activeDays)) == Double(WindowedState.maximumSeededAge))
        #expect(state.windowedValue(.ratio(.droppedCalls, over: .calls, days: 30)) == 1)
        // −1 everywhere: nothing counted, recency today, a trend of −1 with three calls before.
        let negative = WindowedState.seeded(from: [Float](repeating: -1, count: Self.names.count), featureNames: Self.names, day: Self.day)
        #expect(negative.windowedValue(.count(.calls, days: 30)) == 0 && negative.windowedValue(.trend(.calls)) == -1)
        #expect(negative.sum(.calls, ages: 30..<120) == 3 && negative.windowedValue(.daysSinceLast(.activeDays)) == 0)
    }
}
