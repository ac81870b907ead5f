@testable import ChurnCluster
import Testing
import WireFormat

/// A rescoring job's decisions (`JobRun`) driven through faults without sockets or a database:
/// every test plays the coordinator, carrying the actions out by hand.
@Suite("Rescoring job (state machine)")
struct JobRunTests {
    let t0 = ContinuousClock.now

    /// Shard `shard`'s scores for `count` subscribers.
    static func scores(_ shard: Int, count: Int = 10) -> ShardScores {
        var s = ShardScores(shard: shard, modelVersion: "m", capacity: count)
        for i in 0..<count {
            s.ids.elements.append(Int64(shard * 1000 + i))
            s.probabilities.elements.append(0.25)
            s.bands.elements.append(0)
            s.regions.elements.append(1)
            s.reasons.elements += [-1, -1, -1]
            s.contributions.elements += [0, 0, 0]
        }
        return s
    }

    static func placement(_ shards: Int, owners: [String], standbys: [String]? = nil) -> JobRun.Placement {
        JobRun.Placement(owners: (0..<shards).map { owners[$0 % owners.count] },
                         standbys: (0..<shards).map { s in standbys.map { $0[s % $0.count] } },
                         cores: Dictionary(uniqueKeysWithValues: Set(owners + (standbys ?? [])).map { ($0, 1) }))
    }

    static func scoreActions(_ actions: [JobRun.Action]) -> [(shard: Int, node: String, role: ShardRole)] {
        actions.compactMap { if case .score(let s, let n, let r) = $0 { (s, n, r) } else { nil } }
    }

    static func writeActions(_ actions: [JobRun.Action]) -> [(connection: Int, shards: [Int])] {
        actions.compactMap { if case .write(let c, let e) = $0 { (c, e.map(\.shard)) } else { nil } }
    }

    static func finished(_ actions: [JobRun.Action]) -> String?? {
        for a in actions { if case .finished(let failure) = a { return .some(failure) } }
        return nil
    }

    /// Plays the job to its end: every call answers, every write claims its shards.
    static func playOut(_ job: inout JobRun, _ first: [JobRun.Action], placement: JobRun.Placement, at now: ContinuousClock.Instant) -> String?? {
        var queue = first
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            if let end = finished(queue) { return end }
            var next: [JobRun.Action] = []
            for (shard, node, _) in scoreActions(queue) {
                next += job.handle(.scored(shard: shard, node: node, scores(shard)), now: now, placement: placement)
            }
            for (connection, shards) in writeActions(queue) {
                next += job.handle(.written(connection: connection, claimed: Set(shards)), now: now, placement: placement)
            }
            if next.isEmpty { next = job.handle(.tick, now: now, placement: placement) }
            queue = next
        }
        return nil
    }

    @Test("every shard is scored by its owner, a few at a time per worker, and written once; the job completes with everyone counted")
    func completes() {
        let placement = Self.placement(8, owners: ["w1", "w2"])
        var job = JobRun(shardCount: 8, settings: .init())
        let first = job.start(now: t0, placement: placement)
        // At most max(2, cores + 1) = 2 calls per worker at once.
        let dispatched = Self.scoreActions(first)
        #expect(dispatched.count == 4)
        #expect(Dictionary(grouping: dispatched, by: \.node).mapValues(\.count) == ["w1": 2, "w2": 2])
        let end = Self.playOut(&job, first, placement: placement, at: t0)
        #expect(end == .some(nil))
        #expect(job.summary.subscribers == 80)
        #expect(job.shardsDone == 8)
        #expect(job.retries == 0)
    }

    @Test("the database goes away: writes pause and are retried without spending the shards' attempts; a cut-off COMMIT found written is counted once")
    func databaseAway() throws {
        var settings = JobRun.Settings()
        settings.attemptsPerShard = 1  // one own failure would fail the job
        settings.writers = 1
        let placement = Self.placement(2, owners: ["w1"])
        var job = JobRun(shardCount: 2, settings: settings)
        var actions = job.start(now: t0, placement: placement)
        var answered: [JobRun.Action] = []
        for (shard, node, _) in Self.scoreActions(actions) {
            answered += job.handle(.scored(shard: shard, node: node, Self.scores(shard)), now: t0, placement: placement)
        }
        actions = answered
        var writes = Self.writeActions(actions)
        try #require(writes.count == 1)
        let cut = writes[0]
        // The first write is cut off: paused, nothing written for 500 ms.
        actions = job.handle(.writeFailed(connection: cut.connection, .unavailable("server closed the connection")), now: t0, placement: placement)
        #expect(Self.writeActions(actions).isEmpty)
        #expect(Self.finished(actions) == nil)
        actions = job.handle(.tick, now: t0 + .milliseconds(600), placement: placement)
        writes = Self.writeActions(actions)
        try #require(writes.count == 1)
        #expect(Set(cut.shards).isSubset(of: Set(writes[0].shards)), "the cut-off shards go first")
        // Its COMMIT had happened: the retry finds those shards written; they are ours, counted once.
        let fresh = Set(writes[0].shards).subtracting(cut.shards)
        actions = job.handle(.written(connection: writes[0].connection, claimed: fresh), now: t0 + .milliseconds(700), placement: placement)
        #expect(job.summary.subscribers == 10 * writes[0].shards.count)
        #expect(job.retries == cut.shards.count)
        let end = Self.playOut(&job, actions, placement: placement, at: t0 + .seconds(1))
        #expect(end == .some(nil))
        #expect(job.summary.subscribers == 20)
    }

    @Test("the database stays away past the deadline: the job fails with the reason")
    func databaseDeadline() throws {
        var settings = JobRun.Settings()
        settings.databaseDeadline = .seconds(3)
        settings.writers = 1
        let placement = Self.placement(1, owners: ["w1"])
        var job = JobRun(shardCount: 1, settings: settings)
        var actions = job.start(now: t0, placement: placement)
        actions = job.handle(.scored(shard: 0, node: "w1", Self.scores(0)), now: t0, placement: placement)
        var now = t0
        var end: String??
        for _ in 0..<100 where end == nil {
            let writes = Self.writeActions(actions)
            if let w = writes.first {
                actions = job.handle(.writeFailed(connection: w.connection, .unavailable("connection refused")), now: now, placement: placement)
            } else {
                now += .milliseconds(600)
                actions = job.handle(.tick, now: now, placement: placement)
            }
            end = Self.finished(actions)
        }
        let failure = try #require(end ?? nil)
        #expect(failure.contains("unavailable for more than"), "\(failure)")
        #expect(now - t0 > .seconds(3))
    }

    @Test("a straggler runs again on its standby after the deadline; the first answer is written, the slow one's is dropped")
    func stragglerToStandby() throws {
        var settings = JobRun.Settings()
        settings.stragglerDeadline = .seconds(60)
        let placement = Self.placement(1, owners: ["slow"], standbys: ["w2"])
        var job = JobRun(shardCount: 1, settings: settings)
        var actions = job.start(now: t0, placement: placement)
        #expect(Self.scoreActions(actions).map(\.node) == ["slow"])
        actions = job.handle(.tick, now: t0 + .seconds(30), placement: placement)
        #expect(Self.scoreActions(actions).isEmpty, "not a straggler yet")
        actions = job.handle(.tick, now: t0 + .seconds(61), placement: placement)
        let again = Self.scoreActions(actions)
        #expect(again.count == 1 && again[0].node == "w2" && again[0].role == .standby)
        #expect(job.stragglers == 1)
        // The standby answers first; then the slow owner.
        actions = job.handle(.scored(shard: 0, node: "w2", Self.scores(0)), now: t0 + .seconds(62), placement: placement)
        let writes = Self.writeActions(actions)
        try #require(writes.count == 1)
        let late = job.handle(.scored(shard: 0, node: "slow", Self.scores(0)), now: t0 + .seconds(63), placement: placement)
        #expect(Self.writeActions(late).isEmpty, "the late answer is not written again")
        actions = job.handle(.written(connection: writes[0].connection, claimed: [0]), now: t0 + .seconds(64), placement: placement)
        #expect(Self.finished(actions) == .some(nil))
        #expect(job.summary.subscribers == 10)
    }

    @Test("a straggler without a standby: its shard is moved away, and it runs on the new owner once the map has flipped")
    func stragglerMoved() throws {
        var settings = JobRun.Settings()
        settings.stragglerDeadline = .seconds(10)
        var placement = Self.placement(1, owners: ["slow"])
        placement.cores["w2"] = 1
        var job = JobRun(shardCount: 1, settings: settings)
        _ = job.start(now: t0, placement: placement)
        var actions = job.handle(.tick, now: t0 + .seconds(11), placement: placement)
        let relieve = actions.contains { if case .relieve(0, "slow") = $0 { true } else { false } }
        #expect(relieve)
        #expect(Self.scoreActions(actions).isEmpty, "not sent to the slow owner again")
        actions = job.handle(.tick, now: t0 + .seconds(12), placement: placement)
        #expect(Self.scoreActions(actions).isEmpty)
        // The map has moved it.
        placement.owners[0] = "w2"
        actions = job.handle(.tick, now: t0 + .seconds(13), placement: placement)
        #expect(Self.scoreActions(actions).map(\.node) == ["w2"])
        // The slow call fails after all: nothing is retried (another call runs).
        actions = job.handle(.scoringFailed(shard: 0, node: "slow", error: "timed out"), now: t0 + .seconds(14), placement: placement)
        #expect(Self.scoreActions(actions).isEmpty)
        #expect(job.retries == 0)
        let end = Self.playOut(&job, job.handle(.scored(shard: 0, node: "w2", Self.scores(0)), now: t0 + .seconds(15), placement: placement),
                               placement: placement, at: t0 + .seconds(15))
        #expect(end == .some(nil))
    }

    @Test("a shard that keeps failing fails the job after its attempts; a lost lease fails it at once")
    func failures() throws {
        var settings = JobRun.Settings()
        settings.attemptsPerShard = 3
        let placement = Self.placement(1, owners: ["w1"])
        var job = JobRun(shardCount: 1, settings: settings)
        var actions = job.start(now: t0, placement: placement)
        var end: String??
        for _ in 0..<10 where end == nil {
            actions = job.handle(.scoringFailed(shard: 0, node: "w1", error: "boom"), now: t0, placement: placement)
            end = Self.finished(actions)
        }
        let failure = try #require(end ?? nil)
        #expect(failure.contains("shard 0 failed 3 times") && failure.contains("boom"), "\(failure)")

        var fenced = JobRun(shardCount: 1, settings: .init())
        _ = fenced.start(now: t0, placement: placement)
        actions = fenced.handle(.scored(shard: 0, node: "w1", Self.scores(0)), now: t0, placement: placement)
        let write = try #require(Self.writeActions(actions).first)
        actions = fenced.handle(.writeFailed(connection: write.connection, .leaseLost("term 1 was taken over")), now: t0, placement: placement)
        #expect(Self.finished(actions) == .some("term 1 was taken over"))
    }

    @Test("shards without a ready owner wait up to the deadline; no workers at all fails at once")
    func unowned() throws {
        var settings = JobRun.Settings()
        settings.unownedShardDeadline = .seconds(5)
        var placement = Self.placement(2, owners: ["w1"])
        placement.owners[1] = nil
        var job = JobRun(shardCount: 2, settings: settings)
        var actions = job.start(now: t0, placement: placement)
        actions = job.handle(.scored(shard: 0, node: "w1", Self.scores(0)), now: t0, placement: placement)
        let write = try #require(Self.writeActions(actions).first)
        actions = job.handle(.written(connection: write.connection, claimed: [0]), now: t0, placement: placement)
        #expect(Self.finished(actions) == nil)
        #expect(Self.finished(job.handle(.tick, now: t0 + .seconds(4), placement: placement)) == nil)
        let end = try #require(Self.finished(job.handle(.tick, now: t0 + .seconds(6), placement: placement)) ?? nil)
        #expect(end.contains("no ready owner"), "\(end)")

        var empty = JobRun(shardCount: 1, settings: .init())
        let none = JobRun.Placement(owners: [nil], standbys: [nil], cores: [:])
        #expect(Self.finished(empty.start(now: t0, placement: none)) == .some("no workers left"))
    }

    @Test("a node that does not answer: its shards wait without spending their attempts, and the node gets no call while it cools down")
    func nodeFault() throws {
        var settings = JobRun.Settings()
        settings.attemptsPerShard = 1
        let placement = Self.placement(1, owners: ["w1"])
        var job = JobRun(shardCount: 1, settings: settings)
        _ = job.start(now: t0, placement: placement)
        var actions = job.handle(.scoringFailed(shard: 0, node: "w1", error: "node unreachable", nodeFault: true), now: t0, placement: placement)
        #expect(Self.finished(actions) == nil, "a node fault spends no attempt")
        #expect(Self.scoreActions(actions).isEmpty, "no call while the node cools down")
        actions = job.handle(.tick, now: t0 + .milliseconds(500), placement: placement)
        #expect(Self.scoreActions(actions).isEmpty)
        actions = job.handle(.tick, now: t0 + .milliseconds(1100), placement: placement)
        #expect(Self.scoreActions(actions).map(\.node) == ["w1"])
        #expect(job.retries == 1)
    }

    @Test("reconnecting to PostgreSQL backs off exponentially with jitter, up to 5 s, and starts again after a success")
    func reconnectBackoff() {
        var b = ReconnectBackoff()
        #expect(b.mayTry(at: t0))
        b.failed(at: t0, jitter: 0.5)
        #expect(!b.mayTry(at: t0 + .milliseconds(99)) && b.mayTry(at: t0 + .milliseconds(100)))
        b.failed(at: t0, jitter: 0.5)
        #expect(!b.mayTry(at: t0 + .milliseconds(199)) && b.mayTry(at: t0 + .milliseconds(200)))
        for _ in 0..<20 { b.failed(at: t0, jitter: 1) }
        #expect(!b.mayTry(at: t0 + .seconds(2)) && b.mayTry(at: t0 + .milliseconds(2_401)), "capped at 2 s + 20%")
        b.failed(at: t0, jitter: 0)
        #expect(b.mayTry(at: t0 + .milliseconds(1_601)), "jitter 0 waits 80%")
        b.succeeded()
        #expect(b.mayTry(at: t0) && b.failures == 0)
    }
}
