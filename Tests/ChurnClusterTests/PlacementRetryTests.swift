@testable import ChurnCluster
import Testing

@Suite("Placement retry: when the coordinator tries again to place shards after a rebalance failed")
struct PlacementRetryTests {
    @Test("the delay doubles from 1 s up to 30 s; one retry is scheduled at a time; a success after failures says how many, and the count starts over")
    func schedule() {
        var retry = PlacementRetry()
        #expect((1...7).map { retry.delay(attempt: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(30), .seconds(30)])
        #expect(retry.delay(attempt: 1_000) == .seconds(30))
        #expect(retry.succeeded() == .none)  // never failed: nothing to say

        let t0 = ContinuousClock.now
        #expect(retry.failed(now: t0) == .schedule(at: t0 + .seconds(1), attempt: 1))
        // Another failure while one is scheduled (a worker joined meanwhile and its placement failed too).
        #expect(retry.failed(now: t0 + .milliseconds(10)) == .alreadyScheduled)
        retry.retrying()
        #expect(retry.failed(now: t0 + .seconds(1)) == .schedule(at: t0 + .seconds(1) + .seconds(4), attempt: 3))
        retry.retrying()
        #expect(retry.retriesRun == 2 && retry.failures == 3)
        #expect(retry.succeeded() == .settled(retries: 3))
        #expect(retry.failures == 0)
        // The next outage starts again from the first delay.
        #expect(retry.failed(now: t0 + .seconds(60)) == .schedule(at: t0 + .seconds(61), attempt: 1))
    }

    @Test("bounds: a zero or negative first delay is taken as 1 ms, a cap below it as the first delay")
    func bounds() {
        let tiny = PlacementRetry(first: .zero, cap: .zero)
        #expect(tiny.delay(attempt: 1) == .milliseconds(1) && tiny.delay(attempt: 5) == .milliseconds(1))
        let odd = PlacementRetry(first: .seconds(5), cap: .seconds(2))
        #expect(odd.delay(attempt: 1) == .seconds(5) && odd.delay(attempt: 3) == .seconds(5))
    }
}
