import ClusterSystem

/// Every route of the coordinator's HTTP server with the role it needs: parsing a method and a
/// path is pure, so the table is tested against the OpenAPI document without a server.
public enum APIRoute: Sendable, Equatable {
    case dashboard(asset: DashboardAsset)
    case openAPI
    case healthz
    case readyz
    case metrics
    case createSession
    case deleteSession
    case score(subscriberID: Int64)
    case batchScores
    case startJob
    case jobs
    case job(id: Int64)
    case jobSummary(id: Int64)
    case jobDrift(id: Int64)
    case stream
    case cluster
    case drain(node: String)
    case tokens
    case createToken
    case revokeToken(name: String)
    case postEvents
    case runCampaign
    case campaignReport(run: Int64)
    case campaignActions(run: Int64)
    case importOutcomes
    case liveCampaign
    case startLiveCampaign
    case stopLiveCampaign
    case eraseSubscribers
    case models
    case deployModel(name: String)
    case promoteModel(name: String)
    case activateModel(name: String)
    case deactivateModel(name: String)

    /// The path template as the OpenAPI document names it (metrics and logs use it, never the raw
    /// path: ids would make one series per subscriber).
    public var template: String {
        switch self {
        case .dashboard(let asset): asset.path
        case .openAPI: "/openapi.json"
        case .healthz: "/healthz"
        case .readyz: "/readyz"
        case .metrics: "/metrics"
        case .createSession, .deleteSession: "/v1/session"
        case .score: "/v1/subscribers/{id}/score"
        case .batchScores: "/v1/scores:batch"
        case .startJob, .jobs: "/v1/jobs"
        case .job: "/v1/jobs/{id}"
        case .jobSummary: "/v1/jobs/{id}/summary"
        case .jobDrift: "/v1/jobs/{id}/drift"
        case .stream: "/v1/stream"
        case .cluster: "/v1/cluster"
        case .drain: "/v1/nodes/{name}:drain"
        case .tokens, .createToken: "/v1/tokens"
        case .revokeToken: "/v1/tokens/{name}:revoke"
        case .postEvents: "/v1/events"
        case .runCampaign: "/v1/campaigns/runs"
        case .campaignReport: "/v1/campaigns/runs/{run}/report"
        case .campaignActions: "/v1/campaigns/runs/{run}/actions.csv"
        case .importOutcomes: "/v1/outcomes"
        case .liveCampaign, .startLiveCampaign, .stopLiveCampaign: "/v1/campaigns/live"
        case .eraseSubscribers: "/v1/subscribers:erase"
        case .models: "/v1/models"
        case .deployModel: "/v1/models/{name}:deploy"
        case .promoteModel: "/v1/models/{name}:promote"
        case .activateModel: "/v1/models/{name}:activate"
        case .deactivateModel: "/v1/models/{name}:deactivate"
        }
    }

    /// Who may call it: nil = anyone (the page, the document, health, metrics, signing in).
    public var roles: Set<Role>? {
        switch self {
        case .dashboard, .openAPI, .healthz, .readyz, .metrics, .createSession, .deleteSession: nil
        case .score, .batchScores, .jobs, .job, .jobSummary, .jobDrift, .stream, .cluster, .models, .liveCampaign: Role.readers
        case .startJob, .postEvents, .runCampaign, .campaignReport, .campaignActions, .importOutcomes, .startLiveCampaign, .stopLiveCampaign: Role.operators
        case .drain, .tokens, .createToken, .revokeToken, .eraseSubscribers, .deployModel, .promoteModel, .activateModel, .deactivateModel: Role.admins
        }
    }

    /// The method and path templates of every route (what the OpenAPI document must describe).
    public static let table: [(method: String, template: String)] = [
        ("GET", "/"), ("GET", "/dashboard.js"), ("GET", "/dashboard.css"), ("GET", "/openapi.json"), ("GET", "/healthz"), ("GET", "/readyz"),
        ("GET", "/metrics"), ("POST", "/v1/session"), ("DELETE", "/v1/session"), ("GET", "/v1/subscribers/{id}/score"),
        ("POST", "/v1/scores:batch"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs/{id}/summary"), ("GET", "/v1/jobs/{id}/drift"), ("GET", "/v1/stream"), ("GET", "/v1/cluster"), ("POST", "/v1/nodes/{name}:drain"),
        ("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("POST", "/v1/tokens/{name}:revoke"), ("POST", "/v1/events"),
        ("POST", "/v1/campaigns/runs"), ("GET", "/v1/campaigns/runs/{run}/report"), ("GET", "/v1/campaigns/runs/{run}/actions.csv"), ("POST", "/v1/outcomes"),
        ("GET", "/v1/campaigns/live"), ("PUT", "/v1/campaigns/live"), ("DELETE", "/v1/campaigns/live"),
        ("POST", "/v1/subscribers:erase"), ("GET", "/v1/models"), ("POST", "/v1/models/{name}:deploy"),
        ("POST", "/v1/models/{name}:promote"), ("POST", "/v1/models/{name}:activate"), ("POST", "/v1/models/{name}:deactivate"),
    ]

    /// The route of `method` `path` (the path without its query).
    /// - Throws: `Problem` — not found, method not allowed (with `Allow`), or a malformed id.
    public static func parse(method: String, path: String) throws(Problem) -> APIRoute {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        func only(_ allowed: [String: APIRoute]) throws(Problem) -> APIRoute {
            let m = method == "HEAD" ? "GET" : method
            if let route = allowed[m] { return route }
            var problem = Problem(.methodNotAllowed, "\(method) is not allowed on \(path); allowed: \(allowed.keys.sorted().joined(separator: ", "))")
            problem.headers[.allow] = allowed.keys.sorted().joined(separator: ", ")
            throw problem
        }
        func id(_ text: String, _ what: String, field: String = "id") throws(Problem) -> Int64 {
            guard let v = Int64(text), v >= 0 else {
                throw Problem(.invalidParameter, "\(what) must be a non-negative integer, got '\(text.prefix(40))'", field: field)
            }
            return v
        }
        switch parts {
        case [""]: return try only(["GET": .dashboard(asset: .page)])
        case ["dashboard.js"]: return try only(["GET": .dashboard(asset: .script)])
        case ["dashboard.css"]: return try only(["GET": .dashboard(asset: .style)])
        case ["openapi.json"]: return try only(["GET": .openAPI])
        case ["healthz"]: return try only(["GET": .healthz])
        case ["readyz"]: return try only(["GET": .readyz])
        case ["metrics"]: return try only(["GET": .metrics])
        case ["v1", "session"]: return try only(["POST": .createSession, "DELETE": .deleteSession])
        case let p where p.count == 4 && p[0] == "v1" && p[1] == "subscribers" && p[3] == "score":
            let subscriber = try id(p[2], "the subscriber id")
            return try only(["GET": .score(subscriberID: subscriber)])
        case ["v1", "scores:batch"]: return try only(["POST": .batchScores])
        case ["v1", "jobs"]: return try only(["GET": .jobs, "POST": .startJob])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "jobs":
            let job = try id(p[2], "the job id")
            return try only(["GET": .job(id: job)])
        case let p where p.count == 4 && p[0] == "v1" && p[1] == "jobs" && p[3] == "summary":
            let job = try id(p[2], "the job id")
            return try only(["GET": .jobSummary(id: job)])
        case let p where p.count == 4 && p[0] == "v1" && p[1] == "jobs" && p[3] == "drift":
            let job = try id(p[2], "the job id")
            return try only(["GET": .jobDrift(id: job)])
        case ["v1", "stream"]: return try only(["GET": .stream])
        case ["v1", "events"]: return try only(["POST": .postEvents])
        case ["v1", "campaigns", "runs"]: return try only(["POST": .runCampaign])
        case ["v1", "campaigns", "live"]: return try only(["GET": .liveCampaign, "PUT": .startLiveCampaign, "DELETE": .stopLiveCampaign])
        case let p where p.count == 5 && p[0] == "v1" && p[1] == "campaigns" && p[2] == "runs" && p[4] == "report":
            let run = try id(p[3], "the run id", field: "run")
            return try only(["GET": .campaignReport(run: run)])
        case let p where p.count == 5 && p[0] == "v1" && p[1] == "campaigns" && p[2] == "runs" && p[4] == "actions.csv":
            let run = try id(p[3], "the run id", field: "run")
            return try only(["GET": .campaignActions(run: run)])
        case ["v1", "outcomes"]: return try only(["POST": .importOutcomes])
        case ["v1", "subscribers:erase"]: return try only(["POST": .eraseSubscribers])
        case ["v1", "models"]: return try only(["GET": .models])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "models" && p[2].hasSuffix(":deploy") && p[2].count > 7:
            return try only(["POST": .deployModel(name: String(p[2].dropLast(7)).removingPercentEncoding())])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "models" && p[2].hasSuffix(":promote") && p[2].count > 8:
            return try only(["POST": .promoteModel(name: String(p[2].dropLast(8)).removingPercentEncoding())])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "models" && p[2].hasSuffix(":activate") && p[2].count > 9:
            return try only(["POST": .activateModel(name: String(p[2].dropLast(9)).removingPercentEncoding())])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "models" && p[2].hasSuffix(":deactivate") && p[2].count > 11:
            return try only(["POST": .deactivateModel(name: String(p[2].dropLast(11)).removingPercentEncoding())])
        case ["v1", "cluster"]: return try only(["GET": .cluster])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "nodes" && p[2].hasSuffix(":drain") && p[2].count > 6:
            return try only(["POST": .drain(node: String(p[2].dropLast(6)).removingPercentEncoding())])
        case ["v1", "tokens"]: return try only(["GET": .tokens, "POST": .createToken])
        case let p where p.count == 3 && p[0] == "v1" && p[1] == "tokens" && p[2].hasSuffix(":revoke") && p[2].count > 7:
            return try only(["POST": .revokeToken(name: String(p[2].dropLast(7)).removingPercentEncoding())])
        default:
            throw Problem(.notFound, "no resource at \(path.prefix(200)) (the API is described at /openapi.json)")
        }
    }
}

/// The dashboard's files.
public enum DashboardAsset: Sendable, Equatable {
    case page, script, style

    var path: String {
        switch self {
        case .page: "/"
        case .script: "/dashboard.js"
        case .style: "/dashboard.css"
        }
    }
}

extension String {
    /// `%XX` sequences decoded (invalid ones kept as they are).
    func removingPercentEncoding() -> String {
        guard contains("%") else { return self }
        var out: [UInt8] = []
        let u = Array(utf8)
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count, let h = UInt8(String(decoding: u[i + 1...i + 2], as: UTF8.self), radix: 16) {
                out.append(h)
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
