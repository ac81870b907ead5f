import Histogram

/// The bookkeeping of an open-loop query load (`churngrid bench queries`), without clocks or
/// threads: query i is due at `start + i × interval` whatever happened to the earlier ones, and
/// its latency runs from that scheduled time to its answer — so a stall delays every query due
/// meanwhile (no coordinated omission). Failed queries count with their latency too; queries
/// still unanswered when the run ends fail then.
public struct OpenLoopRecorder: Sendable {
    /// The first query's scheduled time, in nanoseconds of a monotonic clock.
    public let start: UInt64
    /// Nanoseconds between scheduled queries.
    public let interval: Double
    /// Queries scheduled over the whole run.
    public let total: Int
    /// One bit per query: answered (or failed) already.
    private var answered: [UInt64]
    private(set) var histogram = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    public private(set) var recorded = 0
    public private(set) var found = 0
    public private(set) var notFound = 0
    public private(set) var failed = 0
    private(set) var lastAnswer: UInt64
    private(set) var finished = false

    /// How a query ended.
    public enum Outcome: Sendable {
        case found, notFound, failed
    }

    /// The most queries one run may schedule (its bookkeeping is one bit each).
    public static let maxQueries = 100_000_000

    /// - Parameters:
    ///   - rate: queries per second; `seconds` the length of the schedule (at most `maxQueries` in all).
    public init(start: UInt64, rate: Double, seconds: Double) {
        self.start = start
        interval = 1e9 / max(rate, 1e-9)
        let planned = (rate * seconds).rounded(.down)
        total = planned.isFinite ? Int(min(max(0, planned), Double(Self.maxQueries))) : 0
        answered = Array(repeating: 0, count: (total + 63) / 64)
        lastAnswer = start
    }

    /// When query `i` is due.
    public func due(_ i: Int) -> UInt64 { start &+ UInt64(Double(max(0, i)) * interval) }

    /// Query `i` ended at `now` (nanoseconds). A second answer for the same query, one out of
    /// range, or one after `finish` is ignored.
    public mutating func record(_ i: Int, _ outcome: Outcome, at now: UInt64) {
        guard !finished, i >= 0, i < total, answered[i >> 6] & (1 << UInt64(i & 63)) == 0 else { return }
        answered[i >> 6] |= 1 << UInt64(i & 63)
        recorded += 1
        let scheduled = due(i)
        _ = histogram.record(max(1, (now - min(now, scheduled)) / 1000))
        switch outcome {
        case .found: found += 1
        case .notFound: notFound += 1
        case .failed: failed += 1
        }
        if outcome != .failed { lastAnswer = max(lastAnswer, now) }
    }

    /// Ends the run at `now`: of the first `submitted` queries, those not answered yet fail now
    /// (their latency up to now included). Later answers are ignored.
    public mutating func finish(submitted: Int, at now: UInt64) -> OpenLoopResult {
        let n = min(max(0, submitted), total)
        if !finished {
            for i in 0..<n where answered[i >> 6] & (1 << UInt64(i & 63)) == 0 { record(i, .failed, at: now) }
            finished = true
        }
        let end = max(lastAnswer, due(n))
        let seconds = Double(end - min(end, start)) / 1e9
        func p(_ q: Double) -> Double { recorded == 0 ? 0 : Double(histogram.valueAtPercentile(q)) }
        return OpenLoopResult(queries: n, failed: failed, not_found: notFound, found: found,
                              achieved_per_second: seconds > 0 ? Double(found + notFound) / seconds : 0,
                              rate: 1e9 / interval, seconds: seconds,
                              p50_us: p(50), p90_us: p(90), p99_us: p(99), p999_us: p(99.9), max_us: recorded == 0 ? 0 : Double(histogram.max))
    }
}

/// What `churngrid bench queries --json` prints. `queries`: scheduled and sent; `failed`:
/// unavailable, errors, or unanswered at the end; `achieved_per_second`: answers (found or not
/// found) per second of the run; latencies in µs from each query's scheduled send.
public struct OpenLoopResult: Sendable, Codable, Equatable {
    public var queries: Int
    public var failed: Int
    public var not_found: Int
    public var found: Int
    public var achieved_per_second: Double
    public var rate: Double
    public var seconds: Double
    public var p50_us: Double
    public var p90_us: Double
    public var p99_us: Double
    public var p999_us: Double
    public var max_us: Double
}
