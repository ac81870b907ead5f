/// A PostgreSQL failure: what ChurnGrid was doing, the server's SQLSTATE and message when there
/// is one, and libpq's message otherwise.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case connection, server, copy, protocolViolation
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Could not connect, or the connection broke.
        public static let connection = Code(.connection)
        /// The server rejected a statement (see `sqlState`).
        public static let server = Code(.server)
        /// A COPY stream failed.
        public static let copy = Code(.copy)
        /// The server sent something ChurnGrid did not expect (wrong column type, bad COPY data).
        public static let protocolViolation = Code(.protocolViolation)

        public var description: String { base.rawValue }
    }

    /// What kind of failure.
    public var code: Code
    /// The five-character SQLSTATE, when the server sent one (e.g. "23505" unique violation).
    public var sqlState: String?
    /// The server's or libpq's message.
    public var message: String
    /// The server's DETAIL, when present.
    public var detail: String?
    /// What ChurnGrid was doing (a statement's first words, "connect to 127.0.0.1:5432/churngrid"…).
    public var context: String

    /// Creates an error; see the properties.
    public init(_ code: Code, sqlState: String? = nil, message: String, detail: String? = nil, context: String) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.context = context
    }

    /// Whether the server could not be reached or dropped the connection (a restart, a failover,
    /// a network cut) rather than refusing a statement: worth retrying once it is back. A
    /// statement cut off this way may or may not have committed.
    public var isUnavailable: Bool {
        if code == .connection { return true }
        guard let sqlState else { return code == .server || code == .copy }  // libpq: "server closed the connection"
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    public var description: String {
        var s = "PostgreSQL \(code)"
        if let sqlState { s += " [\(sqlState)]" }
        s += " while \(context): \(message)"
        if let detail { s += " (\(detail))" }
        return s
    }
}
