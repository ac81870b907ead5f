import ChurnCluster
import ClusterSystem
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Retention
import Uplift

/// Campaigns and outcomes (docs/retention.md): the coordinator's `runCampaign`, `exportCampaign`,
/// `campaignReport` and `importOutcomes`, as `churngrid campaign run|export|report` and
/// `churngrid outcomes import` call them. A refusal's kind (`CampaignRefusal`) gives the status.
extension Handlers {
    /// How request bodies are named in the errors about them ("request body: offers[1].cost: …").
    static let bodySource = "request body"

    /// `POST /v1/campaigns/runs[?job=ID]`: the campaign file (JSON, at most `Campaign.maxFileBytes`)
    /// decided over the published job; the run's summary.
    func runCampaign() async throws -> Response {
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw Problem(.unsupportedMediaType, "send the campaign file as application/json, not \(contentType.prefix(60))")
        }
        var job: Int64?
        if let text = request.uri.queryParameters["job"] {
            guard let id = Int64(String(text)), id >= 0 else {
                throw Problem(.invalidParameter, "job must be a non-negative integer, got '\(text.prefix(40))'", field: "job")
            }
            job = id
        }
        let bytes = Array(try await collectBody(limit: Campaign.maxFileBytes).readableBytesView)
        // Checked here first, as the CLI does: a mistake in the file is named before anything is
        // asked of the cluster (the coordinator checks it again).
        do {
            _ = try Campaign.check(bytes, source: Self.bodySource)
        } catch {
            throw Problem(.invalidBody, "\(error)", field: error.field)
        }
        // `Idempotency-Key`: the same request sent again (its answer lost to a timeout) gets the
        // run the first one wrote, not a second run.
        var token: String?
        if let name = Self.idempotencyKey, let key = request.headers[name] {
            guard CampaignRunRequest.validToken(key) else {
                throw Problem(.invalidParameter, "Idempotency-Key: 1–128 letters, digits and '._:-'", field: "Idempotency-Key")
            }
            token = key
        }
        let c = try leader()
        // The run goes on if the caller gives up waiting (a proxy's timeout): it runs in a task of
        // its own, which the request only waits for, and is recorded whole or not at all.
        let caller = caller
        let run = Task { [token] in
            try await ClusterActorSystem.$caller.withValue(caller) {
                try await c.runCampaign(CampaignRunRequest(config: bytes, source: Self.bodySource, job: job, requestToken: token))
            }
        }
        let summary = try await campaignCall("the campaign run failed") { try await run.value }
        return rawJSON(summary)
    }

    static let idempotencyKey = HTTPField.Name("Idempotency-Key")

    /// `PUT /v1/campaigns/live[?max_trigger_age_seconds=600]`: the campaign file made the live
    /// campaign (docs/retention.md, "Real time"), replacing the one live before.
    func startLiveCampaign() async throws -> Response {
        if let contentType = request.headers[.contentType], !contentType.lowercased().hasPrefix("application/json") {
            throw Problem(.unsupportedMediaType, "send the campaign file as application/json, not \(contentType.prefix(60))")
        }
        var age = LiveCampaignRequest.defaultMaxTriggerAgeSeconds
        if let text = request.uri.queryParameters["max_trigger_age_seconds"] {
            guard let n = Int(String(text)), (1...86_400).contains(n) else {
                throw Problem(.invalidParameter, "max_trigger_age_seconds must be 1–86400, got '\(text.prefix(20))'", field: "max_trigger_age_seconds")
            }
            age = n
        }
        let bytes = Array(try await collectBody(limit: Campaign.maxFileBytes).readableBytesView)
        do {
            _ = try Campaign.check(bytes, source: Self.bodySource)
        } catch {
            throw Problem(.invalidBody, "\(error)", field: error.field)
        }
        let c = try leader()
        let started = try await campaignCall("starting the live campaign failed") {
            try await c.startLiveCampaign(LiveCampaignRequest(config: bytes, source: Self.bodySource, maxTriggerAgeSeconds: age))
        }
        return rawJSON(started)
    }

    /// `GET /v1/campaigns/live`: the live campaign and its run's totals (`run_id` null: none).
    func liveCampaign() async throws -> Response {
        let c = try leader()
        return rawJSON(try await campaignCall("reading the live campaign failed") { try await c.liveCampaignStatus() })
    }

    /// `DELETE /v1/campaigns/live`: ends the live campaign; its run's summary (`run_id` null: none was live).
    func stopLiveCampaign() async throws -> Response {
        let c = try leader()
        return rawJSON(try await campaignCall("stopping the live campaign failed") { try await c.stopLiveCampaign() })
    }

    /// `GET /v1/campaigns/runs/{run}/report[?window_days=30]`: the run measured against its control group.
    func campaignReport(_ run: Int64) async throws -> Response {
        var window = 30
        if let text = request.uri.queryParameters["window_days"] {
            guard let n = Int(String(text)), (1...3650).contains(n) else {
                throw Problem(.invalidParameter, "window_days must be 1–3650, got '\(text.prefix(20))'", field: "window_days")
            }
            window = n
        }
        let c = try leader()
        let report = try await campaignCall("the report of campaign run \(run) failed") { try await c.campaignReport(run: run, windowDays: window) }
        return rawJSON(report)
    }

    /// `GET /v1/campaigns/runs/{run}/actions.csv?channel=C`: the run's treatment actions on one
    /// channel, as CSV with a header, for the channel's system.
    func campaignActions(_ run: Int64) async throws -> Response {
        let channels = Channel.allCases.map(\.rawValue).joined(separator: ", ")
        guard let name = request.uri.queryParameters["channel"] else {
            throw Problem(.invalidParameter, "channel is required: one of \(channels)", field: "channel")
        }
        guard let channel = Channel(rawValue: String(name)) else {
            throw Problem(.invalidParameter, "channel must be one of \(channels), got '\(name.prefix(40))'", field: "channel")
        }
        let c = try leader()
        let csv = try await campaignCall("the export of campaign run \(run) failed") { try await c.exportCampaign(run: run, channel: channel.rawValue) }
        var headers: HTTPFields = [.contentType: "text/csv; charset=utf-8", .cacheControl: "no-store"]
        headers[.contentDisposition] = "attachment; filename=\"campaign-run-\(run)-\(channel.rawValue).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: csv)))
    }

    /// `POST /v1/outcomes`: an outcomes CSV (`text/csv`, the format of `churngrid outcomes import`),
    /// stored all or nothing.
    func importOutcomes() async throws -> Response {
        guard let contentType = request.headers[.contentType], contentType.lowercased().hasPrefix("text/csv") else {
            throw Problem(.unsupportedMediaType, "send the outcomes as text/csv: a header (subscriber_id, churned, accepted, observed_at) and one outcome a line")
        }
        let buffer = try await collectBody(limit: server.configuration.maxOutcomesBodyBytes)
        let file: OutcomesFile
        do {
            file = try OutcomesFile(bytes: Array(buffer.readableBytesView), file: Self.bodySource, maxRows: CoordinatorActor.maxOutcomesPerImport)
        } catch {
            var p = Problem(.invalidBody, "\(error)", field: error.column)
            if let line = error.line { p.lines = [line] }
            throw p
        }
        let o = file.outcomes
        guard o.count <= CoordinatorActor.maxOutcomesPerImport else {
            throw Problem(.invalidBody, "\(o.count) outcomes in one request; send at most \(CoordinatorActor.maxOutcomesPerImport) a request")
        }
        let batch = OutcomeBatch(source: Self.bodySource, lines: file.lines, ids: o.subscriberIDs, churned: o.churned.map { $0 ? 1 : 0 },
                                 accepted: o.accepted.map { $0.map { $0 ? 1 : 0 } ?? -1 }, observedAtMillis: o.observedAt)
        let c = try leader()
        let counts = try await campaignCall("the outcomes could not be imported") { try await c.importOutcomes(OutcomeBatchWire(batch)) }
        return json(status: .ok) { o in
            o.object { o in
                o.key("inserted"); o.int(counts.first ?? 0)
                o.key("replaced"); o.int(counts.dropFirst().first ?? 0)
            }
        }
    }

    // MARK: Helpers

    /// JSON the coordinator made, as it is.
    func rawJSON(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A campaign call on the coordinator as the request's caller; its refusals become problems by
    /// their kind, and anything else is the cluster failing (503, worth trying again).
    func campaignCall<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await ClusterActorSystem.$caller.withValue(caller) { try await body() }
        } catch let refusal as CampaignRefusal {
            throw Self.problem(refusal)
        } catch let problem as Problem {
            throw problem
        } catch let error as ClusterError {
            // Shards without a ready worker, a lost lease: the coordinator's own words.
            var p = Problem(.unavailable, error.description)
            p.headers[.retryAfter] = "5"
            throw p
        } catch {
            throw unavailable(what, error, retryAfter: 5)
        }
    }

    static func problem(_ refusal: CampaignRefusal) -> Problem {
        switch refusal.kind {
        case .invalidCampaign: return Problem(.invalidBody, refusal.description, field: refusal.field)
        case .invalidArgument: return Problem(.invalidParameter, refusal.description, field: refusal.field)
        case .conflict: return Problem(.conflict, refusal.description)
        case .unknownRun: return Problem(.unknownRun, refusal.description, field: "run")
        case .unknownSubscribers:
            var p = Problem(.unknownSubscribers, refusal.description, field: "subscriber_id")
            p.lines = refusal.lines
            return p
        case .outcomeUnknown:
            // No Retry-After: a plain retry (without the same Idempotency-Key) could run it twice.
            return Problem(.unavailable, refusal.description)
        }
    }
}
