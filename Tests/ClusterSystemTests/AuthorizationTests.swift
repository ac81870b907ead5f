import ClusterSystem
import Testing
import ZeroMQ

@Suite("Authorized keys, roles and authenticated handshakes")
struct AuthorizationTests {
    static let alice = try! CurveKeyPair.generate()
    static let aliceNext = try! CurveKeyPair.generate()
    static let worker = try! CurveKeyPair.generate()

    static func keys(_ text: String) throws -> AuthorizedKeys { try AuthorizedKeys(parsing: text, source: "authorized_keys") }

    @Test("lines parse into grants; comments only at the start of a line ('#' is a Z85 character); two keys per name while rotating")
    func parsing() throws {
        let list = try Self.keys("""
            # people
            admin \(Self.alice.publicKey) alice
            admin \(Self.aliceNext.publicKey) alice
              worker\t\(Self.worker.publicKey) worker-1

            reader \(Self.worker.publicKey) worker-1
            """)
        #expect(list.grant(for: Self.alice.publicKey)?.name == "alice")
        #expect(list.grant(for: Self.aliceNext.publicKey)?.roles == [.admin], "the rotated key is accepted as well")
        #expect(list.keys(of: "alice").count == 2)
        #expect(list.grant(for: Self.worker.publicKey)?.roles == [.worker, .reader])
        #expect(list.grant(for: try CurveKeyPair.generate().publicKey) == nil)
    }

    @Test("a bad line is an error naming the file and line", arguments: [
        ("admin \(alice.publicKey)", ":1: expected 'ROLE PUBLIC_KEY NAME'"),
        ("root \(alice.publicKey) alice", ":1: unknown role 'root'"),
        ("\n\nadmin not-a-key alice", ":3: 'not-a-key' is not a CURVE public key"),
        ("admin \(alice.publicKey) alice\nreader \(alice.publicKey) bob", "belongs to one name"),
    ])
    func badLines(text: String, says: String) {
        #expect {
            _ = try Self.keys(text)
        } throws: { error in
            "\(error)".contains("authorized_keys") && "\(error)".contains(says)
        }
    }

    static let server = NodeID(name: "coordinator", endpoint: "tcp://127.0.0.1:7400", incarnation: 1, publicKey: worker.publicKey)

    static func hello(name: String, key: String) -> HandshakeMessage {
        .hello(protocolVersion: 1, cluster: "c", node: NodeID(name: name, endpoint: "", incarnation: 9, publicKey: key))
    }

    static var side: Handshake { Handshake(local: .init(node: server, cluster: "c", protocolVersion: 1)) }

    @Test("a hello is accepted with its key's roles only when its name and key are the connection's")
    func authenticatedHello() throws {
        let list = try Self.keys("operator \(Self.alice.publicKey) alice")
        var ok = Self.side
        guard case .sendAndEstablish = ok.received(Self.hello(name: "alice", key: Self.alice.publicKey),
                                                   credentials: .key(Self.alice.publicKey, list.grant(for: Self.alice.publicKey))) else {
            Issue.record("refused"); return
        }
        #expect(ok.caller?.roles == [.operator])
        #expect(ok.caller?.holds(any: Role.operators) == true && ok.caller?.holds(any: Role.admins) == false)

        var otherName = Self.side
        guard case .refuse(_, let r1) = otherName.received(Self.hello(name: "bob", key: Self.alice.publicKey),
                                                           credentials: .key(Self.alice.publicKey, list.grant(for: Self.alice.publicKey))) else {
            Issue.record("accepted a spoofed name"); return
        }
        #expect(r1.contains("belongs to 'alice', not to 'bob'"))

        var otherKey = Self.side
        guard case .refuse(_, let r2) = otherKey.received(Self.hello(name: "alice", key: Self.aliceNext.publicKey),
                                                          credentials: .key(Self.alice.publicKey, list.grant(for: Self.alice.publicKey))) else {
            Issue.record("accepted a claimed key that is not the connection's"); return
        }
        #expect(r2.contains("claims key"))

        var removed = Self.side
        guard case .refuse = removed.received(Self.hello(name: "alice", key: Self.alice.publicKey), credentials: .key(Self.alice.publicKey, nil)) else {
            Issue.record("accepted a key no longer listed"); return
        }
        #expect(removed.caller == nil)
    }

    @Test("a welcome from a node presenting another key than the one it was dialled with is refused")
    func welcomeKey() {
        var client = Handshake(local: .init(node: NodeID(name: "cli", endpoint: "", incarnation: 3), cluster: "c", protocolVersion: 1),
                               peerKey: Self.alice.publicKey)
        _ = client.start()
        guard case .refuse = client.received(.welcome(protocolVersion: 1, node: Self.server)) else {
            Issue.record("accepted"); return
        }
    }

    @Test("the refusal names the weakest role that would do")
    func message() {
        #expect(NotAuthorized(method: "CoordinatorActor.drain(_:)", needed: Role.admins, caller: "x").description
                == "not authorized: CoordinatorActor.drain(_:) needs role admin")
        #expect(NotAuthorized(method: "m", needed: Role.operators, caller: "x").neededDescription == "operator")
        #expect(NotAuthorized(method: "m", needed: Role.readers, caller: "x").neededDescription == "reader")
        #expect(NotAuthorized(method: "m", needed: [.coordinator], caller: "x").neededDescription == "coordinator")
        #expect(NotAuthorized(method: "m", needed: [.admin, .worker], caller: "x").neededDescription == "admin or worker")
    }
}
