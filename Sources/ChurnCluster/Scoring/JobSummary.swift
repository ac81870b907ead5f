/// A rescoring job's summary, accumulated by the coordinator from the scores it writes, so that
/// publishing a job does not scan its 10M rows again (that scan, with the percentiles' sort, took
/// longer than writing them).
///
/// Count, mean, the 20-bin histogram and the counts per band and per region are exact. Deciles are
/// read from a 2^20-bin histogram of the probabilities, interpolated like PostgreSQL's
/// `percentile_cont` between the values at ranks ⌊f·(n−1)⌋ and ⌈f·(n−1)⌉, each taken as its
/// bin's centre: within 2^-21 (≈ 4.8e-7) of the exact figure, whatever the base's size, in 4 MiB.
struct JobSummary: Sendable {
    static let fineBins = 1 << 20
    static let histogramBins = 20

    private(set) var subscribers = 0
    private var sum = 0.0
    private var fine = [UInt32](repeating: 0, count: fineBins)
    private(set) var histogram = [Int](repeating: 0, count: histogramBins)
    private(set) var perBand = [Int](repeating: 0, count: RiskBand.allCases.count)
    /// Subscribers per region code (Int16, offset by 32768; -1 = unknown): a counter per code
    /// instead of a dictionary update per row.
    private var regionCounts = [Int](repeating: 0, count: 1 << 16)
    /// Subscribers per region code and risk band (4 counters per code, same offset).
    private var regionBandCounts = [Int](repeating: 0, count: (1 << 16) * RiskBand.allCases.count)
    /// The highest-risk subscribers so far, riskiest first (at most `topCount`).
    private(set) var top: [TopRisk] = []
    static let topCount = 10

    /// One of the riskiest subscribers: id, probability, band, region and reasons (model feature
    /// indices, -1 none) with their contributions.
    struct TopRisk: Sendable {
        var id: Int64
        var probability: Float
        var band: UInt8
        var region: Int16
        var reasons: [Int16]
        var contributions: [Float]
    }

    /// Subscribers scored by each model active beside the served one (its segment's).
    private(set) var perModel: [String: Int] = [:]
    /// Each active model's score histogram (`histogramBins`, as the served model's): its drift.
    private(set) var perModelHistogram: [String: [Int]] = [:]

    /// Adds a shard's scores.
    mutating func add(_ scores: ShardScores) {
        let n = scores.count
        subscribers += n
        for other in scores.others {
            perModel[other.name, default: 0] += other.count
            var h = perModelHistogram[other.name] ?? [Int](repeating: 0, count: Self.histogramBins)
            for p in other.probabilities.elements { h[Self.scoreBin(p)] += 1 }
            perModelHistogram[other.name] = h
        }
        scores.probabilities.elements.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let v = Double(p[i])
                sum += v
                fine[Self.bin(v, of: Self.fineBins)] &+= 1
                // PostgreSQL's least(width_bucket(p, 0, 1, 20), 20), zero-based.
                histogram[Self.bin(v, of: Self.histogramBins)] += 1
            }
        }
        for b in scores.bands.elements where Int(b) < perBand.count { perBand[Int(b)] += 1 }
        let p = scores.probabilities.elements
        for i in 0..<n where top.count < Self.topCount || p[i] > top[top.count - 1].probability {
            let entry = TopRisk(id: scores.ids.elements[i], probability: p[i], band: scores.bands.elements[i], region: scores.regions.elements[i],
                                reasons: Array(scores.reasons.elements[3 * i..<3 * i + 3]), contributions: Array(scores.contributions.elements[3 * i..<3 * i + 3]))
            top.insert(entry, at: top.firstIndex { $0.probability < entry.probability } ?? top.count)
            if top.count > Self.topCount { top.removeLast() }
        }
        for r in scores.regions.elements { regionCounts[Int(r) + 32768] += 1 }
        let bands = RiskBand.allCases.count
        for (r, b) in zip(scores.regions.elements, scores.bands.elements) where Int(b) < bands {
            regionBandCounts[(Int(r) + 32768) * bands + Int(b)] += 1
        }
    }

    /// Region code → subscribers, for the regions that have any (-1 = unknown).
    var perRegion: [Int16: Int] {
        var out: [Int16: Int] = [:]
        for (i, n) in regionCounts.enumerated() where n > 0 { out[Int16(i - 32768)] = n }
        return out
    }

    /// Region code → subscribers per risk band (low … very high), for the regions that have any.
    var perRegionBand: [Int16: [Int]] {
        let bands = RiskBand.allCases.count
        var out: [Int16: [Int]] = [:]
        for (i, n) in regionCounts.enumerated() where n > 0 {
            out[Int16(i - 32768)] = Array(regionBandCounts[i * bands..<(i + 1) * bands])
        }
        return out
    }

    var mean: Double { subscribers == 0 ? 0 : sum / Double(subscribers) }

    /// The 10th … 90th percentiles (none for an empty job).
    var deciles: [Double] {
        guard subscribers > 0 else { return [] }
        let positions = (1...9).map { Double($0) / 10 * Double(subscribers - 1) }
        var ranks: [Int] = []
        for p in positions { ranks += [Int(p.rounded(.down)), Int(p.rounded(.up))] }
        let values = valuesAt(sortedRanks: ranks)
        return positions.enumerated().map { k, p in
            let low = values[2 * k], high = values[2 * k + 1]
            return low + (p - p.rounded(.down)) * (high - low)
        }
    }

    /// The (approximate) value at each 0-based rank, ranks ascending.
    private func valuesAt(sortedRanks ranks: [Int]) -> [Double] {
        var out: [Double] = []
        var seen = 0, bin = 0
        for rank in ranks {
            while seen + Int(fine[bin]) <= rank {
                seen += Int(fine[bin])
                bin += 1
            }
            out.append((Double(bin) + 0.5) / Double(Self.fineBins))
        }
        return out
    }

    /// The bin of the score's histogram (`histogramBins`) that probability `p` counts in, as a
    /// job counts it.
    static func scoreBin(_ p: Float) -> Int { bin(Double(p), of: histogramBins) }

    private static func bin(_ p: Double, of bins: Int) -> Int {
        guard p > 0 else { return 0 }  // NaN too (never produced, but never out of range)
        guard p < 1 else { return bins - 1 }  // 1 and +infinity (a decoded value is checked, but never trap here)
        return min(Int(p * Double(bins)), bins - 1)
    }
}
