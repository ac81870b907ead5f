import Testing
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// Real libzmq sockets over tcp://127.0.0.1 (ephemeral ports), within one process; the
/// multi-process tests belong to the actor system built on this module.
@Suite("ZeroMQ sockets")
struct ZeroMQTests {
    let context: ZMQContext

    init() throws {
        context = try ZMQContext()
    }

    /// A socket with a receive timeout, so a missing message fails the test instead of hanging it.
    private func socket(_ kind: ZMQSocket.Kind, timeout: Int = 5000) throws -> ZMQSocket {
        let s = try ZMQSocket(context, kind)
        try s.set(.receiveTimeout, timeout)
        return s
    }

    @Test("ROUTER/DEALER: a multipart request is echoed back to the right peer")
    func routerDealer() throws {
        let router = try socket(.router)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*"))
        let a = try socket(.dealer), b = try socket(.dealer)
        try a.set(.routingID, "node-a")
        try b.set(.routingID, "node-b")
        try a.connect(endpoint)
        try b.connect(endpoint)
        try a.send([Array("call".utf8), [1, 2, 3]])
        try b.send([Array("call".utf8), [9]])
        for _ in 0..<2 {
            let parts = try #require(try router.receive())
            // ROUTER prefixes the sender's routing id; sending it back first routes the reply.
            #expect(parts.count == 3)
            try router.send(parts: parts)
        }
        let ra = try #require(try a.receive()).map(\.bytes)
        let rb = try #require(try b.receive()).map(\.bytes)
        #expect(ra == [Array("call".utf8), [1, 2, 3]])
        #expect(rb == [Array("call".utf8), [9]])
    }

    @Test("a 4 MB part handed over without copying arrives intact")
    func bulk() throws {
        let pull = try socket(.pull), push = try socket(.push)
        let endpoint = try pull.bind("tcp://127.0.0.1:*")
        try push.connect(endpoint)
        let count = 1_000_000
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count * 4, alignment: 16)
        let floats = buffer.bindMemory(to: Float.self)
        for i in 0..<count { floats[i] = Float(i) * 0.5 }
        try push.send(ZMQMessage(taking: buffer))
        let part = try #require(try pull.receivePart())
        #expect(part.count == count * 4)
        part.withBytes { raw in
            let got = raw.bindMemory(to: Float.self)
            #expect(got[0] == 0 && got[count - 1] == Float(count - 1) * 0.5 && got[12345] == 6172.5)
        }
    }

    @Test("PUB/SUB delivers only subscribed topics")
    func pubSub() throws {
        let pub = try socket(.pub), sub = try socket(.sub, timeout: 200)
        let endpoint = try pub.bind("tcp://127.0.0.1:*")
        try sub.set(.subscribe, "epoch")
        try sub.connect(endpoint)
        // Subscriptions propagate asynchronously: publish until the subscriber hears one.
        var heard: [[UInt8]]? = nil
        for _ in 0..<50 where heard == nil {
            try pub.send([Array("other".utf8)])
            try pub.send([Array("epoch".utf8), [7]])
            heard = try sub.receive()?.map(\.bytes)
        }
        #expect(heard == [Array("epoch".utf8), [7]])
    }

    @Test("a non-blocking receive with nothing queued returns nil instead of blocking")
    func nonBlocking() throws {
        let pull = try socket(.pull)
        try pull.bind("tcp://127.0.0.1:*")
        #expect(try pull.receive(wait: false) == nil)
        #expect(try ZMQPoll.readable([pull], timeoutMilliseconds: 10) == [false])
    }

    @Test("binding a port already in use names the endpoint and the reason")
    func addressInUse() throws {
        let a = try socket(.router)
        let endpoint = try a.bind("tcp://127.0.0.1:*")
        let b = try socket(.router)
        #expect {
            try b.bind(endpoint)
        } throws: { e in
            let e = e as! ZMQError
            return e.errno == EADDRINUSE && e.description.contains(endpoint)
        }
        #expect(throws: ZMQError.self) { try b.connect("nonsense://x") }
    }

    @Test("CURVE: a client with the server key talks; one without it is refused")
    func curve() throws {
        try #require(ZMQContext.hasCurve)
        let serverKeys = try CurveKeyPair.generate()
        #expect(serverKeys.publicKey.count == 40 && serverKeys.secretKey.count == 40)
        let server = try socket(.router, timeout: 500)
        try server.makeCurveServer(serverKeys)
        let endpoint = try server.bind("tcp://127.0.0.1:*")

        let good = try socket(.dealer, timeout: 2000)
        try good.makeCurveClient(try CurveKeyPair.generate(), serverKey: serverKeys.publicKey)
        try good.connect(endpoint)
        try good.send([Array("hello".utf8)])
        let got = try #require(try server.receive())
        #expect(got.last?.bytes == Array("hello".utf8))

        // A plain client (no CURVE) never gets a message through.
        let plain = try socket(.dealer)
        try plain.connect(endpoint)
        _ = try plain.send([Array("intruder".utf8)], wait: false)
        // A client that guesses the wrong server key fails the handshake too.
        let wrong = try socket(.dealer)
        try wrong.makeCurveClient(try CurveKeyPair.generate(), serverKey: try CurveKeyPair.generate().publicKey)
        try wrong.connect(endpoint)
        _ = try wrong.send([Array("intruder".utf8)], wait: false)
        #expect(try server.receive() == nil)
    }
}
