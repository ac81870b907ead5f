import FeatureTable
import Foundation
import Testing
import TestSupport
import TreeModel

/// Models trained by the real XGBoost and LightGBM (through `make_fixtures.py`) with the
/// libraries' own predictions and contributions. Trained once per script version and cached
/// under `.churngrid/test-fixtures/` in the package.
enum Fixtures {
    /// Every model the script trains; the tests are parameterised over these names.
    static let xgboostModels = [
        "xgb_logistic_d3_50", "xgb_logistic_d6_300", "xgb_logitraw_d5_80", "xgb_sqerr_d4_60",
        "xgb_reglogistic_d5_40", "xgb_stump_1", "xgb_lossguide_d0", "xgb_logistic_d8_1000",
    ]
    static let lightgbmModels = [
        "lgb_binary_31", "lgb_deep_63", "lgb_zero_as_missing", "lgb_no_missing", "lgb_sigmoid_2",
    ]
    static let allModels = xgboostModels + lightgbmModels

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The fixture directory, generated once on first use; every test awaits the same generation
    /// (none blocks a thread of the cooperative pool while the script trains).
    private static let generation = Task<Result<URL, FixtureError>, Never> { await generate(script: "make_fixtures.py") }

    struct FixtureError: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `Tests/Parity/<script> DIR` unless DIR (named by a hash of the script) already holds
    /// its `manifest.csv`, and returns DIR.
    static func generate(script name: String) async -> Result<URL, FixtureError> {
        let script = packageRoot.appendingPathComponent("Tests/Parity/" + name)
        guard let source = try? Data(contentsOf: script) else {
            return .failure(FixtureError(description: "cannot read \(script.path)"))
        }
        // FNV-1a of the script: a changed script trains new fixtures.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in source { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        let dir = packageRoot.appendingPathComponent(".churngrid/test-fixtures/\(String(hash, radix: 16))")
        let manifest = dir.appendingPathComponent("manifest.csv")
        if FileManager.default.fileExists(atPath: manifest.path) { return .success(dir) }
        let tmp = dir.path + ".tmp-\(getpid())"
        // One thread (the scripts train with one too), waiting passively: a rehearsal ran out of its
        // 600 s on a script that takes 31 s alone, most likely OpenMP threads spinning at barriers
        // while every other test loaded the machine.
        let (status, output) = await runCommand("OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python3 \(shellQuoted(script.path)) \(shellQuoted(tmp))",
                                                timeout: .seconds(1200))
        guard status == 0 else {
            return .failure(FixtureError(description:
                "\(name) failed (run `make test-deps` to install xgboost and lightgbm):\n" + output))
        }
        try? FileManager.default.removeItem(at: dir)
        do { try FileManager.default.moveItem(atPath: tmp, toPath: dir.path) } catch {
            return .failure(FixtureError(description: "cannot move fixtures into place: \(error)"))
        }
        return .success(dir)
    }

    static func path(_ name: String) async throws -> String {
        try await generation.value.get().appendingPathComponent(name).path
    }

    static func modelFile(_ name: String) async throws -> String {
        try await path(name + (name.hasPrefix("lgb") ? ".txt" : ".json"))
    }

    static func inputFile(_ name: String) async throws -> String {
        if name.hasPrefix("lgb_deep") { return try await path("data_col.csv") }
        if ["xgb_logistic_d6_300", "xgb_reglogistic_d5_40", "xgb_stump_1", "xgb_logistic_d8_1000"].contains(name) {
            return try await path("data_f.csv")
        }
        return try await path("data_named.csv")
    }

    /// A numeric CSV with a header, as columns.
    static func matrix(_ file: String) throws -> (header: [String], columns: [[Float64]]) {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let header = lines.removeFirst().split(separator: ",").map(String.init)
        var columns = [[Double]](repeating: [], count: header.count)
        for line in lines {
            for (j, cell) in line.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                columns[j].append(Double(cell) ?? .nan)
            }
        }
        return (header, columns)
    }

    /// The model's input rows as feature columns, read with ChurnGrid's own CSV reader.
    static func features(for model: TreeEnsemble, name: String) async throws -> [[Float]] {
        try features(for: model, file: try await inputFile(name))
    }

    /// The rows of the CSV `file` as `model`'s feature columns, read with ChurnGrid's own CSV reader.
    static func features(for model: TreeEnsemble, file: String) throws -> [[Float]] {
        let table = try CSVTable.read(path: file, numericColumns: Set(model.featureNames))
        return try model.featureNames.map { n in
            try #require(table.column(named: n), "input lacks column \(n)")
        }
    }
}
