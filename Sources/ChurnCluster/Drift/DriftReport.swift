import WireFormat

/// One feature's (or the score's) drift in a job against its model version's reference.
public struct FeatureDrift: Sendable, WireCodable, Codable, Equatable {
    public var feature: String
    public var psi: Double
    public var level: PopulationStability.Level

    public init(feature: String, psi: Double) {
        self.feature = feature
        self.psi = psi
        level = PopulationStability.Level(psi: psi)
    }

    public func encode(to w: inout WireWriter) {
        w.write(feature); w.write(psi); w.write(level.rawValue)
    }

    public init(from r: inout WireReader) throws(WireError) {
        feature = try r.read(); psi = try r.read()
        let raw: String = try r.read()
        // A level this version does not know (a newer peer) is judged again from the PSI.
        level = PopulationStability.Level(rawValue: raw) ?? PopulationStability.Level(psi: psi)
    }
}

/// A job's drift: every feature the model reads and the score (`DriftReport.scoreName`), worst first.
public struct DriftReport: Sendable, WireCodable, Codable, Equatable {
    /// The name the score's row goes by (no feature name has parentheses).
    public static let scoreName = "(score)"

    public var job: Int64
    public var modelVersion: String
    /// The job whose population is the reference (this job when it took the reference; 0 when
    /// the reference is a file's, given to `models add --reference`).
    public var referenceJob: Int64
    public var features: [FeatureDrift]

    public init(job: Int64, modelVersion: String, referenceJob: Int64, features: [FeatureDrift]) {
        self.job = job
        self.modelVersion = modelVersion
        self.referenceJob = referenceJob
        self.features = features.sorted { $0.psi != $1.psi ? $0.psi > $1.psi : $0.feature < $1.feature }
    }

    /// Whether this job took the reference (its PSIs are 0 by definition).
    public var isReference: Bool { job == referenceJob }

    /// The features (and the score) at `level`.
    public func at(_ level: PopulationStability.Level) -> [FeatureDrift] { features.filter { $0.level == level } }

    /// The worst level of any feature or the score.
    public var worst: PopulationStability.Level { features.map(\.level).max() ?? .stable }

    public func encode(to w: inout WireWriter) {
        w.write(job); w.write(modelVersion); w.write(referenceJob); w.write(features)
    }

    public init(from r: inout WireReader) throws(WireError) {
        job = try r.read(); modelVersion = try r.read(); referenceJob = try r.read(); features = try r.read()
    }
}

/// A model version's reference population: each feature's bins and counts, and the score's.
struct DriftReference: Sendable {
    var job: Int64
    /// Feature name (or `DriftReport.scoreName`) → its edges and bin counts.
    var bins: [String: (edges: [Float], counts: [Int64])]
}

/// Putting shards' drift answers together (pure).
enum DriftAssembly {
    /// Rows sampled in all for a new reference, spread over the shards.
    static let referenceSampleRows = 200_000

    /// Rows each of `shardCount` shards samples.
    static func sampleRows(shardCount: Int) -> Int {
        min(DriftRequest.maxSampleRows, max(64, referenceSampleRows / max(1, shardCount)))
    }

    /// Each feature's edges from the shards' samples (rows of `features` values).
    static func edges(samples: [[Float]], features: Int) throws(ClusterError) -> [[Float]] {
        var columns = [[Float]](repeating: [], count: features)
        for sample in samples {
            guard features > 0, sample.count % features == 0 else {
                throw ClusterError("a shard's drift sample has \(sample.count) values, not rows of \(features) features")
            }
            for (i, v) in sample.enumerated() { columns[i % features].append(v) }
        }
        return columns.map { PopulationStability.edges(sample: $0) }
    }

    /// Each feature's counts summed over the shards' answers.
    static func counts(answers: [[Int64]], edges: [[Float]]) throws(ClusterError) -> [[Int64]] {
        let sizes = edges.map { PopulationStability.binCount(edges: $0.count) }
        let total = sizes.reduce(0, +)
        var sum = [Int64](repeating: 0, count: total)
        for a in answers {
            guard a.count == total else { throw ClusterError("a shard answered \(a.count) drift counts; the bins are \(total)") }
            for i in 0..<total {
                let (s, overflow) = sum[i].addingReportingOverflow(a[i])
                guard !overflow, a[i] >= 0 else { throw ClusterError("a shard answered a drift count out of range (\(a[i]))") }
                sum[i] = s
            }
        }
        var out: [[Int64]] = []
        var at = 0
        for n in sizes {
            out.append(Array(sum[at..<at + n]))
            at += n
        }
        return out
    }

    /// The edges of the score's bins: the job summary's equal-width bins of the probability,
    /// [k/20, (k+1)/20) (the last one closed), as PostgreSQL's width_bucket cuts them.
    static var scoreEdges: [Float] {
        (1..<JobSummary.histogramBins).map { Float($0) / Float(JobSummary.histogramBins) }
    }
}
