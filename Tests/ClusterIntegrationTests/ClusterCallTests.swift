import ClusterDiagnostics
import ClusterSystem
import Testing
import TestSupport
import WireFormat
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// Real `churngrid` processes on 127.0.0.1 calling each other (and this test process) through
/// ChurnGrid's actor system over libzmq.
@Suite("Distributed calls between processes", .serialized, .timeLimit(.minutes(10)))
struct ClusterCallTests {
    @Test("calls go both ways across three processes, with bulk payloads and typed remote errors")
    func callsAcrossProcesses() async throws {
        let b = try await ProbeProcess.start("node-b")
        let c = try await ProbeProcess.start("node-c")
        let (a, ownProbe) = try await localNode("node-a")  // B calls this probe back: keep it alive
        defer { Task { await a.shutdown() } }
        let pb = try await probe(at: b.endpoint, from: a)

        #expect(try await pb.nodeName() == "node-b")
        #expect(ownProbe.id.node == a.node)
        // B calls C while serving our call, and B calls back into this process.
        #expect(try await pb.askNode(at: c.endpoint) == "node-c")
        #expect(try await pb.askNode(at: a.node.endpoint) == "node-a")

        // 1M Float32 (4 MB) one way, 8 MiB both ways.
        let column = (0..<1_000_000).map { Float($0 % 1000) / 8 }
        let expected = column.reduce(0.0) { $0 + Double($1) }
        #expect(try await pb.sum(BulkArray(column)) == expected)
        let bytes = BulkArray((0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        #expect(try await pb.echo(bytes) == bytes)

        // A remote throw arrives typed, with the node, the method and the message.
        let thrown = await remoteError { try await pb.fail("no such tariff: T-99") }
        #expect(thrown?.code == .remoteThrew)
        #expect(thrown?.message.contains("no such tariff: T-99") == true)
        #expect(thrown?.remoteErrorType?.contains("ProbeError") == true)
        #expect(thrown?.node.contains("node-b") == true)
        #expect(thrown?.method.contains("fail") == true)

        // An actor that does not exist there.
        let node = try await a.connect(to: b.endpoint)
        let missing = try ProbeActor.resolve(id: ActorID(node: node, name: "shard/999"), using: a)
        let notFound = await remoteError { _ = try await missing.nodeName() }
        #expect(notFound?.code == .actorNotFound)
        #expect(notFound?.message.contains("shard/999") == true)
        withExtendedLifetime(ownProbe) {}
    }

    @Test("a task-local timeout ends a slow call; cancelling the caller's task ends it at once")
    func timeoutsAndCancellation() async throws {
        let b = try await ProbeProcess.start("node-b")
        let (a, _) = try await localNode("node-a")
        defer { Task { await a.shutdown() } }
        let pb = try await probe(at: b.endpoint, from: a)

        let timedOut = await remoteError {
            try await ClusterActorSystem.$callTimeout.withValue(.milliseconds(300)) {
                _ = try await pb.sleep(milliseconds: 10_000)
            }
        }
        #expect(timedOut?.code == .timedOut)

        let slow = Task { try await pb.sleep(milliseconds: 10_000) }
        try await Task.sleep(for: .milliseconds(200))
        slow.cancel()
        await #expect(throws: CancellationError.self) { _ = try await slow.value }

        // The node still answers, and a normal call still completes.
        #expect(try await pb.sleep(milliseconds: 10) == 10)
    }

    @Test("more concurrent calls than the per-peer in-flight limit all complete (they wait, none fail)")
    func backpressure() async throws {
        let b = try await ProbeProcess.start("node-b")
        let (a, _) = try await localNode("node-a") { $0.maxInFlightPerPeer = 4 }
        defer { Task { await a.shutdown() } }
        let pb = try await probe(at: b.endpoint, from: a)
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<64 { group.addTask { try await pb.sleep(milliseconds: 20) } }
            return try await group.reduce(0, +)
        }
        #expect(total == 64 * 20)
    }

    @Test("a node killed with SIGKILL mid-call fails the call as unreachable; the caller keeps serving others")
    func peerKilledMidCall() async throws {
        let b = try await ProbeProcess.start("node-b")
        let d = try await ProbeProcess.start("node-d")
        let (a, _) = try await localNode("node-a")
        defer { Task { await a.shutdown() } }
        let pb = try await probe(at: b.endpoint, from: a)
        let pd = try await probe(at: d.endpoint, from: a)

        let inFlight = Task {
            await remoteError {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(60)) { _ = try await pd.sleep(milliseconds: 30_000) }
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        d.child.kill(SIGKILL)
        let error = await inFlight.value
        #expect(error?.code == .unreachable, "got \(String(describing: error))")
        #expect(error?.node.contains("node-d") == true)

        // The caller goes on serving and calling others; new calls to the dead node fail fast.
        #expect(try await pb.nodeName() == "node-b")
        let again = await remoteError { _ = try await pd.nodeName() }
        #expect(again?.code == .unreachable)
    }

    @Test("garbage, truncated, unauthenticated and oversized frames are dropped and logged; the node keeps serving")
    func badFrames() async throws {
        let b = try await ProbeProcess.start("node-b", ["--max-message-mb", "1"])
        let (a, _) = try await localNode("node-a")
        defer { Task { await a.shutdown() } }
        let pb = try await probe(at: b.endpoint, from: a)

        let context = try ZMQContext()
        let raw = try ZMQSocket(context, .dealer)
        defer { raw.close() }
        try raw.connect(b.endpoint)
        try raw.send([(0..<100).map { _ in UInt8.random(in: 0...255) }])  // noise
        try raw.send([[4, 1, 2]])  // a call envelope cut short
        try raw.send([[2] + [UInt8](repeating: 0, count: 8)])  // a well-formed ping without a handshake
        try raw.send([[9], [1], [2], [3]])  // an unknown tag, too many parts
        try raw.send([[UInt8](repeating: 0, count: 2 << 20)])  // over the node's 1 MiB limit: libzmq drops the connection

        #expect(await b.waitForLog("dropped a malformed message"))
        #expect(await b.waitForLog("answered a message from a connection without a handshake"))
        #expect(try await pb.nodeName() == "node-b")
        #expect(try await pb.sum(BulkArray([1, 2, 3] as [Float])) == 6)
    }

    @Test("a node of another protocol version or cluster is refused with the reason on both sides", arguments: [
        (["--protocol-version", "99"], "protocol"),
        (["--cluster", "other-operator"], "cluster"),
    ])
    func refusedHandshake(options: [String], mentions: String) async throws {
        let e = try await ProbeProcess.start("node-e", options)
        let (a, _) = try await localNode("node-a")
        defer { Task { await a.shutdown() } }
        let refused = await remoteError { _ = try await a.connect(to: e.endpoint, timeout: .seconds(10)) }
        #expect(refused?.code == .refused, "got \(String(describing: refused))")
        #expect(refused?.message.contains(mentions) == true)
        #expect(await e.waitForLog("refused a node"))
    }
}
