import CZeroMQ

/// A libzmq socket. Like libzmq's own sockets it is not thread-safe: one thread (ChurnGrid's
/// transport I/O thread) owns it. Blocking calls never belong on Swift's cooperative pool.
public final class ZMQSocket {
    /// A socket pattern.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        let raw: Int32
        let name: String
        public static let pair = Kind(raw: ZMQ_PAIR, name: "PAIR")
        public static let pub = Kind(raw: ZMQ_PUB, name: "PUB")
        public static let sub = Kind(raw: ZMQ_SUB, name: "SUB")
        public static let req = Kind(raw: ZMQ_REQ, name: "REQ")
        public static let rep = Kind(raw: ZMQ_REP, name: "REP")
        public static let dealer = Kind(raw: ZMQ_DEALER, name: "DEALER")
        public static let router = Kind(raw: ZMQ_ROUTER, name: "ROUTER")
        public static let pull = Kind(raw: ZMQ_PULL, name: "PULL")
        public static let push = Kind(raw: ZMQ_PUSH, name: "PUSH")
        public var description: String { name }
    }

    let handle: UnsafeMutableRawPointer
    /// The socket's pattern.
    public let kind: Kind
    // Keeps the context alive as long as the socket: libzmq requires sockets closed before the context.
    private let context: ZMQContext
    private var closed = false

    /// Creates a socket of `kind` in `context`.
    public init(_ context: ZMQContext, _ kind: Kind) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, kind.raw) else { throw ZMQError("create \(kind) socket") }
        self.handle = h
        self.kind = kind
        self.context = context
    }

    deinit { close() }

    /// Closes the socket, dropping unsent messages after `linger` milliseconds (0 = at once).
    public func close(linger: Int32 = 0) {
        guard !closed else { return }
        closed = true
        try? setOption(ZMQ_LINGER, linger)
        zmq_close(handle)
    }

    // MARK: Endpoints

    /// Binds to `endpoint` (`tcp://127.0.0.1:*` picks a free port).
    /// - Returns: the endpoint actually bound (with the port chosen).
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(kind) to \(endpoint)") }
        return (try? stringOption(ZMQ_LAST_ENDPOINT)) ?? endpoint
    }

    /// Connects to `endpoint` (asynchronously: libzmq reconnects by itself until it succeeds).
    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(kind) to \(endpoint)") }
    }

    /// Disconnects from `endpoint`.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        guard zmq_disconnect(handle, endpoint) == 0 else { throw ZMQError("disconnect \(kind) from \(endpoint)") }
    }

    // MARK: Sending

    /// Sends one part; `more` says another part of the same message follows.
    /// - Returns: false when `wait` is false and the part could not be queued now (high-water mark reached).
    @discardableResult
    public func send(_ part: ZMQMessage, more: Bool = false, wait: Bool = true) throws(ZMQError) -> Bool {
        guard !closed else { throw ZMQError("send on closed \(kind)", errno: ENOTSOCK) }  // never touch a freed socket
        var flags: Int32 = more ? ZMQ_SNDMORE : 0
        if !wait { flags |= ZMQ_DONTWAIT }
        if zmq_msg_send(part.msg, handle, flags) >= 0 { return true }
        let e = czmq_errno()
        if e == EAGAIN && !wait { return false }
        throw ZMQError("send on \(kind)", errno: e)
    }

    /// Sends a message of several parts.
    @discardableResult
    public func send(parts: [ZMQMessage], wait: Bool = true) throws(ZMQError) -> Bool {
        for (i, p) in parts.enumerated() {
            // Once the first part is queued the rest of the message always is (libzmq sends messages whole).
            guard try send(p, more: i < parts.count - 1, wait: i == 0 ? wait : true) else { return false }
        }
        return true
    }

    /// Sends a message whose parts are copies of byte arrays.
    @discardableResult
    public func send(_ parts: [[UInt8]], wait: Bool = true) throws(ZMQError) -> Bool {
        try send(parts: parts.map { ZMQMessage($0) }, wait: wait)
    }

    // MARK: Receiving

    /// Receives one part, or nil when `wait` is false and none is ready.
    public func receivePart(wait: Bool = true) throws(ZMQError) -> ZMQMessage? {
        guard !closed else { throw ZMQError("receive on closed \(kind)", errno: ENOTSOCK) }
        let m = ZMQMessage()
        if zmq_msg_recv(m.msg, handle, wait ? 0 : ZMQ_DONTWAIT) >= 0 { return m }
        let e = czmq_errno()
        if e == EAGAIN { return nil }
        throw ZMQError("receive on \(kind)", errno: e)
    }

    /// Receives all parts of the next message, or nil when `wait` is false and none is ready
    /// (or when a receive timeout set with `ZMQ_RCVTIMEO` expires).
    public func receive(wait: Bool = true) throws(ZMQError) -> [ZMQMessage]? {
        guard let first = try receivePart(wait: wait) else { return nil }
        var parts = [first]
        while parts[parts.count - 1].hasMore {
            // The rest of a message is already here: libzmq delivers messages whole.
            guard let next = try receivePart(wait: true) else { break }
            parts.append(next)
        }
        return parts
    }

    // MARK: Readiness without polling the socket

    /// The file descriptor libzmq signals when this socket may have work (`ZMQ_FD`). Polling it
    /// (rather than the socket) lets one thread wait while others use the socket under a lock;
    /// it is edge-triggered: after it fires, read `hasInput` and receive until nothing is left.
    public func fileDescriptor() throws(ZMQError) -> Int32 {
        var fd: Int32 = -1
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, ZMQ_FD, &fd, &size) == 0 else { throw ZMQError("get the file descriptor of \(kind)") }
        return fd
    }

    /// Whether a message can be received now (`ZMQ_EVENTS`). Reading it also processes libzmq's
    /// pending commands, which re-arms `fileDescriptor()`: call it after every send made on a
    /// socket whose descriptor another thread polls, since a send may consume the signal.
    public var hasInput: Bool {
        guard !closed else { return false }
        var events: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, ZMQ_EVENTS, &events, &size) == 0 else { return false }
        return events & Int32(ZMQ_POLLIN) != 0
    }

    // MARK: Options

    /// An integer socket option.
    public struct IntOption: Sendable {
        let raw: Int32
        /// libzmq takes this option as an `int64_t` rather than an `int`.
        var wide = false
        /// Milliseconds a blocking receive waits before returning nil (-1 = forever).
        public static let receiveTimeout = IntOption(raw: ZMQ_RCVTIMEO)
        /// Milliseconds a blocking send waits before failing with EAGAIN (-1 = forever).
        public static let sendTimeout = IntOption(raw: ZMQ_SNDTIMEO)
        /// Messages queued for sending per peer before sends block or fail (backpressure).
        public static let sendHighWaterMark = IntOption(raw: ZMQ_SNDHWM)
        /// Messages queued on receipt per peer before libzmq stops reading from it.
        public static let receiveHighWaterMark = IntOption(raw: ZMQ_RCVHWM)
        /// Milliseconds unsent messages are kept after close.
        public static let linger = IntOption(raw: ZMQ_LINGER)
        /// 1: queue messages only for completed connections.
        public static let immediate = IntOption(raw: ZMQ_IMMEDIATE)
        /// 1: a ROUTER fails sends to unknown peers instead of dropping them.
        public static let routerMandatory = IntOption(raw: ZMQ_ROUTER_MANDATORY)
        /// 1: a ROUTER hands a routing id over to a new connection that claims it (a peer reconnecting).
        public static let routerHandover = IntOption(raw: ZMQ_ROUTER_HANDOVER)
        /// Largest inbound message in bytes; a peer sending a larger one is disconnected (-1 = no limit).
        public static let maxMessageSize = IntOption(raw: ZMQ_MAXMSGSIZE, wide: true)
    }

    /// A bytes or text socket option.
    public struct BytesOption: Sendable {
        let raw: Int32
        /// This socket's identity as seen by a ROUTER peer.
        public static let routingID = BytesOption(raw: ZMQ_ROUTING_ID)
        /// A SUB socket's topic prefix.
        public static let subscribe = BytesOption(raw: ZMQ_SUBSCRIBE)
        /// Removes a SUB topic prefix.
        public static let unsubscribe = BytesOption(raw: ZMQ_UNSUBSCRIBE)
    }

    /// Sets an integer option.
    public func set(_ option: IntOption, _ value: Int) throws(ZMQError) {
        if option.wide {
            var v = Int64(value)
            guard zmq_setsockopt(handle, option.raw, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError("set option \(option.raw) on \(kind)") }
        } else {
            try setOption(option.raw, Int32(clamping: value))
        }
    }

    /// Sets a bytes option.
    public func set(_ option: BytesOption, _ value: [UInt8]) throws(ZMQError) {
        try setOption(option.raw, value)
    }

    /// Sets a text option.
    public func set(_ option: BytesOption, _ value: String) throws(ZMQError) {
        try setOption(option.raw, Array(value.utf8))
    }

    /// Reads an integer option.
    public func get(_ option: IntOption) throws(ZMQError) -> Int {
        if option.wide {
            var v: Int64 = 0
            var size = MemoryLayout<Int64>.size
            guard zmq_getsockopt(handle, option.raw, &v, &size) == 0 else { throw ZMQError("get option \(option.raw) on \(kind)") }
            return Int(v)
        }
        return Int(try intOption(option.raw))
    }

    /// Sets an integer option by libzmq number (`ZMQ_…`).
    public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("set option \(option) on \(kind)") }
    }

    /// Sets a bytes or string option (`ZMQ_SUBSCRIBE`, `ZMQ_ROUTING_ID`, CURVE keys…).
    public func setOption(_ option: Int32, _ value: [UInt8]) throws(ZMQError) {
        let ok = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard ok == 0 else { throw ZMQError("set option \(option) on \(kind)") }
    }

    /// Sets a string option.
    public func setOption(_ option: Int32, _ value: String) throws(ZMQError) {
        try setOption(option, Array(value.utf8))
    }

    /// Reads an integer option.
    public func intOption(_ option: Int32) throws(ZMQError) -> Int32 {
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        guard zmq_getsockopt(handle, option, &v, &size) == 0 else { throw ZMQError("get option \(option) on \(kind)") }
        return v
    }

    /// Reads a string option.
    public func stringOption(_ option: Int32) throws(ZMQError) -> String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, option, &buffer, &size) == 0 else { throw ZMQError("get option \(option) on \(kind)") }
        return string(nulTerminated: buffer)
    }

    /// Makes this socket a CURVE server with `keys`: only clients that know the server's public
    /// key can connect, and all traffic is encrypted.
    public func makeCurveServer(_ keys: CurveKeyPair) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, 1)
        try setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey)
    }

    /// Makes this socket a CURVE client of a server whose public key is `serverKey`.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, serverKey)
        try setOption(ZMQ_CURVE_PUBLICKEY, keys.publicKey)
        try setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey)
    }
}

/// Waits until some sockets can be read (or written).
public enum ZMQPoll {
    /// Which of `sockets` have a message ready, waiting at most `timeoutMilliseconds` (-1 = forever).
    /// - Returns: one flag per socket.
    public static func readable(_ sockets: [ZMQSocket], timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        guard zmq_poll(&items, Int32(items.count), timeoutMilliseconds) >= 0 else { throw ZMQError("poll \(sockets.count) sockets") }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
