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
    var key: Transport.LinkKey { Transport.LinkKey(endpoint: endpoint, serverKey: serverKey) }
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
    /// Answers kept for one caller whose queue is full; beyond this its newest are dropped and
    /// logged (that caller times out rather than this node's memory growing without bound).
    static let perConnectionLimit = 1024
    /// Answers kept for all callers together.
    static let totalLimit = 8192

    struct State {
        let socket: ZMQSocket
        /// Per connection, in order: a caller that does not read delays only its own answers.
        var queued: [[UInt8]: [[ZMQMessage]]] = [:]
        var queuedCount = 0
        var dropped = 0
        var closed = false

        /// Sends to the connection `rid` now, or keeps it for later. A connection that is gone
        /// (libzmq: no such peer) loses the message: its caller is gone too.
        mutating func send(to rid: [UInt8], _ parts: [ZMQMessage]) {
            guard !closed else { return }
            let message = [ZMQMessage(rid)] + parts
            if queued[rid] == nil, trySend(message) { return }
            guard (queued[rid]?.count ?? 0) < RouterPort.perConnectionLimit, queuedCount < RouterPort.totalLimit else {
                dropped += 1
                return
            }
            queued[rid, default: []].append(message)
            queuedCount += 1
        }

        /// Sends what was kept, connection by connection, as far as each connection takes it.
        mutating func retry() {
            for rid in Array(queued.keys) {
                var list = queued[rid] ?? []
                var sent = 0
                while sent < list.count, trySend(list[sent]) { sent += 1 }
                list.removeFirst(sent)
                queuedCount -= sent
                queued[rid] = list.isEmpty ? nil : list
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
