@testable import ChurnCluster
import Testing

@Suite("Live queries coalesced into batch calls")
struct LookupCoalescingTests {
    @Test("a query goes out at once while calls are free; under load the waiting ones share the next call")
    func batchesGrowUnderLoad() {
        var c = LookupCoalescing<Int>(maxBatch: 3, maxInFlight: 2)
        #expect(c.enqueue(1) == [1])  // nothing in flight: sent alone, no timer
        #expect(c.enqueue(2) == [2])
        #expect(c.enqueue(3) == nil)  // two calls under way: it waits
        #expect(c.enqueue(4) == nil)
        #expect(c.enqueue(5) == nil)
        #expect(c.enqueue(6) == nil)
        #expect(c.completed() == [3, 4, 5])  // the next call carries what waited, up to maxBatch
        #expect(c.completed() == [6])
        #expect(c.completed() == nil)
        #expect(c.completed() == nil)
        #expect(c.inFlight == 0 && c.waiting.isEmpty)
        #expect(c.enqueue(7) == [7])
    }
}
