import ClusterSystem
import Testing
import WireFormat

@Suite("Node handshake")
struct HandshakeTests {
    static let a = NodeID(name: "coordinator", endpoint: "tcp://127.0.0.1:7400", incarnation: 0xA1)
    static let b = NodeID(name: "worker-1", endpoint: "tcp://127.0.0.1:7401", incarnation: 0xB2)

    static func side(_ node: NodeID, cluster: String = "churngrid-prod", version: UInt32 = 1) -> Handshake {
        Handshake(local: .init(node: node, cluster: cluster, protocolVersion: version))
    }

    /// Carries a message across the wire format, as the transport will.
    static func overTheWire(_ m: HandshakeMessage) throws -> HandshakeMessage {
        try HandshakeMessage.decode(m.wireBytes())
    }

    @Test("matching nodes establish each other")
    func success() throws {
        var client = Self.side(Self.a), server = Self.side(Self.b)
        guard case .send(let hello) = client.start() else { Issue.record("no hello"); return }
        guard case .sendAndEstablish(let welcome, let peer) = server.received(try Self.overTheWire(hello)) else {
            Issue.record("server did not accept"); return
        }
        #expect(peer == Self.a)
        #expect(client.received(try Self.overTheWire(welcome)) == .establish(peer: Self.b))
        #expect(client.state == .established(peer: Self.b) && server.state == .established(peer: Self.a))
    }

    @Test("a protocol version the server no longer speaks, or another cluster, is refused with a reason both sides can log", arguments: [
        (UInt32(1), "churngrid-prod", "protocol 1"),
        (UInt32(3), "churngrid-test", "cluster 'churngrid-test'"),
    ])
    func refused(version: UInt32, cluster: String, mentions: String) throws {
        var client = Self.side(Self.a, cluster: cluster, version: version), server = Self.side(Self.b, version: 3)
        guard case .send(let hello) = client.start() else { return }
        guard case .refuse(let message?, let reason) = server.received(try Self.overTheWire(hello)) else {
            Issue.record("server accepted a mismatched peer"); return
        }
        #expect(reason.contains(mentions) && reason.contains("coordinator"))
        guard case .refuse(nil, let clientReason) = client.received(try Self.overTheWire(message)) else {
            Issue.record("client did not fail"); return
        }
        #expect(clientReason.contains(mentions))
        if case .failed = client.state {} else { Issue.record("client state \(client.state)") }
    }

    @Test("rolling upgrades: a node and one a version newer agree on the older version, whichever dials")
    func previousVersion() throws {
        for (clientVersion, serverVersion) in [(UInt32(2), UInt32(3)), (3, 2)] {
            var client = Self.side(Self.a, version: clientVersion), server = Self.side(Self.b, version: serverVersion)
            guard case .send(let hello) = client.start() else { Issue.record("no hello"); return }
            guard case .sendAndEstablish(let welcome, _) = server.received(try Self.overTheWire(hello)) else {
                Issue.record("v\(serverVersion) refused v\(clientVersion)"); return
            }
            #expect(client.received(try Self.overTheWire(welcome)) == .establish(peer: Self.b))
            #expect(client.negotiatedVersion == 2 && server.negotiatedVersion == 2)
        }
        // Two versions apart: the newer side refuses (the older one cannot know it is too old).
        var client = Self.side(Self.a, version: 4), server = Self.side(Self.b, version: 2)
        guard case .send(let hello) = client.start(), case .sendAndEstablish(let welcome, _) = server.received(try Self.overTheWire(hello)) else {
            Issue.record("no welcome"); return
        }
        guard case .refuse(nil, let reason) = client.received(try Self.overTheWire(welcome)) else { Issue.record("v4 accepted v2"); return }
        #expect(reason.contains("protocol 2") && reason.contains("3–4"))
    }

    @Test("an unexpected message fails the handshake instead of being trusted")
    func unexpected() {
        var server = Self.side(Self.b)
        if case .refuse = server.received(.welcome(protocolVersion: 1, node: Self.a)) {} else { Issue.record("accepted") }
    }

    @Test("a corrupt handshake frame is a decoding error, not a crash")
    func corrupt() {
        #expect(throws: WireError.self) { _ = try HandshakeMessage.decode([9, 1, 2]) }
        let valid = HandshakeMessage.hello(protocolVersion: 1, cluster: "c", node: Self.a).wireBytes()
        for cut in 0..<valid.count {
            #expect(throws: WireError.self) { _ = try HandshakeMessage.decode(Array(valid[0..<cut])) }
        }
    }

    @Test("actor ids survive the wire")
    func actorIDs() throws {
        let id = ActorID.shard(517, on: Self.b)
        #expect(try ActorID.decode(id.wireBytes()) == id)
        #expect(id.description == "shard/517 on worker-1@tcp://127.0.0.1:7401#b2")
    }
}

@Suite("Peer liveness")
struct PeerLivenessTests {
    @Test("a peer silent longer than the timeout is reported once; one that speaks is not")
    func expiry() {
        var live = PeerLiveness<String>(timeout: .seconds(3))
        let t0 = ContinuousClock.now
        live.heard(from: "w1", at: t0)
        live.heard(from: "w2", at: t0)
        #expect(live.expire(at: t0 + .seconds(2)).isEmpty)
        live.heard(from: "w2", at: t0 + .seconds(2))
        #expect(live.expire(at: t0 + .milliseconds(3500)) == ["w1"])
        #expect(live.expire(at: t0 + .milliseconds(3600)).isEmpty)
        #expect(live.expire(at: t0 + .seconds(6)) == ["w2"])
        #expect(live.peers.isEmpty)
    }
}
