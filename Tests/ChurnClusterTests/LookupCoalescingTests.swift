@testable import ChurnCluster
import Testing

@Suite("Live queries coalesced into batch calls")
struct LookupCoalescingTests {
    @Test("a query goes out at once while calls are free; under load the waiting ones share the next call")
    func batchesGrowUnderLoad() {
        var c = LookupCoalescing<Int>(maxBatch: 3, maxInFlight: 2, maxWaiting: 4)
        func sent(_ e: LookupCoalescing<Int>.Enqueued) -> [Int]? { if case .send(let b) = e { b } else { nil } }
        func queued(_ e: LookupCoalescing<Int>.Enqueued) -> Bool { if case .queued = e { true } else { false } }
        #expect(sent(c.enqueue(1)) == [1])  // nothing in flight: sent alone, no timer
        #expect(sent(c.enqueue(2)) == [2])
        #expect(queued(c.enqueue(3)))  // two calls under way: it waits
        #expect(queued(c.enqueue(4)))
        #expect(queued(c.enqueue(5)))
        #expect(queued(c.enqueue(6)))
        if case .full = c.enqueue(99) {} else { Issue.record("a fifth waiting query was queued past maxWaiting") }
        #expect(c.completed() == [3, 4, 5])  // the next call carries what waited, up to maxBatch
        #expect(c.completed() == [6])
        #expect(c.completed() == nil)
        #expect(c.completed() == nil)
        #expect(c.inFlight == 0 && c.waiting.isEmpty)
        #expect(sent(c.enqueue(7)) == [7])
    }
}
