import ClusterSystem
import Logging

/// What `churngrid rescore | score | status` use: a short-lived node that talks to the coordinator.
public struct ClusterClient: Sendable {
    public let system: ClusterActorSystem
    public let coordinator: CoordinatorActor

    /// Connects to the coordinator at `endpoint`. The client listens on an ephemeral port of
    /// `listen`'s host (answers travel back over a connection to it).
    public static func connect(_ endpoint: String, listen: String = "tcp://127.0.0.1:*", logger: Logger) async throws -> ClusterClient {
        var configuration = ClusterActorSystem.Configuration(name: "client", listen: listen, logger: logger)
        configuration.options.inboundConcurrency = 2
        let system = try await ClusterActorSystem(configuration)
        do {
            let node = try await system.connect(to: endpoint, timeout: .seconds(10))
            let coordinator = try CoordinatorActor.resolve(id: ActorID(node: node, name: CoordinatorActor.name), using: system)
            return ClusterClient(system: system, coordinator: coordinator)
        } catch {
            await system.shutdown()
            throw error
        }
    }

    public func close() async {
        await system.shutdown()
    }
}
