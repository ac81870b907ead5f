import ZeroMQ

/// This node's sending side towards one other node: a DEALER connected to that node's ROUTER.
///
/// Every node receives only on its ROUTER (owned by the I/O thread) and sends only on links, so a
/// task making a call, or one returning a result, hands its message to libzmq itself without
/// waking the I/O thread. libzmq sockets are not thread-safe: the DEALER is used only under the
/// link's mutex (which also gives the memory barrier libzmq requires when a socket changes thread),
/// and every send is non-blocking.
final class Link: Sendable {
    enum Phase {
        case connecting
        case established(NodeID)
        case unreachable(String)
        case refused(String)
    }

    /// A call waiting for room on the wire.
    struct Waiting {
        let callID: UInt64
        let header: [UInt8]
        let payload: ZMQMessage
    }

    struct State {
        let socket: ZMQSocket
        var phase: Phase = .connecting
        var handshake: Handshake
        var helloSentAt: ContinuousClock.Instant?
        /// Calls on the wire, waiting for their reply.
        var inFlight: Set<UInt64> = []
        /// Calls waiting for room (in-flight limit, or libzmq's queue full).
        var waiting: [Waiting] = []
        /// Replies and control messages libzmq could not take yet; the I/O thread retries them.
        var outbox: [[ZMQMessage]] = []
        var connectWaiters: [UnsafeContinuation<NodeID, Error>] = []
        var lastPing = ContinuousClock.now
        var pingSeq: UInt64 = 0
        /// This node opened the link to call the other (rather than only to answer its hello).
        var dialed = true

        var node: NodeID? {
            if case .established(let n) = phase { n } else { nil }
        }

        /// Sends a message now if libzmq takes it.
        func trySend(_ parts: [ZMQMessage]) -> Bool {
            (try? socket.send(parts: parts, wait: false)) ?? false
        }

        /// Sends a message now, or keeps it for the I/O thread's next attempt.
        mutating func send(_ parts: [ZMQMessage]) {
            if !outbox.isEmpty || !trySend(parts) { outbox.append(parts) }
        }
    }

    let endpoint: String
    let state: Guarded<State>

    init(endpoint: String, socket: ZMQSocket, handshake: Handshake) {
        self.endpoint = endpoint
        state = Guarded(State(socket: socket, handshake: handshake))
    }
}
