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

    /// Each model active beside the served one, over the subscribers it scored (its segment's).
    private(set) var models: [String: ModelTally] = [:]

    /// Subscribers scored by each model active beside the served one.
    var perModel: [String: Int] { models.mapValues(\.subscribers) }

    /// The served model's figures in the form an active model's take (`scoring_job_models.summary`).
    var served: ModelTally.Figures {
        ModelTally.Figures(subscribers: subscribers, mean: mean, deciles: deciles, histogram: histogram, perBand: perBand)
    }

    /// Adds a shard's scores.
    mutating func add(_ scores: ShardScores) {
        let n = scores.count
        subscribers += n
        for other in scores.others {
            var tally = models.removeValue(forKey: other.name) ?? ModelTally()
            tally.add(other.probabilities.elements, bands: other.bands.elements)
            models[other.name] = tally
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
    var deciles: [Double] { Self.deciles(count: subscribers, fine: fine) }

    /// The 10th … 90th percentiles of `count` probabilities counted in `fine` (equal bins over
    /// [0, 1]), interpolated between the values at ranks ⌊f·(n−1)⌋ and ⌈f·(n−1)⌉ like
    /// PostgreSQL's `percentile_cont`, each taken as its bin's centre.
    static func deciles(count: Int, fine: [UInt32]) -> [Double] {
        guard count > 0, !fine.isEmpty else { return [] }
        let positions = (1...9).map { Double($0) / 10 * Double(count - 1) }
        var ranks: [Int] = []
        for p in positions { ranks += [Int(p.rounded(.down)), Int(p.rounded(.up))] }
        // The value at each 0-based rank, ranks ascending.
        var values: [Double] = []
        var seen = 0, bin = 0
        for rank in ranks {
            while bin < fine.count - 1 && seen + Int(fine[bin]) <= rank {
                seen += Int(fine[bin])
                bin += 1
            }
            values.append((Double(bin) + 0.5) / Double(fine.count))
        }
        return positions.enumerated().map { k, p in
            let low = values[2 * k], high = values[2 * k + 1]
            return low + (p - p.rounded(.down)) * (high - low)
        }
    }

    /// The bin of the score's histogram (`histogramBins`) that probability `p` counts in, as a
    /// job counts it.
    static func scoreBin(_ p: Float) -> Int { bin(Double(p), of: histogramBins) }

    static func bin(_ p: Double, of bins: Int) -> Int {
        guard p > 0 else { return 0 }  // NaN too (never produced, but never out of range)
        guard p < 1 else { return bins - 1 }  // 1 and +infinity (a decoded value is checked, but never trap here)
        return min(Int(p * Double(bins)), bins - 1)
    }
}

/// One model's figures over the subscribers it scored in a job (an active model's segment): count,
/// mean, the 20-bin histogram and the bands exactly; deciles from a 2^16-bin histogram (within
/// 2^-17 ≈ 7.6e-6), 256 KiB per model.
struct ModelTally: Sendable {
    static let fineBins = 1 << 16

    private(set) var subscribers = 0
    private var sum = 0.0
    private var fine = [UInt32](repeating: 0, count: fineBins)
    private(set) var histogram = [Int](repeating: 0, count: JobSummary.histogramBins)
    private(set) var perBand = [Int](repeating: 0, count: RiskBand.allCases.count)

    /// Adds a shard's scores of the model.
    mutating func add(_ probabilities: [Float], bands: [UInt8]) {
        subscribers += probabilities.count
        for p in probabilities {
            let v = Double(p)
            sum += v
            fine[JobSummary.bin(v, of: Self.fineBins)] &+= 1
            histogram[JobSummary.bin(v, of: JobSummary.histogramBins)] += 1
        }
        for b in bands where Int(b) < perBand.count { perBand[Int(b)] += 1 }
    }

    var figures: Figures {
        Figures(subscribers: subscribers, mean: subscribers == 0 ? 0 : sum / Double(subscribers),
                deciles: JobSummary.deciles(count: subscribers, fine: fine), histogram: histogram, perBand: perBand)
    }

    /// What `scoring_job_models.summary` stores of a model (the keys of the job's own summary).
    struct Figures: Sendable, Equatable {
        var subscribers: Int
        var mean: Double
        var deciles: [Double]
        var histogram: [Int]
        var perBand: [Int]

        /// As a JSON object: `subscribers`, `mean_probability`, `deciles`, `histogram`, `per_band`.
        var json: String {
            let bands = RiskBand.allCases.map { "\"\($0.description)\": \(Int($0.rawValue) < perBand.count ? perBand[Int($0.rawValue)] : 0)" }.joined(separator: ", ")
            let m = mean.isFinite ? mean : 0
            return "{\"subscribers\": \(subscribers), \"mean_probability\": \(m), \"deciles\": [" + deciles.map { String($0) }.joined(separator: ", ")
                + "], \"histogram\": [" + histogram.map { String($0) }.joined(separator: ", ") + "], \"per_band\": {" + bands + "}}"
        }
    }
}
