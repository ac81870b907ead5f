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
        let copied = bytes.withContiguousStorageIfAvailable { source -> Bool in
            if let base = source.baseAddress { p.update(from: base, count: source.count) }
            return true
        }
        if copied == true { return }
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

    /// A part that takes over `bytes` without copying them: the array is kept alive (and never
    /// mutated) until libzmq has sent it. For payloads built by an encoder, bulk ones above all.
    public init(moving bytes: [UInt8]) {
        msg = .allocate(capacity: 1)
        guard bytes.count > 256 else {
            // Small parts: a copy into libzmq's own (often inline) storage is cheaper than sharing.
            zmq_msg_init_size(msg, bytes.count)
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { zmq_msg_data(msg).copyMemory(from: base, byteCount: raw.count) }
            }
            return
        }
        let box = Unmanaged.passRetained(ByteBox(bytes))
        // A native array's storage does not move while the box holds the only reference to it
        // unmutated; the box is released by libzmq's free callback once the bytes are sent.
        let base = box.takeUnretainedValue().bytes.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
        zmq_msg_init_data(msg, base, bytes.count, { _, hint in
            Unmanaged<ByteBox>.fromOpaque(hint!).release()
        }, box.toOpaque())
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

    /// A metadata property of a received part (`"User-Id"`: what the ZAP handler said of the
    /// connection it came on; `"Peer-Address"`), or nil when the connection carries none.
    public func property(_ name: String) -> String? {
        guard let value = zmq_msg_gets(msg, name) else { return nil }
        return String(cString: value)
    }
}

/// Keeps a moved array alive while libzmq sends it.
private final class ByteBox {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
}
