@testable import ChurnCluster
import Testing
import WireFormat

@Suite("Database health: whether the coordinator's PostgreSQL answers, as churngrid status shows it")
struct DatabaseHealthTests {
    @Test("unknown until the first call; an answer makes it reachable; a failure makes it unreachable from that moment, counts the failures and keeps the last reason; the next answer clears it")
    func outage() {
        var health = DatabaseHealth()
        let t0 = ContinuousClock.now
        let fresh = health.report(now: t0, leaseValid: true)
        #expect(fresh.reachable && fresh.lastAnswerSecondsAgo == nil && fresh.description == "not asked yet")

        health.answered(at: t0)
        let up = health.report(now: t0 + .milliseconds(300), leaseValid: true)
        #expect(up == DatabaseStatus(reachable: true, lastAnswerSecondsAgo: 0.3, unreachableForSeconds: nil, failures: 0, lastError: nil, leaseValid: true))
        #expect(up.description == "reachable (last answer 0.3 s ago)")

        health.failed(at: t0 + .seconds(1), error: "PostgreSQL connection while connecting to 127.0.0.1:5432: Connection refused")
        health.failed(at: t0 + .seconds(2), error: "PostgreSQL connection while connecting to 127.0.0.1:5432: Connection refused (again)")
        let down = health.report(now: t0 + .seconds(13), leaseValid: false)
        #expect(!down.reachable && down.failures == 2 && down.unreachableForSeconds == 12 && down.lastAnswerSecondsAgo == 13)
        #expect(down.lastError == "PostgreSQL connection while connecting to 127.0.0.1:5432: Connection refused (again)")
        #expect(down.description == "UNREACHABLE for 12 s, 2 failed calls (last: PostgreSQL connection while connecting to 127.0.0.1:5432: Connection refused (again)); the coordinator lease has run out: no jobs or shard moves until PostgreSQL answers again")

        health.answered(at: t0 + .seconds(14))
        let back = health.report(now: t0 + .seconds(14), leaseValid: true)
        #expect(back == DatabaseStatus(reachable: true, lastAnswerSecondsAgo: 0, unreachableForSeconds: nil, failures: 0, lastError: nil, leaseValid: true))
        // The next outage counts from its own first failure.
        health.failed(at: t0 + .seconds(20), error: "server closed the connection")
        let again = health.report(now: t0 + .seconds(21), leaseValid: true)
        #expect(again.failures == 1 && again.unreachableForSeconds == 1 && again.description == "UNREACHABLE for 1 s, 1 failed call (last: server closed the connection)")
    }

    @Test("a reachable server without an answer for 10 s or more is shown as slow to answer; a long reason is bounded; never a negative age")
    func quietAndBounds() {
        var health = DatabaseHealth()
        let t0 = ContinuousClock.now
        health.answered(at: t0)
        #expect(health.report(now: t0 + .seconds(15), leaseValid: true).description == "reachable, but no answer for 15 s (a long call, or the server stalls)")
        health.failed(at: t0 + .seconds(16), error: String(repeating: "x", count: 5_000))
        #expect(health.report(now: t0 + .seconds(16), leaseValid: true).lastError?.count == DatabaseHealth.errorLimit + 1)
        #expect(health.report(now: t0, leaseValid: true).unreachableForSeconds == 0, "a clock read before the failure: 0, never negative")
    }

    @Test("the wire form round-trips, and a status from a coordinator that does not send it reads as nil")
    func wire() throws {
        let d = DatabaseStatus(reachable: false, lastAnswerSecondsAgo: 4.5, unreachableForSeconds: 3, failures: 7, lastError: "refused", leaseValid: false)
        #expect(try DatabaseStatus.decode(d.wireBytes()) == d)

        var status = ClusterStatus(coordinator: "c", shardCount: 4, epoch: 1, modelVersion: "m", unassignedShards: 0, movingShards: 0, workers: [], silentWorkers: [], job: nil)
        status.database = d
        #expect(try ClusterStatus.decode(status.wireBytes()).database == d)
        // An older coordinator's status ends before the field (the nil optional's one byte).
        status.database = nil
        #expect(try ClusterStatus.decode(Array(status.wireBytes().dropLast(1))).database == nil)
    }
}
