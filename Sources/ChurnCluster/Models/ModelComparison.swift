import WireFormat

/// `churngrid models compare`: the served model against another registered version over the
/// live base, both scored in the same pass on every shard (docs/models.md, "Compare"). The
/// probabilities are counted in fine histograms (`ComparisonHistograms.bins` equal bins of
/// [0, 1]) that shards merge; deciles, AUC and lift are read from them (exact up to one bin,
/// 1/65,536), and the top-decile agreement from a second pass that counts, with both models'
/// 90th-percentile thresholds, who is in each top decile and in both.
public enum ComparisonHistograms {
    public static let bins = 1 << 16

    @inline(__always)
    static func bin(_ p: Double) -> Int {
        guard p.isFinite else { return 0 }
        return min(bins - 1, max(0, Int(p * Double(bins))))
    }

    /// The probability below which `q` of the counted subscribers fall (the bin's upper edge).
    public static func quantile(_ h: [Int64], _ q: Double) -> Double {
        let total = h.reduce(0, +)
        guard total > 0 else { return .nan }
        let want = q * Double(total)
        var cumulative: Int64 = 0
        for (i, c) in h.enumerated() {
            cumulative += c
            if Double(cumulative) >= want { return Double(i + 1) / Double(bins) }
        }
        return 1
    }

    /// The bin edge whose scores at or above it come closest to the top `share` of the counted
    /// (tree models tie many subscribers at one score: a crowded bin at the cut goes in whole or
    /// not at all, whichever is nearer).
    public static func topCut(_ h: [Int64], share: Double) -> Double {
        let total = h.reduce(0, +)
        guard total > 0 else { return 1 }
        let target = share * Double(total)
        var above: Int64 = 0  // in the bins above i
        for i in stride(from: h.count - 1, through: 0, by: -1) {
            let with = above + h[i]
            if Double(with) >= target {
                let include = abs(Double(with) - target) <= abs(Double(above) - target)
                return Double(include ? i : i + 1) / Double(bins)
            }
            above = with
        }
        return 0
    }

    /// The area under the ROC curve of scores whose histograms are `positive` (churned) and
    /// `negative`: the chance a churner scores above a non-churner, ties (one bin) counted half.
    public static func auc(positive: [Int64], negative: [Int64]) -> Double? {
        let pos = positive.reduce(0, +), neg = negative.reduce(0, +)
        guard pos > 0, neg > 0 else { return nil }
        var below: Int64 = 0  // negatives in lower bins
        var sum = 0.0
        for i in 0..<min(positive.count, negative.count) {
            sum += Double(positive[i]) * (Double(below) + 0.5 * Double(negative[i]))
            below += negative[i]
        }
        return sum / (Double(pos) * Double(neg))
    }

    /// The churn rate among the labelled subscribers at or above `threshold`, over the rate of all labelled.
    public static func lift(positive: [Int64], negative: [Int64], threshold: Double) -> Double? {
        let pos = positive.reduce(0, +), neg = negative.reduce(0, +)
        guard pos + neg > 0, pos > 0 else { return nil }
        let from = bin(threshold)
        let topPos = positive[from...].reduce(0, +), topNeg = negative[from...].reduce(0, +)
        guard topPos + topNeg > 0 else { return nil }
        return (Double(topPos) / Double(topPos + topNeg)) / (Double(pos) / Double(pos + neg))
    }
}

/// What the coordinator asks each worker: the version to compare with, the outcomes of the
/// worker's subscribers (churned or not), and — in the second pass — both thresholds.
public struct CompareRequest: Sendable, WireCodable {
    public var version: String
    /// The shards the worker compares (it owns each, or refuses: a shard moving is never counted twice).
    public var shards: [Int]
    public var churned: BulkArray<Int64>
    public var retained: BulkArray<Int64>
    /// Second pass: the top-decile thresholds (champion, challenger); empty in the first.
    public var thresholds: [Double]

    public init(version: String, shards: [Int], churned: [Int64], retained: [Int64], thresholds: [Double]) {
        self.version = version
        self.shards = shards
        self.churned = BulkArray(churned)
        self.retained = BulkArray(retained)
        self.thresholds = thresholds
    }

    public func encode(to w: inout WireWriter) { w.write(version); w.write(shards); w.write(churned); w.write(retained); w.write(thresholds) }
    public init(from r: inout WireReader) throws(WireError) {
        version = try r.read(); shards = try r.read(); churned = try r.read(); retained = try r.read(); thresholds = try r.read()
    }
}

/// One worker's part of a comparison: six histograms (champion, challenger; each for everyone,
/// churners and non-churners) in the first pass, the top-decile counts in the second.
public struct ComparisonPart: Sendable, WireCodable {
    /// The served version the worker scored with (the coordinator refuses a part of another).
    public var version: String
    public var subscribers: Int
    /// 6 × `ComparisonHistograms.bins` counts: champion all, challenger all, champion churned,
    /// challenger churned, champion retained, challenger retained.
    public var histograms: BulkArray<Int32>
    /// Second pass: in the champion's top decile, in the challenger's, in both.
    public var top: [Int]

    public init(version: String, subscribers: Int, histograms: [Int32], top: [Int]) {
        self.version = version
        self.subscribers = subscribers
        self.histograms = BulkArray(histograms)
        self.top = top
    }

    public func encode(to w: inout WireWriter) { w.write(version); w.write(subscribers); w.write(histograms); w.write(top) }
    public init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        version = try r.read(); subscribers = try r.readCount("subscribers compared"); histograms = try r.read(); top = try r.read()
        guard histograms.elements.isEmpty || histograms.elements.count == 6 * ComparisonHistograms.bins, top.isEmpty || top.count == 3,
              top.allSatisfy({ $0 >= 0 && $0 <= subscribers }), histograms.elements.allSatisfy({ $0 >= 0 }) else {
            throw WireError(offset: at, expected: "6 histograms of \(ComparisonHistograms.bins) bins of counts ≥ 0, or 3 top-decile counts within the subscribers compared")
        }
    }
}

/// Two versions of a model compared over the live base.
public struct ModelComparison: Sendable, Codable, WireCodable, Equatable {
    public struct Side: Sendable, Codable, Equatable {
        public var version: String
        public var meanProbability: Double
        /// The 10th … 90th percentiles of the probability.
        public var deciles: [Double]
        /// In its own top decile (probability at or above its 90th percentile).
        public var topDecile: Int
        /// Against the outcomes imported (`outcomes import`), nil without both churners and non-churners.
        public var auc: Double?
        /// The churn rate of its top decile among the labelled, over theirs overall.
        public var liftTopDecile: Double?
    }

    public var name: String
    public var subscribers: Int
    /// Subscribers with an outcome (the latest observed), and how many of them churned.
    public var labelled: Int
    public var churned: Int
    public var champion: Side
    public var challenger: Side
    /// In both top deciles, over the larger top decile (nested top deciles of different sizes do
    /// not read as agreeing).
    public var topDecileAgreement: Double
    public var seconds: Double

    public func encode(to w: inout WireWriter) {
        w.write(name); w.write(subscribers); w.write(labelled); w.write(churned)
        for s in [champion, challenger] {
            w.write(s.version); w.write(s.meanProbability); w.write(s.deciles); w.write(s.topDecile); w.write(s.auc); w.write(s.liftTopDecile)
        }
        w.write(topDecileAgreement); w.write(seconds)
    }

    public init(from r: inout WireReader) throws(WireError) {
        name = try r.read(); subscribers = try r.read(); labelled = try r.read(); churned = try r.read()
        var sides: [Side] = []
        for _ in 0..<2 {
            sides.append(Side(version: try r.read(), meanProbability: try r.read(), deciles: try r.read(), topDecile: try r.read(),
                              auc: try r.read(), liftTopDecile: try r.read()))
        }
        champion = sides[0]
        challenger = sides[1]
        topDecileAgreement = try r.read(); seconds = try r.read()
    }

    /// The comparison read from the merged histograms (6 × bins, as `ComparisonPart`) and the
    /// second pass's top-decile counts.
    static func make(name: String, versions: (String, String), subscribers: Int, histograms h: [Int64], top: [Int], seconds: Double) -> ModelComparison {
        let b = ComparisonHistograms.bins
        func part(_ k: Int) -> [Int64] { Array(h[(k * b)..<((k + 1) * b)]) }
        let labelled = Int(part(2).reduce(0, +) + part(4).reduce(0, +)), churned = Int(part(2).reduce(0, +))
        func side(_ k: Int, _ version: String, top: Int) -> Side {
            let all = part(k)
            let total = Double(all.reduce(0, +))
            // The mean from bin centres (within half a bin).
            let mean = total > 0 ? all.enumerated().reduce(0.0) { $0 + Double($1.element) * (Double($1.offset) + 0.5) / Double(b) } / total : .nan
            let cut = ComparisonHistograms.topCut(all, share: 0.1)
            return Side(version: version, meanProbability: mean, deciles: (1...9).map { ComparisonHistograms.quantile(all, Double($0) / 10) },
                        topDecile: top, auc: ComparisonHistograms.auc(positive: part(2 + k), negative: part(4 + k)),
                        liftTopDecile: ComparisonHistograms.lift(positive: part(2 + k), negative: part(4 + k), threshold: cut))
        }
        let a = side(0, versions.0, top: top.count == 3 ? top[0] : 0), c = side(1, versions.1, top: top.count == 3 ? top[1] : 0)
        let larger = max(a.topDecile, c.topDecile)
        return ModelComparison(name: name, subscribers: subscribers, labelled: labelled, churned: churned, champion: a, challenger: c,
                               topDecileAgreement: larger > 0 && top.count == 3 ? Double(top[2]) / Double(larger) : 0, seconds: seconds)
    }

    init(name: String, subscribers: Int, labelled: Int, churned: Int, champion: Side, challenger: Side, topDecileAgreement: Double, seconds: Double) {
        self.name = name; self.subscribers = subscribers; self.labelled = labelled; self.churned = churned
        self.champion = champion; self.challenger = challenger; self.topDecileAgreement = topDecileAgreement; self.seconds = seconds
    }
}
