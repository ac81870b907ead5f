/// When a dropped PostgreSQL connection may be opened again: at once the first time, then after
/// an exponentially growing wait (100 ms doubling up to 2 s) with ±20% jitter, so a coordinator's
/// connections do not hammer a server that is starting up, and several coordinators do not retry
/// in step. A call that comes earlier waits for that moment (on its connection's own thread)
/// instead of failing. Pure: the time and the jitter are passed in.
struct ReconnectBackoff: Sendable {
    static let first: Duration = .milliseconds(100)
    static let limit: Duration = .seconds(2)

    private(set) var failures = 0
    private(set) var notBefore: ContinuousClock.Instant?

    /// Whether a reconnection may be tried at `now`.
    func mayTry(at now: ContinuousClock.Instant) -> Bool {
        notBefore.map { now >= $0 } ?? true
    }

    /// A reconnection failed at `now`; `jitter` is in 0...1 (0.5: none).
    mutating func failed(at now: ContinuousClock.Instant, jitter: Double) {
        failures += 1
        var wait = Self.first
        for _ in 1..<min(failures, 16) { wait = min(wait * 2, Self.limit) }
        let factor = 0.8 + 0.4 * min(max(jitter, 0), 1)
        notBefore = now + wait * factor
    }

    /// The connection is open again.
    mutating func succeeded() {
        failures = 0
        notBefore = nil
    }
}
