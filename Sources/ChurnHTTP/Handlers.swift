import ChurnCluster
import ClusterSystem
import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import SubscriberEvents
import WireFormat

/// One request's handler: what each route does. JSON keys are snake_case.
struct Handlers {
    let server: APIServer
    let request: Request
    let identity: APIIdentity?
    let requestID: String

    func handle(_ route: APIRoute) async throws -> Response {
        switch route {
        case .dashboard(let asset): return dashboard(asset)
        case .openAPI: return text(OpenAPIDocument.json, type: "application/json")
        case .healthz: return json(status: .ok) { o in o.object { o in o.key("status"); o.string("up") } }
        case .readyz: return try await readyz()
        case .metrics:
            let body = await NodeMetrics.exposition(system: server.coordinatorService.system)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        case .createSession: return try await createSession()
        case .deleteSession: return deleteSession()
        case .score(let id): return try await score(id)
        case .batchScores: return try await batch()
        case .startJob: return try await startJob()
        case .jobs: return try await jobs()
        case .job(let id): return try await job(id)
        case .jobSummary(let id): return try await summary(id)
        case .jobDrift(let id): return try await drift(id)
        case .stream: return try stream()
        case .cluster: return try await cluster()
        case .drain(let node): return try await drain(node)
        case .tokens: return try await listTokens()
        case .createToken: return try await createToken()
        case .revokeToken(let name): return try await revokeToken(name)
        case .postEvents: return try await postEvents()
        case .runCampaign: return try await runCampaign()
        case .campaignReport(let run): return try await campaignReport(run)
        case .campaignActions(let run): return try await campaignActions(run)
        case .importOutcomes: return try await importOutcomes()
        case .liveCampaign: return try await liveCampaign()
        case .startLiveCampaign: return try await startLiveCampaign()
        case .stopLiveCampaign: return try await stopLiveCampaign()
        case .eraseSubscribers: return try await eraseSubscribers()
        case .models: return try await models()
        case .deployModel(let name): return try await deployModel(name)
        case .promoteModel(let name): return try await promoteModel(name)
        case .activateModel(let name): return try await activateModel(name)
        case .deactivateModel(let name): return try await deactivateModel(name)
        }
    }

    // MARK: Helpers

    func json(status: HTTPResponse.Status, headers: HTTPFields = [:], _ write: (inout JSONOut) -> Void) -> Response {
        var o = JSONOut()
        write(&o)
        var h = headers
        h[.contentType] = "application/json"
        h[.cacheControl] = "no-store"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: o.bytes)))
    }

    func text(_ body: String, type: String, cache: Bool = false) -> Response {
        var h: HTTPFields = [.contentType: type]
        h[.cacheControl] = cache ? "max-age=300" : "no-store"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func leader() throws(Problem) -> CoordinatorActor {
        guard let c = server.coordinator else { throw server.notLeading() }
        return c
    }

    /// The request's identity as a cluster caller (the audit log names the token).
    var caller: Caller? {
        identity.map { Caller(node: server.coordinatorService.system.node, name: $0.name, publicKey: "", roles: [$0.role], credential: "token:\($0.name)") }
    }

    /// The body, up to `limit` (the configured limit unless the route has its own).
    func collectBody(limit: Int? = nil) async throws -> ByteBuffer {
        let limit = limit ?? server.configuration.maxBodyBytes
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem(.bodyTooLarge, "the body is larger than \(limit) bytes")
        }
    }

    /// The JSON body, decoded.
    func body<T: Decodable>(_ type: T.Type) async throws -> T {
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw Problem(.unsupportedMediaType, "send the body as application/json, not \(contentType.prefix(60))")
        }
        let buffer = try await collectBody()
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c) {
            throw Problem(.invalidBody, "\(fieldName(c.codingPath)): \(c.debugDescription)", field: fieldName(c.codingPath))
        } catch let DecodingError.keyNotFound(key, c) {
            let field = fieldName(c.codingPath + [key])
            throw Problem(.invalidBody, "\(field) is missing", field: field)
        } catch let DecodingError.dataCorrupted(c) {
            throw Problem(.invalidBody, "the body is not valid JSON: \(c.underlyingError.map { "\($0)" } ?? c.debugDescription)".prefix(300).description,
                          field: c.codingPath.isEmpty ? nil : fieldName(c.codingPath))
        }
    }

    func fieldName(_ path: [any CodingKey]) -> String {
        path.reduce("") { s, k in k.intValue.map { "\(s)[\($0)]" } ?? (s.isEmpty ? k.stringValue : "\(s).\(k.stringValue)") }
    }

    func explainMode() throws(Problem) -> ExplainMode {
        guard let value = request.uri.queryParameters["explain"] else { return .approx }
        guard let mode = ExplainMode(name: String(value)) else {
            throw Problem(.invalidParameter, "explain must be 'approx' or 'exact', got '\(value.prefix(40))'", field: "explain")
        }
        return mode
    }

    // MARK: Health

    func readyz() async throws -> Response {
        guard let c = server.coordinator else {
            return json(status: .serviceUnavailable) { o in o.object { o in o.key("ready"); o.bool(false); o.key("reason"); o.string("standing by: another coordinator leads") } }
        }
        let view = await c.whenLocal { $0.overview() }
        let ready = view?.isReady ?? false
        return json(status: ready ? .ok : .serviceUnavailable) { o in
            o.object { o in
                o.key("ready"); o.bool(ready)
                o.key("shards"); o.int(view?.shardCount ?? 0)
                o.key("ready_shards"); o.int(view?.ready ?? 0)
                if !ready { o.key("reason"); o.string("\((view?.shardCount ?? 0) - (view?.ready ?? 0)) shards have no ready owner") }
            }
        }
    }

    // MARK: Sessions

    struct SessionRequest: Decodable { var token: String }

    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")

    func createSession() async throws -> Response {
        let posted = try await body(SessionRequest.self)
        guard let identity = server.tokens.identity(of: posted.token) else {
            throw Problem(.unauthorized, "the token is not valid (unknown, revoked or malformed)", field: "token")
        }
        let id = SessionTable.newID(), now = ContinuousClock.now
        server.sessions.withLock { $0.open(id: id, identity: identity, now: now) }
        // Secure under TLS here, or behind a proxy that terminated it (X-Forwarded-Proto: https):
        // the browser then never sends the cookie over plain HTTP.
        let forwardedHTTPS = Self.forwardedProto.flatMap { request.headers[$0] }
            .map { $0.split(separator: ",").first?.trimmingCharacters(in: .whitespaces).lowercased() == "https" } ?? false
        let secure = server.configuration.tls != nil || forwardedHTTPS ? "; Secure" : ""
        var headers: HTTPFields = [:]
        headers[.setCookie] = "churngrid_session=\(id); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(SessionTable.lifetime.components.seconds))\(secure)"
        return json(status: .ok, headers: headers) { o in o.object { o in o.key("name"); o.string(identity.name); o.key("role"); o.string(identity.role.rawValue) } }
    }

    func deleteSession() -> Response {
        if let id = request.cookies["churngrid_session"]?.value { server.sessions.withLock { $0.close(id: id) } }
        var headers: HTTPFields = [:]
        headers[.setCookie] = "churngrid_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        return Response(status: .noContent, headers: headers)
    }

    // MARK: Scores

    /// `?models=served` (the default) or `?models=all` (the models active beside it too).
    func allModelsParameter() throws -> Bool {
        switch request.uri.queryParameters["models"].map(String.init) {
        case nil, "served": return false
        case "all": return true
        case let other?: throw Problem(.invalidParameter, "models must be 'served' or 'all', got '\(other.prefix(40))'", field: "models")
        }
    }

    func score(_ id: Int64) async throws -> Response {
        let explain = try explainMode()
        let allModels = try allModelsParameter()
        let router = try server.router()
        let start = ContinuousClock.now
        defer { MetricHandles.shared.timer("churngrid_query_duration_seconds", [("kind", "single")]).record(duration: ContinuousClock.now - start) }
        let answer: ScoreLookup
        do {
            answer = try await router.score(id, explain: explain)
        } catch {
            MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "error")]).increment()
            throw unavailable("subscriber \(id): the query failed", error)
        }
        switch answer {
        case .found(let s):
            MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "found")]).increment()
            // ?models=all: the models active beside the served one whose segment holds it too.
            var others: [ActiveModelAnswer]?
            if allModels {
                do {
                    others = try await router.activeModelScores(of: id)
                } catch {
                    throw unavailable("subscriber \(id): the active models' answers failed", error)
                }
            }
            return json(status: .ok) { o in Self.write(s, explain: explain, active: others, to: &o) }
        case .notFound(_, let shard):
            MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "not_found")]).increment()
            throw Problem(.unknownSubscriber, "no subscriber \(id) (its shard \(shard) does not hold it)", field: "id")
        case .unavailable(_, let reason):
            MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "unavailable")]).increment()
            var p = Problem(.unavailable, reason)
            p.headers[.retryAfter] = "1"
            throw p
        }
    }

    /// Reasons as the API writes them: `[{"feature", "contribution"}]`, strongest first.
    static func write(_ reasons: [Reason], to o: inout JSONOut) {
        o.array { o in for r in reasons { o.object { o in o.key("feature"); o.string(r.feature); o.key("contribution"); o.double(r.contribution) } } }
    }

    /// Active models' answers as the API writes them: `[{"name", "model_version", "probability", "risk_band", "reasons"}]`.
    static func write(_ active: [ActiveModelAnswer], to o: inout JSONOut) {
        o.array { o in
            for a in active {
                o.object { o in
                    o.key("name"); o.string(a.name)
                    o.key("model_version"); o.string(a.modelVersion)
                    o.key("probability"); o.double(a.probability)
                    o.key("risk_band"); o.string(a.riskBand)
                    o.key("reasons")
                    Self.write(a.reasons, to: &o)
                }
            }
        }
    }

    static func write(_ s: LiveScore, explain: ExplainMode, active: [ActiveModelAnswer]? = nil, to o: inout JSONOut) {
        o.object { o in
            if let active {
                o.key("active_models")
                Self.write(active, to: &o)
            }
            o.key("subscriber_id"); o.int(s.subscriberID)
            o.key("probability"); o.double(s.probability)
            o.key("risk_band"); o.string(s.riskBand)
            o.key("reasons")
            Self.write(s.reasons, to: &o)
            o.key("explain"); o.string(explain.description)
            o.key("model_version"); o.string(s.modelVersion)
            o.key("shard"); o.int(s.shard)
            o.key("node"); o.string(s.node)
            o.key("epoch"); o.int(s.epoch)
        }
    }

    /// The most ids of one batch explained exactly.
    static let maxExactBatch = 1000

    struct BatchRequest: Decodable {
        var subscriberIDs: [Int64]
        var explain: String?
        enum CodingKeys: String, CodingKey {
            case subscriberIDs = "subscriber_ids"
            case explain
        }
    }

    func batch() async throws -> Response {
        let allModels = try allModelsParameter()
        let posted = try await body(BatchRequest.self)
        guard posted.subscriberIDs.count <= LookupBatch.maxCount else {
            throw Problem(.tooManyIds, "\(posted.subscriberIDs.count) ids; at most \(LookupBatch.maxCount) per request", field: "subscriber_ids")
        }
        var explain = ExplainMode.approx
        if let name = posted.explain {
            guard let mode = ExplainMode(name: name) else { throw Problem(.invalidBody, "explain must be 'approx' or 'exact', got '\(name.prefix(40))'", field: "explain") }
            explain = mode
        }
        // Exact TreeSHAP costs tens of times the approximation: a smaller batch keeps one request
        // from holding the workers.
        if explain == .exact, posted.subscriberIDs.count > Self.maxExactBatch {
            throw Problem(.tooManyIds, "\(posted.subscriberIDs.count) ids with explain=exact; at most \(Self.maxExactBatch) per request (or explain=approx, up to \(LookupBatch.maxCount))", field: "subscriber_ids")
        }
        if let i = posted.subscriberIDs.firstIndex(where: { $0 < 0 }) {
            throw Problem(.invalidBody, "subscriber ids are non-negative", field: "subscriber_ids[\(i)]")
        }
        let router = try server.router()
        let start = ContinuousClock.now
        defer { MetricHandles.shared.timer("churngrid_query_duration_seconds", [("kind", "batch")]).record(duration: ContinuousClock.now - start) }
        let answer: BatchAnswer
        do {
            answer = try await router.scores(posted.subscriberIDs, explain: explain, models: allModels)
        } catch {
            MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "error")]).increment(by: posted.subscriberIDs.count)
            throw unavailable("the batch failed", error)
        }
        var found = 0, missing = 0, unavailable = 0
        var o = JSONOut(capacity: 64 + 220 * posted.subscriberIDs.count)
        let ids = posted.subscriberIDs
        o.object { o in
            o.key("scores")
            o.array { o in
                for (i, entry) in answer.entries.enumerated() {
                    switch entry {
                    case .scored(let p, let row):
                        found += 1
                        let part = answer.parts[Int(p)], r = Int(row)
                        let probability = part.probabilities.elements[r]
                        o.object { o in
                            // ?models=all: the models active beside the served one whose segment
                            // holds it (left out when its worker, one version older, did not say).
                            if allModels, let lists = part.active, r < lists.count {
                                o.key("active_models")
                                Self.write(lists[r], to: &o)
                            }
                            o.key("subscriber_id"); o.int(ids[i])
                            o.key("probability"); o.double(probability)
                            o.key("risk_band"); o.string(RiskBand(probability: probability).description)
                            o.key("reasons")
                            o.array { o in
                                for k in 0..<3 {
                                    if let reason = part.reason(r, k) {
                                        o.object { o in o.key("feature"); o.string(reason.feature); o.key("contribution"); o.double(reason.contribution) }
                                    }
                                }
                            }
                            o.key("explain"); o.string(explain.description)
                            o.key("model_version"); o.string(part.modelVersion(r))
                            o.key("shard"); o.int(answer.shards[i])
                            o.key("node"); o.string(part.node)
                            o.key("epoch"); o.int(answer.epoch)
                        }
                    case .live(let s):
                        found += 1
                        Self.write(s, explain: explain, to: &o)
                    default: break
                    }
                }
            }
            o.key("not_found")
            o.array { o in
                for (i, entry) in answer.entries.enumerated() { if case .notFound = entry { missing += 1; o.int(ids[i]) } }
            }
            o.key("unavailable")
            o.array { o in
                for (i, entry) in answer.entries.enumerated() {
                    if case .unavailable(let reason) = entry {
                        unavailable += 1
                        o.object { o in o.key("subscriber_id"); o.int(ids[i]); o.key("reason"); o.string(reason) }
                    }
                }
            }
            o.key("epoch"); o.int(answer.epoch)
        }
        MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "found")]).increment(by: found)
        MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "not_found")]).increment(by: missing)
        MetricHandles.shared.counter("churngrid_queries_total", [("outcome", "unavailable")]).increment(by: unavailable)
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: o.bytes)))
    }

    // MARK: Events

    /// Lines the event parser does not take as blank: anything but spaces and tabs (and a
    /// carriage return ending the line).
    static func nonBlankLines(_ bytes: [UInt8]) -> Int {
        var count = 0, blank = true
        for (i, b) in bytes.enumerated() {
            switch b {
            case 0x0A:
                if !blank { count += 1 }
                blank = true
            case 0x20, 0x09: break
            case 0x0D where i + 1 == bytes.count || bytes[i + 1] == 0x0A: break
            default: blank = false
            }
        }
        return blank ? count : count + 1
    }

    /// `POST /v1/events`: NDJSON events (docs/events.md), at most `EventBatch.maxCount` a request,
    /// sent to the owning workers; every line answered with its outcome, in order.
    func postEvents() async throws -> Response {
        guard let contentType = request.headers[.contentType], contentType.lowercased().hasPrefix("application/x-ndjson") else {
            throw Problem(.unsupportedMediaType, "send events as application/x-ndjson: one JSON object a line (docs/events.md)")
        }
        let buffer = try await collectBody()
        let body = Array(buffer.readableBytesView)
        // Counted before parsing: a rejected line is answered like an event, so it counts too.
        let given = Self.nonBlankLines(body)
        guard given <= EventBatch.maxCount else {
            throw Problem(.tooManyEvents, "\(given) lines; at most \(EventBatch.maxCount) events per request")
        }
        let lines = EventParser().parseAll(body)
        var events: [SubscriberEvent] = [], eventLines: [Int] = []
        var results: [(line: Int, status: String, seq: Int64?, reason: String?)] = []
        var byReason: [String: Int] = [:]
        for (k, parsed) in lines.enumerated() {
            switch parsed {
            case .blank: continue
            case .event(let e):
                events.append(e)
                eventLines.append(k + 1)
            case .rejected(let r):
                results.append((r.line, "rejected", nil, r.reason.code))
                byReason[r.reason.code, default: 0] += 1
            }
        }
        let unparsed = results.count
        let router = try server.router()
        let acks: [EventAck]
        do {
            acks = try await router.send(events: events, deadline: .seconds(10)).acks
        } catch {
            throw unavailable("the events could not be sent", error)
        }
        var accepted = 0, duplicates = 0, unsettled = 0
        for (line, ack) in zip(eventLines, acks) {
            switch ack.status {
            case .accepted: accepted += 1
            case .duplicate: duplicates += 1
            case .rejected: byReason[ack.reason?.code ?? "rejected", default: 0] += 1
            default: unsettled += 1
            }
            let status = ack.status.isFinal ? ack.status.description : "retry"
            results.append((line, status, ack.status == .accepted ? ack.seq : nil, ack.reason?.code))
        }
        results.sort { $0.line < $1.line }
        let rejected = byReason.values.reduce(0, +)
        MetricHandles.shared.counter("churngrid_http_events_total", [("outcome", "accepted")]).increment(by: accepted)
        return json(status: .ok, headers: [.cacheControl: "no-store"]) { o in
            o.object { o in
                o.key("events"); o.int(events.count + unparsed)
                o.key("accepted"); o.int(accepted)
                o.key("duplicates"); o.int(duplicates)
                o.key("rejected"); o.int(rejected)
                o.key("unsettled"); o.int(unsettled)
                o.key("rejected_by_reason")
                o.object { o in for (k, v) in byReason.sorted(by: { $0.key < $1.key }) { o.key(dynamic: k); o.int(v) } }
                o.key("results")
                o.array { o in
                    for r in results {
                        o.object { o in
                            o.key("line"); o.int(r.line)
                            o.key("status"); o.string(r.status)
                            if let seq = r.seq { o.key("seq"); o.int(seq) }
                            if let reason = r.reason { o.key("reason"); o.string(reason) }
                        }
                    }
                }
            }
        }
    }

    // MARK: Jobs

    static func write(_ j: JobStatus, published: Bool?, to o: inout JSONOut) {
        o.object { o in
            o.key("id"); o.int(j.id)
            o.key("state"); o.string(j.state.rawValue)
            o.key("model_version"); o.string(j.modelVersion)
            o.key("shards_done"); o.int(j.shardsDone)
            o.key("shard_count"); o.int(j.shardCount)
            o.key("subscribers"); o.int(j.subscribers)
            o.key("seconds"); o.double(j.seconds)
            o.key("subscribers_per_second"); o.double(j.subscribersPerSecond)
            o.key("retries"); o.int(j.retries)
            o.key("stragglers"); o.int(j.stragglers)
            o.key("error"); if let e = j.error { o.string(e) } else { o.null() }
            if let published { o.key("published"); o.bool(published) }
        }
    }

    static func write(_ j: JobRecord, live: JobStatus?, to o: inout JSONOut) {
        o.object { o in
            o.key("id"); o.int(j.id)
            o.key("state"); o.string((live?.state ?? j.state).rawValue)
            o.key("model_version"); o.string(j.modelVersion)
            o.key("shards_done"); o.int(live?.shardsDone ?? j.shardsDone)
            o.key("shard_count"); o.int(j.shardCount)
            o.key("subscribers"); o.int(live?.subscribers ?? j.subscribers)
            o.key("seconds"); o.double(live?.seconds ?? j.seconds)
            o.key("started_at"); o.string(j.startedAt)
            o.key("finished_at"); if let f = j.finishedAt { o.string(f) } else { o.null() }
            o.key("error"); if let e = live?.error ?? j.error { o.string(e) } else { o.null() }
            o.key("published"); o.bool(j.published)
        }
    }

    func startJob() async throws -> Response {
        let c = try leader()
        let id: Int64
        do {
            id = try await ClusterActorSystem.$caller.withValue(caller) { try await c.startRescore() }
        } catch let error as ClusterError {
            if error.description.contains("still running") { throw Problem(.conflict, error.description) }
            var p = Problem(.unavailable, error.description)
            p.headers[.retryAfter] = "5"
            throw p
        }
        let status = try? await c.job(id: id)  // started either way: a failed read-back still answers 202
        var headers: HTTPFields = [:]
        headers[.location] = "/v1/jobs/\(id)"
        return json(status: .accepted, headers: headers) { o in
            if let status = status ?? nil { Self.write(status, published: false, to: &o) } else {
                Self.write(JobStatus(id: id, state: .running, modelVersion: "", shardsDone: 0, shardCount: 0, subscribers: 0, seconds: 0, retries: 0, error: nil),
                           published: false, to: &o)
            }
        }
    }

    func jobs() async throws -> Response {
        var limit = 20
        if let text = request.uri.queryParameters["limit"] {
            guard let n = Int(String(text)), (1...100).contains(n) else { throw Problem(.invalidParameter, "limit must be 1–100, got '\(text.prefix(20))'", field: "limit") }
            limit = n
        }
        let records = try await dbRead { try await server.store.jobs(limit: limit) }
        let published = try await dbRead { try await server.store.publishedJob() }
        let live: JobStatus? = (try? await server.coordinator?.job()) ?? nil
        return json(status: .ok) { o in
            o.object { o in
                o.key("jobs")
                o.array { o in for r in records { Self.write(r, live: live.flatMap { $0.id == r.id ? $0 : nil }, to: &o) } }
                o.key("published_job_id"); if let published { o.int(published) } else { o.null() }
            }
        }
    }

    func job(_ id: Int64) async throws -> Response {
        // The leader knows the running job live; a standby (or any job) reads PostgreSQL.
        let live: JobStatus?? = try? await server.coordinator?.job(id: id)
        let status: JobStatus?
        if let live = live ?? nil {
            status = live
        } else if let record = try await dbRead({ try await server.store.job(id) }) {
            status = JobStatus(id: record.id, state: record.state, modelVersion: record.modelVersion, shardsDone: record.shardsDone, shardCount: record.shardCount,
                               subscribers: record.subscribers, seconds: record.seconds, retries: 0, error: record.error)
        } else {
            status = nil
        }
        guard let status else { throw Problem(.unknownJob, "no job \(id)", field: "id") }
        let published = try await dbRead { try await server.store.publishedJob() }
        return json(status: .ok) { o in Self.write(status, published: published == id, to: &o) }
    }

    func summary(_ id: Int64) async throws -> Response {
        if let summary = try await dbRead({ try await server.store.summaryJSON(job: id) }) {
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: summary)))
        }
        guard let record = try await dbRead({ try await server.store.job(id) }) else { throw Problem(.unknownJob, "no job \(id)", field: "id") }
        throw Problem(.conflict, "job \(id) is \(record.state.rawValue): only a completed job has a summary")
    }

    /// A job's drift against its model version's reference (docs/models.md).
    func drift(_ id: Int64) async throws -> Response {
        if let drift = try await dbRead({ try await server.store.driftJSON(job: id) }) {
            return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: drift)))
        }
        guard let record = try await dbRead({ try await server.store.job(id) }) else { throw Problem(.unknownJob, "no job \(id)", field: "id") }
        throw Problem(.conflict, record.state == .completed
            ? "job \(id) has no drift measured: it is measured just after publication (try again), and not for jobs scored before drift was"
            : "job \(id) is \(record.state.rawValue): only a completed job has a drift")
    }

    /// A database read; the database being away is a 503 with a retry, never a 500.
    func dbRead<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let problem as Problem {
            throw problem
        } catch {
            throw unavailable("PostgreSQL could not be read", error)
        }
    }

    /// A 503 for a failure inside the cluster: the caller gets what failed and the request id;
    /// the error itself (hosts, SQL, nodes) goes to the log only.
    /// A cluster operation that stopped with a reason the caller should read (which worker, which
    /// step) and that a retry finishes: 503 with the reason and `Retry-After`.
    func retryLater(_ error: ClusterError, after seconds: Int = 5) -> Problem {
        var p = Problem(.unavailable, error.description)
        p.headers[.retryAfter] = String(seconds)
        return p
    }

    func unavailable(_ what: String, _ error: any Error, retryAfter: Int = 1) -> Problem {
        server.configuration.logger.warning("\(what)", metadata: ["request": "\(requestID)", "error": "\(error)"])
        var p = Problem(.unavailable, "\(what); try again (request \(requestID) in the coordinator's log)")
        p.headers[.retryAfter] = String(retryAfter)
        return p
    }

    /// Server-Sent Events: `job` (the current or last job, on change and at least every 5 s)
    /// and `cluster` (the nodes, every 2 s), until the client goes away.
    func stream() throws -> Response {
        let c = try leader()
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        headers[.init("X-Accel-Buffering")!] = "no"
        let server = server, identity = identity, session = request.headers[.authorization] == nil ? request.cookies["churngrid_session"]?.value : nil
        return Response(status: .ok, headers: headers, body: .init { writer in
            var last = "", tick = 0
            while !Task.isCancelled {
                // The stream lasts as long as the caller may read: a revoked token or an ended
                // session ends it.
                if let identity, !server.tokens.isLive(hash: identity.tokenHash) { break }
                if let session, server.sessions.withLock({ $0.identity(of: session, now: .now) }) == nil { break }
                let job = try await c.job()
                var o = JSONOut()
                if let job { Self.write(job, published: nil, to: &o) } else { o.null() }
                if o.text != last || tick % 10 == 0 {
                    try await writer.write(ByteBuffer(string: "event: job\ndata: \(o.text)\n\n"))
                    last = o.text
                }
                if tick % 4 == 0, let view = await c.whenLocal({ $0.overview() }) {
                    var n = JSONOut()
                    Self.writeOverview(view, to: &n)
                    try await writer.write(ByteBuffer(string: "event: cluster\ndata: \(n.text)\n\n"))
                }
                tick += 1
                try await Task.sleep(for: .milliseconds(500))
            }
            try await writer.finish(nil)
        })
    }

    static func writeOverview(_ v: CoordinatorOverview, to o: inout JSONOut) {
        o.object { o in
            o.key("term"); o.int(v.term)
            o.key("epoch"); o.int(v.epoch)
            o.key("shard_count"); o.int(v.shardCount)
            o.key("ready_shards"); o.int(v.ready)
            o.key("moving_shards"); o.int(v.moving)
            o.key("nodes")
            o.array { o in
                for n in v.nodes {
                    o.object { o in
                        o.key("name"); o.string(n.name)
                        o.key("state"); o.string(n.state.rawValue)
                        o.key("shards"); o.int(n.shards)
                        o.key("ready_shards"); o.int(n.readyShards)
                        o.key("standby_shards"); o.int(n.standbyShards)
                    }
                }
            }
        }
    }

    // MARK: Cluster and nodes

    func cluster() async throws -> Response {
        let c = try leader()
        let status = try await c.status()
        guard let view = await c.whenLocal({ $0.overview() }) else { throw server.notLeading() }
        let info = Dictionary(view.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        return json(status: .ok) { o in
            o.object { o in
                o.key("coordinator"); o.string(server.coordinatorService.system.node.name)
                o.key("endpoint"); o.string(server.coordinatorService.system.node.endpoint)
                o.key("term"); o.int(view.term)
                o.key("epoch"); o.int(status.epoch)
                o.key("shard_count"); o.int(status.shardCount)
                o.key("ready_shards"); o.int(view.ready)
                o.key("unassigned_shards"); o.int(status.unassignedShards)
                o.key("moving_shards"); o.int(status.movingShards)
                o.key("model_version"); o.string(status.modelVersion)
                o.key("nodes")
                o.array { o in
                    for w in status.workers {
                        let n = info[w.name]
                        o.object { o in
                            o.key("name"); o.string(w.name)
                            o.key("endpoint"); o.string(w.endpoint)
                            o.key("state"); o.string(n?.state.rawValue ?? "active")
                            o.key("shards"); o.int(w.shards)
                            o.key("ready_shards"); o.int(n?.readyShards ?? 0)
                            o.key("standby_shards"); o.int(w.standbyShards)
                            o.key("subscribers"); o.int(w.subscribers)
                            o.key("profile_bytes"); o.int(w.profileBytes)
                            o.key("standby_bytes"); o.int(w.standbyBytes)
                            o.key("resident_bytes"); o.int(w.residentBytes)
                            o.key("max_memory_bytes"); o.int(w.maxMemory)
                            o.key("cores"); o.int(w.cores)
                            o.key("model_version"); o.string(w.modelVersion)
                        }
                    }
                }
                o.key("silent_nodes"); o.array { o in for s in status.silentWorkers { o.string(s) } }
                o.key("job"); if let j = status.job { Self.write(j, published: nil, to: &o) } else { o.null() }
                o.key("placement")
                if let p = status.placement {
                    o.object { o in
                        o.key("failures"); o.int(p.failures)
                        o.key("last_error"); o.string(p.lastError)
                        o.key("retry_in_seconds"); if let s = p.retryInSeconds { o.double(s) } else { o.null() }
                    }
                } else {
                    o.null()
                }
                o.key("database")
                if let d = status.database {
                    o.object { o in
                        o.key("reachable"); o.bool(d.reachable)
                        o.key("last_answer_seconds_ago"); if let s = d.lastAnswerSecondsAgo { o.double(s) } else { o.null() }
                        o.key("unreachable_for_seconds"); if let s = d.unreachableForSeconds { o.double(s) } else { o.null() }
                        o.key("failures"); o.int(d.failures)
                        o.key("last_error"); if let e = d.lastError { o.string(e) } else { o.null() }
                        o.key("lease_valid"); o.bool(d.leaseValid)
                    }
                } else {
                    o.null()
                }
            }
        }
    }

    func drain(_ name: String) async throws -> Response {
        let c = try leader()
        guard let view = await c.whenLocal({ $0.overview() }), view.nodes.contains(where: { $0.name == name }) else {
            throw Problem(.unknownNode, "no worker named '\(name.prefix(80))'", field: "name")
        }
        // The drain goes on if the caller gives up waiting (a proxy's timeout): it runs in a task
        // of its own, which the request only waits for.
        let caller = caller
        let drain = Task { try await ClusterActorSystem.$caller.withValue(caller) { try await c.drain(name) } }
        do {
            let moved = try await drain.value
            return json(status: .ok) { o in o.object { o in o.key("node"); o.string(name); o.key("shards_moved"); o.int(moved) } }
        } catch let error as ClusterError {
            if error.description.hasPrefix("no worker named") { throw Problem(.unknownNode, error.description, field: "name") }
            throw Problem(.conflict, error.description)
        } catch {
            throw unavailable("draining \(name) failed", error, retryAfter: 5)
        }
    }

    // MARK: Tokens

    func listTokens() async throws -> Response {
        let records = try await dbRead { try await server.store.tokens() }
        return json(status: .ok) { o in
            o.object { o in
                o.key("tokens")
                o.array { o in
                    for t in records {
                        o.object { o in
                            o.key("name"); o.string(t.name)
                            o.key("role"); o.string(t.role)
                            o.key("created_at"); o.string(t.createdAt)
                            o.key("created_by"); o.string(t.createdBy)
                            o.key("revoked_at"); if let r = t.revokedAt { o.string(r) } else { o.null() }
                        }
                    }
                }
            }
        }
    }

    struct TokenRequest: Decodable { var name: String; var role: String }

    func createToken() async throws -> Response {
        let posted = try await body(TokenRequest.self)
        guard ["reader", "operator", "admin"].contains(posted.role) else {
            throw Problem(.invalidBody, "role must be reader, operator or admin, got '\(posted.role.prefix(40))'", field: "role")
        }
        guard !posted.name.isEmpty, posted.name.utf8.count <= 64, posted.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._@-".contains($0)) }) else {
            throw Problem(.invalidBody, "name: 1–64 letters, digits, '.', '_', '@', '-'", field: "name")
        }
        let c = try leader()
        let (token, hash) = APIToken.generate()
        do {
            try await ClusterActorSystem.$caller.withValue(caller) { try await c.addToken(name: posted.name, role: posted.role, sha256: hash) }
        } catch let error as ClusterError {
            throw Problem(.conflict, error.description, field: "name")
        } catch {
            throw unavailable("the token could not be stored", error, retryAfter: 2)
        }
        if let records = try? await server.store.tokens() { server.tokens.replace(with: records) }
        return json(status: .created) { o in
            o.object { o in o.key("name"); o.string(posted.name); o.key("role"); o.string(posted.role); o.key("token"); o.string(token) }
        }
    }

    func revokeToken(_ name: String) async throws -> Response {
        let c = try leader()
        let revoked: Bool
        do {
            revoked = try await ClusterActorSystem.$caller.withValue(caller) { try await c.revokeToken(name: name) }
        } catch {
            throw unavailable("the token could not be revoked", error, retryAfter: 2)
        }
        guard revoked else { throw Problem(.unknownToken, "no live token named '\(name.prefix(80))'", field: "name") }
        if let records = try? await server.store.tokens() { server.tokens.replace(with: records) }
        return json(status: .ok) { o in o.object { o in o.key("name"); o.string(name); o.key("revoked"); o.bool(true) } }
    }

    struct ErasureBody: Decodable {
        var subscriberIDs: [Int64]
        enum CodingKeys: String, CodingKey { case subscriberIDs = "subscriber_ids" }
    }

    /// `POST /v1/subscribers:erase` (admin): `churngrid subscribers erase` over HTTP (docs/models.md, "Erasure").
    func eraseSubscribers() async throws -> Response {
        let posted = try await body(ErasureBody.self)
        guard Set(posted.subscriberIDs).count <= Erasure.maxSubscribers else {
            throw Problem(.tooManyIds, "\(Set(posted.subscriberIDs).count) subscribers; at most \(Erasure.maxSubscribers) per erasure", field: "subscriber_ids")
        }
        let ids: [Int64]
        do { ids = try Erasure.validated(posted.subscriberIDs) } catch {
            throw Problem(.invalidBody, error.description, field: "subscriber_ids")
        }
        let c = try leader()
        let report: ErasureReport
        do {
            report = try await ClusterActorSystem.$caller.withValue(caller) {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await c.erase(subscribers: BulkArray(ids)) }
            }
        } catch let refusal as ErasureRefusal {
            throw Problem(.conflict, refusal.description)
        } catch let error as ClusterError {
            // Not every worker confirmed, or PostgreSQL failed: nothing is half-done that a retry does not finish.
            throw retryLater(error)
        } catch {
            throw unavailable("the erasure did not finish; run it again", error, retryAfter: 5)
        }
        return json(status: .ok) { o in
            o.object { o in
                o.key("subscribers"); o.int(report.subscribers)
                o.key("found_in_memory"); o.int(report.foundInMemory)
                o.key("copies"); o.int(report.copies)
                o.key("workers"); o.int(report.workers)
                o.key("rows"); o.object { o in for (table, n) in report.rows.sorted(by: { $0.key < $1.key }) { o.key(dynamic: table); o.int(n) } }
                o.key("snapshots"); o.int(report.snapshots)
                o.key("seconds"); o.double(report.seconds)
            }
        }
    }

    /// `GET /v1/models` (reader): every registered model version (`churngrid models list`).
    func models() async throws -> Response {
        let c = try leader()
        let all: [RegisteredModel], active: [ActiveModelStatus], challengers: [ChallengerStatus]
        do {
            all = try await c.models()
            active = try await c.activeModelList()
            challengers = try await c.challengerList()
        } catch { throw unavailable("the model registry could not be read", error) }
        return json(status: .ok) { o in
            o.object { o in
                o.key("active")
                o.array { o in for a in active { Self.activeModel(a, into: &o) } }
                o.key("challengers")
                o.array { o in
                    for ch in challengers {
                        o.object { o in
                            o.key("name"); o.string(ch.name)
                            o.key("version"); o.string(ch.version)
                            o.key("percent"); o.double(ch.percent)
                        }
                    }
                }
                o.key("models")
                o.array { o in
                    for m in all {
                        o.object { o in
                            o.key("name"); o.string(m.name)
                            o.key("version"); o.string(m.version)
                            o.key("served"); o.bool(m.served)
                            o.key("format"); o.string(m.format)
                            o.key("features"); o.array { o in for f in m.features { o.string(f) } }
                            o.key("bytes"); o.int(m.bytes)
                            o.key("sha256"); o.string(m.sha256)
                            o.key("source"); o.string(m.source)
                            o.key("added_by"); o.string(m.addedBy)
                            o.key("added_at"); o.string(Date(timeIntervalSince1970: Double(m.addedAt) / 1000).formatted(.iso8601))
                        }
                    }
                }
            }
        }
    }

    struct DeployBody: Decodable {
        var version: String
        var role: String?
        var traffic: Double?

        enum CodingKeys: String, CodingKey {
            case version, traffic
            case role = "as"
        }
    }

    /// `POST /v1/models/{name}:deploy` (admin): `churngrid models deploy` over HTTP (docs/models.md, "Deployment").
    func deployModel(_ name: String) async throws -> Response {
        let posted = try await body(DeployBody.self)
        guard !posted.version.isEmpty, posted.version.utf8.count <= 128 else { throw Problem(.invalidBody, "version: 1–128 characters", field: "version") }
        do { _ = try ModelRegistry.validName(name) } catch { throw Problem(.invalidParameter, error.description, field: "name") }
        let asChallenger: Double?
        switch posted.role ?? "champion" {
        case "champion":
            guard posted.traffic == nil else { throw Problem(.invalidBody, "traffic is a challenger's share: send it with \"as\": \"challenger\"", field: "traffic") }
            asChallenger = nil
        case "challenger":
            guard let traffic = posted.traffic, traffic.isFinite, traffic > 0, traffic <= 100 else {
                throw Problem(.invalidBody, "a challenger needs traffic: a percentage above 0 and at most 100", field: "traffic")
            }
            asChallenger = traffic
        default:
            throw Problem(.invalidBody, "as: champion or challenger", field: "as")
        }
        let c = try leader()
        return try await deployment {
            try await ClusterActorSystem.$caller.withValue(caller) {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) {
                    if let asChallenger { return try await c.deployChallenger(name: name, version: posted.version, trafficPercent: asChallenger) }
                    return try await c.deployModel(name: name, version: posted.version)
                }
            }
        }
    }

    /// `POST /v1/models/{name}:promote` (admin): `churngrid models promote` over HTTP (docs/models.md, "Champion and challenger").
    func promoteModel(_ name: String) async throws -> Response {
        do { _ = try ModelRegistry.validName(name) } catch { throw Problem(.invalidParameter, error.description, field: "name") }
        let c = try leader()
        return try await deployment {
            try await ClusterActorSystem.$caller.withValue(caller) {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await c.promoteChallenger(name: name) }
            }
        }
    }

    private struct ActivateBody: Decodable {
        var version: String
        var segment: String?
    }

    /// `POST /v1/models/{name}:activate` (admin): `churngrid models activate` over HTTP (docs/models.md, "Several models").
    func activateModel(_ name: String) async throws -> Response {
        let posted = try await body(ActivateBody.self)
        guard !posted.version.isEmpty, posted.version.utf8.count <= 128 else { throw Problem(.invalidBody, "version: 1–128 characters", field: "version") }
        guard (posted.segment?.utf8.count ?? 0) <= ModelSegment.maxBytes else {
            throw Problem(.invalidBody, "segment: at most \(ModelSegment.maxBytes) bytes", field: "segment")
        }
        do { _ = try ModelRegistry.validName(name) } catch { throw Problem(.invalidParameter, error.description, field: "name") }
        let c = try leader()
        return try await activeChange {
            try await ClusterActorSystem.$caller.withValue(caller) {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) {
                    try await c.activateModel(name: name, version: posted.version, segment: posted.segment ?? "")
                }
            }
        }
    }

    /// `POST /v1/models/{name}:deactivate` (admin): `churngrid models deactivate` over HTTP.
    func deactivateModel(_ name: String) async throws -> Response {
        do { _ = try ModelRegistry.validName(name) } catch { throw Problem(.invalidParameter, error.description, field: "name") }
        let c = try leader()
        return try await activeChange {
            try await ClusterActorSystem.$caller.withValue(caller) {
                try await ClusterActorSystem.$callTimeout.withValue(.seconds(600)) { try await c.deactivateModel(name: name) }
            }
        }
    }

    /// An activation's or deactivation's answer, or its refusal as the status it means.
    private func activeChange(_ change: () async throws -> ActiveModelStatus) async throws -> Response {
        let done: ActiveModelStatus
        do {
            done = try await change()
        } catch let refusal as ModelRefusal {
            switch refusal.kind {
            case .unknownModel, .notActive: throw Problem(.unknownModel, refusal.description, field: "name")
            case .unknownVersion: throw Problem(.unknownModel, refusal.description, field: "version")
            case .ambiguousVersion: throw Problem(.invalidBody, refusal.description, field: "version")
            case .invalidSegment: throw Problem(.invalidBody, refusal.description, field: "segment")
            case .busy, .served, .unloadable, .referenceExists, .noChallenger: throw Problem(.conflict, refusal.description)
            }
        } catch let error as ClusterError {
            throw retryLater(error)
        } catch {
            throw unavailable("the change of active models did not finish", error, retryAfter: 5)
        }
        return json(status: .ok) { o in Self.activeModel(done, into: &o) }
    }

    static func activeModel(_ a: ActiveModelStatus, into o: inout JSONOut) {
        o.object { o in
            o.key("name"); o.string(a.name)
            o.key("version"); o.string(a.version)
            o.key("segment"); a.segment.isEmpty ? o.null() : o.string(a.segment)
        }
    }

    /// A deployment's answer, or its refusal as the status it means.
    private func deployment(_ deploy: () async throws -> ModelDeployment) async throws -> Response {
        let report: ModelDeployment
        do {
            report = try await deploy()
        } catch let refusal as ModelRefusal {
            switch refusal.kind {
            case .unknownModel: throw Problem(.unknownModel, refusal.description, field: "name")
            case .unknownVersion: throw Problem(.unknownModel, refusal.description, field: "version")
            case .ambiguousVersion: throw Problem(.invalidBody, refusal.description, field: "version")
            case .busy, .served, .unloadable, .referenceExists, .noChallenger, .invalidSegment, .notActive: throw Problem(.conflict, refusal.description)
            }
        } catch let error as ClusterError {
            // Not every worker loaded it (nothing changed), or the registry could not be read.
            throw retryLater(error)
        } catch {
            throw unavailable("the deployment did not finish", error, retryAfter: 5)
        }
        return json(status: .ok) { o in
            o.object { o in
                o.key("name"); o.string(report.name)
                o.key("version"); o.string(report.version)
                o.key("previous"); if report.previous.isEmpty { o.null() } else { o.string(report.previous) }
                o.key("workers"); o.int(report.workers)
                o.key("switch_seconds"); o.double(report.switchSeconds)
                o.key("seconds"); o.double(report.seconds)
                o.key("unconfirmed_workers"); o.array { o in for w in report.unconfirmed { o.string(w) } }
                o.key("challenger_percent"); if let p = report.challengerPercent { o.double(p) } else { o.null() }
            }
        }
    }

    // MARK: Dashboard

    /// The page and its files, with a policy that lets the page load only from this server and
    /// never be framed (the dashboard needs nothing else).
    func dashboard(_ asset: DashboardAsset) -> Response {
        var response: Response
        switch asset {
        case .page: response = text(Dashboard.html, type: "text/html; charset=utf-8")
        case .script: response = text(Dashboard.script, type: "text/javascript; charset=utf-8", cache: true)
        case .style: response = text(Dashboard.style, type: "text/css; charset=utf-8", cache: true)
        }
        response.headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        response.headers[.init("X-Content-Type-Options")!] = "nosniff"
        response.headers[.init("Referrer-Policy")!] = "no-referrer"
        return response
    }
}
