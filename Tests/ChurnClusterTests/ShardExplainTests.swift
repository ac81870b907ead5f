import Foundation
import SubscriberProfiles
import TestSupport
import Testing
@testable import ChurnCluster
@testable import TreeModel

/// A job's reasons explained in batches (exact TreeSHAP, `rescore --explain-method exact`, or path
/// attribution for a model too big to tabulate) are each subscriber's own: the same as a live query's.
@Suite("Reasons explained in batches in a job equal each subscriber's own explanation")
struct ShardExplainTests {
    @Test("exact reasons for everyone and for the at-risk only; path attribution of a model too big to tabulate",
          arguments: zip([RescoreOptions.Reasons.all, .atRisk, .all], [ExplainMode.exact, .exact, .approx]))
    func batchedReasons(reasons: RescoreOptions.Reasons, method: ExplainMode) throws {
        // An approx job tabulates path attribution per leaf; without the tables (a model too big
        // for them) it explains in batches like exact.
        let model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))), source: RescoringTests.model,
                                     tabulate: method == .exact)
        #expect((model.attribution == nil) == (method == .approx))
        let store = ProfileStore()
        var rng = SeededGenerator("ShardExplainTests \(reasons) \(method)")
        // Several blocks of the explainer's batch, the last one partial.
        let count = 3 * TreeExplainer.walkBlock + 41
        for k in 0..<count {
            let profile = (0..<store.featureCount).map { _ -> Float in
                Int.random(in: 0..<12, using: &rng) == 0 ? .nan : Float.random(in: 0...60, using: &rng)
            }
            #expect(store.upsert(id: 1_000_000 + Int64(k), profile: profile))
        }
        // The same model also active over a segment (half the rows with random is_prepaid), explained in the same walk.
        let segment = try ModelSegment.parse("is_prepaid >= 30", features: FeatureCatalogue.names).bind { FeatureCatalogue.index(of: $0) }
        let other = ServedActiveModel(name: "churn_prepaid", model: model, segmentText: "is_prepaid >= 30", segment: segment)
        let out = try model.score(shard: 0, store: store, options: RescoreOptions(reasons: reasons, method: method), others: [other])
        #expect(out.ids.elements.count == count)
        let o = try #require(out.others.first)
        #expect(o.rows.elements.count > 0 && o.rows.elements.count < count)
        for (k, row) in o.rows.elements.enumerated() {
            let profile = try #require(store.profile(of: out.ids.elements[Int(row)]))
            #expect(segment.contains(profile: profile))
            let alone = model.score(profile: profile, explain: method)
            let stored = (0..<3).compactMap { j -> Reason? in
                let f = Int(o.reasons.elements[3 * k + j])
                return f < 0 ? nil : Reason(feature: model.featureNames[f], contribution: Double(o.contributions.elements[3 * k + j]))
            }
            #expect(stored == (reasons == .atRisk && alone.band == .low ? [] : alone.reasons), "segment row \(row)")
        }
        var explained = 0
        for (i, id) in out.ids.elements.enumerated() {
            let profile = try #require(store.profile(of: id))
            let alone = model.score(profile: profile, explain: method)
            #expect(Float(alone.probability) == out.probabilities.elements[i])
            let stored = (0..<3).compactMap { k -> Reason? in
                let f = Int(out.reasons.elements[3 * i + k])
                return f < 0 ? nil : Reason(feature: model.featureNames[f], contribution: Double(out.contributions.elements[3 * i + k]))
            }
            if reasons == .atRisk && alone.band == .low {
                #expect(stored.isEmpty, "subscriber \(id) below medium risk got reasons")
            } else {
                #expect(stored == alone.reasons, "subscriber \(id)")
                explained += stored.isEmpty ? 0 : 1
            }
        }
        #expect(explained > 0)
    }

    @Test("a model reading more features than a reason's 16-bit index can name is refused with the reason, not trapped on in a job")
    func tooManyFeatures() throws {
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))) as? [String: Any])
        var learner = try #require(json["learner"] as? [String: Any])
        let names = try #require(learner["feature_names"] as? [String])
        let count = Int(Int16.max) + 1
        learner["feature_names"] = names + (names.count..<count).map { "extra_\($0)" }
        var parameters = try #require(learner["learner_model_param"] as? [String: Any])
        parameters["num_feature"] = String(count)
        learner["learner_model_param"] = parameters
        json["learner"] = learner
        let bytes = Array(try JSONSerialization.data(withJSONObject: json))
        #expect(throws: (any Error).self) { try ScoringModel(bytes: bytes, source: "wide.json") }
        do { _ = try ScoringModel(bytes: bytes, source: "wide.json") } catch {
            #expect("\(error)".contains("wide.json") && "\(error)".contains("reads 32768 features; a scoring model may read at most 32767"), "\(error)")
        }
    }
}
