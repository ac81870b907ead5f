import Testing
import TestSupport
import TreeModel

// Serialized, each case on a thread of its own, for the same reasons as `ParityTests`.
@Suite("Reasons for every row from the leaf tables equal the path attribution", .serialized)
struct LeafAttributionTests {
    @Test("margins equal the engine's bit for bit; contributions equal XGBoost's approx_contribs",
          arguments: Fixtures.xgboostModels)
    func xgboost(name: String) async throws {
        try await onOwnThread {
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
            let columns = try await Fixtures.features(for: model, name: name)
            let reference = try Fixtures.matrix(try await Fixtures.path("\(name).approx.csv"))
            try check(model, columns, reference: reference.columns, label: name)
        }
    }

    @Test("through categorical splits and awkward codes, contributions equal XGBoost's approx_contribs",
          arguments: CategoricalFixtures.xgboostModels)
    func categoricalXGBoost(name: String) async throws {
        try await onOwnThread {
            let model = try await CategoricalFixtures.model(name)
            for (input, reference) in [("data.csv", "\(name).approx.csv"), ("probe.csv", "\(name).probe.approx.csv")] {
                let columns = try Fixtures.features(for: model, file: try await CategoricalFixtures.path(input))
                let expected = try Fixtures.matrix(try await CategoricalFixtures.path(reference))
                try check(model, columns, reference: expected.columns, label: "\(name) \(input)")
            }
        }
    }

    @Test("LightGBM models (leaf-wise, unbalanced, categorical): contributions equal the explainer's path attribution",
          arguments: Fixtures.lightgbmModels + CategoricalFixtures.lightgbmModels)
    func lightgbm(name: String) async throws {
        try await onOwnThread {
            let model: TreeEnsemble
            let columns: [[Float]]
            if CategoricalFixtures.lightgbmModels.contains(name) {
                model = try await CategoricalFixtures.model(name)
                columns = try Fixtures.features(for: model, file: try await CategoricalFixtures.path("probe.csv"))
            } else {
                model = try TreeEnsemble.load(path: try await Fixtures.modelFile(name))
                columns = try await Fixtures.features(for: model, name: name)
            }
            try check(model, columns, reference: nil, label: name)
        }
    }

    @Test("a model whose tables would exceed the limit is declined (callers fall back to the explainer)")
    func declines() async throws {
        try await onOwnThread {
            let model = try TreeEnsemble.load(path: try await Fixtures.modelFile("xgb_logistic_d6_300"))
            let forest = try CompiledForest(model)
            #expect(LeafAttribution(forest, maximumEntries: 1000) == nil)
            let tables = try #require(LeafAttribution(forest))
            // 300 trees of depth 6: at most 64 leaves × 6 features each.
            #expect(tables.bytes <= (forest.model.nodeCount + 1) * 4 + 300 * 64 * 6 * 8)
        }
    }

    /// Block scoring with reasons against the plain engine (margins identical), the single-row
    /// contributions against `reference` (the library's approx_contribs: features then bias) or,
    /// without one, against `TreeExplainer`'s path attribution, and each row's top 3 against its
    /// contributions.
    private func check(_ model: TreeEnsemble, _ columns: [[Float]], reference: [[Double]]?, label: String) throws {
        let forest = try CompiledForest(model)
        let tables = try #require(LeafAttribution(forest), "\(label): tables declined")
        let explainer = TreeExplainer(model)
        let rows = columns.first?.count ?? 0
        let f = model.featureCount
        let (expectedMargins, expectedOutputs) = try forest.score(columns: columns)
        var margins = [Double](repeating: 0, count: rows), outputs = [Double](repeating: 0, count: rows)
        var features = [Int16](repeating: 7, count: 3 * rows), values = [Float](repeating: 7, count: 3 * rows)
        try columns.withUnsafeColumns { input in
            try margins.withUnsafeMutableBufferPointer { m in
                try outputs.withUnsafeMutableBufferPointer { o in
                    try features.withUnsafeMutableBufferPointer { fe in
                        try values.withUnsafeMutableBufferPointer { v in
                            try tables.score(input, margins: m.baseAddress!, outputs: o.baseAddress!, top: 3, features: fe.baseAddress!, values: v.baseAddress!)
                        }
                    }
                }
            }
        }
        #expect(margins == expectedMargins, "\(label): margins differ from the engine's")
        #expect(outputs == expectedOutputs, "\(label): outputs differ from the engine's")

        var worst = 0.0, worstRow = 0, topMismatches = 0, sumMismatches = 0
        var row = [Float](repeating: 0, count: f)
        // The library's contributions cover the first rows of the input.
        let compared = min(rows, reference?.first?.count ?? rows)
        #expect(compared > 0, "\(label): no rows to compare")
        #expect(reference == nil || reference?.count == f + 1, "\(label): reference has \(reference?.count ?? 0) columns")
        for r in 0..<compared {
            for j in 0..<f { row[j] = columns[j][r] }
            let phi = try tables.contributions(row: row)
            let expected = reference.map { ref in (0...f).map { ref[$0][r] } } ?? explainer.contributions(row: row, method: .approximate)
            for j in 0...f {
                let d = parityDifference(phi[j], expected[j])
                if d > worst { worst = d; worstRow = r }
            }
            if abs(phi.reduce(0, +) - margins[r]) > 1e-4 * max(1, abs(margins[r])) { sumMismatches += 1 }
            // The block's top 3: the largest positive contributions, biggest first, -1 past the positives.
            let positive = (0..<f).filter { phi[$0] > 0 }.sorted { phi[$0] > phi[$1] || (phi[$0] == phi[$1] && $0 < $1) }
            let want = (0..<3).map { $0 < positive.count ? Int16(positive[$0]) : -1 }
            let got = Array(features[(3 * r)..<(3 * r + 3)])
            let gotValues = (0..<3).map { values[3 * r + $0] }
            let wantValues = want.map { $0 >= 0 ? Float(phi[Int($0)]) : 0 }
            if got != want || gotValues != wantValues { topMismatches += 1 }
        }
        #expect(worst <= 1e-4, "\(label): largest contribution difference \(worst) at row \(worstRow)")
        #expect(sumMismatches == 0, "\(label): \(sumMismatches) rows whose contributions do not add up to the margin")
        #expect(topMismatches == 0, "\(label): \(topMismatches) of \(compared) rows with other top-3 reasons than their contributions'")
    }
}

extension Array where Element == [Float] {
    /// The columns as `FeatureColumns` for the duration of `body`.
    func withUnsafeColumns<R>(_ body: (FeatureColumns) throws -> R) rethrows -> R {
        var pointers: [UnsafePointer<Float>] = []
        func nest(_ i: Int) throws -> R {
            if i == count { return try body(FeatureColumns(columns: pointers, rowCount: first?.count ?? 0)) }
            return try self[i].withUnsafeBufferPointer { b in
                pointers.append(b.baseAddress!)
                return try nest(i + 1)
            }
        }
        return try nest(0)
    }
}
