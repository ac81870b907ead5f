import Foundation

/// A deterministic random source (SplitMix64 with a fixed seed): the datasets compared with
/// scikit-uplift are the same on every run, so a difference is reproducible without a seed.
struct FixedGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// One uplift dataset: per subscriber a ranking score, a treatment flag and whether they stayed.
struct UpliftDataset: Sendable, CustomStringConvertible {
    var name: String
    var scores: [Double]
    var treated: [Bool]
    var retained: [Bool]

    var description: String { name }

    /// A base where a hidden trait u makes subscribers persuadable, the score sees u through noise,
    /// and the treated stay more often the higher their u (with sleeping dogs at low u).
    /// - Parameters:
    ///   - levels: scores rounded to 1/levels (ties), nil for continuous scores.
    ///   - quality: how much of the score is u rather than noise (negative: an inverted model).
    static func synthetic(_ name: String, count: Int, treatedShare: Double, levels: Int?, quality: Double = 0.7,
                          seed: UInt64) -> UpliftDataset {
        var rng = FixedGenerator(seed: seed)
        var d = UpliftDataset(name: name, scores: [], treated: [], retained: [])
        for _ in 0..<count {
            let u = rng.uniform()
            var score = quality * u + (1 - abs(quality)) * rng.uniform()
            if let levels { score = (score * Double(levels)).rounded() / Double(levels) }
            let treated = rng.uniform() < treatedShare
            let stay = 0.8 + (treated ? 0.2 * (u - 0.3) : 0)
            d.scores.append(score)
            d.treated.append(treated)
            d.retained.append(rng.uniform() < stay)
        }
        return d
    }

    /// The cases compared with scikit-uplift: sizes from 12 to 100,000, heavy ties, tiny control
    /// groups, a model worse than random, all scores equal, and a top 30% without any control.
    static let all: [UpliftDataset] = [
        UpliftDataset(name: "hand-12-ties",
                      scores: [0.9, 0.9, 0.5, 0.5, 0.5, 0.2, 0.9, 0.1, 0.5, 0.2, 0.0, 0.0],
                      treated: [true, false, true, true, false, false, true, true, false, true, false, true],
                      retained: [true, false, true, false, true, true, true, false, false, true, true, false]),
        synthetic("three-levels-60", count: 60, treatedShare: 0.5, levels: 2, seed: 1),
        synthetic("tiny-control-200", count: 200, treatedShare: 0.95, levels: nil, seed: 2),
        synthetic("tiny-treated-150", count: 150, treatedShare: 0.06, levels: 10, seed: 3),
        synthetic("inverted-model-1000", count: 1000, treatedShare: 0.5, levels: nil, quality: -0.7, seed: 4),
        synthetic("two-decimals-5000", count: 5000, treatedShare: 0.7, levels: 100, seed: 5),
        synthetic("all-tied-500", count: 500, treatedShare: 0.5, levels: 1, seed: 6).withScores { _ in 0.5 },
        synthetic("continuous-100000", count: 100_000, treatedShare: 0.9, levels: nil, seed: 7),
        synthetic("ties-100000", count: 100_000, treatedShare: 0.5, levels: 1000, seed: 8),
        UpliftDataset(name: "no-control-at-top-20",
                      scores: (0..<20).map { Double(20 - $0) },
                      treated: (0..<20).map { $0 < 10 || $0 % 2 == 0 },
                      retained: (0..<20).map { $0 % 3 != 0 }),
    ]

    /// The same subscribers ranked by other scores.
    func withScores(_ score: (Double) -> Double) -> UpliftDataset {
        var d = self
        d.scores = scores.map(score)
        return d
    }

    /// `score,treatment,retained` lines with a header; scores printed so they read back exactly.
    var csv: String {
        var out = "score,treatment,retained\n"
        out.reserveCapacity(scores.count * 24)
        for i in scores.indices {
            out += "\(scores[i]),\(treated[i] ? 1 : 0),\(retained[i] ? 1 : 0)\n"
        }
        return out
    }
}
