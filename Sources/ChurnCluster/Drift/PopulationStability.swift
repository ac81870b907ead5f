import Foundation

/// The population stability index (PSI) of a feature or of the score: how far a job's population
/// has moved from the one a model version was first scored on.
///
/// Bins (docs/models.md, "Drift"): a feature's bins are cut at the distinct deciles of its
/// reference sample, `edges` e₀ < e₁ < … < e_{k−1}, giving the value bins (−∞, e₀], (e₀, e₁], …,
/// (e_{k−1}, +∞) and one more bin for missing values (NaN): k + 2 bins. The score's bins are the
/// job summary's 20 equal-width bins of the probability. PSI = Σᵢ (pᵢ − qᵢ)·ln(pᵢ / qᵢ) over the bins,
/// p the reference's shares and q the job's, an empty bin on one side filled as Evidently fills it
/// (see `psi`), so it weighs without dividing by zero. Pure: no I/O.
public enum PopulationStability {
    /// Deciles at which a feature's bins are cut (of the finite sampled values).
    public static let quantiles: [Double] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    /// The share a bin with no subscribers counts as (Evidently's choice).
    public static let emptyShare = 0.0001

    /// What a PSI calls for: below 0.1 stable, from 0.1 watch, from 0.25 act (the thresholds
    /// Evidently and most banks use).
    public enum Level: String, Sendable, Codable, CaseIterable, Comparable {
        case stable, watch, act

        public init(psi: Double) {
            self = psi >= 0.25 ? .act : psi >= 0.1 ? .watch : .stable
        }

        private var rank: Int {
            switch self {
            case .stable: 0
            case .watch: 1
            case .act: 2
            }
        }

        public static func < (a: Level, b: Level) -> Bool {
            a.rank < b.rank
        }
    }

    /// A feature's bin edges from a sample of its values: the distinct deciles (each the smallest
    /// sampled value with at least that share of the non-missing sample at or below it). No
    /// non-missing value: no edges (one value bin and the missing bin).
    public static func edges(sample: [Float]) -> [Float] {
        // Infinities are no edges (a shard refuses non-finite edges): they fall in the outer bins.
        let values = sample.filter { $0.isFinite }.sorted()
        guard !values.isEmpty else { return [] }
        var out: [Float] = []
        for q in quantiles {
            let rank = max(0, Int((q * Double(values.count)).rounded(.up)) - 1)
            let v = values[min(rank, values.count - 1)]
            if out.last != v { out.append(v) }
        }
        return out
    }

    /// Bins of a feature with `edges`: value bins and the missing bin.
    public static func binCount(edges: Int) -> Int { edges + 2 }

    /// The bin of `value`: the first edge at or above it, past the last edge the last value bin,
    /// NaN the missing bin (the last).
    @inline(__always)
    public static func bin(_ value: Float, edges: UnsafeBufferPointer<Float>) -> Int {
        if value.isNaN { return edges.count + 1 }
        var lo = 0, hi = edges.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if value <= edges[mid] { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// PSI of `current` against `reference` (bin counts of the same bins). Bins empty on both
    /// sides are left out; a bin empty on one side counts as a share of 0.0001, or of a millionth
    /// of that side's smallest share when that is 0.0001 or less (Evidently's rule, so the two
    /// agree on the same bins).
    /// - Returns: nil when the bins differ in number or either side is empty.
    public static func psi(reference: [Int64], current: [Int64]) -> Double? {
        guard reference.count == current.count, !reference.isEmpty,
              reference.allSatisfy({ $0 >= 0 }), current.allSatisfy({ $0 >= 0 }) else { return nil }
        let kept = reference.indices.filter { reference[$0] > 0 || current[$0] > 0 }
        // Summed as Double: counts read back from PostgreSQL cannot overflow an integer sum.
        let r = kept.reduce(0.0) { $0 + Double(reference[$1]) }, c = kept.reduce(0.0) { $0 + Double(current[$1]) }
        guard r > 0, c > 0 else { return nil }
        let p = shares(kept.map { reference[$0] }, total: r), q = shares(kept.map { current[$0] }, total: c)
        var sum = 0.0
        for i in p.indices { sum += (p[i] - q[i]) * log(p[i] / q[i]) }
        return sum.isFinite ? sum : nil
    }

    /// Each bin's share of `total`, empty bins filled as Evidently fills them.
    private static func shares(_ counts: [Int64], total: Double) -> [Double] {
        let raw = counts.map { Double($0) / total }
        let smallest = raw.filter { $0 > 0 }.min() ?? emptyShare
        let fill = smallest <= emptyShare ? smallest / 1e6 : emptyShare
        return raw.map { $0 == 0 ? fill : $0 }
    }
}
