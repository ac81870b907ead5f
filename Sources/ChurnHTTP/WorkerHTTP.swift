import ChurnCluster
import ClusterSystem
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import ServiceLifecycle

/// A worker's own HTTP port (`worker --metrics HOST:PORT`): `/metrics`, `/healthz` (the process
/// is up) and `/readyz` (it hosts shards and is loading none: every shard assigned to it is
/// loaded). It serves no subscriber data, so it takes no token.
public final class WorkerHTTP: Service, Sendable {
    let host: String
    let port: Int
    let service: WorkerService
    let logger: Logger

    public init(host: String, port: Int, service: WorkerService, logger: Logger) {
        self.host = host
        self.port = port
        self.service = service
        self.logger = logger
        NodeMetrics.bootstrap()
        let worker = service.worker
        NodeMetrics.addSampler {
            guard let s = await worker.whenLocal({ $0.localStatus() }) else { return }
            Gauge(label: "churngrid_worker_shards", dimensions: [("role", "owner")]).record(s.status.shards)
            Gauge(label: "churngrid_worker_shards", dimensions: [("role", "standby")]).record(s.status.standbyShards)
            Gauge(label: "churngrid_worker_shards_loading").record(s.loading)
            Gauge(label: "churngrid_profile_bytes", dimensions: [("role", "owner")]).record(s.status.profileBytes)
            Gauge(label: "churngrid_profile_bytes", dimensions: [("role", "standby")]).record(s.status.standbyBytes)
            Gauge(label: "churngrid_profile_subscribers").record(s.status.subscribers)
            guard let e = await worker.whenLocal({ await $0.eventStatus() }) else { return }
            Gauge(label: "churngrid_event_shards_blocked", dimensions: [("state", "replaying")]).record(e.stats.shardsReplaying)
            Gauge(label: "churngrid_event_shards_blocked", dimensions: [("state", "waiting")]).record(e.stats.shardsWaiting)
            Gauge(label: "churngrid_event_shards_blocked", dimensions: [("state", "lost")]).record(e.stats.shardsLost)
            Gauge(label: "churngrid_event_state_bytes").record(e.stats.stateBytes)
        }
    }

    public func run() async throws {
        let worker = service.worker, system = service.system, service = service
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
                Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            guard request.method == .get || request.method == .head else {
                return Response(status: .methodNotAllowed, headers: [.allow: "GET", .contentType: "application/problem+json"],
                                body: .init(byteBuffer: ByteBuffer(string: Problem(.methodNotAllowed, "only GET here").json(instance: request.uri.path))))
            }
            switch request.uri.path {
            case "/metrics":
                let body = await NodeMetrics.exposition(system: system)
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
            case "/healthz":
                return json(.ok, #"{"status":"up"}"#)
            case "/readyz":
                let s = await worker.whenLocal { $0.localStatus() }
                let hosted = (s?.status.shards ?? 0) + (s?.status.standbyShards ?? 0), loading = s?.loading ?? 0
                // Ready: registered with the leading coordinator, every shard it was given loaded,
                // none being loaded now (a worker given no shard is ready too: it has nothing to load).
                let joined = service.hasJoined
                let ready = joined && loading == 0
                return json(ready ? .ok : .serviceUnavailable,
                            #"{"ready":\#(ready),"joined":\#(joined),"hosted_shards":\#(hosted),"loading_shards":\#(loading)}"#)
            default:
                return Response(status: .notFound, headers: [.contentType: "application/problem+json"],
                                body: .init(byteBuffer: ByteBuffer(string: Problem(.notFound, "a worker serves /metrics, /healthz and /readyz").json(instance: String(request.uri.path.prefix(200))))))
            }
        }
        let app = Application(responder: responder, configuration: .init(address: .hostname(host, port: port)),
                              onServerRunning: { channel in
                                  print("metrics listening http://\(channel.localAddress?.ipAddress ?? "?"):\(channel.localAddress?.port ?? 0)")
                                  fflush(nil)
                              }, logger: logger)
        try await app.runService()
    }
}
