import Foundation
import Testing
import TestSupport
@testable import SubscriberEvents
import SubscriberProfiles
import WireFormat

/// The wire form of the windowed state, which travels with a shard to another worker.
@Suite("WindowedStateCoding")
struct WindowedStateCodingTests {
    static let day = WindowedStateSeedingTests.day

    static func seeded(_ n: Int) -> [WindowedState] {
        WindowedStateSeedingTests.profiles(n).map { WindowedState.seeded(from: $0, featureNames: WindowedStateSeedingTests.names, day: day) }
    }

    /// States after a random history of `events` events (some late, some ahead, rare long jumps).
    static func afterEvents(_ rng: inout SeededGenerator, count: Int, events: Int) -> [WindowedState] {
        var out: [WindowedState] = []
        for _ in 0..<count {
            var state = WindowedState()
            var now = WindowedStateTests.t0
            for k in 0..<events {
                now += Int.random(in: 0..<100, using: &rng) == 0 ? Int64.random(in: 0...(100 * Timestamp.millisPerDay), using: &rng)
                                                                 : Int64.random(in: 0...(Timestamp.millisPerDay / 3), using: &rng)
                _ = state.apply(WindowedStateTests.randomEvent(&rng, now: now, id: k), now: now)
            }
            out.append(state)
        }
        return out
    }

    /// Decodes `bytes`; when they are a state, checks that it is a valid one: it encodes to the
    /// same bytes (the format is canonical), its features are finite and it takes an event.
    static func decodeOrThrow(_ bytes: [UInt8]) -> Bool {
        guard let state = try? WindowedState.decode(bytes) else { return false }
        #expect(state.wireBytes() == bytes)
        #expect(state.windowedFeatures().allSatisfy { if case .set(let v) = $0.operation { v.isFinite } else { false } })
        if state.today != .min, state.today > .min + 400, state.today < .max - 2 {
            var next = state
            let at = Int64(state.today) * Timestamp.millisPerDay
            #expect(next.apply(SubscriberEvent(eventID: "x", subscriberID: 1, type: .complaint, at: at), now: at).applied)
        }
        return true
    }

    @Test("encode → decode gives the same state: empty, seeded, after random events")
    func roundTrip() throws {
        var rng = SeededGenerator("windowed state round trip")
        let states = [WindowedState()] + Self.seeded(400) + Self.afterEvents(&rng, count: 60, events: 300)
        for state in states {
            let bytes = state.wireBytes()
            let back = try WindowedState.decode(bytes)
            #expect(back == state)
            #expect(back.wireBytes() == bytes && state.encodedBytes == bytes.count)
        }
        #expect(WindowedState().encodedBytes == 3)
        // Within an array, as a shard's states travel.
        let batch = Array(states.prefix(50))
        #expect(try [WindowedState].decode(batch.wireBytes()) == batch)
    }

    /// The cluster's lifecycle over the event generator's stream: each subscriber's state is
    /// seeded from their profile on their first event, then takes their events.
    static func lived(subscribers n: Int, events: Int) -> [WindowedState] {
        var profiles: [[Float]] = []
        SyntheticBase(seed: 1).generate(0..<n) { _, p, _ in profiles.append(Array(p)) }
        var generator = EventGenerator(.init(subscribers: n, events: events, seed: 1))
        var states = [WindowedState?](repeating: nil, count: n)
        let firstID = generator.options.firstID
        generator.generate { e in
            let i = Int(e.subscriberID - firstID)
            var state = states[i] ?? WindowedState.seeded(from: profiles[i], day: e.day)
            _ = state.apply(e, now: e.at)
            states[i] = state
        }
        return states.compactMap { $0 }
    }

    @Test("encoded size of typical states")
    func size() throws {
        var rng = SeededGenerator("windowed state size")
        func median(_ xs: [Int]) -> Int { xs.sorted()[xs.count / 2] }
        let seeded = Self.seeded(400).map(\.encodedBytes)
        let lived = Self.lived(subscribers: 300, events: 30_000)
        for state in lived { #expect(try WindowedState.decode(state.wireBytes()) == state) }
        let streamed = Self.afterEvents(&rng, count: 40, events: 300).map(\.encodedBytes)
        let memory = WindowedState.bytes(sparseEntries: 8)
        print("windowed state on the wire: seeded median \(median(seeded)) bytes (max \(seeded.max()!)), seeded then the generator's stream median \(median(lived.map(\.encodedBytes))), after 300 random events of every type median \(median(streamed)); in memory \(memory)")
        #expect(median(seeded) < 600 && seeded.max()! < 1_000)
        #expect(median(streamed) < memory)
    }

    @Test("truncated at every cut point, the bytes throw")
    func truncation() {
        var rng = SeededGenerator("windowed state truncation")
        let states = [WindowedState()] + Self.seeded(6) + Self.afterEvents(&rng, count: 4, events: 200)
        for state in states {
            let bytes = state.wireBytes()
            for cut in 0..<bytes.count {
                #expect(throws: WireError.self) { try WindowedState.decode(Array(bytes[..<cut])) }
            }
        }
    }

    @Test("random byte flips and garbage throw or decode to a valid state, never crash")
    func corruption() {
        var rng = SeededGenerator("windowed state corruption")
        let states = Self.seeded(10) + Self.afterEvents(&rng, count: 10, events: 200)
        var decoded = 0, thrown = 0
        for state in states {
            let bytes = state.wireBytes()
            for _ in 0..<150 {
                var bad = bytes
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    bad[Int.random(in: 0..<bad.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
                if Self.decodeOrThrow(bad) { decoded += 1 } else { thrown += 1 }
            }
        }
        for _ in 0..<500 {
            let garbage = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Self.decodeOrThrow(garbage) { decoded += 1 } else { thrown += 1 }
        }
        print("corrupted windowed states: \(decoded) decoded to valid states, \(thrown) refused")
        #expect(thrown > 0)
    }

    /// A frame with version 1, `present` and `body`.
    static func frame(_ present: UInt16, _ body: (inout WireWriter) -> Void = { _ in }) -> [UInt8] {
        var w = WireWriter()
        w.writeFixed(UInt8(1))
        w.writeFixed(present)
        body(&w)
        return w.bytes
    }

    static func withToday(_ present: UInt16, _ body: @escaping (inout WireWriter) -> Void) -> [UInt8] {
        frame(present | 1) { w in w.writeFixed(day); body(&w) }
    }

    static let hostile: [(String, [UInt8])] = [
        ("unknown version", [2, 0, 0]),
        ("unknown part", frame(1 << 10)),
        ("parts without today", frame(1 << 3) { $0.writeFixed(UInt32(1)) }),
        ("today Int32.min", frame(1) { $0.writeFixed(Int32.min) }),
        ("zero mask", withToday(1 << 3) { $0.writeFixed(UInt32(0)) }),
        ("last activity before Int32.min", frame(3) { $0.writeFixed(Int32.min + 5); $0.writeLength(5) }),
        ("overlong age", withToday(1 << 1) { w in w.writeFixed(UInt8(0x81)); w.writeFixed(UInt8(0)) }),
        ("age of six bytes", withToday(1 << 1) { w in for _ in 0..<5 { w.writeFixed(UInt8(0xFF)) }; w.writeFixed(UInt8(1)) }),
        ("ring longer than its horizon", withToday(1 << 7) { w in w.writeLength(31); for _ in 0..<4 { w.writeFixed(UInt8(0xFF)) } }),
        ("empty ring marked present", withToday(1 << 5) { $0.writeLength(0) }),
        ("ring bit beyond its days", withToday(1 << 5) { w in w.writeLength(2); w.writeFixed(UInt8(0b110)); w.writeLength(1) }),
        ("ring's oldest day empty", withToday(1 << 5) { w in w.writeLength(2); w.writeFixed(UInt8(0b01)); w.writeLength(1) }),
        // Buckets go as zigzag differences: 2v for an increase of v, 2v − 1 for a decrease.
        ("zero bucket", withToday(1 << 5) { w in w.writeLength(1); w.writeFixed(UInt8(1)); w.writeLength(0) }),
        ("negative bucket", withToday(1 << 5) { w in w.writeLength(2); w.writeFixed(UInt8(0b11)); w.writeLength(2 * 3); w.writeLength(2 * 4 - 1) }),
        ("bucket above UInt16", withToday(1 << 5) { w in w.writeLength(1); w.writeFixed(UInt8(1)); w.writeLength(2 * 65_536) }),
        ("huge sparse count", withToday(1 << 9) { w in w.writeLength(1 << 40) }),
        ("zero sparse count", withToday(1 << 9) { w in w.writeLength(0) }),
        ("sparse ring series", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(0); w.writeFixed(Series.calls.rawValue | 0x80) }),
        ("sparse unknown series", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(0); w.writeFixed(UInt8(99)) }),
        ("sparse beyond horizon", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(30); w.writeFixed(Series.supportCalls.rawValue | 0x80) }),
        ("sparse NaN amount", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(0); w.writeFixed(Series.revenue.rawValue); w.writeFixed(Float.nan.bitPattern) }),
        ("sparse negative amount", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(0); w.writeFixed(Series.revenue.rawValue); w.writeFixed(Float(-2).bitPattern) }),
        ("sparse 1 not as a tag", withToday(1 << 9) { w in w.writeLength(1); w.writeLength(0); w.writeFixed(Series.complaints.rawValue); w.writeFixed(Float(1).bitPattern) }),
        ("sparse out of order", withToday(1 << 9) { w in
            w.writeLength(2)
            w.writeLength(3); w.writeFixed(Series.complaints.rawValue | 0x80)
            w.writeLength(4); w.writeFixed(Series.complaints.rawValue | 0x80)
        }),
        ("sparse repeated", withToday(1 << 9) { w in
            w.writeLength(2)
            for _ in 0..<2 { w.writeLength(3); w.writeFixed(Series.complaints.rawValue | 0x80) }
        }),
        ("trailing bytes", frame(0) + [0]),
    ]

    @Test("hostile frames throw WireError", arguments: hostile.indices)
    func hostileFrames(index: Int) {
        let (name, bytes) = Self.hostile[index]
        #expect(throws: WireError.self, "\(name)") { try WindowedState.decode(bytes) }
    }

    @Test("the hostile frames' well-formed neighbours decode")
    func wellFormed() throws {
        let complaint = Self.withToday(1 << 9) { w in w.writeLength(1); w.writeLength(3); w.writeFixed(Series.complaints.rawValue | 0x80) }
        let state = try WindowedState.decode(complaint)
        #expect(state.windowedValue(.count(.complaints, days: 90)) == 1 && state.today == Self.day)
        let ring = Self.withToday(1 << 5) { w in w.writeLength(3); w.writeFixed(UInt8(0b110)); w.writeLength(2 * 65_535); w.writeLength(2 * 65_530 - 1) }
        let calls = try WindowedState.decode(ring)
        #expect(calls.ringValue(.calls, age: 1) == 65_535 && calls.ringValue(.calls, age: 2) == 5 && calls.sum(.calls, ages: 0..<120) == 65_540)
    }
}
