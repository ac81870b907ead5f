@testable import ChurnCluster
import Foundation
import SubscriberProfiles
import Testing
import TestSupport
@testable import TreeModel
import WireFormat

@Suite("Model registry: names, versions by prefix, formats, the wire forms")
struct ModelRegistryUnitTests {
    @Test("names: 1–64 of a–z, 0–9, '_', '.', '-', starting with a letter or digit")
    func names() throws {
        for ok in ["churn", "churn-90d", "prepaid.v2", "0day", String(repeating: "a", count: 64)] { #expect(try ModelRegistry.validName(ok) == ok) }
        for bad in ["", "Churn", "-churn", "churn model", "churn/1", "ç", String(repeating: "a", count: 65)] {
            #expect(throws: ClusterError.self, "\(bad)") { try ModelRegistry.validName(bad) }
        }
    }

    @Test("a model's features are checked against the schema in force: one it lacks is named with the schema's closest names; one the schema added is readable; a catalogue feature the schema dropped, or a category code beyond the schema's, is refused")
    func featureCheck() throws {
        let schema = try FeatureSchema(id: "subscriber_id", features: FeatureSchema.catalogue.features + [.init(name: "contract", kind: .category(["a", "b"]))])
        #expect(ModelFeatureCheck.problem(modelFeatures: ["arpu_30d", "region"], schema: schema, schemaVersion: 2) == nil)
        #expect(ModelFeatureCheck.problem(modelFeatures: ["f0", "f1", "f2"], schema: schema, schemaVersion: 2) == nil)
        #expect(ModelFeatureCheck.problem(modelFeatures: ["contract", "arpu_30d"], schema: schema, schemaVersion: 2) == nil)
        let lacking = ModelFeatureCheck.problem(modelFeatures: ["arpu_30d", "arpu_30"], schema: schema, schemaVersion: 2) ?? ""
        #expect(lacking.contains("model feature 'arpu_30' is not a subscriber profile feature: the feature schema in force (version 2) does not have it (closest: 'arpu_30d'"), "\(lacking)")
        let catalogue = FeatureCatalogue.names
        let unnamed = ModelFeatureCheck.problem(modelFeatures: (0...catalogue.count).map { "f\($0)" }, schema: schema, schemaVersion: 2) ?? ""
        #expect(unnamed.contains("'f\(catalogue.count)'"), "an unnamed model reads one column more than the catalogue has: \(unnamed)")
        // A schema of its own (the catalogue dropped): a catalogue feature is no longer readable.
        let own = try FeatureSchema(id: "customer_id", features: [.init(name: "tenure", kind: .integer), .init(name: "contract", kind: .category(["a", "b", "c"]))])
        let dropped = ModelFeatureCheck.problem(modelFeatures: ["tenure", "arpu_30d"], schema: own, schemaVersion: 3) ?? ""
        #expect(dropped.contains("model feature 'arpu_30d' is a built-in catalogue feature that the feature schema in force (version 3) does not have"), "\(dropped)")
        // A categorical split on code 5 of a 3-category feature.
        var tree = DecisionTree(left: [1, -1, -1], right: [2, -1, -1], feature: [1, 0, 0], threshold: [0, 0, 0], defaultLeft: [true, true, true],
                                missing: [.nanDefault, .nanDefault, .nanDefault], leafValue: [0, -1, 1], cover: [2, 1, 1], categories: [])
        tree.categories = [CategorySet(categories: [0, 5], inSetGoesLeft: false, reading: .xgboost), nil, nil]
        let model = TreeEnsemble(source: "m.json", library: .xgboost, libraryVersion: nil, objective: .binaryLogistic, featureNames: ["tenure", "contract"],
                                 featureTypes: nil, baseMargin: 0, baseScore: 0.5, trees: [tree], accumulation: .float32)
        let codes = ModelFeatureCheck.problem(model: model, schema: own, schemaVersion: 3) ?? ""
        #expect(codes.contains("model feature 'contract' splits on category code 5, but the feature schema in force (version 3) gives it 3 categories (codes 0–2)"), "\(codes)")
        tree.categories = [CategorySet(categories: [0, 2], inSetGoesLeft: false, reading: .xgboost), nil, nil]
        #expect(ModelFeatureCheck.problem(model: TreeEnsemble(source: "m.json", library: .xgboost, libraryVersion: nil, objective: .binaryLogistic, featureNames: ["tenure", "contract"],
                                                              featureTypes: nil, baseMargin: 0, baseScore: 0.5, trees: [tree], accumulation: .float32), schema: own, schemaVersion: 3) == nil)
    }

    @Test("a version is named whole or by a unique prefix of at least 6 characters; otherwise the versions there are are named")
    func versions() throws {
        let versions = ["m-3f2a91c07b5e0d14", "m-3f2a00000000000a", "m-77aa000000000000"]
        #expect(try ModelRegistry.resolve("m-77aa000000000000", among: versions, model: "churn") == "m-77aa000000000000")
        #expect(try ModelRegistry.resolve("m-77aa", among: versions, model: "churn") == "m-77aa000000000000")
        #expect(try ModelRegistry.resolve("m-3f2a9", among: versions, model: "churn") == "m-3f2a91c07b5e0d14")
        func refusal(_ asked: String, _ among: [String]) -> ModelRefusal? {
            do { _ = try ModelRegistry.resolve(asked, among: among, model: "churn"); return nil } catch { return error }
        }
        #expect(refusal("m-3f2a", versions)?.kind == .ambiguousVersion)
        #expect(refusal("m-3f2a", versions)?.description.contains("m-3f2a00000000000a, m-3f2a91c07b5e0d14") == true)
        #expect(refusal("m-7", versions)?.kind == .unknownVersion, "a prefix shorter than 6 characters names nothing")
        #expect(refusal("m-9999", versions)?.description.contains("its versions: m-3f2a00000000000a, m-3f2a91c07b5e0d14, m-77aa000000000000") == true)
        #expect(refusal("m-77aa000000000000", [])?.kind == .unknownModel)
    }

    @Test("the format is read from the contents")
    func formats() {
        #expect(ModelRegistry.format(of: Array("  \n{\"learner\": {}}".utf8)) == "xgboost")
        #expect(ModelRegistry.format(of: Array("tree\nversion=v4\n".utf8)) == "lightgbm")
    }

    @Test("a model's details travel whole, versions without drift included")
    func wire() throws {
        let v = RegisteredModel(name: "churn", version: "m-1", source: "a.json", format: "xgboost", features: ["tenure_months"], bytes: 10,
                                sha256: String(repeating: "0", count: 64), addedBy: "admin", addedAt: 1_765_000_000_000, served: true)
        var w2 = v
        w2.version = "m-2"; w2.served = false
        let drift = DriftReport(job: 4, modelVersion: "m-1", referenceJob: 3, features: [FeatureDrift(feature: "tenure_months", psi: 0.3)])
        let details = ModelDetails(name: "churn", versions: [v, w2], drift: [drift, nil])
        var w = WireWriter()
        w.write(details)
        let back = try ModelDetails.decode(w.take())
        #expect(back.versions == [v, w2] && back.drift == [drift, nil] && back.lastJobs.isEmpty)
        // The last jobs are not on the wire (a client one version older reads the details
        // strictly): the bytes are the same with them; they travel on their own.
        var withJobs = details
        let jobs = [ModelJobFigures(job: 4, role: "active", segment: "is_prepaid = 1", subscribers: 120, meanProbability: 0.25, perBand: [60, 30, 20, 10]), nil]
        withJobs.lastJobs = jobs
        var plain = WireWriter(), wj = WireWriter()
        plain.write(details)
        wj.write(withJobs)
        #expect(plain.take() == wj.take())
        var list = WireWriter()
        list.write(jobs)
        #expect(try [ModelJobFigures?].decode(list.take()) == jobs)
        let deployment = ModelDeployment(name: "churn", version: "m-2", previous: "m-1", workers: 2, switchSeconds: 0.002, seconds: 0.4)
        var d = WireWriter()
        d.write(deployment)
        #expect(try ModelDeployment.decode(d.take()) == deployment)
    }
}

@Suite("Model comparison: deciles, AUC and lift from histograms")
struct ModelComparisonTests {
    static func histogram(_ ps: [Double]) -> [Int64] {
        var h = [Int64](repeating: 0, count: ComparisonHistograms.bins)
        for p in ps { h[ComparisonHistograms.bin(p)] += 1 }
        return h
    }

    /// The Mann–Whitney statistic: a churner scoring above a non-churner, ties counted half.
    static func mannWhitney(_ pos: [Double], _ neg: [Double]) -> Double {
        var wins = 0.0
        for p in pos { for n in neg { wins += p > n ? 1 : (p == n ? 0.5 : 0) } }
        return wins / Double(pos.count * neg.count)
    }

    @Test("on scores that tie (k/20, each its own bin), the AUC from histograms is exactly the Mann–Whitney statistic")
    func aucWithTies() throws {
        var rng = SeededGenerator("auc with ties")
        let pos = (0..<2_000).map { _ in Double(Int.random(in: 6...20, using: &rng)) / 20 }, neg = (0..<5_000).map { _ in Double(Int.random(in: 0...14, using: &rng)) / 20 }
        let auc = try #require(ComparisonHistograms.auc(positive: Self.histogram(pos), negative: Self.histogram(neg)))
        #expect(abs(auc - Self.mannWhitney(pos, neg)) < 1e-12, "\(auc) vs \(Self.mannWhitney(pos, neg))")
        #expect(ComparisonHistograms.auc(positive: Self.histogram(pos), negative: Self.histogram([])) == nil)
    }

    @Test("the top-decile cut: a tenth exactly when scores are spread; a crowded bin at the cut goes in or out, whichever is nearer a tenth")
    func topCut() throws {
        let spread = (0..<10_000).map { Double($0) / 10_000 }
        let cut = ComparisonHistograms.topCut(Self.histogram(spread), share: 0.1)
        #expect(spread.filter { $0 >= cut }.count == 1_000)
        // 700 above 0.9, 600 tied at 0.5, the rest low: the tied bin in would make 1,300 (13%), out 700 (7%) → in (nearer 10%).
        let crowded = Array(repeating: 0.95, count: 700) + Array(repeating: 0.5, count: 600) + Array(repeating: 0.01, count: 8_700)
        let c = ComparisonHistograms.topCut(Self.histogram(crowded), share: 0.1)
        #expect(crowded.filter { $0 >= c }.count == 1_300)
        // 900 above, 600 tied: in would be 15%, out 9% → out.
        let crowded2 = Array(repeating: 0.95, count: 900) + Array(repeating: 0.5, count: 600) + Array(repeating: 0.01, count: 8_500)
        let c2 = ComparisonHistograms.topCut(Self.histogram(crowded2), share: 0.1)
        #expect(crowded2.filter { $0 >= c2 }.count == 900)
        #expect(abs(ComparisonHistograms.quantile(Self.histogram(spread), 0.5) - 0.5) < 2e-4)
    }

    @Test("the lift of the top decile: the churners are exactly the top fifth, so the top decile all churn against a fifth overall (5×)")
    func lift() throws {
        let ps = (0..<10_000).map { Double($0) / 10_000 }
        let cut = ComparisonHistograms.topCut(Self.histogram(ps), share: 0.1)
        let lift = try #require(ComparisonHistograms.lift(positive: Self.histogram(ps.filter { $0 >= 0.8 }), negative: Self.histogram(ps.filter { $0 < 0.8 }), threshold: cut))
        #expect(abs(lift - 5) < 1e-9, "\(lift)")
        // Churners the bottom fifth: none in the top decile.
        let none = ComparisonHistograms.lift(positive: Self.histogram(ps.filter { $0 < 0.2 }), negative: Self.histogram(ps.filter { $0 >= 0.2 }), threshold: cut)
        #expect(none == 0)
    }
}
