import CZeroMQ

/// One message part, owning a libzmq `zmq_msg_t`. A received part's bytes are read in place
/// (no copy); a part built from an owned buffer is handed to libzmq without copying.
public final class ZMQMessage {
    let msg: UnsafeMutablePointer<zmq_msg_t>

    /// An empty part, to receive into.
    public init() {
        msg = .allocate(capacity: 1)
        zmq_msg_init(msg)
    }

    /// A part of `size` bytes to fill through `withMutableBytes`.
    public init(size: Int) {
        msg = .allocate(capacity: 1)
        zmq_msg_init_size(msg, size)
    }

    /// A part holding a copy of `bytes` (the right choice for small parts: libzmq keeps up to
    /// 33 bytes inline, and a copy of a few hundred bytes costs less than sharing a buffer).
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(size: bytes.count)
        if bytes.count > 0 { zmq_msg_data(msg).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    /// A part holding a copy of `bytes`.
    public convenience init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        self.init(size: bytes.count)
        let p = zmq_msg_data(msg).assumingMemoryBound(to: UInt8.self)
        var i = 0
        for b in bytes {
            p[i] = b
            i += 1
        }
    }

    /// Writes the bytes in place (for a part made with `init(size:)`, before sending it).
    public func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg)))
    }

    /// A part that takes ownership of `buffer` (allocated with `UnsafeMutableRawPointer.allocate`)
    /// without copying; libzmq frees it once the bytes are on the wire. For bulk payloads.
    public init(taking buffer: UnsafeMutableRawBufferPointer) {
        msg = .allocate(capacity: 1)
        zmq_msg_init_data(msg, buffer.baseAddress, buffer.count, { data, _ in
            data?.deallocate()
        }, nil)
    }

    deinit {
        zmq_msg_close(msg)
        msg.deallocate()
    }

    /// Number of bytes.
    public var count: Int { zmq_msg_size(msg) }

    /// Whether more parts of the same message follow (after receiving).
    public var hasMore: Bool { zmq_msg_more(msg) == 1 }

    /// Reads the bytes in place; the pointer is valid only inside `body`.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg)))
    }

    /// A copy of the bytes.
    public var bytes: [UInt8] { withBytes { Array($0) } }
}
