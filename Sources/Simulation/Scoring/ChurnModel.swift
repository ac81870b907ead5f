#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

import Retention
import SubscriberProfiles
import TreeModel

/// The churn model the strategies score with, and the world's view of the "true" hazard
/// (`HiddenResponse`): compiled once, then shared read-only by every thread.
///
/// Replicates the few lines of the cluster's `ScoringModel` a simulation needs (feature → profile
/// column mapping, column scoring, top-3 reasons by path attribution) without depending on the
/// cluster module.
public final class ChurnModel: Sendable {
    /// Where the model was read from.
    public let source: String
    let forest: CompiledForest
    let explainer: TreeExplainer
    /// For each model feature, the profile column (`FeatureCatalogue` index) it reads.
    let profileColumn: [Int]

    /// Parses and compiles model bytes (XGBoost JSON or LightGBM text).
    /// - Throws: `SimulationError` (`badModel`) when the model cannot be loaded or reads a
    ///   feature that is not a profile feature.
    public init(bytes: [UInt8], source: String) throws(SimulationError) {
        do throws(ModelError) {
            let model = try TreeEnsemble.parse(bytes, file: source)
            forest = try CompiledForest(model)
            explainer = TreeExplainer(model)
            var columns: [Int] = []
            for (i, name) in model.featureNames.enumerated() {
                if let c = FeatureCatalogue.index(of: name) {
                    columns.append(c)
                } else if name == "f\(i)", i < FeatureCatalogue.count {
                    columns.append(i)  // trained without names: the catalogue in order
                } else {
                    throw ModelError(.invalidInput, file: source, "model feature '\(name)' is not a subscriber profile feature (see docs/features.md)")
                }
            }
            profileColumn = columns
        } catch {
            throw SimulationError(.badModel, field: "--model", "\(error)", fix: "give an XGBoost JSON or LightGBM text model over profile features, such as models/churn-default.json")
        }
        self.source = source
    }

    /// Reads and compiles the model file at `path`.
    /// - Throws: `SimulationError` (`unreadableModel`, `badModel`).
    public static func load(path: String) throws(SimulationError) -> ChurnModel {
        guard let bytes = readFile(path) else {
            throw SimulationError(.unreadableModel, field: "--model", "cannot read \(path)", fix: "check the path (the default is models/churn-default.json, relative to the repository)")
        }
        return try ChurnModel(bytes: bytes, source: path)
    }

    /// The model's probability for every row of `population`, into `out` (resized).
    func score(_ population: Population, into out: inout [Double], margins: inout [Double]) {
        let n = population.count
        out = [Double](repeating: 0, count: n)
        guard n > 0 else { return }
        margins = [Double](repeating: 0, count: n)
        let stride = population.capacity
        _ = population.withColumns { base in
            let input = FeatureColumns(columns: profileColumn.map { base + $0 * stride }, rowCount: n)
            out.withUnsafeMutableBufferPointer { o in
                margins.withUnsafeMutableBufferPointer { m in
                    guard let mp = m.baseAddress, let op = o.baseAddress else { return }
                    // The column count is the model's by construction, so this cannot throw.
                    try? forest.score(input, margins: mp, outputs: op, threads: 1)
                }
            }
        }
    }

    /// Reusable buffers for explaining one row at a time.
    struct ExplainScratch {
        var row: [Float]
        var phi: [Double]
        init(_ model: ChurnModel) {
            row = [Float](repeating: .nan, count: model.profileColumn.count)
            phi = [Double](repeating: 0, count: model.explainer.contributionCount)
        }
    }

    /// The top-3 churn reasons of `row` (positive path-attribution contributions, largest first),
    /// as `FeatureCatalogue` indices — the method the cluster's rescoring publishes.
    func topReasons(_ population: Population, row r: Int, scratch s: inout ExplainScratch) -> TopReasons {
        for (j, c) in profileColumn.enumerated() { s.row[j] = population.value(r, c) }
        s.row.withUnsafeBufferPointer { row in
            s.phi.withUnsafeMutableBufferPointer { phi in explainer.contributions(row: row, into: phi, method: .approximate) }
        }
        var best: (Int, Double) = (-1, 0), second: (Int, Double) = (-1, 0), third: (Int, Double) = (-1, 0)
        for j in 0..<profileColumn.count {
            let v = s.phi[j]
            guard v > 0, v > third.1 || third.0 < 0 else { continue }
            if best.0 < 0 || v > best.1 {
                third = second; second = best; best = (j, v)
            } else if second.0 < 0 || v > second.1 {
                third = second; second = (j, v)
            } else {
                third = (j, v)
            }
        }
        return TopReasons([best.0, second.0, third.0].lazy.filter { $0 >= 0 }.map { self.profileColumn[$0] })
    }
}

/// The whole file, or nil when it cannot be read.
func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n > 0 { out.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { return ferror(f) == 0 ? out : nil }
    }
}
