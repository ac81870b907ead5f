@testable import ClusterSystem
import Testing
import WireFormat

@Suite("Call envelopes")
struct EnvelopeTests {
    static let node = NodeID(name: "worker-1", endpoint: "tcp://127.0.0.1:7401", incarnation: 0xB2)

    @Test("every envelope survives the wire", arguments: [
        Envelope.handshake(.hello(protocolVersion: 1, cluster: "churngrid", node: node)),
        .handshake(.refused(reason: "wrong cluster", node: node)),
        .ping(7), .pong(7),
        .call(CallHeader(callID: 42, actor: "shard/17", incarnation: 0xB2, method: "$s4Test5ProbeC4pingyyYaKFTE", timeoutMicroseconds: 30_000_000)),
        .reply(callID: 42),
        .failure(callID: 42, RemoteFailure(code: .remoteThrew, errorType: "Shard.NotFound", message: "subscriber 12 is not on shard 17")),
        .cancel(callID: 42),
    ])
    func roundTrip(_ envelope: Envelope) throws {
        #expect(try Envelope.decode(envelope.wireBytes()) == envelope)
    }

    @Test("a truncated or unknown envelope is an error naming the offset, never a crash")
    func malformed() throws {
        let call = Envelope.call(CallHeader(callID: 1, actor: "probe", incarnation: 9, method: "m", timeoutMicroseconds: 5)).wireBytes()
        for n in 0..<call.count {
            #expect(throws: WireError.self) { try Envelope.decode(Array(call.prefix(n))) }
        }
        let error = #expect(throws: WireError.self) { try Envelope.decode([99]) }
        #expect(error?.description.contains("message tag") == true)
        // A failure code this build does not know.
        #expect(throws: WireError.self) { try Envelope.decode([6] + [UInt8](repeating: 0, count: 8) + [200, 0, 0]) }
    }
}
