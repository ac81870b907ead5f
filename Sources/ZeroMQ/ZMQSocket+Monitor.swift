import CZeroMQ

/// A connection event reported by a socket monitor (`ZMQSocket.monitor`): what happened and
/// the peer's or listener's address.
public struct ZMQSocketEvent: Sendable, CustomStringConvertible {
    /// A kind of event, as libzmq numbers them.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        public let raw: UInt16
        public static let accepted = Kind(raw: UInt16(ZMQ_EVENT_ACCEPTED))
        public static let disconnected = Kind(raw: UInt16(ZMQ_EVENT_DISCONNECTED))
        public static let handshakeSucceeded = Kind(raw: UInt16(ZMQ_EVENT_HANDSHAKE_SUCCEEDED))
        public static let handshakeFailedNoDetail = Kind(raw: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL))
        public static let handshakeFailedProtocol = Kind(raw: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL))
        public static let handshakeFailedAuth = Kind(raw: UInt16(ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))

        /// The events worth an operator's attention: a peer dropped, or refused during the ZMTP
        /// handshake (wrong security mechanism, bad key, malformed greeting).
        public static let problems: Int32 = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH

        /// A dialled peer refused this socket during the ZMTP handshake (CURVE keys).
        public static let handshakeFailures: Int32 = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH

        public var description: String {
            switch self {
            case .accepted: "accepted"
            case .disconnected: "disconnected"
            case .handshakeSucceeded: "handshake succeeded"
            case .handshakeFailedNoDetail: "handshake failed"
            case .handshakeFailedProtocol: "handshake failed: protocol error (malformed or oversized frame, wrong mechanism)"
            case .handshakeFailedAuth: "handshake failed: authentication refused"
            default: "event \(raw)"
            }
        }
    }

    public var kind: Kind
    /// The event's value: an errno or a protocol error code, depending on the kind.
    public var value: UInt32
    /// The address concerned ("tcp://127.0.0.1:41234").
    public var address: String

    /// Parses the two parts a monitor socket delivers.
    public init?(_ parts: [ZMQMessage]) {
        guard parts.count == 2, parts[0].count == 6 else { return nil }
        let (k, v) = parts[0].withBytes { ($0.loadUnaligned(as: UInt16.self), $0.loadUnaligned(fromByteOffset: 2, as: UInt32.self)) }
        kind = Kind(raw: k)
        value = v
        address = String(decoding: parts[1].bytes, as: UTF8.self)
    }

    public var description: String { "\(kind) (\(address), code \(value))" }
}

extension ZMQSocket {
    /// Publishes this socket's `events` (a mask such as `ZMQSocketEvent.Kind.problems`) on the
    /// inproc `endpoint`; connect a PAIR socket there to read them.
    public func monitor(_ endpoint: String, events: Int32) throws(ZMQError) {
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw ZMQError("monitor \(kind) on \(endpoint)") }
    }
}

extension CurveKeyPair {
    /// The Z85 text of a 32-byte binary key (as a ZAP request carries a client's key).
    public static func z85(_ key: [UInt8]) -> String? {
        guard key.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, key, key.count) != nil else { return nil }
        return string(nulTerminated: out)
    }

    /// Whether `key` is a CURVE key in Z85 (40 characters that decode to 32 bytes).
    public static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 40 else { return false }
        var out = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&out, key) != nil
    }

    /// The public key that belongs to the Z85 secret key `secretKey`, or nil if it is not one.
    public static func publicKey(ofSecret secretKey: String) -> String? {
        guard isValidKey(secretKey) else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&out, secretKey) == 0 else { return nil }
        return string(nulTerminated: out)
    }
}
