import ZeroMQ

/// This node's connection to one other node it calls: a DEALER connected to that node's ROUTER.
/// Calls go out on it and their replies come back on it; nothing else can answer them.
///
/// A task making a call hands its message to libzmq itself under the link's mutex (which also
/// gives the memory barrier libzmq requires when a socket changes thread); the I/O thread polls
/// the socket's file descriptor and takes the mutex only to receive. Every send is non-blocking.
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

    /// Control messages (hello, ping, cancel) kept while libzmq's queue is full; beyond this the
    /// oldest are dropped (a ping lost is harmless, a hello is sent again).
    static let outboxLimit = 256

    struct State {
        let socket: ZMQSocket
        var phase: Phase = .connecting
        var handshake: Handshake
        var helloSentAt: ContinuousClock.Instant?
        /// Calls on the wire, waiting for their reply.
        var inFlight: Set<UInt64> = []
        /// Calls waiting for room (in-flight limit, or libzmq's queue full).
        var waiting: [Waiting] = []
        /// Control messages libzmq could not take yet; the I/O thread retries them.
        var outbox: [[ZMQMessage]] = []
        var connectWaiters: [UnsafeContinuation<NodeID, Error>] = []
        var lastPing = ContinuousClock.now
        var pingSeq: UInt64 = 0
        var closed = false

        var node: NodeID? {
            if case .established(let n) = phase { n } else { nil }
        }

        /// Sends a message now if libzmq takes it.
        func trySend(_ parts: [ZMQMessage]) -> Bool {
            guard !closed else { return false }
            return (try? socket.send(parts: parts, wait: false)) ?? false
        }

        /// Sends a message now, or keeps it for the I/O thread's next attempt.
        mutating func send(_ parts: [ZMQMessage]) {
            guard !closed else { return }
            if !outbox.isEmpty || !trySend(parts) {
                if outbox.count >= Link.outboxLimit { outbox.removeFirst() }
                outbox.append(parts)
            }
        }
    }

    let endpoint: String
    /// The CURVE key the node was dialled with ("" without CURVE).
    let serverKey: String
    /// The socket's file descriptor, polled by the I/O thread.
    let fd: Int32
    /// Names this link's descriptor watch on the I/O thread.
    let watchKey: Int
    let state: Guarded<State>

    init(endpoint: String, serverKey: String, socket: ZMQSocket, fd: Int32, watchKey: Int, handshake: Handshake) {
        self.endpoint = endpoint
        self.serverKey = serverKey
        self.fd = fd
        self.watchKey = watchKey
        state = Guarded(State(socket: socket, handshake: handshake))
    }
}

/// This node's ROUTER: inbound calls arrive on it (read by the I/O thread) and their answers
/// leave on it, to the connection each call came on (sent by the executing task, under the lock).
final class RouterPort: Sendable {
    /// Answers kept while a caller's queue is full; beyond this the oldest are dropped and logged
    /// (their callers time out rather than this node's memory growing without bound).
    static let outboxLimit = 4096

    struct State {
        let socket: ZMQSocket
        var outbox: [[ZMQMessage]] = []
        var dropped = 0
        var closed = false

        /// Sends to the connection `rid` now, or keeps it for later. A connection that is gone
        /// (libzmq: no such peer) loses the message: its caller is gone too.
        mutating func send(to rid: ZMQMessage, _ parts: [ZMQMessage]) {
            guard !closed else { return }
            let message = [rid] + parts
            if !outbox.isEmpty || !trySend(message) {
                if outbox.count >= RouterPort.outboxLimit {
                    outbox.removeFirst()
                    dropped += 1
                }
                outbox.append(message)
            }
        }

        /// True when libzmq took the message or the peer is gone (nothing to retry).
        func trySend(_ message: [ZMQMessage]) -> Bool {
            do {
                return try socket.send(parts: message, wait: false)
            } catch {
                return true  // EHOSTUNREACH: the connection closed
            }
        }
    }

    let fd: Int32
    let state: Guarded<State>

    init(socket: ZMQSocket, fd: Int32) {
        self.fd = fd
        state = Guarded(State(socket: socket))
    }
}
