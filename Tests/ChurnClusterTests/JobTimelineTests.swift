@testable import ChurnCluster
import Testing
import WireFormat

@Suite("Job timeline (where a rescoring job's time went)")
struct JobTimelineTests {
    let t0 = ContinuousClock.now

    @Test("scoring and writing end at their last event; call and write times add up over overlapping work; failures are not counted")
    func phases() throws {
        var clock = JobTimekeeper(start: t0)
        clock.acted(.score(shard: 0, node: "w1", role: .owner), now: t0)
        clock.acted(.score(shard: 1, node: "w2", role: .owner), now: t0 + .milliseconds(100))
        clock.happened(.scored(shard: 0, node: "w1", JobRunTests.scores(0)), now: t0 + .seconds(2))
        clock.acted(.write(connection: 0, entries: []), now: t0 + .seconds(2))
        clock.happened(.scoringFailed(shard: 1, node: "w2", error: "boom"), now: t0 + .seconds(3))
        clock.acted(.score(shard: 1, node: "w1", role: .owner), now: t0 + .seconds(3))
        clock.happened(.written(connection: 0, claimed: [0]), now: t0 + .seconds(4))
        clock.happened(.scored(shard: 1, node: "w1", JobRunTests.scores(1)), now: t0 + .seconds(5))
        clock.acted(.write(connection: 1, entries: []), now: t0 + .seconds(5))
        clock.happened(.writeFailed(connection: 1, .unavailable("gone")), now: t0 + .seconds(6))
        clock.acted(.write(connection: 1, entries: []), now: t0 + .seconds(6))
        clock.happened(.written(connection: 1, claimed: [1]), now: t0 + .milliseconds(7_500))
        clock.happened(.tick, now: t0 + .seconds(8))
        clock.ended(publishing: t0 + .seconds(8), now: t0 + .seconds(10))
        let t = clock.timeline
        #expect(t.scoringEnded == 5 && t.writingEnded == 7.5 && t.publish == 2 && t.total == 10)
        #expect(t.shardCalls == 4)  // 2 s for shard 0, 2 s for shard 1's second attempt
        #expect(t.writeBusy == 3.5 && t.writes == 2)  // 2 s + 1.5 s; the failed write not counted

        // The wire form keeps every figure.
        var w = WireWriter()
        w.write(t)
        #expect(try JobTimeline.decode(w.take()) == t)
    }

    @Test("a job that fails before publishing has no publication time")
    func failed() {
        var clock = JobTimekeeper(start: t0)
        clock.ended(publishing: nil, now: t0 + .seconds(3))
        #expect(clock.timeline.publish == 0 && clock.timeline.total == 3)
    }
}
