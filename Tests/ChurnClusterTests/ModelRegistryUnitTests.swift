@testable import ChurnCluster
import Foundation
import Testing
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
        #expect(back.versions == [v, w2] && back.drift == [drift, nil])
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

    @Test("the AUC from histograms equals the Mann–Whitney statistic of the scores (ties in a bin counted half)")
    func auc() throws {
        var rng = SystemRandomNumberGenerator()
        let pos = (0..<3_000).map { _ in Double.random(in: 0.2...1, using: &rng) }, neg = (0..<7_000).map { _ in Double.random(in: 0...0.8, using: &rng) }
        var wins = 0.0
        for p in pos { for n in neg { wins += p > n ? 1 : (p == n ? 0.5 : 0) } }
        let exact = wins / Double(pos.count * neg.count)
        let fromHistograms = try #require(ComparisonHistograms.auc(positive: Self.histogram(pos), negative: Self.histogram(neg)))
        #expect(abs(fromHistograms - exact) < 1e-4, "\(fromHistograms) vs \(exact)")
        #expect(ComparisonHistograms.auc(positive: Self.histogram(pos), negative: Self.histogram([])) == nil)
    }

    @Test("deciles, the top-decile threshold and the lift")
    func decilesAndLift() throws {
        let ps = (0..<10_000).map { Double($0) / 10_000 }
        let h = Self.histogram(ps)
        #expect(abs(ComparisonHistograms.quantile(h, 0.5) - 0.5) < 2e-4)
        let cut = ComparisonHistograms.threshold(h, 0.9)
        #expect(abs(Double(ps.filter { $0 >= cut }.count) - 1_000) <= 2, "the top decile holds a tenth")
        // Churners exactly the top fifth: the top decile all churn, the rate overall is 20%: lift 5.
        let pos = Self.histogram(ps.filter { $0 >= 0.8 }), neg = Self.histogram(ps.filter { $0 < 0.8 })
        let lift = try #require(ComparisonHistograms.lift(positive: pos, negative: neg, threshold: cut))
        #expect(abs(lift - 5) < 0.01, "\(lift)")
    }
}
