import FeatureTable
import Foundation
import SubscriberProfiles
import WireFormat

/// One feature's reference bins as a file gives them: its edges and the file's rows in each bin.
public struct ReferenceBins: Sendable, WireCodable, Equatable {
    public var feature: String
    public var edges: [Float]
    public var counts: [Int64]

    public init(feature: String, edges: [Float], counts: [Int64]) {
        self.feature = feature
        self.edges = edges
        self.counts = counts
    }

    public func encode(to w: inout WireWriter) {
        w.write(feature); w.write(edges); w.write(counts)
    }

    public init(from r: inout WireReader) throws(WireError) {
        feature = try r.read(); edges = try r.read(); counts = try r.read()
    }
}

/// A model version's drift reference taken from a file of rows (`churngrid models add --reference
/// CSV`) instead of from the first job that scores the version (docs/models.md, "Drift"): the bins
/// cut as a job's reference cuts them (the distinct deciles of each feature, here of every row of
/// the file), the file's rows counted in them, and the score's bins (the job summary's 20) counted
/// from the model's own probability of each row. The client builds it; the coordinator checks it
/// (`validated`) before it stores it with the model, in one transaction.
public struct DriftReferenceUpload: Sendable, WireCodable, Equatable {
    /// The file it came from (its name, for the log and the audit; at most 400 characters kept).
    public var source: String
    public var rows: Int64
    /// One entry per model feature (any order).
    public var features: [ReferenceBins]
    /// The rows in each of the score's bins.
    public var score: [Int64]

    /// The most rows a reference file may have (the bins are exact; the sort is the cost).
    public static let maxRows = 50_000_000

    public init(source: String, rows: Int64, features: [ReferenceBins], score: [Int64]) {
        self.source = source
        self.rows = rows
        self.features = features
        self.score = score
    }

    public func encode(to w: inout WireWriter) {
        w.write(source); w.write(rows); w.write(features); w.write(score)
    }

    public init(from r: inout WireReader) throws(WireError) {
        source = try r.read(); rows = try r.read(); features = try r.read(); score = try r.read()
    }

    /// Builds a reference from `columns` (the model's features in model order, each `rows` values;
    /// NaN is missing) and the model's probability of each row.
    public static func build(source: String, featureNames: [String], columns: [[Float]], probabilities: [Float]) -> DriftReferenceUpload {
        var features: [ReferenceBins] = []
        for (name, values) in zip(featureNames, columns) {
            let edges = PopulationStability.edges(sample: values)
            var counts = [Int64](repeating: 0, count: PopulationStability.binCount(edges: edges.count))
            edges.withUnsafeBufferPointer { e in
                for v in values { counts[PopulationStability.bin(v, edges: e)] += 1 }
            }
            features.append(ReferenceBins(feature: name, edges: edges, counts: counts))
        }
        var score = [Int64](repeating: 0, count: JobSummary.histogramBins)
        for p in probabilities { score[JobSummary.scoreBin(p)] += 1 }
        return DriftReferenceUpload(source: source, rows: Int64(probabilities.count), features: features, score: score)
    }

    /// Reads a CSV of rows (a header naming the model's features as profile features, or as the
    /// model names them; other columns ignored; numbers, empty = missing), scores every row with
    /// `model` and builds the reference.
    /// - Throws: `TableError` naming the file, line and column (a missing feature column, a bad
    ///   cell, no rows, too many).
    public static func read(path: String, model: ScoringModel) throws(TableError) -> DriftReferenceUpload {
        let catalogue = FeatureCatalogue.names
        // Each model feature's column: its profile feature's name, else the model's own name.
        let wanted = model.featureNames.enumerated().map { i, name in
            (profile: catalogue.indices.contains(model.profileColumn[i]) ? catalogue[model.profileColumn[i]] : name, model: name)
        }
        let table = try CSVTable.read(path: path, numericColumns: Set(wanted.flatMap { [$0.profile, $0.model] }))
        var columns: [[Float]] = [], missing: [String] = []
        for w in wanted {
            if let c = table.column(named: w.profile) ?? table.column(named: w.model) { columns.append(c) } else { missing.append(w.profile) }
        }
        guard missing.isEmpty else {
            let shown = missing.prefix(5).joined(separator: ", ") + (missing.count > 5 ? ", … (\(missing.count) in all)" : "")
            throw TableError(file: path, line: 1, "the header has no column for model feature(s) \(shown)")
        }
        guard table.rowCount > 0 else { throw TableError(file: path, line: 2, "the reference file has a header but no rows") }
        guard table.rowCount <= maxRows else { throw TableError(file: path, "the reference file has \(table.rowCount) rows; at most \(maxRows)") }
        var probabilities = [Float](repeating: 0, count: table.rowCount)
        var row = [Float](repeating: 0, count: columns.count)
        for r in 0..<table.rowCount {
            for j in columns.indices { row[j] = columns[j][r] }
            probabilities[r] = Float(model.forest.transform(margin: model.forest.margin(row: row)))
        }
        return build(source: (path as NSString).lastPathComponent, featureNames: model.featureNames, columns: columns, probabilities: probabilities)
    }

    /// The reference as stored (job id 0: taken from a file), checked against the model it is
    /// given with: one entry per model feature and no other, edges finite and ascending (at most
    /// `DriftRequest.maxEdges`), each feature's counts in its bins and the score's in its 20, none
    /// negative, each adding up to `rows`.
    func validated(modelFeatures: [String]) throws(ClusterError) -> DriftReference {
        guard (1...Int64(Self.maxRows)).contains(rows) else {
            throw ClusterError("the drift reference has \(rows) rows (1–\(Self.maxRows))")
        }
        var bins: [String: (edges: [Float], counts: [Int64])] = [:]
        let expected = Set(modelFeatures)
        for f in features {
            guard expected.contains(f.feature) else {
                throw ClusterError("the drift reference has bins for '\(f.feature.prefix(100))', which the model does not read")
            }
            guard bins[f.feature] == nil else { throw ClusterError("the drift reference has feature '\(f.feature)' twice") }
            guard f.edges.count <= DriftRequest.maxEdges, f.edges.allSatisfy({ $0.isFinite }), zip(f.edges, f.edges.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw ClusterError("the drift reference's edges of '\(f.feature)' are not finite and ascending (at most \(DriftRequest.maxEdges))")
            }
            try Self.check(f.counts, bins: PopulationStability.binCount(edges: f.edges.count), rows: rows, what: "'\(f.feature)'")
            bins[f.feature] = (f.edges, f.counts)
        }
        let absent = modelFeatures.filter { bins[$0] == nil }
        guard absent.isEmpty else {
            throw ClusterError("the drift reference has no bins for model feature(s) \(absent.prefix(5).joined(separator: ", "))")
        }
        try Self.check(score, bins: JobSummary.histogramBins, rows: rows, what: "the score")
        bins[DriftReport.scoreName] = (DriftAssembly.scoreEdges, score)
        return DriftReference(job: 0, bins: bins)
    }

    private static func check(_ counts: [Int64], bins: Int, rows: Int64, what: String) throws(ClusterError) {
        guard counts.count == bins else { throw ClusterError("the drift reference has \(counts.count) counts for \(what); its bins are \(bins)") }
        var sum: Int64 = 0
        for c in counts {
            let (s, overflow) = sum.addingReportingOverflow(c)
            guard c >= 0, !overflow else { throw ClusterError("the drift reference has a count out of range for \(what)") }
            sum = s
        }
        guard sum == rows else { throw ClusterError("the drift reference's counts for \(what) add up to \(sum), not its \(rows) rows") }
    }
}
