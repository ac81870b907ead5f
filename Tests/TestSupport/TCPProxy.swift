import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy a test controls, for network partitions: it relays 127.0.0.1:`port` to `target`
/// until `cut()`, which turns it into a black hole (connections stay open, bytes are swallowed,
/// new connections are accepted and never relayed — a partition, not a refusal); `heal()` closes
/// what was cut off, so both sides reconnect, and relays again. Blocking sockets, a thread per
/// direction.
public final class TCPProxy: @unchecked Sendable {
    // @unchecked: the mutable state is in `state` (a Mutex); the listening socket is fixed.
    public let port: UInt16
    private let targetPort: UInt16
    private let listener: Int32
    private struct State {
        var cut = false
        var sockets: Set<Int32> = []
        var stopped = false
        /// Bytes relayed and swallowed (a test asserts the cut happened under traffic).
        var relayed = 0
        var swallowed = 0
    }
    private let state = Mutex(State())

    /// Listens on a free port of 127.0.0.1 and relays to 127.0.0.1:`targetPort`.
    public init(targetPort: UInt16) throws {
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ProxyError("socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw ProxyError("bind/listen: \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// A free port of 127.0.0.1 (bound and closed: good enough for a test).
    public static func freePort() throws -> UInt16 {
        let proxy = try TCPProxy(targetPort: 9)
        defer { proxy.stop() }
        return proxy.port
    }

    /// Black-holes everything from now on.
    public func cut() { state.withLock { $0.cut = true } }

    /// Closes what was cut off and relays again.
    public func heal() {
        let sockets = state.withLock { s -> Set<Int32> in
            s.cut = false
            defer { s.sockets = [] }
            return s.sockets
        }
        for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    public var bytesRelayed: Int { state.withLock { $0.relayed } }
    public var bytesSwallowed: Int { state.withLock { $0.swallowed } }

    public func stop() {
        let sockets = state.withLock { s -> Set<Int32> in
            s.stopped = true
            return s.sockets
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in sockets { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private static func loopback(port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if state.withLock({ $0.stopped }) { return }
                continue
            }
            let cut = state.withLock { s -> Bool in
                s.sockets.insert(client)
                return s.cut
            }
            if cut {
                Thread.detachNewThread { [self] in pump(from: client, to: nil) }
                continue
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else {
                close(upstream)
                shutdown(client, Int32(SHUT_RDWR))
                continue
            }
            state.withLock { _ = $0.sockets.insert(upstream) }
            Thread.detachNewThread { [self] in pump(from: client, to: upstream) }
            Thread.detachNewThread { [self] in pump(from: upstream, to: client) }
        }
    }

    /// Copies `from` to `to` while not cut; swallows while cut; closes both at the end.
    private func pump(from: Int32, to: Int32?) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            let cut = state.withLock { s -> Bool in
                if s.cut || to == nil { s.swallowed += n } else { s.relayed += n }
                return s.cut
            }
            guard !cut, let to else { continue }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break }
                sent += m
            }
            if sent < n { break }
        }
        shutdown(from, Int32(SHUT_RDWR))
        if let to { shutdown(to, Int32(SHUT_RDWR)) }
        state.withLock { s in
            s.sockets.remove(from)
            if let to { s.sockets.remove(to) }
        }
        close(from)
    }
}

public struct ProxyError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
