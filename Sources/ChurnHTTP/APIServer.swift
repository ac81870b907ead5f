import ChurnCluster
import ClusterSystem
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import Metrics
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The coordinator's HTTP server: the API (bearer tokens or a dashboard session, a role per
/// route), the dashboard, `/openapi.json`, `/metrics`, `/healthz` and `/readyz`. A standby
/// coordinator serves it too: health and metrics, `/readyz` false, and the API answers
/// `not-leading` (503) so a load balancer sends callers to the leader.
public final class APIServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// PEM certificate chain and key files: HTTPS. Nil: plain HTTP (loopback, or `--insecure`).
        public var tls: (certificate: String, key: String)?
        /// The largest request body accepted (413 beyond).
        public var maxBodyBytes = 1 << 20
        /// The largest outcomes file `POST /v1/outcomes` accepts (413 beyond): 5 million outcomes
        /// (`CoordinatorActor.maxOutcomesPerImport`) of about 50 bytes a line.
        public var maxOutcomesBodyBytes = 256 << 20
        public var logger: Logger

        public init(host: String, port: Int, tls: (certificate: String, key: String)? = nil, logger: Logger) {
            self.host = host
            self.port = port
            self.tls = tls
            self.logger = logger
        }

        /// `HOST:PORT` (`[::1]:8080` for IPv6).
        public static func parse(address: String) -> (host: String, port: Int)? {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            var host = String(address[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            return (host, port)
        }
    }

    let configuration: Configuration
    let coordinatorService: CoordinatorService
    let store: APIStore
    let tokens = TokenTable()
    let sessions = Mutex(SessionTable())
    private let routerBox = Mutex<ScoreRouter?>(nil)
    private let requestCounter = Atomic<UInt64>(0)
    /// The nodes the last scrape reported.
    private let reportedNodes = Mutex<Set<String>>([])
    /// The port actually bound (port 0 picks a free one).
    public let boundPort = Mutex<Int?>(nil)

    public init(_ configuration: Configuration, coordinator: CoordinatorService, store: APIStore) {
        self.configuration = configuration
        coordinatorService = coordinator
        self.store = store
        NodeMetrics.bootstrap()
    }

    /// The leading coordinator actor, nil while standing by.
    var coordinator: CoordinatorActor? { coordinatorService.coordinator }

    /// The query router (made when this coordinator starts leading).
    func router() throws(Problem) -> ScoreRouter {
        if let r = routerBox.withLock({ $0 }) { return r }
        guard let coordinator else { throw notLeading() }
        let r = ScoreRouter(system: coordinatorService.system, coordinator: coordinator, coalesce: true)
        routerBox.withLock { $0 = $0 ?? r }
        return routerBox.withLock { $0 ?? r }
    }

    func notLeading() -> Problem {
        var p = Problem(.notLeading, "this coordinator (\(coordinatorService.system.node.name)) stands by; ask the coordinator holding the lease")
        p.headers[.retryAfter] = "2"
        return p
    }

    public func run() async throws {
        let logger = configuration.logger
        let responder = APIResponder(server: self)
        // An idle connection (a slow client, a slow-loris) is closed after a minute.
        let http1: HTTPServerBuilder = .http1(configuration: .init(idleTimeout: .seconds(60)))
        var server = http1
        if let tls = configuration.tls {
            let chain = try NIOSSLCertificate.fromPEMFile(tls.certificate).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: tls.key, format: .pem)
            server = try .tls(http1, tlsConfiguration: TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        }
        let scheme = configuration.tls == nil ? "http" : "https"
        let app = Application(
            responder: responder, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? 0
                self.boundPort.withLock { $0 = port }
                print("http listening \(scheme)://\(channel.localAddress?.ipAddress ?? "?"):\(port)")
                fflush(nil)
            },
            logger: logger)
        // Tokens: read now, then every 2 s (a revocation anywhere takes effect here within that).
        let refresh = Task { [self] in
            while !Task.isCancelled {
                do {
                    tokens.replace(with: try await store.tokens())
                    let now = ContinuousClock.now
                    sessions.withLock { $0.prune(isLive: { self.tokens.isLive(hash: $0) }, now: now) }
                } catch {
                    logger.warning("could not read the API tokens; keeping the last ones read", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(2))
            }
        }
        defer { refresh.cancel() }
        NodeMetrics.addSampler { [weak self] in await self?.sample() }
        try await app.runService()
    }

    /// The coordinator's gauges, read at each scrape.
    func sample() async {
        Gauge(label: "churngrid_api_sessions").record(sessions.withLock { $0.count })
        guard let coordinator else {
            Gauge(label: "churngrid_coordinator_leading").record(0)
            return
        }
        Gauge(label: "churngrid_coordinator_leading").record(1)
        guard let view = try? await coordinator.whenLocal({ await $0.overview() }) else { return }
        if let database = view.database { Gauge(label: "churngrid_database_reachable").record(database.reachable ? 1 : 0) }
        Gauge(label: "churngrid_shard_map_epoch").record(view.epoch)
        Gauge(label: "churngrid_shards", dimensions: [("state", "owned")]).record(view.owned)
        Gauge(label: "churngrid_shards", dimensions: [("state", "ready")]).record(view.ready)
        Gauge(label: "churngrid_shards", dimensions: [("state", "moving")]).record(view.moving)
        Gauge(label: "churngrid_shards", dimensions: [("state", "unassigned")]).record(view.shardCount - view.owned)
        var byState: [String: Int] = ["active": 0, "draining": 0, "silent": view.silent.count]
        // A node that left loses its series (a stale gauge would claim it still holds shards).
        let present = Set(view.nodes.map(\.name))
        for gone in reportedNodes.withLock({ old in defer { old = present }; return old.subtracting(present) }) {
            for state in ["owned", "ready", "standby"] { Gauge(label: "churngrid_node_shards", dimensions: [("node", gone), ("state", state)]).destroy() }
        }
        for node in view.nodes {
            byState[node.state.rawValue, default: 0] += 1
            Gauge(label: "churngrid_node_shards", dimensions: [("node", node.name), ("state", "owned")]).record(node.shards)
            Gauge(label: "churngrid_node_shards", dimensions: [("node", node.name), ("state", "ready")]).record(node.readyShards)
            Gauge(label: "churngrid_node_shards", dimensions: [("node", node.name), ("state", "standby")]).record(node.standbyShards)
        }
        for (state, n) in byState { Gauge(label: "churngrid_nodes", dimensions: [("state", state)]).record(n) }
        if let job = view.job {
            Gauge(label: "churngrid_job_running").record(job.state == .running ? 1 : 0)
            Gauge(label: "churngrid_job_shards_done").record(job.shardsDone)
            Gauge(label: "churngrid_job_shards").record(job.shardCount)
            Gauge(label: "churngrid_job_subscribers_scored").record(job.subscribers)
            Gauge(label: "churngrid_job_subscribers_per_second").record(job.subscribersPerSecond)
        } else {
            Gauge(label: "churngrid_job_running").record(0)
        }
    }

    func nextRequestID() -> String {
        let n = requestCounter.add(1, ordering: .relaxed).newValue
        return String(coordinatorService.system.node.incarnation & 0xffff, radix: 16) + "-" + String(n, radix: 16)
    }
}

/// Turns each request into a route, checks who may call it, runs its handler, and answers
/// errors as problem documents. Every request gets an id (the `X-Request-Id` header and its log
/// line); tokens are never logged.
struct APIResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let server: APIServer

    func respond(to request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let requestID = server.nextRequestID()
        let path = request.uri.path
        var template = "unmatched"
        var response: Response
        do {
            let route = try APIRoute.parse(method: request.method.rawValue, path: path)
            template = route.template
            let identity = try authorize(route, request)
            response = try await Handlers(server: server, request: request, identity: identity, requestID: requestID).handle(route)
        } catch let problem as Problem {
            response = problemResponse(problem, path: path)
        } catch {
            server.configuration.logger.error("request failed", metadata: ["request": "\(requestID)", "route": "\(template)", "error": "\(error)"])
            response = problemResponse(Problem(.internalError, "the request failed inside the server (request \(requestID)); see the coordinator's log"), path: path)
        }
        response.headers[.init("X-Request-Id")!] = requestID
        let code = response.status.code
        MetricHandles.shared.counter("churngrid_http_requests_total", [("route", template), ("code", String(code))]).increment()
        MetricHandles.shared.timer("churngrid_http_request_duration_seconds", [("route", template)]).record(duration: ContinuousClock.now - start)
        let level: Logger.Level = code >= 500 ? .warning : code >= 400 ? .info : .debug
        server.configuration.logger.log(level: level, "http", metadata: [
            "request": "\(requestID)", "method": "\(request.method.rawValue)", "route": "\(template)", "status": "\(code)",
            "ms": "\(Double((ContinuousClock.now - start).components.attoseconds) / 1e15 + Double((ContinuousClock.now - start).components.seconds) * 1000)",
        ])
        return response
    }

    /// The caller's identity when `route` needs one: a bearer token, or the dashboard's session cookie.
    func authorize(_ route: APIRoute, _ request: Request) throws(Problem) -> APIIdentity? {
        guard let needed = route.roles else { return nil }
        var identity: APIIdentity?
        if let header = request.headers[.authorization] {
            guard header.count > 7, header.prefix(7).lowercased() == "bearer ", let found = server.tokens.identity(of: header.dropFirst(7).trimmingSpaces()) else {
                throw unauthorized("the bearer token is not valid (unknown, revoked or malformed)")
            }
            identity = found
        } else if let session = request.cookies["churngrid_session"]?.value {
            // The session cookie reads only: a page on another site (or a sibling subdomain, which
            // SameSite does not stop) cannot make a signed-in browser start a job or drain a node.
            guard request.method == .get || request.method == .head else {
                throw Problem(.forbidden, "a session cookie may only read; send 'Authorization: Bearer TOKEN' to \(request.method.rawValue) \(route.template)")
            }
            let now = ContinuousClock.now
            identity = server.sessions.withLock { $0.identity(of: session, now: now) }
            // A session ends with its token (at once here; the refresh prunes the table too).
            if let found = identity, !server.tokens.isLive(hash: found.tokenHash) { identity = nil }
            if identity == nil { throw unauthorized("the session has ended (expired, signed out, its token revoked, or the coordinator restarted): sign in again") }
        }
        guard let identity else { throw unauthorized("send 'Authorization: Bearer TOKEN' (`churngrid tokens create`)") }
        guard needed.contains(identity.role) else {
            throw Problem(.forbidden, "token '\(identity.name)' has role \(identity.role); \(route.template) needs \(NotAuthorized(method: "", needed: needed, caller: "").neededDescription)")
        }
        return identity
    }

    func unauthorized(_ detail: String) -> Problem {
        var p = Problem(.unauthorized, detail)
        p.headers[.wwwAuthenticate] = "Bearer realm=\"churngrid\""
        return p
    }

    func problemResponse(_ problem: Problem, path: String) -> Response {
        var headers = problem.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: problem.type.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: problem.json(instance: String(path.prefix(200))))))
    }
}

extension Substring {
    /// Without leading and trailing spaces (Foundation's trimming costs a bridge per request).
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return s
    }
}
