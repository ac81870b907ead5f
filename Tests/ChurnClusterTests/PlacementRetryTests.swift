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
        #expect(retry.failures == 0 && retry.pending(now: t0) == nil)
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

    @Test("what the status shows: nothing after a success; after a failure the attempts, the last reason (bounded) and the seconds to the next try; none while the retry runs")
    func pending() {
        var retry = PlacementRetry()
        let t0 = ContinuousClock.now
        #expect(retry.pending(now: t0) == nil)
        _ = retry.failed(now: t0, reason: "could not move the lost worker's shards: server closed the connection")
        #expect(retry.pending(now: t0 + .milliseconds(250)) == PlacementPending(failures: 1, lastError: "could not move the lost worker's shards: server closed the connection",
                                                                               retryInSeconds: 0.75))
        #expect(retry.pending(now: t0)?.description == "placing shards failed 1 time (last: could not move the lost worker's shards: server closed the connection); next try in 1 s")
        retry.retrying()
        #expect(retry.pending(now: t0 + .seconds(1))?.retryInSeconds == nil)
        #expect(retry.pending(now: t0 + .seconds(1))?.description.hasSuffix("trying again now") == true)
        _ = retry.failed(now: t0 + .seconds(1), reason: String(repeating: "x", count: 10_000))
        let long = retry.pending(now: t0 + .seconds(1))
        #expect(long?.failures == 2 && long?.lastError.count == PlacementRetry.failureLimit + 1 && long?.retryInSeconds == 2)
        #expect(retry.pending(now: t0 + .seconds(60))?.retryInSeconds == 0, "overdue: 0, never negative")
        _ = retry.succeeded()
        #expect(retry.pending(now: t0 + .seconds(60)) == nil)
    }
}
