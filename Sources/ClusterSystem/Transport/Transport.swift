import Logging
import Synchronization
import WireFormat
import ZeroMQ

/// A received message part handed from the I/O thread to the task that decodes it.
struct ZMQPayload: @unchecked Sendable {
    // @unchecked: ownership moves with the value; after the hand-off only the receiving task
    // reads the bytes, and nobody writes them.
    let message: ZMQMessage
}

/// A peer's event, as the system reports it to whoever watches `ClusterActorSystem.peerEvents`.
public enum PeerEvent: Sendable, Equatable {
    /// The handshake with a node this node dialled succeeded.
    case connected(NodeID)
    /// A node this node dialled (at `endpoint` with CURVE key `publicKey`, "" without CURVE)
    /// stopped answering, or refused us; its calls failed.
    case unreachable(endpoint: String, publicKey: String, node: NodeID?, reason: String)
}

/// The node's messaging: one ROUTER that receives calls and sends their answers back on the
/// connection each came on (none for a pure client), and one `Link` (a DEALER) per node this
/// node calls, on which the replies come back; the table of calls waiting for replies;
/// handshakes, authentication, heartbeats and timeouts.
///
/// `@unchecked Sendable`: the members marked "I/O thread" are only touched on the system's
/// `SocketThread`; everything else is behind a lock (links, calls, the ROUTER, the authorized
/// keys) or immutable after `bind`.
final class Transport: @unchecked Sendable {
    /// A call waiting for its reply.
    struct Pending {
        let continuation: UnsafeContinuation<ZMQPayload, Error>
        let link: Link
        let actor: ActorID
        let method: String
        let deadline: ContinuousClock.Instant
    }

    struct Calls {
        var pending: [UInt64: Pending] = [:]
        var earliestDeadline = ContinuousClock.Instant.now + .seconds(86_400)
        var cancelledBeforeStart: Set<UInt64> = []
        var shuttingDown = false
    }

    let configuration: ClusterActorSystem.Configuration
    let logger: Logger
    let inbound: InboundQueue
    let events: AsyncStream<PeerEvent>.Continuation
    let context: ZMQContext
    let thread: SocketThread
    /// This node; set by `bind` before any other use.
    private(set) var local: NodeID!
    /// This node's ROUTER (nil for a pure client); set by `bind`.
    private(set) var router: RouterPort?
    private let calls = Guarded(Calls())
    /// Answers of executed calls on their way to the ROUTER (see `ReplyOutbox`).
    private let replies = ReplyOutbox()
    /// Links by the node they dial: its endpoint and the key it was dialled with (so a node
    /// claiming another's endpoint with its own key can never displace that node's link).
    private let links = Guarded([LinkKey: Link]())
    /// The caller key of each open session, by connection: an answer goes out only if the
    /// connection it is for still belongs to the key that made the call.
    private let sessionKeys = Mutex<[[UInt8]: String]>([:])
    /// Who may connect, and as what (reloaded on SIGHUP). Nil: no CURVE, nobody is authenticated.
    private let authorized = Mutex<AuthorizedKeys?>(nil)
    private let nextWatchKey = Atomic<Int>(1)
    /// Answers (replies, failures, pongs) that arrived on the ROUTER, where no answer belongs:
    /// dropped, never matched to a call (tests: forged replies).
    let strayAnswers = Atomic<Int>(0)
    /// Whether the ROUTER is paused because too many inbound calls are outstanding.
    let routerPaused = Atomic<Bool>(false)

    // I/O thread only.
    private var loop: SocketThread.Loop!
    private var sessions: [[UInt8]: Session] = [:]
    /// When each caller's connection was last heard from; silent ones lose their session.
    private var sessionLiveness: PeerLiveness<[UInt8]>
    /// When each node this node dials was last heard from; silent ones are unreachable.
    private var linkLiveness: PeerLiveness<LinkKey>
    /// When a refused key was last logged (the ZAP handler logs each at most once a minute).
    private var refusalsLogged: [String: ContinuousClock.Instant] = [:]
    /// Links' handshake monitors (an inproc PAIR per link, reporting CURVE refusals).
    private var monitors: [Int: SocketThread.Loop.SocketID] = [:]

    /// A node that shook hands on one of the ROUTER's connections, and what it may do.
    struct Session {
        let caller: Caller
    }

    static let routerWatchKey = 0
    /// How often a link that was refused says hello again (the operator may have fixed the keys).
    static let refusedRetry: Duration = .seconds(5)

    struct LinkKey: Hashable {
        let endpoint: String
        let serverKey: String
    }

    init(configuration: ClusterActorSystem.Configuration, context: ZMQContext, thread: SocketThread, inbound: InboundQueue,
         events: AsyncStream<PeerEvent>.Continuation) {
        self.configuration = configuration
        self.context = context
        self.thread = thread
        var logger = configuration.logger
        logger[metadataKey: "node"] = "\(configuration.name)"
        self.logger = logger
        self.inbound = inbound
        self.events = events
        authorized.withLock { $0 = configuration.options.authorizedKeys }
        sessionLiveness = PeerLiveness(timeout: configuration.options.unreachableAfter * 2)
        linkLiveness = PeerLiveness(timeout: configuration.options.unreachableAfter)
    }

    private var options: ClusterActorSystem.Options { configuration.options }
    private var curve: CurveKeyPair? { options.curve }

    // MARK: Start (I/O thread)

    /// Binds the ROUTER (unless this is a pure client), starts the ZAP handler (CURVE), the
    /// socket monitor and the timer.
    /// - Returns: this node's identity.
    func bind(on loop: SocketThread.Loop) throws -> NodeID {
        self.loop = loop
        let incarnation = UInt64.random(in: 1...UInt64.max)
        let publicKey = curve?.publicKey ?? ""
        loop.every(min(options.heartbeatInterval / 2, .milliseconds(20))) { [unowned self] in self.onTick() }
        guard let listen = configuration.listen else {
            local = NodeID(name: configuration.name, endpoint: "", incarnation: incarnation, publicKey: publicKey)
            return local
        }
        if let keys = curve {
            // libzmq asks the ZAP handler of the socket's context about every CURVE client; it
            // must be bound before the server socket accepts anyone.
            let (zapID, zap) = try loop.makeSocket(.rep)
            try zap.bind("inproc://zeromq.zap.01")
            loop.watch(zapID) { [unowned self] s in self.answerZAP(s) }
            _ = keys
        }
        let (_, socket) = try loop.makeSocket(.router)
        try socket.set(.maxMessageSize, options.maxMessageBytes)
        try socket.set(.receiveHighWaterMark, 100_000)
        try socket.set(.sendHighWaterMark, 100_000)
        try socket.set(.routerMandatory, 1)  // a full caller queue is EAGAIN (kept), not a silent drop
        try socket.set(.linger, 0)
        if let keys = curve { try socket.makeCurveServer(keys) }
        let monitorEndpoint = "inproc://churngrid-router-monitor-\(UInt64.random(in: 0...UInt64.max))"
        try socket.monitor(monitorEndpoint, events: ZMQSocketEvent.Kind.problems)
        let (monitorID, monitor) = try loop.makeSocket(.pair)
        try monitor.connect(monitorEndpoint)
        loop.watch(monitorID) { [unowned self] s in self.logMonitorEvents(s) }

        let bound = try socket.bind(listen)
        let port = RouterPort(socket: socket, fd: try socket.fileDescriptor())
        router = port
        local = NodeID(name: configuration.name, endpoint: configuration.advertise ?? bound, incarnation: incarnation, publicKey: publicKey)
        loop.watch(fd: port.fd, key: Self.routerWatchKey) { [unowned self] in self.drainRouter() }
        return local
    }

    // MARK: Links (any thread)

    /// The link to the node at `endpoint` whose CURVE key is `serverKey`, created on first use;
    /// it says hello at once.
    func link(to endpoint: String, serverKey: String) throws -> Link {
        if curve != nil, !CurveKeyPair.isValidKey(serverKey) {
            throw RemoteCallError(code: .refused, node: endpoint, actor: "", method: "connect",
                                  message: "no CURVE public key for \(endpoint): this cluster authenticates every node (give the node's key, e.g. --coordinator-key)")
        }
        if endpoint.isEmpty {
            throw RemoteCallError(code: .unreachable, node: "a pure client", actor: "", method: "connect",
                                  message: "the node listens nowhere (a client): it cannot be called")
        }
        // One socket per endpoint, created and connected under the lock: two callers racing to
        // dial the same node must not both connect.
        let key = LinkKey(endpoint: endpoint, serverKey: curve == nil ? "" : serverKey)
        let (link, created) = try links.withLock { l throws -> (Link, Bool) in
            if let existing = l[key] { return (existing, false) }
            let socket = try ZMQSocket(context, .dealer)
            let link: Link
            do {
                try socket.set(.linger, 0)
                try socket.set(.sendHighWaterMark, 100_000)
                try socket.set(.receiveHighWaterMark, 100_000)
                try socket.set(.maxMessageSize, options.maxMessageBytes)
                let key = nextWatchKey.add(1, ordering: .relaxed).oldValue
                if let keys = curve {
                    try socket.makeCurveClient(keys, serverKey: serverKey)
                    try socket.monitor("inproc://churngrid-link-monitor-\(key)",
                                       events: ZMQSocketEvent.Kind.handshakeFailures)
                }
                let fd = try socket.fileDescriptor()
                try socket.connect(endpoint)
                link = Link(endpoint: endpoint, serverKey: curve == nil ? "" : serverKey, socket: socket, fd: fd, watchKey: key,
                            handshake: Handshake(local: handshakeLocal, peerKey: curve == nil ? "" : serverKey))
            } catch {
                socket.close()
                throw error
            }
            l[key] = link
            return (link, true)
        }
        if created {
            mutate(link) { s in sendHello(&s) }
            thread.enqueue { [self] loop in
                loop.watch(fd: link.fd, key: link.watchKey) { [unowned self] in self.drainLink(link) }
                if curve != nil, let (id, monitor) = try? loop.makeSocket(.pair) {
                    if (try? monitor.connect("inproc://churngrid-link-monitor-\(link.watchKey)")) != nil {
                        monitors[link.watchKey] = id
                        loop.watch(id) { [unowned self] s in self.linkMonitorEvents(s, link: link) }
                    } else {
                        loop.close(id)
                    }
                }
                drainLink(link)
            }
        }
        return link
    }

    private var handshakeLocal: Handshake.Local {
        .init(node: local, cluster: configuration.cluster, protocolVersion: configuration.protocolVersion)
    }

    private func sendHello(_ s: inout Link.State) {
        s.handshake = Handshake(local: s.handshake.local, peerKey: s.handshake.peerKey)
        if case .send(let hello) = s.handshake.start() {
            // Queued by libzmq until the connection is up.
            s.send([ZMQMessage(Envelope.handshake(hello).wireBytes())])
            s.helloSentAt = .now
        }
    }

    /// Runs `body` on the link's state under its lock; if a send inside consumed libzmq's
    /// readiness signal while a reply is waiting, the I/O thread is asked to read it.
    @discardableResult
    private func mutate<R>(_ link: Link, _ body: (inout Link.State) -> R) -> R {
        let (result, pending) = link.state.withLock { s -> (R, Bool) in
            let r = body(&s)
            return (r, !s.closed && s.socket.hasInput)
        }
        if pending { thread.enqueue { [self] _ in drainLink(link) } }
        return result
    }

    /// The ids of the calls waiting for a reply (tests: forged replies).
    var pendingCallIDs: [UInt64] { calls.withLock { Array($0.pending.keys) } }

    /// Outbound calls waiting for their reply.
    var pendingCallCount: Int { calls.withLock { $0.pending.count } }

    // MARK: Outbound calls (the caller's task)

    /// Starts a call; `continuation` is resumed exactly once with the reply or an error.
    func startCall(_ callID: UInt64, to actor: ActorID, method: String, timeout: Duration, payload: ZMQMessage, continuation: UnsafeContinuation<ZMQPayload, Error>) {
        let link: Link
        do {
            link = try self.link(to: actor.node.endpoint, serverKey: actor.node.publicKey)
        } catch let error as RemoteCallError {
            continuation.resume(throwing: self.error(error.code, actor: actor, method: method, error.message))
            return
        } catch {
            continuation.resume(throwing: self.error(.unreachable, actor: actor, method: method, "\(error)"))
            return
        }
        let deadline = ContinuousClock.now + timeout
        let refusal = calls.withLock { c -> Error? in
            if c.cancelledBeforeStart.remove(callID) != nil { return CancellationError() }
            if c.shuttingDown { return error(.shutdown, actor: actor, method: method, "the local actor system is shutting down") }
            c.pending[callID] = Pending(continuation: continuation, link: link, actor: actor, method: method, deadline: deadline)
            if deadline < c.earliestDeadline { c.earliestDeadline = deadline }
            return nil
        }
        if let refusal {
            continuation.resume(throwing: refusal)
            return
        }
        let micros = UInt64(clamping: timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000)
        let header = Envelope.call(CallHeader(callID: callID, actor: actor.name, incarnation: actor.node.incarnation, method: method, timeoutMicroseconds: micros)).wireBytes()
        let problem = mutate(link) { s -> (RemoteCallError.Code, String)? in
            switch s.phase {
            case .established(let node) where node.incarnation != actor.node.incarnation:
                return (.nodeRestarted, "\(actor.node.endpoint) is now \(node); the actor's node \(actor.node) is gone")
            case .unreachable(let reason):
                return (.unreachable, reason)
            case .refused(let reason):
                return (.refused, reason)
            case _ where s.closed:
                return (.unreachable, "the link to \(link.endpoint) was closed")
            case .connecting, .established:
                if case .connecting = s.phase, s.handshake.state == .idle { sendHello(&s) }
                s.waiting.append(Link.Waiting(callID: callID, header: header, payload: payload))
                flush(&s)
                return nil
            }
        }
        if let (code, reason) = problem {
            fail(callID, code, reason)
        }
    }

    /// Sends waiting calls while the link is established and has room.
    private func flush(_ s: inout Link.State) {
        guard case .established = s.phase else { return }
        var sent = 0
        while sent < s.waiting.count, s.inFlight.count < options.maxInFlightPerPeer {
            let call = s.waiting[sent]
            guard s.trySend([ZMQMessage(call.header), call.payload]) else { break }  // libzmq's queue is full: retried on a reply or tick
            s.inFlight.insert(call.callID)
            sent += 1
        }
        if sent > 0 { s.waiting.removeFirst(sent) }
    }

    /// Resolves a call with a `RemoteCallError` (if it is still pending) and tells the callee to drop it.
    private func fail(_ callID: UInt64, _ code: RemoteCallError.Code, _ reason: String) {
        fail(callID) { error(code, actor: $0.actor, method: $0.method, reason) }
    }

    /// Resolves a call with the error `makeError` gives (if it is still pending) and tells the callee to drop it.
    private func fail(_ callID: UInt64, with makeError: (Pending) -> Error) {
        guard let call = calls.withLock({ $0.pending.removeValue(forKey: callID) }) else { return }
        mutate(call.link) { s in
            if s.inFlight.remove(callID) != nil {
                if case .established = s.phase { s.send([ZMQMessage(Envelope.cancel(callID: callID).wireBytes())]) }
            } else {
                s.waiting.removeAll { $0.callID == callID }
            }
            flush(&s)
        }
        call.continuation.resume(throwing: makeError(call))
    }

    /// The caller's task was cancelled.
    func cancelCall(_ callID: UInt64) {
        let known = calls.withLock { c -> Bool in
            if c.pending[callID] != nil { return true }
            c.cancelledBeforeStart.insert(callID)
            if c.cancelledBeforeStart.count > 4096, let oldest = c.cancelledBeforeStart.first { c.cancelledBeforeStart.remove(oldest) }
            return false
        }
        if known { fail(callID) { _ in CancellationError() } }
    }

    /// Waits for the handshake with the node at `endpoint` whose key is `serverKey`.
    func connect(_ endpoint: String, serverKey: String, continuation: UnsafeContinuation<NodeID, Error>) {
        do {
            let link = try self.link(to: endpoint, serverKey: serverKey)
            let node = mutate(link) { s -> NodeID? in
                if s.closed {
                    continuation.resume(throwing: RemoteCallError(code: .unreachable, node: endpoint, actor: "", method: "connect", message: "the link was closed"))
                    return nil
                }
                switch s.phase {
                case .established(let node): return node
                case .refused, .unreachable:
                    // Try again: the operator may have fixed the configuration, or the node restarted.
                    s.phase = .connecting
                    sendHello(&s)
                    s.connectWaiters.append(continuation)
                case .connecting:
                    if s.handshake.state == .idle { sendHello(&s) }
                    s.connectWaiters.append(continuation)
                }
                return nil
            }
            if let node { continuation.resume(returning: node) }
        } catch {
            continuation.resume(throwing: error)
        }
    }

    /// Fails connects to `endpoint` (dialled with `serverKey`) still waiting after `timeout`.
    func connectTimedOut(_ endpoint: String, serverKey: String, after timeout: Duration) {
        guard let link = links.withLock({ $0[LinkKey(endpoint: endpoint, serverKey: curve == nil ? "" : serverKey)] }) else { return }
        let (waiters, reason) = link.state.withLock { s -> ([UnsafeContinuation<NodeID, Error>], String) in
            defer { s.connectWaiters.removeAll() }
            if case .refused(let r) = s.phase { return (s.connectWaiters, r) }
            return (s.connectWaiters, "no handshake within \(timeout): is a ChurnGrid node listening there, with the key given for it?")
        }
        for w in waiters { w.resume(throwing: RemoteCallError(code: .unreachable, node: endpoint, actor: "", method: "connect", message: reason)) }
    }

    // MARK: Receiving answers on links (I/O thread)

    /// Messages read from a socket per hold of its mutex: a burst is received at once, then
    /// handled without the lock (the tasks sending on that socket wait less).
    static let receiveBurst = 32

    /// Reads everything that arrived on a link: handshake answers, pongs, replies, failures.
    /// Reads until libzmq has nothing more *after* the last burst was handled (a receive that
    /// finds nothing also processes libzmq's pending commands), so a readiness signal consumed
    /// by a send made while handling — settling a reply sends the calls that waited for its
    /// slot — loses no input.
    private func drainLink(_ link: Link) {
        let now = ContinuousClock.now
        var heard = false
        defer {
            // Once per drain, not per message: a sign of life is a sign of life.
            if heard, case .established = link.state.withLock({ $0.phase }) { linkLiveness.heard(from: link.key, at: now) }
        }
        var burst: [[ZMQMessage]] = []
        while true {
            let more = link.state.withLock { s -> Bool in
                while burst.count < Self.receiveBurst, !s.closed, let parts = (try? s.socket.receive(wait: false)) ?? nil { burst.append(parts) }
                return burst.count == Self.receiveBurst
            }
            for parts in burst {
                heard = true
                handleLinkMessage(parts, on: link)
            }
            // Handling a burst may send (calls that waited for a slot, a hello): a send may
            // consume libzmq's readiness signal, so read once more after it.
            let handled = !burst.isEmpty
            burst.removeAll(keepingCapacity: true)
            guard more || handled else { return }
        }
    }

    /// One message that arrived on a link this node dialled.
    private func handleLinkMessage(_ parts: [ZMQMessage], on link: Link) {
        guard let first = parts.first, let envelope = decodeEnvelope(first, from: link.endpoint) else { return }
        switch envelope {
        case .handshake(let message):
            linkHandshake(message, link: link)
        case .pong:
            break  // heard: that is all a pong is for
        case .reply(let callID):
            guard let call = settle(callID, on: link) else { return }  // the caller gave up
            if parts.count == 2 {
                call.continuation.resume(returning: ZMQPayload(message: parts[1]))
            } else {
                call.continuation.resume(throwing: error(.malformedReply, actor: call.actor, method: call.method, "a reply of \(parts.count) parts"))
            }
        case .failure(let callID, let failure):
            if failure.code == .noSession { lostSession(link) }
            guard let call = settle(callID, on: link) else { return }
            let code = failure.code == .noSession ? .nodeRestarted : failure.code
            let node = link.state.withLock { $0.node.map { "\($0)" } } ?? link.endpoint
            call.continuation.resume(throwing: RemoteCallError(code: code, node: node, actor: call.actor.name, method: demangledMethod(call.method),
                message: failure.message, remoteErrorType: failure.errorType.isEmpty ? nil : failure.errorType))
        case .call, .ping, .cancel:
            logger.warning("dropped a message a callee never sends", metadata: ["peer": "\(link.endpoint)", "kind": "\(envelope.kind)"])
        }
    }

    /// A call's answer arrived on `link`: the call leaves the table and the link's wire slot, and
    /// waiting calls take the slot. Nil if the caller had given up already, or if the call was
    /// not made on this link (nobody but the callee can answer a call).
    private func settle(_ callID: UInt64, on link: Link) -> Pending? {
        let call = calls.withLock { c -> Pending? in
            guard let call = c.pending[callID], call.link === link else { return nil }
            return c.pending.removeValue(forKey: callID)
        }
        guard let call else { return nil }
        // Only ever called from `drainLink`, which reads again after handling a burst: no need
        // to ask libzmq whether the sends below consumed its readiness signal.
        link.state.withLock { s in
            s.inFlight.remove(callID)
            flush(&s)
        }
        return call
    }

    /// A welcome or refusal arrived on a link this node dialled.
    private func linkHandshake(_ message: HandshakeMessage, link: Link) {
        let action = link.state.withLock { $0.handshake.received(message) }
        switch action {
        case .establish(let node):
            established(node, link: link)
        case .refuse(_, let reason):
            refuse(link, reason: reason)
        case .none, .send, .sendAndEstablish:
            break
        }
    }

    /// The node at the end of `link` said welcome: mark the link established (failing calls
    /// addressed to a previous incarnation), send waiting calls, wake connects.
    private func established(_ node: NodeID, link: Link) {
        linkLiveness.heard(from: link.key, at: .now)
        let (waiters, stale, wasConnected) = mutate(link) { s -> ([UnsafeContinuation<NodeID, Error>], [UInt64], Bool) in
            let previous = s.node
            s.phase = .established(node)
            var stale: [UInt64] = []
            if let previous, previous.incarnation != node.incarnation { stale = Array(s.inFlight) }
            flush(&s)
            defer { s.connectWaiters.removeAll() }
            return (s.connectWaiters, stale, previous == node)
        }
        for id in stale { fail(id, .nodeRestarted, "\(node.endpoint) restarted: it is now \(node)") }
        if !wasConnected {
            logger.info("connected", metadata: ["peer": "\(node)"])
            events.yield(.connected(node))
        }
        for w in waiters { w.resume(returning: node) }
    }

    /// The node refused this one (handshake or CURVE authentication): fail what waits on the link.
    private func refuse(_ link: Link, reason: String) {
        let (waiters, doomed, already) = link.state.withLock { s -> ([UnsafeContinuation<NodeID, Error>], [UInt64], Bool) in
            var already = false
            if case .refused = s.phase { already = true }
            s.phase = .refused(reason)
            defer { s.connectWaiters.removeAll() }
            return (s.connectWaiters, Array(s.inFlight) + s.waiting.map(\.callID), already)
        }
        linkLiveness.forget(link.key)
        if !already { logger.error("refused by a node", metadata: ["peer": "\(link.endpoint)", "reason": "\(reason)"]) }
        for id in doomed { fail(id, .refused, reason) }
        for w in waiters { w.resume(throwing: RemoteCallError(code: .refused, node: link.endpoint, actor: "", method: "connect", message: reason)) }
        if !already { events.yield(.unreachable(endpoint: link.endpoint, publicKey: link.serverKey, node: nil, reason: reason)) }
    }

    /// The callee no longer knows this node (it restarted at the same endpoint, or dropped the
    /// session): shake hands again.
    private func lostSession(_ link: Link) {
        let doomed = mutate(link) { s -> [UInt64]? in
            guard case .established(let node) = s.phase else { return nil }
            logger.warning("peer lost this node's session; shaking hands again", metadata: ["peer": "\(node)"])
            s.phase = .connecting
            sendHello(&s)
            return Array(s.inFlight)
        }
        for id in doomed ?? [] { fail(id, .nodeRestarted, "\(link.endpoint) no longer knows this node (it restarted, or dropped the session)") }
    }

    // MARK: Receiving calls on the ROUTER (I/O thread)

    private func drainRouter() {
        guard let router else { return }
        var burst: [[ZMQMessage]] = []
        while !routerPaused.load(ordering: .relaxed) {
            // A burst per hold of the mutex (the executors' replies wait less for it); the limit
            // on outstanding calls may be passed by at most a burst.
            let more = router.state.withLock { s -> Bool in
                while burst.count < Self.receiveBurst, !s.closed, let parts = (try? s.socket.receive(wait: false)) ?? nil { burst.append(parts) }
                return burst.count == Self.receiveBurst
            }
            for parts in burst { received(parts, on: router) }
            // Handling may have answered (pongs, refusals) on the ROUTER: read once more after.
            let handled = !burst.isEmpty
            burst.removeAll(keepingCapacity: true)
            guard more || handled else { return }
        }
    }

    private func received(_ parts: [ZMQMessage], on router: RouterPort) {
        guard parts.count >= 2 else {
            logger.warning("dropped a message without an envelope", metadata: ["parts": "\(parts.count)"])
            return
        }
        let rid = parts[0].bytes
        let now = ContinuousClock.now
        // The key the connection authenticated with (the ZAP handler's user id), on every message:
        // a session is bound to its connection and key.
        let key = curve == nil ? "" : (parts[1].property("User-Id") ?? "")
        let session = sessions[rid].flatMap { $0.caller.publicKey == key ? $0 : nil }
        guard let envelope = decodeEnvelope(parts[1], from: session.map { "\($0.caller.node)" } ?? "a connection without a handshake") else { return }
        if case .handshake(let message) = envelope {
            hello(message, rid: rid, key: key, router: router)
            return
        }
        guard let session else {
            // A sender that never shook hands (a stray client, or a caller from before our restart).
            logger.notice("answered a message from a connection without a handshake", metadata: ["kind": "\(envelope.kind)"])
            let callID: UInt64
            switch envelope {
            case .call(let h): callID = h.callID
            case .ping: callID = 0
            default: return
            }
            answer(rid, [ZMQMessage(Envelope.failure(callID: callID, RemoteFailure(code: .noSession, message: "no handshake from this connection: say hello first")).wireBytes())])
            return
        }
        sessionLiveness.heard(from: rid, at: now)
        switch envelope {
        case .ping(let seq):
            answer(rid, [ZMQMessage(Envelope.pong(seq).wireBytes())])
        case .call(let header):
            guard parts.count == 3 else {
                answer(rid, [ZMQMessage(Envelope.failure(callID: header.callID, RemoteFailure(code: .invalidInvocation, message: "a call has 2 parts; this one had \(parts.count - 1)")).wireBytes())])
                return
            }
            guard header.incarnation == local.incarnation else {
                answer(rid, [ZMQMessage(Envelope.failure(callID: header.callID, RemoteFailure(code: .nodeRestarted,
                    message: "the call was for incarnation \(String(header.incarnation, radix: 16)); this node is \(local!)")).wireBytes())])
                return
            }
            let outstanding = inbound.push(InboundCall(rid: rid, caller: session.caller, header: header, payload: ZMQPayload(message: parts[2]), received: now))
            if outstanding >= options.inboundQueueLimit {
                routerPaused.store(true, ordering: .relaxed)
                loop.pause(key: Self.routerWatchKey, true)
                logger.notice("inbound queue full: not reading new messages until it drains", metadata: ["outstanding": "\(outstanding)"])
            }
        case .cancel(let callID):
            _ = inbound.cancel(rid: rid, callID: callID)
        case .pong, .reply, .failure, .handshake:
            strayAnswers.add(1, ordering: .relaxed)
            logger.warning("dropped a message a caller never sends", metadata: ["peer": "\(session.caller.node)", "kind": "\(envelope.kind)"])
        }
    }

    /// A hello arrived on the ROUTER's connection `rid`, authenticated with `key`.
    private func hello(_ message: HandshakeMessage, rid: [UInt8], key: String, router: RouterPort) {
        guard case .hello(_, _, let claimed) = message else {
            logger.warning("dropped a handshake answer sent to this node's listening socket")
            return
        }
        let credentials: Handshake.Credentials = curve == nil ? .insecure : .key(key, authorized.withLock { $0?.grant(for: key) })
        var check = Handshake(local: handshakeLocal)
        switch check.received(message, credentials: credentials) {
        case .sendAndEstablish(let welcome, let node):
            guard let caller = check.caller else { return }
            let known = sessions[rid]?.caller == caller
            sessions[rid] = Session(caller: caller)
            sessionKeys.withLock { $0[rid] = caller.publicKey }
            sessionLiveness.heard(from: rid, at: .now)
            answer(rid, [ZMQMessage(Envelope.handshake(welcome).wireBytes())])
            if !known { logger.info("session opened", metadata: ["peer": "\(node)", "as": "\(caller)", "roles": "\(caller.roles.map(\.rawValue).sorted())"]) }
        case .refuse(let refusal, let reason):
            sessions[rid] = nil
            sessionKeys.withLock { $0[rid] = nil }
            sessionLiveness.forget(rid)
            logger.error("refused a node", metadata: ["peer": "\(claimed)", "reason": "\(reason)"])
            if let refusal { answer(rid, [ZMQMessage(Envelope.handshake(refusal).wireBytes())]) }
        case .none, .send, .establish:
            break
        }
    }

    /// Sends on the ROUTER to the connection `rid` (I/O thread).
    private func answer(_ rid: [UInt8], _ parts: [ZMQMessage]) {
        router?.state.withLock { $0.send(to: rid, parts) }
    }

    /// Sends an executed call's answer to the connection it came on (any thread) — only if that
    /// connection still has a session of the key that made the call: a connection that took over
    /// a closed one's routing id never receives its answers.
    func reply(to rid: [UInt8], caller key: String, _ parts: [ZMQMessage]) {
        guard router != nil else { return }
        guard sessionKeys.withLock({ $0[rid] }) == key else {
            logger.notice("dropped an answer: the caller's connection is gone", metadata: ["bytes": "\(parts.reduce(0) { $0 + $1.count })"])
            return
        }
        guard replies.add(rid: rid, parts) else { return }  // the executor sending now takes it along
        sendReplies(rounds: Self.senderRounds)
    }

    /// Rounds of answers an executor sends before it hands the rest to the I/O thread (an
    /// executor belongs to its calls, not to sending everybody's answers forever).
    static let senderRounds = 8

    /// The sender's loop: every answer waiting goes to libzmq under one hold of the ROUTER's
    /// mutex; after `rounds` rounds the I/O thread takes over (it sends nothing but answers here,
    /// never runs a method). A send may consume libzmq's readiness signal: the ROUTER is checked
    /// once per round, and read if input waits.
    private func sendReplies(rounds: Int?) {
        guard let router else { return }
        var round = 0
        while true {
            let answers = replies.take()
            if answers.isEmpty { return }
            let pending = router.state.withLock { s -> Bool in
                for a in answers { s.send(to: a.rid, a.parts) }
                return !s.closed && s.socket.hasInput
            }
            if pending { thread.enqueue { [self] _ in drainRouter() } }
            round += 1
            if let rounds, round >= rounds {
                thread.enqueue { [self] _ in sendReplies(rounds: nil) }
                return
            }
        }
    }

    /// Asks the ROUTER to be read again (the executing tasks drained the inbound queue).
    func resumeRouter() {
        guard routerPaused.load(ordering: .relaxed) else { return }
        routerPaused.store(false, ordering: .relaxed)
        loop.pause(key: Self.routerWatchKey, false)
        logger.notice("inbound queue drained: reading messages again")
        drainRouter()
    }

    // MARK: Authorized keys

    /// Replaces the authorized keys (SIGHUP): sessions whose key is no longer listed, or is now
    /// listed under another name, are closed (their next message is answered "no session", and
    /// their hello is refused); the others take their new roles at once.
    func reload(_ keys: AuthorizedKeys) {
        authorized.withLock { $0 = keys }
        thread.enqueue { [self] _ in
            var closed = 0
            for (rid, session) in sessions {
                let caller = session.caller
                if let grant = keys.grant(for: caller.publicKey), grant.name == caller.name {
                    sessions[rid] = Session(caller: Caller(node: caller.node, name: caller.name, publicKey: caller.publicKey, roles: grant.roles))
                } else {
                    sessions[rid] = nil
                    sessionKeys.withLock { $0[rid] = nil }
                    sessionLiveness.forget(rid)
                    closed += 1
                    logger.notice("closed the session of a key no longer authorized", metadata: ["peer": "\(caller.node)", "as": "\(caller)"])
                }
            }
            logger.notice("authorized keys reloaded", metadata: ["keys": "\(keys.entries.count)", "sessions closed": "\(closed)"])
        }
    }

    // MARK: Timers and heartbeats (I/O thread)

    private func onTick() {
        let now = ContinuousClock.now
        let expired = calls.withLock { c -> [UInt64] in
            guard now >= c.earliestDeadline else { return [] }
            var next = now + .seconds(86_400)
            var expired: [UInt64] = []
            for (id, call) in c.pending {
                if call.deadline <= now { expired.append(id) } else if call.deadline < next { next = call.deadline }
            }
            c.earliestDeadline = next
            return expired
        }
        for id in expired { fail(id, .timedOut, "no reply within the call's timeout") }

        for rid in sessionLiveness.expire(at: now) {
            sessionKeys.withLock { $0[rid] = nil }
            if let session = sessions.removeValue(forKey: rid) {
                logger.info("caller went away", metadata: ["peer": "\(session.caller.node)"])
            }
        }

        for key in linkLiveness.expire(at: now) {
            guard let link = links.withLock({ $0[key] }) else { continue }
            let reason = "no answer for more than \(options.unreachableAfter)"
            let lost = link.state.withLock { s -> (NodeID, [UInt64])? in
                guard case .established(let node) = s.phase else { return nil }
                s.phase = .unreachable(reason)
                return (node, Array(s.inFlight) + s.waiting.map(\.callID))
            }
            guard let (node, doomed) = lost else { continue }
            for id in doomed { fail(id, .unreachable, "\(node) is unreachable: \(reason)") }
            logger.error("node unreachable", metadata: ["peer": "\(node)", "reason": "\(reason)"])
            events.yield(.unreachable(endpoint: link.endpoint, publicKey: link.serverKey, node: node, reason: reason))
        }

        if let router {
            let more = router.state.withLock { s -> Bool in
                s.retry()
                if s.dropped > 0 {
                    logger.warning("dropped answers to callers that did not read them", metadata: ["dropped": "\(s.dropped)"])
                    s.dropped = 0
                }
                return !s.closed && s.socket.hasInput
            }
            if more { drainRouter() }  // a safety net for a readiness signal consumed by a send
        }

        // The executors finished every call before the pause was seen: nobody asked to resume.
        if routerPaused.load(ordering: .relaxed), inbound.outstanding <= options.inboundQueueLimit / 2 { resumeRouter() }

        for link in links.withLock({ Array($0.values) }) {
            let more = link.state.withLock { s -> Bool in
                while let parts = s.outbox.first, s.trySend(parts) { s.outbox.removeFirst() }
                switch s.phase {
                case .established:
                    if now - s.lastPing >= options.heartbeatInterval {
                        s.pingSeq += 1
                        s.lastPing = now
                        s.send([ZMQMessage(Envelope.ping(s.pingSeq).wireBytes())])
                    }
                    flush(&s)
                case .connecting, .unreachable:
                    if let at = s.helloSentAt, now - at < options.heartbeatInterval * 5 { break }
                    sendHello(&s)
                case .refused:
                    // The operator may have fixed the keys (SIGHUP there): try again now and then.
                    if let at = s.helloSentAt, now - at < Self.refusedRetry { break }
                    s.phase = .connecting
                    sendHello(&s)
                }
                return !s.closed && s.socket.hasInput
            }
            if more { drainLink(link) }
        }
    }

    /// Closes a link and drops every trace of it (I/O thread).
    private func forget(_ link: Link) {
        links.withLock { l in
            if l[link.key] === link { l[link.key] = nil }
        }
        loop.unwatch(key: link.watchKey)
        if let monitor = monitors.removeValue(forKey: link.watchKey) { loop.close(monitor) }
        linkLiveness.forget(link.key)
        let (doomed, waiters) = link.state.withLock { s -> ([UInt64], [UnsafeContinuation<NodeID, Error>]) in
            s.closed = true
            s.phase = .refused("the link was closed")
            s.socket.close()
            defer { s.connectWaiters.removeAll() }
            return (Array(s.inFlight) + s.waiting.map(\.callID), s.connectWaiters)
        }
        for id in doomed { fail(id, .unreachable, "the link to \(link.endpoint) was closed") }
        for w in waiters { w.resume(throwing: RemoteCallError(code: .unreachable, node: link.endpoint, actor: "", method: "connect", message: "the link was closed")) }
    }

    // MARK: Shutdown

    /// Fails every pending call, refuses new ones and closes the sockets (I/O thread).
    func shutdown() {
        let doomed = calls.withLock { c -> [UInt64] in
            c.shuttingDown = true
            return Array(c.pending.keys)
        }
        for id in doomed { fail(id, .shutdown, "the local actor system is shutting down") }
        for link in links.withLock({ Array($0.values) }) {
            loop.unwatch(key: link.watchKey)
            let waiters = link.state.withLock { s -> [UnsafeContinuation<NodeID, Error>] in
                s.closed = true
                s.phase = .refused("the local actor system is shutting down")
                s.socket.close()
                defer { s.connectWaiters.removeAll() }
                return s.connectWaiters
            }
            for w in waiters { w.resume(throwing: RemoteCallError(code: .shutdown, node: link.endpoint, actor: "", method: "connect", message: "the local actor system is shutting down")) }
        }
        if let router {
            loop.unwatch(key: Self.routerWatchKey)
            router.state.withLock { s in
                s.closed = true
                s.socket.close()
            }
        }
        events.finish()
    }

    // MARK: Helpers

    /// The envelope of a message from `peer`; a malformed one is logged and dropped.
    private func decodeEnvelope(_ part: ZMQMessage, from peer: @autoclosure () -> String) -> Envelope? {
        do {
            return try part.withBytes { raw throws(WireError) in
                var r = WireReader(raw)
                let e = try Envelope(from: &r)
                try r.finish()
                return e
            }
        } catch {
            logger.warning("dropped a malformed message", metadata: ["peer": "\(peer())", "bytes": "\(part.count)", "error": "\(error)"])
            return nil
        }
    }

    private func error(_ code: RemoteCallError.Code, actor: ActorID, method: String, _ message: String) -> RemoteCallError {
        RemoteCallError(code: code, node: "\(actor.node)", actor: actor.name, method: demangledMethod(method), message: message)
    }

    /// Answers libzmq's ZAP requests: a CURVE client is admitted only if its key is authorized;
    /// its key becomes the connection's user id, which every message it sends carries.
    private func answerZAP(_ socket: ZMQSocket) {
        while let parts = try? socket.receive(wait: false) {
            // ZAP request: version, request id, domain, address, identity, mechanism, credentials.
            guard parts.count >= 6 else { continue }
            let requestID = parts[1].bytes
            let address = String(decoding: parts[3].bytes.prefix(64), as: UTF8.self)
            let mechanism = String(decoding: parts[5].bytes.prefix(16), as: UTF8.self)
            let key = parts.count >= 7 ? CurveKeyPair.z85(parts[6].bytes) : nil
            let grant = key.flatMap { k in authorized.withLock { $0?.grant(for: k) } }
            let ok = mechanism == "CURVE" && grant != nil
            if !ok {
                // Once per key and minute: a refused peer keeps reconnecting.
                let shown = key.map { String($0.prefix(8)) + "…" } ?? "none"
                let now = ContinuousClock.now
                if refusalsLogged[shown].map({ now - $0 > .seconds(60) }) ?? true {
                    if refusalsLogged.count > 1024 { refusalsLogged.removeAll() }
                    refusalsLogged[shown] = now
                    logger.error("refused a connection whose key is not authorized",
                                 metadata: ["address": "\(address)", "mechanism": "\(mechanism)", "key": "\(shown)"])
                }
            }
            _ = try? socket.send([Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8), Array((ok ? "OK" : "not authorized").utf8),
                                  Array((ok ? key ?? "" : "").utf8), []])
        }
    }

    private func logMonitorEvents(_ socket: ZMQSocket) {
        while let parts = try? socket.receive(wait: false) {
            guard let event = ZMQSocketEvent(parts) else { continue }
            if event.kind == .disconnected {
                logger.info("connection closed", metadata: ["address": "\(event.address)"])
            } else {
                logger.warning("connection refused by libzmq", metadata: ["address": "\(event.address)", "event": "\(event.kind)", "code": "\(event.value)"])
            }
        }
    }

    /// A dialled node's CURVE handshake failed: it does not accept this node's key (or presents
    /// another key than the one it was dialled with). Fail the link's calls at once.
    private func linkMonitorEvents(_ socket: ZMQSocket, link: Link) {
        while let parts = try? socket.receive(wait: false) {
            guard let event = ZMQSocketEvent(parts) else { continue }
            let reason = event.kind == .handshakeFailedAuth
                ? "\(link.endpoint) did not accept this node's key (CURVE authentication refused: is the key in its authorized keys?)"
                : "the CURVE handshake with \(link.endpoint) failed (\(event.kind)): is its public key the one given for it?"
            refuse(link, reason: reason)
        }
    }
}
