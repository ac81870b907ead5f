import Foundation
import Testing
import TestSupport
@testable import ChurnCluster
import SubscriberEvents
import SubscriberProfiles

/// An event on a copy that holds no column for a catalogue feature (the feature schema in force
/// lacks it): the update of that feature is skipped everywhere, so the event's own rescoring and
/// trigger rules see what the store keeps and what every other copy and replay sees.
@Suite("Events on a copy without a catalogue feature's column")
struct EventApplierAbsentTests {
    @Test("a complaint on a copy without complaints_90d: the feature stays missing and a rule on it does not fire; with the column it fires")
    func absentFeatureNeverMatches() throws {
        let model = try ScoringModel(bytes: Array(try Data(contentsOf: URL(fileURLWithPath: RescoringTests.model))), source: "default")
        let rules = try TriggerRules.parse(Array("""
            {"rules": [{"name": "complained", "when": {"event": ["complaint"], "features": [{"feature": "complaints_90d", "op": ">=", "value": 1}]}, "cooldown_hours": 1}]}
            """.utf8), file: "rules.json", featureNames: FeatureCatalogue.names)
        let applier = EventApplier(model: model, binding: ProfileSchemaBinding(featureNames: FeatureCatalogue.names), rules: rules, node: "test")
        let complaints = try #require(FeatureCatalogue.index(of: "complaints_90d"))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var fired: [Bool] = []
        for absent in [Set<Int>(), [complaints]] {
            let store = ProfileStore(featureCount: FeatureCatalogue.count, absent: absent)
            var profile = [Float](repeating: 1, count: FeatureCatalogue.count)
            profile[complaints] = absent.isEmpty ? 0 : .nan
            store.upsert(id: 42, profile: profile)
            let event = SubscriberEvent(eventID: "e-\(absent.count)", subscriberID: 42, type: .complaint, at: now - 1_000)
            guard case .applied(_, _, let triggers) = applier.apply(event, seq: 1, now: now, events: ShardEvents(shard: 0), store: store) else {
                Issue.record("the complaint was not applied (absent \(absent))")
                continue
            }
            fired.append(!triggers.isEmpty)
            let held = try #require(store.profile(of: 42))[complaints]
            #expect(absent.isEmpty ? held == 1 : held.isNaN, "complaints_90d held \(held) (absent \(absent))")
        }
        #expect(fired == [true, false], "fired with the column, then without it: \(fired)")
    }
}
