@testable import ChurnCluster
import Synchronization
import Testing

@Suite("The open-loop query load's bookkeeping")
struct OpenLoopRecorderTests {
    @Test("latency runs from each query's scheduled time, not its send; failures count with their latency")
    func latencyFromSchedule() {
        // 1,000/s for 1 s: query i due at start + i ms.
        var r = OpenLoopRecorder(start: 1_000_000_000, rate: 1000, seconds: 1)
        #expect(r.total == 1000)
        #expect(r.due(0) == 1_000_000_000 && r.due(3) == 1_003_000_000)
        // Query 0 answered 2 ms after it was due (say it was sent late): 2,000 µs, not less.
        r.record(0, .found, at: r.due(0) + 2_000_000)
        r.record(1, .notFound, at: r.due(1) + 500_000)
        r.record(2, .failed, at: r.due(2) + 9_000_000)
        r.record(2, .found, at: r.due(2) + 1)  // a second answer for the same query is ignored
        r.record(5000, .found, at: r.due(0))  // out of range: ignored
        let result = r.finish(submitted: 3, at: r.due(2) + 9_000_000)
        #expect(result.queries == 3 && result.found == 1 && result.not_found == 1 && result.failed == 1)
        #expect(abs(result.max_us - 9_000) < 10)  // the failure's latency is in the histogram
        #expect(abs(result.p50_us - 2_000) < 5)
    }

    @Test("queries unanswered when the run ends fail then, with their latency so far; later answers are ignored")
    func unansweredFail() {
        var r = OpenLoopRecorder(start: 0, rate: 100, seconds: 1)
        for i in 0..<50 { r.record(i, .found, at: r.due(i) + 1_000_000) }
        let end = r.due(59) + 100_000_000
        let result = r.finish(submitted: 60, at: end)
        #expect(result.queries == 60 && result.failed == 10 && result.found == 50)
        #expect(result.max_us >= 100_000)
        r.record(55, .found, at: end + 1)
        #expect(r.found == 50)
        // 50 answers over the 0.6 s the 60 queries' schedule spans (the answers ended before).
        #expect(abs(result.achieved_per_second - 50 / 0.6) < 0.5)
    }

    @Test("the schedule is bounded: at most maxQueries, nothing for a non-finite rate")
    func bounded() {
        #expect(OpenLoopRecorder(start: 0, rate: 1e12, seconds: 1e6).total == OpenLoopRecorder.maxQueries)
        #expect(OpenLoopRecorder(start: 0, rate: .infinity, seconds: 1).total == 0)
        var empty = OpenLoopRecorder(start: 0, rate: 10, seconds: 0)
        let result = empty.finish(submitted: 5, at: 1)
        #expect(result.queries == 0 && result.p99_us == 0)
    }

    @Test("subscriber ids of the load stay in the base and spread over it")
    func ids() {
        let ids = (0..<10_000).map { QueryLoadGenerator.subscriber($0, seed: 1, subscribers: 1000) }
        #expect(ids.allSatisfy { (1_000_000_000..<1_000_001_000).contains($0) })
        #expect(Set(ids).count > 900)
    }

    @Test("the sender wakes at most once per tick: queries due within it go together, none before its time, each once and in order")
    func sendTick() async {
        #expect(QueryLoadGenerator.nextWake(due: 10, lastWake: 0, tick: 100) == 100)
        #expect(QueryLoadGenerator.nextWake(due: 500, lastWake: 0, tick: 100) == 500)
        #expect(QueryLoadGenerator.nextWake(due: 10, lastWake: 0, tick: 0) == 10)
        // 5,000/s for 0.6 s (a query due every 200 µs) with a 2 ms tick: ~300 wake-ups of ~10
        // queries. A wake-up per query would be ~3,000 sends over 100 µs apart; a loaded machine
        // only merges wake-ups (or splits one where it preempts the sender mid-burst).
        let sends = Mutex<[(id: Int64, at: UInt64)]>([])
        var options = QueryLoadGenerator.Options(rate: 5_000, seconds: 0.6, subscribers: 1000)
        options.sendTick = .milliseconds(2)
        options.drain = .seconds(2)
        let before = monotonicNanos()  // the schedule starts 20 ms after `run` is called
        let result = await QueryLoadGenerator.run(options, targets: [{ id, done in
            let at = monotonicNanos()
            sends.withLock { $0.append((id, at)) }
            done(.found)
        }])
        let all = sends.withLock { $0 }
        #expect(result.queries == 3000 && result.found == 3000 && all.count == 3000)
        var wakeups = 1
        for k in 1..<all.count where all[k].at &- all[k - 1].at > 100_000 { wakeups += 1 }
        #expect(wakeups <= 1_000, "\(wakeups) wake-ups for 3,000 queries over 0.6 s with a 2 ms tick")
        // Each query once, in schedule order (query k asks for the k-th id of the seeded sequence),
        // and none before its due time (start + k × 200 µs, start ≥ before + 20 ms).
        #expect(all.enumerated().allSatisfy { $0.element.id == QueryLoadGenerator.subscriber($0.offset, seed: options.seed, subscribers: 1000) })
        #expect(all.enumerated().allSatisfy { $0.element.at >= before + 20_000_000 + UInt64($0.offset) * 200_000 }, "a query sent before its time")
    }
}
