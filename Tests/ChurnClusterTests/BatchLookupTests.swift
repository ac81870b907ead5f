import Foundation
import SubscriberProfiles
import WireFormat
import TestSupport
import Testing
@testable import ChurnCluster
@testable import TreeModel

/// A worker's answer to a batch of live queries (`lookup(batch:)`, what coalesced queries and the
/// HTTP API's batch endpoint ask) scores and explains the batch's rows together; each answer must
/// still be the subscriber's own, as a single query gives it, from the model that answers for it.
@Suite("A batch of live queries is scored and explained together, and each answer is the subscriber's own")
struct BatchLookupTests {
    @Test("path attribution and exact TreeSHAP; the challenger's share; unknown ids and shards not held; absent and missing features",
          arguments: ExplainMode.allCases)
    func eachAnswerIsItsOwn(explain: ExplainMode) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model)))
        let model = try ScoringModel(bytes: bytes, source: RescoringTests.model)
        // The challenger: another base score (so every probability differs from the served
        // model's), without the per-leaf tables (its rows take the batched explainer's way).
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"base_score\":\"[3.2799017E-2]\""))
        let challengerBytes = Array(text.replacingOccurrences(of: "\"base_score\":\"[3.2799017E-2]\"", with: "\"base_score\":\"[1.5E-1]\"").utf8)
        let challengerModel = try ScoringModel(bytes: challengerBytes, source: "challenger.json", tabulate: false)
        #expect(challengerModel.version != model.version)
        // An active model over a segment (the served model's bytes), answered per row when asked.
        let segment = try ModelSegment.parse("is_prepaid >= 30", features: FeatureCatalogue.names).bind { FeatureCatalogue.index(of: $0) }
        let active = ServedActiveModel(name: "churn_prepaid", model: model, segmentText: "is_prepaid >= 30", segment: segment)
        let challenger = ServedChallenger(name: "churn-next", model: challengerModel, basisPoints: 3_000)
        var rng = SeededGenerator("BatchLookupTests \(explain)")
        // Two shards; the second holds no column for one feature the model reads (absent: missing).
        let absent = try #require(model.profileColumn.first)
        var stores: [Int: LoadedShard] = [:]
        var ids: [Int64] = [], shards: [Int32] = []
        for shard in 0..<2 {
            let store = ProfileStore(absent: shard == 1 ? [absent] : [])
            for k in 0..<300 {
                let id = 1_000_000 + Int64(shard * 1_000 + k)
                let profile = (0..<store.featureCount).map { _ -> Float in
                    Int.random(in: 0..<10, using: &rng) == 0 ? .nan : Float.random(in: 0...60, using: &rng)
                }
                #expect(store.upsert(id: id, profile: profile))
                ids.append(id)
                shards.append(Int32(shard))
            }
            stores[shard] = LoadedShard(store: store)
        }
        // Unknown ids, and ids of a shard this worker does not hold, in between.
        var order = Array(ids.indices).shuffled(using: &rng)
        order = order.enumerated().flatMap { k, i in k % 50 == 7 ? [i, -1, -2] : [i] }
        let askedIDs = order.map { $0 == -1 ? 5_000_000 : $0 == -2 ? ids[0] : ids[$0] }
        let askedShards = order.map { $0 == -1 ? 0 : $0 == -2 ? 9 : shards[$0] }
        let batch = LookupBatch(ids: askedIDs, shards: askedShards, explain: explain, models: true)
        let scored = model.score(batch: batch, stores: stores, challenger: challenger, others: [active], node: "worker-test")
        // What the client reads: the answer after the wire.
        var w = WireWriter()
        scored.encode(to: &w)
        let out = try w.bytes.withUnsafeBytes { raw in
            var r = WireReader(raw)
            return try BatchScores(from: &r)
        }
        #expect(out.count == askedIDs.count)
        var byChallenger = 0, explained = 0, inSegment = 0
        for (i, id) in askedIDs.enumerated() {
            switch order[i] {
            case -1:
                #expect(out.outcome(i) == .notFound, "unknown id at \(i)")
                continue
            case -2:
                #expect(out.outcome(i) == .notHere, "shard not held at \(i)")
                continue
            default:
                break
            }
            #expect(out.outcome(i) == .found)
            let store = try #require(stores[Int(askedShards[i])]?.store)
            let profile = try #require(store.profile(of: id))
            let answering = challenger.model(for: id, champion: model)
            #expect(out.isChallenger(i) == (answering === challengerModel), "subscriber \(id): answered by the wrong model")
            byChallenger += out.isChallenger(i) ? 1 : 0
            let alone = answering.score(profile: profile, explain: explain)
            #expect(out.probabilities.elements[i] == alone.probability, "subscriber \(id): \(out.probabilities.elements[i]) in the batch, \(alone.probability) alone")
            let reasons = (0..<3).compactMap { out.reason(i, $0) }.map { Reason(feature: $0.feature, contribution: $0.contribution) }
            #expect(reasons == alone.reasons, "subscriber \(id)")
            explained += reasons.isEmpty ? 0 : 1
            // The active model's answer, only where its segment holds the subscriber.
            let answers = try #require(out.active?[i])
            if segment.contains(profile: profile) {
                let own = model.score(profile: profile)
                #expect(answers.count == 1 && answers.first?.name == "churn_prepaid" && answers.first?.probability == own.probability
                        && answers.first?.reasons == own.reasons, "subscriber \(id): the active model's answer")
                inSegment += 1
            } else {
                #expect(answers.isEmpty, "subscriber \(id) is outside the active model's segment")
            }
        }
        #expect(byChallenger > 60 && byChallenger < 300, "about 30% of 600 answered by the challenger: \(byChallenger)")
        #expect(inSegment > 0 && inSegment < 600)
        #expect(explained > 500)
    }

    @Test("a batch of nothing but misses, and an empty batch")
    func nothingFound() throws {
        let model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))), source: RescoringTests.model)
        let stores = [0: LoadedShard(store: ProfileStore())]
        let misses = model.score(batch: LookupBatch(ids: [7, 8], shards: [0, 3], explain: .approx), stores: stores, node: "w")
        #expect(misses.count == 2 && misses.outcome(0) == .notFound && misses.outcome(1) == .notHere)
        #expect(model.score(batch: LookupBatch(ids: [], shards: [], explain: .exact), stores: stores, node: "w").count == 0)
    }
}
