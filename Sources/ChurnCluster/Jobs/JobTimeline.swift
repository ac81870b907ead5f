import WireFormat

/// Where a rescoring job's time went (`rescore --json`'s `timeline`, the coordinator's "job
/// timeline" log line): fed the job's actions and events as they happen, clock injected.
///
/// Times are seconds from the job's start. Shards are scored by the workers while the
/// coordinator's writer connections COPY what has arrived, so the phases overlap: scoring ends
/// when the last shard's scores arrive, writing when the last COPY commits, and publication
/// (unique index, summary, the pointer swap) follows.
public struct JobTimeline: Sendable, Equatable, Codable, WireCodable {
    /// When the last shard's scores arrived.
    public var scoringEnded: Double = 0
    /// When the last write committed.
    public var writingEnded: Double = 0
    /// How long publication took (after writing ended).
    public var publish: Double = 0
    /// From the request to the published (or failed) job.
    public var total: Double = 0
    /// Sum over shards of the rescore call (scoring, encoding, transfer), across workers.
    public var shardCalls: Double = 0
    /// Sum over writes of the time a writer connection spent on them (encoding, COPY, commit).
    public var writeBusy: Double = 0
    /// Write transactions committed.
    public var writes: Int = 0

    enum CodingKeys: String, CodingKey {
        case scoringEnded = "scoring_ended_s", writingEnded = "writing_ended_s", publish = "publish_s", total = "total_s"
        case shardCalls = "shard_calls_s", writeBusy = "write_busy_s", writes
    }

    public init() {}

    public func encode(to w: inout WireWriter) {
        w.write(scoringEnded); w.write(writingEnded); w.write(publish); w.write(total); w.write(shardCalls); w.write(writeBusy); w.write(writes)
    }

    public init(from r: inout WireReader) throws(WireError) {
        scoringEnded = try r.read(); writingEnded = try r.read(); publish = try r.read(); total = try r.read()
        shardCalls = try r.read(); writeBusy = try r.read(); writes = try r.read()
    }
}

/// Builds a `JobTimeline` from a job's actions and events.
struct JobTimekeeper {
    private let start: ContinuousClock.Instant
    private var calls: [Int: ContinuousClock.Instant] = [:]
    private var writes: [Int: ContinuousClock.Instant] = [:]
    private(set) var timeline = JobTimeline()

    init(start: ContinuousClock.Instant) { self.start = start }

    mutating func acted(_ action: JobRun.Action, now: ContinuousClock.Instant) {
        switch action {
        case .score(let shard, _, _): calls[shard] = now
        case .write(let connection, _): writes[connection] = now
        default: break
        }
    }

    mutating func happened(_ event: JobRun.Event, now: ContinuousClock.Instant) {
        switch event {
        case .scored(let shard, _, _):
            if let began = calls.removeValue(forKey: shard) { timeline.shardCalls += Self.seconds(now - began) }
            timeline.scoringEnded = Self.seconds(now - start)
        case .scoringFailed(let shard, _, _, _):
            calls[shard] = nil
        case .written(let connection, _):
            if let began = writes.removeValue(forKey: connection) { timeline.writeBusy += Self.seconds(now - began) }
            timeline.writes += 1
            timeline.writingEnded = Self.seconds(now - start)
        case .writeFailed(let connection, _):
            writes[connection] = nil
        case .tick:
            break
        }
    }

    mutating func ended(publishing began: ContinuousClock.Instant?, now: ContinuousClock.Instant) {
        if let began { timeline.publish = Self.seconds(now - began) }
        timeline.total = Self.seconds(now - start)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
