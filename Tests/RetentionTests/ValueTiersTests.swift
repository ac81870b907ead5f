import Foundation
import Retention
import Testing
import TestSupport

@Suite("Value tiers")
struct ValueTiersTests {
    /// The nearest-rank quantile of `sorted`.
    static func exact(_ sorted: [Double], _ q: Double) -> Double {
        sorted[max(1, Int((q * Double(sorted.count)).rounded(.up))) - 1]
    }

    static func sample(_ n: Int, _ rng: inout SeededGenerator) -> [Double] {
        (0..<n).map { _ in
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: 0  // no revenue
            case 1: Double.random(in: 0.02...5, using: &rng)
            default: exp(Double.random(in: 3...9, using: &rng))  // lognormal-ish V, 20 to 8000
            }
        }
    }

    @Test("quantiles are within the documented relative precision of the exact ones")
    func precision() {
        var rng = SeededGenerator("value histogram precision")
        let values = Self.sample(50_000, &rng)
        var h = ValueHistogram()
        for v in values { h.add(v) }
        let sorted = values.sorted()
        #expect(ValueHistogram.relativePrecision < 0.006)
        for q in [0.0, 0.01, 0.05, 0.1, 0.2, 0.3333, 0.5, 0.6667, 0.9, 0.99, 1] {
            let want = Self.exact(sorted, q), got = h.quantile(q)
            #expect(abs(got - want) <= ValueHistogram.relativePrecision * want * (1 + 1e-9), "q \(q): \(got) vs \(want)")
        }
        #expect(h.count == 50_000)
        #expect(h.zeros == UInt64(values.filter { $0 == 0 }.count))
    }

    @Test("merging shards' histograms equals the histogram of the whole, also through the wire form")
    func merge() throws {
        var rng = SeededGenerator("value histogram merge")
        let values = Self.sample(20_000, &rng)
        var whole = ValueHistogram(), merged = ValueHistogram()
        for v in values { whole.add(v) }
        for shard in 0..<4 {
            var part = ValueHistogram()
            for (i, v) in values.enumerated() where i % 4 == shard { part.add(v) }
            merged.merge(try ValueHistogram(encodedBytes: part.encodedBytes))
        }
        #expect(merged == whole)
        #expect(try ValueHistogram(encoded: whole.encoded) == whole)
    }

    @Test("a wrong wire form is refused")
    func badWire() {
        #expect(throws: ValueHistogramError.self) { try ValueHistogram(encoded: [1, 2, 3]) }
        var words = ValueHistogram().encoded
        words[0] ^= 1
        #expect(throws: ValueHistogramError.self) { try ValueHistogram(encoded: words) }
        #expect(throws: ValueHistogramError.self) { try ValueHistogram(encodedBytes: [1, 2, 3]) }
    }

    @Test("tiers split at the cuts; a value equal to a cut and every zero stay low")
    func tiers() {
        let t = ValueTiers(cuts: [100, 200])
        #expect([0, 99, 100, 100.5, 200, 201, .infinity].map { t.tier(of: $0) } == [0, 0, 0, 1, 1, 2, 2])
        #expect(t.tier(of: .nan) == 0 && t.count == 3)
        // 40% without revenue: the lower tercile cut is 0 and holds every zero, not some of them.
        var h = ValueHistogram()
        for i in 0..<1_000 { h.add(i < 400 ? 0 : Double(i)) }
        let fromHistogram = ValueTiers(histogram: h, quantiles: [0.3333, 0.6667])
        #expect(fromHistogram.cuts[0] == 0)
        #expect(fromHistogram.tier(of: 0) == 0 && fromHistogram.tier(of: 500) == 1 && fromHistogram.tier(of: 999) == 2)
    }

    @Test("terciles from the histogram put a third of the population in each tier, to the bin precision")
    func terciles() {
        var rng = SeededGenerator("value terciles")
        let values = (0..<30_000).map { _ in exp(Double.random(in: 2...8, using: &rng)) }
        var h = ValueHistogram()
        for v in values { h.add(v) }
        let t = ValueTiers(histogram: h, quantiles: [1.0 / 3, 2.0 / 3])
        var counts = [0, 0, 0]
        for v in values { counts[t.tier(of: v)] += 1 }
        for c in counts { #expect(abs(Double(c) / 30_000 - 1.0 / 3) < 0.01, "\(counts)") }
    }
}
