import BatchScoring
import FeatureTable
import Foundation
import Logging
import Testing
import TestSupport
import TreeModel

// Serialized, and each case computes on a thread of its own (`onOwnThread`): the cases take
// seconds each, and the cooperative pool's threads belong to the suites whose nodes and clients
// must answer in real time.
@Suite("Scores and reasons equal XGBoost's and LightGBM's own", .serialized)
struct ParityTests {
    @Test("every row's margin and probability equal the library's predict", arguments: Fixtures.allModels)
    func predictions(name: String) async throws {
        try await onOwnThread {
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
            let forest = try CompiledForest(model)
            let columns = try await Fixtures.features(for: model, name: name)
            let reference = try Fixtures.matrix(try await Fixtures.path("\(name).pred.csv"))
            let expectedMargin = reference.columns[0], expectedOutput = reference.columns[1]
            for threads in [1, 2] {
                let (margins, outputs) = try forest.score(columns: columns, threads: threads)
                #expect(margins.count == expectedMargin.count)
                var worstMargin = 0.0, worstOutput = 0.0, worstRow = 0
                for r in 0..<margins.count {
                    let dm = parityDifference(margins[r], expectedMargin[r]), dout = parityDifference(outputs[r], expectedOutput[r])
                    if dout > worstOutput { worstRow = r }
                    worstMargin = max(worstMargin, dm)
                    worstOutput = max(worstOutput, dout)
                }
                #expect(worstOutput <= 1e-6, "\(name), \(threads) threads: output differs by \(worstOutput) at row \(worstRow)")
                #expect(worstMargin <= 1e-6, "\(name), \(threads) threads: margin differs by \(worstMargin)")
            }
        }
    }

    @Test("the single-row path gives exactly the block path's margin", arguments: ["xgb_logistic_d6_300", "lgb_zero_as_missing", "lgb_deep_63"])
    func singleRow(name: String) async throws {
        try await onOwnThread {
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
            let forest = try CompiledForest(model)
            let columns = try await Fixtures.features(for: model, name: name)
            let (margins, _) = try forest.score(columns: columns)
            var row = [Float](repeating: 0, count: model.featureCount)
            for r in 0..<margins.count {
                for j in 0..<row.count { row[j] = columns[j][r] }
                #expect(forest.margin(row: row) == margins[r], "row \(r)")
            }
        }
    }

    @Test("exact TreeSHAP equals the library's pred_contribs", arguments: Fixtures.allModels)
    func exactContributions(name: String) async throws {
        try await compareContributions(name: name, file: "contribs", method: .exact)
    }

    @Test("the path attribution equals XGBoost's approx_contribs", arguments: Fixtures.xgboostModels)
    func approximateContributions(name: String) async throws {
        try await compareContributions(name: name, file: "approx", method: .approximate)
    }

    private func compareContributions(name: String, file: String, method: TreeExplainer.Method) async throws {
        try await onOwnThread {
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
            let explainer = TreeExplainer(model)
            let forest = try CompiledForest(model)
            let columns = try await Fixtures.features(for: model, name: name)
            let reference = try Fixtures.matrix(try await Fixtures.path("\(name).\(file).csv"))
            #expect(reference.columns.count == model.featureCount + 1)
            let rows = reference.columns[0].count
            var worst = 0.0
            var row = [Float](repeating: 0, count: model.featureCount)
            for r in 0..<rows {
                for j in 0..<row.count { row[j] = columns[j][r] }
                let phi = explainer.contributions(row: row, method: method)
                for j in 0...model.featureCount {
                    worst = max(worst, parityDifference(phi[j], reference.columns[j][r]))
                }
                // Contributions explain the margin: they add up to it.
                let margin = forest.margin(row: row)
                #expect(abs(phi.reduce(0, +) - margin) <= 1e-4 * max(1, abs(margin)), "\(name) row \(r)")
            }
            #expect(worst <= 1e-4, "\(name): largest contribution difference \(worst)")
        }
    }

    @Test("top-K reasons are the largest positive contributions, largest first")
    func reasons() async throws {
        try await onOwnThread {
            let name = "xgb_logistic_d6_300"
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
            let explainer = TreeExplainer(model)
            let columns = try await Fixtures.features(for: model, name: name)
            for r in 0..<50 {
                let row = (0..<model.featureCount).map { columns[$0][r] }
                let phi = explainer.contributions(row: row)
                let reasons = explainer.reasons(row: row, k: 3)
                let expected = (0..<model.featureCount).filter { phi[$0] > 0 }.sorted { phi[$0] > phi[$1] }.prefix(3)
                #expect(reasons.map(\.feature) == Array(expected))
                #expect(reasons.map(\.name) == expected.map { model.featureNames[$0] })
            }
        }
    }

    @Test("model score writes copied columns, margin, probability and reasons for every row")
    func scoreFile() async throws {
        try await onOwnThread {
            let name = "xgb_logistic_d3_50"
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("cg-score-\(UUID()).csv").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let report = try FileScoring(logger: Logger(label: "test")).run(
                modelPath: try await Fixtures.modelFile(name), input: try await Fixtures.inputFile(name), output: out,
                options: .init(explain: 3, explainMethod: .exact, threads: 2))
            let reference = try Fixtures.matrix(try await Fixtures.path("\(name).pred.csv"))
            #expect(report.rows == reference.columns[0].count)

            let table = try CSVTable.read(path: out, numericColumns: ["margin", "probability", "contribution1"])
            #expect(table.header == ["subscriber_id", "note", "margin", "probability",
                                     "reason1", "reason2", "reason3", "contribution1", "contribution2", "contribution3"])
            #expect(table.rowCount == report.rows)
            let probability = try #require(table.column(named: "probability"))
            for r in 0..<table.rowCount {
                #expect(parityDifference(Double(probability[r]), reference.columns[1][r]) <= 1e-6)
            }
            // Pass-through cells are copied byte for byte, quotes included.
            #expect(String(decoding: table.rawCell(column: 0, row: 7), as: UTF8.self) == "S000007")
            #expect(String(decoding: table.rawCell(column: 1, row: 500), as: UTF8.self) == "\"quoted, \"\"note\"\"\"")
            let reason = String(decoding: table.rawCell(column: 4, row: 1), as: UTF8.self)
            #expect(reason.hasPrefix("feat_"))
        }
    }
}

/// How far apart two results are, for parity: NaN on both sides agrees, NaN on one side is
/// infinitely far (a `max` over plain differences would skip it, since NaN compares false).
func parityDifference(_ a: Double, _ b: Double) -> Double {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN ? 0 : .infinity }
    return abs(a - b)
}
