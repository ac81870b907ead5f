import WireFormat

/// The first part of every message between two nodes. A call and a reply carry their payload
/// (arguments, result) as a second part, so bulk bytes are never re-encoded.
enum Envelope: Sendable, Equatable, WireCodable {
    /// Hello, welcome or refusal (see `Handshake`).
    case handshake(HandshakeMessage)
    /// A caller's heartbeat; the callee answers with `pong`.
    case ping(UInt64)
    case pong(UInt64)
    /// A call; its arguments follow as the second part.
    case call(CallHeader)
    /// A call's result; it follows as the second part (empty for a `Void` call).
    case reply(callID: UInt64)
    /// A call that failed on the callee's side.
    case failure(callID: UInt64, RemoteFailure)
    /// The caller gave up on a call (timeout or cancellation): drop it if it has not started.
    case cancel(callID: UInt64)

    func encode(to w: inout WireWriter) {
        switch self {
        case .handshake(let m): w.write(UInt8(1)); w.write(m)
        case .ping(let seq): w.write(UInt8(2)); w.write(seq)
        case .pong(let seq): w.write(UInt8(3)); w.write(seq)
        case .call(let h): w.write(UInt8(4)); w.write(h)
        case .reply(let id): w.write(UInt8(5)); w.write(id)
        case .failure(let id, let f): w.write(UInt8(6)); w.write(id); w.write(f)
        case .cancel(let id): w.write(UInt8(7)); w.write(id)
        }
    }

    init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        switch try r.read(UInt8.self) {
        case 1: self = .handshake(try r.read())
        case 2: self = .ping(try r.read())
        case 3: self = .pong(try r.read())
        case 4: self = .call(try r.read())
        case 5: self = .reply(callID: try r.read())
        case 6: self = .failure(callID: try r.read(), try r.read())
        case 7: self = .cancel(callID: try r.read())
        case let tag: throw WireError(offset: at, expected: "a message tag 1–7, found \(tag)")
        }
    }

    /// The kind of message, for logs (never the content).
    var kind: String {
        switch self {
        case .handshake: "handshake"
        case .ping: "ping"
        case .pong: "pong"
        case .call: "call"
        case .reply: "reply"
        case .failure: "failure"
        case .cancel: "cancel"
        }
    }
}

/// Which actor and method a call is for.
struct CallHeader: Sendable, Equatable, WireCodable {
    var callID: UInt64
    /// The actor's name on the callee ("shard/17").
    var actor: String
    /// The callee incarnation the caller addressed; a restarted node refuses calls for its predecessor.
    var incarnation: UInt64
    /// The distributed method's identifier (`RemoteCallTarget.identifier`).
    var method: String
    /// How long the caller will wait, so the callee can drop a call that waited too long in its queue.
    var timeoutMicroseconds: UInt64

    func encode(to w: inout WireWriter) {
        w.write(callID); w.write(actor); w.write(incarnation); w.write(method); w.write(timeoutMicroseconds)
    }

    init(callID: UInt64, actor: String, incarnation: UInt64, method: String, timeoutMicroseconds: UInt64) {
        self.callID = callID
        self.actor = actor
        self.incarnation = incarnation
        self.method = method
        self.timeoutMicroseconds = timeoutMicroseconds
    }

    init(from r: inout WireReader) throws(WireError) {
        callID = try r.read(); actor = try r.read(); incarnation = try r.read(); method = try r.read()
        timeoutMicroseconds = try r.read()
    }
}

/// Why the callee could not return a result.
struct RemoteFailure: Sendable, Equatable, WireCodable {
    var code: RemoteCallError.Code
    /// The Swift type of the error the remote method threw, when it threw one.
    var errorType: String
    var message: String

    func encode(to w: inout WireWriter) {
        w.write(code.rawValue); w.write(errorType); w.write(message)
    }

    init(code: RemoteCallError.Code, errorType: String = "", message: String) {
        self.code = code
        self.errorType = errorType
        self.message = message
    }

    init(from r: inout WireReader) throws(WireError) {
        let at = r.offset
        let raw = try r.read(UInt8.self)
        guard let c = RemoteCallError.Code(rawValue: raw) else { throw WireError(offset: at, expected: "a failure code, found \(raw)") }
        code = c
        errorType = try r.read()
        message = try r.read()
    }
}
