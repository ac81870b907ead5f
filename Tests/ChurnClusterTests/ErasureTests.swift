@testable import ChurnCluster
import Foundation
import Logging
import SubscriberEvents
import SubscriberProfiles
import Testing
import TestSupport
import WireFormat

@Suite("Erasure: requests, a worker's part on its event thread, what it remembers")
struct ErasureTests {
    @Test("ids are any subscriber id but the erased marker, each once, at most 10,000 distinct; the first bad one is named with its position")
    func validation() throws {
        #expect(try Erasure.validated([5, 3, 5, 9]) == [5, 3, 9])
        #expect(throws: ClusterError.self) { try Erasure.validated([]) }
        do {
            _ = try Erasure.validated([4, .min, 7])
            Issue.record("the erased marker accepted")
        } catch {
            #expect(error.description.contains("subscriber id -9223372036854775808 (position 2)"), "\(error)")
        }
        #expect(try Erasure.validated([0, -5]) == [0, -5], "imports accept any other id, so erasure does")
        #expect(try Erasure.validated(Array(repeating: 10_000, count: 20_000) + Array(1...9_999)).count == 10_000)
        do {
            _ = try Erasure.validated(Array(1...10_001))
            Issue.record("10,001 ids accepted")
        } catch {
            #expect(error.description.contains("10001 subscribers in one erasure; at most 10000"), "\(error)")
        }
    }

    @Test("the report travels whole")
    func wire() throws {
        var r = ErasureReport()
        r.subscribers = 4; r.foundInMemory = 3; r.copies = 6; r.workers = 2; r.snapshots = 32; r.seconds = 0.25
        r.rows = ["subscriber_profiles": 3, "churn_scores": 6, "subscriber_events": 9]
        var w = WireWriter()
        w.write(r)
        #expect(try ErasureReport.decode(w.take()) == r)
    }

    /// A shard's copy of `ids`, one feature each (the id).
    static func copy(_ ids: ClosedRange<Int64>) -> LoadedShard {
        let store = ProfileStore(featureCount: 1)
        for id in ids { store.upsert(id: id, profile: [Float(id)]) }
        return LoadedShard(store: store, generation: 1)
    }

    @Test("a worker erases the ids from every copy it holds and from their event state, and cleans copies that arrive later")
    func workerSide() throws {
        let confined = Confined(postgresURL: "", node: "worker-test", logger: Logger(label: "erasure-test"))
        let owner = Self.copy(1...1_000), standby = Self.copy(1_001...2_000)
        // Event state of a subscriber in the owner's shard: buckets, recent events, a cool-down.
        let events = ShardEvents(shard: 0)
        events.subscribers[10] = SubscriberEventState(window: WindowedState())
        events.subscribers[11] = SubscriberEventState(window: WindowedState())
        let admitted = [10, 11].map { events.cooldowns.admit(subscriber: $0, rule: 0, at: 1_000, cooldownMillis: 60_000) }
        #expect(admitted == [true, true])
        confined.slots[0] = Confined.Slot(store: owner, events: events, role: .standby)

        let result = try confined.erase([10, 1_500, 5_000], stores: [0: owner, 1: standby])
        #expect(result.found.elements == [10, 1_500] && result.copies == 2)
        #expect(owner.store.profile(of: 10) == nil && standby.store.profile(of: 1_500) == nil)
        #expect(owner.store.count == 999 && standby.store.count == 999)
        #expect(events.subscribers[10] == nil && events.subscribers[11] != nil, "only the erased subscriber's event state goes")
        #expect(events.cooldowns.lastFired(subscriber: 10, rule: 0) == nil && events.cooldowns.lastFired(subscriber: 11, rule: 0) == 1_000)

        // A copy that arrives afterwards (streamed from a peer that exported it just before) is cleaned.
        let late = Self.copy(1...1_000)
        #expect(confined.cleanArriving([0: late]) == 1)
        #expect(late.store.profile(of: 10) == nil && late.store.count == 999)
        #expect(confined.cleanArriving([0: late]) == 0, "nothing left to clean")
    }

    @Test("a worker remembers the most recent erased ids, up to its limit")
    func remembered() {
        var r = RememberedErasures()
        r.remember([1, 2, 3], limit: 5)
        r.remember([3, 4, 5, 6, 7], limit: 5)
        #expect(r.ids == [3, 4, 5, 6, 7])
        for k in 0..<10_000 { r.remember([Int64(100 + k)], limit: 5) }
        #expect(r.ids == Set((10_095...10_099).map(Int64.init)))
    }
}
