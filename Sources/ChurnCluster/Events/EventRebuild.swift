import Postgres
import ProfileDatabase
import SubscriberEvents
import SubscriberProfiles

/// Rebuilds shards from scratch the way a new owner with no copy would: the profiles in
/// `subscriber_profiles` (the newest snapshot) plus every event of the log received after its
/// `as_of`, in sequence order, with the same `EventApplier`. What the kill tests compare the live
/// shards with ("every profile equals the one rebuilt from snapshot + log").
enum EventRebuild {
    struct Shard {
        let store: ProfileStore
        let events: ShardEvents
        /// The ids of the triggers the log's events fire.
        var triggerIDs: Set<String>
    }

    static func rebuild(url: String, shards: [Int], shardCount: Int, model: ScoringModel, rules: TriggerRules?) throws -> [Int: Shard] {
        let (stores, _) = try ProfileLoader.catalogue(url: url).load(shards: shards, shardCount: shardCount)
        let c = try PostgresConnection(url: url)
        let asOf = try EventLog.profilesAsOf(c) ?? 0
        let older = asOf > 0 ? try EventLog.olderProfiles(c, shards: shards, shardCount: shardCount, latest: asOf) : [:]
        let applier = EventApplier(model: model, binding: ProfileSchemaBinding(featureNames: FeatureCatalogue.names), rules: rules, node: "rebuild")
        var out: [Int: Shard] = [:]
        for s in shards {
            let store = stores[s] ?? ProfileStore()
            let events = ShardEvents(shard: s)
            events.receivedFloor = asOf
            events.olderProfiles = older[s] ?? [:]
            let floor = events.replayFloor
            var ids = Set<String>()
            while true {
                let rows = try EventLog.events(c, shard: s, afterSeq: events.appliedSeq, receivedAfter: floor)
                if rows.isEmpty { break }
                for row in rows {
                    guard events.holdsNot(row) else {
                        events.appliedSeq = max(events.appliedSeq, row.seq)
                        continue
                    }
                    if case .applied(_, _, let fired) = applier.apply(row.event, seq: row.seq, now: row.receivedMillis, events: events, store: store) {
                        for t in fired { ids.insert(t.triggerID) }
                    }
                    events.appliedSeq = max(events.appliedSeq, row.seq)
                }
            }
            out[s] = Shard(store: store, events: events, triggerIDs: ids)
        }
        return out
    }
}
