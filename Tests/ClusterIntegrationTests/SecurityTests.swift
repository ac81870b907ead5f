import ClusterDiagnostics
@testable import ClusterSystem
import Foundation
import Testing
import TestSupport
import WireFormat
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// Per-node CURVE keys, authorized keys with roles, names bound to keys, replies bound to links:
/// real `churngrid` processes and real libzmq sockets.
@Suite("Authentication and authorization between processes", .serialized, .timeLimit(.minutes(10)))
struct SecurityTests {
    /// A folder of key files for one test.
    struct Keys {
        let directory: String
        init() throws {
            directory = "/tmp/churngrid-test-\(getpid())-keys-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }

        func make(_ name: String) throws -> NodeKeyFile {
            let key = try NodeKeyFile.generate(name: name)
            try key.write(to: directory)
            return key
        }

        func path(_ name: String) -> String { "\(directory)/\(name).key" }

        func authorize(_ lines: [(Role, NodeKeyFile)], file: String = "authorized_keys") throws -> String {
            let path = "\(directory)/\(file)"
            try lines.map { "\($0.0.rawValue) \($0.1.keys.publicKey) \($0.1.name)" }.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    @Test("cluster keys writes NAME.key with mode 0600 and NAME.pub; the files load back")
    func keyFiles() async throws {
        let keys = try Keys()
        let result = await runCommand("\(try churngridExecutable()) cluster keys --out \(keys.directory) --name worker-7 2>&1")
        #expect(result.status == 0, "\(result.output)")
        var info = stat()
        #expect(stat(keys.path("worker-7"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let file = try NodeKeyFile.load(path: keys.path("worker-7"))
        #expect(file.name == "worker-7")
        #expect(try NodeKeyFile.loadPublicKey(path: "\(keys.directory)/worker-7.pub") == file.keys.publicKey)
        #expect(!result.output.contains(file.keys.secretKey), "the secret key is never printed")
    }

    @Test("an authorized key talks; no key, an unknown key or a raw socket gets nothing and is refused at once")
    func onlyAuthorizedKeys() async throws {
        try #require(ZMQContext.hasCurve)
        let keys = try Keys()
        let g = try keys.make("node-g"), member = try keys.make("member"), unknown = try keys.make("unknown")
        let list = try keys.authorize([(.reader, member)])
        let node = try await ProbeProcess.start("node-g", ["--curve-keys", keys.path("node-g"), "--authorized-keys", list])

        let (a, _) = try await localNode("member", curve: member.keys)
        defer { Task { await a.shutdown() } }
        #expect(try await probe(at: node.endpoint, key: g.keys.publicKey, from: a).nodeName() == "node-g")

        // A node with a key the node does not list: CURVE itself refuses it, and it is told at once.
        let (stranger, _) = try await localNode("unknown", curve: unknown.keys)
        defer { Task { await stranger.shutdown() } }
        // `.refused` (not a timeout's `.unreachable`): the CURVE refusal itself was seen. How fast
        // is measured by `bench rpc --curve` (refusal_ms), not asserted here.
        let refused = await remoteError { _ = try await stranger.connect(to: node.endpoint, publicKey: g.keys.publicKey, timeout: .seconds(10)) }
        #expect(refused?.code == .refused, "got \(String(describing: refused))")
        #expect(refused?.message.contains("did not accept this node's key") == true, "\(String(describing: refused?.message))")
        #expect(await node.waitForLog("refused a connection whose key is not authorized"))

        // A node without CURVE at all never completes a handshake.
        let (plain, _) = try await localNode("plain")
        defer { Task { await plain.shutdown() } }
        let plainError = await remoteError { _ = try await plain.connect(to: node.endpoint, timeout: .seconds(2)) }
        #expect(plainError != nil)

        // A raw socket with an unlisted key sends a call and receives nothing.
        let context = try ZMQContext()
        let raw = try ZMQSocket(context, .dealer)
        defer { raw.close() }
        try raw.makeCurveClient(try CurveKeyPair.generate(), serverKey: g.keys.publicKey)
        try raw.set(.receiveTimeout, 500)
        try raw.connect(node.endpoint)
        try raw.send([[2] + [UInt8](repeating: 0, count: 8)])
        #expect(try raw.receive() == nil)
    }

    @Test("a hello claiming another name than the key's, or another key, is refused with the reason")
    func spoofedHello() async throws {
        try #require(ZMQContext.hasCurve)
        let keys = try Keys()
        let g = try keys.make("node-g"), alice = try keys.make("alice"), bob = try keys.make("bob")
        let list = try keys.authorize([(.reader, alice), (.admin, bob)])
        let node = try await ProbeProcess.start("node-g", ["--curve-keys", keys.path("node-g"), "--authorized-keys", list])

        // Alice's key, introducing itself as bob (an admin).
        let (mallory, _) = try await localNode("bob", curve: alice.keys)
        defer { Task { await mallory.shutdown() } }
        let refused = await remoteError { _ = try await mallory.connect(to: node.endpoint, publicKey: g.keys.publicKey, timeout: .seconds(5)) }
        #expect(refused?.code == .refused, "got \(String(describing: refused))")
        #expect(refused?.message.contains("belongs to 'alice', not to 'bob'") == true, "\(String(describing: refused?.message))")
        #expect(await node.waitForLog("refused a node"))
    }

    @Test("SIGHUP reads the authorized keys again: a removed key's session is closed and its calls refused")
    func rolesAndReload() async throws {
        try #require(ZMQContext.hasCurve)
        let keys = try Keys()
        let g = try keys.make("node-g"), alice = try keys.make("alice")
        let list = try keys.authorize([(.worker, alice)])  // not a reader: the probe's methods need one
        let node = try await ProbeProcess.start("node-g", ["--curve-keys", keys.path("node-g"), "--authorized-keys", list])
        let (a, _) = try await localNode("alice", curve: alice.keys)
        defer { Task { await a.shutdown() } }
        let p = try await probe(at: node.endpoint, key: g.keys.publicKey, from: a)
        // ProbeActor's methods are for every reader role, workers included: allowed.
        #expect(try await p.nodeName() == "node-g")

        // Alice's key is removed; SIGHUP: her session is closed, and a new handshake refused.
        _ = try keys.authorize([])
        node.child.kill(SIGHUP)
        #expect(await node.waitForLog("authorized keys read again"))
        #expect(await node.waitForLog("closed the session of a key no longer authorized"))
        let after = await remoteError { _ = try await p.nodeName() }
        #expect(after != nil, "a removed key is refused")
        #expect([RemoteCallError.Code.nodeRestarted, .refused, .unreachable].contains(after?.code ?? .remoteThrew), "got \(String(describing: after))")
    }

    @Test("a reply forged by a third authenticated node does not settle another link's call")
    func forgedReply() async throws {
        try #require(ZMQContext.hasCurve)
        let keys = try Keys()
        let a = try keys.make("caller"), b = try keys.make("callee"), c = try keys.make("forger")
        let list = try keys.authorize([(.reader, a), (.reader, b), (.reader, c)])
        let callee = try await ProbeProcess.start("callee", ["--curve-keys", keys.path("callee"), "--authorized-keys", list])
        let authorized = try AuthorizedKeys.load(path: list)
        let (caller, _) = try await localNode("caller", curve: a.keys, authorized: authorized)
        defer { Task { await caller.shutdown() } }
        let p = try await probe(at: callee.endpoint, key: b.keys.publicKey, from: caller)
        let slow = Task { try await p.sleep(milliseconds: 3000) }
        var ids: [UInt64] = []
        let deadline = ContinuousClock.now + .seconds(2)
        while ids.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            ids = caller.transport.pendingCallIDs
        }
        try #require(!ids.isEmpty, "the call is under way")

        // The forger is authorized, says a proper hello to the caller's own listening socket, then
        // answers the caller's pending call ids with a forged result.
        let context = try ZMQContext()
        let forger = try ZMQSocket(context, .dealer)
        defer { forger.close() }
        try forger.makeCurveClient(c.keys, serverKey: a.keys.publicKey)
        try forger.set(.receiveTimeout, 2000)
        try forger.connect(caller.node.endpoint)
        let me = NodeID(name: "forger", endpoint: "tcp://127.0.0.1:1", incarnation: 7, publicKey: c.keys.publicKey)
        try forger.send([Envelope.handshake(.hello(protocolVersion: ClusterActorSystem.protocolVersion, cluster: "churngrid", node: me)).wireBytes()])
        let welcome = try forger.receive()
        #expect(welcome != nil, "the forger's hello is accepted: it is authorized")
        var forged = WireWriter(capacity: 16)
        Int(12345).encode(to: &forged)
        for id in ids { try forger.send([Envelope.reply(callID: id).wireBytes(), forged.take()]) }

        #expect(try await slow.value == 3000, "the genuine reply settles the call")
        #expect(caller.transport.strayAnswers.load(ordering: .relaxed) >= ids.count, "the forged replies arrived and were dropped")
    }
}
