@testable import ChurnCluster
import Foundation
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport
import WireFormat

/// The event path's wire messages and its pure pieces, without a cluster.
@Suite("Event messages and per-subscriber event state")
struct EventMessagesTests {
    static func sample(_ n: Int) -> [SubscriberEvent] {
        (0..<n).map { i in
            SubscriberEvent(eventID: "e\(i)", source: i % 2 == 0 ? "billing" : "network", subscriberID: 1_000_000_000 + Int64(i),
                            type: EventType.allCases[i % EventType.allCases.count], at: 1_796_000_000_000 + Int64(i), value: 3)
        }
    }

    @Test("an event batch round-trips; truncated, mismatched and hostile frames throw, never trap")
    func batchWire() throws {
        let events = Self.sample(50)
        let batch = EventBatch(events, shards: events.map { Int32(ShardKey.shard(of: $0.subscriberID, shardCount: 64)) })
        let bytes = batch.wireBytes()
        let back = try EventBatch.decode(bytes)
        #expect((0..<back.count).map { back.event($0) } == events)
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: WireError.self) { _ = try EventBatch.decode(Array(bytes[0..<cut])) }
        }
        // A type code past the catalogue.
        var bad = batch
        bad.types.elements[3] = 200
        #expect(throws: WireError.self) { _ = try EventBatch.decode(bad.wireBytes()) }
        // Columns of different lengths.
        var short = batch
        short.values.elements.removeLast()
        #expect(throws: WireError.self) { _ = try EventBatch.decode(short.wireBytes()) }
        // Random corruption: decodes or throws, and whatever decodes can be read whole.
        var rng = SeededGenerator("event batch corruption")
        for _ in 0..<2_000 {
            var b = bytes
            for _ in 0..<3 { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            if let d = try? EventBatch.decode(b) { for i in 0..<d.count { _ = d.event(i) } }
        }
    }

    @Test("a worker's event status round-trips with its blocked shards; one from a worker a version older reads them as none; a cut one throws")
    func workerEventStatus() throws {
        var stats = EventStats()
        stats.applied = 7; stats.liveRun = 3; stats.liveDecided = 2
        stats.shardsReplaying = 5; stats.shardsWaiting = 1; stats.shardsLost = 2
        let status = WorkerEventStatus(name: "worker-1", stats: stats, triggerFeed: "tcp://127.0.0.1:5", publicKey: "")
        let bytes = status.wireBytes()
        let back = try WorkerEventStatus.decode(bytes)
        #expect(back.name == "worker-1" && back.stats.applied == 7 && back.stats.liveDecided == 2)
        #expect(back.stats.shardsReplaying == 5 && back.stats.shardsWaiting == 1 && back.stats.shardsLost == 2)
        // The three counts are the last 24 bytes: without them, an older worker's message.
        let older = try WorkerEventStatus.decode(Array(bytes.dropLast(24)))
        #expect(older.stats.liveRun == 3 && older.stats.shardsReplaying == 0 && older.stats.shardsLost == 0)
        for cut in [1, 9, 30, bytes.count - 1] {
            #expect(throws: WireError.self) { _ = try WorkerEventStatus.decode(Array(bytes.dropLast(cut))) }
        }
    }

    @Test("a streamed shard carries the triggers its sender had not decided; from a sender a version older it carries none; a cut one throws")
    func shardStateUndecided() throws {
        var state = ShardState(shard: 3, featureCount: 2, ids: [10, 11], values: [1, 2, 3, 4])
        state.profileGeneration = 7
        state.undecided = [FiredTrigger(triggerID: "t", rule: "r", subscriberID: 10, source: "s", eventID: "e", eventType: "complaint", eventAt: 5,
                                        probabilityBefore: 0.1, probabilityAfter: 0.5, band: "very_high", reasons: [Reason(feature: "complaints_90d", contribution: 0.3)],
                                        modelVersion: "m", node: "worker-1", firedAt: 6)]
        let bytes = state.wireBytes()
        let back = try ShardState.decode(bytes)
        #expect(back.undecided == state.undecided && back.profileGeneration == 7 && back.ids.elements == [10, 11])
        // A sender one version older stops after the generation: an empty list of triggers (8 bytes).
        let older = try ShardState.decode(Array(bytes.prefix(bytes.count - (state.undecided.wireBytes().count))))
        #expect(older.undecided.isEmpty && older.profileGeneration == 7)
        for cut in [1, 5, 20] {
            #expect(throws: WireError.self) { _ = try ShardState.decode(Array(bytes.dropLast(cut))) }
        }
        // None to carry: exactly what a receiver one version older reads whole.
        var plain = state
        plain.undecided = []
        #expect(plain.wireBytes() == Array(bytes.prefix(bytes.count - state.undecided.wireBytes().count)))

        // What a receiver keeps of a peer's list: the shard's subscribers, fired within the last
        // day, at most 10,000.
        let now: Int64 = 10 * 86_400_000
        func trigger(_ subscriber: Int64, firedAt: Int64) -> FiredTrigger {
            FiredTrigger(triggerID: "t\(subscriber)-\(firedAt)", rule: "r", subscriberID: subscriber, source: "s", eventID: "e", eventType: "complaint",
                         eventAt: firedAt, probabilityBefore: 0.1, probabilityAfter: 0.5, band: "high", reasons: [], modelVersion: "m", node: "w", firedAt: firedAt)
        }
        let ids: [Int64] = (1_000_000_000..<1_000_000_400).filter { ShardKey.shard(of: $0, shardCount: 8) == 3 }
        let other = try #require((1_000_000_000..<1_000_000_400).first { ShardKey.shard(of: $0, shardCount: 8) != 3 })
        let kept = Confined.received([trigger(ids[0], firedAt: now - 1_000), trigger(other, firedAt: now - 1_000), trigger(2, firedAt: now - 1_000),
                                      trigger(ids[1], firedAt: now - 2 * 86_400_000)], shard: 3, shardCount: 8, ids: Set(ids), now: now)
        #expect(kept.map(\.subscriberID) == [ids[0]], "another shard's, an unknown subscriber's and a two-day-old trigger are dropped")
        let flood = (0..<12_000).map { trigger(ids[$0 % ids.count], firedAt: now - Int64($0)) }
        #expect(Confined.received(flood, shard: 3, shardCount: 8, ids: Set(ids), now: now).count == 10_000)
    }

    @Test("acks carry status, sequence and reason per event; a reason code past the list reads as none")
    func acks() throws {
        var acks = EventAcks(count: 4)
        acks.set(0, .accepted, seq: 42)
        acks.set(1, .duplicate)
        acks.set(2, .rejected, reason: .unknownSubscriber)
        acks.set(3, .busy)
        acks.retryAfterMillis = 20
        let back = try EventAcks.decode(acks.wireBytes())
        #expect(back.status(0) == .accepted && back.seqs.elements[0] == 42)
        #expect(back.status(1) == .duplicate && back.status(3) == .busy && back.retryAfterMillis == 20)
        #expect(back.reason(2) == .unknownSubscriber && back.reason(0) == nil)
        var hostile = back
        hostile.statuses.elements[2] = EventAckStatus.rejected.rawValue
        hostile.reasons.elements[2] = 250
        hostile.statuses.elements[1] = 77
        let odd = try EventAcks.decode(hostile.wireBytes())
        #expect(odd.reason(2) == nil)
        #expect(odd.status(1) == .retry, "an unknown status is an unknown outcome: resend")
    }

    @Test("a shard's event state survives the trip to another worker; a hostile snapshot throws")
    func snapshotWire() throws {
        let events = ShardEvents(shard: 5)
        events.appliedSeq = 99
        for (i, e) in Self.sample(20).enumerated() {
            var state = SubscriberEventState(window: WindowedState())
            _ = state.window.apply(e, now: e.at)
            state.note(Float(i) / 40, day: e.day)
            state.remember(RecentEvent(source: e.source, eventID: e.eventID, type: e.type.rawValue, at: e.at, value: e.value, seq: Int64(i), probabilityAfter: 0.5))
            events.subscribers[e.subscriberID] = state
            _ = events.cooldowns.admit(subscriber: e.subscriberID, rule: i % 3, at: e.at, cooldownMillis: 3_600_000)
        }
        let bytes = events.snapshot.wireBytes()
        let back = ShardEvents(try ShardEventSnapshot.decode(bytes))
        #expect(back.appliedSeq == 99 && back.shard == 5)
        #expect(back.subscribers == events.subscribers)
        #expect(back.cooldowns == events.cooldowns)
        for cut in stride(from: 0, to: bytes.count, by: 13) {
            #expect(throws: WireError.self) { _ = try ShardEventSnapshot.decode(Array(bytes[0..<cut])) }
        }
    }

    @Test("the lowest probability of the last 7 days, and the last five events, newest last")
    func subscriberState() {
        var s = SubscriberEventState(window: WindowedState())
        s.note(0.30, day: 100)
        s.note(0.10, day: 101)
        s.note(0.20, day: 101)
        s.note(0.50, day: 109)
        #expect(s.lowest7d(day: 107) == 0.10)
        #expect(s.lowest7d(day: 109) == 0.50, "day 101 is 8 days before day 109")
        for k in 0..<8 { s.remember(RecentEvent(source: "s", eventID: "e\(k)", type: "sms", at: Int64(k), value: 1, seq: Int64(k), probabilityAfter: 0)) }
        #expect(s.recent.map(\.eventID) == ["e3", "e4", "e5", "e6", "e7"])
        #expect(s.lowDays.count <= SubscriberEventState.lowDays)
    }

    @Test("a trigger's id depends on the rule and the event only (a replay writes the same row)")
    func triggerIDs() {
        let a = FiredTrigger.id(rule: "r", source: "s", eventID: "e", at: 1)
        #expect(a == FiredTrigger.id(rule: "r", source: "s", eventID: "e", at: 1))
        #expect(a != FiredTrigger.id(rule: "r2", source: "s", eventID: "e", at: 1))
        #expect(a != FiredTrigger.id(rule: "r", source: "s", eventID: "e", at: 2))
        #expect(FiredTrigger.id(rule: "ab", source: "c", eventID: "e", at: 1) != FiredTrigger.id(rule: "a", source: "bc", eventID: "e", at: 1))
        #expect(a.count == 34 && a.hasPrefix("t-"))
    }
}
