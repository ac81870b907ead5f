import Foundation
import Retention
import Testing

@Suite("Control groups")
struct ControlGroupTests {
    @Test("the holdout share is within binomial tolerance over 100k ids", arguments: [0.05, 0.1, 0.5])
    func fraction(_ f: Double) {
        let g = ControlGroup(campaign: "winter-retention", fraction: f)
        let n = 100_000
        let held = (1...n).filter { g.contains(Int64($0)) }.count
        let sd = (Double(n) * f * (1 - f)).squareRoot()
        #expect(abs(Double(held) - Double(n) * f) < 4.5 * sd, "\(held) of \(n)")
    }

    @Test("the hash is the documented one: pinned values do not change between builds or runs")
    func pinned() {
        // FNV-1a 64 over "winter-retention", 0x00, id little-endian; splitmix64 finalizer (also checked
        // against an independent Python implementation for the pinned values below).
        func reference(_ name: String, _ id: Int64) -> UInt64 {
            var h: UInt64 = 14_695_981_039_346_656_037
            for b in Array(name.utf8) + [0] + withUnsafeBytes(of: id.littleEndian, Array.init) { h = (h ^ UInt64(b)) &* 1_099_511_628_211 }
            h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
            h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
            return h ^ (h >> 31)
        }
        let g = ControlGroup(campaign: "winter-retention", fraction: 0.1)
        for id: Int64 in [0, 1, 42, -1, 9_000_000_001, .max, .min] { #expect(g.hash(id) == reference("winter-retention", id)) }
        #expect(g.hash(1) == 0x8DF6_70B3_FF57_3234, "pinned: the holdout of a running campaign must never move")
        #expect(g.hash(42) == 0x48AD_45A3_206E_AA8A)
        #expect(g.draw(1) == Double(g.hash(1) >> 11) / 9_007_199_254_740_992)
        #expect(ControlGroup.isControl(campaign: "winter-retention", subscriberID: 1, fraction: 0.1) == (g.draw(1) < 0.1))
    }

    @Test("different campaigns hold out different subscribers; a larger fraction keeps the smaller's holdout")
    func independence() {
        let a = ControlGroup(campaign: "winter-retention", fraction: 0.1)
        let b = ControlGroup(campaign: "spring-retention", fraction: 0.1)
        let wider = ControlGroup(campaign: "winter-retention", fraction: 0.2)
        let ids = (1...50_000).map(Int64.init)
        let inA = Set(ids.filter(a.contains)), inB = Set(ids.filter(b.contains))
        let both = inA.intersection(inB).count
        // Independent draws overlap in about 1% of ids (500); the same draw would overlap 100%.
        #expect(both > 350 && both < 650, "\(both)")
        #expect(inA.isSubset(of: Set(ids.filter(wider.contains))))
        #expect(ids.filter(ControlGroup(campaign: "x", fraction: 0).contains).isEmpty)
    }
}
