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
    /// The handshake with a node succeeded.
    case connected(NodeID)
    /// A node stopped answering (or refused us); its calls failed.
    case unreachable(endpoint: String, node: NodeID?, reason: String)
}

/// The node's messaging: one ROUTER that receives everything (owned by the I/O thread) and one
/// `Link` per other node for sending; the table of calls waiting for replies; handshakes,
/// heartbeats and timeouts.
///
/// `@unchecked Sendable`: the members marked "I/O thread" are only touched on the system's
/// `SocketThread`; everything else is behind a `Mutex` (links, calls) or immutable.
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

    struct Links {
        var byEndpoint: [String: Link] = [:]
        /// Links by the routing id their node's messages arrive with (set once the handshake tells us).
        var byRoutingID: [[UInt8]: Link] = [:]
    }

    let configuration: ClusterActorSystem.Configuration
    let logger: Logger
    let inbound: InboundQueue
    let events: AsyncStream<PeerEvent>.Continuation
    let context: ZMQContext
    /// This node; set by `bind` before any other use.
    private(set) var local: NodeID!
    /// The routing id this node's links announce (derived from the incarnation).
    private(set) var routingID: [UInt8] = []
    private let calls = Guarded(Calls())
    private let links = Guarded(Links())
    /// Whether the ROUTER is paused because too many inbound calls are outstanding.
    let routerPaused = Atomic<Bool>(false)

    // I/O thread only.
    private var loop: SocketThread.Loop!
    private var router: ZMQSocket!
    private var routerID: SocketThread.Loop.SocketID!
    private var sessions: [[UInt8]: Session] = [:]
    /// When each node (by endpoint) was last heard from; any message counts.
    private var liveness: PeerLiveness<String>

    /// A node that shook hands with this one, by the routing id of its link. It lives as long
    /// as the link, or until the node restarts (a new incarnation replaces it).
    struct Session {
        let node: NodeID
        let link: Link
    }

    init(configuration: ClusterActorSystem.Configuration, context: ZMQContext, inbound: InboundQueue, events: AsyncStream<PeerEvent>.Continuation) {
        self.configuration = configuration
        self.context = context
        var logger = configuration.logger
        logger[metadataKey: "node"] = "\(configuration.name)"
        self.logger = logger
        self.inbound = inbound
        self.events = events
        liveness = PeerLiveness(timeout: configuration.options.unreachableAfter)
    }

    private var options: ClusterActorSystem.Options { configuration.options }

    // MARK: Start (I/O thread)

    /// Binds the ROUTER, starts the ZAP handler (CURVE), the socket monitor and the timer.
    /// - Returns: this node's identity.
    func bind(on loop: SocketThread.Loop) throws -> NodeID {
        self.loop = loop
        if let keys = options.curve {
            // libzmq asks the ZAP handler of the socket's context about every CURVE client; it
            // must be bound before the server socket accepts anyone.
            let (zapID, zap) = try loop.makeSocket(.rep)
            try zap.bind("inproc://zeromq.zap.01")
            loop.watch(zapID) { [unowned self] s in self.answerZAP(s, clusterKey: keys.publicKey) }
        }
        let (id, socket) = try loop.makeSocket(.router)
        try socket.set(.maxMessageSize, options.maxMessageBytes)
        try socket.set(.receiveHighWaterMark, 100_000)
        try socket.set(.routerHandover, 1)  // a peer's reconnection takes over its routing id
        try socket.set(.linger, 0)
        if let keys = options.curve { try socket.makeCurveServer(keys) }
        let monitorEndpoint = "inproc://churngrid-router-monitor-\(UInt64.random(in: 0...UInt64.max))"
        try socket.monitor(monitorEndpoint, events: ZMQSocketEvent.Kind.problems)
        let (monitorID, monitor) = try loop.makeSocket(.pair)
        try monitor.connect(monitorEndpoint)
        loop.watch(monitorID) { [unowned self] s in self.logMonitorEvents(s) }

        let bound = try socket.bind(configuration.listen)
        router = socket
        routerID = id
        let incarnation = UInt64.random(in: 1...UInt64.max)
        local = NodeID(name: configuration.name, endpoint: configuration.advertise ?? bound, incarnation: incarnation)
        routingID = Self.routingID(incarnation)
        loop.watch(id) { [unowned self] s in self.drainRouter(s) }
        loop.every(min(options.heartbeatInterval / 2, .milliseconds(20))) { [unowned self] in self.onTick() }
        return local
    }

    /// A node's links announce this routing id (a leading non-zero byte: libzmq reserves ids starting with 0).
    static func routingID(_ incarnation: UInt64) -> [UInt8] {
        [0x43] + withUnsafeBytes(of: incarnation.littleEndian, Array.init)
    }

    // MARK: Links (any thread)

    /// The link to `endpoint`, created on first use. A link this node opens to call someone says
    /// hello at once; one opened only to answer a hello (`sayHello: false`) waits until a call needs it.
    func link(to endpoint: String, sayHello: Bool = true) throws -> Link {
        // One socket per endpoint, created and connected under the lock: two callers racing to
        // dial the same node must not both connect with this node's routing id (the peer's
        // ROUTER hands the id over to the later connection, and the earlier one's hello is lost).
        let (link, created) = try links.withLock { l throws -> (Link, Bool) in
            if let existing = l.byEndpoint[endpoint] { return (existing, false) }
            let socket = try ZMQSocket(context, .dealer)
            do {
                try socket.set(.routingID, routingID)
                try socket.set(.linger, 0)
                try socket.set(.sendHighWaterMark, 100_000)
                try socket.set(.maxMessageSize, options.maxMessageBytes)
                if let keys = options.curve { try socket.makeCurveClient(keys, serverKey: keys.publicKey) }
                try socket.connect(endpoint)
            } catch {
                socket.close()
                throw error
            }
            let link = Link(endpoint: endpoint, socket: socket,
                            handshake: Handshake(local: .init(node: local, cluster: configuration.cluster, protocolVersion: configuration.protocolVersion)))
            l.byEndpoint[endpoint] = link
            return (link, true)
        }
        if created {
            link.state.withLock { s in
                s.dialed = sayHello
                if sayHello { sendHello(&s) }
            }
        }
        return link
    }

    private func sendHello(_ s: inout Link.State) {
        s.handshake = Handshake(local: s.handshake.local)
        if case .send(let hello) = s.handshake.start() {
            // Queued by libzmq until the connection is up.
            s.send([ZMQMessage(Envelope.handshake(hello).wireBytes())])
            s.helloSentAt = .now
        }
    }

    // MARK: Outbound calls (the caller's task)

    /// Starts a call; `continuation` is resumed exactly once with the reply or an error.
    func startCall(_ callID: UInt64, to actor: ActorID, method: String, timeout: Duration, payload: ZMQMessage, continuation: UnsafeContinuation<ZMQPayload, Error>) {
        let link: Link
        do {
            link = try self.link(to: actor.node.endpoint)
        } catch {
            continuation.resume(throwing: self.error(.unreachable, actor: actor, method: method, "\(error)"))
            return
        }
        let deadline = ContinuousClock.now + timeout
        let refusal = calls.withLock { c -> RemoteCallError? in
            if c.cancelledBeforeStart.remove(callID) != nil { return nil }
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
        let problem = link.state.withLock { s -> (RemoteCallError.Code, String)? in
            switch s.phase {
            case .established(let node) where node.incarnation != actor.node.incarnation:
                return (.nodeRestarted, "\(actor.node.endpoint) is now \(node); the actor's node \(actor.node) is gone")
            case .unreachable(let reason):
                return (.unreachable, reason)
            case .refused(let reason):
                return (.refused, reason)
            case .connecting, .established:
                s.dialed = true
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
        call.link.state.withLock { s in
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
            if c.cancelledBeforeStart.count > 4096 { c.cancelledBeforeStart.remove(c.cancelledBeforeStart.min()!) }
            return false
        }
        if known { fail(callID) { _ in CancellationError() } }
    }

    /// Waits for the handshake with the node at `endpoint`.
    func connect(_ endpoint: String, continuation: UnsafeContinuation<NodeID, Error>) {
        do {
            let link = try self.link(to: endpoint)
            let node = link.state.withLock { s -> NodeID? in
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

    /// Fails connects to `endpoint` still waiting after `timeout`.
    func connectTimedOut(_ endpoint: String, after timeout: Duration) {
        guard let link = links.withLock({ $0.byEndpoint[endpoint] }) else { return }
        let (waiters, reason) = link.state.withLock { s -> ([UnsafeContinuation<NodeID, Error>], String) in
            defer { s.connectWaiters.removeAll() }
            if case .refused(let r) = s.phase { return (s.connectWaiters, r) }
            return (s.connectWaiters, "no handshake within \(timeout): is a ChurnGrid node listening there, with the same CURVE keys?")
        }
        for w in waiters { w.resume(throwing: RemoteCallError(code: .unreachable, node: endpoint, actor: "", method: "connect", message: reason)) }
    }

    // MARK: Receiving (I/O thread)

    private func drainRouter(_ socket: ZMQSocket) {
        while !routerPaused.load(ordering: .relaxed), let parts = try? socket.receive(wait: false) {
            guard parts.count >= 2 else {
                logger.warning("dropped a message without an envelope", metadata: ["parts": "\(parts.count)"])
                continue
            }
            let rid = parts[0].bytes
            let now = ContinuousClock.now
            guard let envelope = decodeEnvelope(parts[1], from: sessions[rid]) else { continue }
            if case .handshake(let message) = envelope {
                handshake(message, routingID: rid)
                continue
            }
            guard let session = sessions[rid] else {
                // A sender that never shook hands (a stray client, or a caller from before our restart).
                logger.warning("dropped a message from a connection without a handshake", metadata: ["kind": "\(envelope.kind)"])
                answerUnknown(envelope, routingID: rid)
                continue
            }
            liveness.heard(from: session.link.endpoint, at: now)
            let link = session.link
            switch envelope {
            case .ping(let seq):
                link.state.withLock { $0.send([ZMQMessage(Envelope.pong(seq).wireBytes())]) }
            case .pong:
                break  // heard: that is all a pong is for
            case .call(let header):
                guard parts.count == 3 else {
                    logger.warning("dropped a call without its arguments part", metadata: ["peer": "\(session.node)", "parts": "\(parts.count)"])
                    link.state.withLock { $0.send([ZMQMessage(Envelope.failure(callID: header.callID, RemoteFailure(code: .invalidInvocation, message: "a call has 2 parts; this one had \(parts.count - 1)")).wireBytes())]) }
                    continue
                }
                guard header.incarnation == local.incarnation else {
                    link.state.withLock { $0.send([ZMQMessage(Envelope.failure(callID: header.callID, RemoteFailure(code: .nodeRestarted,
                        message: "the call was for incarnation \(String(header.incarnation, radix: 16)); this node is \(local!)")).wireBytes())]) }
                    continue
                }
                let outstanding = inbound.push(InboundCall(link: link, header: header, payload: ZMQPayload(message: parts[2]), received: now))
                if outstanding >= options.inboundQueueLimit {
                    routerPaused.store(true, ordering: .relaxed)
                    loop.pause(routerID, true)
                    logger.notice("inbound queue full: not reading new messages until it drains", metadata: ["outstanding": "\(outstanding)"])
                }
            case .reply(let callID):
                guard let call = settle(callID, on: link) else { continue }  // the caller gave up
                if parts.count == 3 {
                    call.continuation.resume(returning: ZMQPayload(message: parts[2]))
                } else {
                    call.continuation.resume(throwing: error(.malformedReply, actor: call.actor, method: call.method, "a reply of \(parts.count - 1) parts"))
                }
            case .failure(let callID, let failure):
                if failure.code == .noSession { lostSession(link) }
                guard let call = settle(callID, on: link) else { continue }
                let code = failure.code == .noSession ? .nodeRestarted : failure.code
                call.continuation.resume(throwing: RemoteCallError(code: code, node: "\(session.node)", actor: call.actor.name, method: demangledMethod(call.method),
                    message: failure.message, remoteErrorType: failure.errorType.isEmpty ? nil : failure.errorType))
            case .cancel(let callID):
                _ = inbound.cancel(link: link, callID: callID)
            case .handshake:
                break
            }
        }
    }

    /// A call's answer arrived: the call leaves the table and its link's wire slot, and waiting
    /// calls take the slot. Nil if the caller had given up already.
    private func settle(_ callID: UInt64, on link: Link) -> Pending? {
        guard let call = calls.withLock({ $0.pending.removeValue(forKey: callID) }) else { return nil }
        link.state.withLock { s in
            s.inFlight.remove(callID)
            flush(&s)
        }
        return call
    }

    /// A hello, welcome or refusal arrived.
    private func handshake(_ message: HandshakeMessage, routingID rid: [UInt8]) {
        switch message {
        case .hello(_, _, let node):
            var check = Handshake(local: .init(node: local, cluster: configuration.cluster, protocolVersion: configuration.protocolVersion))
            let action = check.received(message)
            guard let link = try? link(to: node.endpoint, sayHello: false) else {
                logger.error("cannot open a link to a node saying hello", metadata: ["peer": "\(node)"])
                return
            }
            switch action {
            case .sendAndEstablish(let welcome, let node):
                accept(node, routingID: rid, link: link) { s in s.send([ZMQMessage(Envelope.handshake(welcome).wireBytes())]) }
            case .refuse(let refusal, let reason):
                logger.error("refused a node", metadata: ["peer": "\(node)", "reason": "\(reason)"])
                link.state.withLock { s in
                    if let refusal { s.send([ZMQMessage(Envelope.handshake(refusal).wireBytes())]) }
                    if s.node == nil { s.phase = .refused(reason) }
                }
            case .none, .send, .establish:
                break
            }
        case .welcome(_, let node), .refused(_, let node):
            guard let link = links.withLock({ $0.byEndpoint[node.endpoint] }) else {
                logger.warning("dropped a handshake answer from a node this node did not call", metadata: ["peer": "\(node)"])
                return
            }
            let action = link.state.withLock { $0.handshake.received(message) }
            switch action {
            case .establish(let node):
                accept(node, routingID: rid, link: link) { _ in }
            case .refuse(_, let reason):
                logger.error("handshake refused", metadata: ["peer": "\(node.endpoint)", "reason": "\(reason)"])
                let (waiters, doomed) = link.state.withLock { s -> ([UnsafeContinuation<NodeID, Error>], [UInt64]) in
                    s.phase = .refused(reason)
                    defer { s.connectWaiters.removeAll() }
                    return (s.connectWaiters, Array(s.inFlight) + s.waiting.map(\.callID))
                }
                for id in doomed { fail(id, .refused, reason) }
                for w in waiters { w.resume(throwing: RemoteCallError(code: .refused, node: node.endpoint, actor: "", method: "connect", message: reason)) }
                events.yield(.unreachable(endpoint: node.endpoint, node: nil, reason: reason))
            case .none, .send, .sendAndEstablish:
                break
            }
        }
    }

    /// Both directions between this node and `node` are open: record the session, mark the link
    /// established (failing calls addressed to a previous incarnation), wake connects.
    private func accept(_ node: NodeID, routingID rid: [UInt8], link: Link, _ also: (inout Link.State) -> Void) {
        for (other, s) in sessions where s.node.endpoint == node.endpoint && s.node.incarnation != node.incarnation {
            sessions[other] = nil  // that node restarted
        }
        sessions[rid] = Session(node: node, link: link)
        liveness.heard(from: link.endpoint, at: .now)
        links.withLock { $0.byRoutingID[rid] = link }
        let (waiters, stale, wasConnected) = link.state.withLock { s -> ([UnsafeContinuation<NodeID, Error>], [UInt64], Bool) in
            let previous = s.node
            also(&s)
            s.phase = .established(node)
            // A hello from the peer also answers ours.
            if case .helloSent = s.handshake.state { _ = s.handshake.received(.welcome(protocolVersion: configuration.protocolVersion, node: node)) }
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

    private func answerUnknown(_ envelope: Envelope, routingID rid: [UInt8]) {
        // The reply can only travel over a link to the sender's endpoint, which an unknown sender
        // has not told us; a known link with that routing id (our session was dropped) is used.
        guard let link = links.withLock({ $0.byRoutingID[rid] }) else { return }
        let callID: UInt64
        switch envelope {
        case .call(let h): callID = h.callID
        case .ping: callID = 0
        default: return
        }
        link.state.withLock { $0.send([ZMQMessage(Envelope.failure(callID: callID, RemoteFailure(code: .noSession, message: "no handshake from this node: say hello first")).wireBytes())]) }
    }

    /// The callee no longer knows this node (it restarted at the same endpoint): shake hands again.
    private func lostSession(_ link: Link) {
        let doomed = link.state.withLock { s -> [UInt64]? in
            guard case .established(let node) = s.phase else { return nil }
            logger.warning("peer lost this node's session; shaking hands again", metadata: ["peer": "\(node)"])
            s.phase = .connecting
            sendHello(&s)
            return Array(s.inFlight)
        }
        for id in doomed ?? [] { fail(id, .nodeRestarted, "\(link.endpoint) no longer knows this node (it restarted)") }
    }

    /// Asks the ROUTER to be read again (the executing tasks drained the inbound queue).
    func resumeRouter() {
        guard routerPaused.load(ordering: .relaxed) else { return }
        routerPaused.store(false, ordering: .relaxed)
        loop.pause(routerID, false)
        logger.notice("inbound queue drained: reading messages again")
        drainRouter(router)
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

        for endpoint in liveness.expire(at: now) {
            guard let link = links.withLock({ $0.byEndpoint[endpoint] }) else { continue }
            let reason = "no answer for more than \(options.unreachableAfter)"
            let lost = link.state.withLock { s -> (NodeID, [UInt64], Bool)? in
                guard case .established(let node) = s.phase else { return nil }
                s.phase = .unreachable(reason)
                return (node, Array(s.inFlight) + s.waiting.map(\.callID), s.dialed)
            }
            guard let (node, doomed, dialed) = lost else { continue }
            for id in doomed { fail(id, .unreachable, "\(node) is unreachable: \(reason)") }
            if dialed {
                logger.error("node unreachable", metadata: ["peer": "\(node)", "reason": "\(reason)"])
                events.yield(.unreachable(endpoint: link.endpoint, node: node, reason: reason))
            } else {
                // A node that only called this one (a CLI client, say) went away: forget it.
                logger.info("caller went away", metadata: ["peer": "\(node)"])
                forget(link)
            }
        }

        for link in links.withLock({ Array($0.byEndpoint.values) }) {
            link.state.withLock { s in
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
                    // Retry the handshake of links this node wants (not of those opened only to answer).
                    if s.handshake.state == .idle && s.helloSentAt == nil { break }
                    if let at = s.helloSentAt, now - at < options.heartbeatInterval * 5 { break }
                    sendHello(&s)
                case .refused:
                    break
                }
            }
        }
    }

    /// Closes a link and drops every trace of it.
    private func forget(_ link: Link) {
        links.withLock { l in
            if l.byEndpoint[link.endpoint] === link { l.byEndpoint[link.endpoint] = nil }
            for (rid, other) in l.byRoutingID where other === link { l.byRoutingID[rid] = nil }
        }
        for (rid, s) in sessions where s.link === link { sessions[rid] = nil }
        liveness.forget(link.endpoint)
        link.state.withLock { $0.socket.close() }
    }

    // MARK: Shutdown

    /// Fails every pending call, refuses new ones and closes the links.
    func shutdown() {
        let doomed = calls.withLock { c -> [UInt64] in
            c.shuttingDown = true
            return Array(c.pending.keys)
        }
        for id in doomed { fail(id, .shutdown, "the local actor system is shutting down") }
        for link in links.withLock({ Array($0.byEndpoint.values) }) {
            let waiters = link.state.withLock { s -> [UnsafeContinuation<NodeID, Error>] in
                s.socket.close()
                defer { s.connectWaiters.removeAll() }
                return s.connectWaiters
            }
            for w in waiters { w.resume(throwing: RemoteCallError(code: .shutdown, node: link.endpoint, actor: "", method: "connect", message: "the local actor system is shutting down")) }
        }
        events.finish()
    }

    // MARK: Helpers

    /// The envelope of a message from `session` (nil: a connection without a handshake); a
    /// malformed one is logged (the sender formatted only then) and dropped.
    private func decodeEnvelope(_ part: ZMQMessage, from session: Session?) -> Envelope? {
        do {
            return try part.withBytes { raw throws(WireError) in
                var r = WireReader(raw)
                let e = try Envelope(from: &r)
                try r.finish()
                return e
            }
        } catch {
            logger.warning("dropped a malformed message", metadata: ["peer": "\(session.map { "\($0.node)" } ?? "connection without a handshake")",
                                                                    "bytes": "\(part.count)", "error": "\(error)"])
            return nil
        }
    }

    private func error(_ code: RemoteCallError.Code, actor: ActorID, method: String, _ message: String) -> RemoteCallError {
        RemoteCallError(code: code, node: "\(actor.node)", actor: actor.name, method: demangledMethod(method), message: message)
    }

    private func answerZAP(_ socket: ZMQSocket, clusterKey: String) {
        while let parts = try? socket.receive(wait: false) {
            // ZAP request: version, request id, domain, address, identity, mechanism, credentials.
            guard parts.count >= 6 else { continue }
            let requestID = parts[1].bytes
            let address = String(decoding: parts[3].bytes, as: UTF8.self)
            let mechanism = String(decoding: parts[5].bytes, as: UTF8.self)
            let key = parts.count >= 7 ? CurveKeyPair.z85(parts[6].bytes) : nil
            let ok = mechanism == "CURVE" && key == clusterKey
            if !ok {
                logger.error("refused a connection without the cluster's CURVE key", metadata: ["address": "\(address)", "mechanism": "\(mechanism)"])
            }
            _ = try? socket.send([Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8), Array((ok ? "OK" : "not a cluster member").utf8), [], []])
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
}
