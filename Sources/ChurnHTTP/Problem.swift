import HTTPTypes

/// The errors of the HTTP API, each with a stable `type` (RFC 9457): clients switch on it, so a
/// case's slug never changes. `docs/http-api.md` lists them.
public enum ProblemType: String, Sendable, CaseIterable {
    case unauthorized
    case forbidden
    case notFound = "not-found"
    case methodNotAllowed = "method-not-allowed"
    case unknownSubscriber = "unknown-subscriber"
    case unknownJob = "unknown-job"
    case unknownNode = "unknown-node"
    case unknownToken = "unknown-token"
    case unknownRun = "unknown-run"
    case unknownModel = "unknown-model"
    case unknownSubscribers = "unknown-subscribers"
    case invalidParameter = "invalid-parameter"
    case invalidBody = "invalid-body"
    case bodyTooLarge = "body-too-large"
    case tooManyIds = "too-many-ids"
    case tooManyEvents = "too-many-events"
    case unsupportedMediaType = "unsupported-media-type"
    case conflict
    case unavailable
    case notLeading = "not-leading"
    case internalError = "internal-error"

    /// The `type` URI: relative, resolved against the API's own address.
    public var uri: String { "/problems/\(rawValue)" }

    public var status: HTTPResponse.Status {
        switch self {
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound, .unknownSubscriber, .unknownJob, .unknownNode, .unknownToken, .unknownRun, .unknownModel: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .invalidParameter, .invalidBody, .tooManyIds, .tooManyEvents: .badRequest
        case .bodyTooLarge: .contentTooLarge
        case .unknownSubscribers: .unprocessableContent
        case .unsupportedMediaType: .unsupportedMediaType
        case .conflict: .conflict
        case .unavailable, .notLeading: .serviceUnavailable
        case .internalError: .internalServerError
        }
    }

    public var title: String {
        switch self {
        case .unauthorized: "A valid bearer token or session is needed"
        case .forbidden: "The token's role may not do this"
        case .notFound: "No such resource"
        case .methodNotAllowed: "Method not allowed on this resource"
        case .unknownSubscriber: "No such subscriber"
        case .unknownJob: "No such job"
        case .unknownNode: "No such node"
        case .unknownToken: "No such token"
        case .unknownRun: "No such campaign run"
        case .unknownModel: "No such model or model version"
        case .unknownSubscribers: "Subscribers the base does not have"
        case .invalidParameter: "Invalid parameter"
        case .invalidBody: "Invalid request body"
        case .bodyTooLarge: "Request body too large"
        case .tooManyIds: "Too many ids in one batch"
        case .tooManyEvents: "Too many events in one request"
        case .unsupportedMediaType: "Unsupported media type"
        case .conflict: "Conflicts with the cluster's state"
        case .unavailable: "Temporarily unavailable"
        case .notLeading: "This coordinator is standing by"
        case .internalError: "Internal error"
        }
    }
}

/// An RFC 9457 problem: what went wrong, for which field or resource.
public struct Problem: Error, Sendable, CustomStringConvertible {
    public var type: ProblemType
    public var detail: String
    /// The offending field or parameter ("subscriber_ids[3]", "id"), when there is one.
    public var field: String?
    /// The offending lines of an uploaded file (1-based; the header is line 1), when there are some.
    public var lines: [Int] = []
    /// Extra headers (WWW-Authenticate, Allow, Retry-After).
    public var headers: HTTPFields = [:]

    public init(_ type: ProblemType, _ detail: String, field: String? = nil) {
        self.type = type
        self.detail = detail
        self.field = field
    }

    public var description: String { "\(type.rawValue): \(detail)" }

    /// The problem document (`application/problem+json`).
    public func json(instance: String) -> String {
        var o = JSONOut()
        o.object { o in
            o.key("type"); o.string(type.uri)
            o.key("title"); o.string(type.title)
            o.key("status"); o.int(type.status.code)
            o.key("detail"); o.string(detail)
            o.key("instance"); o.string(instance)
            if let field { o.key("field"); o.string(field) }
            if !lines.isEmpty { o.key("lines"); o.array { o in for l in lines { o.int(l) } } }
        }
        return o.text
    }
}
