import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy a test controls, for network partitions: it relays 127.0.0.1:`port` to `target`
/// until `cut()`, which turns it into a black hole (connections stay open, bytes are swallowed,
/// new connections are accepted and never relayed — a partition, not a refusal); `heal()` closes
/// what was cut off, so both sides reconnect, and relays again. `dropClients()` fails the clients'
/// side only (the server cannot tell). Blocking sockets, a thread per direction.
///
/// A connection's descriptors are closed only once both of its directions have ended, and every
/// shutdown and close happens under the state's lock: a number is never shut down after it was
/// closed and reused by another connection (of this proxy or of another in the same process).
public final class TCPProxy: @unchecked Sendable {
    // @unchecked: the mutable state is in `state` (a Mutex); the listening socket is fixed.
    public let port: UInt16
    private let targetPort: UInt16
    private let listener: Int32

    /// One accepted connection: its client side and, when relayed, its server side.
    private struct Link {
        let client: Int32
        let upstream: Int32?
        /// Directions that ended (the descriptors are closed when all have).
        var ended = 0
        /// The client side was dropped (`dropClients`): the server side stays open, swallowed.
        var orphaned = false
        var closed = false
    }

    private struct State {
        var cut = false
        var stopped = false
        var links: [Int: Link] = [:]
        var nextLink = 0
        /// Bytes relayed and swallowed (a test asserts the cut happened under traffic).
        var relayed = 0
        var swallowed = 0

        /// Shuts both sides of `id` down (their reads end); nothing once it is closed.
        mutating func shutdownLink(_ id: Int, clientOnly: Bool = false) {
            guard let link = links[id], !link.closed else { return }
            shutdown(link.client, Int32(SHUT_RDWR))
            if !clientOnly, let upstream = link.upstream { shutdown(upstream, Int32(SHUT_RDWR)) }
        }
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

    /// Closes the client side of every connection relayed now, as a client whose network failed
    /// sees it (its read ends), and keeps the server side open with nothing more sent on it: the
    /// server cannot tell (a statement it runs goes on, and may commit), and what it answers is
    /// swallowed. New connections are relayed as before.
    /// - Returns: how many connections were dropped.
    @discardableResult
    public func dropClients() -> Int {
        state.withLock { s in
            var n = 0
            for (id, link) in s.links where link.upstream != nil && !link.orphaned && !link.closed {
                s.links[id]?.orphaned = true
                s.shutdownLink(id, clientOnly: true)
                n += 1
            }
            return n
        }
    }

    /// Closes the server sides `dropClients` left open (their sessions end in the server): once
    /// the test has seen what it needed, so that they do not hold the server's connection slots.
    public func releaseDropped() {
        state.withLock { s in
            for (id, link) in s.links where link.orphaned { s.shutdownLink(id) }
        }
    }

    /// Closes what was cut off and relays again.
    public func heal() {
        state.withLock { s in
            s.cut = false
            for id in s.links.keys { s.shutdownLink(id) }
        }
    }

    public var bytesRelayed: Int { state.withLock { $0.relayed } }
    public var bytesSwallowed: Int { state.withLock { $0.swallowed } }

    public func stop() {
        state.withLock { s in
            s.stopped = true
            shutdown(listener, Int32(SHUT_RDWR))
            for id in s.links.keys { s.shutdownLink(id) }
        }
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
                if state.withLock({ $0.stopped }) {
                    close(listener)
                    return
                }
                continue
            }
            if state.withLock({ $0.cut }) {
                let id = register(client: client, upstream: nil)
                Thread.detachNewThread { [self] in pump(id, from: client, to: nil) }
                continue
            }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: targetPort)
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else {
                close(upstream)
                close(client)
                continue
            }
            let id = register(client: client, upstream: upstream)
            Thread.detachNewThread { [self] in pump(id, from: client, to: upstream) }
            Thread.detachNewThread { [self] in pump(id, from: upstream, to: client) }
        }
    }

    private func register(client: Int32, upstream: Int32?) -> Int {
        state.withLock { s in
            let id = s.nextLink
            s.nextLink += 1
            s.links[id] = Link(client: client, upstream: upstream)
            return id
        }
    }

    /// Copies `from` to `to` while relaying; swallows while cut (and from a dropped client's server
    /// side); when this direction ends, ends the other too (unless the client was dropped: then its
    /// server side lives on), and the last direction to end closes both descriptors.
    private func pump(_ id: Int, from: Int32, to: Int32?) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            let swallow = state.withLock { s -> Bool in
                let swallow = s.cut || to == nil || s.links[id]?.orphaned == true
                if swallow { s.swallowed += n } else { s.relayed += n }
                return swallow
            }
            guard !swallow, let to else { continue }
            var sent = 0
            while sent < n {
                let m = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break }
                sent += m
            }
            // A send that failed because the client was dropped meanwhile: this server side lives on.
            if sent < n, state.withLock({ $0.links[id]?.orphaned != true }) { break }
        }
        state.withLock { s in
            guard var link = s.links[id] else { return }
            link.ended += 1
            let directions = link.upstream == nil ? 1 : 2
            if link.ended >= directions {
                link.closed = true
                close(link.client)
                if let upstream = link.upstream { close(upstream) }
                s.links[id] = nil
                return
            }
            s.links[id] = link
            // The other direction ends too, except a dropped client's server side.
            if !(link.orphaned && from == link.client) { s.shutdownLink(id) }
        }
    }
}

public struct ProxyError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
