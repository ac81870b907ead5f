import ClusterSystem
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A node that hosts a `ProbeActor` (and optionally a raw libzmq echo for reference
/// measurements): what `churngrid cluster probe-node` runs.
public final class ProbeNode: Sendable {
    public let system: ClusterActorSystem
    public let probe: ProbeActor
    /// Where the raw echo listens, when started.
    public let rawEchoEndpoint: String?
    private let rawEcho: RawEchoServer?

    /// Starts the node; with `rawEcho` also a plain ROUTER echo on its own thread and port.
    public init(_ configuration: ClusterActorSystem.Configuration, rawEcho: Bool) async throws {
        let system = try await ClusterActorSystem(configuration)
        self.system = system
        probe = system.withActorName(ProbeActor.name) { ProbeActor(actorSystem: system) }
        if rawEcho {
            let host = (configuration.listen ?? "tcp://127.0.0.1:*").split(separator: ":").dropLast().joined(separator: ":")
            // With CURVE the echo is a CURVE server with this node's keys (in a context of its own,
            // without a ZAP handler: any client key is admitted), so the reference pays the cipher too.
            let server = try RawEchoServer(endpoint: host + ":*", curve: configuration.options.curve)
            self.rawEcho = server
            rawEchoEndpoint = server.endpoint
        } else {
            self.rawEcho = nil
            rawEchoEndpoint = nil
        }
    }

    /// Stops the node and the echo.
    public func shutdown() async {
        rawEcho?.stop()
        await system.shutdown()
    }
}

/// The reference the transport is measured against: a ROUTER on a plain thread that sends every
/// message straight back (a 1-byte acknowledgement for messages over 1 KiB, as a bulk call's reply is small).
final class RawEchoServer: @unchecked Sendable {
    // @unchecked: the socket is used only by the echo thread after `init` returns; `stop`
    // terminates the context, which makes that thread's blocking receive fail and exit.
    let endpoint: String
    private let context: ZMQContext
    private let socket: ZMQSocket

    init(endpoint: String, curve: CurveKeyPair?) throws {
        context = try ZMQContext(ioThreads: 1)
        socket = try ZMQSocket(context, .router)
        try socket.set(.linger, 0)
        if let curve { try socket.makeCurveServer(curve) }
        self.endpoint = try socket.bind(endpoint)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            let server = Unmanaged<RawEchoServer>.fromOpaque(arg!).takeRetainedValue()
            server.serve()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    private func serve() {
        let ack = [UInt8](repeating: 1, count: 1)
        while let parts = try? socket.receive() {
            guard parts.count == 2 else { continue }
            if parts[1].count > 1024 {
                _ = try? socket.send(parts: [parts[0], ZMQMessage(ack)])
            } else {
                _ = try? socket.send(parts: parts)
            }
        }
        socket.close()
    }

    func stop() {
        context.shutdown()
    }
}
