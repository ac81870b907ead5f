import SubscriberProfiles
import Testing
import TreeModel

@Suite("The default model")
struct DefaultModelTests {
    @Test("models/churn-default.json reads the catalogue's features and scores a generated base sensibly")
    func defaultModel() throws {
        let path = Fixtures.packageRoot.appendingPathComponent("models/churn-default.json").path
        let model = try TreeEnsemble.load(path: path)
        #expect(model.featureNames == FeatureCatalogue.names)
        let forest = try CompiledForest(model)
        var probabilities: [Double] = []
        var churners: [Double] = [], stayers: [Double] = []
        SyntheticBase(seed: 99).generate(0..<20_000) { _, profile, churned in
            let p = forest.transform(margin: forest.margin(row: profile))
            probabilities.append(p)
            if churned { churners.append(p) } else { stayers.append(p) }
        }
        #expect(probabilities.allSatisfy { $0 > 0 && $0 < 1 })
        let mean = probabilities.reduce(0, +) / Double(probabilities.count)
        #expect(mean > 0.015 && mean < 0.06, "mean probability \(mean)")
        // Subscribers who churn were scored far higher on average than those who stay.
        let churnMean = churners.reduce(0, +) / Double(churners.count)
        let stayMean = stayers.reduce(0, +) / Double(stayers.count)
        #expect(churnMean > 3 * stayMean)
    }
}
