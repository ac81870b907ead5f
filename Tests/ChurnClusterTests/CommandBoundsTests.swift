import Foundation
import Testing
import TestSupport

/// Command-line values that are numbers but not usable ones (NaN, infinity, 1e300, 0 workers):
/// each is refused at once with the flag named (exit 64), before anything starts, rather than
/// stopping the process when it is turned into an integer or a range.
@Suite("Flags out of bounds on the command line")
struct CommandBoundsTests {
    /// Runs `churngrid` with `arguments`; its exit code and output.
    func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let log = NSTemporaryDirectory() + "churngrid-bounds-\(getpid())-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        // No database anywhere: a command that got past its checks would fail otherwise, not with 64.
        let child = try ChildProcess(try churngridExecutable(), arguments, logPath: log,
                                     environment: ["CHURNGRID_POSTGRES_URL": "postgresql://postgres@127.0.0.1:1/postgres"].merging(environment) { $1 })
        let status = try await child.wait(timeout: .seconds(60))
        return (status, child.log)
    }

    static let cases: [(arguments: [String], names: String)] = [
        (["coordinator", "--lease-seconds", "inf"], "--lease-seconds"),
        (["coordinator", "--straggler-seconds", "nan"], "--straggler-seconds"),
        (["coordinator", "--rejoin-grace", "1e300"], "--rejoin-grace"),
        (["coordinator", "--unreachable-after", "-inf"], "--unreachable-after"),
        (["demo", "--workers", "0"], "--workers"),
        (["demo", "--subscribers", "0"], "--subscribers"),
        (["profiles", "load", "--shard-count", "0"], "--shard-count"),
        (["events", "replay", "--input", "/dev/null", "--rate", "1e-300"], "--rate"),
        (["model", "score", "--model", "m.json", "--input", "i.csv", "--output", "o.csv", "--explain", "9223372036854775807"], "--explain"),
        (["bench", "http", "--url", "http://127.0.0.1:1", "--duration", "1e300"], "rate × duration"),
        (["status", "--coordinator", "127.0.0.1:7400"], "is not tcp://HOST:PORT"),
        (["events", "replay", "--input", "/tmp"], "is a directory"),
        (["score", "1000000001", "--coordinator", "tcp://127.0.0.1:notaport"], "is not tcp://HOST:PORT"),
        (["status", "--coordinator", "tcp://host"], "is not tcp://HOST:PORT"),
        // Files named by an option: the system's reason, before anything is asked of a database or cluster.
        (["campaign", "run", "--config", "/nonexistent/campaign.json"], "--config /nonexistent/campaign.json: cannot open it: No such file or directory"),
        (["campaign", "live", "start", "--config", "/tmp"], "--config /tmp: is a directory"),
        (["profiles", "migrate", "--schema", "/nonexistent/schema.json"], "--schema /nonexistent/schema.json: cannot open it: No such file or directory"),
        (["models", "add", "--name", "m", "--file", "/etc/passwd"], "/etc/passwd: not an XGBoost JSON model"),
        (["coordinator", "--triggers", "/nonexistent/triggers.json"], "--triggers /nonexistent/triggers.json: cannot open it"),
        // Addresses off this machine without CURVE or TLS: a name that starts like a loopback
        // address is a name (DNS decides where it points), not loopback.
        (["worker", "--coordinator", "tcp://127.0.0.1:1", "--triggers-publish", "tcp://0.0.0.0:0"], "--triggers-publish tcp://0.0.0.0:0 is not a loopback address"),
        (["worker", "--coordinator", "tcp://127.0.0.1:1", "--triggers-publish", "tcp://127.0.0.1.example.net:7500"], "is not a loopback address"),
        (["coordinator", "--http", "127.0.0.1.example.net:8080"], "--http 127.0.0.1.example.net:8080 is not a loopback address"),
        (["coordinator", "--listen", "tcp://127.example.net:7400"], "tcp://127.example.net:7400 is not a loopback address"),
    ]

    @Test("refused with exit 64 and the flag named", arguments: cases.indices)
    func refused(_ index: Int) async throws {
        let (arguments, names) = Self.cases[index]
        let (status, output) = try await run(arguments)
        #expect(status == 64, "\(arguments.joined(separator: " ")): exit \(status)\n\(output)")
        #expect(output.contains(names), "\(arguments.joined(separator: " ")): the refusal does not name \(names)\n\(output)")
    }

    @Test("bench http does not send the token in clear to a host off this machine unless --insecure")
    func tokenInClear() async throws {
        let token = ["CHURNGRID_TOKEN": "cgt_not-a-real-token"]
        let refused = try await run(["bench", "http", "--url", "http://192.0.2.1:8080", "--duration", "1"], environment: token)
        #expect(refused.status == 64 && refused.output.contains("--insecure") && refused.output.contains("in clear"), "\(refused.output)")
        #expect(!refused.output.contains("cgt_not-a-real-token"))
        let named = try await run(["bench", "http", "--url", "http://127.0.0.1.example.net:8080", "--duration", "1"], environment: token)
        #expect(named.status == 64 && named.output.contains("in clear"), "a host name starting with 127. is not loopback: \(named.output)")
    }

    @Test("a secret key file every user may read is refused, naming the file and the remedy, never the secret; a group-readable one is accepted")
    func worldReadableKey() async throws {
        let directory = NSTemporaryDirectory() + "churngrid-keymode-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await run(["cluster", "keys", "--out", directory, "--name", "tool"])
        try #require(made.status == 0, "\(made.output)")
        let key = "\(directory)/tool.key"
        let secret = try #require(try String(contentsOfFile: key, encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("secret ") }?.dropFirst(7))
        try #require(chmod(key, 0o644) == 0)
        let refused = try await run(["status", "--curve-keys", key, "--coordinator-key", "\(directory)/tool.pub", "--coordinator", "tcp://127.0.0.1:1"])
        #expect(refused.status != 0 && refused.output.contains(key) && refused.output.contains("every user may read it (mode 644)")
                && refused.output.contains("chmod 600"), "\(refused.output)")
        #expect(!refused.output.contains(secret))
        // Group-readable (a Kubernetes secret volume's 0440): past the key check, to the unreachable coordinator.
        try #require(chmod(key, 0o440) == 0)
        let group = try await run(["status", "--curve-keys", key, "--coordinator-key", "\(directory)/tool.pub", "--coordinator", "tcp://127.0.0.1:1"])
        #expect(!group.output.contains("every user may") && group.output.contains("127.0.0.1:1"), "past the key, to the coordinator: \(group.output)")
    }

    @Test("a key file that is a directory: the reason, not 'no name line'")
    func keyDirectory() async throws {
        let (status, output) = try await run(["status", "--curve-keys", "/tmp", "--coordinator-key", "/tmp"])
        #expect(status != 0 && output.contains("/tmp") && output.contains("Is a directory"), "\(output)")
    }
}
