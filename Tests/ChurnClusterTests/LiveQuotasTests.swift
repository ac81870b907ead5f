@testable import ChurnCluster
import Retention
import Testing

/// The live campaign's leases of capacity and budget.
@Suite("Live campaign leases")
struct LiveQuotasTests {
    typealias Lease = LiveQuotas.Lease

    static let quotas = LiveQuotas(totals: ["call": 100, "budget": 50], units: ["budget": 2])

    static func sum(_ leases: [Lease], _ resource: String) -> Double { leases.filter { $0.resource == resource }.reduce(0) { $0 + $1.granted } }

    /// Applies `round`'s changes to `leases`.
    static func apply(_ changed: [Lease], to leases: inout [Lease]) {
        for c in changed {
            if let i = leases.firstIndex(where: { $0.node == c.node && $0.resource == c.resource }) { leases[i] = c } else { leases.append(c) }
        }
    }

    @Test("members get a chunk each (a quarter of the total over the members), topped up when below half a chunk; the total is never exceeded")
    func chunks() {
        var leases: [Lease] = []
        Self.apply(Self.quotas.round(leases, members: ["w1", "w2"]), to: &leases)
        #expect(leases.filter { $0.resource == "call" }.map(\.granted) == [12, 12])
        #expect(leases.filter { $0.resource == "budget" }.map(\.granted) == [6.25, 6.25])
        #expect(Self.quotas.round(leases, members: ["w1", "w2"]).isEmpty, "nobody is low: nothing changes")
        // w1 spends; it is topped up, again and again, until the total is gone.
        for _ in 0..<40 {
            for i in leases.indices where leases[i].node == "w1" { leases[i].used = leases[i].granted }
            Self.apply(Self.quotas.round(leases, members: ["w1", "w2"]), to: &leases)
            #expect(Self.sum(leases, "call") <= 100 && Self.sum(leases, "budget") <= 50)
        }
        #expect(Self.sum(leases, "call") == 100 && Self.sum(leases, "budget") == 50)
    }

    @Test("a worker that left gives back what it did not spend, and the members can have it")
    func reclaim() {
        var leases = [Lease(node: "w1", resource: "call", granted: 60, used: 10), Lease(node: "w2", resource: "call", granted: 40, used: 40)]
        let changed = Self.quotas.round(leases, members: ["w2"])
        #expect(changed.contains(Lease(node: "w1", resource: "call", granted: 10, used: 10)))
        Self.apply(changed, to: &leases)
        #expect(leases.first { $0.node == "w2" && $0.resource == "call" }!.granted > 40)
        #expect(Self.sum(leases, "call") <= 100)
    }

    @Test("a small total still moves one contact at a time; a capacity of 0 grants nothing")
    func smallTotals() {
        let q = LiveQuotas(totals: ["call": 3, "sms": 0], units: [:])
        var leases: [Lease] = []
        Self.apply(q.round(leases, members: ["a", "b", "c", "d"]), to: &leases)
        #expect(Self.sum(leases, "call") == 3 && leases.filter { $0.resource == "call" }.allSatisfy { $0.granted == 1 })
        #expect(Self.sum(leases, "sms") == 0)
        #expect(LiveQuotas.totals(capacity: ["call": 5], budget: 10) == ["call": 5, "budget": 10])
    }

    @Test("a trigger that finds its lease dry waits from then, however long it queued: while the campaign has room not leased out yet, long enough for late lease rounds; once all is leased, briefly")
    func dryWait() throws {
        let fired: Int64 = 1_000_000
        let trigger = FiredTrigger(triggerID: "t", rule: "r", subscriberID: 1, source: "s", eventID: "e", eventType: "complaint", eventAt: fired,
                                   probabilityBefore: 0.1, probabilityAfter: 0.5, band: "very_high", reasons: [], modelVersion: "m", node: "w1", firedAt: fired)
        let input = LiveInput(trigger: trigger, shard: 0, profile: [])
        // Decided 10 s after it fired (a backlog): it still gets its wait.
        let first = try #require(LiveDecisions.waiting(input, now: fired + 10_000, unleased: false))
        #expect(first.drySince == fired + 10_000)
        let again = try #require(LiveDecisions.waiting(first, now: fired + 10_000 + LiveDecisions.leaseWait - 1, unleased: false))
        #expect(again.drySince == fired + 10_000, "the wait is counted from when it first found no room")
        #expect(LiveDecisions.waiting(again, now: fired + 10_000 + LiveDecisions.leaseWait, unleased: false) == nil, "then it is dropped as no_capacity")
        #expect(LiveDecisions.waiting(again, now: fired + 10_000 + LiveDecisions.leaseWait, unleased: true) != nil, "unless the campaign has room not leased yet")
        #expect(LiveDecisions.waiting(again, now: fired + 10_000 + LiveDecisions.leaseWaitUnleased, unleased: true) == nil)
    }

    @Test("unleased room: budget left beyond what was granted (at least the cheapest offer), or a channel's capacity")
    func unleasedRoom() throws {
        let budgeted = try Campaign.parse(Array(LiveCampaignTests.campaign(name: "c", callCapacity: nil, control: 0, budget: 1).utf8), source: "c.json")
        let cheapest = budgeted.offers.map(\.cost).min() ?? 0
        #expect(LiveDecisions.hasUnleasedRoom(budgeted, leased: [:]))
        #expect(LiveDecisions.hasUnleasedRoom(budgeted, leased: ["budget": 1 - cheapest]))
        #expect(!LiveDecisions.hasUnleasedRoom(budgeted, leased: ["budget": 1 - cheapest / 2]), "less than any offer costs")
        #expect(!LiveDecisions.hasUnleasedRoom(budgeted, leased: ["budget": 1]))
        let capped = try Campaign.parse(Array(LiveCampaignTests.campaign(name: "c", callCapacity: 30, control: 0, budget: 5).utf8), source: "c.json")
        #expect(LiveDecisions.hasUnleasedRoom(capped, leased: ["call": 29, "budget": 5]), "a call left to lease")
        #expect(!LiveDecisions.hasUnleasedRoom(capped, leased: ["call": 30, "budget": 5]))
    }
}
