import WireFormat

/// The entry point of the frame fuzz target (`Fuzz/Sources/FuzzFrame`): decodes hostile bytes
/// as the first part of a message between nodes, the way the transport does, so the fuzzer
/// reaches the internal envelope types without making them public.
public enum FrameFuzzing {
    /// Decodes `bytes` as an `Envelope` (the whole frame: trailing bytes are an error) and,
    /// separately, as a `HandshakeMessage`. Decoding errors are expected and swallowed; what the
    /// fuzzer looks for is a trap, a hang or an outsized allocation.
    public static func decode(_ bytes: UnsafeRawBufferPointer) {
        var reader = WireReader(bytes)
        do throws(WireError) {
            let envelope = try Envelope(from: &reader)
            try reader.finish()
            _ = envelope.kind
        } catch {
            _ = error.description
        }
        var handshakeReader = WireReader(bytes)
        do throws(WireError) {
            _ = try HandshakeMessage(from: &handshakeReader)
            try handshakeReader.finish()
        } catch {
            _ = error.description
        }
    }
}
