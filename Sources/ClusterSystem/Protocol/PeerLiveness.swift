/// Which peers have gone quiet: every message or heartbeat from a peer counts as a sign of life;
/// a peer silent for longer than `timeout` is unreachable (its pending calls fail). Pure: the
/// caller passes the time, so tests need no clock.
public struct PeerLiveness<Peer: Hashable & Sendable>: Sendable {
    /// How long a peer may stay silent.
    public let timeout: Duration
    private var lastHeard: [Peer: ContinuousClock.Instant] = [:]

    public init(timeout: Duration) {
        self.timeout = timeout
    }

    /// Peers being watched.
    public var peers: [Peer] { Array(lastHeard.keys) }

    /// Something arrived from `peer` at `now`.
    public mutating func heard(from peer: Peer, at now: ContinuousClock.Instant) {
        lastHeard[peer] = now
    }

    /// Stops watching `peer`.
    public mutating func forget(_ peer: Peer) {
        lastHeard[peer] = nil
    }

    /// The peers silent for longer than the timeout at `now`; they stop being watched.
    public mutating func expire(at now: ContinuousClock.Instant) -> [Peer] {
        let dead = lastHeard.filter { now - $0.value > timeout }.map(\.key)
        for p in dead { lastHeard[p] = nil }
        return dead
    }
}
