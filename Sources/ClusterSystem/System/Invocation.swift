import Distributed
import Synchronization
import WireFormat
import ZeroMQ

/// Records a remote call's arguments in the wire format: the generic substitutions (mangled type
/// names), then each argument's own encoding, then one byte with the number of arguments (so the
/// callee can refuse trailing bytes before the method runs). Nothing else (no names, no JSON).
public struct ClusterInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = any WireCodable

    private var generics: [String] = []
    private var arguments = WireWriter(capacity: 64)
    private var started = false
    private var count = 0

    init() {}

    /// The payload starts with the generic substitutions, recorded before any argument.
    private mutating func start() {
        guard !started else { return }
        started = true
        arguments.write(generics)
    }

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        guard let name = _mangledTypeName(type) else {
            throw RemoteCallError(code: .invalidInvocation, node: "", actor: "", method: "", message: "\(type) has no mangled name to send")
        }
        generics.append(name)
    }

    public mutating func recordArgument<Value: WireCodable>(_ argument: RemoteCallArgument<Value>) throws {
        start()
        argument.value.encode(to: &arguments)
        count += 1
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}

    public mutating func recordReturnType<R: WireCodable>(_ type: R.Type) throws {}

    public mutating func doneRecording() throws {}

    /// The call's payload part, handed to libzmq without copying.
    mutating func payload() -> ZMQMessage {
        start()
        arguments.write(UInt8(truncatingIfNeeded: count))
        return ZMQMessage(moving: arguments.take())
    }
}

/// Reads a remote call's arguments in place from the received message.
public struct ClusterInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = any WireCodable

    private let payload: ZMQMessage
    private var reader: WireReader
    private var generics: [String] = []
    private var argumentIndex = 0
    /// The number of arguments the caller recorded (the payload's last byte).
    let argumentCount: Int
    /// The number of generic substitutions the caller recorded.
    var genericCount: Int { generics.count }

    init(payload: ZMQPayload) throws(WireError) {
        self.payload = payload.message
        // The message owns the bytes and outlives the reader (both live in this decoder); the
        // last byte is the argument count.
        guard payload.message.count >= 1 else { throw WireError(offset: 0, expected: "a call's arguments (at least their count)") }
        argumentCount = payload.message.withBytes { Int($0[$0.count - 1]) }
        reader = payload.message.withBytes { WireReader(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        generics = try reader.read([String].self)
        guard generics.count <= 16 else { throw WireError(offset: 0, expected: "at most 16 generic substitutions, found \(generics.count)") }
        if argumentCount == 0, reader.remaining != 0 {
            throw WireError(offset: reader.offset, expected: "no arguments; \(reader.remaining) bytes follow")
        }
    }

    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] {
        try generics.map { name in
            guard let type = _typeByName(name) else {
                throw RemoteCallError(code: .invalidInvocation, node: "", actor: "", method: "", message: "unknown type \(name) in the call's generic substitutions")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: WireCodable>() throws -> Argument {
        defer { argumentIndex += 1 }
        guard argumentIndex < argumentCount else {
            throw RemoteCallError(code: .invalidInvocation, node: "", actor: "", method: "",
                                  message: "the call carries \(argumentCount) arguments; the method takes more")
        }
        let value: Argument
        do {
            value = try reader.read(Argument.self)
        } catch {
            throw RemoteCallError(code: .invalidInvocation, node: "", actor: "", method: "",
                                  message: "argument \(argumentIndex + 1) (\(Argument.self)): \(error)")
        }
        if argumentIndex + 1 == argumentCount, reader.remaining != 0 {
            throw RemoteCallError(code: .invalidInvocation, node: "", actor: "", method: "",
                                  message: "\(reader.remaining) bytes after the last argument (\(Argument.self))")
        }
        return value
    }

    public mutating func decodeErrorType() throws -> Any.Type? { nil }

    public mutating func decodeReturnType() throws -> Any.Type? { nil }

    /// Whether every argument byte was used (a longer payload means caller and callee disagree).
    var leftover: Int { reader.remaining }
}

/// Sends an executed call's outcome back to the caller, exactly once.
public final class ClusterResultHandler: DistributedTargetInvocationResultHandler, Sendable {
    public typealias SerializationRequirement = any WireCodable

    let transport: Transport
    /// The ROUTER connection the call came on: the answer goes back there and nowhere else.
    let rid: [UInt8]
    /// The key of the caller (the answer goes only to a connection still holding its session).
    let callerKey: String
    let callID: UInt64
    private let answered = Atomic<Bool>(false)

    init(transport: Transport, rid: [UInt8], callerKey: String, callID: UInt64) {
        self.transport = transport
        self.rid = rid
        self.callerKey = callerKey
        self.callID = callID
    }

    var hasAnswered: Bool { answered.load(ordering: .acquiring) }

    public func onReturn<Success: WireCodable>(value: Success) async throws {
        var w = WireWriter(capacity: 64)
        value.encode(to: &w)
        send(.reply(callID: callID), payload: w.take())
    }

    public func onReturnVoid() async throws {
        send(.reply(callID: callID), payload: [])
    }

    public func onThrow<Err: Error>(error: Err) async throws {
        if let refusal = error as? NotAuthorized {  // a method's own check (a worker draining another)
            fail(RemoteFailure(code: .notAuthorized, message: refusal.description))
            return
        }
        fail(RemoteFailure(code: .remoteThrew, errorType: String(reflecting: type(of: error as any Error)), message: "\(error)"))
    }

    func fail(_ failure: RemoteFailure) {
        send(.failure(callID: callID, failure), payload: nil)
    }

    /// Hands the answer to libzmq from this task's thread (no hop through the I/O thread).
    private func send(_ envelope: Envelope, payload: [UInt8]?) {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var parts = [ZMQMessage(envelope.wireBytes())]
        if let payload { parts.append(ZMQMessage(moving: payload)) }
        transport.reply(to: rid, caller: callerKey, parts)
    }
}

@_silgen_name("swift_demangle")
private func _swiftDemangle(_ mangled: UnsafePointer<CChar>?, _ length: Int, _ output: UnsafeMutablePointer<CChar>?,
                            _ outputLength: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?

/// A distributed method's readable name from its `RemoteCallTarget` identifier
/// ("ProbeActor.ping()"), for errors and logs.
func demangledMethod(_ identifier: String) -> String {
    var id = identifier
    if id.hasPrefix("$s") == false, id.hasPrefix("s") { id = "$" + id }
    guard let raw = id.withCString({ _swiftDemangle($0, strlen($0), nil, nil, 0) }) else { return identifier }
    defer { free(raw) }
    var text = String(cString: raw)
    if text.hasPrefix("distributed thunk ") { text.removeFirst("distributed thunk ".count) }
    // "Module.Type.method(_:) async throws -> Result": keep Type.method(labels).
    if let paren = text.firstIndex(of: "(") {
        let head = text[..<paren]
        let parts = head.split(separator: ".")
        let short = parts.suffix(2).joined(separator: ".")
        var depth = 0
        var end = paren
        for i in text[paren...].indices {
            if text[i] == "(" { depth += 1 }
            if text[i] == ")" { depth -= 1; if depth == 0 { end = i; break } }
        }
        return short + text[paren...end]
    }
    return text
}

#if canImport(Glibc)
import Glibc
#endif
