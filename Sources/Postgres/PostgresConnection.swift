import CLibPQ
#if canImport(Glibc)
import Glibc
#endif

/// One connection to PostgreSQL through libpq.
///
/// Calls block the calling thread until the server answers; async code should run them on a
/// thread of its own, not on the cooperative pool. A connection is used by one thread at a time.
public final class PostgresConnection {
    private let conn: OpaquePointer
    /// Where this connection goes, without the password, for messages.
    public let endpoint: String

    /// Connection settings applied unless the URL says otherwise: a connect timeout, and TCP
    /// keepalives and a user timeout so a server that vanished from the network (a partition, a
    /// dead host) is noticed within about half a minute instead of the kernel's two hours.
    public static let resilientDefaults: [(String, String)] = [
        ("connect_timeout", "10"),
        ("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"), ("keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ]

    /// Connects to `url` (`postgresql://user@host:port/db?…`, any form libpq accepts, several
    /// hosts with `target_session_attrs=read-write` included); `defaults` apply where the URL
    /// names no value of its own.
    /// - Throws: `PostgresError` with code `connection` and libpq's reason.
    public init(url: String, defaults: [(String, String)] = PostgresConnection.resilientDefaults) throws(PostgresError) {
        let endpoint = Self.redacted(url)
        // Defaults first, then the URL (expanded in place): libpq lets later values override.
        let keywords = defaults.map(\.0) + ["dbname"], values = defaults.map(\.1) + [url]
        let connection: OpaquePointer? = keywords.withCStrings { k in values.withCStrings { v in PQconnectdbParams(k, v, 1) } }
        guard let c = connection else {
            throw PostgresError(.connection, message: "libpq could not allocate a connection", context: "connect to \(endpoint)")
        }
        guard PQstatus(c) == CONNECTION_OK else {
            // libpq may quote a value it could not parse, a password included.
            let message = ConnectionString.scrubbed(String(cString: PQerrorMessage(c)).trimmingNewlines(), of: url)
            PQfinish(c)
            throw PostgresError(.connection, message: message, context: "connect to \(endpoint)")
        }
        self.conn = c
        self.endpoint = endpoint
    }

    deinit { PQfinish(conn) }

    /// Breaks off whatever this connection is waiting for, from another thread: its socket is
    /// shut down, so a call blocked on a server that stopped answering (a stalled or frozen
    /// server) returns with a connection error, and the connection counts as closed afterwards.
    /// Safe only while the owning thread is inside a call on this connection, or idle.
    public func interrupt() {
        let fd = PQsocket(conn)
        if fd >= 0 { _ = shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// The connection string with every password replaced by `***` (see `ConnectionString`).
    public static func redacted(_ url: String) -> String { ConnectionString.redacted(url) }

    /// Whether the connection is still usable.
    public var isOpen: Bool { PQstatus(conn) == CONNECTION_OK }

    /// Runs one or more statements with no parameters (DDL, migrations).
    /// - Throws: `PostgresError` with the server's SQLSTATE and message.
    public func execute(_ sql: String) throws(PostgresError) {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
    }

    /// Runs one statement with `$1, $2…` parameters sent as text (nil = NULL) and returns its rows as text.
    /// - Throws: `PostgresError` with the server's SQLSTATE and message.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresRows {
        var owned: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { owned.forEach { free($0) } }
        let result = owned.withUnsafeMutableBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: max(p.count, 1)) { values in
                PQexecParams(conn, sql, Int32(parameters.count), nil, parameters.isEmpty ? nil : values, nil, nil, 0)
            }
        }
        defer { PQclear(result) }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
        return PostgresRows(result!)
    }

    /// The statements prepared on this connection (`prepare`), by name.
    public private(set) var preparedNames: Set<String> = []

    /// Prepares `sql` as statement `name` on this connection (parsed and analysed once; with
    /// `plan_cache_mode` `force_generic_plan`, planned once too).
    /// - Throws: `PostgresError` with the server's SQLSTATE and message.
    public func prepare(_ name: String, _ sql: String, parameters: Int) throws(PostgresError) {
        let result = PQprepare(conn, name, sql, Int32(parameters), nil)
        defer { PQclear(result) }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK])
        preparedNames.insert(name)
    }

    /// Runs the prepared statement `name` (preparing it from `sql` first if this connection has not)
    /// with `$1, $2…` parameters sent as text (nil = NULL); its rows as text.
    /// - Throws: `PostgresError` with the server's SQLSTATE and message.
    @discardableResult
    public func query(prepared name: String, _ sql: String, _ parameters: [String?]) throws(PostgresError) -> PostgresRows {
        if !preparedNames.contains(name) { try prepare(name, sql, parameters: parameters.count) }
        var owned: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { owned.forEach { free($0) } }
        let result: OpaquePointer? = owned.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return PQexecPrepared(conn, name, 0, nil, nil, nil, 0) }
            return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: p.count) { values in
                PQexecPrepared(conn, name, Int32(parameters.count), values, nil, nil, 0)
            }
        }
        defer { PQclear(result) }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
        guard let result else { throw PostgresError(.connection, message: "libpq returned no result", context: PostgresConnection.summary(sql)) }
        return PostgresRows(result)
    }

    /// Streams data into `COPY … FROM STDIN`; `body` writes with the given writer.
    /// - Returns: the number of rows the server stored.
    /// - Throws: `PostgresError`; if `body` throws, the COPY is aborted (nothing is stored) and the error rethrown.
    @discardableResult
    public func copyIn(_ sql: String, _ body: (inout CopyInWriter) throws -> Void) throws -> Int {
        let start = PQexec(conn, sql)
        defer { PQclear(start) }
        try check(start, sql: sql, accept: [PGRES_COPY_IN])
        var writer = CopyInWriter(connection: self)
        do {
            try body(&writer)
            try writer.flush()
        } catch {
            _ = PQputCopyEnd(conn, "aborted by ChurnGrid: \(error)")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(conn, nil) == 1 else {
            throw PostgresError(.copy, message: lastError, context: "ending \(Self.summary(sql))")
        }
        let result = PQgetResult(conn)
        defer { PQclear(result); drainResults() }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK])
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Streams the data of `COPY … TO STDOUT`: `body` is called with each chunk libpq hands over
    /// (for binary COPY, one row per chunk).
    /// - Throws: `PostgresError`, or what `body` throws (the rest of the stream is then discarded).
    public func copyOut(_ sql: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let start = PQexec(conn, sql)
        defer { PQclear(start) }
        try check(start, sql: sql, accept: [PGRES_COPY_OUT])
        var failure: Error?
        while true {
            var buffer: UnsafeMutablePointer<CChar>? = nil
            let n = PQgetCopyData(conn, &buffer, 0)
            if n > 0, let buffer {
                if failure == nil {
                    do { try body(UnsafeRawBufferPointer(start: buffer, count: Int(n))) } catch { failure = error }
                }
                PQfreemem(buffer)
                continue
            }
            if n == -1 { break }
            throw PostgresError(.copy, message: lastError, context: "reading \(Self.summary(sql))")
        }
        let result = PQgetResult(conn)
        defer { PQclear(result); drainResults() }
        if let failure { throw failure }
        try check(result, sql: sql, accept: [PGRES_COMMAND_OK])
    }

    fileprivate func putCopyData(_ bytes: UnsafeRawBufferPointer) throws(PostgresError) {
        guard bytes.count > 0 else { return }
        let ok = bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(conn, $0.baseAddress, Int32($0.count)) }
        guard ok == 1 else { throw PostgresError(.copy, message: lastError, context: "sending COPY data") }
    }

    private var lastError: String { String(cString: PQerrorMessage(conn)).trimmingNewlines() }

    private func drainResults() {
        while let r = PQgetResult(conn) { PQclear(r) }
    }

    private func check(_ result: OpaquePointer?, sql: String, accept: [ExecStatusType]) throws(PostgresError) {
        guard let result else {
            throw PostgresError(.connection, message: lastError, context: Self.summary(sql))
        }
        let status = PQresultStatus(result)
        if accept.contains(status) { return }
        func field(_ code: Character) -> String? {
            guard let p = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: p)
        }
        let state = field("C")
        let message = field("M") ?? String(cString: PQresultErrorMessage(result)).trimmingNewlines()
        let code: PostgresError.Code = state == nil && PQstatus(conn) != CONNECTION_OK ? .connection : .server
        throw PostgresError(code, sqlState: state, message: message.isEmpty ? lastError : message,
                            detail: field("D"), context: Self.summary(sql))
    }

    /// The first words of a statement, to say what was running without logging data.
    static func summary(_ sql: String) -> String {
        let words = sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).prefix(6)
        return "'" + words.joined(separator: " ") + (words.count == 6 ? " …'" : "'")
    }
}

/// Rows of a result, as text (PostgreSQL's text output format).
public struct PostgresRows: Sendable {
    /// Column names.
    public let columns: [String]
    /// `rows[r][c]`, nil for NULL.
    public let rows: [[String?]]

    init(_ result: OpaquePointer) {
        let n = Int(PQntuples(result)), m = Int(PQnfields(result))
        columns = (0..<m).map { String(cString: PQfname(result, Int32($0))) }
        rows = (0..<n).map { r in
            (0..<m).map { c in
                PQgetisnull(result, Int32(r), Int32(c)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(r), Int32(c)))
            }
        }
    }

    /// The first column of the first row, when there is one.
    public var scalar: String? { rows.first?.first ?? nil }
}

/// Buffers COPY data and hands it to libpq in large pieces.
public struct CopyInWriter {
    private let connection: PostgresConnection
    private var buffer: [UInt8] = []

    fileprivate init(connection: PostgresConnection) {
        self.connection = connection
        buffer.reserveCapacity(1 << 20)
    }

    /// Appends raw COPY data (text lines, or binary COPY bytes from `BinaryCopyEncoder`).
    public mutating func write<C: Collection>(_ bytes: C) throws(PostgresError) where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Sends everything buffered.
    public mutating func flush() throws(PostgresError) {
        var failure: PostgresError?
        buffer.withUnsafeBytes { b in
            do throws(PostgresError) { try connection.putCopyData(b) } catch { failure = error }
        }
        if let failure { throw failure }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension String {
    func trimmingNewlines() -> String {
        var s = Substring(self)
        while let c = s.last, c == "\n" || c == " " { s = s.dropLast() }
        return String(s)
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension Array where Element == String {
    /// Runs `body` with the strings as a NULL-terminated array of C strings.
    fileprivate func withCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer<CChar>($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
