import Distributed
import Logging
import Metrics
import Synchronization
import UnixSignals
import WireFormat
import ZeroMQ

/// ChurnGrid's `DistributedActorSystem`: distributed actors on different processes and machines
/// call each other over ZeroMQ.
///
/// Each node binds one ROUTER socket that receives calls and opens one DEALER per node it calls,
/// all owned by a dedicated I/O thread (`SocketThread`); no libzmq call runs on the cooperative
/// pool. Arguments and results use `WireFormat` (the serialization requirement is `WireCodable`).
/// Nodes shake hands (protocol version, cluster name) before any call, callers ping the nodes they
/// call and fail a silent node's calls as `.unreachable`; every call has a timeout
/// (`ClusterActorSystem.$callTimeout` overrides it per task) and can be cancelled. Calls on the
/// wire to one node are bounded (the rest wait), and inbound calls run on a fixed set of tasks
/// behind a bounded queue: when it is full the node stops reading and TCP pushes back.
public final class ClusterActorSystem: DistributedActorSystem, Sendable {
    public typealias ActorID = ClusterSystem.ActorID
    public typealias SerializationRequirement = any WireCodable
    public typealias InvocationEncoder = ClusterInvocationEncoder
    public typealias InvocationDecoder = ClusterInvocationDecoder
    public typealias ResultHandler = ClusterResultHandler

    /// This node's identity (its endpoint is the bound one, or `Configuration.advertise`).
    public let node: NodeID
    public let configuration: Configuration
    let logger: Logger
    let thread: SocketThread
    let transport: Transport
    private let context: ZMQContext
    private let inbound: InboundQueue
    private let actors = Mutex<[String: WeakActor]>([:])
    /// Call ids start at a random point: a reply settles only a call made on the link it came
    /// back on, and ids are not guessable across links either.
    private let nextCallID = Atomic<UInt64>(UInt64.random(in: 1...(UInt64.max / 2)))
    /// Roles allowed per method identifier, learnt from the actor types' `access` tables (a
    /// method's mangled name is demangled once, not per call).
    private let accessCache = Mutex<[AccessKey: AccessRule]>([:])
    /// Methods' types, resolved on their first call instead of demangled on every one.
    private let targets = ResolvedTargets()

    /// A method identifier as sent to an actor of one type (the identifier is the caller's word:
    /// the rule is learnt per actor type, never carried over from another).
    private struct AccessKey: Hashable {
        let type: ObjectIdentifier
        let identifier: String
    }
    private let nextActorNumber = Atomic<Int>(1)
    private let executors = Mutex<[Task<Void, Never>]>([])
    private let stopped = Atomic<Bool>(false)

    /// Connection events (handshakes, nodes lost), for membership and failover.
    public let peerEvents: AsyncStream<PeerEvent>

    /// Overrides the configured call timeout for calls made by the current task.
    @TaskLocal public static var callTimeout: Duration? = nil
    @TaskLocal static var nextActorName: String? = nil
    /// The authenticated caller of the distributed method being executed (nil outside one):
    /// for methods that check more than their role (a worker may drain only itself) and for
    /// audit logs.
    @TaskLocal public static var caller: Caller? = nil

    private struct AccessRule {
        let method: String
        let roles: Set<Role>
        /// The method's parameter count and whether it is generic (from its demangled name): a
        /// call claiming other arguments is refused before the method runs.
        let arity: Int
        let generic: Bool
    }

    private struct WeakActor {
        weak var actor: (any DistributedActor)?
    }

    /// Starts the node: binds its ROUTER and starts the I/O thread and the call executors.
    /// - Throws: `ZMQError` when the endpoint cannot be bound (in use, bad address).
    public init(_ configuration: Configuration) async throws {
        self.configuration = configuration
        context = try ZMQContext(ioThreads: 1)
        thread = try SocketThread(name: "cg-io", context: context)
        inbound = InboundQueue()
        let (events, continuation) = AsyncStream<PeerEvent>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        peerEvents = events
        let transport = Transport(configuration: configuration, context: context, thread: thread, inbound: inbound, events: continuation)
        self.transport = transport
        do {
            node = try await thread.perform { loop in try transport.bind(on: loop) }
        } catch {
            await thread.stop()
            throw error
        }
        var logger = configuration.logger
        logger[metadataKey: "node"] = "\(node.name)"
        self.logger = logger
        if configuration.listen != nil {
            logger.info("listening", metadata: ["endpoint": "\(node.endpoint)", "cluster": "\(configuration.cluster)",
                                                 "curve": "\(configuration.options.curve != nil)",
                                                 "authorized keys": "\(configuration.options.authorizedKeys?.entries.count ?? 0)"])
        }
        let tasks = (0..<max(1, configuration.options.inboundConcurrency)).map { _ in
            Task { [inbound, weak self] in
                while let call = await inbound.next() {
                    guard let self else { return }
                    await self.execute(call)
                    let left = inbound.done()
                    if transport.routerPaused.load(ordering: .relaxed), left <= self.configuration.options.inboundQueueLimit / 2 {
                        self.thread.enqueue { _ in transport.resumeRouter() }
                    }
                }
            }
        }
        executors.withLock { $0 = tasks }
    }

    /// The transport's queues now (the nodes' metrics).
    public var transportStats: TransportStats {
        TransportStats(outboundInFlight: transport.pendingCallCount, inboundOutstanding: inbound.outstanding,
                       inboundPaused: transport.routerPaused.load(ordering: .relaxed))
    }

    /// Stops the node: pending calls fail with `.shutdown`, executing calls finish, sockets close.
    public func shutdown() async {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        let transport = transport
        try? await thread.perform { _ in transport.shutdown() }
        inbound.finish()
        for task in executors.withLock({ $0 }) { await task.value }
        await thread.stop()
        context.shutdown()
        logger.info("stopped")
    }

    // MARK: Side sockets

    /// A socket in this node's ZeroMQ context, secured like its calls. With CURVE, a `server`
    /// socket (one that binds, e.g. a PUB feed) takes this node's keys and its clients are admitted
    /// by the same handler as the node's calls (its authorized keys); a client socket presents this
    /// node's keys to the server whose public key is `serverKey`. Without CURVE, a plain socket.
    /// The caller closes it before the system shuts down.
    public func makeSocket(_ kind: ZMQSocket.Kind, server: Bool, serverKey: String = "") throws(ZMQError) -> ZMQSocket {
        let socket = try ZMQSocket(context, kind)
        if let keys = configuration.options.curve {
            if server { try socket.makeCurveServer(keys) } else { try socket.makeCurveClient(keys, serverKey: serverKey) }
        }
        return socket
    }

    // MARK: Connecting

    /// Shakes hands with the node listening at `endpoint` (whose CURVE public key is `publicKey`
    /// on a cluster with CURVE) and returns its identity.
    /// - Throws: `RemoteCallError` `.refused` (wrong cluster, version or key; this node's key not
    ///   authorized there) or `.unreachable` when no handshake completes within `timeout`.
    public func connect(to endpoint: String, publicKey: String = "", timeout: Duration = .seconds(10)) async throws -> NodeID {
        let transport = transport
        let timer = Task {
            try await Task.sleep(for: timeout)
            transport.connectTimedOut(endpoint, serverKey: publicKey, after: timeout)
        }
        defer { timer.cancel() }
        return try await withUnsafeThrowingContinuation { c in
            transport.connect(endpoint, serverKey: publicKey, continuation: c)
        }
    }

    /// Reads the authorized-keys file at `path` again on every SIGHUP (sessions of removed keys
    /// are closed); a file that does not parse is logged and the previous list kept.
    /// - Returns: the watching task (nil without a file); cancel it when the node stops.
    public func reloadingAuthorizedKeysOnHangup(_ path: String?) -> Task<Void, Never>? {
        guard let path else { return nil }
        let logger = logger
        return Task { [weak self] in
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                guard let self else { return }
                do {
                    let keys = try AuthorizedKeys.load(path: path)
                    self.reloadAuthorizedKeys(keys)
                    logger.notice("SIGHUP: authorized keys read again", metadata: ["file": "\(path)", "keys": "\(keys.entries.count)"])
                } catch {
                    logger.error("SIGHUP: the authorized keys cannot be read; keeping the previous list", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Replaces who may connect and what each may call (on SIGHUP): the sessions of keys no
    /// longer listed are closed, the others take their new roles.
    public func reloadAuthorizedKeys(_ keys: AuthorizedKeys) {
        transport.reload(keys)
    }

    /// Creates a local actor with a chosen name ("shard/17", "coordinator") instead of a generated one.
    public func withActorName<T>(_ name: String, _ make: () throws -> T) rethrows -> T {
        try Self.$nextActorName.withValue(name, operation: make)
    }

    // MARK: DistributedActorSystem

    public func resolve<Act>(id: ActorID, as actorType: Act.Type) throws -> Act? where Act: DistributedActor, Act.ID == ActorID {
        guard id.node == node else { return nil }  // remote: Swift makes a proxy that calls `remoteCall`
        guard let actor = actors.withLock({ $0[id.name]?.actor }) as? Act else {
            throw RemoteCallError(code: .actorNotFound, node: "\(node)", actor: id.name, method: "", message: "no \(Act.self) named '\(id.name)' on this node")
        }
        return actor
    }

    public func assignID<Act>(_ actorType: Act.Type) -> ActorID where Act: DistributedActor, Act.ID == ActorID {
        let name = Self.nextActorName ?? "\(Act.self)/\(nextActorNumber.add(1, ordering: .relaxed).oldValue)"
        return ActorID(node: node, name: name)
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorID {
        let replaced = actors.withLock { table -> Bool in
            defer { table[actor.id.name] = WeakActor(actor: actor) }
            return table[actor.id.name]?.actor != nil
        }
        if replaced { logger.warning("an actor replaced another of the same name", metadata: ["actor": "\(actor.id.name)"]) }
    }

    public func resignID(_ id: ActorID) {
        // Called from the actor's deinit, when weak references to it already read nil: an entry
        // still holding a live actor belongs to a newer actor of the same name (a shard that
        // moved away and came back while a call held the old one) and stays.
        actors.withLock { table in
            if table[id.name] != nil, table[id.name]!.actor == nil { table[id.name] = nil }
        }
    }

    public func makeInvocationEncoder() -> InvocationEncoder {
        ClusterInvocationEncoder()
    }

    public func remoteCall<Act, Err, Res>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type, returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == ActorID, Err: Error, Res: WireCodable {
        let reply = try await send(to: actor.id, target: target, payload: invocation.payload())
        do {
            return try reply.message.withBytes { raw throws(WireError) in
                var r = WireReader(raw)
                let value = try Res(from: &r)
                try r.finish()
                return value
            }
        } catch {
            throw RemoteCallError(code: .malformedReply, node: "\(actor.id.node)", actor: actor.id.name, method: demangledMethod(target.identifier),
                                  message: "the reply is not a \(Res.self): \(error)")
        }
    }

    public func remoteCallVoid<Act, Err>(
        on actor: Act, target: RemoteCallTarget, invocation: inout InvocationEncoder, throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == ActorID, Err: Error {
        _ = try await send(to: actor.id, target: target, payload: invocation.payload())
    }

    private func send(to actor: ActorID, target: RemoteCallTarget, payload: ZMQMessage) async throws -> ZMQPayload {
        try Task.checkCancellation()
        let callID = nextCallID.add(1, ordering: .relaxed).oldValue
        let timeout = Self.callTimeout ?? configuration.options.callTimeout
        let transport = transport
        let method = target.identifier
        let part = ZMQPayload(message: payload)
        let start = ContinuousClock.now
        defer { CallTimers.shared.timer(for: method).record(duration: ContinuousClock.now - start) }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<ZMQPayload, Error>) in
                // The calling task hands the message to libzmq itself; the I/O thread only receives.
                transport.startCall(callID, to: actor, method: method, timeout: timeout, payload: part.message, continuation: c)
            }
        } onCancel: {
            transport.cancelCall(callID)
        }
    }

    // MARK: Executing inbound calls

    private func execute(_ call: InboundCall) async {
        let handler = ClusterResultHandler(transport: transport, rid: call.rid, callerKey: call.caller.publicKey, callID: call.header.callID)
        if ContinuousClock.now - call.received > .microseconds(Int64(clamping: call.header.timeoutMicroseconds)) {
            return  // the caller has given up already
        }
        guard let actor = actors.withLock({ $0[call.header.actor]?.actor }) else {
            handler.fail(RemoteFailure(code: .actorNotFound, message: "no actor named '\(call.header.actor)' on \(node)"))
            return
        }
        // Authorization, before a byte of the arguments is decoded.
        let rule = accessRule(for: call.header.method, on: actor)
        guard call.caller.holds(any: rule.roles) else {
            let refusal = NotAuthorized(method: rule.method, needed: rule.roles, caller: "\(call.caller)")
            logger.warning("refused a call", metadata: ["caller": "\(call.caller)", "method": "\(rule.method)", "needs": "\(refusal.neededDescription)"])
            handler.fail(RemoteFailure(code: .notAuthorized, message: refusal.description))
            return
        }
        do {
            var decoder = try ClusterInvocationDecoder(payload: call.payload)
            guard decoder.argumentCount == rule.arity, rule.generic || decoder.genericCount == 0 else {
                handler.fail(RemoteFailure(code: .invalidInvocation, message: "\(rule.method) takes \(rule.arity) arguments\(rule.generic ? "" : " and no generic substitutions"); the call carries \(decoder.argumentCount)\(decoder.genericCount > 0 ? " and \(decoder.genericCount) substitutions" : "")"))
                return
            }
            let resolved = targets.target(call.header.method)
            try await Self.$caller.withValue(call.caller) {
                if let resolved {
                    try await execute(resolved, on: actor, decoder: &decoder, handler: handler)
                } else {
                    try await executeDistributedTarget(on: actor, target: RemoteCallTarget(call.header.method), invocationDecoder: &decoder, handler: handler)
                }
            }
            if decoder.leftover != 0 { logger.warning("a call's arguments had trailing bytes", metadata: ["method": "\(rule.method)", "bytes": "\(decoder.leftover)"]) }
        } catch let error as RemoteCallError {
            handler.fail(RemoteFailure(code: error.code, message: error.message))
        } catch {
            // Thrown by the runtime before the method ran: unknown method (different builds), bad arguments.
            handler.fail(RemoteFailure(code: .invalidInvocation, message: "\(error)"))
        }
        if !handler.hasAnswered {
            handler.fail(RemoteFailure(code: .invalidInvocation, message: "the call completed without a result"))
        }
    }

        /// Who may call `identifier` on `actor` (deny by default: a method its type does not list,
    /// or a type that lists none, is refused to everyone).
    private func accessRule(for identifier: String, on actor: any DistributedActor) -> AccessRule {
        let actorType = type(of: actor)
        let key = AccessKey(type: ObjectIdentifier(actorType), identifier: identifier)
        if let known = accessCache.withLock({ $0[key] }) { return known }
        let full = demangledMethod(identifier)  // "CoordinatorActor.drain(Swift.String)"
        let short = selector(full)  // "drain(_:)"
        // A method of another type sent to this actor is no method of it.
        let ownType = full.split(separator: "(").first.map { $0.split(separator: ".").dropLast().last.map(String.init) ?? "" } ?? ""
        let table = ownType == "\(actorType)" ? (actorType as? any AccessControlled.Type)?.access ?? [:] : [:]
        let name = full.split(separator: "(").first.map(String.init) ?? full
        let rule = AccessRule(method: name + String(short.drop { $0 != "(" }), roles: table[short] ?? [],
                              arity: short.filter { $0 == ":" }.count, generic: name.contains("<"))
        accessCache.withLock { cache in
            if cache.count < 4096 { cache[key] = rule }
        }
        return rule
    }
}

/// `Type.method(label: Type, Type)` as the demangler prints it → `method(label:_:)`.
func selector(_ demangled: String) -> String {
    guard let open = demangled.firstIndex(of: "(") else { return demangled }
    let head = demangled[..<open].split(separator: ".").last.map(String.init) ?? ""
    let inner = demangled[demangled.index(after: open)...].dropLast(demangled.hasSuffix(")") ? 1 : 0)
    var params: [String] = [], current = "", depth = 0
    for ch in inner {
        switch ch {
        case "(", "<", "[": depth += 1; current.append(ch)
        case ")", ">", "]": depth -= 1; current.append(ch)
        case "," where depth == 0: params.append(current); current = ""
        default: current.append(ch)
        }
    }
    if !current.trimmingSpaces.isEmpty { params.append(current) }
    let labels = params.map { p -> String in
        let t = p.trimmingSpaces
        if let colon = t.firstIndex(of: ":"), !t[..<colon].contains(where: { "(<[. ".contains($0) }) { return String(t[..<colon]) + ":" }
        return "_:"
    }
    return head + "(" + labels.joined() + ")"
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// What a node's transport holds in flight and queued.
public struct TransportStats: Sendable {
    /// Calls this node made that wait for their reply.
    public var outboundInFlight: Int
    /// Calls received and queued or executing.
    public var inboundOutstanding: Int
    /// Whether reading new calls is paused (too many outstanding: backpressure).
    public var inboundPaused: Bool
}

/// The latency histogram of outgoing calls per method (`churngrid_call_duration_seconds`), from
/// the call to its reply or failure. A method's label is demangled once, not per call.
final class CallTimers: Sendable {
    static let shared = CallTimers()
    private let timers = Mutex<[String: Metrics.Timer]>([:])

    func timer(for identifier: String) -> Metrics.Timer {
        if let t = timers.withLock({ $0[identifier] }) { return t }
        let t = Metrics.Timer(label: "churngrid_call_duration_seconds", dimensions: [("method", demangledMethod(identifier))])
        return timers.withLock { table in
            if let existing = table[identifier] { return existing }
            table[identifier] = t
            return t
        }
    }
}
