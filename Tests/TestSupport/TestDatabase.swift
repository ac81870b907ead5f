import Foundation
import Postgres

/// A real PostgreSQL for the tests: the private cluster of `Deploy/local/pg.sh`, under
/// `.churngrid/pg-test`, started once per test run; every test gets a database of its own.
public enum TestDatabase {
    public static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    public struct StartError: Error, CustomStringConvertible { public var description: String }

    /// The server's start, once per test run; every test awaits the same one (none blocks a
    /// thread of the cooperative pool while `initdb` runs).
    private static let starting = Task<Result<String, StartError>, Never> {
        let script = packageRoot.appendingPathComponent("Deploy/local/pg.sh").path
        let dir = packageRoot.appendingPathComponent(".churngrid/pg-test").path
        let (status, output) = await runCommand("bash \(shellQuoted(script)) start \(shellQuoted(dir))")
        let url = output.split(separator: "\n").last.map(String.init) ?? ""
        guard status == 0, url.hasPrefix("postgresql://") else {
            return .failure(StartError(description: "pg.sh start failed (make test installs postgresql): \(output)"))
        }
        return .success(url)
    }

    /// URL of the server's `postgres` database (the server starts on first use).
    public static func server() async throws -> String {
        try await starting.value.get()
    }

    /// A new, empty database; its URL.
    ///
    /// The shared server serves every test at once; a connection it closes while it starts one
    /// (libpq: "server closed the connection unexpectedly", seen once under the whole suite's load)
    /// is tried again, for up to 10 s, and the new database is connected to once before its URL is
    /// returned, so a test starts only on a server that answers.
    public static func fresh() async throws -> String {
        let url = try await server()
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        // Same server, other database: replace the path's last component.
        let created = String(url[..<url.lastIndex(of: "/")!]) + "/" + name
        var attempt = 0
        while true {
            attempt += 1
            do {
                let admin = try PostgresConnection(url: url)
                if try admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).rows.isEmpty {
                    try admin.execute("CREATE DATABASE \(name)")
                }
                _ = try PostgresConnection(url: created).query("SELECT 1")
                return created
            } catch {
                guard attempt < 20 else { throw error }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
