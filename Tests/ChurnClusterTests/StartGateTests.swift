@testable import ChurnCluster
import Testing

/// `coordinator --min-workers`: the pure state machine deciding when shards are first placed.
@Suite("Start gate")
struct StartGateTests {
    @Test("one worker (the default) places at once")
    func defaultOpen() {
        var gate = StartGate(minWorkers: 1)
        #expect(gate.isOpen && gate.refusal == nil && gate.waiting == nil)
        #expect(gate.registered("w1", hostsShards: false) == .place)
    }

    @Test("waits for N, counting each worker once and forgetting those that leave; then stays open")
    func waitsForN() {
        var gate = StartGate(minWorkers: 3)
        #expect(gate.waiting == "waiting for 3 more workers (0 of 3)")
        #expect(gate.registered("w1", hostsShards: false) == .wait(progress: "waiting for 2 more workers (1 of 3)"))
        #expect(gate.registered("w1", hostsShards: false) == .wait(progress: "waiting for 2 more workers (1 of 3)"))  // re-registration
        #expect(gate.registered("w2", hostsShards: false) == .wait(progress: "waiting for 1 more worker (2 of 3)"))
        #expect(gate.refusal?.contains("waiting for 1 more worker (2 of 3)") == true)
        #expect(gate.left("w2") == .wait(progress: "waiting for 2 more workers (1 of 3)"))
        #expect(gate.left("nobody") == StartGate.Action.none)
        #expect(gate.registered("w2", hostsShards: false) == .wait(progress: "waiting for 1 more worker (2 of 3)"))
        #expect(gate.registered("w3", hostsShards: false) == .place)
        #expect(gate.opened == .minimumReached && gate.refusal == nil)
        #expect(gate.left("w3") == StartGate.Action.none)
        #expect(gate.isOpen)
        #expect(gate.registered("w4", hostsShards: false) == .place)
    }

    @Test("a worker already hosting shards (a restart or takeover of a serving cluster) opens it at once")
    func servingClusterDoesNotWait() {
        var gate = StartGate(minWorkers: 4)
        #expect(gate.registered("w1", hostsShards: true) == .place)
        #expect(gate.opened == .workersAlreadyServing)
    }
}
