@testable import ChurnCluster
import Testing

/// The coordinator lease's rules, driven without a database or a clock.
@Suite("Coordinator lease (state machine)")
struct CoordinatorLeaseTests {
    typealias Record = CoordinatorLease.Record
    let t0 = ContinuousClock.now
    let period = Duration.seconds(15)

    func record(_ holder: String, term: Int64, renewals: Int64) -> Record {
        Record(term: term, holder: holder, endpoint: "tcp://\(holder):7400", renewals: renewals)
    }

    @Test("no record: the first coordinator creates it and leads in the term it got")
    func firstHolder() {
        var lease = CoordinatorLease(name: "a", period: period)
        #expect(lease.tick(at: t0) == .observe)
        #expect(lease.observed(nil, at: t0) == .acquire(replacing: nil))
        #expect(lease.acquired(term: 1, sentAt: t0) == .lead(term: 1))
        #expect(lease.term == 1)
        #expect(lease.isValid(at: t0 + lease.validity - .milliseconds(1)))
        #expect(!lease.isValid(at: t0 + lease.validity))
        #expect(lease.tick(at: t0 + .seconds(1)) == .renew(term: 1))
    }

    @Test("a standby takes over only after the same record has stood unchanged for a whole period on its own clock")
    func standbyWaitsAWholePeriod() {
        var b = CoordinatorLease(name: "b", period: period)
        let held = record("a", term: 4, renewals: 10)
        #expect(b.observed(held, at: t0) == .wait)
        #expect(b.observed(held, at: t0 + period - .milliseconds(1)) == .wait)
        // The holder renewed: the watch starts again.
        let renewed = record("a", term: 4, renewals: 11)
        #expect(b.observed(renewed, at: t0 + period) == .wait)
        #expect(b.observed(renewed, at: t0 + period * 2 - .milliseconds(1)) == .wait)
        #expect(b.observed(renewed, at: t0 + period * 2) == .acquire(replacing: renewed))
        #expect(b.acquired(term: 5, sentAt: t0 + period * 2) == .lead(term: 5))
    }

    @Test("the holder's own validity ends before any standby can take over")
    func holderStopsBeforeTakeover() {
        var a = CoordinatorLease(name: "a", period: period)
        _ = a.observed(nil, at: t0)
        _ = a.acquired(term: 1, sentAt: t0)
        // A renewal sent at t0+1s: the standby can first see it after it was sent.
        _ = a.renewed(sentAt: t0 + .seconds(1))
        var b = CoordinatorLease(name: "b", period: period)
        let seen = record("a", term: 1, renewals: 1)
        let firstSeen = t0 + .seconds(1)
        _ = b.observed(seen, at: firstSeen)
        let takeover = firstSeen + period
        #expect(b.observed(seen, at: takeover) == .acquire(replacing: seen))
        #expect(!a.isValid(at: takeover))
        #expect(!a.isValid(at: takeover - .seconds(2)))
    }

    @Test("a database outage restarts the standby's watch, so the returning holder renews first")
    func outageRestartsTheWatch() {
        var b = CoordinatorLease(name: "b", period: period)
        let held = record("a", term: 2, renewals: 3)
        _ = b.observed(held, at: t0)
        #expect(b.observeFailed(at: t0 + .seconds(5)) == .wait)
        // Back after the period: the same record is not taken at once.
        #expect(b.observed(held, at: t0 + period * 3) == .wait)
        #expect(b.observed(held, at: t0 + period * 4) == .acquire(replacing: held))
    }

    @Test("a lost compare-and-set watches the record that won")
    func lostRace() {
        var b = CoordinatorLease(name: "b", period: period)
        let old = record("a", term: 2, renewals: 3)
        _ = b.observed(old, at: t0)
        #expect(b.observed(old, at: t0 + period) == .acquire(replacing: old))
        let winner = record("c", term: 3, renewals: 0)
        #expect(b.acquireLost(current: winner, at: t0 + period) == .wait)
        #expect(b.term == nil)
        #expect(b.observed(winner, at: t0 + period * 2) == .acquire(replacing: winner))
    }

    @Test("a coordinator restarted under its own name takes its record back at once")
    func ownRecord() {
        var a = CoordinatorLease(name: "a", period: period)
        let mine = record("a", term: 7, renewals: 40)
        #expect(a.observed(mine, at: t0) == .acquire(replacing: mine))
    }

    @Test("while the database is away the holder keeps its term but its lease runs out; a renewal in the same term makes it valid again")
    func outageWhileLeading() {
        var a = CoordinatorLease(name: "a", period: period)
        _ = a.observed(nil, at: t0)
        _ = a.acquired(term: 3, sentAt: t0)
        #expect(a.renewFailed(at: t0 + .seconds(20)) == .wait)
        #expect(a.term == 3)
        #expect(!a.isValid(at: t0 + .seconds(20)))
        #expect(a.tick(at: t0 + .seconds(21)) == .renew(term: 3))
        _ = a.renewed(sentAt: t0 + .seconds(21))
        #expect(a.isValid(at: t0 + .seconds(22)))
    }

    @Test("a renewal or a write that finds another term steps the holder down, for good")
    func fenced() {
        var a = CoordinatorLease(name: "a", period: period)
        _ = a.observed(nil, at: t0)
        _ = a.acquired(term: 3, sentAt: t0)
        let action = a.fenced(record("b", term: 4, renewals: 0))
        guard case .stepDown(let reason) = action else {
            Issue.record("expected a step-down, got \(action)")
            return
        }
        #expect(reason.contains("b (term 4"))
        #expect(reason.contains("term 3"))
        #expect(!a.isValid(at: t0))
        #expect(a.tick(at: t0 + .seconds(1)) == .wait)
        #expect(a.acquired(term: 9, sentAt: t0) == .wait)
        #expect(a.term == nil)
    }

    @Test("a read that took longer than a renewal interval (the database stalled) restarts the standby's watch, like an outage")
    func stalledRead() {
        var b = CoordinatorLease(name: "b", period: period)
        let held = record("a", term: 2, renewals: 3)
        _ = b.observed(held, sentAt: t0, at: t0)
        // The database froze for longer than the lease; the read comes back with the same record.
        let back = t0 + period + .seconds(3)
        #expect(b.observed(held, sentAt: t0 + .seconds(1), at: back) == .wait, "the stalled period does not count")
        #expect(b.observed(held, sentAt: back + .seconds(1), at: back + .seconds(1)) == .wait)
        #expect(b.observed(held, sentAt: back + period, at: back + period) == .acquire(replacing: held))
    }
}
