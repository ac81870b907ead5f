import SubscriberEvents
import SubscriberProfiles

/// Applies one logged event to its subscriber: the windowed state (created from the profile on the
/// subscriber's first event), the profile's features, the probability before and after with the
/// shard's model, and the trigger rules with their cool-downs. A deterministic function of the
/// shard's state, the event, its sequence number and `now` (the time the owner received it), so a
/// replay of the log gives the same profiles, states and triggers as the live run did.
struct EventApplier: Sendable {
    let model: ScoringModel
    let binding: ProfileSchemaBinding
    let rules: TriggerRules?
    let node: String

    enum Result {
        case applied(probabilityBefore: Double, probabilityAfter: Double, triggers: [FiredTrigger])
        case rejected(RejectionReason)
    }

    /// Applies `event` (logged as `seq` of `events.shard`, received at `now`) to `store`.
    func apply(_ event: SubscriberEvent, seq: Int64, now: Int64, events: ShardEvents, store: ProfileStore) -> Result {
        guard var profile = store.profile(of: event.subscriberID) else { return .rejected(.unknownSubscriber) }
        let nowDay = Int32(clamping: Timestamp.floorDiv(now, Timestamp.millisPerDay))
        // Taken out of the table while it changes (no copy-on-write copy of its buckets), put back after.
        let held = events.subscribers.removeValue(forKey: event.subscriberID)
        var state = held ?? SubscriberEventState(window: WindowedState.seeded(from: profile, binding: binding, day: nowDay))
        let outcome = state.window.apply(event, now: now)
        if let rejection = outcome.rejection {
            if let held { events.subscribers[event.subscriberID] = held }
            return .rejected(rejection)
        }
        let before = model.probability(profile: profile)
        binding.apply(outcome.writes, to: &profile)
        // A feature this copy holds no column for (the schema in force lacks it) stays missing, as
        // the store keeps it: the rescoring and the rules below see what every copy and replay sees.
        store.maskAbsent(&profile)
        store.upsert(id: event.subscriberID, profile: profile)
        let after = model.probability(profile: profile)
        state.note(Float(before), day: nowDay)
        let lowest = Double(state.lowest7d(day: nowDay) ?? Float(before))
        state.note(Float(after), day: nowDay)
        var fired: [FiredTrigger] = []
        if let rules {
            // Once a day (by the events' own clock, so a replay expires at the same points): the
            // cool-downs older than the longest rule's are forgotten (they can no longer hold a rule back).
            if nowDay > events.cooldownDay {
                events.cooldownDay = nowDay
                events.cooldowns.expire(before: now &- rules.longestCooldownMillis)
            }
            let context = TriggerContext(eventType: event.type, probabilityBefore: before, probabilityAfter: after,
                                         lowestProbability7d: lowest, billShock: outcome.billShock, profile: profile)
            let matched = rules.matching(context)
            if !matched.isEmpty {
                var explained: (band: RiskBand, reasons: [Reason])?
                for k in matched where events.cooldowns.admit(subscriber: event.subscriberID, rule: k, at: now, cooldownMillis: rules.rules[k].cooldownMillis) {
                    if explained == nil {
                        let s = model.score(profile: profile)
                        explained = (s.band, s.reasons)
                    }
                    let name = rules.rules[k].name
                    fired.append(FiredTrigger(triggerID: FiredTrigger.id(rule: name, source: event.source, eventID: event.eventID, at: event.at),
                                              rule: name, subscriberID: event.subscriberID, source: event.source, eventID: event.eventID,
                                              eventType: event.type.rawValue, eventAt: event.at, probabilityBefore: before, probabilityAfter: after,
                                              band: explained?.band.description ?? RiskBand(probability: after).description,
                                              reasons: explained?.reasons ?? [], modelVersion: model.version, node: node, firedAt: now))
                }
            }
        }
        state.remember(RecentEvent(source: event.source, eventID: event.eventID, type: event.type.rawValue, at: event.at, value: event.value,
                                   seq: seq, probabilityAfter: after))
        events.subscribers[event.subscriberID] = state
        events.appliedSeq = max(events.appliedSeq, seq)
        events.applied += 1
        return .applied(probabilityBefore: before, probabilityAfter: after, triggers: fired)
    }
}

extension ScoringModel {
    /// One subscriber's probability from its profile (catalogue order), without reasons.
    public func probability(profile: [Float]) -> Double {
        var row = [Float](repeating: .nan, count: profileColumn.count)  // a column not held is missing, as in every other path
        for (i, c) in profileColumn.enumerated() where c < profile.count { row[i] = profile[c] }
        return forest.transform(margin: forest.margin(row: row))
    }
}
