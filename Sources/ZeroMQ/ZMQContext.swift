import CZeroMQ

/// A libzmq context: owns libzmq's I/O threads; every socket is created from one.
/// Thread-safe (libzmq contexts are). Terminating it makes blocked socket calls return `ETERM`.
public final class ZMQContext: @unchecked Sendable {
    // @unchecked: libzmq documents contexts as thread-safe; the handle never changes.
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` libzmq I/O threads.
    public init(ioThreads: Int = 1) throws(ZMQError) {
        guard let h = zmq_ctx_new() else { throw ZMQError("create context") }
        zmq_ctx_set(h, ZMQ_IO_THREADS, Int32(ioThreads))
        handle = h
    }

    /// Shuts the context down: blocked calls on its sockets fail with `ETERM`.
    public func shutdown() {
        zmq_ctx_shutdown(handle)
    }

    deinit {
        zmq_ctx_term(handle)
    }

    /// Whether libzmq was built with CURVE security (it is on Debian, through libsodium).
    public static var hasCurve: Bool { zmq_has("curve") == 1 }

    /// libzmq's version as (major, minor, patch).
    public static var version: (Int, Int, Int) {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        zmq_version(&a, &b, &c)
        return (Int(a), Int(b), Int(c))
    }
}

/// A CURVE key pair in Z85 text (40 characters each), as libzmq's options take them.
public struct CurveKeyPair: Sendable, Equatable {
    public var publicKey: String
    public var secretKey: String

    /// Generates a new key pair.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("generate CURVE key pair") }
        return CurveKeyPair(publicKey: string(nulTerminated: pub), secretKey: string(nulTerminated: sec))
    }

    /// Creates a pair from Z85 keys.
    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }
}

/// The text of a NUL-terminated C buffer.
func string(nulTerminated buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
