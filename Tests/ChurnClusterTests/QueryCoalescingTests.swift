@testable import ChurnCluster
import ClusterSystem
import Foundation
import Synchronization
import Testing
import TestSupport

@Suite("Live queries from a client: coalesced into batch calls, open-loop load", .serialized, .timeLimit(.minutes(10)))
struct QueryCoalescingTests {
    @Test("2,000 concurrent lookups through one client go out in far fewer batch calls; each answer is its own subscriber's and equals the single-query path; `bench queries --json` reports every key and counts misses")
    func coalescedLookups() async throws {
        let n = 5_000
        let (_, cluster, client) = try await RescoringTests.cluster(subscribers: n, shards: 16, name: "coalesce")
        defer { cluster.stop() }
        try await client.prepareRouting()
        // Distinct ids (7919 and 5000 are coprime), spread over every shard.
        let ids = (0..<2_000).map { Int64(1_000_000_000 + ($0 * 7919) % n) }
        let before = client.coalescingCounts
        let answers = try await withThrowingTaskGroup(of: (Int64, ScoreLookup).self) { group in
            for id in ids { group.addTask { (id, try await client.score(id)) } }
            var out: [Int64: ScoreLookup] = [:]
            for try await (id, answer) in group { out[id] = answer }
            return out
        }
        let after = client.coalescingCounts
        #expect(after.queries - before.queries == ids.count, "every query went through a batch call")
        #expect(after.calls - before.calls <= ids.count / 4, "\(after.calls - before.calls) calls for \(ids.count) queries: not coalesced")
        for id in ids.prefix(300) {
            guard case .found(let batched) = answers[id] else {
                Issue.record("subscriber \(id) was not found through the batch")
                continue
            }
            #expect(batched.subscriberID == id)
            guard case .found(let single) = try await client.coordinator.score(id) else {
                Issue.record("subscriber \(id) was not found through the coordinator")
                continue
            }
            #expect(abs(single.probability - batched.probability) < 1e-9, "subscriber \(id): \(single.probability) alone, \(batched.probability) in a batch")
            #expect(single.reasons.map(\.feature) == batched.reasons.map(\.feature))
            #expect(single.shard == batched.shard)
        }

        // The open-loop benchmark: ids beyond the base are "not found", nothing fails.
        let command = "\(shellQuoted(try churngridExecutable())) bench queries --coordinator \(cluster.coordinatorEndpoint) --rate 1000 --duration 2 "
            + "--connections 2 --subscribers \(n + 1_000) --json"
        let (status, output) = await runCommand(command)
        #expect(status == 0, "\(output)")
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(output)")
        for key in ["queries", "failed", "not_found", "achieved_per_second", "p50_us", "p99_us", "p999_us", "max_us"] {
            #expect(json[key] is NSNumber, "key \(key) missing in \(line)")
        }
        #expect((json["queries"] as? Int) == 2_000)
        #expect((json["failed"] as? Int) == 0)
        let notFound = json["not_found"] as? Int ?? 0
        #expect(notFound > 100 && notFound < 700, "about 1 in 6 ids is beyond the base: \(notFound)")
        #expect((json["achieved_per_second"] as? Double ?? 0) > 900)

        // Explained exactly (TreeSHAP), as `?explain=exact` asks (few: a debug build explains
        // slowly, and this is about the option and the path, not the rate).
        let exact = "\(shellQuoted(try churngridExecutable())) bench queries --coordinator \(cluster.coordinatorEndpoint) --rate 40 --duration 1 "
            + "--connections 2 --subscribers \(n) --explain-method exact --drain 120 --json"
        let (exactStatus, exactOutput) = await runCommand(exact)
        #expect(exactStatus == 0, "\(exactOutput)")
        let exactLine = exactOutput.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let exactJSON = try #require(try JSONSerialization.jsonObject(with: Data(exactLine.utf8)) as? [String: Any], "\(exactOutput)")
        #expect((exactJSON["queries"] as? Int) == 40 && (exactJSON["failed"] as? Int) == 0 && (exactJSON["not_found"] as? Int) == 0, "\(exactLine)")
    }

    @Test("an open-loop client asked for far more than its workers answer sheds the excess at once instead of piling it up; every query it kept is answered once the workers are back")
    func overloadSheds() async throws {
        let n = 2_000
        let (_, cluster, client) = try await RescoringTests.cluster(subscribers: n, shards: 8, name: "shed")
        defer { cluster.stop() }
        try await client.prepareRouting()
        let workers = [try #require(cluster.pid("worker-1")), try #require(cluster.pid("worker-2"))]
        let outcomes = Mutex<[ScoreRouter.Outcome]>([])
        let total = 30_000
        let ids = (0..<total).map { Int64(1_000_000_000 + ($0 * 7919) % n) }
        // Per worker, the first calls go out alone and the next queries wait; the rest is shed.
        let table = try await client.coordinator.routing()
        var perWorker: [String: Int] = [:]
        for id in ids { perWorker[try #require(table.node(serving: table.map.shard(of: id))).name, default: 0] += 1 }
        #expect(perWorker.count == 2, "both workers own shards: \(perWorker)")
        let coalescer = LookupCoalescing<Int>(maxInFlight: 4)
        let kept = perWorker.values.reduce(0) { $0 + min($1, coalescer.maxInFlight + coalescer.maxWaiting) }
        // Both workers frozen: nothing is answered while the queries arrive.
        for pid in workers { kill(pid, SIGSTOP) }
        for id in ids {
            client.submit(id) { outcome in outcomes.withLock { $0.append(outcome) } }
        }
        let early = outcomes.withLock { $0 }
        for pid in workers { kill(pid, SIGCONT) }
        #expect(early.count == total - kept, "\(early.count) queries ended while both workers were frozen; \(total - kept) were to be shed")
        #expect(early.allSatisfy { $0 == .shed }, "only shed queries end before a worker answers")
        // Generous (a loaded machine's test process may run late), and the failure says how far it got.
        let all: [ScoreRouter.Outcome]
        do {
            all = try await RescoringTests.eventually("every query ended", timeout: .seconds(180)) { () -> [ScoreRouter.Outcome]? in
                let o = outcomes.withLock { $0 }
                return o.count >= total ? o : nil
            }
        } catch {
            let o = outcomes.withLock { $0 }
            let counts = Dictionary(grouping: o, by: { "\($0)" }).mapValues(\.count)
            throw ClusterError("\(error): \(o.count) of \(total) ended (\(counts)), \(kept) kept for the workers")
        }
        #expect(all.count == total, "each query ends exactly once")
        #expect(all.filter { $0 == .shed }.count == total - kept)
        #expect(all.filter { $0 == .found }.count == kept, "every query kept is answered")
    }

    @Test("the open-loop benchmark counts failures: with no worker left, every query fails, and their latency counts")
    func failuresCounted() async throws {
        let (_, cluster, _) = try await RescoringTests.cluster(subscribers: 1_000, shards: 8, name: "load-failures")
        defer { cluster.stop() }
        kill(try #require(cluster.pid("worker-1")), SIGKILL)
        kill(try #require(cluster.pid("worker-2")), SIGKILL)
        let command = "\(shellQuoted(try churngridExecutable())) bench queries --coordinator \(cluster.coordinatorEndpoint) --rate 200 --duration 1 "
            + "--subscribers 1000 --drain 3 --json"
        let (status, output) = await runCommand(command)
        #expect(status == 0, "\(output)")
        let line = output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(output)")
        #expect((json["queries"] as? Int) == 200)
        #expect((json["failed"] as? Int) == 200, "\(line)")
        #expect((json["achieved_per_second"] as? Double) == 0)
        #expect((json["max_us"] as? Double ?? 0) > 0, "failed queries' latencies are recorded")
    }
}
