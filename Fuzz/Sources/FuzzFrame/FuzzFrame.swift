import ClusterSystem

/// libFuzzer entry: the first part of every message between nodes (envelope, handshake).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrame(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FrameFuzzing.decode(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
