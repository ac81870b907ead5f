import Testing
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

// 2,000 hops through the I/O threads: under a CI machine at load average ~38 they took over a
// minute (a rehearsal); the limit only guards against a hang.
@Suite("Socket I/O thread", .timeLimit(.minutes(5)))
struct SocketThreadTests {
    @Test("async code talks through sockets owned by I/O threads; every request gets its reply")
    func echoThroughThreads() async throws {
        let context = try ZMQContext()
        let server = try SocketThread(name: "server", context: context)
        let client = try SocketThread(name: "client", context: context)

        // The server echoes every message back to its sender, from its handler on the I/O thread.
        let endpoint = try await server.perform { loop in
            let (id, router) = try loop.makeSocket(.router)
            // A ROUTER drops what it cannot queue: with the default 1,000 and a client thread
            // starved on a loaded machine, some of the 2,000 echoes were dropped and the test
            // waited out its limit (a rehearsal at load average 59). The transport queues 100,000.
            try router.set(.sendHighWaterMark, 100_000)
            let bound = try router.bind("tcp://127.0.0.1:*")
            loop.watch(id) { socket in
                while let parts = try? socket.receive(wait: false) { _ = try? socket.send(parts: parts) }
            }
            return bound
        }

        let (replies, sink) = AsyncStream<[UInt8]>.makeStream()
        let dealer = try await client.perform { loop in
            let (id, socket) = try loop.makeSocket(.dealer)
            try socket.set(.receiveHighWaterMark, 100_000)
            try socket.connect(endpoint)
            loop.watch(id) { socket in
                while let parts = try? socket.receive(wait: false) { sink.yield(parts[0].bytes) }
            }
            return id
        }

        let count = 2000
        for i in 0..<count {
            let payload = withUnsafeBytes(of: UInt32(i).littleEndian, Array.init)
            try await client.perform { loop in
                _ = try loop.socket(dealer)!.send([payload])
            }
        }
        var seen = Set<UInt32>()
        for await reply in replies {
            seen.insert(reply.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            if seen.count == count { break }
        }
        #expect(seen == Set(0..<UInt32(count)))

        await client.stop()
        await server.stop()
        await #expect(throws: ZMQError.self) {
            try await client.perform { _ in 1 }
        }
    }

    @Test("an error thrown on the I/O thread reaches the awaiting caller")
    func errorsCrossOver() async throws {
        let context = try ZMQContext()
        let thread = try SocketThread(name: "errors", context: context)
        await #expect {
            try await thread.perform { loop in
                let (_, socket) = try loop.makeSocket(.router)
                try socket.bind("nonsense://endpoint")
            }
        } throws: { e in
            (e as? ZMQError)?.description.contains("nonsense://endpoint") == true
        }
        await thread.stop()
    }
}
